"""Pure forward and backward kernels: the math of every npnet layer and loss.

Each forward kernel ``f(X, ...)`` has its backward ``f_backward(dY, ...)`` right
below it. Kernels never modify their inputs, keep the input's float dtype
(float32 in, float32 out) and touch no global state. Shapes use torch's
conventions: a batch axis first, classes on axis 1 for losses.

Names: ``X`` is an input, ``Y`` an output, ``dY`` the gradient of a scalar
objective with respect to ``Y`` (the upstream gradient) and ``dX`` the gradient
with respect to ``X``.

Example::

    >>> import numpy as np, npnet.nn.functional as F
    >>> X = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    >>> F.softmax(X).round(4)
    array([[0.09  , 0.2447, 0.6652]], dtype=float32)
"""
import math

import numpy as np

from .. import _validate as V

__all__ = [
    "linear", "linear_backward",
    "relu", "relu_backward", "leaky_relu", "leaky_relu_backward",
    "sigmoid", "sigmoid_backward", "tanh", "tanh_backward",
    "softmax", "softmax_backward", "log_softmax", "log_softmax_backward",
    "dropout_mask", "dropout", "dropout_backward",
    "cross_entropy", "cross_entropy_backward", "nll_loss", "nll_loss_backward",
    "mse_loss", "mse_loss_backward",
]


# --------------------------------------------------------------------------- Linear

def linear(X, W, b=None):
    """Affine map ``Y = X W^T + b`` over any leading dims, as ``torch.nn.functional.linear``.

    Args:
        X: input, shape (*, in_features).
        W: weight, shape (out_features, in_features) (torch's layout).
        b: optional bias, shape (out_features,).

    Shape:
        Y: (*, out_features), the dtype of X.
    """
    X = V.float_array(X, "input", min_ndim=1)
    W = V.float_array(W, "weight", min_ndim=2)
    if W.ndim != 2:
        raise ValueError(f"weight must be 2-D (out_features, in_features), got shape {W.shape}")
    if X.shape[-1] != W.shape[1]:
        raise ValueError(
            f"linear: input has {X.shape[-1]} features on its last axis but weight expects "
            f"{W.shape[1]}: input shape {X.shape}, weight shape {W.shape}"
        )
    V.same_dtype(W, "weight", X.dtype)
    if b is not None:
        V.float_array(b, "bias")
        V.same_shape(b, "bias", (W.shape[0],))
        V.same_dtype(b, "bias", X.dtype)
    return _affine(X, W, b)


def _affine(X, W, b):
    """``X W^T + b`` on arguments already checked (nn.Linear checks them once)."""
    Y = X @ W.T
    if b is not None:
        Y += b  # Y is a fresh array, so adding in place touches nothing of the caller's
    return Y


def linear_backward(dY, X, W, *, need_dX=True, need_db=True):
    """Gradients of ``Y = X W^T + b``.

    dX = dY W,   dW = dY^T X (summed over every leading dim),   db = sum of dY over leading dims.

    Args:
        dY: upstream gradient, shape (*, out_features).
        X: the forward input, shape (*, in_features).
        W: the weight, shape (out_features, in_features).
        need_dX: compute dX; the first layer of a network does not need it.
        need_db: compute db (False for a layer without bias).

    Returns:
        ``(dX, dW, db)``; ``dX`` is None when not needed, ``db`` None when not needed.
    """
    dY, X, W = _check_linear_backward(dY, X, W, need_dX, need_db)
    dY2 = dY.reshape(-1, dY.shape[-1])
    X2 = X.reshape(-1, X.shape[-1])
    dW = dY2.T @ X2
    db = dY2.sum(axis=0) if need_db else None
    dX = dY @ W if need_dX else None
    return dX, dW, db


