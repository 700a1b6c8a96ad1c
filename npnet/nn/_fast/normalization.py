"""Fast twins of batch norm and layer norm: the same values as the plain kernels, in fewer passes over memory.

The tricks for batch norm (layer norm's are told where its twins start):

- the input is seen as (N, C * L) rows, and a per-channel vector as its repeat
  over L, ``np.repeat(v, L)``: every elementwise step then runs along long
  contiguous rows, with no per-channel broadcast of length-L inner loops (which
  for BatchNorm1d's (N, C), L = 1, would be a loop per element);
- per-channel sums of short channels as BLAS products (``ones(N) @ X``, then a sum
  over L); of long channels, one ``einsum`` sum or dot per (sample, channel) row, a
  block of samples at a time, so that no array of products is written, then a sum
  over the samples;
- the centred input ``x - mean`` is computed once, kept by the closure and read
  by the backward, which therefore recomputes neither the statistics nor x_hat;
- the elementwise passes (centring with the squares' sums, scaling and shifting; in
  the backward the sums of dY and dY (x - mean), then dX) run over blocks of samples
  of about ``_BLOCK_BYTES``, so each block's arrays are read from memory once per phase
  rather than once per step (fwd+bwd at (256, 32, 14, 14): 13.8 -> 7.9 ms; at (256, 16,
  28, 28): 29.9 -> 25.5 ms; one thread, under load); the blocks are shared among
  npnet's threads (:mod:`.parallel`), the same blocks for every thread count;
- the backward's dX = weight / (n s) (n dY - sum(dY) - x_hat sum(dY x_hat)) is,
  per channel, the affine map ``a dY + b (x - mean) + c``: three passes with
  per-channel numbers instead of a pass per term.

Arguments arrive checked (by the public kernel or by a module): nothing is re-checked.
"""
import numpy as np

from . import parallel

_LONG = 64   # channels of at least this many values per sample sum as rows of their own


def _rows(A, N):
    """A as contiguous (N, C * L) (a view when A is contiguous). Contiguous also for a
    strided input: BLAS and einsum sum a strided row in another order, and a strided
    input must give the very bits a contiguous one gives."""
    return np.ascontiguousarray(A).reshape(N, -1)


