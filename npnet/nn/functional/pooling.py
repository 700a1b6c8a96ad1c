"""Pooling's plain kernels: max and average over sliding windows of an image, and their gradients.

An input is (N, C, H, W), or (C, H, W) unbatched, as torch takes it; windows slide
over the last two axes. A window of output position (y, x) covers the rows
``s_h * y - p_h + d_h * i`` (i = 0 .. k_h - 1) of the input padded by p_h on each
side, and the columns likewise. Its output size along an axis of size n is::

    out = floor((n + 2p - d (k - 1) - 1) / s) + 1          (ceil instead of floor when ceil_mode)

and with ceil_mode the last window must start inside the input or its left padding
(else out is one less), exactly as torch sizes it. Padding counts for nothing in a
max (it is -inf) and, unless ``count_include_pad``, for nothing in an average.
"""
import numpy as np

from ... import _validate as V
from .._kernels import kernel


# ---------------------------------------------------------------------- arguments

def _check_pool(X, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Check the input and the window arguments; returns them with every size a pair."""
    X = V.float_array(X, "input")
    if X.ndim not in (3, 4) or 0 in X.shape[-3:]:
        raise ValueError(f"input must be (N, C, H, W) or unbatched (C, H, W) with C, H and W at least 1, "
                         f"got shape {X.shape}")
    k = V.int_pair(kernel_size, "kernel_size", low=1)
    s = k if stride is None else V.int_pair(stride, "stride", low=1)
    p = V.int_pair(padding, "padding", low=0)
    d = V.int_pair(dilation, "dilation", low=1)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"padding must be at most half of kernel_size {k}, got {p}")
    ceil_mode = V.flag(ceil_mode, "ceil_mode")
    out = output_size(X.shape[-2:], k, s, p, d, ceil_mode)
    if min(out) < 1:
        raise ValueError(f"kernel_size {k} with dilation {d} is larger than the input {X.shape[-2:]} padded by {p}: "
                         f"the output would be {out}")
    return dict(X=X, kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil_mode)


def output_size(size, kernel_size, stride, padding, dilation, ceil_mode):
    """(out_h, out_w) of a pooling of an (H, W) image, as torch sizes it (every argument a pair)."""
    out = []
    for n, k, s, p, d in zip(size, kernel_size, stride, padding, dilation):
        span = n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)
        m = span // s + 1
        if ceil_mode and (m - 1) * s >= n + p:   # the last window would start in the right padding
            m -= 1
        out.append(m)
    return tuple(out)


def _check_backward(dY, X, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    args = _check_pool(X, kernel_size, stride, padding, dilation, ceil_mode)
    X = args["X"]
    expected = X.shape[:-2] + output_size(X.shape[-2:], *(args[a] for a in ("kernel_size", "stride", "padding",
                                                                             "dilation", "ceil_mode")))
    dY = V.float_array(dY, "dY")
    if dY.shape != expected:
        raise ValueError(f"dY must have the output's shape {expected}, got {dY.shape}")
    if dY.dtype != X.dtype:
        raise TypeError(f"dY must have dtype {X.dtype} to match X, got {dY.dtype}")
    return dict(dY=dY, **args)


def _windows(X, kernel_size, stride, padding, dilation, ceil_mode, fill):
    """The input padded with ``fill`` (far enough right for ceil_mode's last windows), a mask
    of its real (H, W) positions, the output size and ``at(i, j)``: the strided slice that
    holds offset (i, j) of every window."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    H, W = X.shape[-2:]
    oh, ow = output_size((H, W), kernel_size, stride, padding, dilation, ceil_mode)
    extra_h = max(0, (oh - 1) * sh + dh * (kh - 1) + 1 - (H + 2 * ph))
    extra_w = max(0, (ow - 1) * sw + dw * (kw - 1) + 1 - (W + 2 * pw))
    pads = ((ph, ph + extra_h), (pw, pw + extra_w))
    Xp = np.pad(X, ((0, 0),) * (X.ndim - 2) + pads, constant_values=fill)
    real = np.pad(np.ones((H, W), bool), pads, constant_values=False)

    def at(i, j):
        return (..., slice(i * dh, i * dh + (oh - 1) * sh + 1, sh), slice(j * dw, j * dw + (ow - 1) * sw + 1, sw))
    return Xp, real, (oh, ow), at


def _unpad(Xp, padding, shape):
    (ph, pw), (H, W) = padding, shape[-2:]
    return Xp[..., ph:ph + H, pw:pw + W]


# ----------------------------------------------------------------------- max pool

def _argmax(X, kernel_size, stride, padding, dilation, ceil_mode):
    """Each window's maximum and the offset ``i * k_w + j`` where it sits, found as torch's
    CPU kernel finds it: a running comparison over the window's real positions in row-major
    order, replaced by a larger value (so the first of tied maxima wins) or by any NaN (so
    a window holding NaN gives NaN, from its last NaN). Padding is never chosen."""
    Xp, real, (oh, ow), at = _windows(X, kernel_size, stride, padding, dilation, ceil_mode, -np.inf)
    Y = np.full(X.shape[:-2] + (oh, ow), -np.inf, X.dtype)
    arg = np.zeros(Y.shape, np.int64)
    seen = np.zeros((oh, ow), bool)            # has the window met a real position yet?
    kh, kw = kernel_size
    for i in range(kh):
        for j in range(kw):
            v, ok = Xp[at(i, j)], real[at(i, j)]
            take = ok & (~seen | (v > Y) | np.isnan(v))
            Y = np.where(take, v, Y)
            arg = np.where(take, i * kw + j, arg)
            seen |= ok
    return Y, arg


@kernel(_check_pool)
def max_pool2d(X, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """The maximum of each window, as ``torch.nn.functional.max_pool2d``.

    Y[..., y, x] = max over i < k_h, j < k_w of Xp[..., s_h y + d_h i, s_w x + d_w j],
    Xp the input padded with -inf by p on each side.

    Args:
        X: input, shape (N, C, H, W) or (C, H, W).
        kernel_size, stride, padding, dilation: an int or a pair (h, w); stride
            defaults to kernel_size; padding at most half the kernel size.
        ceil_mode: round the output size up (see the module docstring).

    Shape:
        Y: (N, C, out_h, out_w) (or (C, out_h, out_w)), the dtype of X.
    """
    return _argmax(X, kernel_size, stride, padding, dilation, ceil_mode)[0]


@kernel(_check_backward)
def max_pool2d_backward(dY, X, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """dX: each dY[..., y, x] goes to the one input position its window took the maximum from
    (the first of tied maxima, the last NaN), summed where windows overlap.

    Shape:
        dY: the output's shape; dX: the shape of X.
    """
    _, arg = _argmax(X, kernel_size, stride, padding, dilation, ceil_mode)
    Xp, _, _, at = _windows(X, kernel_size, stride, padding, dilation, ceil_mode, 0)
    dXp = np.zeros(Xp.shape, X.dtype)
    kh, kw = kernel_size
    for i in range(kh):
        for j in range(kw):
            dXp[at(i, j)] += np.where(arg == i * kw + j, dY, 0)
    return _unpad(dXp, padding, X.shape)


@kernel(_check_pool)
def max_pool2d_with_backward(X, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """:func:`max_pool2d` and :func:`max_pool2d_backward` in one call, as ``nn.MaxPool2d`` runs them.

    Returns ``(Y, backward)`` with ``backward(dY) -> dX``; dY arrives unchecked. (The fast
    twin keeps each window's argmax from the forward pass for the backward.)
    """
    Y = max_pool2d.plain(X, kernel_size, stride, padding, dilation, ceil_mode)

    def backward(dY):
        return max_pool2d_backward.plain(dY, X, kernel_size, stride, padding, dilation, ceil_mode)

    return Y, backward


# ----------------------------------------------------------------------- avg pool

def _check_avg_pool(X, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    args = _check_pool(X, kernel_size, stride, padding, 1, ceil_mode)
    del args["dilation"]
    return dict(args, count_include_pad=V.flag(count_include_pad, "count_include_pad"))


def _check_avg_pool_backward(dY, X, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    args = _check_backward(dY, X, kernel_size, stride, padding, 1, ceil_mode)
    del args["dilation"]
    return dict(args, count_include_pad=V.flag(count_include_pad, "count_include_pad"))


def _divisor(size, kernel_size, stride, padding, out, count_include_pad):
    """(out_h, out_w): how many positions each window averages. With ``count_include_pad``
    the padding counts but not what lies past it (ceil_mode's last windows), as torch."""
    counts = []
    for n, k, s, p, m in zip(size, kernel_size, stride, padding, out):
        start = np.arange(m) * s - p
        if count_include_pad:
            counts.append(np.minimum(start + k, n + p) - start)
        else:
            counts.append(np.minimum(start + k, n) - np.maximum(start, 0))
    return np.outer(*counts)


@kernel(_check_avg_pool)
def avg_pool2d(X, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """The mean of each window, as ``torch.nn.functional.avg_pool2d`` (no divisor_override).

    Y[..., y, x] = sum over i < k_h, j < k_w of Xp[..., s_h y + i, s_w x + j] / count[y, x],
    Xp the input padded with zeros; count[y, x] the window's positions inside the
    input, plus those in the padding if ``count_include_pad`` (see :func:`_divisor`).

    Shape:
        X: (N, C, H, W) or (C, H, W); Y: (..., out_h, out_w), the dtype of X.
    """
    Xp, _, out, at = _windows(X, kernel_size, stride, padding, (1, 1), ceil_mode, 0)
    Y = np.zeros(X.shape[:-2] + out, X.dtype)
    with np.errstate(invalid="ignore"):   # inf + -inf in a window is nan, as torch's
        for i in range(kernel_size[0]):
            for j in range(kernel_size[1]):
                Y += Xp[at(i, j)]
    return Y / _divisor(X.shape[-2:], kernel_size, stride, padding, out, count_include_pad).astype(X.dtype)


@kernel(_check_avg_pool_backward)
def avg_pool2d_backward(dY, X, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """dX: each window spreads dY[..., y, x] / count[y, x] evenly over its positions,
    summed where windows overlap (what lands on padding is dropped).

    Shape:
        dY: the output's shape; dX: the shape of X.
    """
    Xp, _, out, at = _windows(X, kernel_size, stride, padding, (1, 1), ceil_mode, 0)
    G = dY / _divisor(X.shape[-2:], kernel_size, stride, padding, out, count_include_pad).astype(X.dtype)
    dXp = np.zeros(Xp.shape, X.dtype)
    with np.errstate(invalid="ignore"):   # overlapping windows: inf + -inf is nan, as torch's
        for i in range(kernel_size[0]):
            for j in range(kernel_size[1]):
                dXp[at(i, j)] += G
    return _unpad(dXp, padding, X.shape)
