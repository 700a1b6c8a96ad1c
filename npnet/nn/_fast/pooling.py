"""Fast twins of the max-pool and average-pool kernels, for windows that tile the input:
stride equal to the kernel, no padding, no dilation, no window past the input's edge
(LeNet's and the cnn's 2 x 2 pools).

There every input element sits in at most one window, so:

- the forward is a running ``np.maximum`` over the k_h * k_w strided slices, with no
  argmax to keep (the maximum's value is the same; NaN propagates as in the plain kernel);
- the backward finds each window's first maximum by comparing each slice with the
  output, in row-major window order, and *writes* dY there (no scatter-add); a window
  whose maximum is NaN gives dY to its last NaN instead (a second pass, only when the
  output holds NaN).

Forward + backward at (256, 6, 28, 28), kernel 2, float32, one thread, under load: 0.74x
torch against the plain kernel's 4.0x (benchmarks/pooling.py).

The average pool sums each window's slices in the plain kernel's order and divides
by the same count, so it gives the plain kernel's very bits; what it saves is the
padded copy of the input (the plain kernel pads even by zero), the zero-filled dXp
and its scatter-add (each position of dX is written once, 0 + dY / count as the plain
kernel computes it), and the count array.
"""
import numpy as np


def _tiles(X, kernel_size, stride, padding, dilation, ceil_mode):
    """Whether the windows tile the input (what these twins cover); see ``_kernels._when``."""
    (kh, kw), (H, W) = kernel_size, X.shape[-2:]
    if stride != kernel_size or padding != (0, 0) or dilation != (1, 1):
        return False
    return not ceil_mode or (H % kh == 0 and W % kw == 0)   # ceil_mode adds a window only past the edge


def _windows(X, kernel_size):
    """X's windows as (..., out_h, k_h, out_w, k_w): a view when X is C-contiguous and tiled
    exactly (rows or columns past the last window are cut off, which copies)."""
    (kh, kw), (H, W) = kernel_size, X.shape[-2:]
    oh, ow = H // kh, W // kw
    return X[..., :oh * kh, :ow * kw].reshape(X.shape[:-2] + (oh, kh, ow, kw))


def _max(X, kernel_size):
    """Each window's maximum: first along the columns of each window row, where every
    offset's slice is one long strided run (NumPy loops over it in one go), then along rows."""
    kh, kw = kernel_size
    V = _windows(X, kernel_size)
    cols = V.reshape(V.shape[:-4] + (V.shape[-4] * kh, V.shape[-2], kw))   # (..., H', out_w, k_w)
    R = cols[..., 0].copy()
    for j in range(1, kw):
        np.maximum(R, cols[..., j], out=R)                  # NaN propagates, as in the plain kernel
    rows = R.reshape(V.shape[:-3] + (kh, V.shape[-2]))      # (..., out_h, k_h, out_w)
    Y = rows[..., 0, :].copy()
    for i in range(1, kh):
        np.maximum(Y, rows[..., i, :], out=Y)
    return Y, V


def max_pool2d(X, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    return _max(X, kernel_size)[0]


def max_pool2d_backward(dY, X, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    Y, V = _max(X, kernel_size)
    kh, kw = kernel_size
    offsets = [(i, j) for i in range(kh) for j in range(kw)]
    B = np.empty(V.shape[:-4] + (V.shape[-4] * kh, V.shape[-2] * kw), X.dtype)   # every element is written
    G = B.reshape(V.shape)                         # a view of B, window by window
    ints = _SAME_SIZE_INT[X.dtype]
    dY_bits = np.ascontiguousarray(dY).view(ints)
    mask = np.empty(Y.shape, ints)
    taken = None
    for i, j in offsets:
        hit = V[..., i, :, j] == Y
        take = hit if taken is None else np.greater(hit, taken)   # hit and not taken yet: the first maximum
        taken = hit.copy() if taken is None else np.logical_or(taken, hit, out=taken)
        # dX = dY where take, else +0.0, as bits: np.where is 4x slower here, and dY * take
        # would turn an inf or nan in dY into nan where torch gives 0
        np.negative(take.view(np.int8), out=mask, casting="unsafe")          # True -> -1: all bits set
        np.bitwise_and(dY_bits, mask, out=G[..., i, :, j].view(ints))
    nan = np.isnan(Y)
    if nan.any():   # a NaN window's gradient goes to its last NaN (nothing compared equal to it above)
        taken = ~nan
        for i, j in reversed(offsets):
            take = np.isnan(V[..., i, :, j]) & ~taken
            taken |= take
            G[..., i, :, j][take] = dY[take]
    if B.shape == X.shape:
        return B
    dX = np.zeros(X.shape, X.dtype)                # rows and columns past the last window get 0
    dX[..., :B.shape[-2], :B.shape[-1]] = B
    return dX


_SAME_SIZE_INT = {np.dtype(np.float32): np.int32, np.dtype(np.float64): np.int64}


def avg_pool2d(X, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    kh, kw = kernel_size
    V = _windows(X, kernel_size)
    Y = np.zeros(V.shape[:-4] + (V.shape[-4], V.shape[-2]), X.dtype)
    with np.errstate(invalid="ignore"):   # inf + -inf in a window is nan, as the plain kernel's
        for i in range(kh):
            for j in range(kw):
                Y += V[..., i, :, j]
    Y /= X.dtype.type(kh * kw)            # no padding: every window counts k_h k_w positions
    return Y


def avg_pool2d_backward(dY, X, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    kh, kw = kernel_size
    oh, ow = X.shape[-2] // kh, X.shape[-1] // kw
    G = dY / X.dtype.type(kh * kw)
    B = np.empty(X.shape[:-2] + (oh * kh, ow * kw), X.dtype)
    W = B.reshape(B.shape[:-2] + (oh, kh, ow, kw))
    for j in range(kw):                   # 0 + G, as the plain kernel's scatter-add into zeros (-0 becomes +0)
        np.add(G, X.dtype.type(0), out=W[..., 0, :, j])
    for i in range(1, kh):                # the other rows of each window: copies of the first, row by row
        W[..., i, :, :] = W[..., 0, :, :]
    if B.shape == X.shape:
        return B
    dX = np.zeros(X.shape, X.dtype)       # rows and columns past the last window get 0
    dX[..., :B.shape[-2], :B.shape[-1]] = B
    return dX


def _handles_forward(X, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    return _tiles(X, kernel_size, stride, padding, dilation, ceil_mode)


def _handles_backward(dY, X, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    return _tiles(X, kernel_size, stride, padding, dilation, ceil_mode)


max_pool2d.handles = _handles_forward
max_pool2d_backward.handles = _handles_backward


def _avg_handles_forward(X, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    return _tiles(X, kernel_size, stride, padding, (1, 1), ceil_mode)


def _avg_handles_backward(dY, X, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    return _tiles(X, kernel_size, stride, padding, (1, 1), ceil_mode)


avg_pool2d.handles = _avg_handles_forward
avg_pool2d_backward.handles = _avg_handles_backward
