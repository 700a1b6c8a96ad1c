"""Fast twins of Conv2d's kernels: the convolution as large matrix products.

The plain kernels add one product per kernel tap; here the taps are unfolded into a
patch matrix (im2col) so that each of the three products of a layer (forward, dW,
dX) is one BLAS call per group and chunk of output rows.

Layout: batch last. The padded input is laid out (C, Hp, Wp, N), so the values a
kernel tap sees are a slice whose rows are long contiguous runs (oW * N numbers),
and the patch matrix P has rows (c, i, j) and columns (y, x, n)::

    P[(c, i, j), (y, x, n)] = Xp[n, c, s_h y + d_h i, s_w x + d_w j]
    Y^T = W2 P           W2 = W.reshape(O, C/G kH kW), per group
    dW2^T = P dY         db = sums of dY
    dP  = W2^T dY^T      then col2im: each tap's rows of dP added back into dXp

Copying the patches from the batch-last input and adding dP back into it are
kH kW copies of long runs, a few times cheaper than from (N, C, H, W), where a run
is one image row (measured at (256, 6, 14, 14) -> 16@5x5: 1.1 ms against 6.5 ms
for the patches, 2.8 ms against 20 ms for col2im). The price is the transposes
of X, Y, dY and dX between (N, C, H, W) and batch last.

Chunks: a layer works through its output rows a chunk at a time (about
``_CHUNK_BYTES`` of patches), so that a chunk's patches, its products, its dP and
the transposes of its Y and dY stay in cache (measured under load: LeNet's first
conv 1.11x -> 0.85x torch, its second 1.91x -> 1.79x its floor).

Arguments arrive checked and normalized (pairs; padding ((top, bottom), (left, right))).
"""
import math

import numpy as np


def _out_hw(X, W, padding, stride, dilation):
    return tuple((X.shape[2 + a] + sum(padding[a]) - dilation[a] * (W.shape[2 + a] - 1) - 1) // stride[a] + 1
                 for a in (0, 1))


def _batch_last(X, padding):
    """(N, C, H, W) -> zero-padded (C, Hp, Wp, N)."""
    N, C, H, W = X.shape
    (pt, pb), (pl, pr) = padding
    Xt = np.empty((C, H + pt + pb, W + pl + pr, N), X.dtype)
    if pt or pb or pl or pr:
        Xt[:, :pt], Xt[:, pt + H:], Xt[:, :, :pl], Xt[:, :, pl + W:] = 0, 0, 0, 0
    Xt[:, pt: pt + H, pl: pl + W] = X.transpose(1, 2, 3, 0)
    return Xt


def _tap(i, j, rows, out_w, stride, dilation):
    """The (rows, columns) slices of a batch-last array that kernel tap (i, j) sees, for the
    output rows ``rows = (y0, y1)``."""
    (y0, y1), (sh, sw), (dh, dw) = rows, stride, dilation
    return (slice(dh * i + sh * y0, dh * i + sh * (y1 - 1) + 1, sh), slice(dw * j, dw * j + sw * (out_w - 1) + 1, sw))


def _patches(Xt, kernel_size, rows, out_w, stride, dilation):
    """The patch matrix (C kH kW, (y1 - y0) oW N) of a batch-last padded input, output rows y0..y1."""
    C, N = Xt.shape[0], Xt.shape[3]
    kH, kW = kernel_size
    P = np.empty((C, kH, kW, rows[1] - rows[0], out_w, N), Xt.dtype)
    for i in range(kH):
        for j in range(kW):
            P[:, i, j] = Xt[(slice(None),) + _tap(i, j, rows, out_w, stride, dilation)]
    return P.reshape(C * kH * kW, (rows[1] - rows[0]) * out_w * N)


# A layer works through its output rows in chunks whose patch matrix takes about this
# many bytes, so that the patches, built tap by tap, are still in cache for the products
# and dP, computed a chunk at a time, is still in cache when col2im adds it back: at
# (256, 6, 14, 14) -> 16@5x5 the whole patch matrix takes 15 MB.
_CHUNK_BYTES = 1 << 20