def _check_linear_backward(dY, X, W, need_dX, need_db):
    X = V.float_array(X, "X", min_ndim=1)
    W = V.float_array(W, "W")
    if W.ndim != 2:
        raise ValueError(f"W must be 2-D (out_features, in_features), got shape {W.shape}")
    if X.shape[-1] != W.shape[1]:
        raise ValueError(f"X has {X.shape[-1]} features on its last axis but W expects {W.shape[1]}: "
                         f"X shape {X.shape}, W shape {W.shape}")
    dY = V.float_array(dY, "dY")
    expected = X.shape[:-1] + W.shape[:1]
    if dY.shape != expected:
        raise ValueError(f"dY must have shape {expected} (X's leading dims, W's out_features), got {dY.shape}")
    if dY.dtype != X.dtype:
        raise TypeError(f"dY must have dtype {X.dtype} to match X, got {dY.dtype}")
    if W.dtype != X.dtype:
        raise TypeError(f"W must have dtype {X.dtype} to match X, got {W.dtype}")
    V.flag(need_dX, "need_dX")
    V.flag(need_db, "need_db")
    return dY, X, W


# ----------------------------------------------------------------------- activations

def relu(X):
    """``max(X, 0)`` elementwise."""
    X = V.float_array(X, "input")
    return np.maximum(X, 0, dtype=X.dtype)


def relu_backward(dY, X):
    """dX = dY where X > 0, else 0. The gradient at exactly 0 is 0, as in torch.

    ``np.where`` would say the same but runs ~10x slower on a random mask (a
    branch per element), and ``dY * (X > 0)`` turns an inf or nan in dY into nan
    where torch gives 0. So the zeros are made by clearing bits: every bit of
    dY is kept where X > 0 (an all-ones integer mask) and cleared elsewhere.

    ``X`` may be the forward output ``relu(X)`` instead, with the same result:
    it is > 0 exactly where X is (a NaN stays NaN). ``nn.ReLU`` passes its output.
    """
    X = V.float_array(X, "X")
    dY = V.like(dY, "dY", X, "X")
    return _keep_where(dY, X > 0)


def _keep_where(A, keep):
    """``A`` where ``keep`` is True, exactly +0.0 elsewhere (also where A is inf or nan)."""
    ints = _SAME_SIZE_INT[A.dtype]
    # Widen first, then negate in place: np.negative(..., dtype=ints) would cast
    # inside the ufunc loop, 10x slower (201 us against 21 us at (256, 256)).
    bits = np.asarray(keep).view(np.int8).astype(ints)   # asarray: X > 0 is a scalar for 0-d X
    np.negative(bits, out=bits)                      # True -> -1 (all bits set), False -> 0
    src = A if A.flags.c_contiguous else np.array(A, order="C")   # (ascontiguousarray makes 0-d 1-d)
    np.bitwise_and(src.view(ints), bits, out=bits)
    return bits.view(A.dtype)


_SAME_SIZE_INT = {np.dtype(np.float32): np.int32, np.dtype(np.float64): np.int64}


def leaky_relu(X, negative_slope=0.01):
    """``X`` where X > 0, else ``negative_slope * X``."""
    X = V.float_array(X, "input")
    negative_slope = V.real_number(negative_slope, "negative_slope")
    return np.where(X > 0, X, X * X.dtype.type(negative_slope))


def leaky_relu_backward(dY, X, negative_slope=0.01):
    """dX = dY where X > 0, else negative_slope * dY (the slope is used at exactly 0, as in torch)."""
    X = V.float_array(X, "X")
    dY = V.like(dY, "dY", X, "X")
    negative_slope = V.real_number(negative_slope, "negative_slope")
    return np.where(X > 0, dY, dY * dY.dtype.type(negative_slope))


def sigmoid(X):
    """``1 / (1 + exp(-X))``, the very formula torch evaluates.

    For X below about -88.7 (float32) or -709.8 (float64) exp(-X) overflows to
    inf and the result is 1 / inf = 0, as torch's: the true value there is below
    the smallest normal float, so the absolute error is too. That overflow is
    expected and silenced, not an error.
    """
    X = V.float_array(X, "input")
    Y = np.negative(X, out=np.empty(X.shape, X.dtype))   # an array even for 0-d X, so out= works below
    with np.errstate(over="ignore"):
        np.exp(Y, out=Y)
    Y += 1
    np.reciprocal(Y, out=Y)
    return Y


