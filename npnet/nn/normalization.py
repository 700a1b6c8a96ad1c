"""Normalization layers: BatchNorm1d, BatchNorm2d and LayerNorm, as torch's.

Each keeps the contract of :mod:`npnet.nn.layers`: ``forward(X, train=True)``
returns ``(Y, backward)`` and ``backward(dY, *, need_dx=True)`` returns
``(dX, grads)``. A BatchNorm also holds torch's buffers in ``module.buffers``
(``running_mean``, ``running_var``, ``num_batches_tracked``): a training forward
updates them in place, as torch's training mode does (the one change a forward
makes to a layer), so a Sequential's view of them and a saved reference stay
valid. The input is never modified.
"""
import numpy as np

from .. import _validate as V
from ._kernels import K   # the active kernels, unchecked: each module checks its arguments once
from .layers import Module, _Like, _check_dy

__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm"]


def _check_dtype(module, X):
    """Mixed dtypes are refused, as Linear refuses them (nothing to compare with: any float)."""
    for v in (*module.params.values(), *module.buffers.values()):
        if v.dtype.kind == "f" and v.dtype != X.dtype:
            raise TypeError(f"{module!r} holds {v.dtype} parameters but got {X.dtype} input; cast the input "
                            f"(x.astype(np.{v.dtype})) or the layer (layer.to(np.{X.dtype}))")
        if v.dtype.kind == "f":
            return



def _reset_affine(module):
    """An affine normalization's start, as torch's: weight = 1, bias = 0 (where they exist)."""
    if "weight" in module.params:
        module.params["weight"][...] = 1
    if "bias" in module.params:
        module.params["bias"][...] = 0
    return module

class _BatchNorm(Module):
    """What BatchNorm1d and BatchNorm2d share; they differ in the input's number of axes."""

    _NDIMS = ()   # the input ndims the subclass accepts

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, *,
                 bias=True, dtype=np.float32):
        super().__init__()
        self.num_features = V.integer(num_features, "num_features", low=1)
        self.eps = V.real_number(eps, "eps", low=0.0)
        self.momentum = None if momentum is None else V.real_number(momentum, "momentum", low=0.0, high=1.0)
        self.affine = V.flag(affine, "affine")
        self.bias = V.flag(bias, "bias")
        self.track_running_stats = V.flag(track_running_stats, "track_running_stats")
        dtype = V.float_dtype(dtype)
        C = self.num_features
        if self.affine:
            self.params["weight"] = np.empty(C, dtype)
            if self.bias:
                self.params["bias"] = np.empty(C, dtype)
        if self.track_running_stats:
            self.buffers["running_mean"] = np.empty(C, dtype)
            self.buffers["running_var"] = np.empty(C, dtype)
            self.buffers["num_batches_tracked"] = np.zeros((), np.int64)
        self.reset_parameters()

    def reset_running_stats(self):
        """running_mean = 0, running_var = 1, num_batches_tracked = 0 (in place), as torch."""
        if self.track_running_stats:
            self.buffers["running_mean"][...] = 0
            self.buffers["running_var"][...] = 1
            self.buffers["num_batches_tracked"][...] = 0
        return self

    def reset_parameters(self):
        """weight = 1, bias = 0 and the running statistics reset, as torch."""
        self.reset_running_stats()
        return _reset_affine(self)

    def _check(self, X):
        V.float_array(X, "input")
        if X.ndim not in self._NDIMS:
            want = " or ".join(f"{n}-d" for n in self._NDIMS)
            raise ValueError(f"{self!r} expected {want} input (N, C{', L' if 3 in self._NDIMS else ', H, W'}), "
                             f"got shape {X.shape}")
        if X.shape[1] != self.num_features:
            raise ValueError(f"{self!r} expected {self.num_features} channels on axis 1 of input, got shape {X.shape}")
        _check_dtype(self, X)

    def forward(self, X, train=True):
        self._check(X)
        train = V.flag(train, "train")
        update = train and self.track_running_stats   # torch's training mode with running statistics
        batch_stats = train or not self.track_running_stats
        if batch_stats and X.size == self.num_features:
            raise ValueError(f"{self!r} expected more than 1 value per channel when training, got input of shape "
                             f"{X.shape}")
        B = self.buffers
        running_mean, running_var = (B["running_mean"], B["running_var"]) if self.track_running_stats else (None, None)
        if not update and running_mean is not None:
            # copies: a later training forward updates the buffers in place, and this backward must not see it
            running_mean, running_var = running_mean.copy(), running_var.copy()
        if batch_stats and not update:
            running_mean = running_var = None   # torch: track_running_stats=False normalizes with the batch's
        momentum = 0.0
        if update:   # momentum=None is torch's cumulative average: 1 / (number of batches so far)
            momentum = 1.0 / (int(B["num_batches_tracked"]) + 1) if self.momentum is None else self.momentum
        W, b = self.params.get("weight"), self.params.get("bias")
        Y, new_mean, new_var, kernel_backward = K.batch_norm_with_backward(
            X, running_mean, running_var, W, b, batch_stats, momentum, self.eps)
        if update:
            B["running_mean"][...] = new_mean
            B["running_var"][...] = new_var
            B["num_batches_tracked"] += 1
        out = _Like(Y.shape, Y.dtype)
        has_w, has_b = W is not None, b is not None
        name = type(self).__name__

        def backward(dY, *, need_dx=True):
            _check_dy(dY, out, name)
            # dX = weight / (n s) * (n dY - sum(dY) - x_hat * sum(dY * x_hat)), per channel
            dX, dW, db = kernel_backward(dY, need_dX=V.flag(need_dx, "need_dx"))
            grads = {}
            if has_w:
                grads["weight"] = dW          # sum(dY * x_hat)
            if has_b:
                grads["bias"] = db            # sum(dY)
            return dX, grads

        return Y, backward

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalization over a (N, C) or (N, C, L) input, as ``torch.nn.BatchNorm1d``.

    ``y = weight * (x - mean) / sqrt(var + eps) + bias`` per channel (axis 1). In
    training (``forward(x)``, ``train=True``) mean and var are the batch's (the
    biased variance, over N and L), and the running statistics move toward them::

        running_mean <- (1 - momentum) * running_mean + momentum * mean
        running_var  <- (1 - momentum) * running_var  + momentum * var * n / (n - 1)

    (``momentum=None``: the cumulative average, momentum = 1 / num_batches_tracked).
    At inference (``module(x)``, ``train=False``) the running statistics normalize;
    with ``track_running_stats=False`` there are none, and the batch's always do.

    Args:
        num_features: C, the number of channels.
        eps: added to the variance.
        momentum: in [0, 1], or None for the cumulative average.
        affine: learn ``weight`` (ones) and ``bias`` (zeros), shape (C,).
        track_running_stats: keep the buffers running_mean (zeros), running_var
            (ones) and num_batches_tracked (0-d int64).
        bias: learn ``bias`` (with affine), as torch's keyword.
        dtype: np.float32 (default) or np.float64.

    Shape:
        input (N, C) or (N, C, L) -> output of the same shape.
    """

    _NDIMS = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalization over a (N, C, H, W) input, as ``torch.nn.BatchNorm2d``: each
    channel's statistics run over N, H and W. Everything else as :class:`BatchNorm1d`.

    Shape:
        input (N, C, H, W) -> output of the same shape.
    """

    _NDIMS = (4,)


