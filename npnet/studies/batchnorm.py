"""Study: batch normalization lets a deep sigmoid network train fast, at large learning rates.

The course's LeNet (sigmoids, average pooling; :func:`npnet.models.lenet`) is
trained with plain SGD twice per learning rate: as it is, and with a BatchNorm
after each convolution and each hidden Linear layer, before the sigmoid
(``lenet(batch_norm=True)``). Both start from the same convolution and Linear
weights (the same seed: BatchNorm draws nothing) and see the same mini-batches
in the same order; they differ only by the BatchNorm layers.

Measured per epoch: the mean training loss and accuracy, the test accuracy
(inference mode: BatchNorm normalizes with its running statistics), and each
layer's activation scale: how much the input of each sigmoid (a convolution's or
Linear layer's output, after its BatchNorm when there is one) varies from image
to image, on a fixed batch of training images, with the batch's own statistics as
training sees them (:func:`unit_spread`); before the first step too.

Without BatchNorm that spread shrinks several times at every layer (about 0.2,
0.04, 0.01, 0.002 from the first layer to the fourth): the sigmoid is nearly
linear there, with slope at most 1/4, so deep units see almost the same input
for every image, the gradients that reach the early layers are tiny, and the
loss hardly moves from log(10) in the first epochs. BatchNorm rescales every
unit to spread 1 (times its ``weight``, which starts at 1), and the same network
learns at once, at every learning rate tried.
"""
import dataclasses
import math

import numpy as np

from .. import _validate as V
from .. import models, nn, optim, plots
from ..data import DataLoader
from ..errors import TrainingDiverged
from ..train import evaluate, train_epoch
from . import _common

MODELS = {"LeNet": False, "LeNet+BN": True}    # name -> batch_norm
LAYERS = ("conv1", "conv2", "fc1", "fc2")       # the layers whose output goes into a sigmoid
LRS = (0.1, 0.9, 4.0)


@dataclasses.dataclass
class Curves:
    """One training run (a model at a learning rate), per epoch.

    Attributes:
        loss: (epochs,) mean training loss of each epoch (nan after a divergence).
        train_accuracy: (epochs,) training accuracy of each epoch, over the batches as they were seen.
        test_accuracy: (epochs,) test accuracy after each epoch.
        activation_std: (epochs + 1, len(LAYERS)) std of each sigmoid's input on the probe
            batch; row 0 before training, row e after epoch e.
        diverged: the epoch whose loss became NaN or infinite, or None.
    """

    loss: np.ndarray
    train_accuracy: np.ndarray
    test_accuracy: np.ndarray
    activation_std: np.ndarray
    diverged: object = None


@dataclasses.dataclass
class BatchNormResult:
    """What :func:`run` measured.

    Attributes:
        curves: {(model name, lr): :class:`Curves`}, model names as in :data:`MODELS`.
        lrs: the learning rates, in order.
        epochs, batch_size, n_train, n_test, probe, seed: the configuration.
    """

    curves: dict
    lrs: tuple
    epochs: int
    batch_size: int
    n_train: int
    n_test: int
    probe: int
    seed: int

    @property
    def models(self):
        return list(MODELS)


def unit_spread(Z):
    """How much a unit's value varies from sample to sample: the standard deviation of each
    channel (over the batch and, for a convolution, the positions) or feature (over the
    batch), as BatchNorm computes it, then the root mean square over the units.

    This is the scale BatchNorm sets: 1 per unit right after it (times its ``weight``).
    An offset shared by all samples, which carries no information, does not count.

    Shape:
        Z (N, C) or (N, C, H, W) -> a float.
    """
    axes = (0,) + tuple(range(2, Z.ndim))
    return float(np.sqrt(Z.var(axis=axes, dtype=np.float64).mean()))


def preactivation_stds(model, X):
    """:func:`unit_spread` of each Sigmoid's input on ``X``, in training mode (a BatchNorm
    normalizes with the batch's statistics). BatchNorm's running statistics, which a
    training forward moves, are put back as they were."""
    saved = {k: v.copy() for k, v in model.buffers.items()}
    stds = []
    try:
        for m in model:
            if isinstance(m, nn.Sigmoid):
                stds.append(unit_spread(X))
            X, _ = m.forward(X, train=True)
    finally:
        for k, v in model.buffers.items():
            v[...] = saved[k]
    return np.array(stds)


