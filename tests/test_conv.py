"""Conv2d and its kernels: against torch (hypothesis over shapes, strides, paddings,
dilations, groups and kernels up to the padded input), the fast twins against the
plain kernels, finite differences, torch's initialization, and bad inputs.

torch runs on one thread here (the torch_one_thread fixture).
"""
import contextlib
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given
from hypothesis import strategies as st

import npnet.nn.functional as F
from npnet import gradcheck, nn
from npnet.nn import _fast
from npnet.nn._fast import conv as fast_conv
from npnet.nn._fast import parallel
from reference import compare, tolerance, twin
from strategies import dtypes, float_arrays, frozen_strided, moderate, seeds, torch_one_thread, upstream  # noqa: F401

pytestmark = pytest.mark.usefixtures("torch_one_thread")


# ----------------------------------------------------------------------- strategies

@st.composite
def conv_settings(draw, max_side=12):
    """(input shape, Conv2d keyword arguments): N 1..3 or unbatched, C and O divisible by
    groups, H and W 1..max_side, stride 1..3, padding 0..2, a pair, "same" or "valid",
    dilation 1..3, and a kernel from 1 up to what fits the padded input (often exactly that)."""
    groups = draw(st.integers(1, 3))
    C, O = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 3))
    H, W = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.one_of(st.integers(0, 2), st.tuples(st.integers(0, 2), st.integers(0, 2)),
                             st.sampled_from(["same", "valid"])))
    stride = (1, 1) if padding == "same" else (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pads = (0, 0) if isinstance(padding, str) else padding if isinstance(padding, tuple) else (padding, padding)
    kernel = []
    for size, p, d in zip((H, W), pads, dilation):
        largest = size + 1 if padding == "same" else (size + 2 * p - 1) // d + 1   # d (k - 1) + 1 <= size + 2 p
        kernel.append(draw(st.one_of(st.just(largest), st.integers(1, largest))))
    N = draw(st.sampled_from([None, 1, 2, 3]))
    shape = ((N,) if N else ()) + (C, H, W)
    kw = dict(in_channels=C, out_channels=O, kernel_size=tuple(kernel), stride=stride, padding=padding,
              dilation=dilation, groups=groups, bias=draw(st.booleans()))
    return shape, kw


def _torch_conv(X, W, b, kw, dY):
    """torch's output and (dX, dW, db) for upstream dY."""
    xt, wt = torch.from_numpy(X.copy()).requires_grad_(), torch.from_numpy(W.copy()).requires_grad_()
    bt = None if b is None else torch.from_numpy(b.copy()).requires_grad_()
    yt = TF.conv2d(xt, wt, bt, kw["stride"], kw["padding"], kw["dilation"], kw["groups"])
    yt.backward(torch.from_numpy(dY))
    return yt.detach().numpy(), (xt.grad.numpy(), wt.grad.numpy(), None if bt is None else bt.grad.numpy())


def _fn_kw(kw):
    return {k: kw[k] for k in ("stride", "padding", "dilation", "groups")}


def _scale(W, X, dY, b):
    """The size of the terms a convolution sums: a bound on |Y|, |dX| and |dW| alike."""
    return max(1.0, float(np.abs(W).sum()) * float(np.abs(X).max(initial=0)) + float(np.abs(b).max(initial=0)
                                                                                       if b is not None else 0),
               float(np.abs(dY).sum()) * max(float(np.abs(X).max(initial=0)), float(np.abs(W).max(initial=0))))


# ---------------------------------------------------------------------- against torch

@given(settings=conv_settings(), dtype=dtypes, data=st.data())
def test_conv2d_layer_matches_torch(settings, dtype, data):
    shape, kw = settings
    layer = nn.Conv2d(**kw, rng=np.random.default_rng(data.draw(seeds)), dtype=dtype)
    if data.draw(st.booleans()):        # drawn weights: exact zeros and large values
        layer.load_state_dict({k: data.draw(float_arrays(v.shape, dtype, big=30.0)) for k, v in layer.params.items()})
    X = data.draw(float_arrays(shape, dtype))
    dY = data.draw(upstream(layer(X).shape, dtype))
    result = compare(layer, X, dY, dtype=dtype)
    assert result.ok, f"{layer!r} on {shape}\n{result}"


@given(settings=conv_settings(), dtype=dtypes, data=st.data())
def test_conv2d_kernels_match_torch(settings, dtype, data):
    shape, kw = settings
    r = np.random.default_rng(data.draw(seeds))
    X = r.standard_normal(shape).astype(dtype)
    W = r.standard_normal((kw["out_channels"], kw["in_channels"] // kw["groups"]) + kw["kernel_size"]).astype(dtype)
    b = r.standard_normal(kw["out_channels"]).astype(dtype) if kw["bias"] else None
    Y = F.conv2d(X, W, b, **_fn_kw(kw))
    dY = data.draw(upstream(Y.shape, dtype))
    dX, dW, db = F.conv2d_backward(dY, X, W, **_fn_kw(kw), need_db=b is not None)
    want_y, (want_dx, want_dw, want_db) = _torch_conv(X, W, b, kw, dY)
    K = max(W[0].size, W.shape[0] * W[0, 0].size, dY.size // max(W.shape[0], 1)) + 1
    S = _scale(W, X, dY, b)
    for got, want, what in [(Y, want_y, "Y"), (dX, want_dx, "dX"), (dW, want_dw, "dW"), (db, want_db, "db")]:
        if want is None:
            assert got is None, what
            continue
        assert got.shape == want.shape and got.dtype == dtype, (what, got.shape, want.shape, got.dtype)
        np.testing.assert_allclose(got, want, rtol=0, atol=tolerance(dtype, K) * S, err_msg=what)
    none_dx, dW2, none_db = F.conv2d_backward(dY, X, W, **_fn_kw(kw), need_dX=False, need_db=False)
    assert none_dx is None and none_db is None
    np.testing.assert_array_equal(dW2, dW)


@pytest.mark.parametrize("padding, kernel, dilation", [("same", 4, 1), ("same", (2, 3), (1, 2)), ("same", 3, 3),
                                                       ("valid", 3, 1), ("same", 1, 1)])
def test_same_and_valid_pad_as_torch_including_the_odd_zero_on_the_bottom_right(padding, kernel, dilation):
    r = np.random.default_rng(3)
    layer = nn.Conv2d(2, 3, kernel, padding=padding, dilation=dilation, rng=r, dtype=np.float64)
    X = r.standard_normal((2, 2, 6, 5))
    Y = layer(X)
    if padding == "same":
        assert Y.shape[2:] == X.shape[2:]
    assert compare(layer, X).ok
    with torch.no_grad():
        np.testing.assert_allclose(Y, twin(layer)(torch.from_numpy(X)).numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unbatched_input_as_torch(dtype):
    r = np.random.default_rng(4)
    layer = nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=1, rng=r, dtype=dtype)
    X = r.standard_normal((3, 7, 5)).astype(dtype)
    Y, backward = layer.forward(X)
    assert Y.shape == (4, 4, 6)
    Yb, backward_b = layer.forward(X[None])
    np.testing.assert_array_equal(Y, Yb[0])
    dY = r.standard_normal(Y.shape).astype(dtype)
    dX, grads = backward(dY)
    dXb, grads_b = backward_b(dY[None])
    assert dX.shape == X.shape
    np.testing.assert_array_equal(dX, dXb[0])
    for k in grads:
        np.testing.assert_array_equal(grads[k], grads_b[k])
    assert compare(layer, X, dY, dtype=dtype).ok


def test_backward_need_dx_false_skips_dx_and_keeps_the_parameter_gradients():
    r = np.random.default_rng(5)
    layer = nn.Conv2d(2, 3, 3, padding=1, rng=r)
    X = r.standard_normal((2, 2, 5, 5)).astype(np.float32)
    Y, backward = layer.forward(X)
    dY = r.standard_normal(Y.shape).astype(np.float32)
    dX, grads = backward(dY)
    none, grads2 = backward(dY, need_dx=False)
    assert dX is not None and none is None
    for k in grads:
        np.testing.assert_array_equal(grads[k], grads2[k])
    with pytest.raises(TypeError, match="need_dx"):
        backward(dY, need_dx=1)


def test_backward_twice_and_two_forwards_in_flight_give_the_same_answers():
    r = np.random.default_rng(6)
    layer = nn.Conv2d(2, 2, 2, rng=r, dtype=np.float64)
    X1, X2 = r.standard_normal((1, 2, 4, 4)), r.standard_normal((3, 2, 4, 4))
    _, b1 = layer.forward(X1)
    _, b2 = layer.forward(X2)
    dY1 = r.standard_normal((1, 2, 3, 3))
    first = b1(dY1)
    b2(r.standard_normal((3, 2, 3, 3)))
    again = b1(dY1)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1]["weight"], again[1]["weight"])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inputs_are_never_modified_and_read_only_strided_inputs_give_the_same_result(dtype):
    r = np.random.default_rng(7)
    layer = nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=2, rng=r, dtype=dtype)
    X = r.standard_normal((2, 4, 7, 7)).astype(dtype)
    dY = r.standard_normal((2, 4, 4, 4)).astype(dtype)
    W_before = layer.params["weight"].copy()
    Y, backward = layer.forward(X)
    dX, grads = backward(dY)
    Xf, dYf = frozen_strided(X), frozen_strided(dY)
    Y2, backward2 = layer.forward(Xf)
    dX2, grads2 = backward2(dYf)
    np.testing.assert_array_equal(Y2, Y)
    np.testing.assert_array_equal(dX2, dX)
    for k in grads:
        np.testing.assert_array_equal(grads2[k], grads[k])
    np.testing.assert_array_equal(Xf, X)
    np.testing.assert_array_equal(dYf, dY)
    np.testing.assert_array_equal(layer.params["weight"], W_before)


def test_empty_batch_as_torch():
    layer = nn.Conv2d(2, 3, 3, padding=1, rng=np.random.default_rng(8))
    Y, backward = layer.forward(np.zeros((0, 2, 4, 4), np.float32))
    assert Y.shape == (0, 3, 4, 4)
    dX, grads = backward(np.zeros((0, 3, 4, 4), np.float32))
    assert dX.shape == (0, 2, 4, 4)
    np.testing.assert_array_equal(grads["weight"], 0)
    np.testing.assert_array_equal(grads["bias"], 0)


# ------------------------------------------------------------ fast twins against plain

@st.composite
def _layouts(draw, x):
    """``x`` as it came, or a non-contiguous view of the same values, or a read-only copy."""
    layout = draw(st.sampled_from(["c", "strided", "fortran"]))
    if layout == "strided":
        return frozen_strided(x)
    if layout == "fortran":
        return np.asfortranarray(x)
    return x


@contextlib.contextmanager
def chunk_bytes(n):
    """Run the fast kernels with output-row chunks of about ``n`` bytes of patches (None: as shipped)."""
    before = fast_conv._CHUNK_BYTES
    fast_conv._CHUNK_BYTES = before if n is None else n
    try:
        yield
    finally:
        fast_conv._CHUNK_BYTES = before


@contextlib.contextmanager
def layout(name):
    """Run the fast kernels in one layout: "batch last", "batch first" (where one group) or None (as shipped)."""
    before = fast_conv._BATCH_FIRST_PRODUCT
    fast_conv._BATCH_FIRST_PRODUCT = {None: before, "batch last": -1, "batch first": float("inf")}[name]
    try:
        yield
    finally:
        fast_conv._BATCH_FIRST_PRODUCT = before


LAYOUTS = [None, "batch last", "batch first"]


@given(settings=conv_settings(max_side=9), dtype=dtypes, need_dx=st.booleans(), chunk=st.sampled_from([None, 1, 500]),
       where=st.sampled_from(LAYOUTS), data=st.data())
def test_fast_twins_equal_the_plain_kernels(settings, dtype, need_dx, chunk, where, data):
    # chunk: one output row per chunk (1 byte), a few rows, or the whole output (as shipped, at these sizes)
    shape, kw = settings
    r = np.random.default_rng(data.draw(seeds))
    X = r.standard_normal(shape).astype(dtype)
    W = r.standard_normal((kw["out_channels"], kw["in_channels"] // kw["groups"]) + kw["kernel_size"]).astype(dtype)
    b = r.standard_normal(kw["out_channels"]).astype(dtype) if kw["bias"] else None
    args = F.conv2d.check(data.draw(_layouts(X)), data.draw(_layouts(W)), b, **_fn_kw(kw))
    Y = F.conv2d.plain(**args)
    dY = data.draw(_layouts(r.standard_normal(Y.shape).astype(dtype)))
    bargs = F.conv2d_backward.check(dY, args["X"], args["W"], **_fn_kw(kw), need_dX=need_dx, need_db=b is not None)
    plain = F.conv2d_backward.plain(**bargs)
    with chunk_bytes(chunk), layout(where):
        Yf, fast = _fast.conv2d(**args), _fast.conv2d_backward(**bargs)
    K = max(W[0].size, W.shape[0] * W[0, 0].size, dY.size // max(W.shape[0], 1)) + 1
    S = _scale(W, X, dY, b)
    for got, want, what in [(Yf, Y, "Y"), *zip(fast, plain, ("dX", "dW", "db"))]:
        if want is None:
            assert got is None, what
            continue
        assert got.shape == want.shape and got.dtype == want.dtype == dtype, what
        np.testing.assert_allclose(got, want, rtol=0, atol=tolerance(dtype, K) * S, err_msg=what)
    np.testing.assert_array_equal(args["X"], X)


def test_fast_twin_sizes_of_lenet():
    # the shapes the benchmark times, smaller batch: the twin equals the plain kernel there too
    r = np.random.default_rng(9)
    for shape, O, pad in [((4, 1, 28, 28), 6, 2), ((4, 6, 14, 14), 16, 0)]:
        X = r.standard_normal(shape).astype(np.float32)
        W = r.standard_normal((O, shape[1], 5, 5)).astype(np.float32)
        args = F.conv2d.check(X, W, None, padding=pad)
        np.testing.assert_allclose(_fast.conv2d(**args), F.conv2d.plain(**args), rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------- finite differences

@pytest.mark.parametrize("kw, shape", [
    (dict(in_channels=2, out_channels=3, kernel_size=3, padding=1), (2, 2, 5, 4)),
    (dict(in_channels=4, out_channels=2, kernel_size=(2, 3), stride=(2, 1), dilation=(1, 2), groups=2, bias=False),
     (1, 4, 5, 6)),
    (dict(in_channels=1, out_channels=2, kernel_size=4, padding="same"), (3, 1, 5, 5)),
    (dict(in_channels=3, out_channels=3, kernel_size=(4, 5), groups=3), (3, 4, 5)),        # unbatched, kernel = input
])
def test_gradcheck_float64(kw, shape):
    layer = nn.Conv2d(**kw, rng=np.random.default_rng(10), dtype=np.float64)
    result = gradcheck(layer, moderate(shape, seed=11))
    assert result.ok, result


# -------------------------------------------------------------------------- init and API

def test_init_draws_from_torchs_bounds_and_state_dict_is_torchs():
    layer = nn.Conv2d(6, 16, 5, groups=2, rng=np.random.default_rng(12))
    t = torch.nn.Conv2d(6, 16, 5, groups=2)
    sd = t.state_dict()
    assert list(sd) == list(layer.params) == ["weight", "bias"]
    assert {k: tuple(v.shape) for k, v in sd.items()} == {k: v.shape for k, v in layer.params.items()}
    bound = 1 / np.sqrt(3 * 5 * 5)          # fan_in = in_channels / groups * kH * kW
    for v in layer.params.values():
        assert v.dtype == np.float32 and np.abs(v).max() <= bound
        assert np.abs(v).max() > 0.85 * bound        # uniform over the whole interval, not a narrower one
    W = layer.params["weight"]
    assert 0.8 < W.std() / (bound / np.sqrt(3)) < 1.2     # the std of U(-bound, bound)
    with torch.no_grad():
        for p in t.parameters():
            assert float(p.abs().max()) <= bound
    t_layer = nn.Conv2d(6, 16, 5, groups=2)
    t_layer.load_state_dict({k: v.numpy() for k, v in sd.items()})
    x = np.random.default_rng(13).standard_normal((2, 6, 9, 9)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(t_layer(x), t(torch.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-5)


def test_reset_parameters_is_reproducible_with_a_seed():
    a = nn.Conv2d(3, 4, 3, rng=np.random.default_rng(14))
    b = nn.Conv2d(3, 4, 3, rng=np.random.default_rng(14))
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])


def test_repr_and_attributes_are_torchs():
    for args, kw in [((1, 6, 5), dict(padding=2)), ((4, 6, (3, 2)), dict(stride=2, padding=1, dilation=2, groups=2,
                                                                        bias=False)),
                     ((4, 6, 3), dict(padding="same")), ((4, 6, 3), dict(padding="valid")), ((2, 2, 1), {})]:
        ours, theirs = nn.Conv2d(*args, **kw), torch.nn.Conv2d(*args, **kw)
        assert repr(ours) == repr(theirs)
        for name in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups"):
            assert getattr(ours, name) == getattr(theirs, name), name


def test_in_a_sequential_with_flatten_and_linear_as_torch():
    r = np.random.default_rng(15)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, rng=r), nn.ReLU(), nn.Conv2d(4, 2, 3, stride=2, rng=r),
                        nn.Flatten(), nn.Linear(2 * 3 * 3, 5, rng=r))
    x = r.standard_normal((3, 1, 7, 7))
    assert compare(net, x).ok and compare(net, x, dtype=np.float32).ok
    assert sorted(net.params) == sorted(twin(net).state_dict())
    _, backward = net.forward(x.astype(np.float32))
    dx, grads = backward(r.standard_normal((3, 5)).astype(np.float32), need_dx=False)
    assert dx is None and set(grads) == set(net.params)
    assert copy.deepcopy(net) is not net


# =========================================================================== bad inputs

from badinput import (  # noqa: E402, F401  (ctx is a fixture)
    OK, REF, ArrayTable, Raises, ScalarTable, check_array_row, check_scalar_row, check_special_row, ctx, named,
    like_rows, nt, randn, rng, special_params, tt)

ARRAYS = ArrayTable()
add = ARRAYS.add

_conv = lambda: nn.Conv2d(4, 6, 3, padding=1, groups=2, rng=rng(1))   # noqa: E731
_IN, _OUT = (2, 4, 5, 5), (2, 6, 5, 5)


def _layer_ref(a, backward=False):
    t = twin(a["m"])
    x = tt(a["X"]).requires_grad_(backward)
    y = t(x)
    if not backward:
        return nt(y)
    y.backward(tt(a["dy"]))
    return nt(x.grad), {k: nt(p.grad) for k, p in t.named_parameters()}


_INPUT = dict(
    ref=_layer_ref, empty=lambda: {"X": randn(0, 4, 5, 5), "m": _conv()},
    zero_d=Raises(ValueError, named("input")),
    wrong_shape=(lambda v: v[:, :3], Raises(ValueError, r"expected input \(N, 4, H, W\) or \(4, H, W\), got \(2, 3, 5, 5\)")),
    mixed=Raises(TypeError, r"holds float32 parameters but got float64 input"))
add("Conv2d.forward(input)", lambda a: a["m"].forward(a["X"])[0], lambda: {"X": randn(*_IN), "m": _conv()},
    "X", "input", **_INPUT)
add("Conv2d(input)", lambda a: a["m"](a["X"]), lambda: {"X": randn(*_IN), "m": _conv()}, "X", "input", **_INPUT)
add("Conv2d.forward(...)[1](dy)", lambda a: a["m"].forward(a["X"])[1](a["dy"]),
    lambda: {"dy": randn(*_OUT, seed=5), "X": randn(*_IN), "m": _conv()}, "dy",
    ref=lambda a: _layer_ref(a, backward=True),
    empty=lambda: {"dy": randn(0, 6, 5, 5, seed=5), "X": randn(0, 4, 5, 5), "m": _conv()},
    **like_rows("dy", cut=lambda v: v[:, :, :-1]))

_fargs = lambda: {"X": randn(*_IN), "W": randn(6, 2, 3, 3, seed=2), "b": randn(6, seed=3)}   # noqa: E731
_fempty = lambda: {"X": randn(0, 4, 5, 5), "W": randn(6, 2, 3, 3, seed=2), "b": randn(6, seed=3)}   # noqa: E731
_f = lambda a: F.conv2d(a["X"], a["W"], a["b"], padding=1, groups=2)   # noqa: E731
_fref = lambda a: nt(TF.conv2d(tt(a["X"]), tt(a["W"]), tt(a["b"]), padding=1, groups=2))   # noqa: E731
add("F.conv2d(input)", _f, _fargs, "X", "input", ref=_fref, empty=_fempty, zero_d=Raises(ValueError, named("input")),
    wrong_shape=(lambda v: v[:, :3], Raises(ValueError, r"input must have 4 channels")),
    mixed=Raises(TypeError, r"weight must have dtype float64 to match the input, got float32"))
add("F.conv2d(weight)", _f, _fargs, "W", "weight", ref=_fref, zero_d=Raises(ValueError, named("weight")),
    wrong_shape=(lambda v: v[:, :1], Raises(ValueError, r"input must have 2 channels")),
    mixed=Raises(TypeError, r"weight must have dtype float32 to match the input, got float64"))
add("F.conv2d(bias)", _f, _fargs, "b", "bias", ref=_fref, zero_d=Raises(ValueError, named("bias")),
    wrong_shape=(lambda v: v[:-1], Raises(ValueError, r"bias must have shape \(6,\), got \(5,\)")),
    mixed=Raises(TypeError, r"bias must have dtype float32 to match the input, got float64"), over={"None": REF})

_bargs = lambda: {"dY": randn(*_OUT, seed=4), **_fargs()}   # noqa: E731
_bempty = lambda: {"dY": randn(0, 6, 5, 5, seed=4), **_fempty()}   # noqa: E731
_b = lambda a: F.conv2d_backward(a["dY"], a["X"], a["W"], padding=1, groups=2)   # noqa: E731


def _bref(a):
    x, w = tt(a["X"]).requires_grad_(), tt(a["W"]).requires_grad_()
    b = tt(np.zeros(a["W"].shape[0], a["W"].dtype)).requires_grad_()
    TF.conv2d(x, w, b, padding=1, groups=2).backward(tt(a["dY"]))
    return nt(x.grad), nt(w.grad), nt(b.grad)


add("F.conv2d_backward(dY)", _b, _bargs, "dY", "dY", ref=_bref, empty=_bempty, zero_d=Raises(ValueError, named("dY")),
    wrong_shape=(lambda v: v[:, :, 1:], Raises(ValueError, r"dY must have the output's shape \(2, 6, 5, 5\)")),
    mixed=Raises(TypeError, r"dY must have dtype float32 to match X, got float64"))
add("F.conv2d_backward(X)", _b, _bargs, "X", "X", ref=_bref, zero_d=Raises(ValueError, named("X")),
    wrong_shape=(lambda v: v[..., :4], Raises(ValueError, r"dY must have the output's shape \(2, 6, 5, 4\)")),
    mixed=Raises(TypeError, r"W must have dtype float64 to match the input, got float32"))
add("F.conv2d_backward(W)", _b, _bargs, "W", "W", ref=_bref, zero_d=Raises(ValueError, named("W")),
    wrong_shape=(lambda v: v[:3], Raises(ValueError, r"W has 3 output channels, expected a multiple of groups=2")),
    mixed=Raises(TypeError, r"W must have dtype float32 to match the input, got float64"))


@pytest.mark.parametrize("arg, bad, outcome", ARRAYS.params())
def test_array_argument(arg, bad, outcome):
    check_array_row(arg, bad, outcome)


SCALARS = ScalarTable()
scalar = SCALARS.add
_X = randn(2, 4, 6, 6)
scalar("Conv2d(in_channels)", lambda v, c: nn.Conv2d(v, 4, 1), "in_channels", "int>=0", good=2)
scalar("Conv2d(out_channels)", lambda v, c: nn.Conv2d(2, v, 1), "out_channels", "int>=0", good=3)
scalar("Conv2d(kernel_size)", lambda v, c: nn.Conv2d(2, 4, v), "kernel_size", "int>=1", good=(2, 3))
scalar("Conv2d(stride)", lambda v, c: nn.Conv2d(2, 4, 1, stride=v), "stride", "int>=1", good=(2, 1))
scalar("Conv2d(dilation)", lambda v, c: nn.Conv2d(2, 4, 1, dilation=v), "dilation", "int>=1")
scalar("Conv2d(padding)", lambda v, c: nn.Conv2d(2, 4, 1, padding=v), "padding", "int>=0", good="same",
       over={"str": Raises(ValueError, named("padding"))})
scalar("Conv2d(groups)", lambda v, c: nn.Conv2d(6, 6, 1, groups=v), "groups", "int>=1",
       over={"big": Raises(ValueError, named("in_channels"))})
scalar("Conv2d(bias)", lambda v, c: nn.Conv2d(2, 4, 1, bias=v), "bias", "flag", good=False)
scalar("Conv2d(rng)", lambda v, c: nn.Conv2d(2, 4, 1, rng=v), "rng", "generator?", good=rng())
scalar("Conv2d(dtype)", lambda v, c: nn.Conv2d(2, 4, 1, dtype=v), "dtype", "dtype", good=np.float64)
scalar("F.conv2d(stride)", lambda v, c: F.conv2d(_X, randn(4, 4, 2, 2), stride=v), "stride", "int>=1")
scalar("F.conv2d(padding)", lambda v, c: F.conv2d(_X, randn(4, 4, 2, 2), padding=v), "padding", "int>=0",
       over={"str": Raises(ValueError, named("padding"))})
scalar("F.conv2d(dilation)", lambda v, c: F.conv2d(_X, randn(4, 4, 2, 2), dilation=v), "dilation", "int>=1",
       over={"big": Raises(ValueError, named("input"))})
scalar("F.conv2d(groups)", lambda v, c: F.conv2d(_X, randn(4, 4, 2, 2), groups=v), "groups", "int>=1",
       over={"big": Raises(ValueError, named("weight"))})
scalar("F.conv2d_backward(need_dX)", lambda v, c: F.conv2d_backward(randn(2, 4, 5, 5), _X, randn(4, 4, 2, 2),
                                                                     need_dX=v), "need_dX", "flag")
scalar("F.conv2d_backward(need_db)", lambda v, c: F.conv2d_backward(randn(2, 4, 5, 5), _X, randn(4, 4, 2, 2),
                                                                     need_db=v), "need_db", "flag")


@pytest.mark.parametrize("s, bad, outcome", SCALARS.params())
def test_other_argument(ctx, s, bad, outcome):
    check_scalar_row(ctx, s, bad, outcome)


def _shape_is(Y, shape):
    assert Y.shape == shape, Y.shape
    return Y


SPECIAL = [
    # id, lambda ctx: the call, outcome
    ("kernel larger than the padded input", lambda c: nn.Conv2d(2, 3, 4, padding=1)(randn(1, 2, 1, 5)),
     Raises(ValueError, named("input"))),
    ("dilated kernel larger than the padded input", lambda c: F.conv2d(randn(1, 2, 5, 5), randn(3, 2, 3, 3), dilation=3),
     Raises(ValueError, named("input"))),
    ("kernel exactly the padded input", lambda c: _shape_is(nn.Conv2d(2, 3, 4, padding=1)(randn(1, 2, 2, 2)), (1, 3, 1, 1)),
     OK),
    ("in_channels not divisible by groups", lambda c: nn.Conv2d(3, 6, 3, groups=2), Raises(ValueError, named("in_channels"))),
    ("out_channels not divisible by groups", lambda c: nn.Conv2d(4, 6, 3, groups=4), Raises(ValueError, named("out_channels"))),
    ("wrong channel count", lambda c: nn.Conv2d(3, 6, 3)(randn(2, 4, 5, 5)), Raises(ValueError, named("input"))),
    ("5-D input", lambda c: nn.Conv2d(3, 6, 3)(randn(1, 2, 3, 5, 5)), Raises(ValueError, named("input"))),
    ("F.conv2d 5-D input", lambda c: F.conv2d(randn(1, 2, 3, 5, 5), randn(6, 3, 3, 3)), Raises(ValueError, named("input"))),
    ("F.conv2d 3-D weight", lambda c: F.conv2d(randn(2, 3, 5, 5), randn(6, 3, 3)), Raises(ValueError, named("weight"))),
    ("F.conv2d zero-size kernel", lambda c: F.conv2d(randn(2, 3, 5, 5), randn(6, 3, 0, 3)), Raises(ValueError, named("weight"))),
    ("same with stride 2", lambda c: nn.Conv2d(3, 6, 3, stride=2, padding="same"), Raises(ValueError, named("padding"))),
    ("F.conv2d same with stride 2", lambda c: F.conv2d(randn(1, 3, 5, 5), randn(6, 3, 3, 3), stride=2, padding="same"),
     Raises(ValueError, named("padding"))),
    ("padding 'full'", lambda c: nn.Conv2d(3, 6, 3, padding="full"), Raises(ValueError, named("padding"))),
    ("kernel_size of three", lambda c: nn.Conv2d(3, 6, (3, 3, 3)), Raises(TypeError, named("kernel_size"))),
    ("stride pair of floats", lambda c: nn.Conv2d(3, 6, 3, stride=(1.0, 2.0)), Raises(TypeError, named("stride"))),
]


@pytest.mark.parametrize("call, outcome", special_params(SPECIAL))
def test_special_row(ctx, call, outcome):
    check_special_row(ctx, call, outcome)


# ------------------------------------------------ threads: the same bits for every count

@contextlib.contextmanager
def block_bytes(n):
    """Run the fast kernels with thread blocks of about ``n`` bytes (many blocks on small arrays)."""
    before = fast_conv._BLOCK_BYTES
    fast_conv._BLOCK_BYTES = n
    try:
        yield
    finally:
        fast_conv._BLOCK_BYTES = before


def _all_outputs(X, W, b, dY, kw, need_dX):
    """Every array the fast twins return: conv2d, conv2d_backward and the fused pair."""
    Y = _fast.conv2d(X, W, b, **kw)
    grads = _fast.conv2d_backward(dY, X, W, **kw, need_dX=need_dX, need_db=b is not None)
    Yf, backward = _fast.conv2d_with_backward(X, W, b, **kw)
    fused = backward(dY, need_dX=need_dX, need_db=b is not None)
    return [Y, *grads, Yf, *fused]


@pytest.mark.parametrize("shape, O, kw, blocks, chunk, need_dX", [
    # small arrays cut into many blocks and chunks (batch last: rows of X, taps, channels of Y, dY and col2im;
    # batch first: samples)
    ((5, 3, 11, 9), 4, dict(stride=(1, 1), padding=((1, 1), (2, 2)), dilation=(1, 1), groups=1), 64, 500, True),
    # one input channel; strides, dilation
    ((7, 1, 12, 10), 6, dict(stride=(2, 1), padding=((2, 1), (0, 2)), dilation=(1, 2), groups=1), 32, 300, True),
    ((6, 4, 9, 9), 6, dict(stride=(1, 2), padding=((0, 0), (1, 1)), dilation=(2, 1), groups=2), 48, 1, False),
    # LeNet's convolutions as the benchmark runs them, blocks and chunks as shipped (groups: always batch last)
    ((256, 1, 28, 28), 6, dict(stride=(1, 1), padding=((2, 2), (2, 2)), dilation=(1, 1), groups=1), None, None, True),
    ((256, 6, 14, 14), 16, dict(stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), groups=1), None, None, True),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("where", LAYOUTS[1:])
def test_fast_twins_give_the_same_bits_for_every_thread_count(num_threads, monkeypatch, shape, O, kw, blocks, chunk,
                                                               need_dX, dtype, where):
    counts, run = [], parallel.run
    monkeypatch.setattr(parallel, "run", lambda fn, blocks: counts.append(len(blocks)) or run(fn, blocks))
    r = np.random.default_rng(21)
    X = r.standard_normal(shape).astype(dtype)
    X.reshape(-1)[r.choice(X.size, 3, replace=False)] = [np.nan, np.inf, -np.inf]   # propagate alike everywhere
    W = r.standard_normal((O, shape[1] // kw["groups"], 3, 5)).astype(dtype)
    b = r.standard_normal(O).astype(dtype)
    dY = r.standard_normal(shape[:1] + (O,) + fast_conv._out_hw(X, W, kw["padding"], kw["stride"],
                                                                  kw["dilation"])).astype(dtype)
    dY.reshape(-1)[r.choice(dY.size, 2, replace=False)] = [np.nan, np.inf]
    outputs = {}
    with block_bytes(fast_conv._BLOCK_BYTES if blocks is None else blocks), chunk_bytes(chunk), \
            np.errstate(invalid="ignore"), layout(where):    # inf - inf in the sums
        for threads in (1, 2, 3):
            num_threads(threads)
            outputs[threads] = _all_outputs(X, W, b, dY, kw, need_dX)
    for threads in (2, 3):
        for got, want in zip(outputs[threads], outputs[1]):
            if want is None:
                assert got is None
                continue
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want, err_msg=f"{threads} threads")
    assert np.isnan(outputs[1][0]).any() and np.isinf(outputs[1][0]).any()   # the special values made it through
    assert max(counts) >= 3          # blocks enough for each of 3 threads


# --------------------------------------------------- the fused forward-and-backward twin

@given(settings=conv_settings(max_side=9), dtype=dtypes, need_dx=st.booleans(), data=st.data())
def test_conv2d_with_backward_equals_conv2d_and_conv2d_backward(settings, dtype, need_dx, data):
    # the fast fused pair gives the bits of the fast separate kernels, the plain pair those of the plain ones
    shape, kw = settings
    r = np.random.default_rng(data.draw(seeds))
    X = r.standard_normal(shape).astype(dtype)
    W = r.standard_normal((kw["out_channels"], kw["in_channels"] // kw["groups"]) + kw["kernel_size"]).astype(dtype)
    b = r.standard_normal(kw["out_channels"]).astype(dtype) if kw["bias"] else None
    args = F.conv2d_with_backward.check(data.draw(_layouts(X)), W, b, **_fn_kw(kw))
    dY = r.standard_normal(F.conv2d.plain(**args).shape).astype(dtype)
    bargs = F.conv2d_backward.check(dY, args["X"], args["W"], **_fn_kw(kw), need_dX=need_dx, need_db=b is not None)
    del bargs["dY"]
    for fused, forward, backward in [(F.conv2d_with_backward.plain, F.conv2d.plain, F.conv2d_backward.plain),
                                     (_fast.conv2d_with_backward, _fast.conv2d, _fast.conv2d_backward)]:
        Y, kernel_backward = fused(**args)
        np.testing.assert_array_equal(Y, forward(**args))
        for twice in range(2):          # a second backward gives the same answer
            got = kernel_backward(dY, need_dX=need_dx, need_db=b is not None)
            for g, w in zip(got, backward(dY, **bargs)):
                assert (g is None) == (w is None)
                if w is not None:
                    assert g.shape == w.shape and g.dtype == w.dtype
                    np.testing.assert_array_equal(g, w)
    np.testing.assert_array_equal(args["X"], X)


@pytest.mark.skipif(nn.conv.K.conv2d_with_backward is not _fast.conv2d_with_backward, reason="NPNET_KERNELS=plain")
@pytest.mark.parametrize("where, builder", [("batch last", "_batch_last"), ("batch first", "_padded_planes")])
def test_the_layer_pads_its_input_once_per_forward_and_backward(monkeypatch, where, builder):
    calls = []
    build = getattr(fast_conv, builder)
    monkeypatch.setattr(fast_conv, builder, lambda *a: calls.append(1) or build(*a))
    layer = nn.Conv2d(2, 3, 3, padding=1, rng=np.random.default_rng(0))
    X = np.random.default_rng(1).standard_normal((4, 2, 6, 6)).astype(np.float32)
    dY = np.random.default_rng(2).standard_normal((4, 3, 6, 6)).astype(np.float32)
    with layout(where):
        Y, backward = layer.forward(X)
        dX, grads = backward(dY)
        assert len(calls) == 1       # the forward's, kept for the backward
        dX_, dW_, db_ = F.conv2d_backward(dY, X, layer.params["weight"], padding=1)
    np.testing.assert_array_equal(dX, dX_)
    np.testing.assert_array_equal(grads["weight"], dW_)


def test_the_callers_errstate_holds_in_every_thread(num_threads):
    # inf - inf in every block's products: np.errstate decides, whichever thread computes the block
    X = np.full((64, 1, 28, 28), np.inf, np.float32)
    X[..., ::2] = -np.inf
    kw = dict(stride=(1, 1), padding=((2, 2), (2, 2)), dilation=(1, 1), groups=1)
    W = np.ones((6, 1, 5, 5), np.float32)
    for where in LAYOUTS[1:]:
        for threads in (1, 2, 3):
            num_threads(threads)
            with np.errstate(invalid="ignore"), chunk_bytes(1), layout(where):   # no warning (they fail tests)
                Y = _fast.conv2d(X, W, None, **kw)
            assert np.isnan(Y).all()
            with np.errstate(invalid="raise"), chunk_bytes(1), layout(where), pytest.raises(FloatingPointError):
                _fast.conv2d(X, W, None, **kw)


# ------------------------------ batch first in pieces of columns, and the patches kept

@contextlib.contextmanager
def pieces_of(step):
    """Run the batch-first products in pieces of ``step`` columns (None: as shipped)."""
    before = fast_conv._pieces
    if step is not None:
        fast_conv._pieces = lambda O, CK, L: [slice(k, min(k + step, L)) for k in range(0, L, step)]
    try:
        yield
    finally:
        fast_conv._pieces = before


@given(settings=conv_settings(max_side=9), dtype=dtypes, need_dx=st.booleans(), step=st.sampled_from([1, 2, 5]),
       data=st.data())
def test_batch_first_products_in_pieces_of_columns_equal_the_plain_kernels(settings, dtype, need_dx, step, data):
    shape, kw = settings
    if kw["groups"] != 1:
        kw = dict(kw, groups=1, out_channels=kw["out_channels"] // kw["groups"], in_channels=1)
        shape = shape[:-3] + (1,) + shape[-2:]
    r = np.random.default_rng(data.draw(seeds))
    X = r.standard_normal(shape).astype(dtype)
    W = r.standard_normal((kw["out_channels"], kw["in_channels"]) + kw["kernel_size"]).astype(dtype)
    b = r.standard_normal(kw["out_channels"]).astype(dtype) if kw["bias"] else None
    args = F.conv2d.check(data.draw(_layouts(X)), W, b, **_fn_kw(kw))
    Y = F.conv2d.plain(**args)
    dY = r.standard_normal(Y.shape).astype(dtype)
    bargs = F.conv2d_backward.check(dY, args["X"], args["W"], **_fn_kw(kw), need_dX=need_dx, need_db=b is not None)
    plain = F.conv2d_backward.plain(**bargs)
    with pieces_of(step), layout("batch first"):
        Yf, fast = _fast.conv2d(**args), _fast.conv2d_backward(**bargs)
        Yw, backward = _fast.conv2d_with_backward(**args)
        fused = backward(dY, need_dX=need_dx, need_db=b is not None)
    K = max(W[0].size, W.shape[0] * W[0, 0].size, dY.size // max(W.shape[0], 1)) + 1
    S = _scale(W, X, dY, b)
    for got, want, what in [(Yf, Y, "Y"), (Yw, Y, "fused Y"), *zip(fast, plain, ("dX", "dW", "db")),
                            *zip(fused, plain, ("fused dX", "fused dW", "fused db"))]:
        if want is None:
            assert got is None, what
            continue
        assert got.shape == want.shape and got.dtype == want.dtype == dtype, what
        np.testing.assert_allclose(got, want, rtol=0, atol=tolerance(dtype, K) * S, err_msg=what)


class _Products:
    """numpy for fast_conv, with every np.matmul's size M N K (per matrix of a stack) noted."""

    def __init__(self):
        self.sizes = []

    def __getattr__(self, name):
        return getattr(np, name)

    def matmul(self, a, b, **kw):
        self.sizes.append(a.shape[-2] * a.shape[-1] * b.shape[-1])
        return np.matmul(a, b, **kw)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_cnns_second_conv_runs_batch_first_in_pieces_under_openblas_threads_size_same_bits_for_every_count(
        num_threads, monkeypatch, dtype):
    # (N, 16, 14, 14) -> 32@3x3 pad 1: 32 x 144 x 196 per sample, above OpenBLAS's size for threads
    # (65536 * 4), so each product is cut into pieces of columns under it; blocks of samples on npnet's threads
    products = _Products()
    monkeypatch.setattr(fast_conv, "np", products)
    r = np.random.default_rng(5)
    X = r.standard_normal((32, 16, 14, 14)).astype(dtype)
    X.reshape(-1)[r.choice(X.size, 3, replace=False)] = [np.nan, np.inf, -np.inf]
    W = r.standard_normal((32, 16, 3, 3)).astype(dtype)
    dY = r.standard_normal((32, 32, 14, 14)).astype(dtype)
    dY.reshape(-1)[r.choice(dY.size, 2, replace=False)] = [np.nan, np.inf]
    kw = dict(stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1), groups=1)
    assert fast_conv._takes_batch_first(X, W, (14, 14), 1)
    assert len(fast_conv._sample_blocks(32, 144, (14, 14), X.itemsize)) >= 3
    outputs = {}
    with np.errstate(invalid="ignore"):
        for threads in (1, 2, 3):
            num_threads(threads)
            outputs[threads] = _all_outputs(X, W, None, dY, kw, True)
    assert products.sizes and max(products.sizes) <= 65536 * 4
    for threads in (2, 3):
        for got, want in zip(outputs[threads], outputs[1]):
            if want is None:
                assert got is None
                continue
            np.testing.assert_array_equal(got, want, err_msg=f"{threads} threads")
    assert np.isnan(outputs[1][0]).any() and np.isinf(outputs[1][0]).any()
    finite = np.isfinite(X).all(axis=(1, 2, 3)) & np.isfinite(dY).all(axis=(1, 2, 3))   # samples without specials
    Xf, dYf = X[finite], dY[finite]
    want = F.conv2d.plain(Xf, W, None, **kw), *F.conv2d_backward.plain(dYf, Xf, W, **kw, need_dX=True, need_db=False)
    with np.errstate(invalid="ignore"):
        got = _all_outputs(Xf, W, None, dYf, kw, True)[:3]
    S = _scale(W, Xf, dYf, None)
    for g, w, what in zip(got, want, ("Y", "dX", "dW")):
        np.testing.assert_allclose(g, w, rtol=0, atol=tolerance(dtype, 144 * 32 * 196) * S, err_msg=what)


@pytest.mark.skipif(nn.conv.K.conv2d_with_backward is not _fast.conv2d_with_backward, reason="NPNET_KERNELS=plain")
@pytest.mark.parametrize("keep", [True, False])
def test_the_fused_batch_first_backward_reuses_the_forwards_patches_when_small(monkeypatch, keep):
    built = []
    patches = fast_conv._planes_patches
    monkeypatch.setattr(fast_conv, "_planes_patches", lambda *a, **k: built.append(1) or patches(*a, **k))
    monkeypatch.setattr(fast_conv, "_KEEP_BYTES", fast_conv._KEEP_BYTES if keep else 0)
    layer = nn.Conv2d(2, 3, 3, padding=1, rng=np.random.default_rng(0))
    X = np.random.default_rng(1).standard_normal((4, 2, 6, 6)).astype(np.float32)
    dY = np.random.default_rng(2).standard_normal((4, 3, 6, 6)).astype(np.float32)
    with layout("batch first"):
        Y, backward = layer.forward(X)
        forward_builds = len(built)
        dX, grads = backward(dY)
        dX2, grads2 = backward(dY)        # a second backward: the same answer
        assert len(built) - forward_builds == (0 if keep else 2 * forward_builds)
        dX_, dW_, db_ = _fast.conv2d_backward(dY, X, layer.params["weight"], stride=(1, 1),
                                              padding=((1, 1), (1, 1)), dilation=(1, 1), groups=1)
    for got in (dX, dX2):
        np.testing.assert_array_equal(got, dX_)
    for got in (grads, grads2):
        np.testing.assert_array_equal(got["weight"], dW_)
        np.testing.assert_array_equal(got["bias"], db_)
