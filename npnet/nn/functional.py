"""Plain forward and backward kernels: the math of every npnet layer and loss.

Each forward kernel ``f(X, ...)`` has its backward ``f_backward(dY, ...)`` right
below it, each a direct transcription of the formula in its docstring. They are
the source of truth: faster twins of some live in ``_fast.py``, with the same
signatures, proven equal to these by ``tests/test_fast.py``; the public function
runs the fast twin unless ``NPNET_KERNELS=plain`` is set (see ``_kernels.py``), and
``F.softmax.plain`` is always the plain body.

Each kernel's arguments are checked once, by the ``_check_*`` function named in its
``@kernel(...)`` line; the body then trusts them. Kernels never modify their
inputs, keep the input's float dtype (float32 in, float32 out) and touch no
global state. Shapes use torch's conventions: a batch axis first, classes on
axis 1 for losses.

Names: ``X`` is an input, ``Y`` an output, ``dY`` the gradient of a scalar
objective with respect to ``Y`` (the upstream gradient) and ``dX`` the gradient
with respect to ``X``.

Example::

    >>> import numpy as np, npnet.nn.functional as F
    >>> X = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    >>> F.softmax(X).round(4)
    array([[0.09  , 0.2447, 0.6652]], dtype=float32)
"""
import numpy as np

from .. import _validate as V
from ._kernels import class_axis, classes_back, classes_last, index_rows, kernel

__all__ = [
    "linear", "linear_backward",
    "relu", "relu_backward", "leaky_relu", "leaky_relu_backward",
    "sigmoid", "sigmoid_backward", "tanh", "tanh_backward",
    "softmax", "softmax_backward", "log_softmax", "log_softmax_backward",
    "dropout_mask", "dropout", "dropout_backward",
    "cross_entropy", "cross_entropy_backward", "cross_entropy_with_backward",
    "nll_loss", "nll_loss_backward", "mse_loss", "mse_loss_backward",
]


# --------------------------------------------------------------------------- Linear

def _check_linear(X, W, b=None):
    X = V.float_array(X, "input", min_ndim=1)
    W = V.float_array(W, "weight", min_ndim=2)
    if W.ndim != 2:
        raise ValueError(f"weight must be 2-D (out_features, in_features), got shape {W.shape}")
    if X.shape[-1] != W.shape[1]:
        raise ValueError(f"linear: input has {X.shape[-1]} features on its last axis but weight expects "
                         f"{W.shape[1]}: input shape {X.shape}, weight shape {W.shape}")
    V.same_dtype(W, "weight", X.dtype)
    if b is not None:
        V.float_array(b, "bias")
        V.same_shape(b, "bias", (W.shape[0],))
        V.same_dtype(b, "bias", X.dtype)
    return dict(X=X, W=W, b=b)


@kernel(_check_linear)
def linear(X, W, b=None):
    """Affine map ``Y = X W^T + b`` over any leading dims, as ``torch.nn.functional.linear``.

    Args:
        X: input, shape (*, in_features).
        W: weight, shape (out_features, in_features) (torch's layout).
        b: optional bias, shape (out_features,).

    Shape:
        Y: (*, out_features), the dtype of X.
    """
    Y = X @ W.T
    return Y if b is None else Y + b


def _check_linear_backward(dY, X, W, *, need_dX=True, need_db=True):
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
    return dict(dY=dY, X=X, W=W, need_dX=V.flag(need_dX, "need_dX"), need_db=V.flag(need_db, "need_db"))


@kernel(_check_linear_backward)
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
    dY2 = dY.reshape(-1, dY.shape[-1])   # every leading dim is a batch dim: (n, out_features)
    X2 = X.reshape(-1, X.shape[-1])      # (n, in_features)
    dW = dY2.T @ X2
    db = dY2.sum(axis=0) if need_db else None
    dX = dY @ W if need_dX else None
    return dX, dW, db


# ----------------------------------------------------------------------- activations

def _check_input(X):
    return dict(X=V.float_array(X, "input"))


def _check_dY_X(dY, X):
    X = V.float_array(X, "X")
    return dict(dY=V.like(dY, "dY", X, "X"), X=X)


