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

Threads: the copies (X to batch last, each chunk's patches, each chunk's Y back to
(N, O, H, W) and its dY to batch last, col2im, dX back) are split into blocks of
rows, taps or channels shared among npnet's threads (``parallel.run``); the blocks
do not depend on the thread count and each writes only its own slice, so the
results are the same to the bit for every thread count. The products stay in the
calling thread: BLAS has threads of its own.

Single-group convolutions whose per-sample products are small, or can be cut into
pieces of columns that are (LeNet's two, the cnn's two), take another layout, batch
first, with no transpose of X or Y at all (see ``_takes_batch_first``).

The fused ``conv2d_with_backward`` (what ``nn.Conv2d`` runs) keeps the padded input
of its forward for the backward instead of building it again, and in the batch-first
layout its patches too, when they are small (``_KEEP_BYTES``).

Arguments arrive checked and normalized (pairs; padding ((top, bottom), (left, right))).
"""
import math

import numpy as np

from . import parallel


def _out_hw(X, W, padding, stride, dilation):
    return tuple((X.shape[2 + a] + sum(padding[a]) - dilation[a] * (W.shape[2 + a] - 1) - 1) // stride[a] + 1
                 for a in (0, 1))


# The copies are shared among the threads in blocks of about this many bytes (fixed, so
# that the blocks do not depend on the thread count).
_BLOCK_BYTES = 1 << 18


def _spans(n, item_bytes, block_bytes=None):
    """Slices of consecutive blocks of ``range(n)`` of about ``block_bytes`` (default _BLOCK_BYTES) each."""
    step = max(1, (block_bytes or _BLOCK_BYTES) // max(1, item_bytes))
    return [slice(k, min(k + step, n)) for k in range(0, n, step)]


def _batch_last(X, padding):
    """(N, C, H, W) -> zero-padded (C, Hp, Wp, N), in blocks of input rows."""
    N, C, H, W = X.shape
    (pt, pb), (pl, pr) = padding
    Xt = np.empty((C, H + pt + pb, W + pl + pr, N), X.dtype)
    if pt or pb or pl or pr:
        Xt[:, :pt], Xt[:, pt + H:], Xt[:, :, :pl], Xt[:, :, pl + W:] = 0, 0, 0, 0

    def block(h):
        Xt[:, pt + h.start: pt + h.stop, pl: pl + W] = X[:, :, h].transpose(1, 2, 3, 0)

    parallel.run(block, _spans(H, N * C * W * X.itemsize))
    return Xt


def _back_to_nchw(dXt, padding, shape):
    """The inside of a padded (C, Hp, Wp, N) array as a fresh (N, C, H, W) one, in blocks of rows."""
    N, C, H, W = shape
    (pt, _), (pl, _) = padding
    dX = np.empty(shape, dXt.dtype)

    def block(h):
        dX[:, :, h] = dXt[:, pt + h.start: pt + h.stop, pl: pl + W].transpose(3, 0, 1, 2)

    parallel.run(block, _spans(H, N * C * W * dXt.itemsize))
    return dX


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

    def tap(t):                      # a block per tap
        i, j = divmod(t, kW)
        P[:, i, j] = Xt[(slice(None),) + _tap(i, j, rows, out_w, stride, dilation)]

    parallel.run(tap, range(kH * kW))
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
    out_hw = _out_hw(X, W, padding, stride, dilation)
    if _takes_batch_first(X, W, out_hw, groups):
        return _forward_batch_first(X, _padded_planes(X, padding), W, b, out_hw, stride, dilation, padding, True)
    return _forward(_batch_last(X, padding), W, b, out_hw, stride, dilation, groups)


def conv2d_backward(dY, X, W, *, stride=1, padding=0, dilation=1, groups=1, need_dX=True, need_db=True):
    if X.ndim == 3:
        dX, dW, db = conv2d_backward(dY[None], X[None], W, stride=stride, padding=padding, dilation=dilation,
                                     groups=groups, need_dX=need_dX, need_db=need_db)
        return (None if dX is None else dX[0]), dW, db
    if _takes_batch_first(X, W, dY.shape[2:], groups):
        Xp = _padded_planes(X, padding)
        _forward_batch_first(X, Xp, W, None, dY.shape[2:], stride, dilation, padding, False)   # pads only
        return _backward_batch_first(dY, Xp, X.shape, W, stride, padding, dilation, need_dX, need_db)
    return _backward(dY, _batch_last(X, padding), X.shape, W, stride, padding, dilation, groups, need_dX, need_db)


def conv2d_with_backward(X, W, b=None, stride=1, padding=0, dilation=1, groups=1):
    # The padded input (batch last, or batch first: see _takes_batch_first) is built once, for the
    # forward, and kept for the backward (as large as X); the patches, kH kW times larger, are
    # kept too when batch first and at most _KEEP_BYTES, else built again block by block.
    if X.ndim == 3:
        Y, backward = conv2d_with_backward(X[None], W, b, stride, padding, dilation, groups)

        def unbatched(dY, *, need_dX=True, need_db=True):
            dX, dW, db = backward(dY[None], need_dX=need_dX, need_db=need_db)
            return (None if dX is None else dX[0]), dW, db

        return Y[0], unbatched
    shape, out_hw = X.shape, _out_hw(X, W, padding, stride, dilation)
    if _takes_batch_first(X, W, out_hw, groups):
        Xp = _padded_planes(X, padding)
        CK = math.prod(W.shape[1:])
        kept = np.empty((shape[0], CK, out_hw[0] * out_hw[1]), X.dtype) \
            if shape[0] * CK * out_hw[0] * out_hw[1] * X.itemsize <= _KEEP_BYTES else None
        Y = _forward_batch_first(X, Xp, W, b, out_hw, stride, dilation, padding, True, kept)

        def backward(dY, *, need_dX=True, need_db=True):
            return _backward_batch_first(dY, Xp, shape, W, stride, padding, dilation, need_dX, need_db, kept)

        return Y, backward
    Xt = _batch_last(X, padding)
    Y = _forward(Xt, W, b, out_hw, stride, dilation, groups)

    def backward(dY, *, need_dX=True, need_db=True):
        return _backward(dY, Xt, shape, W, stride, padding, dilation, groups, need_dX, need_db)

    return Y, backward


def _forward(Xt, W, b, out_hw, stride, dilation, groups):
    N, O = Xt.shape[3], W.shape[0]
    W2 = W.reshape(O, math.prod(W.shape[1:]))
    Y = np.empty((N, O) + out_hw, Xt.dtype)
    for rows in _row_chunks(out_hw, W2.shape[1] * groups * out_hw[1] * N * Xt.itemsize):
        P = _patches(Xt, W.shape[2:], rows, out_hw[1], stride, dilation)
        Yt = np.empty((O, P.shape[1]), Xt.dtype)                     # Y^T = W2 P: (O, rows oW N)
        for o, k in zip(_blocks(O, groups), _blocks(P.shape[0], groups)):
            np.matmul(W2[o], P[k], out=Yt[o])
        Yt = Yt.reshape(O, rows[1] - rows[0], out_hw[1], N)

        def back(o):                 # back to (N, O, H, W) while the chunk is in cache, a block of channels at a time
            if b is not None:
                Yt[o] += b[o, None, None, None]
            Y[:, o, rows[0]: rows[1]] = Yt[o].transpose(3, 0, 1, 2)

        parallel.run(back, _spans(O, Yt[0].nbytes))
    return Y


def _backward(dY, Xt, shape, W, stride, padding, dilation, groups, need_dX, need_db):
    N, C = shape[:2]
    O, _, kH, kW = W.shape
    out_hw = dY.shape[2:]
    W2 = W.reshape(O, math.prod(W.shape[1:]))
    CK = C * kH * kW
    # dW2^T = P dY (rather than dW2 = dY^T P^T: BLAS runs the long sum faster this way round)
    dW2t = np.zeros((CK, O // groups), Xt.dtype)
    dXt = np.zeros(Xt.shape, Xt.dtype) if need_dX else None
    for rows in _row_chunks(out_hw, CK * out_hw[1] * N * Xt.itemsize):
        P = _patches(Xt, (kH, kW), rows, out_hw[1], stride, dilation)     # (C kH kW, chunk columns)
        dYc = np.empty((O, rows[1] - rows[0], out_hw[1], N), Xt.dtype)

        def batch_last(o):
            dYc[o] = dY[:, o, rows[0]: rows[1]].transpose(1, 2, 3, 0)

        parallel.run(batch_last, _spans(O, dYc[0].nbytes))
        dYc = dYc.reshape(O, P.shape[1])
        for o, k in zip(_blocks(O, groups), _blocks(CK, groups)):
            dW2t[k] += P[k] @ dYc[o].T
        if not need_dX:
            continue
        dP = np.empty(P.shape, Xt.dtype)                                 # dP = W2^T dY^T
        for o, k in zip(_blocks(O, groups), _blocks(CK, groups)):
            np.matmul(W2[o].T, dYc[o], out=dP[k])
        dP = dP.reshape(C, kH, kW, rows[1] - rows[0], out_hw[1], N)

        def col2im(c):               # each tap's share back, by blocks of channels (taps overlap within a channel)
            for i in range(kH):
                for j in range(kW):
                    dXt[(c,) + _tap(i, j, rows, out_hw[1], stride, dilation)] += dP[c, i, j]

        parallel.run(col2im, _spans(C, dP[0].nbytes))
    dW = dW2t.reshape(groups, CK // groups, O // groups).transpose(0, 2, 1).reshape(W.shape)
    db = dY.sum(axis=(0, 2, 3)) if need_db else None
    if not need_dX:
        return None, dW, db
    return _back_to_nchw(dXt, padding, shape), dW, db


# ------------------------------------------------------------- small products: batch first
#
# A sample's patch matrix P_n (C kH kW, oH oW) times W2 (O, C kH kW) is already that
# sample's output (O, oH oW): no transpose of X, Y, dY or dX at all, but one small product
# per sample, and patches copied in runs of one image row. Blocks of samples of about
# _CHUNK_BYTES of patches each pad their input planes, build their patches and run their
# products, all shared among npnet's threads; the backward returns each block's share of
# dW, added in block order. This pays while each sample's product is below OpenBLAS's size
# for threads (M N K <= 65536 * 4): BLAS then runs it in the thread that calls it. Above
# that, BLAS's threads and npnet's fight over the cores. Measured fwd + bwd, 2 threads,
# medians under load (batch first against batch last, torch): (256, 1, 28, 28) -> 6@5x5
# pad 2: 54 against 432 ms, torch 167 ms; (256, 6, 14, 14) -> 16@5x5: 44-59 against 94-97 ms,
# torch 49-66 ms. Larger per-sample products are cut into pieces of columns (output positions)
# under that size, so that BLAS still runs each in the calling thread: the cnn's second,
# (256, 16, 14, 14) -> 32@3x3 pad 1 (32 x 144 x 196 per sample, pieces of 56 columns), went from
# 239-285 ms whole (BLAS's threads against npnet's) and 138-145 ms batch last to 63-84 ms, torch
# 43-119 ms, all interleaved; timed without torch in between, where BLAS's threads get the
# cores, the two layouts are even (56-69 against 53-65 ms).
_BATCH_FIRST_PRODUCT = 65536 * 4


# The fused forward keeps the batch-first patches for the backward's dW when they take at
# most this many bytes (LeNet's second conv at batch 256: 15.4 MB; the cnn's first 7.2 MB; the
# cnn's second, 29 MB, builds them again), instead of building them a second time.
_KEEP_BYTES = 1 << 24

# A product's columns are cut into pieces of at least this many (fewer: BLAS runs too slowly).
_MIN_PIECE = 32


def _takes_batch_first(X, W, out_hw, groups):
    """Whether a convolution takes the batch-first layout: one group, and per-sample products that
    fit under OpenBLAS's size for threads, whole or in pieces of at least _MIN_PIECE columns."""
    return groups == 1 and W.shape[0] * math.prod(W.shape[1:]) * min(out_hw[0] * out_hw[1], _MIN_PIECE) \
        <= _BATCH_FIRST_PRODUCT


