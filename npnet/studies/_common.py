"""What several studies share: a training setting (built by :func:`npnet.models.mlp`),
a plain training loop, the Fashion-MNIST subset of a given size, tables and figures.

Nothing here prints; every function returns numbers.
"""
import dataclasses
import math

import numpy as np

from .. import _validate as V
from .. import models, nn, optim, plots
from ..data import DataLoader, load_fashion_mnist, to_float


def linear_layers(model):
    """The model's Linear layers, input side first."""
    return [m for m in model if isinstance(m, nn.Linear)]


@dataclasses.dataclass(frozen=True)
class Setting:
    """One training configuration: the model, the optimizer and the schedule."""

    name: str
    hidden: tuple = (256,)
    activation: str = "relu"
    init: str = "torch-default"
    std: float = 0.01
    dropout: float = 0.0
    optimizer: str = "sgd"
    lr: float = 0.1
    weight_decay: float = 0.0
    epochs: int = 10
    batch_size: int = 256
    schedule: str = "constant"   # or "cosine": CosineAnnealingLR from lr to 0 over the epochs

    def build(self, rng, dtype=np.float32):
        return models.mlp(self.hidden, activation=self.activation, dropout=self.dropout, init=self.init,
                          std=self.std, rng=rng, dtype=dtype)

    def make_optimizer(self, params):
        if self.optimizer == "sgd":
            return optim.SGD(params, lr=self.lr, weight_decay=self.weight_decay)
        if self.optimizer == "adam":
            return optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        if self.optimizer == "adamw":
            return optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        raise ValueError(f"optimizer must be 'sgd', 'adam' or 'adamw', got {self.optimizer!r}")

    def make_scheduler(self, opt):
        """None for a constant learning rate; a per-epoch CosineAnnealingLR for "cosine"."""
        V.choice(self.schedule, "schedule", ("constant", "cosine"))
        return optim.CosineAnnealingLR(opt, T_max=self.epochs) if self.schedule == "cosine" else None

    def describe(self):
        arch = "-".join(str(n) for n in (784, *self.hidden, 10))
        parts = [arch, self.activation, self.init]
        if self.dropout:
            parts.append(f"dropout {self.dropout:g}")
        parts.append(f"{self.optimizer} lr {self.lr:g}" + (" cosine" if self.schedule == "cosine" else ""))
        if self.weight_decay:
            parts.append(f"wd {self.weight_decay:g}")
        parts.append(f"{self.epochs} ep, batch {self.batch_size}")
        return ", ".join(parts)


def train_step(model, loss_fn, opt, X, y):
    """One optimizer step on one mini-batch; returns the batch loss."""
    logits, backward = model.forward(X, train=True)
    loss, dloss = loss_fn.forward(logits, y)
    _, grads = backward(dloss(), need_dx=False)
    opt.step(grads)
    return float(loss)


def accuracy(model, X, y, batch_size=1000):
    """Fraction of samples whose arg-max logit is the label (inference mode: dropout off)."""
    from ..train import evaluate_accuracy

    return evaluate_accuracy(model, DataLoader(X, y, batch_size))


def train(setting, X, y, *, rng, X_eval=None, y_eval=None, init_rng=None, dtype=np.float32):
    """Build and train ``setting`` on float images ``X`` with :func:`npnet.train.train_epoch`;
    returns (model, history).

    ``rng`` draws the batch order (and the initial weights unless ``init_rng``
    is given). ``history`` has the mean training loss per epoch and, when an
    evaluation set is given, its accuracy after each epoch.
    """
    from ..train import train_epoch

    model = setting.build(init_rng if init_rng is not None else models.child_rng(rng), dtype)
    opt = setting.make_optimizer(model.params)
    scheduler = setting.make_scheduler(opt)
    loss_fn = nn.CrossEntropyLoss()
    loader = DataLoader(X, y, setting.batch_size, shuffle=True, rng=models.child_rng(rng))
    history = {"loss": [], "eval_acc": []}
    for epoch in range(1, setting.epochs + 1):
        history["loss"].append(train_epoch(model, loss_fn, opt, loader, epoch=epoch).loss)
        if scheduler is not None:
            scheduler.step()
        if X_eval is not None:
            history["eval_acc"].append(accuracy(model, X_eval, y_eval))
    return model, history


def load_subset(n_train=None, n_test=None, *, root=None, download=True, rng=None):
    """Fashion-MNIST as float32 (N, 1, 28, 28) in [0, 1] and int64 labels.

    ``n_train``/``n_test`` take a random subset of that size (the whole split when None).
    """
    X_train, y_train, X_test, y_test = load_fashion_mnist(root, download=download)
    rng = V.generator(rng)
    if n_train is not None and n_train < len(y_train):
        idx = np.sort(rng.choice(len(y_train), n_train, replace=False))
        X_train, y_train = X_train[idx], y_train[idx]
    if n_test is not None and n_test < len(y_test):
        idx = np.sort(rng.choice(len(y_test), n_test, replace=False))
        X_test, y_test = X_test[idx], y_test[idx]
    return to_float(X_train), y_train, to_float(X_test), y_test


def format_table(header, rows, left=1):
    """A plain-text table: column widths from the content; the first ``left``
    columns (names) left-aligned, the rest (numbers) right-aligned."""
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(r):
        return "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))

    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in cells[1:]])


def fmt(x, spec=".3g"):
    """A number for a table: 'never' for None, else formatted."""
    if x is None:
        return "never"
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return format(x, spec)


FIGURE_OPTIONS = {"dpi": 120, "bbox_inches": "tight"}   # how every study figure is written


def savefig(fig, path):
    """Write ``fig`` as a PNG to ``path`` atomically (parent folders created); returns the path."""
    import sys

    plots._save(fig, path, parents=True, **FIGURE_OPTIONS)
    if "matplotlib.pyplot" in sys.modules:   # a figure from pyplot() is registered there until closed
        sys.modules["matplotlib.pyplot"].close(fig)
    return path


def pyplot():
    """matplotlib.pyplot with the Agg backend; kept only for the stability study's plot,
    which still draws through it (the other studies draw on ``npnet.plots._figure``)."""
    import sys

    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")  # files only: no window, no display needed
    import matplotlib.pyplot as plt

    return plt