def _sums(A2, C):
    """Per-channel sums of A2 (N, C * L)."""
    N, CL = A2.shape
    if CL // C >= _LONG:
        return (A2.reshape(N * C, -1) @ np.ones(CL // C, A2.dtype)).reshape(N, C).sum(axis=0)
    return (np.ones(N, A2.dtype) @ A2).reshape(C, -1).sum(axis=1)


def _dots(A2, B2, C):
    """Per-channel sums of A2 * B2 (both (N, C * L))."""
    N, CL = A2.shape
    if CL // C >= _LONG:
        return np.einsum("ij,ij->i", A2.reshape(N * C, -1), B2.reshape(N * C, -1)).reshape(N, C).sum(axis=0)
    return _sums(A2 * B2, C)


def batch_norm_with_backward(X, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
                             eps=1e-5):
    # Every block loop below runs its blocks of samples on the threads (parallel.run); a
    # block writes only its own rows of Xc, Y, dX and of the per-(sample, channel) partial
    # sums (rs, sq, S, T), which are then summed over the samples in one fixed order.
    # BatchNorm2d fwd+bwd, float32, 1 -> 2 threads (medians, on a machine busy with other
    # work): (256, 6, 28, 28) 31 -> 24 ms, (256, 16, 28, 28) 68 -> 44 ms, (256, 32, 14, 14)
    # 36 -> 27 ms; (256, 16, 10, 10), two blocks, gains nothing there (3.6 -> 4.0 ms).
    N, C = X.shape[:2]
    shape = X.shape   # the backward needs X's shape only: it must not keep X itself alive
    n = X.size // C
    L = n // N
    R = _rows(X, N)
    blocks = _blocks(N, R.shape[1] * R.itemsize)
    long = L >= _LONG
    Xc = np.empty(R.shape, R.dtype)
    if training:
        if long:     # a sum per (sample, channel) row, on the threads, then over the samples
            rs = np.empty((N, C), R.dtype)

            def row_sums(b):
                rs[b] = _row_sums(R[b], C)

            parallel.run(row_sums, blocks)
            mean = rs.sum(axis=0) / R.dtype.type(n)
        else:
            mean = _sums(R, C) / R.dtype.type(n)
        m = np.repeat(mean, L)
        if long:     # each block's rows are centred and their squares summed while still in cache
            sq = np.empty((N, C), R.dtype)

            def centre(b):
                np.subtract(R[b], m, out=Xc[b])
                sq[b] = _row_dots(Xc[b], Xc[b], C)

            parallel.run(centre, blocks)
            var = sq.sum(axis=0) / R.dtype.type(n)
        else:
            parallel.run(lambda b: np.subtract(R[b], m, out=Xc[b]), blocks)
            var = _dots(Xc, Xc, C) / R.dtype.type(n)
        if running_mean is not None:
            running_mean = (1 - momentum) * running_mean + momentum * mean
            running_var = (1 - momentum) * running_var + momentum * var * (n / (n - 1))
    else:
        m = np.repeat(running_mean, L)
        parallel.run(lambda b: np.subtract(R[b], m, out=Xc[b]), blocks)
        var = running_var
    inv = 1 / np.sqrt(var + eps)
    k = inv if weight is None else weight * inv
    kL, biasL = np.repeat(k, L), None if bias is None else np.repeat(bias, L)
    Y = np.empty(R.shape, R.dtype)

    def scale(b):
        np.multiply(Xc[b], kL, out=Y[b])
        if biasL is not None:
            Y[b] += biasL

    parallel.run(scale, blocks)

    def backward(dY, *, need_dX=True):
        D = _rows(dY, N)
        if long:     # sum(dY) and sum(dY * (x - mean)), a block of rows at a time: D and Xc read once
            S, T = np.empty((N, C), D.dtype), np.empty((N, C), D.dtype)

            def sums(b):
                S[b] = _row_sums(D[b], C)
                T[b] = _row_dots(D[b], Xc[b], C)

            parallel.run(sums, blocks)
            dbias, dot = S.sum(axis=0), T.sum(axis=0)
        else:
            dbias, dot = _sums(D, C), _dots(D, Xc, C)   # sum(dY), sum(dY * (x - mean))
        dweight = dot * inv                       # sum(dY * x_hat)
        if not need_dX:
            return None, dweight, dbias
        dX = np.empty(D.shape, D.dtype)
        if training:
            a, c = np.repeat(-k * inv * inv * dot / n, L), np.repeat(-k * dbias / n, L)

        def grad(b):
            np.multiply(D[b], kL, out=dX[b])
            if training:
                dX[b] += np.multiply(Xc[b], a)
                dX[b] += c

        parallel.run(grad, blocks)
        return dX.reshape(shape), dweight, dbias

    return Y.reshape(X.shape), running_mean, running_var, backward


def _row_sums(A2, C):
    """Per-(sample, channel) sums of A2 (m, C * L), as (m, C): einsum, not a BLAS product,
    whose own threads would compete with parallel.run's."""
    m = A2.shape[0]
    return np.einsum("ij->i", A2.reshape(m * C, -1)).reshape(m, C)


def _row_dots(A2, B2, C):
    """Per-(sample, channel) sums of A2 * B2 (both (m, C * L)), as (m, C)."""
    m = A2.shape[0]
    return np.einsum("ij,ij->i", A2.reshape(m * C, -1), B2.reshape(m * C, -1)).reshape(m, C)


def _blocks(N, row_bytes):
    """Slices of consecutive rows (samples), of at most about _BLOCK_BYTES each, as even as
    can be, and an even number of them when more than one: two threads (parallel.run gives
    each a run of consecutive blocks) then get the same work, where 5 blocks would split 2 : 3.
    The blocks depend only on N and row_bytes, never on the number of threads."""
    count = min(N, -(-N * row_bytes // _BLOCK_BYTES))    # ceil
    if count > 1 and count % 2 and count < N:
        count += 1
    bounds = [N * i // count for i in range(count + 1)] if count else []
    return [slice(i, j) for i, j in zip(bounds, bounds[1:])]


# The elementwise passes run over blocks of samples of about this many bytes, so that
# a block's input, centred input and output stay in cache from one step to the next;
# the blocks are shared among the threads (parallel.run), and 1 MB blocks (rather than
# 256 KB) take the GIL less often: see batch_norm_with_backward for the times.
_BLOCK_BYTES = 1 << 20


# an empty batch goes to the plain kernel (nothing to sum, the running statistics stay)
batch_norm_with_backward.handles = lambda X, *args, **kwargs: X.size > 0


# ------------------------------------------------------------------------ layer norm
#
# The plain kernels take a pass over memory per step (the mean, the variance, which
# computes the mean again, the centring, the division, the affine map; in the backward
# all that again, then the sums and dX). Here the input is seen as rows (M, m), one per
# sample, m = prod(normalized_shape), and each block of rows of about _BLOCK_BYTES goes
# through every step while in cache, on npnet's threads (parallel.run). Each element is
# computed by the plain kernel's elementwise arithmetic in its order; only the row sums
# (einsum) and the sums over the samples (per block, then the blocks' in block order)
# are summed in another order.


def _layer_rows(X, normalized_shape):
    m = 1
    for size in normalized_shape:
        m *= size
    return np.ascontiguousarray(X).reshape(-1, m), m


def _normalized(R, m, eps, out):
    """x_hat = (x - mean) / s into ``out`` for rows R (k, m); returns s = sqrt(var + eps), (k, 1)."""
    mean = np.einsum("ij->i", R) / R.dtype.type(m)
    Xc = np.subtract(R, mean[:, None], out=out)
    s = np.sqrt(np.einsum("ij,ij->i", Xc, Xc) / R.dtype.type(m) + eps)[:, None]
    Xc /= s
    return s


def layer_norm(X, normalized_shape, weight=None, bias=None, eps=1e-5):
    R, m = _layer_rows(X, normalized_shape)
    Y = np.empty(R.shape, R.dtype)
    w = None if weight is None else weight.reshape(-1)
    b_ = None if bias is None else bias.reshape(-1)

    def block(b):
        _normalized(R[b], m, eps, Y[b])
        if w is not None:
            Y[b] *= w
        if b_ is not None:
            Y[b] += b_

    parallel.run(block, _blocks(R.shape[0], m * R.itemsize))
    return Y.reshape(X.shape)


def layer_norm_backward(dY, X, normalized_shape, weight=None, eps=1e-5, *, need_dX=True):
    R, m = _layer_rows(X, normalized_shape)
    D = np.ascontiguousarray(dY).reshape(R.shape)
    w = None if weight is None else weight.reshape(-1)
    dX = np.empty(R.shape, R.dtype) if need_dX else None

    def block(b):
        Xh = np.empty(R[b].shape, R.dtype)
        s = _normalized(R[b], m, eps, Xh)
        dbias, dweight = D[b].sum(axis=0), np.einsum("ij,ij->j", D[b], Xh)   # this block's share
        if need_dX:   # dX = (m g - sum(g) - x_hat sum(g x_hat)) / (m s), g = weight dY
            g = D[b] if w is None else D[b] * w
            out = np.multiply(g, m, out=dX[b])
            out -= np.einsum("ij->i", g)[:, None]
            Xh *= np.einsum("ij,ij->i", g, Xh)[:, None]   # after the einsum above has read x_hat
            out -= Xh
            out /= m * s
        return dbias, dweight

    parts = parallel.run(block, _blocks(R.shape[0], m * R.itemsize))
    dbias, dweight = parts[0]
    for db, dw in parts[1:]:   # in block order, whatever the thread count
        dbias, dweight = dbias + db, dweight + dw
    shape = tuple(normalized_shape)
    return (None if dX is None else dX.reshape(X.shape)), dweight.reshape(shape), dbias.reshape(shape)


# an empty input goes to the plain kernel (no row to normalize, or rows of nothing)
layer_norm.handles = lambda X, *args, **kwargs: X.size > 0
layer_norm_backward.handles = lambda dY, X, *args, **kwargs: X.size > 0
