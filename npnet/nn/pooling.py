"""Pooling layers: MaxPool2d and AvgPool2d, as torch's, with no parameters.

Each keeps the contract of :mod:`npnet.nn.layers`: ``forward(X, train=True)``
returns ``(Y, backward)`` and ``backward(dY, *, need_dx=True)`` returns
``(dX, {})``. The math is in :mod:`npnet.nn.functional.pooling`.
"""
from .. import _validate as V
from ._kernels import K   # the active kernels, unchecked: each module checks its arguments once
from .functional.pooling import _check_pool
from .layers import Module, _Like, _check_dy

__all__ = ["MaxPool2d", "AvgPool2d"]


def _shown(value):
    """A size as torch's repr shows it: as given, an int or a tuple."""
    return tuple(value) if isinstance(value, (tuple, list)) else int(value)


class _Pool2d(Module):
    """What both pools share: the window arguments, checked once, and the input check."""

    def __init__(self, kernel_size, stride, padding, dilation, ceil_mode):
        super().__init__()
        self.kernel_size = V.int_pair(kernel_size, "kernel_size", low=1)
        self.stride = self.kernel_size if stride is None else V.int_pair(stride, "stride", low=1)
        self.padding = V.int_pair(padding, "padding", low=0)
        self.dilation = V.int_pair(dilation, "dilation", low=1)
        self.ceil_mode = V.flag(ceil_mode, "ceil_mode")
        k, p = self.kernel_size, self.padding
        if p[0] > k[0] // 2 or p[1] > k[1] // 2:
            raise ValueError(f"padding must be at most half of kernel_size {_shown(kernel_size)}, got {_shown(padding)}")
        self._shown = {"kernel_size": _shown(kernel_size), "stride": _shown(kernel_size if stride is None else stride),
                       "padding": _shown(padding), "dilation": _shown(dilation)}

    def _check(self, X):
        _check_pool(X, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)


class MaxPool2d(_Pool2d):
    """The maximum of each window, as ``torch.nn.MaxPool2d`` (no ``return_indices``).

    Args:
        kernel_size: the window, an int or a pair (h, w).
        stride: the step between windows (default: kernel_size).
        padding: -inf added on each side, at most half of kernel_size.
        dilation: the step between a window's elements.
        ceil_mode: round the output size up instead of down.

    Shape:
        input (N, C, H, W) or (C, H, W) -> output (N, C, out_h, out_w) or (C, out_h, out_w),
        out = floor((H + 2 padding - dilation (kernel_size - 1) - 1) / stride) + 1.

    The gradient of each output goes to the input element its window took the
    maximum from: the first of tied maxima in row-major window order, the last
    NaN of a window holding NaN, as torch's CPU kernel routes it.
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        super().__init__(kernel_size, stride, padding, dilation, ceil_mode)

    def _window(self):
        return self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode

    def forward(self, X, train=True):
        self._check(X)
        Y, kernel_backward = K.max_pool2d_with_backward(X, *self._window())
        out = _Like(Y.shape, Y.dtype)

        def backward(dY, *, need_dx=True):
            _check_dy(dY, out, "MaxPool2d")
            if not V.flag(need_dx, "need_dx"):
                return None, {}
            return kernel_backward(dY), {}   # dX = dY at each window's argmax

        return Y, backward

    def __call__(self, X):
        self._check(X)
        return K.max_pool2d(X, *self._window())

    def extra_repr(self):
        s = self._shown
        return (f"kernel_size={s['kernel_size']}, stride={s['stride']}, padding={s['padding']}, "
                f"dilation={s['dilation']}, ceil_mode={self.ceil_mode}")


class AvgPool2d(_Pool2d):
    """The mean of each window, as ``torch.nn.AvgPool2d`` (without ``divisor_override``).

    Args:
        kernel_size: the window, an int or a pair (h, w).
        stride: the step between windows (default: kernel_size).
        padding: zeros added on each side, at most half of kernel_size.
        ceil_mode: round the output size up instead of down.
        count_include_pad: divide by the window's size including its padding
            (but not what runs past the padding in ceil_mode), else by its
            positions inside the input.

    Shape:
        input (N, C, H, W) or (C, H, W) -> output (N, C, out_h, out_w) or (C, out_h, out_w),
        out = floor((H + 2 padding - kernel_size) / stride) + 1.
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__(kernel_size, stride, padding, 1, ceil_mode)
        self.count_include_pad = V.flag(count_include_pad, "count_include_pad")

    def _window(self):
        return self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad

    def forward(self, X, train=True):
        self._check(X)
        Y = K.avg_pool2d(X, *self._window())
        out = _Like(Y.shape, Y.dtype)

        def backward(dY, *, need_dx=True):
            _check_dy(dY, out, "AvgPool2d")
            if not V.flag(need_dx, "need_dx"):
                return None, {}
            return K.avg_pool2d_backward(dY, X, *self._window()), {}   # dX = dY / count, spread over each window

        return Y, backward

    def __call__(self, X):
        self._check(X)
        return K.avg_pool2d(X, *self._window())

    def extra_repr(self):
        s = self._shown
        return f"kernel_size={s['kernel_size']}, stride={s['stride']}, padding={s['padding']}"
