"""Study: constant initialization keeps hidden units identical; randomness breaks the symmetry.

An MLP (784 -> hidden -> 10, ReLU) whose weights all start at the same constant
computes the same value in every hidden unit, so every hidden unit receives the
same gradient and gets the same update: after any number of SGD steps the
hidden units are still exact copies of each other, and the network is no more
expressive than one with a single hidden unit. Random initial weights separate
them from the first step; so does dropout, even from a constant start, because
each unit is dropped at random on its own.

Measured on real Fashion-MNIST mini-batches: after every step, the largest
difference between any hidden unit's parameters (its row of the first weight
matrix, its bias, its column of the second) and those of hidden unit 0.
"""
import dataclasses

import numpy as np

from .. import _validate as V
from .. import models, nn, optim, plots
from ..data import to_float
from . import _common

# name -> (init scheme, dropout probability)
SETTINGS = {"constant": ("constant", 0.0), "random N(0,0.01)": ("normal", 0.0),
            "constant + dropout 0.5": ("constant", 0.5)}


@dataclasses.dataclass
class SymmetryResult:
    """What :func:`run` measured.

    Attributes:
        settings: the setting names, in order.
        spread: {setting: (steps + 1,) the largest |difference| between any hidden
            unit's parameters and hidden unit 0's, before training and after each step}.
        weights: {setting: (hidden, 784) the first layer's weights after training}.
        test_accuracy: {setting: accuracy on the test (sub)set after training}.
        steps, hidden, batch_size, lr, value: the configuration.
    """

    settings: list
    spread: dict
    weights: dict
    test_accuracy: dict
    steps: int
    hidden: int
    batch_size: int
    lr: float
    value: float

    def final_spread(self, setting):
        return float(self.spread[setting][-1])


def hidden_spread(model):
    """max over hidden units j and parameters of |unit j's parameter - unit 0's parameter|.

    A hidden unit j owns row j of the first Linear's weight, entry j of its bias
    and column j of the second Linear's weight.
    """
    first, second = _common.linear_layers(model)[:2]
    W1, b1, W2 = first.params["weight"], first.params["bias"], second.params["weight"]
    return float(max(np.abs(W1 - W1[:1]).max(), np.abs(b1 - b1[0]).max(), np.abs(W2 - W2[:, :1]).max()))


def run(*, quick=False, seed=0, steps=None, hidden=None, batch_size=256, lr=0.1, value=0.01, data=None):
    """Train each setting for ``steps`` SGD steps on the same mini-batches.

    Args:
        quick: 16 hidden units and a 2,000-image test subset (else 64 and all 10,000).
        seed: seeds the initial weights, dropout masks and the batch order.
        steps: SGD steps per setting (default 100 when quick, else 1,000).
        hidden: hidden units (overrides quick's choice).
        batch_size, lr: the SGD configuration.
        value: the constant of the constant initialization (weights and biases).
        data: ``(X_train, y_train, X_test, y_test)`` as :func:`npnet.data.load_fashion_mnist`
            returns them; loaded when None.

    Returns:
        :class:`SymmetryResult`.
    """
    seed = V.integer(seed, "seed", low=0)
    steps = V.integer(steps if steps is not None else (100 if quick else 1000), "steps", low=1)
    hidden = V.integer(hidden if hidden is not None else (16 if quick else 64), "hidden", low=2)
    if data is None:
        from ..data import load_fashion_mnist

        data = load_fashion_mnist()
    X_train, y_train, X_test, y_test = data
    rng = np.random.default_rng(seed)
    # One sequence of mini-batches, shared by every setting: epochs of fresh permutations.
    epochs = -(-steps * batch_size // len(y_train))
    order = np.concatenate([rng.permutation(len(y_train)) for _ in range(epochs)])
    n_test = 2000 if quick else len(y_test)
    X_eval, y_eval = to_float(X_test[:n_test]), y_test[:n_test]

    spread, weights, acc = {}, {}, {}
    for name, (scheme, p) in SETTINGS.items():
        model = models.mlp((hidden,), dropout=p, init=scheme, std=0.01, value=value,
                           rng=np.random.default_rng([seed, 1]))
        opt = optim.SGD(model.params, lr=lr)
        loss_fn = nn.CrossEntropyLoss()
        curve = [hidden_spread(model)]
        for step in range(steps):
            idx = order[step * batch_size:(step + 1) * batch_size]
            _common.train_step(model, loss_fn, opt, to_float(X_train[idx]), y_train[idx])
            curve.append(hidden_spread(model))
        spread[name] = np.array(curve)
        weights[name] = _common.linear_layers(model)[0].params["weight"].copy()
        acc[name] = _common.accuracy(model, X_eval, y_eval)
    return SymmetryResult(list(SETTINGS), spread, weights, acc, steps, hidden, batch_size, lr, value)


def table(result):
    """Per setting: the spread between hidden units after training and the test accuracy."""
    header = ["initialization", f"max |unit j - unit 0| after {result.steps} steps", "distinct units",
              "test accuracy"]
    rows = []
    for name in result.settings:
        W = result.weights[name]
        distinct = len(np.unique(W, axis=0))
        rows.append([name, f"{result.final_spread(name):.3g}", f"{distinct} of {result.hidden}",
                     f"{result.test_accuracy[name]:.3f}"])
    return "\n".join([
        f"MLP 784-{result.hidden}-10 (ReLU), SGD lr {result.lr:g}, batch {result.batch_size}, "
        f"constant = {result.value:g}:",
        _common.format_table(header, rows),
    ])


def plot(result, path, units=6):
    """The first ``units`` hidden units' 784 input weights as 28x28 images, one row per
    setting, and the spread per step."""
    units = min(units, result.hidden)
    n = len(result.settings)
    fig = plots._figure(2 + 1.6 * units + 4, 1.8 * n + 0.6)
    grid = fig.add_gridspec(n, units + 1, width_ratios=[1] * units + [3.2])
    for r, name in enumerate(result.settings):
        W = result.weights[name]
        scale = max(np.abs(W[:units] - W[:units].mean()).max(), 1e-12)
        for j in range(units):
            ax = fig.add_subplot(grid[r, j])
            ax.imshow(W[j].reshape(28, 28) - W[:units].mean(), cmap="RdBu_r", vmin=-scale, vmax=scale)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
            if r == 0:
                ax.set_title(f"unit {j}", fontsize=8)
    ax = fig.add_subplot(grid[:, units])
    for name in result.settings:
        curve = result.spread[name]
        if np.all(curve == 0):
            ax.plot([], [], " ", label=f"{name}: exactly 0 at every step")
        else:
            ax.plot(np.arange(len(curve)), np.where(curve > 0, curve, np.nan), label=name)
    ax.set(yscale="log", xlabel="SGD step", ylabel="max |unit j - unit 0|",
           title="hidden units' spread (0 is not drawn)")
    ax.legend(fontsize=8)
    fig.suptitle(f"first-layer weights after {result.steps} steps (minus their mean; same colour = same value)",
                 fontsize=10)
    fig.tight_layout()
    return _common.savefig(fig, path)
