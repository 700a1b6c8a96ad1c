"""Using a trained model: load it from a run, prepare images as training did, read the top classes.

::

    model = load_model("runs/default")            # a run folder, or its checkpoint.npz
    x = prepare_images(X_test[:8])                # uint8 (8, 28, 28) -> float32 (8, 1, 28, 28) in [0, 1]
    classes, probs = topk(model(x), k=3)          # (8, 3) class indices and their softmax probabilities

Images are scaled exactly as in training: uint8 pixels 0..255 become float32
``x / 255`` in [0, 1] (the conversion of :class:`npnet.data.DataLoader`, which
this module calls rather than copies), then cast to the model's dtype.
Fashion-MNIST items are light on a dark background (0 is black); an image the
other way round is a different input and is classified poorly.

Nothing here prints; :mod:`npnet.cli_infer` is the command-line front end
(``npnet eval``, ``npnet predict``).
"""
import os

import numpy as np

from . import _validate as V
from .errors import CheckpointError

__all__ = ["CHECKPOINT_NAME", "IMAGE_SHAPE", "load_model", "load_run", "prepare_images", "topk",
           "confusion_matrix", "read_image"]

CHECKPOINT_NAME = "checkpoint.npz"   # what `npnet train` writes into its --out folder
IMAGE_SHAPE = (28, 28)
PILLOW_HINT = "pip install Pillow (or pip install -e '.[train]')"
# Pillow modes whose conversion to 8-bit grayscale ("L") is unambiguous.
_CONVERTIBLE_MODES = ("1", "P", "RGB", "RGBA", "LA", "RGBX", "CMYK", "YCbCr")


# --------------------------------------------------------------------------- loading

def _checkpoint_file(path):
    path = os.fspath(V.path(path, "path"))
    if os.path.isdir(path):
        inside = os.path.join(path, CHECKPOINT_NAME)
        if not os.path.isfile(inside):
            raise CheckpointError(f"run folder {path} holds no {CHECKPOINT_NAME}; train into it first "
                                  f"(npnet train --out {path}) or pass the checkpoint file itself")
        return inside
    return path


def _index(key):
    """The layer index of a Sequential's parameter name ("11.bias" -> 11), so the last layer sorts last."""
    head = key.split(".", 1)[0]
    return (int(head), key) if head.isdigit() else (-1, key)


def _settings_from_params(ckpt):
    """The build_model settings of a checkpoint without `npnet train` settings, read off its parameter shapes."""
    from .models import build_model

    p = ckpt.params
    shapes = {k: v.shape for k, v in p.items()}
    if set(p) == {"1.weight", "1.bias"} and len(shapes["1.weight"]) == 2:
        out, inp = shapes["1.weight"]
        return dict(model="softmax", hidden=None, dropout=None, in_features=inp, num_classes=out)
    if set(p) == {"1.weight", "1.bias", "3.weight", "3.bias"} and len(shapes["1.weight"]) == 2 \
            and len(shapes["3.weight"]) == 2:
        hidden, inp = shapes["1.weight"]
        return dict(model="mlp", hidden=hidden, dropout=None, in_features=inp, num_classes=shapes["3.weight"][0])
    last = shapes[max(p, key=_index)]   # the last layer's weight: (num_classes, ...)
    for name in ("lenet", "cnn"):   # fixed layouts, but for the cnn's hidden width and the classes
        hidden = shapes.get("9.weight", (None,))[0] if name == "cnn" else None
        try:
            candidate = build_model(name, hidden=hidden, num_classes=last[0], rng=np.random.default_rng(0))
        except (TypeError, ValueError):
            continue
        if {k: v.shape for k, v in candidate.params.items()} == shapes and set(candidate.buffers) == set(ckpt.buffers):
            return dict(model=name, hidden=hidden, dropout=None, num_classes=last[0])
    raise CheckpointError(f"checkpoint {ckpt.path} holds no `npnet train` settings and parameters "
                          f"{sorted(p)} that are not one of build_model's layouts; build the model yourself "
                          "and call npnet.train.load_checkpoint(path).restore(model=model)")