def _check_dY_Y(dY, Y):
    Y = V.float_array(Y, "Y")
    return dict(dY=V.like(dY, "dY", Y, "Y"), Y=Y)


@kernel(_check_input)
def relu(X):
    """``max(X, 0)`` elementwise."""
    return np.maximum(X, 0, dtype=X.dtype)


@kernel(_check_dY_X)
def relu_backward(dY, X):
    """dX = dY where X > 0, else 0. The gradient at exactly 0 is 0, as in torch.

    ``np.where`` and not ``dY * (X > 0)``: the product turns an inf or nan in dY
    into nan where torch gives 0.

    ``X`` may be the forward output ``relu(X)`` instead, with the same result:
    it is > 0 exactly where X is (a NaN stays NaN). ``nn.ReLU`` passes its output.
    """
    return np.where(X > 0, dY, 0)


def _check_leaky_relu(X, negative_slope=0.01):
    return dict(X=V.float_array(X, "input"), negative_slope=V.real_number(negative_slope, "negative_slope"))


@kernel(_check_leaky_relu)
def leaky_relu(X, negative_slope=0.01):
    """``X`` where X > 0, else ``negative_slope * X``."""
    return np.where(X > 0, X, X * X.dtype.type(negative_slope))


def _check_leaky_relu_backward(dY, X, negative_slope=0.01):
    return dict(**_check_dY_X(dY, X), negative_slope=V.real_number(negative_slope, "negative_slope"))


@kernel(_check_leaky_relu_backward)
def leaky_relu_backward(dY, X, negative_slope=0.01):
    """dX = dY where X > 0, else negative_slope * dY (the slope is used at exactly 0, as in torch)."""
    return np.where(X > 0, dY, dY * dY.dtype.type(negative_slope))


@kernel(_check_input)
def sigmoid(X):
    """``1 / (1 + exp(-X))``, the very formula torch evaluates.

    For X below about -88.7 (float32) or -709.8 (float64) exp(-X) overflows to
    inf and the result is 1 / inf = 0, as torch's: the true value there is below
    the smallest normal float, so the absolute error is too. That overflow is
    expected and silenced, not an error.
    """
    with np.errstate(over="ignore"):
        return np.asarray(1 / (1 + np.exp(-X)))   # asarray: a 0-d X gives a 0-d array, not a scalar


@kernel(_check_dY_Y)
def sigmoid_backward(dY, Y):
    """dX = dY * Y * (1 - Y), from the forward *output* Y."""
    return dY * Y * (1 - Y)


@kernel(_check_input)
def tanh(X):
    """Hyperbolic tangent."""
    return np.tanh(X)


@kernel(_check_dY_Y)
def tanh_backward(dY, Y):
    """dX = dY * (1 - Y^2), from the forward *output* Y."""
    return dY * (1 - Y * Y)


# ------------------------------------------------------------ softmax and log-softmax

def _check_softmax(X, axis=-1):
    X = V.float_array(X, "input")
    return dict(X=X, axis=_axis(axis, X.ndim))


def _check_softmax_backward(dY, Y, axis=-1):
    return dict(**_check_dY_Y(dY, Y), axis=_axis(axis, np.ndim(Y)))


def _axis(axis, ndim):
    axis = V.integer(axis, "axis")
    n = max(ndim, 1)   # a 0-d input takes axis 0 or -1, as in torch
    if not -n <= axis < n:
        raise ValueError(f"axis must be in [{-n}, {n - 1}] for a {ndim}-d input, got {axis}")
    return axis


@kernel(_check_softmax)
def softmax(X, axis=-1):
    """Softmax along ``axis``: ``exp(X - max) / sum(exp(X - max))``.

    Subtracting the maximum first leaves the result unchanged (softmax is
    shift-invariant) and keeps every exponent <= 0, so nothing overflows.
    A row holding +inf (or only -inf) is all nan, as in torch: its max minus
    itself is inf - inf. A 0-d input is one row of one class: 1 (nan for inf
    or nan), with axis 0 or -1, as in torch. An empty axis gives an empty result.
    """
    with np.errstate(invalid="ignore"):   # inf - inf = nan where a row's max is infinite, as torch
        E = np.exp(X - X.max(axis, keepdims=True, initial=-np.inf))   # initial: an empty axis has no max
    return np.asarray(E / E.sum(axis, keepdims=True))                  # asarray: 0-d in, 0-d array out


