"""Plain kernels of the activations: ReLU, LeakyReLU, Sigmoid, Tanh, softmax and log-softmax."""
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
