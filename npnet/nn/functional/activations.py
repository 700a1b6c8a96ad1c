"""Plain kernels of the activations: ReLU, LeakyReLU, Sigmoid, Tanh, GELU, softmax and log-softmax."""
import numpy as np

from ... import _validate as V
from .._kernels import kernel


# ----------------------------------------------------------------------- activations

def _check_input(X):
    return dict(X=V.float_array(X, "input"))


def _check_dY_X(dY, X):
    X = V.float_array(X, "X")
    return dict(dY=V.like(dY, "dY", X, "X"), X=X)


def _check_dY_Y(dY, Y):
    Y = V.float_array(Y, "Y")
    return dict(dY=V.like(dY, "dY", Y, "Y"), Y=Y)


@kernel(_check_input)
def relu(X):
    """``max(X, 0)`` elementwise."""
    return np.maximum(X, 0, dtype=X.dtype)


@kernel(_check_dY_X)
def relu_backward(dY, X):
    """dX = dY where X > 0, else 0. The gradient at exactly 0 is 0, as in torch.

    ``np.where`` and not ``dY * (X > 0)``: the product turns an inf or nan in dY
    into nan where torch gives 0.

    ``X`` may be the forward output ``relu(X)`` instead, with the same result:
    it is > 0 exactly where X is (a NaN stays NaN). ``nn.ReLU`` passes its output.
    """
    return np.where(X > 0, dY, 0)


def _check_leaky_relu(X, negative_slope=0.01):
    return dict(X=V.float_array(X, "input"), negative_slope=V.real_number(negative_slope, "negative_slope"))


@kernel(_check_leaky_relu)
def leaky_relu(X, negative_slope=0.01):
    """``X`` where X > 0, else ``negative_slope * X``."""
    return np.where(X > 0, X, X * X.dtype.type(negative_slope))


def _check_leaky_relu_backward(dY, X, negative_slope=0.01):
    return dict(**_check_dY_X(dY, X), negative_slope=V.real_number(negative_slope, "negative_slope"))


@kernel(_check_leaky_relu_backward)
def leaky_relu_backward(dY, X, negative_slope=0.01):
    """dX = dY where X > 0, else negative_slope * dY (the slope is used at exactly 0, as in torch)."""
    return np.where(X > 0, dY, dY * dY.dtype.type(negative_slope))


@kernel(_check_input)
def sigmoid(X):
    """``1 / (1 + exp(-X))``, the very formula torch evaluates.

    For X below about -88.7 (float32) or -709.8 (float64) exp(-X) overflows to
    inf and the result is 1 / inf = 0, as torch's: the true value there is below
    the smallest normal float, so the absolute error is too. That overflow is
    expected and silenced, not an error.
    """
    with np.errstate(over="ignore"):
        return np.asarray(1 / (1 + np.exp(-X)))   # asarray: a 0-d X gives a 0-d array, not a scalar


@kernel(_check_dY_Y)
def sigmoid_backward(dY, Y):
    """dX = dY * Y * (1 - Y), from the forward *output* Y."""
    return dY * Y * (1 - Y)


@kernel(_check_input)
def tanh(X):
    """Hyperbolic tangent."""
    return np.tanh(X)


@kernel(_check_dY_Y)
def tanh_backward(dY, Y):
    """dX = dY * (1 - Y^2), from the forward *output* Y."""
    return dY * (1 - Y * Y)


# ------------------------------------------------------------ softmax and log-softmax

def _check_softmax(X, axis=-1):
    X = V.float_array(X, "input")
    return dict(X=X, axis=_axis(axis, X.ndim))


def _check_softmax_backward(dY, Y, axis=-1):
    return dict(**_check_dY_Y(dY, Y), axis=_axis(axis, np.ndim(Y)))


def _axis(axis, ndim):
    axis = V.integer(axis, "axis")
    n = max(ndim, 1)   # a 0-d input takes axis 0 or -1, as in torch
    if not -n <= axis < n:
        raise ValueError(f"axis must be in [{-n}, {n - 1}] for a {ndim}-d input, got {axis}")
    return axis


