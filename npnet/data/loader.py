"""Batches and folds: the one uint8 -> float conversion, DataLoader, k-fold."""
import numpy as np

from .. import _validate
from .fashion_mnist import load_fashion_mnist

__all__ = ["to_float", "DataLoader", "load_data_fashion_mnist", "kfold", "get_k_fold_data"]


def to_float(images):
    """uint8 images to float32 in [0, 1]: ``images / 255``, as torchvision's ``ToTensor``.

    One float32 division per pixel, correctly rounded (not a multiplication by
    ``1/255``, which differs in the last bit for some pixel values). A stack of
    single-channel images ``(N, H, W)`` gains the channel axis; any other shape
    is kept. This is the conversion every npnet path uses (:class:`DataLoader`,
    the studies, ``npnet train``), so the same pixels always give the same floats.

    Args:
        images: uint8 ndarray (N, H, W) or (N, ...); never modified.

    Returns:
        A fresh float32 ndarray.

    Shape:
        (N, H, W) -> (N, 1, H, W); (N, ...) of any other rank -> (N, ...).

    Example:
        >>> to_float(np.array([[[0, 51, 255]]], dtype=np.uint8))
        array([[[[0. , 0.2, 1. ]]]], dtype=float32)
    """
    _validate.ndarray(images, "images", sample_axis=True)
    if images.dtype != np.uint8:
        raise TypeError(f"images must have dtype uint8 (pixel values 0..255), got {images.dtype}")
    return _to_float(images)


_255 = np.float32(255)


def _to_float(images):
    """:func:`to_float` on images already checked (the DataLoader checked its X once)."""
    shape = images.shape[:1] + (1,) + images.shape[1:] if images.ndim == 3 else images.shape
    out = np.empty(shape, dtype=np.float32)
    np.divide(images.reshape(shape), _255, out=out, dtype=np.float32)
    return out


class DataLoader:
    """Iterate over ``(X, y)`` in mini-batches, one epoch per ``iter()``.

    uint8 images stay uint8 in memory and are converted per batch by
    :func:`to_float` to float32 in [0, 1], ``x / 255`` exactly as torchvision's
    ``ToTensor``; an ``(N, H, W)`` uint8 array gains a channel axis. float32/float64 ``X`` is
    batched as is. Integer labels come out as int64; float targets as they are.
    Every batch is a fresh array that the caller may keep or modify; the loader
    never writes to ``X`` or ``y`` (but sees later changes the caller makes).

    With ``shuffle``, each ``iter()`` draws a new permutation from ``rng``, so
    every sample appears exactly once per epoch, in a new order each epoch, and
    the same seed gives the same sequence of epochs.

    Args:
        X: ndarray (N, ...) of uint8, float32 or float64.
        y: ndarray (N, ...) of integers or floats.
        batch_size: positive int.
        shuffle: bool, a new order each epoch.
        rng: numpy.random.Generator or None (a fresh unseeded one when shuffling).
        drop_last: bool, skip the last batch when it is smaller than batch_size.

    Shape:
        uint8 X (N, H, W) -> (B, 1, H, W) float32; other uint8 X (N, ...) -> (B, ...) float32;
        float X (N, ...) -> (B, ...) same dtype; integer y (N,) -> (B,) int64.

    Example:
        >>> loader = DataLoader(X_train, y_train, 256, shuffle=True, rng=np.random.default_rng(0))
        >>> Xb, yb = next(iter(loader))
        >>> Xb.shape, Xb.dtype, yb.dtype, len(loader)
        ((256, 1, 28, 28), dtype('float32'), dtype('int64'), 235)
    """

    def __init__(self, X, y, batch_size, *, shuffle=False, rng=None, drop_last=False):
        _validate.ndarray(X, "X")
        if X.dtype != np.uint8 and X.dtype not in _validate.FLOAT_DTYPES:
            raise TypeError(f"X must have dtype uint8 (images) or float32/float64, got {X.dtype}")
        _validate.ndarray(X, "X", sample_axis=True)
        _validate.ndarray(y, "y")
        if y.dtype == np.bool_ or not (np.issubdtype(y.dtype, np.integer) or y.dtype in _validate.FLOAT_DTYPES):
            raise TypeError(f"y must hold integer labels or float32/float64 targets, got dtype {y.dtype}")
        if y.ndim < 1 or y.shape[0] != X.shape[0]:
            raise ValueError(f"y must have one entry per sample of X ({X.shape[0]}), got shape {y.shape}")
        self.batch_size = _validate.integer(batch_size, "batch_size", low=1)
        self.shuffle = _validate.flag(shuffle, "shuffle")
        self.drop_last = _validate.flag(drop_last, "drop_last")
        if rng is not None and not shuffle:
            _validate.generator(rng)  # still reject a wrong type early
        self.rng = _validate.generator(rng) if shuffle else rng
        self.X, self.y = X, y

    @property
    def dataset_size(self):
        """Number of samples N."""
        return self.X.shape[0]

    def __len__(self):
        n, b = self.dataset_size, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self):
        # Draw the permutation now, not at the first next(): iter() is the epoch.
        order = self.rng.permutation(self.dataset_size) if self.shuffle else None
        return self._batches(order)

    def _batches(self, order):
        X, y, b, n = self.X, self.y, self.batch_size, self.dataset_size
        images = X.dtype == np.uint8
        y_dtype = np.int64 if np.issubdtype(y.dtype, np.integer) else y.dtype
        # sized by what a batch can hold: batch_size may be far larger than the data set
        staging = (np.empty((min(b, n),) + X.shape[1:], dtype=np.uint8)
                   if images and order is not None else None)
        for start in range(0, len(self) * b, b):
            stop = min(start + b, n)
            if order is None:
                xb = X[start:stop]  # a view; the conversion below copies
                yb = y[start:stop].astype(y_dtype, copy=True)
            else:
                idx = order[start:stop]
                yb = y[idx]         # fancy indexing copies
                if yb.dtype != y_dtype:
                    yb = yb.astype(y_dtype)
                # the gather lands in one reused uint8 buffer; only the float batch is new
                xb = np.take(X, idx, axis=0, out=staging[:stop - start]) if images else X[idx]
            if images:
                xb = _to_float(xb)
            elif order is None:
                xb = xb.copy()
            yield xb, yb


