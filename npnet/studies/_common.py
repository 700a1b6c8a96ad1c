"""What several studies share: an MLP builder with a named initialization, a
plain training loop, the Fashion-MNIST subset of a given size, and seeding.

Nothing here prints; every function returns numbers.
"""
import dataclasses
import math

import numpy as np

from .. import _validate as V
from .. import nn, optim
from ..data import DataLoader, load_fashion_mnist, to_float
from ..nn import init

INITS = ("normal", "constant", "xavier", "kaiming", "torch-default")
ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


def child_rng(rng):
    """A new Generator drawn from ``rng``: independent streams with one seed."""
    return np.random.default_rng(rng.integers(2**63))


def init_linear(layer, scheme, *, rng, std=0.01, value=0.01):
    """Re-initialize one ``nn.Linear`` in place by a named scheme; biases become 0
    except under "torch-default" (Linear's own U(-1/sqrt(in), 1/sqrt(in)))
    and "constant" (``value`` everywhere, bias included).

    Schemes: "normal" N(0, std^2); "constant"; "xavier" (xavier_uniform_, gain 1);
    "kaiming" (kaiming_normal_, fan_in, relu gain sqrt(2)); "torch-default".
    """
    V.choice(scheme, "init", INITS)
    W = layer.params["weight"]
    b = layer.params.get("bias")
    if scheme == "torch-default":
        layer.reset_parameters(rng=rng)
        return layer
    if scheme == "normal":
        init.normal_(W, 0.0, std, rng=rng)
    elif scheme == "constant":
        init.constant_(W, value)
    elif scheme == "xavier":
        init.xavier_uniform_(W, rng=rng)
    else:
        init.kaiming_normal_(W, nonlinearity="relu", rng=rng)
    if b is not None:
        init.constant_(b, value) if scheme == "constant" else init.zeros_(b)
    return layer


def mlp(hidden=(256,), *, in_features=784, out_features=10, activation="relu", dropout=0.0,
        init="torch-default", std=0.01, value=0.01, rng=None, dtype=np.float32):
    """Flatten, then ``Linear -> activation [-> Dropout]`` per hidden width, then a Linear.

    Every Linear is initialized by ``init`` (see :func:`init_linear`); Dropout
    draws its masks from a generator spawned from ``rng``.
    """
    rng = V.generator(rng)
    V.choice(activation, "activation", tuple(ACTIVATIONS))
    layers, width = [nn.Flatten()], in_features
    for h in hidden:
        layers += [init_linear(nn.Linear(width, h, rng=rng, dtype=dtype), init, rng=rng, std=std, value=value),
                   ACTIVATIONS[activation]()]
        if dropout:
            layers.append(nn.Dropout(dropout, rng=child_rng(rng)))
        width = h
    last = nn.Linear(width, out_features, rng=rng, dtype=dtype)
    layers.append(init_linear(last, init, rng=rng, std=std, value=value))
    return nn.Sequential(*layers)


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
        return mlp(self.hidden, activation=self.activation, dropout=self.dropout, init=self.init,
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

    model = setting.build(init_rng if init_rng is not None else child_rng(rng), dtype)
    opt = setting.make_optimizer(model.params)
    scheduler = setting.make_scheduler(opt)
    loss_fn = nn.CrossEntropyLoss()
    loader = DataLoader(X, y, setting.batch_size, shuffle=True, rng=child_rng(rng))
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


def savefig(fig, path):
    """Write ``fig`` to ``path`` (parent folders created) and close it."""
    import os

    import matplotlib.pyplot as plt

    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def pyplot():
    """matplotlib.pyplot with the non-interactive Agg backend (imported lazily)."""
    import sys

    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")  # files only: no window, no display needed
    import matplotlib.pyplot as plt

    return plt


