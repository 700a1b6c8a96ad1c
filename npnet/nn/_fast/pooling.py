"""Fast twins of the max-pool and average-pool kernels, for windows that tile the input:
stride equal to the kernel, no padding, no dilation, no window past the input's edge
(LeNet's and the cnn's 2 x 2 pools).

There every input element sits in at most one window, so:

- the forward is a running ``np.maximum`` over the k_h * k_w strided slices (NaN
  propagates as in the plain kernel);
- the fused twin, ``max_pool2d_with_backward`` (what ``nn.MaxPool2d`` runs), also keeps
  each window's argmax from that pass, as a uint8 offset: the first of tied maxima in
  row-major window order, or the last NaN; its backward *writes* dY there (no
  scatter-add), one strided write per offset, as bits (no per-element branch).

Forward + backward at (256, 16, 28, 28) (the cnn's first pool, after a ReLU), kernel 2,
float32, one thread, under load: 62 -> 29 ms against recomputing the maximum and
comparing each slice with it in the backward.

Every twin here splits its planes (images x channels) into the same blocks of about
1 MB of input (:func:`_plane_blocks`), shared among the threads (``parallel.run``);
each block writes only its own planes of the result, so the bits do not depend on the
number of threads. Forward + backward, float32, kernel 2, 1 -> 2 threads, other
processes idle: MaxPool2d at (256, 6, 28, 28) 8.5 -> 6.2 ms, AvgPool2d 4.7 -> 3.4 ms.

The average pool sums each window's slices in the plain kernel's order and divides
by the same count, so it gives the plain kernel's very bits; what it saves is the
padded copy of the input (the plain kernel pads even by zero), the zero-filled dXp
and its scatter-add (each position of dX is written once, 0 + dY / count as the plain
kernel computes it), and the count array.
"""
import numpy as np

from . import parallel


def _tiles(X, kernel_size, stride, padding, dilation, ceil_mode):
    """Whether the windows tile the input (what these twins cover); see ``_kernels._when``."""
    (kh, kw), (H, W) = kernel_size, X.shape[-2:]
    if stride != kernel_size or padding != (0, 0) or dilation != (1, 1):
        return False
    return not ceil_mode or (H % kh == 0 and W % kw == 0)   # ceil_mode adds a window only past the edge


def _windows(X, kernel_size):
    """X's windows as (..., out_h, k_h, out_w, k_w): a view (rows or columns past the last
    window are left out by slicing, and splitting an axis in two never copies)."""
    (kh, kw), (H, W) = kernel_size, X.shape[-2:]
    oh, ow = H // kh, W // kw
    return X[..., :oh * kh, :ow * kw].reshape(X.shape[:-2] + (oh, kh, ow, kw))