@kernel(_check_softmax_backward)
def softmax_backward(dY, Y, axis=-1):
    """dX = Y * (dY - sum(dY * Y, axis)): the Jacobian-vector product, never the Jacobian."""
    return np.asarray(Y * (dY - (dY * Y).sum(axis, keepdims=True)))


@kernel(_check_softmax)
def log_softmax(X, axis=-1):
    """``X - max - log(sum(exp(X - max)))`` along ``axis`` (the log-sum-exp trick).

    Non-finite rows, a 0-d input (0, nan for inf or nan) and an empty axis as :func:`softmax`.
    """
    with np.errstate(invalid="ignore", divide="ignore"):   # inf - inf as softmax; log(0) of an empty row's sum
        Z = X - X.max(axis, keepdims=True, initial=-np.inf)
        return np.asarray(Z - np.log(np.exp(Z).sum(axis, keepdims=True)))


@kernel(_check_softmax_backward)
def log_softmax_backward(dY, Y, axis=-1):
    """dX = dY - exp(Y) * sum(dY, axis), from the forward *output* Y (the log-probabilities)."""
    return np.asarray(dY - np.exp(Y) * dY.sum(axis, keepdims=True))


# --------------------------------------------------------------------------- Dropout

def _check_dropout_mask(shape, p, rng, dtype=np.float32):
    return dict(shape=V.dims(shape, "shape"), p=V.real_number(p, "p", low=0.0, high=1.0),
                rng=V.generator(rng), dtype=V.float_dtype(dtype))


@kernel(_check_dropout_mask)
def dropout_mask(shape, p, rng, dtype=np.float32):
    """A keep-mask for inverted dropout: each entry is ``1 / (1 - p)`` with probability
    ``1 - p`` and 0 otherwise (all zeros when p == 1, as in torch).
    """
    if p == 1:
        return np.zeros(shape, dtype)
    keep = rng.random(shape, dtype=np.float64 if dtype == np.float64 else np.float32) >= p
    return keep.astype(dtype) * dtype.type(1.0 / (1.0 - p))


def _check_dropout(X, mask):
    V.float_array(X, "input")
    V.float_array(mask, "mask")
    V.same_shape(mask, "mask", X.shape)
    V.same_dtype(mask, "mask", X.dtype)
    return dict(X=X, mask=mask)


@kernel(_check_dropout)
def dropout(X, mask):
    """Y = X * mask, with ``mask`` from :func:`dropout_mask` (already scaled by 1 / (1 - p))."""
    return X * mask


def _check_dropout_backward(dY, mask):
    mask = V.float_array(mask, "mask")
    return dict(dY=V.like(dY, "dY", mask, "mask"), mask=mask)


@kernel(_check_dropout_backward)
def dropout_backward(dY, mask):
    """dX = dY * mask: dropped units pass no gradient, kept ones are scaled as in forward."""
    return dY * mask


# --------------------------------------------------------------------------- losses
#
# Every classification loss below reads its input as M rows of C classes
# (classes_last: classes moved to the last axis), so one formula serves (C,),
# (N, C) and (N, C, d1, ...); the gradient goes back with classes_back.

_REDUCTIONS = ("mean", "sum", "none")


