"""MaxPool2d and AvgPool2d: against torch over window arguments, the fast max-pool twins
against the plain kernels, finite differences, torch's edge semantics, and bad inputs."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given
from hypothesis import strategies as st

import npnet
from npnet import nn
from npnet.nn import _fast
from npnet.nn import functional as F
from reference import compare, twin
from strategies import dtypes, float_arrays, frozen_strided, moderate, torch_one_thread, upstream  # noqa: F401

pytestmark = pytest.mark.usefixtures("torch_one_thread")


# ----------------------------------------------------------------------- strategies

@st.composite
def pool_cases(draw, cls):
    """(module, input shape): batched or unbatched, H and W 1..7, kernels up to the input,
    stride 1..3 or None, padding up to half the kernel, dilation (max pool) 1..3."""
    H, W = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), H, W)
    if draw(st.booleans()):
        shape = shape[1:]
    k = (draw(st.integers(1, H)), draw(st.integers(1, W)))
    p = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    kw = dict(stride=draw(st.sampled_from([None, 1, 2, 3, (1, 2), (3, 1)])), padding=p,
              ceil_mode=draw(st.booleans()))
    if cls is nn.MaxPool2d:
        # dilation, and with it padding only where no window lies wholly in the padding
        # (torch routes such a window's gradient to a wrong element; see test_deviation_...)
        d = tuple(draw(st.integers(1, max(1, (n - 1) // (kk - 1)) if kk > 1 else 3)) for n, kk in zip((H, W), k))
        kw["dilation"] = d
        if d != (1, 1):
            kw["padding"] = 0
    else:
        kw["count_include_pad"] = draw(st.booleans())
    return cls(k, **kw), shape


@pytest.mark.parametrize("cls", [nn.MaxPool2d, nn.AvgPool2d])
@given(data=st.data(), dtype=dtypes)
def test_pools_match_torch(cls, data, dtype):
    module, shape = data.draw(pool_cases(cls))
    x = data.draw(float_arrays(shape, dtype))
    if data.draw(st.booleans()):                       # many ties: the first maximum takes the gradient
        x = np.round(x)
    y = module(x)
    result = compare(module, x, data.draw(upstream(y.shape, dtype)), dtype=dtype)
    assert result.ok, f"{module!r} on {shape}\n{result}"


@pytest.mark.parametrize("cls", [nn.MaxPool2d, nn.AvgPool2d])
@given(data=st.data())
def test_kernels_match_torch_with_nan_and_inf(cls, data):
    """NaN and +-inf inputs: the same outputs, and the gradient routed where torch routes it."""
    module, shape = data.draw(pool_cases(cls))
    r = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = np.round(r.standard_normal(shape))
    for value in data.draw(st.lists(st.sampled_from([np.nan, np.inf, -np.inf]), max_size=3)):
        x[r.random(shape) < 0.3] = value
    dy = r.standard_normal(module(x).shape)
    y, backward = module.forward(x)
    dx, grads = backward(dy)
    xt = torch.from_numpy(x).requires_grad_()
    yt = twin(module)(xt)
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    assert grads == {}


# ----------------------------------------------------------------------- fast twins

@st.composite
def tiling_cases(draw):
    """(X, kernel) for the fast max-pool twins: odd shapes, both dtypes, ties, NaN, -inf,
    non-contiguous inputs, and sizes that are or are not multiples of the kernel."""
    dtype = draw(dtypes)
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    shape = (draw(st.integers(0, 3)), draw(st.integers(1, 3)), draw(st.integers(k[0], 9)), draw(st.integers(k[1], 9)))
    if draw(st.booleans()):
        shape = shape[1:]
    r = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = r.standard_normal(shape)
    if draw(st.booleans()):
        x = np.round(x)
    for value in draw(st.lists(st.sampled_from([np.nan, -np.inf, np.inf]), max_size=2)):
        x[r.random(shape) < 0.2] = value
    x = x.astype(dtype)
    if draw(st.booleans()):
        x = frozen_strided(x)
    return x, k, r.standard_normal(F.max_pool2d(x, k).shape).astype(dtype)


@given(case=tiling_cases(), ceil_mode=st.booleans())
def test_fast_max_pool_twins_equal_the_plain_kernels(case, ceil_mode):
    x, k, dy = case
    args = (k, k, (0, 0), (1, 1), ceil_mode)
    if not _fast.max_pool2d.handles(x, *args):
        assert ceil_mode and (x.shape[-2] % k[0] or x.shape[-1] % k[1])
        return
    before = x.copy()
    np.testing.assert_array_equal(_fast.max_pool2d(x, *args), F.max_pool2d.plain(x, *args))
    np.testing.assert_array_equal(_fast.max_pool2d_backward(dy, x, *args), F.max_pool2d_backward.plain(dy, x, *args))
    np.testing.assert_array_equal(x, before)


@given(case=tiling_cases(), ceil_mode=st.booleans())
def test_fast_fused_max_pool_equals_the_plain_kernels(case, ceil_mode):
    x, k, dy = case
    args = (k, k, (0, 0), (1, 1), ceil_mode)
    if not _fast.max_pool2d_with_backward.handles(x, *args):
        assert ceil_mode and (x.shape[-2] % k[0] or x.shape[-1] % k[1])
        return
    before = x.copy()
    y, backward = _fast.max_pool2d_with_backward(x, *args)
    y_plain, plain_backward = F.max_pool2d_with_backward.plain(x, *args)
    np.testing.assert_array_equal(y, y_plain)
    assert y.dtype == y_plain.dtype
    dx, dx_plain = backward(dy), plain_backward(dy)
    assert dx.dtype == dx_plain.dtype and dx.shape == x.shape
    np.testing.assert_array_equal(dx, dx_plain)
    np.testing.assert_array_equal(backward(dy), dx)              # a second call: the same
    np.testing.assert_array_equal(x, before)


def test_fast_fused_max_pool_blocks_of_planes_equal_the_plain_kernels():
    """Many planes (several blocks), ties at 0 as after a ReLU, and a NaN in some windows."""
    r = np.random.default_rng(5)
    x = np.maximum(r.standard_normal((9, 7, 30, 30)), 0).astype(np.float32)
    x[r.random(x.shape) < 0.001] = np.nan
    args = ((2, 2), (2, 2), (0, 0), (1, 1), False)
    y, backward = _fast.max_pool2d_with_backward(x, *args)
    dy = r.standard_normal(y.shape).astype(np.float32)
    y_plain, plain_backward = F.max_pool2d_with_backward.plain(x, *args)
    np.testing.assert_array_equal(y, y_plain)
    np.testing.assert_array_equal(backward(dy), plain_backward(dy))
    assert np.isnan(y).any() and (y == 0).any()


def test_fast_fused_max_pool_leaves_windows_of_more_than_256_offsets_to_the_plain_kernel():
    x = np.zeros((1, 1, 17, 17))
    assert not _fast.max_pool2d_with_backward.handles(x, (17, 17), (17, 17), (0, 0), (1, 1), False)
    assert _fast.max_pool2d_with_backward.handles(x, (16, 16), (16, 16), (0, 0), (1, 1), False)
    x = np.arange(17 * 17, dtype=np.float64)[::-1].reshape(1, 1, 17, 17)
    dx = F.max_pool2d_backward(np.array([[[[2.0]]]]), x, 17)
    assert dx[0, 0, 0, 0] == 2.0 and dx.sum() == 2.0


@given(case=tiling_cases(), ceil_mode=st.booleans(), count_include_pad=st.booleans())
def test_fast_avg_pool_twins_equal_the_plain_kernels(case, ceil_mode, count_include_pad):
    x, k, dy = case
    args = (k, k, (0, 0), ceil_mode, count_include_pad)
    if not _fast.avg_pool2d.handles(x, *args):
        assert ceil_mode and (x.shape[-2] % k[0] or x.shape[-1] % k[1])
        return
    assert _fast.avg_pool2d_backward.handles(dy, x, *args)
    before = x.copy()
    y, dx = _fast.avg_pool2d(x, *args), _fast.avg_pool2d_backward(dy, x, *args)
    y_plain, dx_plain = F.avg_pool2d.plain(x, *args), F.avg_pool2d_backward.plain(dy, x, *args)
    assert y.dtype == y_plain.dtype and dx.dtype == dx_plain.dtype and dx.shape == x.shape
    np.testing.assert_array_equal(y, y_plain)
    np.testing.assert_array_equal(dx, dx_plain)
    assert not np.signbit(dx[dx == 0]).any()     # +0, as the plain kernel's scatter-add into zeros
    np.testing.assert_array_equal(x, before)


def test_fast_avg_pool_twins_cover_only_windows_that_tile():
    x = np.zeros((1, 1, 6, 6))
    assert _fast.avg_pool2d.handles(x, (2, 2), (2, 2), (0, 0), False, True)
    for stride, padding, ceil in [((1, 1), (0, 0), False), ((2, 2), (1, 1), False)]:
        assert not _fast.avg_pool2d.handles(x, (2, 2), stride, padding, ceil, True)
        assert not _fast.avg_pool2d_backward.handles(x[..., :3, :3], x, (2, 2), stride, padding, ceil, True)
    assert not _fast.avg_pool2d.handles(np.zeros((1, 1, 5, 6)), (2, 2), (2, 2), (0, 0), True, True)


def test_fast_twins_cover_only_windows_that_tile():
    x = np.zeros((1, 1, 6, 6))
    assert _fast.max_pool2d.handles(x, (2, 2), (2, 2), (0, 0), (1, 1), False)
    assert _fast.max_pool2d_backward.handles(x[0], x, (3, 2), (3, 2), (0, 0), (1, 1), True)
    for stride, padding, dilation, ceil in [((1, 1), (0, 0), (1, 1), False), ((2, 2), (1, 1), (1, 1), False),
                                            ((2, 2), (0, 0), (2, 1), False)]:
        assert not _fast.max_pool2d.handles(x, (2, 2), stride, padding, dilation, ceil)
    assert not _fast.max_pool2d.handles(np.zeros((1, 1, 5, 6)), (2, 2), (2, 2), (0, 0), (1, 1), True)


def test_fast_backward_gives_zero_not_nan_where_dy_is_inf_elsewhere():
    x = np.array([[[[1.0, 2.0], [3.0, 4.0]]]], np.float32)
    dy = np.array([[[[np.inf]]]], np.float32)
    np.testing.assert_array_equal(_fast.max_pool2d_backward(dy, x, (2, 2), (2, 2), (0, 0), (1, 1), False),
                                  [[[[0, 0], [0, np.inf]]]])


def _bits(a):
    """What must be equal for two results to be the same to the bit (signed zeros, nan payloads)."""
    return a.shape, a.dtype, a.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("hw, k", [((28, 28), (2, 2)), ((29, 31), (3, 2))])
def test_fast_pool_twins_give_the_same_bits_for_every_thread_count(dtype, hw, k, num_threads):
    # Enough planes for several blocks of planes; ties at 0 as after a ReLU, -0.0, nan and
    # +-inf in X and in dY; sizes that are and are not multiples of the kernel.
    r = np.random.default_rng(9)
    shape = (3, 500) + hw
    assert len(_fast.pooling._plane_blocks(1500, hw[0] * hw[1] * np.dtype(dtype).itemsize)) >= 4
    x = np.maximum(np.round(r.standard_normal(shape) * 3), 0)
    x[r.random(shape) < 0.05] = -0.0
    for value in (np.nan, np.inf, -np.inf):
        x[r.random(shape) < 0.002] = value
    x = x.astype(dtype)
    out = (shape[2] // k[0], shape[3] // k[1])
    dy = r.standard_normal(shape[:2] + out)
    dy[r.random(dy.shape) < 0.1] = -0.0
    for value in (np.nan, np.inf, -np.inf):
        dy[r.random(dy.shape) < 0.01] = value
    dy = dy.astype(dtype)
    args = (k, k, (0, 0), (1, 1), False)
    avg_args = (k, k, (0, 0), False, True)

    def everything():
        y, backward = _fast.max_pool2d_with_backward(x, *args)
        return [_fast.max_pool2d(x, *args), y, backward(dy), _fast.max_pool2d_backward(dy, x, *args),
                _fast.avg_pool2d(x, *avg_args), _fast.avg_pool2d_backward(dy, x, *avg_args)]

    results = []
    for n in (1, 2, 3):
        num_threads(n)
        results.append(everything())
    for got in results[1:]:
        for a, b in zip(got, results[0]):
            assert _bits(a) == _bits(b)
    max_y, fused_y, fused_dx, max_dx, avg_y, avg_dx = results[0]
    assert np.isnan(max_y).any() and (max_dx == np.inf).any() and fused_dx.shape == x.shape
    np.testing.assert_array_equal(max_y, F.max_pool2d.plain(x, *args))
    np.testing.assert_array_equal(fused_y, max_y)
    np.testing.assert_array_equal(fused_dx, F.max_pool2d_backward.plain(dy, x, *args))
    np.testing.assert_array_equal(max_dx, fused_dx)
    np.testing.assert_array_equal(avg_y, F.avg_pool2d.plain(x, *avg_args))
    np.testing.assert_array_equal(avg_dx, F.avg_pool2d_backward.plain(dy, x, *avg_args))


# ----------------------------------------------------------------------- torch's edges

def _torch_grad(fn, x, dy):
    xt = torch.from_numpy(x).requires_grad_()
    fn(xt).backward(torch.from_numpy(dy))
    return xt.grad.numpy()


@pytest.mark.parametrize("values, index", [
    ([1.0, 1.0, 1.0, 1.0], 0),                          # ties: the first in row-major order
    ([0.0, 2.0, 2.0, 1.0], 1),
    ([-np.inf] * 4, 0),                                 # all -inf: the first
    ([math.nan, 1.0, math.nan, 5.0], 2),                # NaN: the last NaN
    ([-np.inf, math.nan, -np.inf, -np.inf], 1),
])
def test_max_pool_routes_ties_and_nan_as_torch(values, index):
    x = np.array(values).reshape(1, 1, 2, 2)
    for kernel in (F.max_pool2d_backward, F.max_pool2d_backward.plain):   # the public one runs the fast twin
        dx = kernel(np.array([[[[3.0]]]]), x, (2, 2), (2, 2), (0, 0), (1, 1), False)
        expected = np.zeros(4)
        expected[index] = 3.0
        np.testing.assert_array_equal(dx.reshape(-1), expected)
        np.testing.assert_array_equal(dx, _torch_grad(lambda t: TF.max_pool2d(t, 2), x, np.array([[[[3.0]]]])))


@pytest.mark.parametrize("H, kw", [
    (5, dict(kernel_size=2, stride=2, padding=1, ceil_mode=True)),     # last window starts in the input: 3
    (4, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),     # would start in the right padding: 2
    (2, dict(kernel_size=3, ceil_mode=True)),                          # runs past the input: 1 window
    (6, dict(kernel_size=3, stride=2, ceil_mode=True)),
])
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_ceil_mode_sizes_and_avg_divisors_as_torch(H, kw, count_include_pad):
    x = np.random.default_rng(0).standard_normal((2, 3, H, H))
    dy = np.random.default_rng(1).standard_normal(TF.avg_pool2d(torch.from_numpy(x), **kw).shape)
    tavg = lambda t: TF.avg_pool2d(t, **kw, count_include_pad=count_include_pad)   # noqa: E731
    y = F.avg_pool2d(x, **kw, count_include_pad=count_include_pad)
    np.testing.assert_allclose(y, tavg(torch.from_numpy(x)).numpy(), rtol=1e-14)
    np.testing.assert_allclose(F.avg_pool2d_backward(dy, x, **kw, count_include_pad=count_include_pad),
                               _torch_grad(tavg, x, dy), rtol=1e-14)
    np.testing.assert_array_equal(F.max_pool2d(x, **kw), TF.max_pool2d(torch.from_numpy(x), **kw).numpy())


def test_deviation_a_window_wholly_in_padding_drops_its_gradient():
    """With dilation, a window can hold padding only; its output is -inf, as torch's.
    torch sends that window's gradient to the element at a flat index computed from a
    position outside the input (a neighbour's); npnet drops it: no input made the output."""
    x = np.arange(6.0).reshape(1, 1, 6, 1)
    args = dict(kernel_size=(1, 2), stride=(3, 1), padding=(0, 1), dilation=(1, 2))
    y = F.max_pool2d(x, **args)
    np.testing.assert_array_equal(y, TF.max_pool2d(torch.from_numpy(x), **args).numpy())
    assert np.all(y == -np.inf)
    np.testing.assert_array_equal(F.max_pool2d_backward(np.ones_like(y), x, **args), np.zeros_like(x))
    assert _torch_grad(lambda t: TF.max_pool2d(t, **args), x, np.ones_like(y)).sum() == 2


@pytest.mark.parametrize("module", [nn.MaxPool2d(2), nn.MaxPool2d((3, 2), 1, 1), nn.AvgPool2d(2),
                                    nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)])
