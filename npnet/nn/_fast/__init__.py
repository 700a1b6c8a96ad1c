"""Fast twins of the plain kernels in ``functional/``: same signatures, same values.

Everything here exists only for speed. Each function has a plain twin of the very
same name and signature in :mod:`npnet.nn.functional`, and ``tests/test_fast.py``
proves the two agree (exactly where the arithmetic is the same, to a few ulps
where only the summation order differs). ``NPNET_KERNELS=plain`` switches every
one of them off. What each trick buys is measured by ``python -m benchmarks.kernels``.
The twins of a family of layers (convolutions, pooling, normalization) sit in a file
of their own in this package and are imported here, so a kernel finds its twin by
name in ``npnet.nn._fast``.

The tricks:

- row blocks (:func:`_by_row_blocks`): a row-wise kernel (softmax and friends) runs
  over blocks of rows of about 256 KB, so that a block stays in a core's L2 cache
  through all its passes (max, subtract, exp, sum, divide);
- the row maximum of short rows from a transposed copy (:func:`_max`) and row sums
  as a BLAS matrix-vector product (:func:`_sum`);
- in-place arithmetic on fresh buffers instead of temporaries (``linear``, ``sigmoid``);
- ReLU's backward as a bit mask (:func:`relu_backward`), no per-element branch;
- a second core (:mod:`.parallel`): the activations split large arrays into flat
  blocks, the pools into blocks of planes, and share the blocks among the threads
  (``npnet.set_num_threads``), with the same bits for every number of threads;
- a fused cross-entropy that keeps ``exp(z)`` and its row sums from the forward pass
  for the backward (:func:`cross_entropy_with_backward`).

Arguments arrive checked (by the public kernel or by a module): nothing is re-checked.
"""
import numpy as np

from .._rows import class_axis, classes_back, classes_last, reduce_rows
from . import parallel

# --------------------------------------------------------------------------- Linear


def linear(X, W, b=None):
    Y = X @ W.T
    if b is not None:
        Y += b  # Y is a fresh array, so adding in place touches nothing of the caller's
    return Y


# ----------------------------------------------------------------------- activations
#
# Each activation's arithmetic is one block function ``_<name>(*inputs, out)``, run by
# _elementwise: on the whole array, or for C-contiguous arrays over _FLAT_BLOCK_BYTES
# by flat blocks of that size shared among the threads (parallel.run). Same values
# either way and for every thread count: every element goes through the same ufuncs.

def relu(X):
    return _elementwise(_relu, X)


def _relu(X, out):
    np.maximum(X, 0, out=out)


def relu_backward(dY, X):
    return _elementwise(_relu_backward, dY, X)


def _relu_backward(dY, X, out):
    # np.where(X > 0, dY, 0) runs ~10x slower on a random mask (a branch per
    # element). Here every bit of dY is kept where X > 0 (an all-ones integer mask)
    # and cleared elsewhere: exactly +0.0 there, also where dY is inf or nan.
    ints = _SAME_SIZE_INT[dY.dtype]
    # Widen first, then negate in place: np.negative(..., dtype=ints) would cast
    # inside the ufunc loop, 10x slower (201 us against 21 us at (256, 256)).
    bits = np.asarray(X > 0).view(np.int8).astype(ints)   # asarray: X > 0 is a scalar for 0-d X
    np.negative(bits, out=bits)                           # True -> -1 (all bits set), False -> 0
    np.bitwise_and(dY.view(ints), bits, out=out.view(ints))


_SAME_SIZE_INT = {np.dtype(np.float32): np.int32, np.dtype(np.float64): np.int64}


def sigmoid(X):
    return _elementwise(_sigmoid, X)


def _sigmoid(X, out):
    np.negative(X, out=out)
    with np.errstate(over="ignore"):   # exp(-X) = inf below about -88.7: 1 / inf = 0, as torch
        np.exp(out, out=out)
    out += 1
    np.reciprocal(out, out=out)


def sigmoid_backward(dY, Y):
    return _elementwise(_sigmoid_backward, dY, Y)


def _sigmoid_backward(dY, Y, out):
    np.multiply(dY, Y, out=out)        # (dY Y)(1 - Y), in the plain kernel's order
    out *= np.subtract(1, Y)


def tanh(X):
    return _elementwise(_tanh, X)


def _tanh(X, out):
    np.tanh(X, out=out)


def tanh_backward(dY, Y):
    return _elementwise(_tanh_backward, dY, Y)


