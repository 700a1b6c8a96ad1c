"""Study: vanishing and exploding gradients.

Three views of one fact, that backpropagation multiplies one factor per layer:

1. The sigmoid's derivative ``s(x) (1 - s(x))`` is at most 0.25 (at x = 0) and
   nearly 0 once |x| is a few units, so each sigmoid layer scales the gradient
   down by at least 4.
2. The gradient norm of each Linear layer of a deep MLP (``depth`` layers of
   ``width`` units, float64, a random batch and random labels) under sigmoid,
   tanh and ReLU with N(0, 0.01), N(0, 1), Xavier and Kaiming initialization:
   with the wrong scale it shrinks or grows geometrically from the output layer
   to the input layer; Kaiming with ReLU keeps it level.
3. The product of 100 random 4x4 N(0, 1) matrices: its norm passes 1e20, the
   same geometric growth with no network around it.
"""
import dataclasses

import numpy as np

from .. import _validate as V
from .. import models, nn, plots
from ..nn import functional as F
from . import _common

ACTIVATIONS = ("sigmoid", "tanh", "relu")
# name -> (init scheme, std for "normal")
INITS = {"N(0,0.01)": ("normal", 0.01), "N(0,1)": ("normal", 1.0), "Xavier": ("xavier", None),
         "Kaiming": ("kaiming", None)}


@dataclasses.dataclass
class VanishingResult:
    """What :func:`run` measured.

    Attributes:
        x, sigmoid, sigmoid_grad: (P,) the sigmoid and its derivative on [-8, 8].
        settings: list of (activation, init name), the heat map's columns.
        grad_norms: (depth, len(settings)) Frobenius norm of each Linear
            layer's weight gradient, row 0 the input-side layer.
        product_norms: (n_matrices,) norm of the running product of random 4x4 matrices.
        depth, width: the MLP's size.
    """

    x: np.ndarray
    sigmoid: np.ndarray
    sigmoid_grad: np.ndarray
    settings: list
    grad_norms: np.ndarray
    product_norms: np.ndarray
    depth: int
    width: int

    def norms(self, activation, init):
        """The per-layer gradient norms of one setting, input side first."""
        return self.grad_norms[:, self.settings.index((activation, init))]


def sigmoid_curve(n_points=1601):
    """x on [-8, 8] (0 included), the sigmoid and its derivative ``s (1 - s)``."""
    x = np.linspace(-8.0, 8.0, n_points)
    s = F.sigmoid(x)
    return x, s, F.sigmoid_backward(np.ones_like(x), s)


def layer_grad_norms(activation, init, *, depth, width, batch, rng):
    """Frobenius norm of every Linear layer's weight gradient after one backward pass.

    The network is ``depth`` Linear layers (``width`` -> ``width``, the last
    ``width`` -> 10) with ``activation`` between them, in float64 so that
    neither the vanishing nor the exploding norms underflow or overflow; the loss
    is the cross-entropy of a N(0, 1) batch against random labels.
    """
    scheme, std = INITS[init]
    model = models.mlp((width,) * (depth - 1), in_features=width, activation=activation,
                       init=scheme, std=std or 0.01, rng=rng, dtype=np.float64)
    X = rng.standard_normal((batch, width))
    y = rng.integers(0, 10, batch)
    logits, backward = model.forward(X)
    loss, dloss = nn.CrossEntropyLoss().forward(logits, y)
    _, grads = backward(dloss(), need_dx=False)
    return np.array([np.linalg.norm(grads[k]) for k in sorted(
        (k for k in grads if k.endswith("weight")), key=lambda k: int(k.split(".")[0]))])


def matrix_product_norms(n=100, size=4, *, rng):
    """Norms of M_1, M_1 M_2, ..., the running product of ``n`` random ``size``-square N(0, 1) matrices."""
    M = np.eye(size)
    norms = np.empty(n)
    for i in range(n):
        M = M @ rng.standard_normal((size, size))
        norms[i] = np.linalg.norm(M)
    return norms


