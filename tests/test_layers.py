"""Layers against torch autograd (through reference.compare) and their contract:
inputs untouched, dtype kept, backward repeatable, forwards independent, need_dx.

torch runs on one thread here (the torch_one_thread fixture): the tensors are
tiny and a thread pool only adds wake-up latency.
"""
import copy
import gc
import math
import weakref

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from npnet import nn
from npnet.nn import _kernels
from reference import compare
from strategies import (  # noqa: F401  (torch_one_thread is a fixture)
    activations, dtypes, float_arrays, frozen_strided, leading_dims, linears, mlps, shapes, sizes,
    torch_one_thread, upstream,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def check(module, x, dy, dtype, **kw):
    result = compare(module, x, dy, dtype=dtype, **kw)
    assert result.ok, str(result)
    return result


# ------------------------------------------------------------------- against torch

@given(st.data())
def test_linear_matches_torch(data):
    dtype = data.draw(dtypes)
    lead, i, o = data.draw(leading_dims(max_dims=3)), data.draw(sizes), data.draw(sizes)
    x = data.draw(float_arrays(lead + (i,), dtype))
    check(data.draw(linears(i, o)), x, data.draw(upstream(lead + (o,), dtype)), dtype)


@given(st.data())
def test_activations_match_torch(data):
    dtype = data.draw(dtypes)
    shape = data.draw(shapes())
    module = data.draw(activations(len(shape)))
    check(module, data.draw(float_arrays(shape, dtype)), data.draw(upstream(shape, dtype)), dtype)


@given(st.data())
def test_flatten_matches_torch(data):
    dtype = data.draw(dtypes)
    shape = data.draw(shapes(max_dims=4))
    n = len(shape)
    start = data.draw(st.integers(-n, n - 1))
    end = data.draw(st.integers(start % n, n - 1)) - data.draw(st.sampled_from([0, n]))
    module = nn.Flatten(start, end)
    out_shape = module(np.zeros(shape)).shape
    check(module, data.draw(float_arrays(shape, dtype)), data.draw(upstream(out_shape, dtype)), dtype)


@given(st.data())
def test_unflatten_matches_torch(data):
    dtype = data.draw(dtypes)
    shape = data.draw(shapes(max_dims=3))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    n = shape[axis]
    sizes = data.draw(st.sampled_from([(n,), (1, n), (n, 1)] + ([(1, -1)] if n else [])))
    module = nn.Unflatten(axis, sizes)
    out_shape = module(np.zeros(shape)).shape
    assert math.prod(out_shape) == math.prod(shape) and len(out_shape) == len(shape) + len(sizes) - 1
    check(module, data.draw(float_arrays(shape, dtype)), data.draw(upstream(out_shape, dtype)), dtype)


def test_unflatten_gives_images_a_channel_axis_and_refuses_sizes_that_do_not_multiply():
    X = np.arange(2 * 28 * 28, dtype=np.float32).reshape(2, 28, 28)
    Y, backward = nn.Unflatten(1, (1, 28)).forward(X)
    assert Y.shape == (2, 1, 28, 28) and np.shares_memory(Y, X)
    dY = np.random.default_rng(0).standard_normal(Y.shape).astype(np.float32)
    dX, grads = backward(dY)
    assert dX.shape == X.shape and grads == {} and np.array_equal(dX.reshape(-1), dY.reshape(-1))
    assert nn.Unflatten(-1, (4, -1))(np.zeros((3, 8))).shape == (3, 4, 2)
    for bad, exc, name in [(lambda: nn.Unflatten(1, (5,))(np.zeros((2, 6))), ValueError, "unflattened_size"),
                           (lambda: nn.Unflatten(1, (-1, -1)), ValueError, "unflattened_size"),
                           (lambda: nn.Unflatten(1, ()), ValueError, "unflattened_size"),
                           (lambda: nn.Unflatten(1, 6), TypeError, "unflattened_size"),
                           (lambda: nn.Unflatten(1, (2.5, 2)), TypeError, "unflattened_size[0]"),
                           (lambda: nn.Unflatten(3, (2, 3))(np.zeros((2, 6))), ValueError, "axis"),
                           (lambda: nn.Unflatten(1, (2, 3))([[0] * 6]), TypeError, "input")]:
        with pytest.raises(exc) as info:
            bad()
        assert name in str(info.value)


@given(st.data())
def test_dropout_matches_torch_with_the_same_mask(data):
    dtype = data.draw(dtypes)
    shape = data.draw(shapes())
    p = data.draw(st.sampled_from([0.0, 0.5, 1.0]) | st.floats(0.0, 1.0))
    train = data.draw(st.booleans())
    module = nn.Dropout(p, rng=np.random.default_rng(data.draw(st.integers(0, 99))))
    check(module, data.draw(float_arrays(shape, dtype)), data.draw(upstream(shape, dtype)), dtype, train=train)


@given(st.data())
def test_sequential_mlp_matches_torch(data):
    dtype = data.draw(dtypes)
    n, in_shape, out = data.draw(sizes), data.draw(shapes(max_dims=2, max_side=4)), data.draw(sizes)
    net = data.draw(mlps(in_shape, out))
    x = data.draw(float_arrays((n,) + in_shape, dtype))
    check(net, x, data.draw(upstream((n, out), dtype)), dtype, train=data.draw(st.booleans()))


def test_relu_gradient_at_exactly_zero_is_zero():
    x = np.array([-1.0, 0.0, -0.0, 2.0])
    _, backward = nn.ReLU().forward(x)
    dx, _ = backward(np.array([3.0, 5.0, 7.0, 11.0]))
    np.testing.assert_array_equal(dx, [0.0, 0.0, 0.0, 11.0])
    check(nn.ReLU(), x, np.array([3.0, 5.0, 7.0, 11.0]), np.float64)


# --------------------------------------------------------------------- the contract

def _modules(dtype):
    r = np.random.default_rng(0)
    return [
        nn.Linear(5, 3, rng=r, dtype=dtype), nn.Linear(5, 3, bias=False, rng=r, dtype=dtype), nn.ReLU(),
        nn.LeakyReLU(0.2), nn.Sigmoid(), nn.Tanh(), nn.Softmax(), nn.Softmax(axis=0), nn.LogSoftmax(),
        nn.LogSoftmax(axis=0), nn.Flatten(0), nn.Dropout(0.4, rng=r),
        nn.Sequential(nn.Linear(5, 4, rng=r, dtype=dtype), nn.ReLU(), nn.Dropout(0.3, rng=r),
                      nn.Linear(4, 3, rng=r, dtype=dtype)),
    ]


ALL = [type(m).__name__ + str(i) for i, m in enumerate(_modules(np.float64))]


def _run(module, x, dy):
    y, backward = module.forward(x)
    dx, grads = backward(dy)
    return y, dx, grads, backward


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("index", range(len(ALL)), ids=ALL)
def test_inputs_unchanged_dtype_kept_backward_repeatable(index, dtype):
    module = _modules(dtype)[index]
    r = np.random.default_rng(1)
    x = r.standard_normal((4, 5)).astype(dtype)
    y, _ = module.forward(x.copy())
    dy = r.standard_normal(y.shape).astype(dtype)
    x0, dy0 = x.copy(), dy.copy()
    params0 = {k: v.copy() for k, v in module.params.items()}
    y, dx, grads, backward = _run(module, x, dy)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(dy, dy0)
    for k, v in module.params.items():
        np.testing.assert_array_equal(v, params0[k])
    assert y.dtype == dtype and dx.dtype == dtype
    assert all(g.dtype == dtype for g in grads.values())
    assert set(grads) == set(module.params)
    dx2, grads2 = backward(dy)
    np.testing.assert_array_equal(dx2, dx)
    for k in grads:
        np.testing.assert_array_equal(grads2[k], grads[k])
    np.testing.assert_array_equal(dy, dy0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("index", range(len(ALL)), ids=ALL)
def test_read_only_and_non_contiguous_inputs(index, dtype):
    module = _modules(dtype)[index]
    r = np.random.default_rng(2)
    x = r.standard_normal((4, 5)).astype(dtype)
    y, backward = module.forward(frozen_strided(x), train=False)   # no mask: comparable below
    dy = r.standard_normal(y.shape).astype(dtype)
    dx, grads = backward(frozen_strided(dy))
    y_ref, backward_ref = module.forward(x.copy(), train=False)
    dx_ref, grads_ref = backward_ref(dy.copy())
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(y, y_ref, **tol)
    np.testing.assert_allclose(dx, dx_ref, **tol)
    for k in grads_ref:
        np.testing.assert_allclose(grads[k], grads_ref[k], **tol)
    # the transpose of a C array is non-contiguous too, and a frozen one must also work with Dropout on
    xt = np.ascontiguousarray(x.T).T
    xt.flags.writeable = False
    y, backward = module.forward(xt)
    backward(np.ones_like(y) * 0.5 + r.standard_normal(y.shape).astype(dtype))


@pytest.mark.parametrize("index", range(len(ALL)), ids=ALL)
def test_two_forwards_in_flight_do_not_disturb_each_other(index):
    module = _modules(np.float64)[index]
    alone = copy.deepcopy(module)   # same weights and generator state: draws the same masks in turn
    r = np.random.default_rng(3)
    x1, x2 = r.standard_normal((4, 5)), 3 * r.standard_normal((4, 5))
    y1, b1 = module.forward(x1)
    y2, b2 = module.forward(x2)
    dy1, dy2 = r.standard_normal(y1.shape), r.standard_normal(y2.shape)
    dx2, g2 = b2(dy2)          # the later closure first
    dx1, g1 = b1(dy1)
    for x, dy, y, dx, g in [(x1, dy1, y1, dx1, g1), (x2, dy2, y2, dx2, g2)]:
        y_alone, b_alone = alone.forward(x)
        dx_alone, g_alone = b_alone(dy)
        np.testing.assert_array_equal(y, y_alone)
        np.testing.assert_array_equal(dx, dx_alone)
        for k in g_alone:
            np.testing.assert_array_equal(g[k], g_alone[k])


# ------------------------------------------------------------ what backward keeps

# Layers whose backward needs less than their input: once forward has returned, nothing of
# theirs may keep the input alive (in a network, a layer's input would otherwise stay in
# memory until the backward reaches it: a batch norm's input is as large as its output). The
# plain batch norm, max pool and convolution kernels recompute from X by design, so those
# three are held to it under the fast kernels only.
_FAST = _kernels.MODE == "fast"
_FREES_INPUT = [
    ("BatchNorm2d", lambda: nn.BatchNorm2d(4), (6, 4, 12, 12), _FAST),
    ("BatchNorm1d", lambda: nn.BatchNorm1d(4), (6, 4), _FAST),
    ("BatchNorm1d (N, C, L)", lambda: nn.BatchNorm1d(4), (6, 4, 70), _FAST),
    ("MaxPool2d", lambda: nn.MaxPool2d(2), (6, 4, 12, 12), _FAST),
    ("Conv2d", lambda: nn.Conv2d(4, 6, 3, padding=1), (6, 4, 12, 12), _FAST),
    ("Conv2d groups=2", lambda: nn.Conv2d(4, 6, 3, groups=2), (6, 4, 12, 12), _FAST),
    ("ReLU", nn.ReLU, (6, 300), True),
    ("Sigmoid", nn.Sigmoid, (6, 300), True),
    ("Tanh", nn.Tanh, (6, 300), True),
    ("Dropout", lambda: nn.Dropout(0.5, rng=np.random.default_rng(0)), (6, 300), True),
    ("Softmax", lambda: nn.Softmax(-1), (6, 10), True),
]


@pytest.mark.parametrize("name, make, shape, applies", _FREES_INPUT, ids=[c[0] for c in _FREES_INPUT])
def test_backward_does_not_keep_the_input_alive(name, make, shape, applies):
    if not applies:
        pytest.skip("the plain kernel's backward reads X")
    module = make()
    twin = copy.deepcopy(module)   # the same parameters and, for Dropout, the same generator state
    X = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    Y_twin, backward_twin = twin.forward(X.copy())
    expected_dx, _ = backward_twin(np.ones(Y_twin.shape, np.float32))
    alive = weakref.ref(X)
    Y, backward = module.forward(X)
    del X
    gc.collect()
    assert alive() is None, f"{name}'s backward keeps its input alive"
    dX, _ = backward(np.ones(Y.shape, np.float32))   # and still computes its gradient
    np.testing.assert_array_equal(dX, expected_dx)


# ------------------------------------------------------------------------ need_dx

def test_first_layer_of_sequential_skips_dx():
    r = np.random.default_rng(4)
    net = nn.Sequential(nn.Flatten(), nn.Linear(6, 5, rng=r, dtype=np.float64), nn.ReLU(),
                        nn.Linear(5, 2, rng=r, dtype=np.float64))
    x = r.standard_normal((3, 2, 3))
    y, backward = net.forward(x)
    dy = r.standard_normal(y.shape)
    dx, grads = backward(dy)
    none, grads_no_dx = backward(dy, need_dx=False)
    assert dx.shape == x.shape and none is None
    assert set(grads_no_dx) == set(grads) == {"1.weight", "1.bias", "3.weight", "3.bias"}
    for k in grads:
        np.testing.assert_array_equal(grads_no_dx[k], grads[k])


def test_linear_need_dx_false_returns_none_and_the_same_grads():
    r = np.random.default_rng(5)
    layer = nn.Linear(4, 3, rng=r, dtype=np.float64)
    y, backward = layer.forward(r.standard_normal((2, 4)))
    dy = r.standard_normal(y.shape)
    dx, grads = backward(dy, need_dx=False)
    assert dx is None
    _, grads_full = backward(dy)
    for k in grads_full:
        np.testing.assert_array_equal(grads[k], grads_full[k])


def test_sequential_backward_exposes_children_with_dropout_masks():
    r = np.random.default_rng(6)
    net = nn.Sequential(nn.Linear(3, 8, rng=r), nn.Dropout(0.5, rng=r), nn.ReLU())
    y, backward = net.forward(r.standard_normal((4, 3)).astype(np.float32))
    assert len(backward.children) == 3
    mask = backward.children[1].mask
    assert mask.shape == (4, 8) and mask.dtype == np.float32
    assert set(np.unique(mask)) <= {0.0, np.float32(2.0)}


# ------------------------------------------------------------------------ bad input

def test_linear_wrong_feature_size_names_module_and_shapes():
    layer = nn.Linear(784, 10)
    with pytest.raises(ValueError, match=r"Linear\(in_features=784, out_features=10.*expected input \(\.\.\., 784\), "
                                         r"got \(256, 28, 28\).*Flatten"):
        layer.forward(np.zeros((256, 28, 28), np.float32))
    with pytest.raises(ValueError, match=r"expected input \(\.\.\., 784\), got \(2, 783\)"):
        layer(np.zeros((2, 783), np.float32))


@pytest.mark.parametrize("module", [nn.Linear(3, 2), nn.ReLU(), nn.LeakyReLU(), nn.Sigmoid(), nn.Tanh(),
                                    nn.Softmax(), nn.LogSoftmax(), nn.Dropout(0.5)], ids=lambda m: type(m).__name__)
@pytest.mark.parametrize("bad", [np.ones((2, 3), np.int64), np.ones((2, 3), bool), np.ones((2, 3), np.float16),
                                 [[1.0, 2.0, 3.0]]], ids=["int", "bool", "float16", "list"])
def test_non_float_input_is_a_type_error(module, bad):
    with pytest.raises(TypeError, match="input must"):
        module.forward(bad)
    with pytest.raises(TypeError, match="input must"):
        module(bad)


def test_linear_dtype_mismatch_is_a_type_error():
    with pytest.raises(TypeError, match=r"float32 parameters but got float64 input"):
        nn.Linear(3, 2).forward(np.zeros((1, 3)))


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan"), float("inf")])
def test_dropout_p_outside_unit_interval_is_a_value_error(p):
    with pytest.raises(ValueError, match=r"p must be"):
        nn.Dropout(p)


def test_dropout_p_of_wrong_type_is_a_type_error():
    with pytest.raises(TypeError, match=r"p must be a real number"):
        nn.Dropout("0.5")


@pytest.mark.parametrize("index", range(len(ALL)), ids=ALL)
def test_backward_rejects_dy_of_wrong_shape_or_dtype(index):
    module = _modules(np.float32)[index]
    y, backward = module.forward(np.ones((4, 5), np.float32))
    with refuses(ValueError, "dy"):
        backward(np.ones(y.shape + (1,), np.float32))
    with refuses(TypeError, "dy", "float64"):   # the dtype that arrived
        backward(np.ones(y.shape))
    with refuses(TypeError, "dy"):
        backward(y.tolist())


def test_flatten_bad_axes_are_value_errors():
    with pytest.raises(ValueError, match=r"does not fit an input of shape \(2, 3\)"):
        nn.Flatten(2).forward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"start_axis \(2\) must not come after end_axis \(1\)"):
        nn.Flatten(2, 1).forward(np.zeros((2, 3, 4)))


def test_softmax_axis_out_of_range_is_a_value_error():
    with refuses(ValueError, "axis", "[-2, 1]"):   # the range of axes the input has
        nn.Softmax(axis=2).forward(np.zeros((2, 3)))


def test_backward_closures_keep_only_what_they_need():
    # Linear's backward needs X and W, not its output; ReLU's needs its output, not X.
    # So in Linear -> ReLU the pre-activation is freed as soon as ReLU has run.
    import gc
    import weakref

    rng = np.random.default_rng(0)
    lin, relu = nn.Linear(6, 5, rng=rng), nn.ReLU()
    x = rng.standard_normal((4, 6)).astype(np.float32)
    z, lin_backward = lin.forward(x)
    h, relu_backward = relu.forward(z)
    expected = np.where(z > 0, 1.0, 0.0).astype(np.float32)
    z_ref = weakref.ref(z)
    del z
    gc.collect()
    assert z_ref() is None
    dz, _ = relu_backward(np.ones_like(h))
    np.testing.assert_array_equal(dz, expected)
    dx, grads = lin_backward(dz)
    np.testing.assert_allclose(grads["weight"], dz.T @ x, rtol=1e-6)
    with refuses(ValueError, "dy", "Linear", "(4, 4)"):   # which module's backward, and the shape that arrived
        lin_backward(np.ones((4, 4), np.float32))


# =========================================================================== bad inputs
# Every array and every other argument of the layers (forward, call, backward closure),
# crossed with the bad values of tests/badinput.py (its docstring says what
# SAME, REF, OK, Names and Deviates mean), then the rows the tables cannot express.

import math  # noqa: E402

from reference.twins import twin  # noqa: E402
from badinput import (  # noqa: E402, F401  (ctx is a fixture)
    ArrayTable, E, LINEAR_INPUT, OK, REF, Names, ScalarTable, X0, check_array_row, like_rows, refuses,
    check_scalar_row, check_special_row, ctx, nt, randn, rng, special_params, tt)

ARRAYS = ArrayTable()
add = ARRAYS.add

def _module_ref(a, *, train=True, backward=False):
    """The torch twin of a["m"] (replaying the npnet Dropout masks): its output, or (dX, grads)."""
    m, X = a["m"], a["X"]
    replay = copy.deepcopy(m).forward(X, train=train)[1] if train else None
    tw = twin(m, replay=replay)
    tw.train(train)
    x = tt(X).requires_grad_(backward)
    y = tw(x)
    if not backward:
        return nt(y)
    y.backward(tt(a["dy"]))
    return nt(x.grad), {k: nt(p.grad) for k, p in tw.named_parameters()}


MODULES = [
    # id, factory, good input shape, output shape, overrides for the input row
    ("Linear", lambda: nn.Linear(5, 3, rng=rng(1)), (4, 5), (4, 3), LINEAR_INPUT),   # as F.linear
    ("ReLU", nn.ReLU, E, E, dict(zero_d=REF)),
    ("LeakyReLU", lambda: nn.LeakyReLU(0.2), E, E, dict(zero_d=REF)),
    ("Sigmoid", nn.Sigmoid, E, E, dict(zero_d=REF)),
    ("Tanh", nn.Tanh, E, E, dict(zero_d=REF)),
    ("Softmax", lambda: nn.Softmax(axis=1), E, E, dict(zero_d=Names(ValueError, "axis"))),
    ("LogSoftmax", lambda: nn.LogSoftmax(axis=1), E, E, dict(zero_d=Names(ValueError, "axis"))),
    # Flatten names its axes (start_axis=1, end_axis=-1) and the input's shape that does not fit them
    ("Flatten", nn.Flatten, (4, 2, 3), (4, 6), dict(
        kind="any", zero_d=Names(ValueError, ("start_axis", "input")),
        wrong_shape=(lambda v: v[:, 0, 0], Names(ValueError, ("start_axis", "input"), "(4,)")))),
    ("Dropout", lambda: nn.Dropout(0.5, rng=rng(2)), E, E, dict(zero_d=REF)),
    ("Sequential", lambda: nn.Sequential(nn.Flatten(), nn.Linear(6, 4, rng=rng(1)), nn.ReLU(),
                                         nn.Dropout(0.3, rng=rng(2)), nn.Linear(4, 3, rng=rng(3))), (4, 2, 3), (4, 3), dict(
        # the module that refuses the input says so: Flatten first, the Linear after it
        zero_d=Names(ValueError, ("start_axis", "input")),
        wrong_shape=(lambda v: randn(4, 7), Names(ValueError, "input", "Linear(in_features=6")),
        mixed=Names(TypeError, "input"))),
]


def _flatten_ref(a):
    X = a["X"]
    return X.reshape(X.shape[:1] + (math.prod(X.shape[1:]),))


for _id, _make, _in, _out, _kw in MODULES:
    _kw = dict(_kw)
    _kind = _kw.pop("kind", "float")
    _empty_in = (0,) + _in[1:]
    _fwd_ref = _flatten_ref if _id == "Flatten" else _module_ref
    _call_ref = _flatten_ref if _id == "Flatten" else (lambda a: _module_ref(a, train=False))
    add(f"{_id}.forward(input)", lambda a: a["m"].forward(a["X"])[0],
        lambda make=_make, s=_in: {"X": randn(*s), "m": make()},
        "X", "input", kind=_kind, ref=_fwd_ref, empty=lambda make=_make, s=_empty_in: {"X": randn(*s), "m": make()}, **_kw)
    add(f"{_id}(input)", lambda a: a["m"](a["X"]), lambda make=_make, s=_in: {"X": randn(*s), "m": make()},
        "X", "input", kind=_kind, ref=_call_ref, empty=lambda make=_make, s=_empty_in: {"X": randn(*s), "m": make()}, **_kw)
    add(f"{_id}.forward(...)[1](dy)", lambda a: a["m"].forward(a["X"])[1](a["dy"]),
        lambda make=_make, s=_in, o=_out: {"dy": randn(*o, seed=5), "X": randn(*s), "m": make()}, "dy",
        ref=lambda a: _module_ref(a, backward=True),
        empty=lambda make=_make, s=_empty_in, o=_out: {"dy": randn(0, *o[1:], seed=5), "X": randn(*s), "m": make()},
        **like_rows("dy"))

# Module.load_state_dict: each value is an array copied (with a cast) into the parameter
add("Linear.load_state_dict(state_dict['weight'])",
    lambda a: a["m"].load_state_dict(a["sd"]).state_dict(),
    lambda: {"sd": {"weight": randn(3, 5, seed=4), "bias": randn(3, seed=5)}, "m": nn.Linear(5, 3, rng=rng())},
    ("sd", "weight"), "state_dict['weight']", mutates=("m",),
    ref=lambda a: {k: np.array(v, np.float32) for k, v in a["sd"].items()},
    over={"int64": REF, "float16": REF, "other-float": REF},
    # a transposed weight is the classic mistake (torch stores (out, in)): the message shows what arrived
    zero_d=Names(ValueError, "state_dict['weight']"),
    wrong_shape=(lambda v: v.T, Names(ValueError, "state_dict['weight']", "(5, 3)")))


@pytest.mark.parametrize("arg, bad, outcome", ARRAYS.params())
def test_array_argument(arg, bad, outcome):
    check_array_row(arg, bad, outcome)


SCALARS = ScalarTable()
scalar = SCALARS.add

_X = X0()
scalar("Linear(in_features)", lambda v, c: nn.Linear(v, 3), "in_features", "int>=0", good=5)
scalar("Linear(out_features)", lambda v, c: nn.Linear(5, v), "out_features", "int>=0")
scalar("Linear(bias)", lambda v, c: nn.Linear(5, 3, v), "bias", "flag", good=False)
scalar("Linear(rng)", lambda v, c: nn.Linear(5, 3, rng=v), "rng", "generator?", good=rng())
scalar("Linear(dtype)", lambda v, c: nn.Linear(5, 3, dtype=v), "dtype", "dtype", good=np.float64)
scalar("Linear.reset_parameters(rng)", lambda v, c: nn.Linear(5, 3).reset_parameters(v), "rng", "generator?")
scalar("Linear.to(dtype)", lambda v, c: nn.Linear(5, 3).to(v), "dtype", "dtype", good="float64")
scalar("LeakyReLU(negative_slope)", lambda v, c: nn.LeakyReLU(v), "negative_slope", "real")
scalar("Softmax(axis)", lambda v, c: nn.Softmax(v), "axis", "int")
scalar("LogSoftmax(axis)", lambda v, c: nn.LogSoftmax(v), "axis", "int")
scalar("Softmax(axis).forward", lambda v, c: nn.Softmax(v).forward(_X), "axis", "int",
       over={"big": Names(ValueError, "axis")})
scalar("Flatten(start_axis)", lambda v, c: nn.Flatten(v), "start_axis", "int")
scalar("Flatten(end_axis)", lambda v, c: nn.Flatten(0, v), "end_axis", "int")
scalar("Flatten(start_axis).forward", lambda v, c: nn.Flatten(v).forward(randn(2, 3, 4)), "start_axis", "int",
       over={"big": Names(ValueError, ("start_axis", "input")),
             "negative": OK})
scalar("Dropout(p)", lambda v, c: nn.Dropout(v), "p", "prob")
scalar("Dropout(rng)", lambda v, c: nn.Dropout(rng=v), "rng", "generator?")
scalar("Dropout.forward(train)", lambda v, c: nn.Dropout(0.5, rng=rng()).forward(_X, train=v), "train", "flag")
scalar("Sequential(module)", lambda v, c: nn.Sequential(nn.ReLU(), v), "Sequential argument 1", "module")
scalar("Linear.load_state_dict(state_dict)", lambda v, c: nn.Linear(5, 3).load_state_dict(v), "state_dict", "dict")


@pytest.mark.parametrize("s, bad, outcome", SCALARS.params())
def test_other_argument(ctx, s, bad, outcome):
    check_scalar_row(ctx, s, bad, outcome)


SPECIAL = [
    # id, lambda ctx: the call, outcome (REF rows give (call, reference) pairs)
    # the point of this row is the hint a learner reads
    ("Linear(784) on images names Flatten", lambda c: nn.Linear(784, 10)(randn(2, 28, 28)),
     Names(ValueError, "input", "(2, 28, 28)", "nn.Flatten()")),
    ("Sequential of 0-d through ReLU, Tanh", lambda c: nn.Sequential(nn.ReLU(), nn.Tanh()).forward(np.array(0.5))[0], OK),
    ("Sequential(non-module)", lambda c: nn.Sequential(nn.ReLU(), "relu"),
     Names(TypeError, "Sequential argument 1")),
    ("load_state_dict missing key", lambda c: nn.Linear(5, 3).load_state_dict({"weight": randn(3, 5)}),
     Names(ValueError, "state_dict", "['bias']")),   # the message shows the missing key
]


@pytest.mark.parametrize("call, outcome", special_params(SPECIAL))
def test_special_row(ctx, call, outcome):
    check_special_row(ctx, call, outcome)


@pytest.mark.parametrize("where", ["module dy", "optimizer grads", "loss dloss", "kernel dY"])
def test_every_upstream_gradient_is_checked_by_one_function(where):
    # _validate.like is the one check of "an array shaped and typed like X": a module's
    # dy, an optimizer's grads[...], a loss's dloss and a kernel's dY all get its message.
    from npnet import _validate as V, optim
    from npnet.nn import functional as F

    X = randn(4, 5)
    if where == "module dy":
        Y, backward = nn.ReLU().forward(X)
        call, name, ref, ref_name = backward, "dy", Y, "ReLU's output"
    elif where == "optimizer grads":
        p = {"w": randn(4, 5)}
        call, name, ref, ref_name = (lambda g: optim.SGD(p, lr=0.1).step({"w": g})), "grads['w']", p["w"], "params['w']"
    elif where == "loss dloss":
        loss, backward = nn.MSELoss().forward(X, randn(4, 5, seed=1))
        call, name, ref, ref_name = backward, "dloss", loss, "the loss"
    else:
        call, name, ref, ref_name = (lambda g: F.relu_backward(g, X)), "dY", X, "X"
    ref = np.asarray(ref)
    for bad, exc in ((ref.astype(np.float64), TypeError), (np.zeros(ref.shape + (2,), ref.dtype), ValueError),
                     ([1.0], TypeError)):
        with pytest.raises(exc) as want:
            V.like(bad, name, ref, ref_name)
        with pytest.raises(exc) as got:
            call(bad)
        assert str(got.value) == str(want.value)