def load_run(path):
    """The model of a run, rebuilt and loaded, and the checkpoint it came from.

    The architecture comes from the settings ``npnet train`` saved in the
    checkpoint's config (model, hidden, dropout, dtype); a checkpoint written
    without them (``fit(..., config=None)``) is read off its parameter shapes
    when they are one of build_model's layouts (softmax, mlp, lenet, cnn).
    BatchNorm's running statistics come back with the parameters, and
    ``model(x)`` normalizes with them.

    Args:
        path: a run folder (holding ``checkpoint.npz``) or a checkpoint file.

    Returns:
        ``(model, checkpoint)``: an ``nn.Sequential`` and the :class:`npnet.train.Checkpoint`.

    Raises:
        CheckpointError: no checkpoint, a corrupt one, or settings that build no model.
    """
    from .checkpoint import load_checkpoint
    from .models import build_model, check_run_settings

    ckpt = load_checkpoint(_checkpoint_file(path))
    settings = check_run_settings(ckpt.config, ckpt.path)   # the words --resume uses for the same checkpoint
    if settings:
        kwargs = dict(model=settings.get("model"), hidden=settings.get("hidden"), dropout=settings.get("dropout"),
                      dtype=settings.get("dtype"))
    else:
        kwargs = _settings_from_params(ckpt)
        kwargs["dtype"] = next(iter(ckpt.params.values())).dtype
    name = kwargs.pop("model")
    if name == "mlp":
        kwargs["hidden"] = kwargs["hidden"] or 256
    elif name != "cnn":   # softmax regression and the LeNet have no hidden width to set
        kwargs["hidden"] = None
    kwargs["dropout"] = kwargs["dropout"] or 0.0
    try:
        # The generators only fill values that restore() then overwrites.
        model = build_model(name, rng=np.random.default_rng(0), dropout_rng=np.random.default_rng(0), **kwargs)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {ckpt.path} holds settings that build no model: {e}") from None
    ckpt.restore(model=model)
    return model, ckpt


def load_model(path):
    """A trained model, ready for ``model(x)``, from a run folder or a checkpoint file.

    ``model(x)`` runs in inference mode (dropout off) and returns logits; the
    images ``x`` must be scaled as in training (see :func:`prepare_images`).

    Args:
        path: str or os.PathLike, a run folder written by ``npnet train --out``
            or its ``checkpoint.npz``.

    Returns:
        ``nn.Sequential`` with the checkpoint's parameters.

    Raises:
        CheckpointError: the folder holds no checkpoint, or it is corrupt or does not fit.

    Example:
        >>> model = npnet.load_model("runs/default")                        # doctest: +SKIP
        >>> x = prepare_images(X_test[:4])      # uint8 (4, 28, 28) -> float32 (4, 1, 28, 28)
        >>> model(x).argmax(axis=1)                                         # doctest: +SKIP
        array([9, 2, 1, 1])
    """
    return load_run(path)[0]


# --------------------------------------------------------------------------- images and outputs

def prepare_images(images, *, dtype=np.float32):
    """Images as the model saw them in training: float in [0, 1], shape (N, 1, H, W).

    uint8 pixels go through the training conversion (:func:`npnet.data.to_float`,
    float32 ``x / 255``, torchvision's ``ToTensor`` values); float images must already
    lie in [0, 1] and are only cast. The result has ``dtype`` (the model's).

    Args:
        images: ndarray (N, H, W) or (N, 1, H, W), uint8 or float32/float64 in [0, 1].
        dtype: np.float32 or np.float64.

    Shape:
        (N, H, W) or (N, 1, H, W) -> (N, 1, H, W).
    """
    from .data import to_float

    dtype = V.float_dtype(dtype)
    if not isinstance(images, np.ndarray) or not (images.dtype == np.uint8 or images.dtype in V.FLOAT_DTYPES):
        raise TypeError(f"images must be a numpy.ndarray of uint8 (0..255) or float32/float64 (0..1), "
                        f"got {V.describe(images)}")
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"images must have shape (N, H, W) or (N, 1, H, W), got {images.shape}")
    if images.dtype == np.uint8:
        return to_float(images).astype(dtype, copy=False)
    if not np.all((images >= 0) & (images <= 1)):   # NaN fails both comparisons
        bad = images[~((images >= 0) & (images <= 1))][0]
        raise ValueError(f"images of dtype {images.dtype} must lie in [0, 1] (uint8 images may use 0..255), "
                         f"got a value {bad}")
    return images.astype(dtype, copy=True)


def topk(logits, k=3):
    """The ``k`` most probable classes of each row and their softmax probabilities, best first.

    Args:
        logits: float ndarray (N, C), what ``model(x)`` returns.
        k: int in 1..C.

    Returns:
        ``(classes, probabilities)``: int64 (N, k) and float (N, k).
    """
    from .nn import functional as F

    logits = V.float_array(logits, "logits")
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (N, C), got {logits.shape}")
    k = V.integer(k, "k", low=1, high=logits.shape[1])
    probs = F.softmax(logits, axis=1)
    classes = np.argsort(-probs, axis=1, kind="stable")[:, :k].astype(np.int64)
    return classes, np.take_along_axis(probs, classes, axis=1)


def confusion_matrix(model, loader, num_classes=10):
    """Counts of (true class, predicted class) over ``loader``, in inference mode.

    Args:
        model: an npnet Module; called as ``model(X)``.
        loader: iterable of ``(X, y)`` batches (e.g. a DataLoader over the test set).
        num_classes: int >= 1.

    Returns:
        int64 (num_classes, num_classes): row = true class, column = predicted
        class; the diagonal holds the correct predictions.
    """
    V.model(model, trained=True)
    num_classes = V.integer(num_classes, "num_classes", low=1)
    counts = np.zeros((num_classes, num_classes), np.int64)
    for X, y in loader:
        y = np.asarray(y)
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"labels must be in 0..{num_classes - 1}, got {int(y.min())}..{int(y.max())}")
        predicted = model(X.astype(model.dtype, copy=False)).argmax(axis=-1)
        np.add.at(counts, (y.astype(np.int64), predicted), 1)
    return counts


