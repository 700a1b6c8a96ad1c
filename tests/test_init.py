"""npnet.nn.init against its theoretical distributions and against torch.nn.init.

Distribution checks use a fixed seed and 512x512 samples: exact bounds, mean and
std within 5 standard errors, and a Kolmogorov-Smirnov statistic computed here
(sorted samples against the theoretical CDF) compared with the asymptotic
critical value 1.63 / sqrt(n) (alpha = 0.01). A negative control shows the KS
check rejects a distribution 10% too wide, so it can fail.
"""
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from npnet.nn import init

N_SIDE = 512
N = N_SIDE * N_SIDE
KS_CRITICAL = 1.63 / math.sqrt(N)  # asymptotic, alpha = 0.01
TORCH_NONLINEARITIES = [
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "selu",
]

_erf = np.frompyfunc(math.erf, 1, 1)


def normal_cdf(x, mean=0.0, std=1.0):
    z = (np.asarray(x, dtype=np.float64) - mean) / (std * math.sqrt(2.0))
    return 0.5 * (1.0 + np.asarray(_erf(z), dtype=np.float64))


def uniform_cdf(x, low, high):
    return np.clip((np.asarray(x, dtype=np.float64) - low) / (high - low), 0.0, 1.0)


def trunc_normal_cdf(x, mean, std, a, b):
    lo, hi = normal_cdf(a, mean, std), normal_cdf(b, mean, std)
    return np.clip((normal_cdf(x, mean, std) - lo) / (hi - lo), 0.0, 1.0)


def trunc_normal_moments(mean, std, a, b):
    """Mean and std of N(mean, std^2) truncated to [a, b]."""
    alpha, beta = (a - mean) / std, (b - mean) / std
    pdf = lambda z: math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    Z = cdf(beta) - cdf(alpha)
    m = mean + std * (pdf(alpha) - pdf(beta)) / Z
    var = std**2 * (1 + (alpha * pdf(alpha) - beta * pdf(beta)) / Z - ((pdf(alpha) - pdf(beta)) / Z) ** 2)
    return m, math.sqrt(var)


def ks_statistic(samples, cdf):
    """sup |F_n - F| of the samples against the CDF ``cdf``, computed from the sorted samples."""
    x = np.sort(np.asarray(samples, dtype=np.float64).ravel())
    n = x.size
    F = cdf(x)
    i = np.arange(1, n + 1)
    return max(float(np.max(i / n - F)), float(np.max(F - (i - 1) / n)))


def assert_moments(samples, mean, std):
    """Sample mean and std within 5 standard errors of the theory.

    SE(mean) = std / sqrt(n); SE(std) = std * sqrt((kurtosis - 1) / (4 n)), bounded
    here by the normal's std / sqrt(2 n), which is conservative for the uniform and
    truncated normals (kurtosis <= 3).
    """
    x = np.asarray(samples, dtype=np.float64).ravel()
    n = x.size
    assert abs(x.mean() - mean) <= 5 * std / math.sqrt(n), (x.mean(), mean)
    assert abs(x.std() - std) <= 5 * std / math.sqrt(2 * n), (x.std(), std)


def rng(seed=0):
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------- the statistics themselves


def test_ks_check_rejects_a_wrong_distribution():
    """Negative control: samples with 1.1x the std fail the same KS check that the right std passes."""
    x = rng(1).normal(0.0, 1.0, N)
    assert ks_statistic(x, lambda t: normal_cdf(t, 0.0, 1.0)) < KS_CRITICAL
    assert ks_statistic(1.1 * x, lambda t: normal_cdf(t, 0.0, 1.0)) > KS_CRITICAL
    u = rng(2).uniform(-1.0, 1.0, N)
    assert ks_statistic(u, lambda t: uniform_cdf(t, -1.0, 1.0)) < KS_CRITICAL
    assert ks_statistic(1.05 * u, lambda t: uniform_cdf(t, -1.0, 1.0)) > KS_CRITICAL
    with pytest.raises(AssertionError):
        assert_moments(1.1 * x, 0.0, 1.0)