class LayerNorm(Module):
    """Layer normalization over the trailing ``normalized_shape`` axes, as ``torch.nn.LayerNorm``.

    ``y = weight * (x - mean) / sqrt(var + eps) + bias``, mean and the biased var of
    each sample over those axes; the same in training and at inference.

    Args:
        normalized_shape: an int (the last axis) or a tuple of the trailing sizes.
        eps: added to the variance.
        elementwise_affine: learn ``weight`` (ones) and ``bias`` (zeros), shaped normalized_shape.
        bias: learn ``bias`` (with elementwise_affine).
        dtype: np.float32 (default) or np.float64.

    Shape:
        input (*, *normalized_shape) -> output of the same shape.
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, *, dtype=np.float32):
        super().__init__()
        self.normalized_shape = V.dims(normalized_shape, "normalized_shape")
        self.eps = V.real_number(eps, "eps", low=0.0)
        self.elementwise_affine = V.flag(elementwise_affine, "elementwise_affine")
        self.bias = V.flag(bias, "bias")
        dtype = V.float_dtype(dtype)
        if self.elementwise_affine:
            self.params["weight"] = np.ones(self.normalized_shape, dtype)
            if self.bias:
                self.params["bias"] = np.zeros(self.normalized_shape, dtype)

    def reset_parameters(self):
        """weight = 1, bias = 0, as torch."""
        return _reset_affine(self)

    def _check(self, X):
        V.float_array(X, "input")
        shape = self.normalized_shape
        if X.ndim < len(shape) or X.shape[X.ndim - len(shape):] != shape:
            raise ValueError(f"{self!r} expected input of shape (*, {', '.join(map(str, shape))}), got {X.shape}")
        _check_dtype(self, X)

    def forward(self, X, train=True):
        self._check(X)
        V.flag(train, "train")
        W, b = self.params.get("weight"), self.params.get("bias")
        Y = K.layer_norm(X, self.normalized_shape, W, b, self.eps)
        out = _Like(Y.shape, Y.dtype)

        def backward(dY, *, need_dx=True):
            _check_dy(dY, out, "LayerNorm")
            # dX = (m g - sum(g) - x_hat * sum(g * x_hat)) / (m s), g = weight * dY, over the normalized axes
            dX, dW, db = K.layer_norm_backward(dY, X, self.normalized_shape, W, self.eps,
                                               need_dX=V.flag(need_dx, "need_dx"))
            grads = {}
            if W is not None:
                grads["weight"] = dW          # sum of dY * x_hat over the leading axes
            if b is not None:
                grads["bias"] = db            # sum of dY over the leading axes
            return dX, grads

        return Y, backward

    def __call__(self, X):
        self._check(X)
        return K.layer_norm(X, self.normalized_shape, self.params.get("weight"), self.params.get("bias"), self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias}")