@kernel(_check_softmax)
def softmax(X, axis=-1):
    """Softmax along ``axis``: ``exp(X - max) / sum(exp(X - max))``.

    Subtracting the maximum first leaves the result unchanged (softmax is
    shift-invariant) and keeps every exponent <= 0, so nothing overflows.
    A row holding +inf (or only -inf) is all nan, as in torch: its max minus
    itself is inf - inf. A 0-d input is one row of one class: 1 (nan for inf
    or nan), with axis 0 or -1, as in torch. An empty axis gives an empty result.
    """
    with np.errstate(invalid="ignore"):   # inf - inf = nan where a row's max is infinite, as torch
        E = np.exp(X - X.max(axis, keepdims=True, initial=-np.inf))   # initial: an empty axis has no max
    return np.asarray(E / E.sum(axis, keepdims=True))                  # asarray: 0-d in, 0-d array out


@kernel(_check_softmax_backward)
def softmax_backward(dY, Y, axis=-1):
    """dX = Y * (dY - sum(dY * Y, axis)): the Jacobian-vector product, never the Jacobian."""
    return np.asarray(Y * (dY - (dY * Y).sum(axis, keepdims=True)))


@kernel(_check_softmax)
def log_softmax(X, axis=-1):
    """``X - max - log(sum(exp(X - max)))`` along ``axis`` (the log-sum-exp trick).

    Non-finite rows, a 0-d input (0, nan for inf or nan) and an empty axis as :func:`softmax`.
    """
    with np.errstate(invalid="ignore", divide="ignore"):   # inf - inf as softmax; log(0) of an empty row's sum
        Z = X - X.max(axis, keepdims=True, initial=-np.inf)
        return np.asarray(Z - np.log(np.exp(Z).sum(axis, keepdims=True)))


@kernel(_check_softmax_backward)
def log_softmax_backward(dY, Y, axis=-1):
    """dX = dY - exp(Y) * sum(dY, axis), from the forward *output* Y (the log-probabilities)."""
    return np.asarray(dY - np.exp(Y) * dY.sum(axis, keepdims=True))


# --------------------------------------------------------------------------- GELU

def _check_gelu(X, approximate="none"):
    return dict(X=V.float_array(X, "input"), approximate=V.choice(approximate, "approximate", ("none", "tanh")))


def _check_gelu_backward(dY, X, approximate="none"):
    return dict(**_check_dY_X(dY, X), approximate=V.choice(approximate, "approximate", ("none", "tanh")))


_SQRT_2_OVER_PI = np.sqrt(2 / np.pi)   # tanh form: sqrt(2/pi) (x + 0.044715 x^3), as torch
_KAPPA = 0.044715


@kernel(_check_gelu)
def gelu(X, approximate="none"):
    """``X * Phi(X)``, Phi the standard normal CDF, as ``torch.nn.functional.gelu``.

    approximate="none":  Y = X / 2 * (1 + erf(X / sqrt(2))), erf to float64 rounding (:func:`_erf`);
    approximate="tanh":  Y = X / 2 * (1 + tanh(sqrt(2/pi) * (X + 0.044715 X^3))).

    The exact form runs in float64 and is rounded once to X's dtype; the tanh form
    runs in X's dtype, as torch's does. gelu(-inf) is nan (-inf * 0), as torch's.
    """
    with np.errstate(over="ignore", invalid="ignore"):   # x^3 overflows to inf; -inf * 0 is nan, as torch
        if approximate == "tanh":
            inner = X.dtype.type(_SQRT_2_OVER_PI) * (X + X.dtype.type(_KAPPA) * X * X * X)
            return np.asarray(0.5 * X * (1 + np.tanh(inner)), X.dtype)
        x = X.astype(np.float64)
        return np.asarray(x / 2 * (1 + _erf(x / np.sqrt(2))), X.dtype)


@kernel(_check_gelu_backward)
def gelu_backward(dY, X, approximate="none"):
    """dX = dY * (Phi(X) + X phi(X)), phi(x) = exp(-x^2 / 2) / sqrt(2 pi) the normal density;
    for "tanh", torch's derivative of its tanh form:
    dY * (0.5 (1 + t) + 0.5 X (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 X^2)), t = tanh(inner)."""
    with np.errstate(over="ignore", invalid="ignore"):   # as in gelu: at +-inf the gradient is nan, as torch's
        if approximate == "tanh":
            k, kappa = X.dtype.type(_SQRT_2_OVER_PI), X.dtype.type(_KAPPA)
            t = np.tanh(k * (X + kappa * X * X * X))
            return np.asarray(dY * (0.5 * (1 + t) + 0.5 * X * (1 - t * t) * k * (1 + 3 * kappa * X * X)), X.dtype)
        x = X.astype(np.float64)
        cdf = (1 + _erf(x / np.sqrt(2))) / 2
        pdf = np.exp(-x * x / 2) / np.sqrt(2 * np.pi)
        return np.asarray(dY * (cdf + x * pdf), X.dtype)


