"""Normalization's plain kernels: batch norm and layer norm, each with its backward.

Both normalize ``x_hat = (x - mean) / sqrt(var + eps)`` (the biased variance) and
then scale and shift, ``y = weight * x_hat + bias``; they differ in what the mean
and variance run over:

- batch norm: per channel (axis 1), over the batch and every axis after the channels;
- layer norm: per sample, over the trailing ``normalized_shape`` axes.

Kernels never modify their inputs: :func:`batch_norm` returns the new running
statistics as new arrays instead of updating ``running_mean``/``running_var`` in
place as ``torch.nn.functional.batch_norm`` does (the module, ``nn.BatchNorm1d``,
copies them into its buffers, as torch's module updates its own).
"""
import math

import numpy as np

from ... import _validate as V
from .._kernels import kernel


def _channel_vector(a, name, C, dtype):
    if a is not None:
        V.float_array(a, name)
        V.same_shape(a, name, (C,))
        V.same_dtype(a, name, dtype)
    return a


def _check_batch_norm(X, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
                      eps=1e-5):
    X = V.float_array(X, "input", min_ndim=2)
    C = X.shape[1]
    for name, a in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                    ("bias", bias)):
        _channel_vector(a, name, C, X.dtype)
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must both be arrays or both be None, got "
                         f"{V.describe(running_mean)} and {V.describe(running_var)}")
    training = V.flag(training, "training")
    if not training and running_mean is None:
        raise ValueError("training=False normalizes with running_mean and running_var, got None for both")
    momentum = V.real_number(momentum, "momentum")
    eps = V.real_number(eps, "eps", low=0.0)
    if training and C and X.size // C == 1:
        raise ValueError(f"batch norm expected more than 1 value per channel when training, got input of shape "
                         f"{X.shape}")
    return dict(X=X, running_mean=running_mean, running_var=running_var, weight=weight, bias=bias,
                training=training, momentum=momentum, eps=eps)


def _channels(X):
    """The axes a channel's statistics run over (all but axis 1), and the shape that
    broadcasts a (C,) vector along axis 1."""
    return (0,) + tuple(range(2, X.ndim)), (1, X.shape[1]) + (1,) * (X.ndim - 2)