def test_gradcheck_in_float64(module):
    assert npnet.gradcheck(module, moderate((2, 3, 6, 5), seed=4))
    assert npnet.gradcheck(module, moderate((3, 6, 5), seed=5))


@pytest.mark.parametrize("module", [nn.MaxPool2d(2), nn.AvgPool2d(3, 1, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_strided_read_only_unbatched_and_batch_one(module, dtype):
    x = moderate((1, 2, 6, 6), dtype, seed=6)
    y, backward = module.forward(x)
    dy = moderate(y.shape, dtype, seed=7)
    dx, _ = backward(dy)
    assert y.dtype == dx.dtype == dtype
    frozen = frozen_strided(x)
    y2, backward2 = module.forward(frozen)
    np.testing.assert_array_equal(y2, y)
    np.testing.assert_array_equal(backward2(dy)[0], dx)
    np.testing.assert_array_equal(module(x[0]), y[0])
    np.testing.assert_array_equal(module.forward(x[0])[1](dy[0])[0], dx[0])
    assert backward(dy, need_dx=False) == (None, {})
    assert module.params == {} and module.state_dict() == {}


def test_empty_batch_and_repr_as_torch():
    y, backward = nn.MaxPool2d(2).forward(np.zeros((0, 3, 4, 4), np.float32))
    assert y.shape == (0, 3, 2, 2) and backward(y)[0].shape == (0, 3, 4, 4)
    for ours, theirs in [(nn.MaxPool2d(2), torch.nn.MaxPool2d(2)),
                         (nn.MaxPool2d((2, 3), stride=1, padding=(1, 0), dilation=2, ceil_mode=True),
                          torch.nn.MaxPool2d((2, 3), stride=1, padding=(1, 0), dilation=2, ceil_mode=True)),
                         (nn.AvgPool2d((2, 3), padding=1), torch.nn.AvgPool2d((2, 3), padding=1))]:
        assert repr(ours) == repr(theirs)


# ----------------------------------------------------------------------- bad inputs

X4 = np.zeros((2, 3, 6, 6), np.float32)


@pytest.mark.parametrize("make, exc, name", [
    (lambda: nn.MaxPool2d(2.0), TypeError, "kernel_size"),
    (lambda: nn.MaxPool2d((2, 2, 2)), TypeError, "kernel_size"),
    (lambda: nn.MaxPool2d(True), TypeError, "kernel_size"),
    (lambda: nn.MaxPool2d(0), ValueError, "kernel_size"),
    (lambda: nn.MaxPool2d(2, stride=0), ValueError, "stride"),
    (lambda: nn.MaxPool2d(2, stride="2"), TypeError, "stride"),
    (lambda: nn.MaxPool2d(2, padding=-1), ValueError, "padding"),
    (lambda: nn.MaxPool2d(2, padding=2), ValueError, "padding"),      # more than half the kernel
    (lambda: nn.MaxPool2d(2, dilation=0), ValueError, "dilation"),
    (lambda: nn.MaxPool2d(2, ceil_mode=1), TypeError, "ceil_mode"),
    (lambda: nn.AvgPool2d((3, 1), padding=(1, 1)), ValueError, "padding"),
    (lambda: nn.AvgPool2d(2, count_include_pad=None), TypeError, "count_include_pad"),
    (lambda: nn.MaxPool2d(2)(X4.tolist()), TypeError, "input"),
    (lambda: nn.MaxPool2d(2)(X4.astype(np.int64)), TypeError, "input"),
    (lambda: nn.MaxPool2d(2)(X4[0, 0]), ValueError, "input"),          # 2-d
    (lambda: nn.AvgPool2d(2)(X4[None]), ValueError, "input"),          # 5-d
    (lambda: nn.MaxPool2d(2)(np.zeros((2, 0, 4, 4))), ValueError, "input"),
    (lambda: nn.MaxPool2d(7)(X4), ValueError, "kernel_size"),          # larger than the input
    (lambda: nn.AvgPool2d(4, padding=1, stride=9)(np.zeros((1, 1, 1, 1))), ValueError, "kernel_size"),
    (lambda: nn.MaxPool2d(2, dilation=6)(X4), ValueError, "kernel_size"),
    (lambda: nn.MaxPool2d(2).forward(X4)[1](np.zeros((2, 3, 3, 2), np.float32)), ValueError, "dy"),
    (lambda: nn.AvgPool2d(2).forward(X4)[1](np.zeros((2, 3, 3, 3))), TypeError, "dy"),
    (lambda: F.max_pool2d_backward(np.zeros((2, 3, 3, 3)), X4, 2), TypeError, "dY"),
    (lambda: F.avg_pool2d_backward(np.zeros((2, 3, 2, 3), np.float32), X4, 2), ValueError, "dY"),
    (lambda: F.avg_pool2d(X4, 2, stride=(1, 0)), ValueError, "stride"),
])
def test_bad_input_names_the_argument(make, exc, name):
    with pytest.raises(exc, match=rf"(?<![\w.]){name}(?!\w)"):
        make()


def test_inputs_are_never_modified():
    x = moderate((2, 3, 6, 6), seed=8)
    x.flags.writeable = False          # a write would raise
    for module in (nn.MaxPool2d(2), nn.MaxPool2d(3, 1, 1), nn.AvgPool2d(2, 1, 1)):
        y, backward = module.forward(x)
        dy = moderate(y.shape, seed=9)
        dy.flags.writeable = False
        backward(dy)