def _check_cross_entropy(logits, target, *, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    return _check_classification("input", logits, target, weight, ignore_index, reduction, label_smoothing,
                                 allow_probs=True)


@kernel(_check_cross_entropy)
def cross_entropy(logits, target, *, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """Cross-entropy between logits and targets, as ``torch.nn.functional.cross_entropy``.

    Takes raw logits (never probabilities). With p = softmax(logits) over the
    classes, computed as log_softmax (log-sum-exp) so that logits of any finite
    size give a finite loss, and eps = label_smoothing:

        class-index targets:  loss_i = -(1 - eps) w[t_i] log p[i, t_i] - (eps / C) sum_c w[c] log p[i, c]
        probability targets:  loss_i = -sum_c w[c] q[i, c] log p[i, c],  q = (1 - eps) target + eps / C

    A target equal to ``ignore_index`` adds nothing. ``reduction="mean"`` divides
    by sum_i w[t_i] over the counted targets (nan when every target is ignored,
    as torch); with probability targets by the number of rows.

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
    L = log_softmax.plain(classes_last(logits, class_axis(logits.shape)), axis=1)   # (M, C) log-probabilities
    (M, C), eps = L.shape, label_smoothing
    w = np.ones(C, L.dtype) if weight is None else weight
    if C == 0:
        return _no_classes(logits, target, eps, reduction)
    if target.dtype.kind == "f":                                          # class probabilities
        Q = (1 - eps) * classes_last(target, class_axis(target.shape)) + eps / C   # label smoothing
        return _reduce(-(L * Q * w).sum(axis=1), M, reduction, _batch_shape(logits.shape))
    t, keep = index_rows(target, ignore_index)
    with np.errstate(invalid="ignore"):   # 0 * inf = nan (a zero weight or eps = 1 at log p = -inf), as torch
        loss = -w[t] * L[np.arange(M), t]                                 # -w[t] log p[t]
        if eps:
            loss = (1 - eps) * loss - eps / C * (L * w).sum(axis=1)      # label smoothing
    loss = np.where(keep, loss, 0)                                        # ignore_index
    return _reduce(loss, (w[t] * keep).sum(), reduction, target.shape)


def _check_cross_entropy_backward(dloss, logits, target, *, weight=None, ignore_index=-100, reduction="mean",
                                  label_smoothing=0.0, log_probs=None):
    checked = _check_cross_entropy(logits, target, weight=weight, ignore_index=ignore_index, reduction=reduction,
                                   label_smoothing=label_smoothing)
    logits = checked["logits"]
    if log_probs is not None:
        log_probs = V.float_array(log_probs, "log_probs")
        if log_probs.shape != logits.shape:
            raise ValueError(f"log_probs must have the input's shape {logits.shape}, got {log_probs.shape}")
        if log_probs.dtype != logits.dtype:
            raise TypeError(f"log_probs must have the input's dtype {logits.dtype}, got {log_probs.dtype}")
    loss_shape = _batch_shape(logits.shape) if checked["reduction"] == "none" else ()
    return dict(checked, dloss=V.upstream(dloss, "dloss", loss_shape, logits.dtype), log_probs=log_probs)


@kernel(_check_cross_entropy_backward)
def cross_entropy_backward(dloss, logits, target, *, weight=None, ignore_index=-100, reduction="mean",
                           label_smoothing=0.0, log_probs=None):
    """Gradient of :func:`cross_entropy` with respect to the logits.

    For class indices, ``w[t] * (softmax(logits) - onehot(target))`` per row, mixed
    under label smoothing with the uniform target's ``softmax * sum(w) - w``; for
    probability targets ``softmax * sum_c T[c] - T`` with T = w * q. Then times
    d(reduced loss)/d(row loss) and dloss (1/sum w[t] under "mean"); 0 on ignored
    rows. No softmax Jacobian is ever formed.

    Args:
        dloss: upstream gradient shaped like the loss (None means 1).
        logits, target, weight, ignore_index, reduction, label_smoothing: as in forward.
        log_probs: ``log_softmax(logits, axis=1)`` if the caller kept it from
            forward; computed again when None.

    Returns:
        dlogits, shaped and typed like ``logits``.
    """
    X = classes_last(logits, class_axis(logits.shape))
    (M, C), eps = X.shape, label_smoothing
    P = softmax.plain(X, axis=1) if log_probs is None else np.exp(classes_last(log_probs, class_axis(logits.shape)))
    w = np.ones(C, X.dtype) if weight is None else weight
    if C == 0:
        return np.zeros(logits.shape, logits.dtype)
    if target.dtype.kind == "f":                                          # class probabilities
        T = ((1 - eps) * classes_last(target, class_axis(target.shape)) + eps / C) * w   # smoothed, weighted
        G = P * T.sum(axis=1, keepdims=True) - T
        return classes_back(_scaled(G, dloss, M, reduction), logits.shape)
    t, keep = index_rows(target, ignore_index)
    G = P.copy()
    G[np.arange(M), t] -= 1                                               # softmax - onehot(target)
    G *= w[t][:, None]                                                    # class weights
    if eps:
        G = (1 - eps) * G + eps / C * (P * w.sum() - w)                   # label smoothing
    return classes_back(_scaled(G, dloss, (w[t] * keep).sum(), reduction, keep), logits.shape)


def _check_cross_entropy_with_backward(logits, target, *, weight=None, ignore_index=-100, reduction="mean",
                                       label_smoothing=0.0):
    return _check_cross_entropy(logits, target, weight=weight, ignore_index=ignore_index, reduction=reduction,
                                label_smoothing=label_smoothing)


@kernel(_check_cross_entropy_with_backward)
def cross_entropy_with_backward(logits, target, *, weight=None, ignore_index=-100, reduction="mean",
                                label_smoothing=0.0):
    """``(loss, backward)`` with ``backward(dloss) -> dlogits``: :func:`cross_entropy`
    and :func:`cross_entropy_backward` in one call, as ``nn.CrossEntropyLoss`` runs them.

    ``backward`` takes dloss as an array shaped and typed like the loss, unchecked.
    (The fast twin keeps exp(logits - max) from the forward pass for the backward.)
    """
    options = dict(weight=weight, ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing)

    def backward(dloss):
        return cross_entropy_backward.plain(dloss, logits, target, **options)

    return cross_entropy.plain(logits, target, **options), backward


def _check_nll_loss(log_probs, target, *, weight=None, ignore_index=-100, reduction="mean"):
    checked = _check_classification("input", log_probs, target, weight, ignore_index, reduction, 0.0,
                                    allow_probs=False)
    return dict(log_probs=checked["logits"], target=target, weight=weight, ignore_index=checked["ignore_index"],
                reduction=checked["reduction"])


@kernel(_check_nll_loss)
def nll_loss(log_probs, target, *, weight=None, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood of class-index targets, as ``torch.nn.functional.nll_loss``.

    loss_i = -w[t_i] * log_probs[i, t_i]; "mean" divides by sum_i w[t_i] over the
    counted (not ignored) targets.

    Args:
        log_probs: (N, C), (N, C, d1, ...) or (C,), usually from :func:`log_softmax`.
        target: integer class indices, shape (N,), (N, d1, ...) or ().
    """
    L = classes_last(log_probs, class_axis(log_probs.shape))
    M, C = L.shape
    w = np.ones(C, L.dtype) if weight is None else weight
    if C == 0:
        return _no_classes(log_probs, target, 0.0, reduction)
    t, keep = index_rows(target, ignore_index)
    loss = np.where(keep, -w[t] * L[np.arange(M), t], 0)                 # ignored rows add 0
    return _reduce(loss, (w[t] * keep).sum(), reduction, target.shape)


def _check_nll_loss_backward(dloss, log_probs, target, *, weight=None, ignore_index=-100, reduction="mean"):
    checked = _check_nll_loss(log_probs, target, weight=weight, ignore_index=ignore_index, reduction=reduction)
    shape = target.shape if checked["reduction"] == "none" else ()
    return dict(checked, dloss=V.upstream(dloss, "dloss", shape, checked["log_probs"].dtype))


@kernel(_check_nll_loss_backward)
def nll_loss_backward(dloss, log_probs, target, *, weight=None, ignore_index=-100, reduction="mean"):
    """d loss / d log_probs: ``-w[t_i]`` at each row's target class, 0 elsewhere, times
    d(reduced loss)/d(row loss) and dloss; 0 on ignored rows."""
    L = classes_last(log_probs, class_axis(log_probs.shape))
    M, C = L.shape
    w = np.ones(C, L.dtype) if weight is None else weight
    if C == 0:
        return np.zeros(log_probs.shape, log_probs.dtype)
    t, keep = index_rows(target, ignore_index)
    G = np.zeros((M, C), L.dtype)
    G[np.arange(M), t] = _scaled(-w[t][:, None], dloss, (w[t] * keep).sum(), reduction, keep)[:, 0]
    return classes_back(G, log_probs.shape)


def _check_classification(name, logits, target, weight, ignore_index, reduction, label_smoothing, allow_probs):
    """The arguments of cross_entropy and nll_loss and of their backward (a loss module
    checks its options once, when built, and its arrays with V.classification)."""
    reduction = V.choice(reduction, "reduction", _REDUCTIONS)
    label_smoothing = V.real_number(label_smoothing, "label_smoothing", low=0.0, high=1.0)
    ignore_index = V.integer(ignore_index, "ignore_index")
    logits = V.classification(logits, name, target, weight, ignore_index, allow_probs=allow_probs)
    return dict(logits=logits, target=target, weight=weight, ignore_index=ignore_index, reduction=reduction,
                label_smoothing=label_smoothing)


def _batch_shape(shape):
    """The shape of a loss with reduction="none": the input's shape without the class axis."""
    axis = class_axis(shape)
    return shape[:axis] + shape[axis + 1:]


def _reduce(loss, denom, reduction, shape):
    """Per-row losses (M,) reduced as ``reduction`` says; "mean" divides by ``denom``."""
    if reduction == "none":
        return loss.reshape(shape)
    total = loss.sum(dtype=loss.dtype)
    if reduction == "sum":
        return np.asarray(total)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(total / denom, loss.dtype)  # 0 / 0 = nan when everything is ignored, as torch


def _scaled(G, dloss, denom, reduction, keep=None):
    """Row gradients G (M, C) times d(reduced loss)/d(row loss) and dloss; rows not
    kept are exactly 0, even when "mean" divides by a zero total weight (torch's 0)."""
    with np.errstate(invalid="ignore", divide="ignore"):   # 0 / 0 and 0 * inf = nan where torch's is nan too
        scale = dloss.reshape(-1, 1) if reduction == "none" else dloss if reduction == "sum" else dloss / denom
        G = (G * scale).astype(G.dtype, copy=False)
    return G if keep is None else np.where(keep[:, None], G, G.dtype.type(0))


def _no_classes(logits, target, eps, reduction):
    """The loss over zero classes (C == 0), as torch (issue 73165): no target can
    count (an index would lie outside [0, 0)), so "mean" is 0 / 0 = nan; a row's
    loss is 0, or nan under label smoothing of index targets (eps / C = eps / 0)."""
    nan = bool(eps) and target.dtype.kind != "f"
    if reduction == "none":
        return np.full(_batch_shape(logits.shape), np.nan if nan else 0, logits.dtype)
    return np.asarray(np.nan if nan or reduction == "mean" else 0, logits.dtype)


# ------------------------------------------------------------------------------ MSE

def _check_mse(X, target, *, reduction="mean"):
    V.float_array(X, "input")
    V.float_array(target, "target")
    V.same_shape(target, "target", X.shape)
    V.same_dtype(target, "target", X.dtype)
    return dict(X=X, target=target, reduction=V.choice(reduction, "reduction", _REDUCTIONS))


@kernel(_check_mse)
def mse_loss(X, target, *, reduction="mean"):
    """Mean squared error ``(X - target)^2``, reduced as ``torch.nn.functional.mse_loss``.

    Shape: X and target of the same shape and float dtype.
    """
    with np.errstate(invalid="ignore", over="ignore"):   # inf - inf = nan, huge^2 = inf: torch's values
        D = (X - target) ** 2
        if reduction == "none":
            return D
        total = D.sum(dtype=X.dtype)
    if reduction == "sum":
        return np.asarray(total, X.dtype)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(total / X.dtype.type(X.size), X.dtype)


def _check_mse_backward(dloss, X, target, *, reduction="mean"):
    checked = _check_mse(X, target, reduction=reduction)
    shape = X.shape if checked["reduction"] == "none" else ()
    return dict(checked, dloss=V.upstream(dloss, "dloss", shape, X.dtype))


@kernel(_check_mse_backward)
def mse_loss_backward(dloss, X, target, *, reduction="mean"):
    """dX = 2 (X - target) * dloss, divided by the element count under "mean"."""
    scale = 2 * dloss if reduction != "mean" else (2 * dloss / X.dtype.type(max(X.size, 1))).astype(X.dtype)
    with np.errstate(invalid="ignore", over="ignore"):   # inf - inf = nan, inf * 0 = nan: torch's values
        return (X - target) * scale