@kernel(_check_batch_norm)
def batch_norm(X, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Batch normalization, as ``torch.nn.functional.batch_norm``, but returning the new running statistics.

    In training, each channel c is normalized with the mean and the biased variance
    of its n values in the batch (n = N * L, or N * H * W)::

        mean_c = sum(x) / n,   var_c = sum((x - mean_c)^2) / n
        y = weight_c * (x - mean_c) / sqrt(var_c + eps) + bias_c

    and the running statistics move toward the batch's, with the unbiased variance::

        running_mean <- (1 - momentum) * running_mean + momentum * mean_c
        running_var  <- (1 - momentum) * running_var  + momentum * var_c * n / (n - 1)

    Otherwise (``training=False``) mean_c and var_c are the running statistics.

    Args:
        X: input, shape (N, C) or (N, C, *) (channels on axis 1).
        running_mean, running_var: (C,) or both None (no running statistics).
        weight, bias: (C,) or None (then 1 and 0).
        training: normalize with the batch's statistics (and update the running ones).
        momentum: the weight of the batch in the running statistics.
        eps: added to the variance.

    Returns:
        ``(Y, running_mean, running_var)``: Y shaped like X; in training the new
        running statistics (new arrays: the given ones are not modified), else the given ones.
    """
    axes, shape = _channels(X)
    if X.size == 0:   # an empty batch: nothing to normalize, the running statistics stay (as torch)
        return X.copy(), running_mean, running_var
    if training:
        mean = X.mean(axis=axes)
        var = X.var(axis=axes)                    # biased: what the batch is normalized with
        if running_mean is not None:
            n = X.size // X.shape[1]
            running_mean = (1 - momentum) * running_mean + momentum * mean
            running_var = (1 - momentum) * running_var + momentum * var * (n / (n - 1))   # unbiased
    else:
        mean, var = running_mean, running_var
    X_hat = (X - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    Y = X_hat if weight is None else X_hat * weight.reshape(shape)
    Y = Y if bias is None else Y + bias.reshape(shape)
    return Y, running_mean, running_var


def _check_batch_norm_backward(dY, X, weight, running_mean, running_var, training=False, eps=1e-5, *,
                               need_dX=True):
    X = V.float_array(X, "X", min_ndim=2)
    V.like(dY, "dY", X, "X")
    C = X.shape[1]
    for name, a in (("weight", weight), ("running_mean", running_mean), ("running_var", running_var)):
        _channel_vector(a, name, C, X.dtype)
    training = V.flag(training, "training")
    if not training and (running_mean is None or running_var is None):
        raise ValueError("training=False normalizes with running_mean and running_var, got None")
    return dict(dY=dY, X=X, weight=weight, running_mean=running_mean, running_var=running_var,
                training=training, eps=V.real_number(eps, "eps", low=0.0), need_dX=V.flag(need_dX, "need_dX"))


@kernel(_check_batch_norm_backward)
def batch_norm_backward(dY, X, weight, running_mean, running_var, training=False, eps=1e-5, *, need_dX=True):
    """Gradients of :func:`batch_norm` (the same statistics arguments as its forward).

    Per channel, over its n values, with x_hat = (x - mean) / s and s = sqrt(var + eps)::

        dbias   = sum(dY)
        dweight = sum(dY * x_hat)
        dX      = weight / (n s) * (n dY - sum(dY) - x_hat * sum(dY * x_hat))     (training)
        dX      = weight / s * dY                                                (running statistics)

    Derivation (training): with g = weight * dY, x_hat_i depends on every x_j of its
    channel through mean and var: d mean / d x_j = 1/n, d var / d x_j = 2 (x_j - mean) / n,
    so d x_hat_i / d x_j = (delta_ij - 1/n - x_hat_i x_hat_j / n) / s, and
    dX_j = sum_i g_i d x_hat_i / d x_j = (g_j - sum(g) / n - x_hat_j sum(g x_hat) / n) / s.
    With the running statistics, mean and s are constants and only delta_ij remains.

    Args:
        dY: upstream gradient, shaped like X.
        X: the forward input, (N, C) or (N, C, *).
        weight: (C,) or None (1).
        running_mean, running_var: (C,); read only when ``training`` is False.
        training: whether the forward normalized with the batch's statistics.
        eps: as in the forward.
        need_dX: compute dX (the first layer of a network does not need it).

    Returns:
        ``(dX, dweight, dbias)``: dX shaped like X (None when not needed), the others (C,).
    """
    axes, shape = _channels(X)
    if X.size == 0:
        zeros = np.zeros(X.shape[1], X.dtype)
        return (X.copy() if need_dX else None), zeros, zeros.copy()
    if training:
        mean, var = X.mean(axis=axes), X.var(axis=axes)
    else:
        mean, var = running_mean, running_var
    s = np.sqrt(var + eps)
    X_hat = (X - mean.reshape(shape)) / s.reshape(shape)
    dbias = dY.sum(axis=axes)
    dweight = (dY * X_hat).sum(axis=axes)
    if not need_dX:
        return None, dweight, dbias
    k = (s ** -1 if weight is None else weight / s).reshape(shape)
    if not training:
        return k * dY, dweight, dbias
    n = X.size // X.shape[1]
    dX = k / n * (n * dY - dbias.reshape(shape) - X_hat * dweight.reshape(shape))
    return dX, dweight, dbias


def _check_batch_norm_with_backward(X, running_mean, running_var, weight=None, bias=None, training=False,
                                    momentum=0.1, eps=1e-5):
    return _check_batch_norm(X, running_mean, running_var, weight, bias, training, momentum, eps)


@kernel(_check_batch_norm_with_backward)
def batch_norm_with_backward(X, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
                             eps=1e-5):
    """:func:`batch_norm` and :func:`batch_norm_backward` in one call, as ``nn.BatchNorm1d`` runs them.

    Returns ``(Y, running_mean, running_var, backward)`` with ``backward(dY, *,
    need_dX=True) -> (dX, dweight, dbias)`` for the statistics this forward used;
    dY arrives unchecked. (The fast twin keeps the centred input and 1 / s from
    the forward pass for the backward.)
    """
    Y, new_mean, new_var = batch_norm.plain(X, running_mean, running_var, weight, bias, training, momentum, eps)

    def backward(dY, *, need_dX=True):
        return batch_norm_backward.plain(dY, X, weight, running_mean, running_var, training, eps, need_dX=need_dX)

    return Y, new_mean, new_var, backward


# ------------------------------------------------------------------------ layer norm

def _check_layer_norm(X, normalized_shape, weight=None, bias=None, eps=1e-5):
    X = V.float_array(X, "input")
    shape = V.dims(normalized_shape, "normalized_shape")
    if X.shape[X.ndim - len(shape):] != shape or X.ndim < len(shape):
        raise ValueError(f"layer_norm with normalized_shape={shape} expected input of shape (*, "
                         f"{', '.join(map(str, shape))}), got {X.shape}")
    for name, a in (("weight", weight), ("bias", bias)):
        if a is not None:
            V.float_array(a, name)
            V.same_shape(a, name, shape)
            V.same_dtype(a, name, X.dtype)
    return dict(X=X, normalized_shape=shape, weight=weight, bias=bias, eps=V.real_number(eps, "eps", low=0.0))


@kernel(_check_layer_norm)
def layer_norm(X, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Layer normalization, as ``torch.nn.functional.layer_norm``.

    Each sample is normalized over its last D = len(normalized_shape) axes::

        y = weight * (x - mean) / sqrt(var + eps) + bias     (mean, biased var over those axes)

    Args:
        X: input, shape (*, *normalized_shape).
        normalized_shape: tuple of the trailing sizes (an int for one axis).
        weight, bias: shaped normalized_shape, or None (1 and 0).
        eps: added to the variance.

    Shape:
        Y: like X.
    """
    axes = tuple(range(X.ndim - len(normalized_shape), X.ndim))
    mean = X.mean(axis=axes, keepdims=True)
    var = X.var(axis=axes, keepdims=True)
    Y = (X - mean) / np.sqrt(var + eps)
    Y = Y if weight is None else Y * weight
    return Y if bias is None else Y + bias


def _check_layer_norm_backward(dY, X, normalized_shape, weight=None, eps=1e-5, *, need_dX=True):
    checked = _check_layer_norm(X, normalized_shape, weight, None, eps)
    V.like(dY, "dY", checked["X"], "X")
    return dict(dY=dY, X=checked["X"], normalized_shape=checked["normalized_shape"], weight=weight,
                eps=checked["eps"], need_dX=V.flag(need_dX, "need_dX"))


@kernel(_check_layer_norm_backward)
def layer_norm_backward(dY, X, normalized_shape, weight=None, eps=1e-5, *, need_dX=True):
    """Gradients of :func:`layer_norm`; over the D normalized axes (m values), with
    x_hat = (x - mean) / s, s = sqrt(var + eps) and g = weight * dY::

        dbias   = sum of dY over the leading axes
        dweight = sum of dY * x_hat over the leading axes
        dX      = (m g - sum(g) - x_hat * sum(g * x_hat)) / (m s)      (sums over the normalized axes)

    (batch norm's derivation, with the roles of the axes swapped).

    Returns:
        ``(dX, dweight, dbias)``: dX like X (None when not needed), the others shaped normalized_shape.
    """
    axes = tuple(range(X.ndim - len(normalized_shape), X.ndim))
    lead = tuple(range(X.ndim - len(normalized_shape)))
    mean = X.mean(axis=axes, keepdims=True)
    s = np.sqrt(X.var(axis=axes, keepdims=True) + eps)
    X_hat = (X - mean) / s
    dbias = dY.sum(axis=lead)
    dweight = (dY * X_hat).sum(axis=lead)
    if not need_dX:
        return None, dweight, dbias
    g = dY if weight is None else dY * weight
    m = math.prod(normalized_shape)
    dX = (m * g - g.sum(axis=axes, keepdims=True) - X_hat * (g * X_hat).sum(axis=axes, keepdims=True)) / (m * s)
    return dX, dweight, dbias