def _tanh_backward(dY, Y, out):
    np.multiply(Y, Y, out=out)         # dY (1 - Y^2), in the plain kernel's order
    np.subtract(1, out, out=out)
    np.multiply(dY, out, out=out)


def _elementwise(block, *arrays):
    """A fresh array shaped and typed like ``arrays[0]`` (all of one shape and dtype),
    filled by ``block(*arrays, out)``: at once, or over flat blocks of _FLAT_BLOCK_BYTES
    shared among the threads when the arrays are C-contiguous and larger than one block."""
    A = arrays[0]
    out = np.empty(A.shape, A.dtype)   # an array even for 0-d input, so out= works
    if A.nbytes <= _FLAT_BLOCK_BYTES or not all(a.flags.c_contiguous for a in arrays):
        block(*arrays, out)
        return out
    flat, flat_out = [a.reshape(-1) for a in arrays], out.reshape(-1)
    step = _FLAT_BLOCK_BYTES // A.itemsize
    parallel.run(lambda i: block(*(a[i:i + step] for a in flat), flat_out[i:i + step]), range(0, A.size, step))
    return out


# Flat blocks of this many bytes for the activations. Forward + backward at
# (256, 16, 28, 28) float32, other processes idle, 1 -> 2 threads: ReLU 9.5 -> 5.4 ms,
# Sigmoid 15.0 -> 7.3 ms, Tanh 8.3 -> 4.3 ms; Sigmoid on 2 threads with blocks of
# 256 KB / 1 MB / 4 MB: 9.0 / 8.8 / 10.6 ms.
_FLAT_BLOCK_BYTES = 1 << 20


# ------------------------------------------------------------ softmax and log-softmax

def softmax(X, axis=-1):
    if X.ndim and X.shape[axis] == 0:
        return X.copy()  # nothing to normalize (np.max would refuse the empty axis)
    with np.errstate(invalid="ignore"):   # inf - inf = nan where a row's max is infinite, as torch
        return _by_row_blocks(_softmax, axis, X)


def _softmax(X, axis, out):
    E = np.subtract(X, _max(X, axis), out=out)
    np.exp(E, out=E)
    E /= _sum(E, axis)


def softmax_backward(dY, Y, axis=-1):
    return _by_row_blocks(_softmax_backward, axis, dY, Y)


def _softmax_backward(dY, Y, axis, out):
    dX = np.multiply(dY, Y, out=out)
    s = _sum(dX, axis)                 # sum(dY * Y) per row
    np.subtract(dY, s, out=dX)
    dX *= Y


def log_softmax(X, axis=-1):
    if X.ndim and X.shape[axis] == 0:
        return X.copy()
    with np.errstate(invalid="ignore"):   # inf - inf = nan where a row's max is infinite, as torch
        return _by_row_blocks(_log_softmax, axis, X)


def _log_softmax(X, axis, out):
    Z = np.subtract(X, _max(X, axis), out=out)
    Z -= np.log(_sum(np.exp(Z), axis))


def log_softmax_backward(dY, Y, axis=-1):
    return _by_row_blocks(_log_softmax_backward, axis, dY, Y)


def _log_softmax_backward(dY, Y, axis, out):
    dX = np.exp(Y, out=out)
    dX *= _sum(dY, axis)
    np.subtract(dY, dX, out=dX)


# Work on rows in blocks of about this many bytes, so that a block and its
# temporaries stay in a core's L2 cache between the passes of a kernel (max,
# subtract, exp, sum, divide): at (4096, 1000) float32 each pass over the whole
# 16 MB array would otherwise go out to L3 or memory and back.
_BLOCK_BYTES = 1 << 18