def _pieces(O, CK, L):
    """Column slices of the per-sample products (O x CK) x (CK x L), each under OpenBLAS's size for threads."""
    step = int(min(max(L, 1), max(1, _BATCH_FIRST_PRODUCT // max(1, O * CK))))
    return [slice(k, min(k + step, L)) for k in range(0, L, step)]


def _padded_planes(X, padding):
    """A zeroed (N, C, Hp, Wp) array for the padded planes of X (filled by the forward)."""
    (pt, pb), (pl, pr) = padding
    return np.zeros(X.shape[:2] + (X.shape[2] + pt + pb, X.shape[3] + pl + pr), X.dtype)


def _sample_blocks(N, K, out_hw, itemsize):
    """Blocks of samples of about _CHUNK_BYTES of patches each."""
    return _spans(N, K * out_hw[0] * out_hw[1] * itemsize, _CHUNK_BYTES)


def _planes_patches(Xp, kernel_size, out_hw, stride, dilation, out=None):
    """(n, C kH kW, oH oW): each sample's patch matrix, from its padded planes (into ``out`` if given)."""
    # one strided copy of the view (n, C, kH, kW, oH, oW) of the planes, rather than one per tap:
    # LeNet's second conv, all samples, 1 thread: 22 -> 14 ms
    n, C = Xp.shape[:2]
    sn, sc, sy, sx = Xp.strides
    view = np.lib.stride_tricks.as_strided(
        Xp, (n, C) + tuple(kernel_size) + tuple(out_hw),
        (sn, sc, dilation[0] * sy, dilation[1] * sx, stride[0] * sy, stride[1] * sx), writeable=False)
    P = np.empty(view.shape, Xp.dtype) if out is None else out.reshape(view.shape)
    np.copyto(P, view)
    return P.reshape(n, C * kernel_size[0] * kernel_size[1], out_hw[0] * out_hw[1])


def _forward_batch_first(X, Xp, W, b, out_hw, stride, dilation, padding, compute, kept=None):
    """Pads X's planes into Xp and, if ``compute``, returns Y = W2 P_n + b for every sample n (and
    writes the patches P_n into ``kept``, if given, for the backward)."""
    N, _, H, Wd = X.shape
    (pt, _), (pl, _) = padding
    O = W.shape[0]
    W2 = W.reshape(O, -1)
    Y = np.empty((N, O) + tuple(out_hw), X.dtype) if compute else None

    def block(s):
        Xp[s, :, pt: pt + H, pl: pl + Wd] = X[s]
        if not compute:
            return
        Yb = Y[s].reshape(-1, O, out_hw[0] * out_hw[1])
        P = _planes_patches(Xp[s], W.shape[2:], out_hw, stride, dilation, None if kept is None else kept[s])
        for c in _pieces(O, W2.shape[1], Yb.shape[2]):
            np.matmul(W2, P[:, :, c], out=Yb[:, :, c])
        if b is not None:
            Yb += b[:, None]

    parallel.run(block, _sample_blocks(N, W2.shape[1], out_hw, X.itemsize))
    return Y


def _backward_batch_first(dY, Xp, shape, W, stride, padding, dilation, need_dX, need_db, kept=None):
    N, C, H, Wd = shape
    (pt, _), (pl, _) = padding
    O, _, kH, kW = W.shape
    out_hw = dY.shape[2:]
    CK = C * kH * kW
    W2 = W.reshape(O, CK)
    dX = np.empty(shape, Xp.dtype) if need_dX else None

    def block(s):
        P = _planes_patches(Xp[s], (kH, kW), out_hw, stride, dilation) if kept is None else kept[s]
        dYb = np.ascontiguousarray(dY[s]).reshape(-1, O, out_hw[0] * out_hw[1])
        pieces = _pieces(O, CK, dYb.shape[2])
        part = np.zeros((CK, O), Xp.dtype)                                     # this block's dW2^T
        for c in pieces:
            part += np.matmul(P[:, :, c], dYb[:, :, c].transpose(0, 2, 1)).sum(axis=0)
        if need_dX:
            # the block's dY with its samples last, so that dP = W2^T dY comes out (C kH kW, oH oW n) and
            # col2im adds runs of oW n numbers instead of oW (fwd+bwd, interleaved, 1 and 2 threads: LeNet's
            # second conv 24-32 -> 20-28 ms, its first 20-22 -> 18.5 ms, the cnn's second unchanged)
            n = dYb.shape[0]
            dYt = np.ascontiguousarray(dYb.transpose(1, 2, 0)).reshape(O, -1)
            dP = np.empty((CK, dYt.shape[1]), Xp.dtype)
            for c in _pieces(O, CK, dYt.shape[1]):
                np.matmul(W2.T, dYt[:, c], out=dP[:, c])
            dP = dP.reshape((C, kH, kW) + tuple(out_hw) + (n,))
            dXt = np.zeros((C,) + Xp.shape[2:] + (n,), Xp.dtype)
            for i in range(kH):
                for j in range(kW):
                    dXt[(slice(None),) + _tap(i, j, (0, out_hw[0]), out_hw[1], stride, dilation)] += dP[:, i, j]
            dX[s] = dXt[:, pt: pt + H, pl: pl + Wd].transpose(3, 0, 1, 2)
        return part

    dW2t = np.zeros((CK, O), Xp.dtype)
    for part in parallel.run(block, _sample_blocks(N, CK, out_hw, Xp.dtype.itemsize)):
        dW2t += part                                                           # in block order
    db = dY.sum(axis=(0, 2, 3)) if need_db else None
    return dX, np.ascontiguousarray(dW2t.T).reshape(W.shape), db