def sigmoid_backward(dY, Y):
    """dX = dY * Y * (1 - Y), from the forward *output* Y."""
    Y = V.float_array(Y, "Y")
    dY = V.like(dY, "dY", Y, "Y")
    return dY * Y * (1 - Y)


def tanh(X):
    """Hyperbolic tangent."""
    return np.tanh(V.float_array(X, "input"))


def tanh_backward(dY, Y):
    """dX = dY * (1 - Y^2), from the forward *output* Y."""
    Y = V.float_array(Y, "Y")
    dY = V.like(dY, "dY", Y, "Y")
    return dY * (1 - Y * Y)


# ------------------------------------------------------------ softmax and log-softmax

def softmax(X, axis=-1):
    """Softmax along ``axis``: ``exp(X - max) / sum(exp(X - max))``.

    Subtracting the maximum first leaves the result unchanged (softmax is
    shift-invariant) and keeps every exponent <= 0, so nothing overflows.
    A row holding +inf (or only -inf) is all nan, as in torch: its max minus
    itself is inf - inf. A 0-d input is one row of one class: 1 (nan for inf
    or nan), with axis 0 or -1, as in torch.
    """
    X = V.float_array(X, "input")
    axis = _axis(axis, X.ndim)
    if X.ndim and X.shape[axis] == 0:
        return X.copy()  # nothing to normalize (np.max would refuse the empty axis)
    with np.errstate(invalid="ignore"):   # inf - inf = nan where a row's max is infinite, as torch
        return _by_row_blocks(_softmax, axis, X)


def _softmax(X, axis, out):
    E = np.subtract(X, _max(X, axis), out=out)
    np.exp(E, out=E)
    E /= _sum(E, axis)


def softmax_backward(dY, Y, axis=-1):
    """dX = Y * (dY - sum(dY * Y, axis)): the Jacobian-vector product, never the Jacobian."""
    Y = V.float_array(Y, "Y")
    dY = V.like(dY, "dY", Y, "Y")
    axis = _axis(axis, Y.ndim)
    return _by_row_blocks(_softmax_backward, axis, dY, Y)


def _softmax_backward(dY, Y, axis, out):
    dX = np.multiply(dY, Y, out=out)
    s = _sum(dX, axis)                 # sum(dY * Y) per row
    np.subtract(dY, s, out=dX)
    dX *= Y


def log_softmax(X, axis=-1):
    """``X - max - log(sum(exp(X - max)))`` along ``axis`` (the log-sum-exp trick).

    Non-finite rows and a 0-d input (0, nan for inf or nan) as :func:`softmax`.
    """
    X = V.float_array(X, "input")
    axis = _axis(axis, X.ndim)
    if X.ndim and X.shape[axis] == 0:
        return X.copy()
    with np.errstate(invalid="ignore"):   # inf - inf = nan where a row's max is infinite, as torch
        return _by_row_blocks(_log_softmax, axis, X)


def _log_softmax(X, axis, out):
    Z = np.subtract(X, _max(X, axis), out=out)
    Z -= np.log(_sum(np.exp(Z), axis))


def log_softmax_backward(dY, Y, axis=-1):
    """dX = dY - exp(Y) * sum(dY, axis), from the forward *output* Y (the log-probabilities)."""
    Y = V.float_array(Y, "Y")
    dY = V.like(dY, "dY", Y, "Y")
    axis = _axis(axis, Y.ndim)
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