# --------------------------------------------------------------------------- reading files

def _from_array(a, name):
    """One (28, 28) image from an array: uint8 as is, other integers in 0..255 as uint8, floats in [0, 1]."""
    if a.dtype == np.bool_ or a.dtype.kind not in "uif":
        raise ValueError(f"{name} holds {a.dtype}; expected uint8 pixels 0..255 or floats in [0, 1]")
    if a.ndim == 3 and 1 in (a.shape[0], a.shape[2]) and a.shape != (1, 1, 1):
        a = a[0] if a.shape[0] == 1 else a[:, :, 0]   # one channel, first or last: unambiguous
    if a.shape != IMAGE_SHAPE:
        raise ValueError(f"{name} has shape {a.shape}; expected one 28x28 grayscale image: (28, 28), "
                         "(1, 28, 28) or (28, 28, 1) (npnet does not resize or crop)")
    if a.dtype.kind in "iu" and a.dtype != np.uint8:
        if a.min() < 0 or a.max() > 255:
            raise ValueError(f"{name} holds integers in {a.min()}..{a.max()}; expected pixels 0..255")
        a = a.astype(np.uint8)
    if a.dtype.kind == "f":
        ok = (a >= 0) & (a <= 1)
        if not np.all(ok):
            raise ValueError(f"{name} holds {a.dtype} values outside [0, 1] (e.g. {a[~ok][0]}); float images must "
                             "be scaled to [0, 1] (uint8 images may use 0..255)")
        a = a.astype(np.float64 if a.dtype == np.float64 else np.float32)
    return np.ascontiguousarray(a)


def _read_with_pillow(path, name, notes):
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise ImportError(f"reading {name} needs Pillow, which is not installed: {PILLOW_HINT}") from None
    try:
        with Image.open(path) as img:
            img.load()
            mode, size = img.mode, img.size
            if mode != "L":
                if mode not in _CONVERTIBLE_MODES:
                    raise ValueError(f"{name} is a {mode} image; expected 8-bit grayscale or colour "
                                     "(save it as an 8-bit PNG)")
                notes.append(f"{name}: {mode} image converted to grayscale"
                             + (" (transparency ignored)" if "A" in mode else ""))
                img = img.convert("L")
            if size != IMAGE_SHAPE[::-1]:
                raise ValueError(f"{name} is {size[0]}x{size[1]} pixels; the model takes 28x28 images "
                                 "(npnet does not resize or crop: which part to keep is your choice)")
            return np.asarray(img, dtype=np.uint8).copy()
    except UnidentifiedImageError:
        raise ValueError(f"{name} is neither an image Pillow can read (PNG, JPEG...) nor a .npy array") from None


def read_image(path):
    """One 28x28 grayscale image from a PNG/JPEG file (through Pillow) or a ``.npy`` array.

    Accepted as is: 8-bit grayscale images; ``.npy`` arrays of shape (28, 28),
    (1, 28, 28) or (28, 28, 1) holding uint8 0..255 (other integer dtypes with
    values in 0..255 too) or floats in [0, 1]. Colour (RGB, RGBA, palette...)
    images are converted to grayscale (Pillow's ``convert("L")``, alpha
    ignored). Refused: any other size (npnet does not resize or crop), floats
    outside [0, 1], more than one image.

    Returns:
        ``(image, notes)``: a (28, 28) uint8 or float array, and a list of
        one-line notes (a conversion made, a light background).

    Raises:
        ValueError: the file is not an acceptable image; the message names it.
        ImportError: a PNG/JPEG file and no Pillow; the message says how to install it.
    """
    path = V.path(path, "path")
    name = os.fspath(path)
    notes = []
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except OSError as e:
        raise ValueError(f"cannot read {name}: {e.strerror or e}") from None
    if head == b"\x93NUMPY":
        try:
            a = np.load(path, allow_pickle=False)
        except Exception as e:   # noqa: BLE001 - a damaged .npy fails in many ways
            raise ValueError(f"{name} is not a readable .npy array ({type(e).__name__}: {e})") from None
        image = _from_array(a, name)
    else:
        image = _read_with_pillow(path, name, notes)
    border = np.concatenate([image[:2].ravel(), image[-2:].ravel(), image[:, :2].ravel(), image[:, -2:].ravel()])
    if border.mean() / (255 if image.dtype == np.uint8 else 1) > 0.5:
        notes.append(f"{name}: the background looks light; Fashion-MNIST items are light on a dark background, "
                     "so invert it (255 - x) if the predictions look wrong")
    return image, notes
