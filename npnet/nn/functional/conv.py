"""Conv2d's plain kernels: the 2-D convolution of ``torch.nn.functional.conv2d`` and its gradients.

A convolution (a cross-correlation, as in every deep-learning library) slides a
kernel of kH x kW taps over the zero-padded input. With stride s, dilation d and
G groups (input channel block g of C/G channels feeds output block g of O/G)::

    Y[n, o, y, x] = b[o] + sum_{c, i, j} W[o, c, i, j] * Xp[n, g*C/G + c, s_h*y + d_h*i, s_w*x + d_w*j]

where g = o // (O/G) and Xp is X with ``padding`` zeros around H and W. The
kernels below read it tap by tap: for each kernel tap (i, j) the input values
that tap sees form a strided slice of Xp, shaped like Y; the forward adds
``W[:, :, i, j]`` times that slice, the backward sends dY back the same way.

The public kernels take torch's arguments (an int or a pair for stride, padding
and dilation; padding also "same" or "valid"); the check hands the bodies pairs,
with padding as ((top, bottom), (left, right)).
"""
import numpy as np

from ... import _validate as V
from .._kernels import kernel

# --------------------------------------------------------------------------- shapes and checks


def _pads(padding, kernel_size, dilation, stride):
    """torch's padding argument as ((top, bottom), (left, right)).

    "same" pads the dilated kernel's extent d*(k - 1) in total, the odd one on the
    bottom/right, as torch does; torch refuses it for strided convolutions.
    """
    if isinstance(padding, str):
        V.choice(padding, "padding", ("same", "valid"))
        if padding == "valid":
            return (0, 0), (0, 0)
        if stride != (1, 1):
            raise ValueError(f"padding='same' is not supported for strided convolutions: got stride {stride}; "
                             f"pass padding as numbers instead")
        total = [d * (k - 1) for d, k in zip(dilation, kernel_size)]
        return tuple((t // 2, t - t // 2) for t in total)
    ph, pw = V.int_pair(padding, "padding", low=0)
    return (ph, ph), (pw, pw)


def _out_size(size, pads, k, s, d):
    """Output length along one axis: (padded size - dilated kernel extent) // stride + 1."""
    return (size + sum(pads) - d * (k - 1) - 1) // s + 1


def _check_fits(X, kernel_size, pads, dilation, name):
    padded = tuple(X.shape[-2 + a] + sum(pads[a]) for a in (0, 1))
    extent = tuple(d * (k - 1) + 1 for d, k in zip(dilation, kernel_size))
    if padded[0] < extent[0] or padded[1] < extent[1]:
        raise ValueError(f"{name} of shape {X.shape} is padded to {padded}, smaller than the (dilated) kernel "
                         f"{extent}: the kernel must fit inside the padded input")


def _check_geometry(X, W, stride, padding, dilation, groups, x_name, w_name):
    X = V.float_array(X, x_name)
    if X.ndim not in (3, 4):
        raise ValueError(f"{x_name} must be 3-D (C, H, W) or 4-D (N, C, H, W), got shape {X.shape}")
    W = V.float_array(W, w_name)
    if W.ndim != 4:
        raise ValueError(f"{w_name} must be 4-D (out_channels, in_channels/groups, kH, kW), got shape {W.shape}")
    V.same_dtype(W, w_name, X.dtype)
    groups = V.integer(groups, "groups", low=1)
    if W.shape[0] % groups:
        raise ValueError(f"{w_name} has {W.shape[0]} output channels, expected a multiple of groups={groups}")
    if X.shape[-3] != W.shape[1] * groups:
        raise ValueError(f"{x_name} must have {W.shape[1] * groups} channels (axis {X.ndim - 3}) for {w_name} of shape "
                         f"{W.shape} and groups={groups}, got shape {X.shape}")
    if min(W.shape[2:]) < 1:
        raise ValueError(f"{w_name} must have a kernel of at least 1 x 1, got shape {W.shape}")
    stride = V.int_pair(stride, "stride", low=1)
    dilation = V.int_pair(dilation, "dilation", low=1)
    pads = _pads(padding, W.shape[2:], dilation, stride)
    _check_fits(X, W.shape[2:], pads, dilation, x_name)
    return X, W, stride, pads, dilation, groups


def _check_conv2d(X, W, b=None, stride=1, padding=0, dilation=1, groups=1):
    X, W, stride, pads, dilation, groups = _check_geometry(X, W, stride, padding, dilation, groups, "input", "weight")
    if b is not None:
        V.float_array(b, "bias")
        V.same_shape(b, "bias", W.shape[:1])
        V.same_dtype(b, "bias", X.dtype)
    return dict(X=X, W=W, b=b, stride=stride, padding=pads, dilation=dilation, groups=groups)


def _tap(A, i, j, out_hw, stride, dilation):
    """``A[..., s_h*y + d_h*i, s_w*x + d_w*j]`` for y < oH, x < oW: what kernel tap (i, j) sees (a view)."""
    (oH, oW), (sh, sw), (dh, dw) = out_hw, stride, dilation
    return A[..., dh * i: dh * i + sh * (oH - 1) + 1: sh, dw * j: dw * j + sw * (oW - 1) + 1: sw]


# --------------------------------------------------------------------------- Conv2d

@kernel(_check_conv2d)
def conv2d(X, W, b=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution over an (N, C, H, W) input, as ``torch.nn.functional.conv2d``.

    Y[n, o, y, x] = b[o] + sum_{c, i, j} W[o, c, i, j] Xp[n, g C/G + c, s_h y + d_h i, s_w x + d_w j]
    with g = o // (O/G) and Xp the input padded with zeros.

    Args:
        X: input, shape (N, C, H, W), or (C, H, W) unbatched.
        W: weight, shape (O, C/groups, kH, kW) (torch's layout).
        b: optional bias, shape (O,).
        stride, dilation: an int or a pair (height, width), at least 1.
        padding: an int or a pair of zeros added on both sides, or "valid" (none) or
            "same" (output as large as the input; stride 1 only; an odd total puts the
            extra zero at the bottom/right, as torch).
        groups: G, dividing C and O.

    Shape:
        Y: (N, O, oH, oW), oH = (H + pad_top + pad_bottom - d_h (kH - 1) - 1) // s_h + 1 (oW alike),
        the dtype of X; (O, oH, oW) for an unbatched input.
    """
    unbatched = X.ndim == 3
    Xp = np.pad(X[None] if unbatched else X, ((0, 0), (0, 0)) + padding)   # zeros around H and W
    W = np.ascontiguousarray(W)   # einsum sums in an order set by the memory layout: one layout, the same bits
    N, C, Hp, Wp = Xp.shape
    O, Cg, kH, kW = W.shape
    Og = O // groups
    out_hw = tuple(_out_size(s, (0, 0), k, st, d) for s, k, st, d in zip((Hp, Wp), (kH, kW), stride, dilation))
    Y = np.zeros((N, O) + out_hw, X.dtype)
    for g in range(groups):
        cin, cout = slice(g * Cg, (g + 1) * Cg), slice(g * Og, (g + 1) * Og)
        for i in range(kH):
            for j in range(kW):
                seen = _tap(Xp[:, cin], i, j, out_hw, stride, dilation)          # (N, Cg, oH, oW)
                Y[:, cout] += np.einsum("nchw,oc->nohw", seen, W[cout, :, i, j])
    if b is not None:
        Y += b[:, None, None]
    return Y[0] if unbatched else Y


def _check_conv2d_backward(dY, X, W, *, stride=1, padding=0, dilation=1, groups=1, need_dX=True, need_db=True):
    X, W, stride, pads, dilation, groups = _check_geometry(X, W, stride, padding, dilation, groups, "X", "W")
    out_hw = tuple(_out_size(X.shape[-2 + a], pads[a], W.shape[2 + a], stride[a], dilation[a]) for a in (0, 1))
    dY = V.float_array(dY, "dY")
    expected = X.shape[:-3] + W.shape[:1] + out_hw
    if dY.shape != expected:
        raise ValueError(f"dY must have the output's shape {expected} (X shape {X.shape}, W shape {W.shape}), "
                         f"got {dY.shape}")
    if dY.dtype != X.dtype:
        raise TypeError(f"dY must have dtype {X.dtype} to match X, got {dY.dtype}")
    return dict(dY=dY, X=X, W=W, stride=stride, padding=pads, dilation=dilation, groups=groups,
                need_dX=V.flag(need_dX, "need_dX"), need_db=V.flag(need_db, "need_db"))


@kernel(_check_conv2d_backward)
def conv2d_backward(dY, X, W, *, stride=1, padding=0, dilation=1, groups=1, need_dX=True, need_db=True):
    """Gradients of ``Y = conv2d(X, W, b, ...)``, tap by tap.

    dW[o, c, i, j] = sum_{n, y, x} dY[n, o, y, x] Xp[n, g C/G + c, s_h y + d_h i, s_w x + d_w j]
    dXp[n, g C/G + c, s_h y + d_h i, s_w x + d_w j] += sum_o dY[n, o, y, x] W[o, c, i, j]   (then un-padded)
    db[o] = sum_{n, y, x} dY[n, o, y, x]

    Args:
        dY: upstream gradient, shaped like Y: (N, O, oH, oW), or (O, oH, oW) unbatched.
        X, W: the forward input and weight; stride, padding, dilation, groups: as the forward's.
        need_dX: compute dX; the first layer of a network does not need it.
        need_db: compute db (False for a layer without bias).

    Returns:
        ``(dX, dW, db)``, shaped like X, W and (O,); ``dX`` and ``db`` are None when not needed.
    """
    unbatched = X.ndim == 3
    if unbatched:
        X, dY = X[None], dY[None]
    dY, W = np.ascontiguousarray(dY), np.ascontiguousarray(W)   # one memory layout: the same bits for any view
    (pt, pb), (pl, pr) = padding
    Xp = np.pad(X, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    O, Cg, kH, kW = W.shape
    Og = O // groups
    dW = np.zeros(W.shape, X.dtype)
    dXp = np.zeros(Xp.shape, X.dtype) if need_dX else None
    for g in range(groups):
        cin, cout = slice(g * Cg, (g + 1) * Cg), slice(g * Og, (g + 1) * Og)
        for i in range(kH):
            for j in range(kW):
                seen = _tap(Xp[:, cin], i, j, dY.shape[2:], stride, dilation)        # (N, Cg, oH, oW)
                dW[cout, :, i, j] = np.einsum("nohw,nchw->oc", dY[:, cout], seen)
                if need_dX:
                    back = _tap(dXp[:, cin], i, j, dY.shape[2:], stride, dilation)   # a view into dXp
                    back += np.einsum("nohw,oc->nchw", dY[:, cout], W[cout, :, i, j])
    db = dY.sum(axis=(0, 2, 3)) if need_db else None
    dX = None
    if need_dX:
        dX = dXp[:, :, pt: pt + X.shape[2], pl: pl + X.shape[3]]
        dX = dX[0] if unbatched else dX
    return dX, dW, db


@kernel(_check_conv2d)
def conv2d_with_backward(X, W, b=None, stride=1, padding=0, dilation=1, groups=1):
    """:func:`conv2d` and :func:`conv2d_backward` in one call, as ``nn.Conv2d`` runs them.

    Returns ``(Y, backward)`` with ``backward(dY, *, need_dX=True, need_db=True) -> (dX, dW, db)``;
    dY arrives unchecked. (The fast twin keeps the padded input of the forward for the backward.)
    """
    Y = conv2d.plain(X, W, b, stride, padding, dilation, groups)

    def backward(dY, *, need_dX=True, need_db=True):
        return conv2d_backward.plain(dY, X, W, stride=stride, padding=padding, dilation=dilation, groups=groups,
                                     need_dX=need_dX, need_db=need_db)

    return Y, backward