def _sum(X, axis):
    """``X.sum(axis, keepdims=True)``; over the last axis of a 2-D array as the
    matrix-vector product ``X @ ones`` (BLAS: 1.7 us against NumPy's 6.5 us at
    (256, 10), 0.22 ms against 0.77 ms at (4096, 1000)). The summation order
    differs from NumPy's pairwise sum, within the same rounding bound."""
    if X.ndim == 2 and axis in (1, -1) and X.shape[1] > 0:
        return (X @ np.ones(X.shape[1], X.dtype))[:, None]
    return X.sum(axis=axis, keepdims=True)


_SHORT_ROW = 32   # rows at most this long take the transposed route in _max


def _axis(axis, ndim):
    axis = V.integer(axis, "axis")
    n = max(ndim, 1)   # a 0-d input takes axis 0 or -1, as in torch
    if not -n <= axis < n:
        raise ValueError(f"axis must be in [{-n}, {n - 1}] for a {ndim}-d input, got {axis}")
    return axis


# --------------------------------------------------------------------------- Dropout

def dropout_mask(shape, p, rng, dtype=np.float32):
    """A keep-mask for inverted dropout: each entry is ``1 / (1 - p)`` with probability
    ``1 - p`` and 0 otherwise (all zeros when p == 1, as in torch).
    """
    shape = V.dims(shape, "shape")
    p = V.real_number(p, "p", low=0.0, high=1.0)
    rng = V.generator(rng)
    dtype = V.float_dtype(dtype)
    if p == 1:
        return np.zeros(shape, dtype)
    keep = rng.random(shape, dtype=np.float64 if dtype == np.float64 else np.float32) >= p
    return keep.astype(dtype) * dtype.type(1.0 / (1.0 - p))


def dropout(X, mask):
    """Y = X * mask, with ``mask`` from :func:`dropout_mask` (already scaled by 1 / (1 - p))."""
    V.float_array(X, "input")
    V.float_array(mask, "mask")
    V.same_shape(mask, "mask", X.shape)
    V.same_dtype(mask, "mask", X.dtype)
    return X * mask


def dropout_backward(dY, mask):
    """dX = dY * mask: dropped units pass no gradient, kept ones are scaled as in forward."""
    mask = V.float_array(mask, "mask")
    dY = V.like(dY, "dY", mask, "mask")
    return dY * mask


# --------------------------------------------------------------------------- losses

_REDUCTIONS = ("mean", "sum", "none")