def load_data_fashion_mnist(batch_size, root=None, *, rng=None, download=True):
    """Fashion-MNIST as the course's pair of iterators.

    Args:
        batch_size: positive int.
        root: passed to :func:`load_fashion_mnist`.
        rng: numpy.random.Generator or None, shuffles the training set.
        download: passed to :func:`load_fashion_mnist`.

    Returns:
        ``(train_iter, test_iter)``: :class:`DataLoader` s yielding
        (B, 1, 28, 28) float32 in [0, 1] and (B,) int64; train shuffled each
        epoch, test in file order.

    Example:
        >>> train_iter, test_iter = load_data_fashion_mnist(256, rng=np.random.default_rng(0))
        >>> len(train_iter), len(test_iter)
        (235, 40)
    """
    batch_size = _validate.integer(batch_size, "batch_size", low=1)
    rng = _validate.generator(rng)
    X_train, y_train, X_test, y_test = load_fashion_mnist(root, download=download)
    return (DataLoader(X_train, y_train, batch_size, shuffle=True, rng=rng),
            DataLoader(X_test, y_test, batch_size, shuffle=False))


# --------------------------------------------------------------------------- #
# 5. K-fold cross-validation
# --------------------------------------------------------------------------- #

def kfold(n, k, *, shuffle=False, rng=None):
    """Split ``range(n)`` into k folds; yield ``(train_idx, val_idx)`` for each.

    Like scikit-learn's ``KFold``: the folds partition ``range(n)``, the first
    ``n % k`` folds hold one sample more than the others, ``val_idx`` is the fold
    and ``train_idx`` everything else in ascending order. With ``shuffle`` the
    samples are permuted once (drawn when ``kfold`` is called) before splitting.

    Args:
        n: int, number of samples, n >= k.
        k: int >= 2, number of folds.
        shuffle: bool.
        rng: numpy.random.Generator or None (fresh one when shuffling).

    Returns:
        iterator of k pairs of int64 index arrays.

    Example:
        >>> [v.tolist() for _, v in kfold(5, 2)]
        [[0, 1, 2], [3, 4]]
    """
    k = _validate.integer(k, "k", low=2)
    n = _validate.integer(n, "n", low=0)
    if n < k:
        raise ValueError(f"n must be at least k={k} so that no fold is empty, got n={n}")
    if _validate.flag(shuffle, "shuffle"):
        indices = _validate.generator(rng).permutation(n).astype(np.int64)
    else:
        if rng is not None:
            _validate.generator(rng)
        indices = np.arange(n, dtype=np.int64)
    sizes = np.full(k, n // k, dtype=np.int64)
    sizes[: n % k] += 1
    bounds = np.concatenate(([0], np.cumsum(sizes)))

    def folds():
        for j in range(k):
            val = indices[bounds[j]:bounds[j + 1]].copy()
            mask = np.ones(n, dtype=bool)
            mask[val] = False
            yield np.flatnonzero(mask).astype(np.int64), val

    return folds()


def get_k_fold_data(k, i, X, y):
    """The i-th of k folds, exactly as the course (d2l) defines it.

    ``fold_size = n // k``; fold j is ``X[j*fold_size:(j+1)*fold_size]``; fold i
    is the validation set and the others, concatenated in order, the training
    set. The last ``n % k`` samples belong to no fold and are dropped. Use
    :func:`kfold` for folds that cover every sample.

    Args:
        k: int >= 2, number of folds.
        i: int in [0, k), the validation fold.
        X: ndarray (n, ...), n >= k.
        y: ndarray (n, ...).

    Returns:
        ``(X_train, y_train, X_valid, y_valid)``, fresh arrays:
        X_train ((k-1)*fold_size, ...), X_valid (fold_size, ...).

    Example:
        >>> X = np.arange(10.0).reshape(5, 2); y = np.arange(5.0)
        >>> get_k_fold_data(2, 0, X, y)[3]
        array([0., 1.])
    """
    k = _validate.integer(k, "k", low=2)
    i = _validate.integer(i, "i", low=0, high=k - 1)
    _validate.ndarray(X, "X", sample_axis=True)
    _validate.ndarray(y, "y", sample_axis=True)
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"y must have one entry per sample of X ({X.shape[0]}), got shape {y.shape}")
    n = X.shape[0]
    if n < k:
        raise ValueError(f"X must have at least k={k} samples so that no fold is empty, got {n}")
    fold_size = n // k
    parts = [slice(j * fold_size, (j + 1) * fold_size) for j in range(k) if j != i]
    X_train = np.concatenate([X[s] for s in parts], axis=0)
    y_train = np.concatenate([y[s] for s in parts], axis=0)
    valid = slice(i * fold_size, (i + 1) * fold_size)
    return X_train, y_train, X[valid].copy(), y[valid].copy()