def _planes(X, kernel_size):
    """X as M planes (M, H, W) (a view when X's layout allows), M, the output's (oh, ow)
    and the blocks of planes (:func:`_plane_blocks`) every twin here splits its work into."""
    (kh, kw), lead, (H, W) = kernel_size, X.shape[:-2], X.shape[-2:]
    M = int(np.prod(lead))
    return X.reshape(M, H, W), M, (H // kh, W // kw), _plane_blocks(M, H * W * X.itemsize)


def _zero_margins(dX3, s, kernel_size, out):
    """Zero the rows and columns of planes ``s`` that lie past the last window (none when the
    windows tile the input exactly)."""
    (kh, kw), (oh, ow) = kernel_size, out
    dX3[s, oh * kh:, :] = 0
    dX3[s, :oh * kh, ow * kw:] = 0


def _max(X, kernel_size, out):
    """Each window's maximum into ``out``: first along the columns of each window row, where
    every offset's slice is one long strided run (NumPy loops over it in one go), then along rows."""
    kh, kw = kernel_size
    V = _windows(X, kernel_size)
    cols = V.reshape(V.shape[:-4] + (V.shape[-4] * kh, V.shape[-2], kw))   # (..., H', out_w, k_w)
    R = cols[..., 0].copy()
    for j in range(1, kw):
        np.maximum(R, cols[..., j], out=R)                  # NaN propagates, as in the plain kernel
    rows = R.reshape(V.shape[:-3] + (kh, V.shape[-2]))      # (..., out_h, k_h, out_w)
    np.copyto(out, rows[..., 0, :])
    for i in range(1, kh):
        np.maximum(out, rows[..., i, :], out=out)


def max_pool2d(X, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    # Blocks of planes shared among the threads, as in max_pool2d_with_backward.
    X3, M, out, blocks = _planes(X, kernel_size)
    Y = np.empty((M,) + out, X.dtype)
    parallel.run(lambda s: _max(X3[s], kernel_size, Y[s]), blocks)
    return Y.reshape(X.shape[:-2] + out)


def max_pool2d_with_backward(X, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    # The forward finds each window's maximum and where it sits, as the offset i * k_w + j
    # in a uint8 array (a quarter of the output's bytes); the backward writes dY through it,
    # one strided write per offset. Both run over blocks of planes (images x channels) of
    # about _BLOCK_BYTES of input, so each block's passes stay in cache, and the blocks are
    # shared among the threads (parallel.run); so are the NaN check (in _max_arg), dY's
    # contiguous copy and the zeroing of rows and columns past the last window.
    kh, kw = kernel_size
    X3, M, (oh, ow), blocks = _planes(X, kernel_size)
    Y = np.empty((M, oh, ow), X.dtype)
    arg = np.empty((M, oh, ow), np.uint8)
    parallel.run(lambda s: _max_arg(_windows(X3[s], kernel_size), Y[s], arg[s]), blocks)
    shape, planes, dtype = X.shape, X3.shape, X.dtype   # all the backward needs of X: it must not keep X alive

    def backward(dY):
        ints = _SAME_SIZE_INT[dtype]
        dY3 = dY.reshape(M, oh, ow)
        dX3 = np.empty(planes, dtype)                   # every element is written
        B = _windows(dX3, kernel_size)                  # (M, out_h, k_h, out_w, k_w), a view of dX3

        def backward_block(s):
            a, mask = arg[s], np.empty(arg[s].shape, ints)
            bits = np.ascontiguousarray(dY3[s]).view(ints)
            for i in range(kh):
                for j in range(kw):
                    # dX = dY where the argmax is here, else +0.0, as bits: np.where is 4x slower, and
                    # dY * hit would turn an inf or nan in dY into nan where torch gives 0
                    np.negative(np.equal(a, i * kw + j).view(np.int8), out=mask, casting="unsafe")   # True -> -1
                    np.bitwise_and(bits, mask, out=B[s, :, i, :, j].view(ints))
            _zero_margins(dX3, s, kernel_size, (oh, ow))

        parallel.run(backward_block, blocks)
        return dX3.reshape(shape)

    return Y.reshape(X.shape[:-2] + (oh, ow)), backward


def _max_arg(V, Y, arg):
    """Each window's maximum into Y and its offset i * k_w + j into arg, for windows V
    (m, out_h, k_h, out_w, k_w), as the plain kernel routes it: the first of tied maxima in
    row-major order (a later offset wins only when strictly greater), the last NaN of a
    window holding NaN. The offset moves by arithmetic on uint8, ``a += (j - a) * greater``:
    np.copyto(where=) branches per element, 10x slower on a random mask."""
    kh, kw = V.shape[2], V.shape[4]
    for i in range(kh):
        R = V[:, :, i, :, 0].copy()                     # the running maximum of window row i
        a = np.zeros(R.shape, np.uint8)                 # and its column j
        for j in range(1, kw):
            v = V[:, :, i, :, j]
            up = np.greater(v, R).view(np.uint8)
            np.maximum(R, v, out=R)                     # NaN propagates, as in the plain kernel
            step = np.subtract(np.uint8(j), a)
            step *= up
            a += step
        if i == 0:
            Y[...], arg[...] = R, a
            continue
        up = np.greater(R, Y).view(np.uint8)
        np.maximum(Y, R, out=Y)
        a += np.uint8(i * kw)
        a -= arg
        a *= up
        arg += a
    nan = np.isnan(Y)
    if nan.any():      # a NaN window's gradient goes to its last NaN (NaN compares greater than nothing)
        for i in range(kh):
            for j in range(kw):
                arg[nan & np.isnan(V[:, :, i, :, j])] = i * kw + j


def _plane_blocks(planes, plane_bytes):
    """Slices of consecutive planes, as few as hold at most about _BLOCK_BYTES each, of equal
    sizes (within a plane), so that the threads get equal shares: at (256, 16, 10, 10)
    float32 (1.6 MB) two blocks of 0.8 MB, not 1 MB and 0.6 MB. The same blocks whatever
    the number of threads, so the results are too."""
    n = min(planes, -(-planes * plane_bytes // _BLOCK_BYTES))
    bounds = [planes * b // n for b in range(n + 1)] if n else []
    return [slice(bounds[b], bounds[b + 1]) for b in range(n)]


# Blocks of planes of about this many bytes of input, shared among the threads
# (parallel.run). Forward + backward at (256, 16, 28, 28) float32, two threads, quiet
# machine: 17 ms with blocks of 256 KB (many small NumPy calls, each taking the GIL),
# 11.9 ms with 1 MB, 14 ms with 4 MB; torch 19.6 ms.
_BLOCK_BYTES = 1 << 20


def max_pool2d_backward(dY, X, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    return max_pool2d_with_backward(X, kernel_size, stride, padding, dilation, ceil_mode)[1](dY)


_SAME_SIZE_INT = {np.dtype(np.float32): np.int32, np.dtype(np.float64): np.int64}


def avg_pool2d(X, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    # Blocks of planes shared among the threads, as the max pool's.
    kh, kw = kernel_size
    X3, M, out, blocks = _planes(X, kernel_size)
    Y = np.empty((M,) + out, X.dtype)
    count = X.dtype.type(kh * kw)         # no padding: every window counts k_h k_w positions

    def block(s):
        V, y = _windows(X3[s], kernel_size), Y[s]
        y.fill(0)
        with np.errstate(invalid="ignore"):   # inf + -inf in a window is nan, as the plain kernel's
            for i in range(kh):
                for j in range(kw):
                    y += V[:, :, i, :, j]
        y /= count

    parallel.run(block, blocks)
    return Y.reshape(X.shape[:-2] + out)


def avg_pool2d_backward(dY, X, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    # Blocks of planes shared among the threads, as the max pool's.
    kh, kw = kernel_size
    X3, M, out, blocks = _planes(X, kernel_size)
    dY3 = dY.reshape((M,) + out)
    dX3 = np.empty(X3.shape, X.dtype)     # every element is written
    W = _windows(dX3, kernel_size)        # (M, out_h, k_h, out_w, k_w), a view of dX3
    count, zero = X.dtype.type(kh * kw), X.dtype.type(0)

    def block(s):
        G, w = dY3[s] / count, W[s]
        for j in range(kw):               # 0 + G, as the plain kernel's scatter-add into zeros (-0 becomes +0)
            np.add(G, zero, out=w[:, :, 0, :, j])
        for i in range(1, kh):            # the other rows of each window: copies of the first, row by row
            w[:, :, i, :, :] = w[:, :, 0, :, :]
        _zero_margins(dX3, s, kernel_size, out)

    parallel.run(block, blocks)
    return dX3.reshape(X.shape)


def _handles_forward(X, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    return _tiles(X, kernel_size, stride, padding, dilation, ceil_mode)


def _handles_backward(dY, X, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    return _handles_fused(X, kernel_size, stride, padding, dilation, ceil_mode)


def _handles_fused(X, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Tiling windows of at most 256 offsets (the argmax is a uint8)."""
    return _tiles(X, kernel_size, stride, padding, dilation, ceil_mode) and kernel_size[0] * kernel_size[1] <= 256


max_pool2d.handles = _handles_forward
max_pool2d_with_backward.handles = _handles_fused
max_pool2d_backward.handles = _handles_backward


def _avg_handles_forward(X, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    return _tiles(X, kernel_size, stride, padding, (1, 1), ceil_mode)


def _avg_handles_backward(dY, X, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    return _tiles(X, kernel_size, stride, padding, (1, 1), ceil_mode)


avg_pool2d.handles = _avg_handles_forward
avg_pool2d_backward.handles = _avg_handles_backward
