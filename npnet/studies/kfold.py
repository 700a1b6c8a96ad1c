"""Study: k-fold cross-validation for model selection.

The training set is split once into k folds (:func:`npnet.data.kfold`); every
candidate setting is trained k times, each time on k - 1 folds, and scored on
the fold it did not see. The setting with the best mean validation accuracy is
retrained on the whole training set and scored once on the test set, which no
decision has looked at. Every setting sees exactly the same folds, so their
means differ by the setting and not by the split; the standard deviation over
folds says how much of a difference between two means is noise.

Grids: "default" (the course's MLP and SGD, three weight decays), "best" (the
course's MLP against a wider 784-512-256-10 network with Kaiming
initialization, Adam with a cosine learning-rate schedule and dropout 0.2 or
0.5) and "tiny" (two settings, used by ``quick``).
"""
import dataclasses

import numpy as np

from .. import _validate as V
from .. import plots
from ..data import kfold as make_folds
from . import _common

S = _common.Setting
GRIDS = {
    "default": (
        S("SGD, wd 0", hidden=(256,), lr=0.1, weight_decay=0.0, epochs=10),
        S("SGD, wd 1e-4", hidden=(256,), lr=0.1, weight_decay=1e-4, epochs=10),
        S("SGD, wd 1e-3", hidden=(256,), lr=0.1, weight_decay=1e-3, epochs=10),
    ),
    "best": (
        S("course MLP, SGD", hidden=(256,), lr=0.1, epochs=10),
        S("512-256, dropout 0.2", hidden=(512, 256), init="kaiming", dropout=0.2, optimizer="adam", lr=1e-3,
          epochs=20, batch_size=256, schedule="cosine"),
        S("512-256, dropout 0.5", hidden=(512, 256), init="kaiming", dropout=0.5, optimizer="adam", lr=1e-3,
          epochs=20, batch_size=256, schedule="cosine"),
    ),
    "tiny": (
        S("SGD, 64 hidden", hidden=(64,), lr=0.1, epochs=2, batch_size=64),
        S("Adam, 64 hidden, dropout 0.2", hidden=(64,), init="kaiming", dropout=0.2, optimizer="adam", lr=1e-3,
          epochs=2, batch_size=64),
    ),
}
del S


@dataclasses.dataclass
class KFoldResult:
    """What :func:`run` measured.

    Attributes:
        settings: the candidate ``_common.Setting`` s, in grid order.
        val_accuracy: (len(settings), k) validation accuracy per setting and fold.
        folds: the k ``(train_idx, val_idx)`` pairs into the training set, shared by every setting.
        folds_seen: {setting name: list of the val_idx arrays it was scored on}, recorded as
            training happened (each is the very array in ``folds``).
        chosen: index of the setting with the best mean validation accuracy.
        test_accuracy: the chosen setting, retrained on all training data, on the test set.
        final_history: that retraining's loss per epoch.
        n_train, n_test, k: sizes.
    """

    settings: list
    val_accuracy: np.ndarray
    folds: list
    folds_seen: dict
    chosen: int
    test_accuracy: float
    final_history: dict
    n_train: int
    n_test: int
    k: int

    @property
    def mean(self):
        return self.val_accuracy.mean(axis=1)

    @property
    def std(self):
        """Standard deviation over the folds (ddof=1: the folds are a sample)."""
        return self.val_accuracy.std(axis=1, ddof=1)

    @property
    def chosen_setting(self):
        return self.settings[self.chosen]