def _row_blocks(rows, row_bytes):
    """(start, stop) of consecutive blocks of ``rows`` rows, each about _BLOCK_BYTES."""
    step = max(1, _BLOCK_BYTES // max(1, row_bytes))
    return [(i, min(i + step, rows)) for i in range(0, rows, step)]


def _by_row_blocks(kernel, axis, *arrays):
    """A fresh array shaped like ``arrays[0]``, filled by ``kernel(*arrays, axis, out)``.

    A row-wise kernel on a 2-D array (``axis`` the last) runs block by block of
    rows, each block's rows independent of the others; anything else runs on the
    whole array at once. Same values either way.
    """
    A = arrays[0]
    if A.ndim == 0:   # one row of one class, as torch sees a 0-d input
        return _by_row_blocks(kernel, 0, *(a.reshape(1) for a in arrays)).reshape(())
    out = np.empty(A.shape, A.dtype)
    if A.ndim != 2 or axis not in (1, -1) or A.nbytes <= _BLOCK_BYTES:
        kernel(*arrays, axis, out)      # one block: no slicing (5 us of a 25 us softmax at (256, 10))
        return out
    for i, j in _row_blocks(A.shape[0], A.shape[1] * A.itemsize):
        kernel(*(a[i:j] for a in arrays), axis, out[i:j])
    return out


def _max(X, axis):
    """``X.max(axis, keepdims=True)``, fast for the short rows of a classifier's logits.

    NumPy reduces a short contiguous row (10 classes) one row at a time, about
    4x slower than reducing the transposed copy down its columns, where every
    SIMD lane works on a different row. The maximum is exact either way.
    """
    if X.ndim == 2 and axis in (1, -1) and X.shape[1] <= _SHORT_ROW < X.shape[0]:
        return np.ascontiguousarray(X.T).max(axis=0)[:, None]
    return X.max(axis=axis, keepdims=True)


_SHORT_ROW = 32   # rows at most this long take the transposed route in _max


def _sum(X, axis):
    """``X.sum(axis, keepdims=True)``; over the last axis of a 2-D array as the
    matrix-vector product ``X @ ones`` (BLAS: 1.7 us against NumPy's 6.5 us at
    (256, 10), 0.22 ms against 0.77 ms at (4096, 1000)). The summation order
    differs from NumPy's pairwise sum, within the same rounding bound."""
    if X.ndim == 2 and axis in (1, -1) and X.shape[1] > 0:
        return (X @ np.ones(X.shape[1], X.dtype))[:, None]
    return X.sum(axis=axis, keepdims=True)


# --------------------------------------------------------------------------- losses

def cross_entropy_with_backward(logits, target, *, weight=None, ignore_index=-100, reduction="mean",
                                label_smoothing=0.0):
    # Fused for the common case (class indices, no weights, no smoothing):
    # loss_i = log(sum_c exp(z_ic)) - z_i,t_i with z = x - max(x), and the
    # exponentials E and their row sums s are kept, since softmax = E / s.
    R = classes_last(logits, class_axis(logits.shape))
    M, C = R.shape
    t = target.reshape(-1).astype(np.int64, copy=False)
    all_kept = _all_kept(t, ignore_index, C)
    keep = None if all_kept else t != ignore_index
    if not all_kept:
        t = np.where(keep, t, 0)   # an index that can index (the row's loss is 0 anyway)
    with np.errstate(invalid="ignore"):   # inf - inf = nan where a row's max is infinite, as torch
        by_class = C <= _SHORT_ROW < M
        if by_class:
            E, z_t, s, flat_t = _shifted_exp_by_class(R, t)
        else:
            E, z_t, s, flat_t = _shifted_exp_by_row(R, t)
    per_row = np.log(s)
    per_row -= z_t
    if not all_kept:
        per_row[~keep] = 0
    count = R.dtype.type(M if all_kept else keep.sum())
    batch_shape = target.shape
    loss = reduce_rows(per_row, count, reduction, batch_shape)

    def backward(dloss):
        # scale * (softmax - onehot), with scale = d(reduced loss) / d(row loss) * dloss
        with np.errstate(invalid="ignore", divide="ignore"):   # 0 / 0 when every row is ignored; inf * 0
            if reduction == "none":
                scale = dloss.reshape(-1)
            else:
                scale = dloss if reduction == "sum" else (dloss / count).astype(R.dtype, copy=False)
                if not all_kept:
                    scale = np.broadcast_to(scale, (M,))
            if not all_kept:
                scale = np.where(keep, scale, R.dtype.type(0))   # an ignored row gets exactly 0, as torch
            if by_class:                         # E is (C, M) (see _shifted_exp_by_class): scale runs along its rows
                G = E * (scale / s)              # scale * softmax, (C, M)
                G.reshape(-1)[flat_t] -= scale   # ... - scale * onehot
                G = G.T                          # (M, C), a transposed view: no copy
            else:
                G = E * (scale / s)[:, None]
                G.reshape(-1)[flat_t] -= scale
        return classes_back(G, logits.shape)

    return loss, backward


def _all_kept(t, ignore_index, C):
    """Whether no (checked) target equals ``ignore_index``: every target is a class in
    [0, C) or ignore_index, so one reduction answers when ignore_index is not a class."""
    if not t.size:
        return True
    if ignore_index < 0:
        return bool(t.min() >= 0)
    if ignore_index >= C:
        return bool(t.max() < C)
    return not bool((t == ignore_index).any())


def _shifted_exp_by_row(R, t):
    """For rows ``R`` (M, C): ``E = exp(z)`` with ``z = R - max(R)`` per row, ``z[i, t_i]``,
    the row sums of ``E``, and the flat indices of the targets in ``E``."""
    M, C = R.shape
    # Z[i, t_i] is gathered from the flat array with one index (a third of the
    # time of Z[arange, t] at (256, 10)). Blocks of rows keep each block in
    # cache from the subtraction through the exponential to the sum.
    flat_t = np.arange(0, M * C, C) + t
    E = np.empty((M, C), R.dtype)
    if E.nbytes <= _BLOCK_BYTES:
        z_t, s = _shifted_exp(R, E, flat_t)
    else:
        z_t, s = np.empty(M, R.dtype), np.empty(M, R.dtype)
        for i, j in _row_blocks(M, C * E.itemsize):
            z_t[i:j], s[i:j] = _shifted_exp(R[i:j], E[i:j], flat_t[i:j] - i * C)
    return E, z_t, s, flat_t


def _shifted_exp_by_class(R, t):
    """:func:`_shifted_exp_by_row` for short rows (a classifier's 10 logits per sample),
    computed on the transposed copy ``E`` (C, M): a class per row, every sample along
    it. Each step (the max over classes, the subtraction, the sum, and in the backward
    the scaling by 1 / s) then runs down long contiguous rows with every SIMD lane on
    a different sample, where NumPy would take the (M, C) rows one short row at a time;
    and it takes fewer NumPy calls (the max needs no copy of its own)."""
    M, C = R.shape
    E = np.array(R.T, order="C")          # (C, M)
    E -= E.max(axis=0)                     # z = x - max over the classes (exact)
    flat_t = t * M                         # z[t_i, i] sits at t_i * M + i of the flat (C, M) array
    flat_t += np.arange(M)
    z_t = E.reshape(-1).take(flat_t)
    np.exp(E, out=E)
    return E, z_t, E.sum(axis=0), flat_t


def _fused(logits, target, *, weight=None, label_smoothing=0.0, **_):
    """The fused path covers class indices with no weights and no smoothing, over at
    least one class; every other call runs the plain kernel (see ``_kernels._when``)."""
    return (target.dtype.kind != "f" and weight is None and not label_smoothing
            and logits.shape[class_axis(logits.shape)] > 0)


cross_entropy_with_backward.handles = _fused


def cross_entropy(logits, target, *, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    return cross_entropy_with_backward(logits, target, weight=weight, ignore_index=ignore_index,
                                       reduction=reduction, label_smoothing=label_smoothing)[0]


def cross_entropy_backward(dloss, logits, target, *, weight=None, ignore_index=-100, reduction="mean",
                           label_smoothing=0.0, log_probs=None):
    _, backward = cross_entropy_with_backward(logits, target, weight=weight, ignore_index=ignore_index,
                                              reduction=reduction, label_smoothing=label_smoothing)
    return backward(dloss)


cross_entropy.handles = _fused
cross_entropy_backward.handles = (   # and only when the caller kept no log-probabilities: nothing to fuse then
    lambda dloss, logits, target, *, log_probs=None, **kw: log_probs is None and _fused(logits, target, **kw))


def _shifted_exp(R, out, flat_t):
    """For rows ``R`` (m, C): ``out = exp(z)`` with ``z = R - max(R)`` per row; returns
    ``z[i, t_i]`` (``flat_t`` indexes the flattened rows) and the row sums of ``out``."""
    Z = np.subtract(R, _max(R, 1), out=out)
    z_t = Z.reshape(-1).take(flat_t)
    np.exp(Z, out=Z)
    return z_t, _sum(Z, 1)[:, 0]
from .normalization import batch_norm_with_backward  # noqa: E402,F401  (normalization)
from .normalization import layer_norm, layer_norm_backward  # noqa: E402,F401  (LayerNorm)
from .pooling import (  # noqa: E402,F401  (pooling's twins)
    avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward, max_pool2d_with_backward)
from .conv import conv2d, conv2d_backward, conv2d_with_backward  # noqa: E402,F401  (Conv2d's twins)