def run(*, quick=False, seed=0, depth=None, width=None, batch=None):
    """Measure the three views; see the module docstring.

    Args:
        quick: a narrower network (width 32 instead of 128) and a smaller batch.
        seed: seeds every draw.
        depth: number of Linear layers (default 20).
        width, batch: override the sizes.

    Returns:
        :class:`VanishingResult`.
    """
    seed = V.integer(seed, "seed", low=0)
    depth = V.integer(depth if depth is not None else 20, "depth", low=2)
    width = V.integer(width if width is not None else (32 if quick else 128), "width", low=1)
    batch = V.integer(batch if batch is not None else (32 if quick else 128), "batch", low=1)
    rng = np.random.default_rng(seed)
    x, s, ds = sigmoid_curve()
    settings = [(a, i) for a in ACTIVATIONS for i in INITS]
    columns = []
    for activation, init in settings:
        columns.append(layer_grad_norms(activation, init, depth=depth, width=width, batch=batch,
                                        rng=models.child_rng(rng)))
    product = matrix_product_norms(rng=models.child_rng(rng))
    return VanishingResult(x, s, ds, settings, np.stack(columns, axis=1), product, depth, width)


def table(result):
    """Per setting: gradient norm of the first (input-side) and last Linear layer and their ratio."""
    header = ["activation", "init", "|dW| first layer", "|dW| last layer", "first / last"]
    rows = []
    for a, i in result.settings:
        g = result.norms(a, i)
        rows.append([a, i, f"{g[0]:.3g}", f"{g[-1]:.3g}", f"{g[0] / g[-1]:.3g}"])
    k = int(np.argmax(result.sigmoid_grad))
    lines = [
        f"Gradient norm per Linear layer of a {result.depth}-layer MLP, width {result.width}, float64:",
        _common.format_table(header, rows, left=2),
        f"sigmoid'(x) on [-8, 8]: max {result.sigmoid_grad[k]:.4g} at x = {result.x[k]:.3g}; "
        f"{result.sigmoid_grad[0]:.3g} at x = -8.",
        f"product of {len(result.product_norms)} random 4x4 N(0, 1) matrices: norm "
        f"{result.product_norms[-1]:.3g} (after 10: {result.product_norms[9]:.3g}, "
        f"after 50: {result.product_norms[49]:.3g}).",
    ]
    return "\n".join(lines)


def plot(result, path):
    """Sigmoid and derivative; the depth-by-setting heat map of log10 gradient norms; the product norm."""
    fig = plots._figure(14, 6.5)
    grid = fig.add_gridspec(2, 2, width_ratios=[1, 1.6])
    ax = fig.add_subplot(grid[0, 0])
    ax.plot(result.x, result.sigmoid, label="sigmoid(x)")
    ax.plot(result.x, result.sigmoid_grad, label="sigmoid'(x) = s (1 - s)")
    ax.axhline(0.25, color="gray", lw=0.8, ls=":")
    ax.set(xlabel="x", title="the sigmoid's derivative is at most 0.25")
    ax.legend(fontsize=8)

    ax = fig.add_subplot(grid[1, 0])
    ax.semilogy(np.arange(1, len(result.product_norms) + 1), result.product_norms)
    ax.axhline(1e20, color="gray", lw=0.8, ls=":")
    ax.set(xlabel="number of matrices multiplied", ylabel="Frobenius norm",
           title="product of random 4x4 N(0, 1) matrices")

    ax = fig.add_subplot(grid[:, 1])
    with np.errstate(divide="ignore"):
        logs = np.log10(result.grad_norms)
    logs = np.where(np.isfinite(logs), logs, np.nan)
    image = ax.imshow(logs, aspect="auto", cmap="RdBu_r", vmin=-np.nanmax(np.abs(logs)),
                      vmax=np.nanmax(np.abs(logs)), origin="upper")
    ax.set_xticks(range(len(result.settings)))
    ax.set_xticklabels([f"{a}\n{i}" for a, i in result.settings], fontsize=7)
    ax.set_yticks(range(0, result.depth, 2))
    ax.set_yticklabels([str(d + 1) for d in range(0, result.depth, 2)])
    ax.set(ylabel="Linear layer (1 = input side)",
           title=f"log10 |dW| per layer, {result.depth}-layer MLP of width {result.width}")
    for edge in (3.5, 7.5):
        ax.axvline(edge, color="k", lw=1)
    fig.colorbar(image, ax=ax, label="log10 of the weight-gradient norm")
    fig.tight_layout()
    return _common.savefig(fig, path)