def run(*, quick=False, seed=0, k=None, grid=None, n_train=None, n_test=None, epochs=None, data=None,
        progress=None):
    """Cross-validate every setting of ``grid``, retrain the best, score it on the test set.

    Args:
        quick: 3,000 training and 2,000 test images, k = 3, the "tiny" grid
            (else all 60,000/10,000, k = 5, the "default" grid).
        seed: seeds the folds, the subsets, the initial weights and the batch orders.
        k: number of folds.
        grid: a name in ``GRIDS`` or a sequence of ``_common.Setting``.
        n_train, n_test: subset sizes (None: the whole split).
        epochs: override every setting's number of epochs.
        data: ``(X_train, y_train, X_test, y_test)`` float images as
            ``_common.load_subset`` returns them; loaded when None.
        progress: optional callable ``progress(message)`` told of each finished fold.

    Returns:
        :class:`KFoldResult`.
    """
    seed = V.integer(seed, "seed", low=0)
    k = V.integer(k if k is not None else (3 if quick else 5), "k", low=2)
    grid = grid if grid is not None else ("tiny" if quick else "default")
    if isinstance(grid, str):
        settings = list(GRIDS[V.choice(grid, "grid", tuple(GRIDS))])
    else:
        settings = list(grid)
    if epochs is not None:
        epochs = V.integer(epochs, "epochs", low=1)
        settings = [dataclasses.replace(s, epochs=epochs) for s in settings]
    if data is None:
        n_train = n_train if n_train is not None else (3000 if quick else None)
        n_test = n_test if n_test is not None else (2000 if quick else None)
        data = _common.load_subset(n_train, n_test, rng=np.random.default_rng([seed, 0]))
    X, y, X_test, y_test = data
    folds = list(make_folds(len(y), k, shuffle=True, rng=np.random.default_rng([seed, 1])))

    val = np.empty((len(settings), k))
    seen = {}
    for s_i, setting in enumerate(settings):
        seen[setting.name] = []
        for f_i, (train_idx, val_idx) in enumerate(folds):
            seen[setting.name].append(val_idx)
            # The same seed for fold f_i in every setting: the comparison varies the setting only.
            model, _ = _common.train(setting, X[train_idx], y[train_idx], rng=np.random.default_rng([seed, 2, f_i]))
            val[s_i, f_i] = _common.accuracy(model, X[val_idx], y[val_idx])
            if progress is not None:
                progress(f"{setting.name}: fold {f_i + 1}/{k} validation accuracy {val[s_i, f_i]:.4f}")
    chosen = int(np.argmax(val.mean(axis=1)))
    model, history = _common.train(settings[chosen], X, y, rng=np.random.default_rng([seed, 3]))
    test_acc = _common.accuracy(model, X_test, y_test)
    if progress is not None:
        progress(f"chosen {settings[chosen].name}: test accuracy {test_acc:.4f}")
    return KFoldResult(settings, val, folds, seen, chosen, test_acc, history, len(y), len(y_test), k)


def table(result):
    """Per setting: mean and standard deviation of validation accuracy over the folds;
    then the chosen setting's test accuracy."""
    header = ["setting", "configuration", f"val acc mean (k={result.k})", "std", "folds"]
    rows = []
    for i, s in enumerate(result.settings):
        mark = " <- chosen" if i == result.chosen else ""
        rows.append([s.name + mark, s.describe(), f"{result.mean[i]:.4f}", f"{result.std[i]:.4f}",
                     " ".join(f"{a:.3f}" for a in result.val_accuracy[i])])
    c = result.chosen_setting
    return "\n".join([
        f"{result.k}-fold cross-validation on {result.n_train} training images (the same folds for every setting):",
        _common.format_table(header, rows, left=2),
        f"chosen: {c.name} ({c.describe()}); retrained on all {result.n_train} training images: "
        f"test accuracy {result.test_accuracy:.4f} on {result.n_test} test images",
    ])


def plot(result, path):
    """Validation accuracy per fold (dots) and mean +- std (bars) per setting; the test accuracy of the chosen one."""
    n = len(result.settings)
    fig = plots._figure(max(6, 2.2 * n), 4.5)
    ax = fig.subplots()
    x = np.arange(n)
    ax.errorbar(x, result.mean, yerr=result.std, fmt="s", color="k", capsize=6, label="mean +- std over folds")
    for f in range(result.k):
        ax.plot(x + (f - (result.k - 1) / 2) * 0.06, result.val_accuracy[:, f], "o", ms=4, alpha=0.6,
                label=f"fold {f + 1}")
    ax.plot([result.chosen + 0.3], [result.test_accuracy], "*", color="tab:red", ms=14,
            label=f"chosen, retrained: test {result.test_accuracy:.4f}")
    ax.set_xlim(-0.5, n - 0.2)
    ax.set_xticks(x)
    ax.set_xticklabels([s.name for s in result.settings], fontsize=8)
    ax.set(ylabel="accuracy", title=f"{result.k}-fold cross-validation on {result.n_train} training images")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _common.savefig(fig, path)