def build(batch_norm, seed):
    """The study's LeNet; with the same ``seed`` both variants hold the same convolution
    and Linear weights (BatchNorm layers draw nothing and start at weight 1, bias 0)."""
    return models.lenet(batch_norm=batch_norm, rng=np.random.default_rng([seed, 2]))


def train_one(batch_norm, lr, data, *, seed, epochs, batch_size, probe):
    """Train one LeNet (with or without BatchNorm) with SGD at ``lr``; returns :class:`Curves`.

    The initial weights come from ``[seed, 2]`` and the batch order from ``[seed, 1]``,
    so every run of a study starts alike and sees the same batches.
    """
    X_train, y_train, X_test, y_test = data
    model = build(batch_norm, seed)
    opt = optim.SGD(model.params, lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    loader = DataLoader(X_train, y_train, batch_size, shuffle=True, rng=np.random.default_rng([seed, 1]))
    test_loader = DataLoader(X_test, y_test, 1000)
    X_probe = X_train[:probe]
    nan = np.full(epochs, np.nan)
    loss, train_acc, test_acc = nan.copy(), nan.copy(), nan.copy()
    stds = np.full((epochs + 1, len(LAYERS)), np.nan)
    stds[0] = preactivation_stds(model, X_probe)
    diverged = None
    for e in range(epochs):
        try:
            stats = train_epoch(model, loss_fn, opt, loader, epoch=e + 1)
        except TrainingDiverged:
            diverged = e + 1
            break
        loss[e], train_acc[e] = stats.loss, stats.accuracy
        test_acc[e] = evaluate(model, test_loader).accuracy
        stds[e + 1] = preactivation_stds(model, X_probe)
    return Curves(loss, train_acc, test_acc, stds, diverged)


def run(*, quick=False, seed=0, epochs=None, lrs=None, batch_size=256, n_train=None, n_test=None, data=None):
    """Train LeNet with and without BatchNorm at each learning rate, on the same data and batch order.

    Args:
        quick: 2,000 training and 1,000 test images, 2 epochs (else 20,000 and all
            10,000, 5 epochs).
        seed: seeds the subsets, the initial weights and the batch order.
        epochs, batch_size, n_train, n_test: override the configuration.
        lrs: the SGD learning rates (default :data:`LRS`).
        data: ``(X_train, y_train, X_test, y_test)`` float images as
            ``_common.load_subset`` returns them; loaded when None.

    Returns:
        :class:`BatchNormResult`.
    """
    seed = V.integer(seed, "seed", low=0)
    epochs = V.integer(epochs if epochs is not None else (2 if quick else 5), "epochs", low=1)
    batch_size = V.integer(batch_size, "batch_size", low=2)   # BatchNorm needs 2 samples per batch
    lrs = tuple(V.real_number(lr, f"lrs[{i}]", low=0.0, low_open=True)
                for i, lr in enumerate(V.sequence(LRS if lrs is None else lrs, "lrs", "learning rates")))
    if not lrs:
        raise ValueError("lrs must hold at least one learning rate, got none")
    if data is None:
        n_train = n_train if n_train is not None else (2000 if quick else 20000)
        n_test = n_test if n_test is not None else (1000 if quick else None)
        data = _common.load_subset(n_train, n_test, rng=np.random.default_rng([seed, 0]))
    probe = min(500, len(data[1]))
    curves = {}
    for lr in lrs:
        for name, batch_norm in MODELS.items():
            curves[name, lr] = train_one(batch_norm, lr, data, seed=seed, epochs=epochs, batch_size=batch_size,
                                         probe=probe)
    return BatchNormResult(curves, lrs, epochs, batch_size, len(data[1]), len(data[3]), probe, seed)


def _f(x, spec):
    return "-" if not math.isfinite(x) else format(x, spec)


def table(result):
    """Per model and learning rate: the loss per epoch, the last epoch's accuracies and
    the activation scale of each layer before training and after the last epoch
    ("diverged" for the epoch whose loss became NaN or infinite, "-" after it)."""
    E = result.epochs
    header = (["model", "lr"] + [f"loss ep {e + 1}" for e in range(E)] + ["train acc", "test acc"]
              + [f"std {layer}" for layer in LAYERS])
    rows = []
    for lr in result.lrs:
        for name in result.models:
            c = result.curves[name, lr]
            losses = [_f(v, ".3f") for v in c.loss]
            if c.diverged is not None:
                losses[c.diverged - 1] = "diverged"
            rows.append([name, f"{lr:g}"] + losses
                        + [_f(c.train_accuracy[-1], ".3f"), _f(c.test_accuracy[-1], ".3f")]
                        + [f"{_f(a, '#.2g')} -> {_f(b, '#.2g')}" for a, b in zip(c.activation_std[0],
                                                                                 c.activation_std[-1])])
    return "\n".join([
        f"Sigmoid LeNet with and without BatchNorm, SGD, batch {result.batch_size}, {E} epoch{'s' * (E != 1)} on "
        f"{result.n_train} images; accuracy after the last epoch, test on {result.n_test} images.",
        f"std layer = how much the layer's output going into its sigmoid (after BatchNorm when there is one) varies "
        f"from image to image (RMS over units of each unit's std) on {result.probe} training images, "
        f"before training -> after epoch {E}.",
        _common.format_table(header, rows, left=2),
    ])


CSV_HEADER = ("model", "lr", "epoch", "train_loss", "train_acc", "test_acc") + tuple(f"std_{l}" for l in LAYERS)


def csv_rows(result):
    """The whole measurement, one row per model, learning rate and epoch (epoch 0: before
    training, only the activation scales); columns :data:`CSV_HEADER`."""
    rows = []
    for lr in result.lrs:
        for name in result.models:
            c = result.curves[name, lr]
            for e in range(result.epochs + 1):
                numbers = (c.loss[e - 1], c.train_accuracy[e - 1], c.test_accuracy[e - 1]) if e else ("",) * 3
                rows.append((name, f"{lr:g}", e) + tuple(repr(float(v)) if v != "" else "" for v in numbers)
                            + tuple(repr(float(s)) for s in c.activation_std[e]))
    return CSV_HEADER, rows


def plot(result, path):
    """Top: training loss, training accuracy and test accuracy per epoch (colour = learning
    rate; solid with BatchNorm, dashed without). Bottom: each layer's activation scale per
    epoch, one panel per learning rate (log scale; epoch 0 = before training)."""
    n = len(result.lrs)
    cols = max(3, n)
    fig = plots._figure(4.2 * cols, 8)
    grid = fig.add_gridspec(2, cols)
    colors = [f"C{i}" for i in range(10)]
    epochs = np.arange(1, result.epochs + 1)
    top = [fig.add_subplot(grid[0, i]) for i in range(3)]
    for i, lr in enumerate(result.lrs):
        for name, style in zip(result.models, ("--", "-")):
            c = result.curves[name, lr]
            for ax, values in zip(top, (c.loss, c.train_accuracy, c.test_accuracy)):
                ax.plot(epochs, values, style, marker="o", ms=3, color=colors[i % 10], label=f"{name}, lr {lr:g}")
    for ax, ylabel in zip(top, ("training loss", "training accuracy", "test accuracy")):
        ax.set(xlabel="epoch", ylabel=ylabel, title=f"{ylabel} per epoch")
        ax.set_xticks(epochs if len(epochs) <= 10 else np.linspace(1, epochs[-1], 10).round())
        ax.grid(True, alpha=0.3)
    top[0].axhline(math.log(10), color="gray", ls=":", lw=0.8)   # the loss of a uniform guess
    for ax in top[1:]:
        ax.axhline(0.1, color="gray", ls=":", lw=0.8)            # chance
    top[0].legend(fontsize=7)
    steps = np.arange(result.epochs + 1)
    for i, lr in enumerate(result.lrs):
        ax = fig.add_subplot(grid[1, i])
        for name, style in zip(result.models, ("--", "-")):
            stds = result.curves[name, lr].activation_std
            for j, layer in enumerate(LAYERS):
                ax.semilogy(steps, stds[:, j], style, marker="o", ms=3, color=colors[j],
                            label=layer if style == "-" else None)
        ax.axhline(1.0, color="gray", ls=":", lw=0.8)
        ax.set(xlabel="epoch (0 = before training)", ylabel="spread of the sigmoid's input over images",
               title=f"activation scale per layer, lr {lr:g}")
        ax.set_xticks(steps if len(steps) <= 11 else np.linspace(0, steps[-1], 11).round())
        ax.grid(True, alpha=0.3)
        if i == 0:
            ax.plot([], [], "k-", label="with BatchNorm")
            ax.plot([], [], "k--", label="without")
            ax.legend(fontsize=7, loc="center right")
    fig.suptitle("sigmoid LeNet: dashed without BatchNorm, solid with it; same initial weights, same batches",
                 fontsize=10)
    fig.tight_layout()
    return _common.savefig(fig, path)