# --------------------------------------------------------------------------- each initializer vs its distribution


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_uniform_distribution(dtype):
    a, b = -0.3, 0.7
    W = init.uniform_(np.empty((N_SIDE, N_SIDE), dtype=dtype), a, b, rng=rng(3))
    assert W.dtype == dtype
    assert W.min() >= a and W.max() <= b
    assert_moments(W, (a + b) / 2, (b - a) / math.sqrt(12))
    assert ks_statistic(W, lambda t: uniform_cdf(t, a, b)) < KS_CRITICAL


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_normal_distribution(dtype):
    W = init.normal_(np.empty((N_SIDE, N_SIDE), dtype=dtype), 0.5, 2.0, rng=rng(4))
    assert W.dtype == dtype
    assert_moments(W, 0.5, 2.0)
    assert ks_statistic(W, lambda t: normal_cdf(t, 0.5, 2.0)) < KS_CRITICAL


@pytest.mark.parametrize(
    "mean, std, a, b",
    [
        (0.0, 1.0, -2.0, 2.0),  # torch's default: p > 0.3, normal proposals
        (0.2, 0.5, -0.5, 1.5),  # asymmetric, p > 0.3
        (0.0, 1.0, 1.0, 3.0),  # tail, p = 0.157 < 0.3: uniform proposals
        (0.0, 0.02, -0.01, 0.005),  # narrow, p < 0.3
    ],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_trunc_normal_distribution(mean, std, a, b, dtype):
    W = init.trunc_normal_(np.empty((N_SIDE, N_SIDE), dtype=dtype), mean, std, a, b, rng=rng(5))
    assert W.dtype == dtype
    assert W.min() >= dtype(a) and W.max() <= dtype(b)
    assert_moments(W, *trunc_normal_moments(mean, std, a, b))
    assert ks_statistic(W, lambda t: trunc_normal_cdf(t, mean, std, a, b)) < KS_CRITICAL


def _theory(name, shape, gain=1.0, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """(kind, scale) from the textbook formulas: the bound of a uniform or the std of a normal."""
    fan_in = shape[1] * math.prod(shape[2:])
    fan_out = shape[0] * math.prod(shape[2:])
    if name.startswith("xavier"):
        std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    else:
        std = init.calculate_gain(nonlinearity, a) / math.sqrt(fan_in if mode == "fan_in" else fan_out)
    return ("uniform", math.sqrt(3.0) * std) if name.endswith("uniform_") else ("normal", std)


SCALED = [
    ("xavier_uniform_", {"gain": 1.0}),
    ("xavier_uniform_", {"gain": 5.0 / 3}),
    ("xavier_normal_", {"gain": 1.0}),
    ("kaiming_uniform_", {"a": math.sqrt(5)}),
    ("kaiming_uniform_", {"mode": "fan_out", "nonlinearity": "relu"}),
    ("kaiming_normal_", {}),
    ("kaiming_normal_", {"a": 0.2, "mode": "fan_out"}),
]


@pytest.mark.parametrize("name, kwargs", SCALED)
@pytest.mark.parametrize("shape", [(N_SIDE, N_SIDE), (64, 128, 4, 8)])
def test_scaled_initializer_distribution(name, kwargs, shape):
    W = getattr(init, name)(np.empty(shape), **kwargs, rng=rng(6))
    kind, scale = _theory(name, shape, **kwargs)
    if kind == "uniform":
        assert np.abs(W).max() <= scale
        assert_moments(W, 0.0, scale / math.sqrt(3.0))
        assert ks_statistic(W, lambda t: uniform_cdf(t, -scale, scale)) < KS_CRITICAL
    else:
        assert_moments(W, 0.0, scale)
        assert ks_statistic(W, lambda t: normal_cdf(t, 0.0, scale)) < KS_CRITICAL


def test_linear_default_init_contract():
    """What nn.Linear does: kaiming_uniform_(a=sqrt(5)) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    W = init.kaiming_uniform_(np.empty((300, 784)), a=math.sqrt(5), rng=rng(7))
    fan_in, _ = init.calculate_fan_in_and_fan_out(W)
    bound = 1 / math.sqrt(fan_in)
    assert fan_in == 784
    assert np.abs(W).max() <= bound and np.abs(W).max() > 0.99 * bound
    b = init.uniform_(np.empty(300), -bound, bound, rng=rng(8))
    assert np.abs(b).max() <= bound


# --------------------------------------------------------------------------- against torch.nn.init


shapes = st.lists(st.integers(1, 7), min_size=2, max_size=5).map(tuple)


@given(shape=shapes)
def test_fans_match_torch(shape):
    assert init.calculate_fan_in_and_fan_out(np.empty(shape)) == torch.nn.init._calculate_fan_in_and_fan_out(
        torch.empty(shape)
    )


@given(
    shape=shapes,
    name=st.sampled_from(["kaiming_uniform_", "kaiming_normal_"]),
    mode=st.sampled_from(["fan_in", "fan_out"]),
    nonlinearity=st.sampled_from(TORCH_NONLINEARITIES),
    a=st.sampled_from([0, 0.01, 0.2, math.sqrt(5), -0.3]),
    seed=st.integers(0, 2**32 - 1),
)
def test_kaiming_scale_matches_torch_formula(shape, name, mode, nonlinearity, a, seed):
    """The samples are exactly scale * (the generator's standard draws), scale from torch's own functions."""
    t = torch.empty(shape)
    std = torch.nn.init.calculate_gain(nonlinearity, a) / math.sqrt(torch.nn.init._calculate_correct_fan(t, mode))
    W = getattr(init, name)(np.empty(shape), a=a, mode=mode, nonlinearity=nonlinearity, rng=rng(seed))
    if name == "kaiming_uniform_":
        bound = math.sqrt(3.0) * std
        expected = -bound + 2 * bound * rng(seed).random(shape)
    else:
        expected = std * rng(seed).standard_normal(shape)
    np.testing.assert_allclose(W, expected, rtol=1e-14, atol=1e-15 * std)


@given(
    shape=shapes,
    name=st.sampled_from(["xavier_uniform_", "xavier_normal_"]),
    gain=st.floats(0.1, 3.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_xavier_scale_matches_torch_formula(shape, name, gain, seed):
    fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    W = getattr(init, name)(np.empty(shape), gain=gain, rng=rng(seed))
    if name == "xavier_uniform_":
        bound = math.sqrt(3.0) * std
        expected = -bound + 2 * bound * rng(seed).random(shape)
    else:
        expected = std * rng(seed).standard_normal(shape)
    np.testing.assert_allclose(W, expected, rtol=1e-14, atol=1e-15 * std)


TORCH_CASES = [
    ("uniform_", {"a": -0.5, "b": 0.25}),
    ("normal_", {"mean": 0.1, "std": 0.02}),
    ("trunc_normal_", {"std": 0.02, "a": -0.04, "b": 0.04}),
    ("trunc_normal_", {"mean": 0.0, "std": 1.0, "a": 1.0, "b": 3.0}),
    ("xavier_uniform_", {}),
    ("xavier_normal_", {"gain": 2.0}),
    ("kaiming_uniform_", {"a": math.sqrt(5)}),
    ("kaiming_uniform_", {"mode": "fan_out", "nonlinearity": "relu"}),
    ("kaiming_normal_", {"nonlinearity": "tanh"}),
    ("kaiming_normal_", {"a": 0.2, "mode": "fan_out", "nonlinearity": "leaky_relu"}),
    ("orthogonal_", {"gain": 1.5}),
]


@pytest.mark.parametrize("name, kwargs", TORCH_CASES)
@pytest.mark.parametrize("shape", [(256, 512), (32, 64, 3, 3)])
def test_sample_moments_match_torch(name, kwargs, shape):
    """npnet's and torch's sample mean, std and max |x| agree within sampling error."""
    W = getattr(init, name)(np.empty(shape), **kwargs, rng=rng(9))
    g = torch.Generator().manual_seed(9)
    T = getattr(torch.nn.init, name)(torch.empty(shape, dtype=torch.float64), **kwargs, generator=g).numpy()
    n = W.size
    sigma = T.std()
    assert abs(W.mean() - T.mean()) <= 5 * math.sqrt(2) * sigma / math.sqrt(n)
    assert abs(W.std() - sigma) <= 5 * math.sqrt(2) * sigma / math.sqrt(2 * n)
    if name in ("uniform_", "trunc_normal_") or name.endswith("uniform_"):
        # Bounded: both fill (nearly) the same interval and never leave it.
        assert abs(W.min() - T.min()) <= 1e-3 * (T.max() - T.min())
        assert abs(W.max() - T.max()) <= 1e-3 * (T.max() - T.min())


@pytest.mark.parametrize("shape", [(64, 32), (32, 64), (16, 4, 3, 3), (5, 5), (1, 7), (7, 1)])
@pytest.mark.parametrize("gain", [1.0, 2.5])
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_orthogonal(shape, gain, dtype, tol):
    W = init.orthogonal_(np.empty(shape, dtype=dtype), gain=gain, rng=rng(10))
    assert W.dtype == dtype
    M = W.reshape(shape[0], -1).astype(np.float64)
    rows, cols = M.shape
    gram = M @ M.T if rows <= cols else M.T @ M
    np.testing.assert_allclose(gram, gain**2 * np.eye(min(rows, cols)), atol=tol * gain**2)
    T = torch.nn.init.orthogonal_(torch.empty(shape, dtype=torch.float64), gain=gain).reshape(rows, -1).numpy()
    gram_t = T @ T.T if rows <= cols else T.T @ T
    np.testing.assert_allclose(gram, gram_t, atol=tol * gain**2)


def test_orthogonal_entries_match_torch():
    """Haar-distributed entries: std gain / sqrt(max(rows, cols)), as torch's."""
    W = init.orthogonal_(np.empty((300, 500)), rng=rng(11))
    T = torch.nn.init.orthogonal_(torch.empty((300, 500), dtype=torch.float64), generator=torch.Generator().manual_seed(11))
    n = W.size
    assert abs(W.std() - 1 / math.sqrt(500)) <= 5 / math.sqrt(500) / math.sqrt(2 * n)
    assert abs(W.std() - T.numpy().std()) <= 10 / math.sqrt(500) / math.sqrt(2 * n)


@pytest.mark.parametrize("shape", [(3, 5), (5, 3), (4, 4), (1, 1)])
def test_deterministic_fills_equal_torch(shape):
    for name, args in [("eye_", ()), ("zeros_", ()), ("ones_", ()), ("constant_", (0.3,)), ("constant_", (-2,))]:
        W = getattr(init, name)(np.full(shape, np.nan), *args)
        T = getattr(torch.nn.init, name)(torch.empty(shape, dtype=torch.float64), *args).numpy()
        np.testing.assert_array_equal(W, T)


@pytest.mark.parametrize("shape, groups", [((4, 4, 3), 1), ((6, 2, 3, 3), 2), ((3, 5, 2, 3, 3), 1), ((8, 3, 5, 5), 4)])
def test_dirac_equals_torch(shape, groups):
    W = init.dirac_(np.full(shape, np.nan), groups=groups)
    T = torch.nn.init.dirac_(torch.empty(shape, dtype=torch.float64), groups=groups).numpy()
    np.testing.assert_array_equal(W, T)


NONLINEARITY_PARAMS = [None, 0, 0.2, 1, -0.5, 3, 0.01]


@pytest.mark.parametrize("nonlinearity", TORCH_NONLINEARITIES)
@pytest.mark.parametrize("param", NONLINEARITY_PARAMS)
def test_calculate_gain_equals_torch(nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == torch.nn.init.calculate_gain(nonlinearity, param)


@pytest.mark.parametrize(
    "nonlinearity, param",
    [
        ("gelu", None),
        ("Relu", None),
        ("", None),
        (None, None),
        (5, None),
        ("leaky_relu", "0.1"),
        ("leaky_relu", True),
        ("leaky_relu", [0.1]),
    ],
)
def test_calculate_gain_raises_where_torch_raises(nonlinearity, param):
    with pytest.raises(ValueError):
        torch.nn.init.calculate_gain(nonlinearity, param)
    with pytest.raises(ValueError, match="nonlinearity|param"):
        init.calculate_gain(nonlinearity, param)


# --------------------------------------------------------------------------- randomness, dtypes, views


RANDOM = [
    ("uniform_", {}),
    ("normal_", {}),
    ("trunc_normal_", {}),
    ("xavier_uniform_", {}),
    ("xavier_normal_", {}),
    ("kaiming_uniform_", {}),
    ("kaiming_normal_", {}),
    ("orthogonal_", {}),
]


@pytest.mark.parametrize("name, kwargs", RANDOM)
def test_same_seed_same_result_and_global_state_untouched(name, kwargs):
    np.random.seed(1234)
    before = np.random.get_state()
    f = getattr(init, name)
    W1 = f(np.empty((20, 30)), **kwargs, rng=rng(12))
    W2 = f(np.empty((20, 30)), **kwargs, rng=rng(12))
    np.testing.assert_array_equal(W1, W2)
    W3 = f(np.empty((20, 30)), **kwargs)  # rng=None: a fresh generator, still not the global one
    assert not np.array_equal(W1, W3)
    after = np.random.get_state()
    assert before[0] == after[0] and np.array_equal(before[1], after[1]) and before[2:] == after[2:]


@pytest.mark.parametrize("name, kwargs", RANDOM)
def test_dtype_preserved_and_float32_is_rounded_float64(name, kwargs):
    f = getattr(init, name)
    W64 = f(np.empty((20, 30)), **kwargs, rng=rng(13))
    W32 = f(np.empty((20, 30), dtype=np.float32), **kwargs, rng=rng(13))
    assert W32.dtype == np.float32
    if name == "orthogonal_":
        np.testing.assert_allclose(W32, W64, atol=1e-6)
    else:
        np.testing.assert_array_equal(W32, W64.astype(np.float32))


@pytest.mark.parametrize("name, kwargs", RANDOM + [("zeros_", {}), ("eye_", {}), ("constant_", {"val": 2.0})])
def test_writes_into_non_contiguous_views(name, kwargs):
    base = np.full((12, 20), 7.0)
    view = base[:, ::2].T  # (10, 12), non-contiguous
    f = getattr(init, name)
    extra = {} if name in ("zeros_", "eye_", "constant_") else {"rng": rng(14)}
    out = f(view, **kwargs, **extra)
    assert out is view
    assert np.all(base[:, 1::2] == 7.0), "wrote outside the view"
    if name not in ("constant_",):
        assert not np.all(view == 7.0)
    if extra:
        expected = f(np.empty((10, 12)), **kwargs, rng=rng(14))
        np.testing.assert_array_equal(view, expected)


def test_returns_same_array_in_place():
    W = np.empty((4, 5))
    assert init.kaiming_uniform_(W, rng=rng(0)) is W


def test_zero_size_arrays_are_a_no_op():
    for f in (init.xavier_uniform_, init.xavier_normal_, init.kaiming_uniform_, init.kaiming_normal_, init.orthogonal_):
        W = np.empty((0, 5))
        assert f(W, rng=rng(0)) is W


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda: init.calculate_fan_in_and_fan_out(np.empty(5)), ValueError, ["fewer than 2", "(5,)"]),
        (lambda: init.xavier_uniform_(np.empty(5)), ValueError, ["fewer than 2"]),
        (lambda: init.kaiming_normal_(np.empty((3, 4)), mode="fan_avg"), ValueError, ["mode", "fan_in", "fan_avg"]),
        (lambda: init.kaiming_uniform_(np.empty((3, 4)), nonlinearity="gelu"), ValueError, ["nonlinearity", "gelu", "relu"]),
        (lambda: init.kaiming_uniform_(np.empty((3, 4)), a="x"), TypeError, ["a must be a real number"]),
        (lambda: init.normal_(np.empty(3), std=-1.0), ValueError, ["std", "-1.0"]),
        (lambda: init.trunc_normal_(np.empty(3), std=0.0), ValueError, ["std", "0.0"]),
        (lambda: init.uniform_(np.empty(3), 1.0, 0.0), ValueError, ["a=1.0", "b=0.0"]),
        (lambda: init.trunc_normal_(np.empty(3), a=1.0, b=-1.0), ValueError, ["a=1.0", "b=-1.0"]),
        (lambda: init.uniform_(np.empty(3, dtype=np.int64)), TypeError, ["array", "int64"]),
        (lambda: init.zeros_(np.empty(3, dtype=np.float16)), TypeError, ["array", "float16"]),
        (lambda: init.normal_([0.0, 1.0]), TypeError, ["array", "list"]),
        (lambda: init.uniform_(np.empty(3), rng=42), TypeError, ["rng", "42"]),
        (lambda: init.eye_(np.empty((2, 3, 4))), ValueError, ["2-D", "(2, 3, 4)"]),
        (lambda: init.dirac_(np.empty((3, 4))), ValueError, ["dirac_", "(3, 4)"]),
        (lambda: init.dirac_(np.empty((3, 4, 3)), groups=2), ValueError, ["groups=2", "3"]),
        (lambda: init.orthogonal_(np.empty(4)), ValueError, ["2 or more", "(4,)"]),
        (lambda: init.constant_(np.empty(3, dtype=np.float32), 1e300), ValueError, ["val", "float32"]),
        (lambda: init.constant_(np.empty(3), "1"), TypeError, ["val"]),
    ],
)
def test_errors_name_the_argument(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    for w in words:
        assert w in str(info.value), (w, str(info.value))


def test_read_only_array_is_refused():
    W = np.zeros((3, 4))
    W.setflags(write=False)
    for f in (init.zeros_, lambda x: init.uniform_(x, rng=rng(0)), lambda x: init.kaiming_normal_(x, rng=rng(0))):
        with pytest.raises(ValueError, match="read-only"):
            f(W)
    assert np.all(W == 0)


def test_trunc_normal_warns_like_torch_when_mean_is_far():
    with pytest.warns(UserWarning, match="more than 2 std"):
        init.trunc_normal_(np.empty(10), mean=5.0, std=1.0, a=-1.0, b=1.0, rng=rng(0))


# =========================================================================== bad inputs
# Every array and every other argument of the initializers,
# crossed with the bad values of tests/badinput.py (its docstring says what
# SAME, REF, OK, Names and Deviates mean), then the rows the tables cannot express.

from badinput import (  # noqa: E402, F401  (ctx is a fixture)
    ArrayTable, E, NOT_A_NUMBER, OK, Names, SAME, ScalarTable, check_array_row,
    check_scalar_row, check_special_row, ctx, special_params)

ARRAYS = ArrayTable()
add = ARRAYS.add

def _fill(fn):
    def call(a):
        out = fn(a["A"])
        assert out is a["A"]
        return np.array(out)
    return call


INITIALIZERS = [
    # name, call on the array, outcome for a 0-d array, for a 3-D one (the wrong shape)
    ("uniform_", lambda A: init.uniform_(A, -1, 2, rng=rng()), OK, OK),
    ("normal_", lambda A: init.normal_(A, 1, 2, rng=rng()), OK, OK),
    ("trunc_normal_", lambda A: init.trunc_normal_(A, 0, 1, -1, 1, rng=rng()), OK, OK),
    ("constant_", lambda A: init.constant_(A, 0.3), OK, OK),
    ("zeros_", init.zeros_, OK, OK),
    ("ones_", init.ones_, OK, OK),
    ("eye_", init.eye_, Names(ValueError, "array"), Names(ValueError, "array", "(4, 5, 2)")),
    ("dirac_", init.dirac_, Names(ValueError, "array"), OK),
    ("xavier_uniform_", lambda A: init.xavier_uniform_(A, rng=rng()), Names(ValueError, "array"), OK),
    ("xavier_normal_", lambda A: init.xavier_normal_(A, rng=rng()), Names(ValueError, "array"), OK),
    ("kaiming_uniform_", lambda A: init.kaiming_uniform_(A, rng=rng()), Names(ValueError, "array"), OK),
    ("kaiming_normal_", lambda A: init.kaiming_normal_(A, rng=rng()), Names(ValueError, "array"), OK),
    ("orthogonal_", lambda A: init.orthogonal_(A, rng=rng()), Names(ValueError, "array"), OK),
]
for _name, _fn, _zero_d, _wrong in INITIALIZERS:
    _good = (lambda: {"A": np.zeros((4, 5, 3), np.float32)}) if _name == "dirac_" else \
        (lambda: {"A": np.zeros(E, np.float32)})
    _wrong_shape = (lambda v: np.zeros((4, 5), v.dtype)) if _name == "dirac_" else (lambda v: np.zeros((4, 5, 2), v.dtype))
    _wrong_outcome = Names(ValueError, "array", "(4, 5)") \
        if _name == "dirac_" else _wrong
    # NaN and inf in the array are overwritten: the same fill as a clean array (SAME)
    add(f"init.{_name}(array)", _fill(_fn), _good, "A", "array", mutates=("A",), zero_d=_zero_d,
        empty=(lambda: {"A": np.zeros((0, 5, 3), np.float32)}) if _name == "dirac_" else
        (lambda: {"A": np.zeros((0, 5), np.float32)}), wrong_shape=(_wrong_shape, _wrong_outcome),
        mixed=OK, over={
            "nan": SAME, "inf": SAME,
            "readonly": Names(ValueError, "array")})
add("init.calculate_fan_in_and_fan_out(array)", lambda a: init.calculate_fan_in_and_fan_out(a["A"]),
    lambda: {"A": np.zeros((4, 5, 3), np.float32)}, "A", "array", kind="any",
    ref=lambda a: (a["A"].shape[1] * a["A"].shape[2], a["A"].shape[0] * a["A"].shape[2]),
    zero_d=Names(ValueError, "array"),
    empty=lambda: {"A": np.zeros((0, 5, 3))})


@pytest.mark.parametrize("arg, bad, outcome", ARRAYS.params())
def test_array_argument(arg, bad, outcome):
    check_array_row(arg, bad, outcome)


SCALARS = ScalarTable()
scalar = SCALARS.add

_A = lambda: np.zeros((4, 5), np.float32)   # noqa: E731
for _name, _params_ in (("uniform_", ("a", "b")), ("normal_", ("mean", "std")),
                        ("trunc_normal_", ("mean", "std", "a", "b")), ("xavier_uniform_", ("gain",)),
                        ("xavier_normal_", ("gain",)), ("kaiming_uniform_", ("a",)), ("kaiming_normal_", ("a",)),
                        ("orthogonal_", ("gain",))):
    _fn = getattr(init, _name)
    for _p in _params_:
        _kind = {"std": "real>=0", "b": "real"}.get(_p, "real")
        _over = {}
        if _name == "trunc_normal_" and _p == "std":
            _kind = "real>0"
        if _name == "uniform_" and _p == "b":
            _over = {"negative": Names(ValueError, ("a", "b"), "-1.0")}   # the b that arrived
        if _name == "uniform_" and _p == "a":
            _over = {k: Names(ValueError, ("a", "b")) for k in ("big", "above-one")}
        if _name == "trunc_normal_" and _p == "a":
            _over = {"big": Names(ValueError, ("a", "b"))}
        if _name.startswith("xavier") and _p == "gain":
            _kind = "real>=0"
        scalar(f"init.{_name}({_p})", lambda v, c, fn=_fn, p=_p: fn(_A(), **{p: v}, rng=rng()), _p, _kind, over=_over)
    scalar(f"init.{_name}(rng)", lambda v, c, fn=_fn: fn(_A(), rng=v), "rng", "generator?")
for _name in ("kaiming_uniform_", "kaiming_normal_"):
    scalar(f"init.{_name}(mode)", lambda v, c, fn=getattr(init, _name): fn(_A(), mode=v), "mode", "choice")
    scalar(f"init.{_name}(nonlinearity)", lambda v, c, fn=getattr(init, _name): fn(_A(), nonlinearity=v),
           "nonlinearity", "choice")
scalar("init.constant_(val)", lambda v, c: init.constant_(_A(), v), "val", "real", over={"nan": OK, "inf": OK})
scalar("init.dirac_(groups)", lambda v, c: init.dirac_(np.zeros((4, 2, 3)), v), "groups", "int>=1",
       over={"big": Names(ValueError, "groups")})
scalar("init.calculate_gain(nonlinearity)", lambda v, c: init.calculate_gain(v), "nonlinearity", "choice")
scalar("init.calculate_gain(param)", lambda v, c: init.calculate_gain("leaky_relu", v), "param", "real?",
       over={k: Names(ValueError, "param") for k in NOT_A_NUMBER[1:]})
scalar("init.calculate_fan_in_and_fan_out(array)", lambda v, c: init.calculate_fan_in_and_fan_out(v), "array", "array",
       over={"array": Names(ValueError, "array")})


@pytest.mark.filterwarnings("ignore:mean is more than 2 std:UserWarning")   # trunc_normal_(mean=7), as torch
@pytest.mark.parametrize("s, bad, outcome", SCALARS.params())
def test_other_argument(ctx, s, bad, outcome):
    check_scalar_row(ctx, s, bad, outcome)


SPECIAL = [
    # id, lambda ctx: the call, outcome (REF rows give (call, reference) pairs)
    ("init.calculate_gain('relu ')", lambda c: init.calculate_gain("relu "),
     Names(ValueError, "nonlinearity", "'relu '")),   # the trailing space must show
    ("init.dirac_ groups that do not divide", lambda c: init.dirac_(np.zeros((3, 2, 3)), 2),
     Names(ValueError, "groups")),
    ("init.constant_ too large for float32", lambda c: init.constant_(np.zeros(2, np.float32), 1e300),
     Names(ValueError, "val")),
]


@pytest.mark.parametrize("call, outcome", special_params(SPECIAL))
def test_special_row(ctx, call, outcome):
    check_special_row(ctx, call, outcome)


@pytest.mark.parametrize(
    "call, exc, name",
    [
        (lambda: init.calculate_gain("leaky_relu", "0.2"), ValueError, "param"),   # torch: ValueError too
        (lambda: init.calculate_gain("leaky_relu", True), ValueError, "param"),
        (lambda: init.calculate_gain("leaky_relu", math.inf), ValueError, "param"),
        (lambda: init.calculate_gain("Relu"), ValueError, "nonlinearity"),
        (lambda: init.calculate_gain(["relu"]), ValueError, "nonlinearity"),
        (lambda: init.calculate_fan_in_and_fan_out([[1.0, 2.0]]), TypeError, "array"),
        (lambda: init.kaiming_normal_(np.empty((3, 4)), mode="fan"), ValueError, "mode"),
        (lambda: init.kaiming_normal_(np.empty((3, 4)), mode=None), ValueError, "mode"),
        (lambda: init.constant_(np.empty(3), "0.5"), TypeError, "val"),
        (lambda: init.constant_(np.empty(3), np.bool_(True)), TypeError, "val"),
        (lambda: init.normal_(np.empty(3), std=-1.0), ValueError, "std"),
        (lambda: init.uniform_(np.empty(3), a=math.nan), ValueError, "a"),
        (lambda: init.zeros_(np.zeros(3, np.int64)), TypeError, "array"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(call, exc, name):
    with pytest.raises(exc) as info:
        call()
    assert name in str(info.value)


def test_mode_is_case_insensitive_and_constant_takes_inf_and_nan_as_torch_does():
    a = init.kaiming_normal_(np.empty((3, 4)), mode="FAN_OUT", rng=np.random.default_rng(0))
    b = init.kaiming_normal_(np.empty((3, 4)), mode="fan_out", rng=np.random.default_rng(0))
    np.testing.assert_array_equal(a, b)
    assert np.isposinf(init.constant_(np.empty(2, np.float32), math.inf)).all()
    assert np.isnan(init.constant_(np.empty(2), math.nan)).all()
