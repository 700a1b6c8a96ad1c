"""Study: how the initial weight scale sets the signal's size, and what that does to training.

The same MLP (784-256-256-10, ReLU, SGD) trained on Fashion-MNIST from four
initializations: N(0, 0.01) (the course's), PyTorch's default for ``nn.Linear``
(U(-1/sqrt(fan_in), 1/sqrt(fan_in))), Xavier (uniform, gain 1) and Kaiming
(normal, gain sqrt(2)). Before any step, each Linear layer's output standard
deviation on a batch shows the forward signal: with N(0, 0.01) it shrinks about
tenfold per layer (0.01 * sqrt(fan_in) is far below 1), with Kaiming it stays
of order 1. The test accuracy after each epoch shows the cost of a start with a
vanishing signal.
"""
import dataclasses

import numpy as np

from .. import _validate as V
from .. import plots
from . import _common

# name -> (init scheme of npnet.models.mlp, std for "normal")
INITS = {"N(0,0.01)": ("normal", 0.01), "torch default": ("torch-default", None),
         "Xavier": ("xavier", None), "Kaiming": ("kaiming", None)}


@dataclasses.dataclass
class InitResult:
    """What :func:`run` measured.

    Attributes:
        inits: the initialization names, in order.
        activation_std: {init: (L,) std of each Linear layer's output at step 0
            on the same batch of training images, input side first}.
        test_accuracy: {init: (epochs,) accuracy on the test (sub)set after each epoch}.
        train_loss: {init: (epochs,) mean training loss of each epoch}.
        setting: the shared training configuration (a ``_common.Setting``).
        n_train, n_test: the sizes used.
    """

    inits: list
    activation_std: dict
    test_accuracy: dict
    train_loss: dict
    setting: object
    n_train: int
    n_test: int


def layer_output_stds(model, X):
    """Standard deviation of each Linear layer's output (before its activation) on ``X``."""
    stds = []
    for m in model:
        X = m(X)
        if type(m).__name__ == "Linear":
            stds.append(float(X.std()))
    return np.array(stds)


def run(*, quick=False, seed=0, epochs=None, hidden=(256, 256), lr=0.1, batch_size=None,
        n_train=None, n_test=None, data=None):
    """Train the MLP once per initialization on the same data and batch order.

    Args:
        quick: 10,000 training and 2,000 test images, 2 epochs, batch 64
            (else all 60,000/10,000, 10 epochs, batch 256).
        seed: seeds the subsets, the initial weights and the batch order.
        epochs, hidden, lr, batch_size, n_train, n_test: override the configuration.
        data: ``(X_train, y_train, X_test, y_test)`` float images as
            ``_common.load_subset`` returns them; loaded when None.

    Returns:
        :class:`InitResult`.
    """
    seed = V.integer(seed, "seed", low=0)
    epochs = V.integer(epochs if epochs is not None else (2 if quick else 10), "epochs", low=1)
    batch_size = V.integer(batch_size if batch_size is not None else (64 if quick else 256), "batch_size", low=1)
    if data is None:
        n_train = n_train if n_train is not None else (10000 if quick else None)
        n_test = n_test if n_test is not None else (2000 if quick else None)
        data = _common.load_subset(n_train, n_test, rng=np.random.default_rng([seed, 0]))
    X_train, y_train, X_test, y_test = data
    probe = X_train[:1000]
    stds, accs, losses = {}, {}, {}
    for name, (scheme, std) in INITS.items():
        setting = _common.Setting(name, hidden=tuple(hidden), init=scheme, std=std or 0.01, lr=lr,
                                  epochs=epochs, batch_size=batch_size)
        # Same seed for every init: the same batch order, and the same draws where the schemes share a shape.
        rng = np.random.default_rng([seed, 1])
        stds[name] = layer_output_stds(setting.build(np.random.default_rng([seed, 2])), probe)
        _, history = _common.train(setting, X_train, y_train, rng=rng, X_eval=X_test, y_eval=y_test,
                                   init_rng=np.random.default_rng([seed, 2]))
        accs[name] = np.array(history["eval_acc"])
        losses[name] = np.array(history["loss"])
    shared = dataclasses.replace(setting, name="shared", init="(varies)")
    return InitResult(list(INITS), stds, accs, losses, shared, len(y_train), len(y_test))


def table(result):
    """Per initialization: output std of each layer at step 0 and the test accuracy per epoch."""
    n_layers = len(next(iter(result.activation_std.values())))
    header = (["init"] + [f"std layer {i + 1}" for i in range(n_layers)]
              + [f"acc ep {e + 1}" for e in range(len(next(iter(result.test_accuracy.values()))))])
    rows = [[name] + [f"{s:.3g}" for s in result.activation_std[name]]
            + [f"{a:.3f}" for a in result.test_accuracy[name]] for name in result.inits]
    s = result.setting
    return "\n".join([
        f"MLP {'-'.join(str(n) for n in (784, *s.hidden, 10))}, ReLU, SGD lr {s.lr:g}, batch {s.batch_size}, "
        f"{s.epochs} epochs on {result.n_train} images; accuracy on {result.n_test} test images.",
        "std layer l = standard deviation of Linear layer l's output at step 0 (1,000 training images).",
        _common.format_table(header, rows),
    ])


def plot(result, path):
    """Left: each layer's output std at step 0 (log scale). Right: test accuracy per epoch."""
    fig = plots._figure(12, 4.5)
    ax0, ax1 = fig.subplots(1, 2)
    for name in result.inits:
        s = result.activation_std[name]
        ax0.semilogy(np.arange(1, len(s) + 1), s, "o-", label=name)
        a = result.test_accuracy[name]
        ax1.plot(np.arange(1, len(a) + 1), a, "o-", label=name)
    ax0.set(xlabel="Linear layer", ylabel="output std at step 0", title="forward signal before training")
    ax0.set_xticks(np.arange(1, len(s) + 1))
    ax1.set_xticks(np.arange(1, len(a) + 1, max(1, len(a) // 10)))
    ax1.axhline(0.1, color="gray", ls=":", lw=0.8)
    ax1.set(xlabel="epoch", ylabel="test accuracy", title="test accuracy per epoch (chance = 0.1)")
    for ax in (ax0, ax1):
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _common.savefig(fig, path)
