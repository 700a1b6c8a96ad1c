"""Convolution layers: ``Conv2d``, as ``torch.nn.Conv2d``.

Each keeps the contract of :mod:`npnet.nn.layers`: ``forward(X, train=True)``
returns ``(Y, backward)`` and ``backward(dY, *, need_dx=True)`` returns
``(dX, grads)``; the math is in :mod:`npnet.nn.functional.conv`.
"""

import numpy as np

from .. import _validate as V
from ._kernels import K   # the active kernels, unchecked: each module checks its arguments once
from .functional.conv import _check_fits, _pads
from .layers import Module, _check_dy, _Like, _torch_default_init

__all__ = ["Conv2d"]


class Conv2d(Module):
    """2-D convolution over (N, C, H, W) images, as ``torch.nn.Conv2d``.

    Y[n, o, y, x] = b[o] + sum_{c, i, j} W[o, c, i, j] Xp[n, g C/G + c, s_h y + d_h i, s_w x + d_w j]
    (Xp: the input padded with zeros; g: the group of output channel o).

    ``weight`` has shape (out_channels, in_channels / groups, kH, kW) and ``bias``
    (out_channels,), as torch's ``state_dict``. Initialized as torch does it:
    W ~ kaiming_uniform_(a=sqrt(5)), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and
    b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in_channels / groups * kH * kW.

    Args:
        in_channels, out_channels: C and O, both divisible by ``groups``.
        kernel_size: an int or a pair (kH, kW).
        stride, dilation: an int or a pair, at least 1.
        padding: an int or a pair of zeros added on both sides, or "valid" (none) or "same"
            (output as large as the input; stride 1 only; an odd total pads the bottom/right
            one more, as torch).
        groups: G: input channel block g feeds output channel block g only.
        bias: learn an additive bias.
        rng: numpy Generator for the initial values (default: a fresh one).
        dtype: np.float32 (default) or np.float64.

    Shape:
        input (N, C, H, W) or (C, H, W) -> output (N, O, oH, oW) or (O, oH, oW),
        oH = (H + pad_top + pad_bottom - d_h (kH - 1) - 1) // s_h + 1, oW alike.

    Example::

        >>> conv = Conv2d(1, 6, 5, padding=2, rng=np.random.default_rng(0))
        >>> y, backward = conv.forward(np.ones((2, 1, 28, 28), np.float32))
        >>> y.shape
        (2, 6, 28, 28)
        >>> dx, grads = backward(np.ones_like(y))
        >>> grads["weight"].shape, grads["bias"].shape
        ((6, 1, 5, 5), (6,))
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, *, rng=None, dtype=np.float32):
        super().__init__()
        self.in_channels = V.integer(in_channels, "in_channels", low=0)
        self.out_channels = V.integer(out_channels, "out_channels", low=0)
        self.kernel_size = V.int_pair(kernel_size, "kernel_size", low=1)
        self.stride = V.int_pair(stride, "stride", low=1)
        self.dilation = V.int_pair(dilation, "dilation", low=1)
        self.groups = V.integer(groups, "groups", low=1)
        if self.in_channels % self.groups:
            raise ValueError(f"in_channels must be divisible by groups: got in_channels={self.in_channels}, "
                             f"groups={self.groups}")
        if self.out_channels % self.groups:
            raise ValueError(f"out_channels must be divisible by groups: got out_channels={self.out_channels}, "
                             f"groups={self.groups}")
        self._pads = _pads(padding, self.kernel_size, self.dilation, self.stride)   # ((top, bottom), (left, right))
        self.padding = padding if isinstance(padding, str) else V.int_pair(padding, "padding")
        V.flag(bias, "bias")
        dtype = V.float_dtype(dtype)
        self.params["weight"] = np.empty((self.out_channels, self.in_channels // self.groups) + self.kernel_size, dtype)
        if bias:
            self.params["bias"] = np.empty((self.out_channels,), dtype)
        self.reset_parameters(rng=rng)

    def reset_parameters(self, rng=None):
        """Draw fresh initial values exactly as ``torch.nn.Conv2d.reset_parameters``."""
        return _torch_default_init(self, rng)

    def _check(self, X):
        W = self.params["weight"]
        V.float_array(X, "input")
        if X.ndim not in (3, 4) or X.shape[-3] != self.in_channels:
            raise ValueError(f"{self!r} expected input (N, {self.in_channels}, H, W) or ({self.in_channels}, H, W), "
                             f"got {X.shape}")
        if X.dtype != W.dtype:
            raise TypeError(f"{self!r} holds {W.dtype} parameters but got {X.dtype} input; "
                            f"cast the input (x.astype(np.{W.dtype})) or the layer (layer.to(np.{X.dtype}))")
        _check_fits(X, self.kernel_size, self._pads, self.dilation, "input")

    def _settings(self):
        return dict(stride=self.stride, padding=self._pads, dilation=self.dilation, groups=self.groups)

    def forward(self, X, train=True):
        self._check(X)
        W, b = self.params["weight"], self.params.get("bias")
        settings = self._settings()
        # Y = b + sum over taps of W[:, :, i, j] times what tap (i, j) sees
        Y, kernel_backward = K.conv2d_with_backward(X, W, b, **settings)
        out = _Like(Y.shape, Y.dtype)        # not Y itself: backward needs only its shape, and Y can be freed

        def backward(dY, *, need_dx=True):
            _check_dy(dY, out, "Conv2d")
            dX, dW, db = kernel_backward(dY, need_dX=V.flag(need_dx, "need_dx"), need_db=b is not None)
            grads = {"weight": dW}           # dW[o, c, i, j] = sum of dY times what tap (i, j) saw
            if b is not None:
                grads["bias"] = db           # db = sum of dY over batch and positions
            return dX, grads                 # dX: dY sent back through each tap's W[:, :, i, j]

        return Y, backward

    def __call__(self, X):
        self._check(X)
        return K.conv2d(X, self.params["weight"], self.params.get("bias"), **self._settings())

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if "bias" not in self.params:
            s += ", bias=False"
        return s