def cross_entropy(logits, target, *, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """Cross-entropy between logits and targets, as ``torch.nn.functional.cross_entropy``.

    Takes raw logits (never probabilities). With class-index targets,

        loss_i = -(1 - eps) w[t_i] log p[i, t_i] - (eps / C) sum_c w[c] log p[i, c],

    with p = softmax(logits) over axis 1 computed as log_softmax (log-sum-exp), so
    logits of any finite size give a finite loss. ``reduction="mean"`` divides by
    the summed weight of the non-ignored targets (nan when every target is
    ignored, as torch); with probability targets it divides by the number of
    samples.

    Args:
        logits: (N, C), (N, C, d1, ...) or unbatched (C,); float32 or float64.
        target: class indices of an integer dtype, shape (N,), (N, d1, ...) or ();
            or class probabilities shaped and typed like ``logits``.
        weight: optional per-class weight, shape (C,), the dtype of ``logits``.
        ignore_index: a class-index target equal to it adds nothing to the loss.
        reduction: "mean", "sum" or "none".
        label_smoothing: eps in [0, 1]: mixes the target with the uniform distribution.

    Returns:
        A 0-d array for "mean"/"sum"; shape (N, d1, ...) for "none".
    """
    return _CrossEntropy(logits, target, weight, ignore_index, reduction, label_smoothing).forward(logits)


def cross_entropy_backward(dloss, logits, target, *, weight=None, ignore_index=-100, reduction="mean",
                           label_smoothing=0.0, log_probs=None):
    """Gradient of :func:`cross_entropy` with respect to the logits, in the fused form.

    With T the (smoothed, weighted) target distribution of each sample and
    S = sum_c T[c], the gradient of one sample's loss is ``p * S - T``: for
    plain class indices that is ``softmax - onehot``, divided by N under "mean".
    No softmax Jacobian is ever formed.

    Args:
        dloss: upstream gradient shaped like the loss (None means 1).
        logits, target, weight, ignore_index, reduction, label_smoothing: as in forward.
        log_probs: ``log_softmax(logits, axis=1)`` if the caller kept it from
            forward; computed again when None.

    Returns:
        dlogits, shaped and typed like ``logits``.
    """
    ce = _CrossEntropy(logits, target, weight, ignore_index, reduction, label_smoothing)
    if log_probs is None:
        ce.forward(logits)      # the same fused computation the loss module runs
        return ce.grad(dloss)
    log_probs = V.float_array(log_probs, "log_probs")
    if log_probs.shape != ce.shape:
        raise ValueError(f"log_probs must have the input's shape {ce.shape}, got {log_probs.shape}")
    if log_probs.dtype != ce.dtype:
        raise TypeError(f"log_probs must have the input's dtype {ce.dtype}, got {log_probs.dtype}")
    return ce.backward(dloss, log_probs)


def nll_loss(log_probs, target, *, weight=None, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood of class-index targets, as ``torch.nn.functional.nll_loss``.

    loss_i = -w[t_i] * log_probs[i, t_i]; "mean" divides by sum_i w[t_i] over the
    non-ignored targets.

    Args:
        log_probs: (N, C), (N, C, d1, ...) or (C,), usually from :func:`log_softmax`.
        target: integer class indices, shape (N,), (N, d1, ...) or ().
    """
    nll = _CrossEntropy(log_probs, target, weight, ignore_index, reduction, 0.0, allow_probs=False)
    return nll.loss(log_probs)


def nll_loss_backward(dloss, log_probs, target, *, weight=None, ignore_index=-100, reduction="mean"):
    """d loss / d log_probs: ``-w[t_i] * scale_i`` at each sample's target class, 0 elsewhere."""
    nll = _CrossEntropy(log_probs, target, weight, ignore_index, reduction, 0.0, allow_probs=False)
    return nll.target_grad(dloss, log_probs)


def _shifted_exp(R, out, flat_t):
    """For rows ``R`` (m, C): ``out = exp(z)`` with ``z = R - max(R)`` per row; returns
    ``z[i, t_i]`` (``flat_t`` indexes the flattened rows) and the row sums of ``out``."""
    Z = np.subtract(R, _max(R, 1), out=out)
    z_t = Z.reshape(-1).take(flat_t)
    np.exp(Z, out=Z)
    return z_t, _sum(Z, 1)[:, 0]


class _CrossEntropy:
    """Validated arguments of a cross-entropy or NLL call, in a (M, C) layout.

    Internally every input is viewed as M rows of C classes (classes moved to the
    last axis), so one implementation serves (C,), (N, C) and (N, C, d1, ...).
    """

    def __init__(self, logits, target, weight, ignore_index, reduction, label_smoothing, allow_probs=True,
                 options_checked=False):
        logits = V.float_array(logits, "input", min_ndim=1)
        self.dtype = logits.dtype
        self.shape = logits.shape
        self.class_axis = 0 if logits.ndim == 1 else 1
        self.C = logits.shape[self.class_axis]
        if not options_checked:  # a loss module checks its options once, when it is built
            reduction = V.choice(reduction, "reduction", _REDUCTIONS)
            label_smoothing = V.real_number(label_smoothing, "label_smoothing", low=0.0, high=1.0)
            ignore_index = V.integer(ignore_index, "ignore_index")
        self.reduction, self.eps, self.ignore_index = reduction, label_smoothing, ignore_index
        if weight is not None:
            V.float_array(weight, "weight")
            V.same_shape(weight, "weight", (self.C,))
            V.same_dtype(weight, "weight", self.dtype)
        self.weight = weight
        if not isinstance(target, np.ndarray):
            raise TypeError(f"target must be a numpy.ndarray of class indices or probabilities, got {V.describe(target)}")
        batch_shape = logits.shape[:self.class_axis] + logits.shape[self.class_axis + 1:]
        self.M = math.prod(batch_shape)   # rows of the (M, C) layout, also when C == 0
        if target.dtype.kind in "iu":
            self.probs_target = False
            self.t, keep = V.class_indices(target, "target", self.C, batch_shape, ignore_index=self.ignore_index,
                                           shape_hint=f" for input of shape {logits.shape}")
            self.all_kept = keep is None
            self.keep = np.ones(self.t.shape, bool) if keep is None else keep
        elif target.dtype.kind == "f" and allow_probs:
            if target.shape != logits.shape:
                raise ValueError(
                    f"target of class probabilities must have the input's shape {logits.shape}, got {target.shape}"
                )
            V.same_dtype(target, "target", self.dtype)
            self.probs_target = True
            self.P = self._rows(target)
        else:
            expected = "an integer dtype (class indices)" + (" or the input's float dtype (probabilities)" if allow_probs else "")
            raise TypeError(f"target must have {expected}, got {target.dtype}")
        self.batch_shape = batch_shape

    def forward(self, logits):
        """The loss, keeping on ``self`` what :meth:`grad` needs (``self`` lives in
        the loss's backward closure only, so nothing outside is touched)."""
        if self.probs_target or self.eps or self.weight is not None or self.C == 0:
            self.log_probs = log_softmax(logits, axis=self.class_axis)
            return self.loss(self.log_probs)
        # Plain class indices, fused: loss_i = log(sum_c exp(z_ic)) - z_i,t with
        # z = x - max(x); the exponentials are kept, since softmax = E / s.
        R = self._rows(logits)
        M, C = R.shape
        # Z[i, t_i] is gathered from the flat array with one index (a third of the
        # time of Z[arange, t] at (256, 10)). Blocks of rows keep each block in
        # cache from the subtraction through the exponential to the sum.
        self.flat_t = np.arange(0, M * C, C) + self.t
        E = np.empty((M, C), self.dtype)
        with np.errstate(invalid="ignore"):   # inf - inf = nan where a row's max is infinite, as torch
            if E.nbytes <= _BLOCK_BYTES:
                z_t, s = _shifted_exp(R, E, self.flat_t)
            else:
                z_t, s = np.empty(M, self.dtype), np.empty(M, self.dtype)
                for i, j in _row_blocks(M, C * E.itemsize):
                    z_t[i:j], s[i:j] = _shifted_exp(R[i:j], E[i:j], self.flat_t[i:j] - i * C)
        self.E, self.s = E, s
        per_row = np.log(s)
        per_row -= z_t
        if not self.all_kept:
            per_row[~self.keep] = 0
        return self._reduce(per_row, self._count())

    def _count(self):
        """How many rows count: the "mean" denominator without weights."""
        return self.dtype.type(self.keep.shape[0] if self.all_kept else self.keep.sum())

    def grad(self, dloss):
        """d loss / d logits after :meth:`forward`: scale * (softmax - onehot) in the plain case."""
        if not hasattr(self, "E"):
            return self.backward(dloss, self.log_probs)
        scale = self._scale(dloss, self._count())   # 0-d or (M, 1); 0 on ignored rows
        with np.errstate(invalid="ignore"):
            r = scale / self.s if scale.ndim == 0 else scale[:, 0] / self.s
            G = self.E * r[:, None]                                       # scale * softmax
            G.reshape(-1)[self.flat_t] -= scale if scale.ndim == 0 else scale[:, 0]   # ... - scale * onehot
        return self._unrows(G)

    def _rows(self, A):
        """View an input-shaped array as (M, C) rows of classes."""
        if A.ndim <= 2:
            return A.reshape(self.M, self.C)
        return np.moveaxis(A, 1, -1).reshape(self.M, self.C)

    def _unrows(self, R):
        """Inverse of :meth:`_rows` for an (M, C) array."""
        if len(self.shape) <= 2:
            return R.reshape(self.shape)
        moved = self.shape[:1] + self.shape[2:] + self.shape[1:2]
        return np.ascontiguousarray(np.moveaxis(R.reshape(moved), -1, 1))

    def _row_weight(self):
        """w[t_i] per row (1 without weights), 0 for ignored rows, shape (M,)."""
        wt = np.ones(self.t.shape[0], self.dtype) if self.weight is None else self.weight[self.t]
        return np.where(self.keep, wt, 0).astype(self.dtype, copy=False)

    def _target_dist(self):
        """T (M, C): the distribution each row's loss pulls toward, weights included,
        and the denominator of the "mean" reduction."""
        w = self.weight
        if self.probs_target:
            T = self.P if self.eps == 0 else self.P * self.dtype.type(1 - self.eps) + self.dtype.type(self.eps / self.C)
            if w is not None:
                T = T * w
            return T, self.dtype.type(self.P.shape[0])
        M = self.t.shape[0]
        wt = self._row_weight()
        T = np.zeros((M, self.C), self.dtype)
        T[np.arange(M), self.t] = wt * self.dtype.type(1 - self.eps)
        if self.eps:
            smooth = (np.ones(self.C, self.dtype) if w is None else w) * self.dtype.type(self.eps / self.C)
            T += np.where(self.keep[:, None], smooth, 0).astype(self.dtype, copy=False)
        return T, wt.sum(dtype=self.dtype)

    def _no_classes(self):
        """The loss over zero classes (C == 0), as torch (issue 73165): no target can
        count (an index would lie outside [0, 0)), so "mean" is 0 / 0 = nan; a row's
        loss is 0, or nan under label smoothing of index targets (eps / C = eps / 0)."""
        smoothed = bool(self.eps) and not self.probs_target
        if self.reduction == "none":
            return np.full(self.batch_shape, np.nan if smoothed else 0, self.dtype)
        return np.asarray(np.nan if smoothed or self.reduction == "mean" else 0, self.dtype)

    def _no_class_grad(self, dloss):
        """The gradient over zero classes: an empty array; dloss is still checked."""
        _upstream_of_loss(dloss, self.batch_shape if self.reduction == "none" else (), self.dtype)
        return np.zeros(self.shape, self.dtype)

    def loss(self, log_probs):
        if self.C == 0:
            return self._no_classes()
        L = self._rows(log_probs)
        if not self.probs_target and self.eps == 0:
            # The common case: gather one log-probability per row, no (M, C) temporary.
            wt = self._row_weight()
            per_row = -L[np.arange(L.shape[0]), self.t] * wt
            denom = wt.sum(dtype=self.dtype)
        else:
            T, denom = self._target_dist()
            per_row = -(L * T).sum(axis=1)
            if not self.probs_target:
                per_row = np.where(self.keep, per_row, 0).astype(self.dtype, copy=False)
        return self._reduce(per_row, denom)

    def _reduce(self, per_row, denom):
        if self.reduction == "none":
            return per_row.reshape(self.batch_shape)
        total = per_row.sum(dtype=self.dtype)
        if self.reduction == "sum":
            return np.asarray(total, self.dtype)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(total / denom, self.dtype)  # 0 / 0 = nan when everything is ignored, as torch

    def _scale(self, dloss, denom):
        """Per-row factor d(reduced loss)/d(row loss) times the upstream gradient:
        shape (M, 1), or a 0-d array when it is the same for every row."""
        dloss = _upstream_of_loss(dloss, self.batch_shape if self.reduction == "none" else (), self.dtype)
        if self.reduction == "none":
            scale = dloss.reshape(-1, 1)
        elif self.reduction == "sum":
            scale = dloss
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                scale = (dloss / denom).astype(self.dtype, copy=False)
        if not self.probs_target and not self.all_kept:
            # An ignored row gets exactly 0, even when "mean" divides by a zero total
            # weight (every target ignored): torch's gradient is 0 there, not 0 * inf.
            scale = np.where(self.keep[:, None], scale, self.dtype.type(0))
        return scale

    def backward(self, dloss, log_probs):
        """Fused gradient with respect to the logits: scale * (p * S - T)."""
        if self.C == 0:
            return self._no_class_grad(dloss)
        L = self._rows(log_probs)
        if not self.probs_target and self.eps == 0 and self.weight is None:
            # softmax - onehot, written into the softmax's own buffer.
            scale = self._scale(dloss, self.dtype.type(self.keep.sum()))
            G = np.exp(L)
            G[np.arange(L.shape[0]), self.t] -= 1
        else:
            T, denom = self._target_dist()
            scale = self._scale(dloss, denom)
            G = np.exp(L)
            G *= T.sum(axis=1, keepdims=True)
            G -= T
        with np.errstate(invalid="ignore"):
            G *= scale  # 0 * inf = nan only where torch gives nan too: a kept row of zero weight under a zero total
        return self._unrows(G.astype(self.dtype, copy=False))

    def target_grad(self, dloss, log_probs):
        """NLL gradient with respect to the log-probabilities: -w[t_i] * scale_i at
        each row's target class, 0 elsewhere."""
        if self.C == 0:
            return self._no_class_grad(dloss)
        wt = self._row_weight()
        scale = self._scale(dloss, wt.sum(dtype=self.dtype))
        M = wt.shape[0]
        G = np.zeros((M, self.C), self.dtype)
        with np.errstate(invalid="ignore"):
            G[np.arange(M), self.t] = -wt * np.broadcast_to(scale, (M, 1))[:, 0]
        return self._unrows(G)


def mse_loss(X, target, *, reduction="mean"):
    """Mean squared error ``(X - target)^2``, reduced as ``torch.nn.functional.mse_loss``.

    Shape: X and target of the same shape and float dtype.
    """
    _check_mse(X, target, reduction)
    with np.errstate(invalid="ignore", over="ignore"):   # inf - inf = nan, huge^2 = inf: torch's values
        D = X - target
        D *= D
        if reduction == "none":
            return D
        total = D.sum(dtype=X.dtype)
    if reduction == "sum":
        return np.asarray(total, X.dtype)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(total / X.dtype.type(X.size), X.dtype)


def mse_loss_backward(dloss, X, target, *, reduction="mean"):
    """dX = 2 (X - target) * dloss, divided by the element count under "mean"."""
    _check_mse(X, target, reduction)
    dloss = _upstream_of_loss(dloss, X.shape if reduction == "none" else (), X.dtype)
    with np.errstate(invalid="ignore", over="ignore"):   # inf - inf = nan, inf * 0 = nan: torch's values
        dX = X - target
        dX *= 2 * dloss if reduction != "mean" else (2 * dloss / X.dtype.type(max(X.size, 1))).astype(X.dtype)
    return dX


def _upstream_of_loss(dloss, shape, dtype):
    """A loss's upstream gradient as an array of ``shape`` and ``dtype``: None means 1,
    and a NumPy float scalar (what arithmetic on a 0-d array returns) counts as 0-d."""
    if dloss is None:
        return np.ones(shape, dtype)
    if isinstance(dloss, np.floating):
        dloss = np.asarray(dloss)
    V.float_array(dloss, "dloss")
    V.same_shape(dloss, "dloss", shape)
    V.same_dtype(dloss, "dloss", dtype)
    return dloss


def _check_mse(X, target, reduction):
    V.float_array(X, "input")
    V.float_array(target, "target")
    V.same_shape(target, "target", X.shape)
    V.same_dtype(target, "target", X.dtype)
    V.choice(reduction, "reduction", _REDUCTIONS)