# erf(x) = 2/sqrt(pi) * integral of exp(-t^2) from 0 to x, by W. J. Cody's rational Chebyshev
# approximations ("Rational Chebyshev approximations for the error function", Math. Comp. 23,
# 1969, 631-637; the coefficients of his CALERF, netlib specfun), one for each range of |x|:
#   |x| <= 0.46875:     erf(x)  = x P(x^2) / Q(x^2)                  (_ERF_A / _ERF_B)
#   0.46875 < |x| <= 4: erfc(x) = exp(-x^2) P(|x|) / Q(|x|)          (_ERF_C / _ERF_D)
#   |x| > 4:            erfc(x) = exp(-x^2) / |x| (1/sqrt(pi) + z P(z) / Q(z)), z = 1/x^2   (_ERF_P / _ERF_Q)
# and erf = 1 - erfc, odd in x.
_ERF_A = (3.1611237438705656, 113.864154151050156, 377.485237685302021, 3209.37758913846947,
          0.185777706184603153)
_ERF_B = (23.6012909523441209, 244.024637934444173, 1282.61652607737228, 2844.23683343917062)
_ERF_C = (0.564188496988670089, 8.88314979438837594, 66.1191906371416295, 298.635138197400131,
          881.95222124176909, 1712.04761263407058, 2051.07837782607147, 1230.33935479799725,
          2.15311535474403846e-8)
_ERF_D = (15.7449261107098347, 117.693950891312499, 537.181101862009858, 1621.38957456669019,
          3290.79923573345963, 4362.61909014324716, 3439.36767414372164, 1230.33935480374942)
_ERF_P = (0.305326634961232344, 0.360344899949804439, 0.125781726111229246, 0.0160837851487422766,
          6.58749161529837803e-4, 0.0163153871373020978)
_ERF_Q = (2.56852019228982242, 1.87295284992346047, 0.527905102951428412, 0.0605183413124413191,
          0.00233520497626869185)


def _erf(x):
    """erf of a float64 array, elementwise, within a couple of ulps (see tests/test_gelu.py);
    erf(+-inf) = +-1, erf(nan) = nan, erf(-0.0) = -0.0."""
    y = np.abs(x)
    out = np.ones_like(y)                        # |x| >= 27: erfc(27) < 1e-318, so erf is 1 to the last bit
    out[np.isnan(y)] = np.nan
    small, mid = y <= 0.46875, (y > 0.46875) & (y <= 4)
    big = (y > 4) & (y < 27)
    z = y[small]
    zz = z * z
    num, den = _ERF_A[4] * zz, zz
    for a, b in zip(_ERF_A[:3], _ERF_B[:3]):
        num, den = (num + a) * zz, (den + b) * zz
    out[small] = z * (num + _ERF_A[3]) / (den + _ERF_B[3])
    z = y[mid]
    num, den = _ERF_C[8] * z, z
    for c, d in zip(_ERF_C[:7], _ERF_D[:7]):
        num, den = (num + c) * z, (den + d) * z
    out[mid] = (0.5 - (num + _ERF_C[7]) / (den + _ERF_D[7]) * _exp_minus_square(z)) + 0.5
    z = y[big]
    r = 1 / (z * z)
    num, den = _ERF_P[5] * r, r
    for p, q in zip(_ERF_P[:4], _ERF_Q[:4]):
        num, den = (num + p) * r, (den + q) * r
    erfc = (1 / np.sqrt(np.pi) - r * (num + _ERF_P[4]) / (den + _ERF_Q[4])) / z * _exp_minus_square(z)
    out[big] = (0.5 - erfc) + 0.5
    return np.copysign(out, x)


def _exp_minus_square(z):
    """exp(-z^2) without the error of rounding z^2: z = h + l with h a multiple of 1/16, so
    h^2 is exact, and exp(-z^2) = exp(-h^2) exp(-(z - h)(z + h)) (Cody's split)."""
    h = np.trunc(z * 16) / 16
    return np.exp(-h * h) * np.exp(-(z - h) * (z + h))