def _row_chunks(out_hw, row_bytes):
    """(y0, y1) of consecutive chunks of output rows, each of about _CHUNK_BYTES of patches."""
    step = max(1, _CHUNK_BYTES // max(1, row_bytes))
    return [(y, min(y + step, out_hw[0])) for y in range(0, out_hw[0], step)]


def _blocks(n, groups):
    """The slices of ``groups`` equal consecutive blocks of ``n`` rows."""
    size = n // groups
    return [slice(g * size, (g + 1) * size) for g in range(groups)]


def conv2d(X, W, b=None, stride=1, padding=0, dilation=1, groups=1):
    if X.ndim == 3:
        return conv2d(X[None], W, b, stride, padding, dilation, groups)[0]
    N, O = X.shape[0], W.shape[0]
    out_hw = _out_hw(X, W, padding, stride, dilation)
    Xt = _batch_last(X, padding)
    W2 = W.reshape(O, math.prod(W.shape[1:]))
    Y = np.empty((N, O) + out_hw, X.dtype)
    for rows in _row_chunks(out_hw, W2.shape[1] * groups * out_hw[1] * N * X.itemsize):
        P = _patches(Xt, W.shape[2:], rows, out_hw[1], stride, dilation)
        Yt = np.empty((O, P.shape[1]), X.dtype)                      # Y^T = W2 P: (O, rows oW N)
        for o, k in zip(_blocks(O, groups), _blocks(P.shape[0], groups)):
            np.matmul(W2[o], P[k], out=Yt[o])
        if b is not None:
            Yt += b[:, None]
        # back to (N, O, H, W) a chunk at a time, while the chunk is in cache
        Y[:, :, rows[0]: rows[1]] = Yt.reshape(O, rows[1] - rows[0], out_hw[1], N).transpose(3, 0, 1, 2)
    return Y


def conv2d_backward(dY, X, W, *, stride=1, padding=0, dilation=1, groups=1, need_dX=True, need_db=True):
    if X.ndim == 3:
        dX, dW, db = conv2d_backward(dY[None], X[None], W, stride=stride, padding=padding, dilation=dilation,
                                     groups=groups, need_dX=need_dX, need_db=need_db)
        return (None if dX is None else dX[0]), dW, db
    N, C, H, Wd = X.shape
    O, _, kH, kW = W.shape
    out_hw = dY.shape[2:]
    Xt = _batch_last(X, padding)
    W2 = W.reshape(O, math.prod(W.shape[1:]))
    CK = C * kH * kW
    # dW2^T = P dY (rather than dW2 = dY^T P^T: BLAS runs the long sum faster this way round)
    dW2t = np.zeros((CK, O // groups), X.dtype)
    dXt = np.zeros(Xt.shape, X.dtype) if need_dX else None
    for rows in _row_chunks(out_hw, CK * out_hw[1] * N * X.itemsize):
        P = _patches(Xt, (kH, kW), rows, out_hw[1], stride, dilation)     # (C kH kW, chunk columns)
        dYc = np.ascontiguousarray(dY[:, :, rows[0]: rows[1]].transpose(1, 2, 3, 0)).reshape(O, P.shape[1])
        for o, k in zip(_blocks(O, groups), _blocks(CK, groups)):
            dW2t[k] += P[k] @ dYc[o].T
        if not need_dX:
            continue
        dP = np.empty(P.shape, X.dtype)                                  # dP = W2^T dY^T
        for o, k in zip(_blocks(O, groups), _blocks(CK, groups)):
            np.matmul(W2[o].T, dYc[o], out=dP[k])
        dP = dP.reshape(C, kH, kW, rows[1] - rows[0], out_hw[1], N)
        for i in range(kH):                                              # col2im: each tap's share back
            for j in range(kW):
                dXt[(slice(None),) + _tap(i, j, rows, out_hw[1], stride, dilation)] += dP[:, i, j]
    dW = dW2t.reshape(groups, CK // groups, O // groups).transpose(0, 2, 1).reshape(W.shape)
    db = dY.sum(axis=(0, 2, 3)) if need_db else None
    if not need_dX:
        return None, dW, db
    (pt, _), (pl, _) = padding
    return np.ascontiguousarray(dXt[:, pt: pt + H, pl: pl + Wd].transpose(3, 0, 1, 2)), dW, db
