"""The two pictures of a training run: learning curves and labelled test predictions;
and the drawing stack the studies' figures use too (:func:`_figure`, :func:`_save`).

matplotlib is imported inside each function, never at module level, so
``import npnet.plots`` works without it; calling a function without it raises
``ImportError``. Figures are drawn with matplotlib's object API on an Agg
canvas (no pyplot, no global backend change) and written atomically.
"""
import math
import os

import numpy as np

from . import _io
from . import _validate as V

__all__ = ["plot_curves", "plot_predictions"]


def _check_labels(values, name, n):
    V.int_array(values, name, "class indices")
    if values.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), one per image, got {values.shape}")
    return values


def _figure(width, height):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path, *, parents=False, **options):
    """Write ``fig`` as a PNG to ``path`` atomically (:func:`npnet._io.atomic_write`).

    ``parents`` creates missing parent folders; ``options`` go to ``fig.savefig``
    (the studies pass ``dpi=120, bbox_inches="tight"``).
    """
    if parents:
        os.makedirs(os.path.dirname(os.path.abspath(os.fspath(path))), exist_ok=True)
    _io.atomic_write(path, lambda f, _: fig.savefig(f, format="png", **options))
    return os.fspath(path)


def _column(history, name):
    return np.array([float(r[name] if isinstance(r, dict) else getattr(r, name)) for r in history])


def plot_curves(history, path, *, title=None):
    """Loss (left) and accuracy (right) per epoch, train and test, as the course's Animator.

    Args:
        history: sequence of ``EpochResult`` (or dicts) with epoch, train_loss,
            train_acc, test_acc and optionally test_loss (drawn when finite).
        path: where to write the PNG.
        title: optional figure title.

    Returns:
        str, the path written.
    """
    history = V.history(history, "history")
    path = V.path(path, "path")
    epochs = _column(history, "epoch")
    fig = _figure(10, 4)
    ax_loss, ax_acc = fig.subplots(1, 2)
    ax_loss.plot(epochs, _column(history, "train_loss"), "o-", label="train loss")
    test_loss = (_column(history, "test_loss") if history and all(
        (r.get("test_loss") if isinstance(r, dict) else getattr(r, "test_loss", None)) is not None for r in history)
        else np.array([]))
    if test_loss.size and np.all(np.isfinite(test_loss)):
        ax_loss.plot(epochs, test_loss, "s--", label="test loss")
    ax_acc.plot(epochs, _column(history, "train_acc"), "o-", label="train acc")
    ax_acc.plot(epochs, _column(history, "test_acc"), "s--", label="test acc")
    for ax, name in ((ax_loss, "cross-entropy loss"), (ax_acc, "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(True, alpha=0.3)
        ax.legend()
        if len(epochs):
            ax.set_xticks(epochs if len(epochs) <= 20 else np.linspace(epochs[0], epochs[-1], 11).round())
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_predictions(images, labels, predictions, path, *, class_names=None, ncols=8):
    """A grid of images, each titled with its true and predicted label; mistakes in red.

    Args:
        images: ndarray (n, H, W) or (n, 1, H, W), uint8 or floats in [0, 1].
        labels: int ndarray (n,), the true classes.
        predictions: int ndarray (n,), the predicted classes.
        path: where to write the PNG.
        class_names: sequence of names indexed by class (default: the indices).
        ncols: images per row.

    Returns:
        str, the path written.
    """
    if not isinstance(images, np.ndarray) or images.dtype.kind not in "uif":
        raise TypeError(f"images must be a numpy.ndarray of uint8 or floats, got {V.describe(images)}")
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[1] != 1):
        raise ValueError(f"images must be (n, H, W) or (n, 1, H, W), got shape {images.shape}")
    if images.ndim == 4:
        images = images[:, 0]
    n = images.shape[0]
    _check_labels(labels, "labels", n)
    _check_labels(predictions, "predictions", n)
    path = V.path(path, "path")
    ncols = V.integer(ncols, "ncols", low=1)
    if class_names is not None and (isinstance(class_names, str) or not isinstance(class_names, (list, tuple))):
        raise TypeError(f"class_names must be a list of names or None, got {V.describe(class_names)}")
    largest = max([int(v) for v in labels] + [int(v) for v in predictions], default=-1)
    if class_names is not None and largest >= len(class_names):
        raise ValueError(f"class_names has {len(class_names)} names, fewer than the classes in labels/predictions")
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    name = (lambda c: class_names[int(c)]) if class_names is not None else (lambda c: str(int(c)))
    fig = _figure(1.5 * ncols, 1.9 * nrows)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for i, ax in enumerate(axes):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= n:
            ax.axis("off")
            continue
        ax.imshow(images[i], cmap="gray_r")
        wrong = int(labels[i]) != int(predictions[i])
        color = "red" if wrong else "black"
        ax.set_title(f"{name(labels[i])}\n{name(predictions[i])}", fontsize=8, color=color)
        for spine in ax.spines.values():
            spine.set_color(color)
            spine.set_linewidth(2 if wrong else 0.5)
    fig.suptitle("test images: true label (top), prediction (bottom); mistakes in red", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


__all__ += ["plot_confusion"]


def plot_confusion(confusion, path, *, class_names=None, title=None):
    """A labelled confusion matrix: rows the true class, columns the prediction, each cell its count.

    Cells are shaded by the fraction of their row (so every class's row reads
    the same however many images it has); the diagonal holds the correct ones.

    Args:
        confusion: integer ndarray (C, C), as :func:`npnet.inference.confusion_matrix` returns.
        path: where to write the PNG.
        class_names: sequence of C names (default: the indices).
        title: optional figure title.

    Returns:
        str, the path written.
    """
    V.int_array(confusion, "confusion", "counts")
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1] or confusion.shape[0] == 0:
        raise ValueError(f"confusion must be a square (C, C) array with C >= 1, got shape {confusion.shape}")
    if np.any(confusion < 0):
        raise ValueError("confusion must hold counts >= 0, got a negative entry")
    path = V.path(path, "path")
    c = confusion.shape[0]
    if class_names is not None and (isinstance(class_names, str) or not isinstance(class_names, (list, tuple))
                                    or len(class_names) != c):
        raise ValueError(f"class_names must be a list of {c} names or None, got {V.describe(class_names)}")
    names = [str(n) for n in class_names] if class_names is not None else [str(i) for i in range(c)]
    rows = confusion.sum(axis=1, keepdims=True)
    share = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)
    size = max(4.0, 0.6 * c + 2.5)
    fig = _figure(size, size)
    ax = fig.subplots()
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(c):
        for j in range(c):
            ax.text(j, i, str(int(confusion[i, j])), ha="center", va="center", fontsize=7,
                    color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(c))
    ax.set_yticks(range(c))
    ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
    ax.set_yticklabels(names, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    total = int(confusion.sum())
    accuracy = np.trace(confusion) / total if total else float("nan")
    ax.set_title((f"{title}\n" if title else "") + f"{total} images, accuracy {accuracy:.4f}", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
