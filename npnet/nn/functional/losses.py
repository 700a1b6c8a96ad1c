"""Plain kernels of the losses: cross-entropy, negative log-likelihood and mean squared error."""
import numpy as np

from ... import _validate as V
from .._kernels import kernel
from .._rows import class_axis, classes_back, classes_last, index_rows, reduce_rows
from .activations import log_softmax, softmax


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
        return reduce_rows(-(L * Q * w).sum(axis=1), M, reduction, _batch_shape(logits.shape))
    t, keep = index_rows(target, ignore_index)
    with np.errstate(invalid="ignore"):   # 0 * inf = nan (a zero weight or eps = 1 at log p = -inf), as torch
        loss = -w[t] * L[np.arange(M), t]                                 # -w[t] log p[t]
        if eps:
            loss = (1 - eps) * loss - eps / C * (L * w).sum(axis=1)      # label smoothing
    loss = np.where(keep, loss, 0)                                        # ignore_index
    return reduce_rows(loss, (w[t] * keep).sum(), reduction, target.shape)


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
    return reduce_rows(loss, (w[t] * keep).sum(), reduction, target.shape)


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
