"""GELU and the erf under it: erf against math.erf to a few ulps, GELU against torch in
both forms and both dtypes, finite differences, and bad input."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import npnet
from npnet import nn
from npnet.nn import functional as F
from npnet.nn.functional.activations import _erf
from reference import compare
from strategies import dtypes, float_arrays, frozen_strided, moderate, shapes, torch_one_thread, upstream  # noqa: F401

pytestmark = pytest.mark.usefixtures("torch_one_thread")

# Measured: at most 5 ulps from the correctly rounded erf (math.erf), just above |x| = 0.46875
# where erf = 1 - erfc with erfc near 1/2; at most 3 ulps below it, 2 above 0.6, 1 above 1.
MAX_ULPS = 5


def _ulps(got, x):
    want = np.array([math.erf(v) for v in x])
    return np.abs(got - want) / np.spacing(np.abs(want))


def test_erf_within_a_few_ulps_on_a_dense_grid_and_random_values():
    grid = np.linspace(-30, 30, 600_001)
    rand = np.random.default_rng(0).uniform(-30, 30, 200_000)
    near = np.random.default_rng(1).uniform(-5, 5, 200_000)
    tiny = np.geomspace(1e-300, 1, 2_000)
    x = np.concatenate([grid, rand, near, tiny, -tiny, [0.46875, 4.0, 27.0, np.nextafter(0.46875, 1)]])
    ulps = _ulps(_erf(x), x)
    assert ulps.max() <= MAX_ULPS, (ulps.max(), x[ulps.argmax()])
    assert ulps.mean() < 0.25


def test_erf_is_odd_and_exact_at_the_ends():
    x = np.random.default_rng(2).uniform(-30, 30, 10_000)
    np.testing.assert_array_equal(_erf(-x), -_erf(x))
    out = _erf(np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 1e300, -1e300]))
    np.testing.assert_array_equal(out[:2], [1.0, -1.0])
    assert np.isnan(out[2])
    assert out[3] == 0 and not np.signbit(out[3]) and np.signbit(out[4])
    np.testing.assert_array_equal(out[5:], [1.0, -1.0])
    assert _erf(np.array([5e-324]))[0] > 0                 # the smallest subnormal: 2/sqrt(pi) x rounds up


@given(dtype=dtypes, shape=shapes(), data=st.data())
def test_gelu_matches_torch(dtype, shape, data):
    module = nn.GELU(data.draw(st.sampled_from(["none", "tanh"])))
    x = data.draw(float_arrays(shape, dtype, big=30.0, scales=(1.0, 3.0, 1e-3)))
    result = compare(module, x, data.draw(upstream(shape, dtype)), dtype=dtype)
    assert result.ok, f"{module!r}\n{result}"


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_at_large_and_special_values_as_torch(approximate, dtype):
    x = np.array([-1e4, -40.0, -8.0, -1.0, -0.0, 0.0, 1e-30, 1.0, 8.0, 40.0, 1e4, np.nan], dtype)
    dy = np.linspace(-2, 2, x.size).astype(dtype)
    y, backward = nn.GELU(approximate).forward(x)
    xt = torch.from_numpy(x).requires_grad_()
    yt = torch.nn.functional.gelu(xt, approximate=approximate)
    yt.backward(torch.from_numpy(dy))
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=8 * eps, atol=8 * eps, equal_nan=True)
    np.testing.assert_allclose(backward(dy)[0], xt.grad.numpy(), rtol=64 * eps, atol=8 * eps, equal_nan=True)
    assert y.dtype == dtype
    # at -inf: -inf * 0 = nan, as torch; at +inf: inf (torch's float32 exact form gives nan there)
    y, backward = nn.GELU(approximate).forward(np.array([-np.inf, np.inf], dtype))
    assert np.isnan(y[0]) and y[1] == np.inf and np.isnan(backward(np.ones(2, dtype))[0]).all()


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_gradcheck_and_inputs_unchanged(approximate):
    module = nn.GELU(approximate)
    assert npnet.gradcheck(module, moderate((3, 7), seed=3) * 3)
    x = frozen_strided(moderate((4, 5), np.float32, seed=4))
    y, backward = module.forward(x)
    dy = moderate(y.shape, np.float32, seed=5)
    dx, grads = backward(dy)
    np.testing.assert_array_equal(dx, F.gelu_backward(dy, np.ascontiguousarray(x), approximate))
    np.testing.assert_array_equal(module(x), y)
    assert grads == {} and module.params == {}


def test_gelu_repr_as_torch():
    assert repr(nn.GELU()) == repr(torch.nn.GELU()) and repr(nn.GELU("tanh")) == repr(torch.nn.GELU("tanh"))


@pytest.mark.parametrize("make, exc, name", [
    (lambda: nn.GELU("exact"), ValueError, "approximate"),
    (lambda: nn.GELU(None), ValueError, "approximate"),
    (lambda: F.gelu(np.zeros(3), approximate="Tanh"), ValueError, "approximate"),
    (lambda: nn.GELU()([1.0, 2.0]), TypeError, "input"),
    (lambda: nn.GELU()(np.zeros(3, np.int64)), TypeError, "input"),
    (lambda: nn.GELU().forward(np.zeros(3))[1](np.zeros(4)), ValueError, "dy"),
    (lambda: nn.GELU().forward(np.zeros(3))[1](np.zeros(3, np.float32)), TypeError, "dy"),
    (lambda: F.gelu_backward(np.zeros(3, np.float32), np.zeros(3)), TypeError, "dY"),
])
def test_bad_input_names_the_argument(make, exc, name):
    with pytest.raises(exc, match=rf"(?<![\w.]){name}(?!\w)"):
        make()
