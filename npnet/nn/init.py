"""Parameter initializers, after ``torch.nn.init``, for NumPy arrays.

Every function fills its first argument ``array`` (a writable float32 or float64
``numpy.ndarray``, contiguous or not) in place and returns it, so
``W = init.xavier_uniform_(np.empty((out, in)), rng=rng)`` reads as in torch.
The names, keyword arguments, gains, fans and bounds are torch's; torch's
``generator=`` becomes ``rng=``, a ``numpy.random.Generator``.

Randomness: every random initializer takes ``rng=``; ``None`` means a fresh
``np.random.default_rng()``. Nothing here seeds or reads NumPy's global random
state. Samples are drawn in float64 and rounded once to the array's dtype, so one
seed gives the same numbers in float32 and float64 (up to that rounding) and the
array's dtype is never changed.

Fans (:func:`calculate_fan_in_and_fan_out`) assume torch's layout: a weight of
shape ``(out_features, in_features, *kernel)``, so
``fan_in = in_features * prod(kernel)`` and ``fan_out = out_features * prod(kernel)``.
"""
import math
import warnings

import numpy as np

from .. import _validate

__all__ = [
    "calculate_gain",
    "calculate_fan_in_and_fan_out",
    "uniform_",
    "normal_",
    "trunc_normal_",
    "constant_",
    "zeros_",
    "ones_",
    "eye_",
    "dirac_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "orthogonal_",
]

_LINEAR_NONLINEARITIES = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
)
NONLINEARITIES = _LINEAR_NONLINEARITIES + ("sigmoid", "tanh", "relu", "leaky_relu", "selu")
FAN_MODES = ("fan_in", "fan_out")


# --------------------------------------------------------------------------- helpers


def _writable_float_array(array):
    """The array to fill: a float32/float64 ndarray that may be written to."""
    return _validate.writable_float_array(
        array, "array", "initializers fill in place, so pass a writable array, e.g. array.copy()")


def _fill(array, values):
    """Write float64 ``values`` into ``array`` (any strides), rounding once to its dtype."""
    array[...] = np.reshape(values, array.shape)
    return array


def _negative_slope(param):
    try:
        return _validate.real_number(param, "param (negative_slope of leaky_relu)")
    except TypeError as e:   # torch's calculate_gain raises ValueError for a param that is not a number
        raise ValueError(str(e)) from None


def _normal_cdf(x):
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


# --------------------------------------------------------------------------- gains and fans


def calculate_gain(nonlinearity, param=None):
    r"""Return the recommended gain for a nonlinearity, as ``torch.nn.init.calculate_gain``.

    ================================  ==========================================
    nonlinearity                      gain
    ================================  ==========================================
    linear, conv{1,2,3}d,             1
    conv_transpose{1,2,3}d, sigmoid
    tanh                              5 / 3
    relu                              sqrt(2)
    leaky_relu                        sqrt(2 / (1 + negative_slope^2))
    selu                              3 / 4
    ================================  ==========================================

    Args:
        nonlinearity: the function's ``nn.functional`` name, one of the above.
        param: ``negative_slope`` for ``"leaky_relu"`` (default 0.01), a finite
            real number (torch accepts only int and float; NumPy scalars are
            accepted here too); ignored by the other nonlinearities, as in torch.

    Returns a float (torch returns the int 1 for the linear ones; equal values).

    Example:
        >>> calculate_gain("leaky_relu", 0.2)   # sqrt(2 / 1.04)
        1.3867504905630728
    """
    _validate.choice(nonlinearity, "nonlinearity", NONLINEARITIES)
    if nonlinearity in _LINEAR_NONLINEARITIES or nonlinearity == "sigmoid":
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        negative_slope = 0.01 if param is None else _negative_slope(param)
        return math.sqrt(2.0 / (1 + negative_slope**2))
    return 3.0 / 4  # selu


def calculate_fan_in_and_fan_out(array):
    """Return ``(fan_in, fan_out)`` of a weight laid out as torch lays it out.

    For shape ``(out, in, *kernel)``: ``receptive_field = prod(kernel)`` (1 for a
    2-D array), ``fan_in = in * receptive_field``, ``fan_out = out * receptive_field``.

    Args:
        array: an ndarray with at least 2 dimensions (only its shape is read).

    Example:
        >>> calculate_fan_in_and_fan_out(np.empty((16, 3, 5, 5)))
        (75, 400)
    """
    _validate.ndarray(array, "array")
    if array.ndim < 2:
        raise ValueError(
            f"fan in and fan out can not be computed for array with fewer than 2 dimensions; "
            f"array has shape {array.shape}"
        )
    receptive_field_size = math.prod(array.shape[2:])
    return array.shape[1] * receptive_field_size, array.shape[0] * receptive_field_size


def _calculate_correct_fan(array, mode):
    mode = _validate.choice(mode.lower() if isinstance(mode, str) else mode, "mode", FAN_MODES)   # as torch: any case
    fan_in, fan_out = calculate_fan_in_and_fan_out(array)
    return fan_in if mode == "fan_in" else fan_out


# --------------------------------------------------------------------------- plain distributions


def uniform_(array, a=0.0, b=1.0, *, rng=None):
    r"""Fill ``array`` with values drawn from the uniform distribution U(a, b).

    Samples are ``a + (b - a) * u`` with ``u`` uniform on [0, 1), clipped to
    [a, b] against rounding, so every value lies in the closed interval [a, b].

    Args:
        array: a writable float32/float64 ndarray of any shape.
        a: the lower bound.
        b: the upper bound, ``b >= a`` (``b == a`` fills with ``a``).
        rng: a ``numpy.random.Generator`` (default: a fresh one).

    Example:
        >>> w = uniform_(np.empty((3, 5)), -0.1, 0.1, rng=np.random.default_rng(0))
    """
    _writable_float_array(array)
    a, b = _validate.real_number(a, "a"), _validate.real_number(b, "b")
    if a > b:
        raise ValueError(f"uniform_ expects a <= b (the interval [a, b]), got a={a} > b={b}")
    rng = _validate.generator(rng)
    return _fill(array, np.clip(rng.uniform(a, b, size=array.shape), a, b))


def normal_(array, mean=0.0, std=1.0, *, rng=None):
    r"""Fill ``array`` with values drawn from the normal distribution N(mean, std^2).

    Args:
        array: a writable float32/float64 ndarray of any shape.
        mean: the mean.
        std: the standard deviation, ``std >= 0``.
        rng: a ``numpy.random.Generator`` (default: a fresh one).

    Example:
        >>> w = normal_(np.empty((3, 5)), std=0.02, rng=np.random.default_rng(0))
    """
    _writable_float_array(array)
    mean, std = _validate.real_number(mean, "mean"), _validate.real_number(std, "std", low=0.0)
    rng = _validate.generator(rng)
    return _fill(array, rng.normal(mean, std, size=array.shape))


def trunc_normal_(array, mean=0.0, std=1.0, a=-2.0, b=2.0, *, rng=None):
    r"""Fill ``array`` with values from N(mean, std^2) truncated to [a, b].

    The density is ``phi((x - mean) / std) / (std * p)`` on [a, b] and 0 outside,
    with ``p = Phi((b - mean) / std) - Phi((a - mean) / std)``. Sampled by
    rejection as torch 2.x does: when ``p > 0.3`` draw normals and redraw those
    outside [a, b]; otherwise draw uniform proposals on [a, b] and accept with
    probability ``exp(-((x - mean)^2 - (mode - mean)^2) / (2 std^2))``, where
    ``mode`` is ``mean`` clamped to [a, b]. Works best when ``a <= mean <= b``;
    like torch, warns when ``mean`` is more than 2 std outside [a, b].

    Args:
        array: a writable float32/float64 ndarray of any shape.
        mean: the mean of the untruncated normal.
        std: its standard deviation, ``std > 0``.
        a: the minimum cutoff value.
        b: the maximum cutoff value, ``b >= a``.
        rng: a ``numpy.random.Generator`` (default: a fresh one).

    Example:
        >>> w = trunc_normal_(np.empty((3, 5)), std=0.02, a=-0.04, b=0.04, rng=np.random.default_rng(0))
    """
    _writable_float_array(array)
    mean = _validate.real_number(mean, "mean")
    std = _validate.real_number(std, "std", low=0.0, low_open=True)
    a, b = _validate.real_number(a, "a"), _validate.real_number(b, "b")
    if a > b:
        raise ValueError(f"trunc_normal_ expects a <= b (the interval [a, b]), got a={a} > b={b}")
    rng = _validate.generator(rng)
    if mean < a - 2 * std or mean > b + 2 * std:
        warnings.warn(
            "mean is more than 2 std from [a, b] in nn.init.trunc_normal_; "
            "the distribution of values may be incorrect.",
            stacklevel=2,
        )
    n = array.size
    out = np.empty(n)
    pending = np.arange(n)
    p = _normal_cdf((b - mean) / std) - _normal_cdf((a - mean) / std)
    if p > 0.3:
        while pending.size:
            x = rng.normal(mean, std, size=pending.size)
            accept = (x >= a) & (x <= b)
            out[pending[accept]] = x[accept]
            pending = pending[~accept]
    else:
        mode = max(a, min(mean, b))
        log_peak = -0.5 * ((mode - mean) / std) ** 2
        while pending.size:
            x = np.clip(rng.uniform(a, b, size=pending.size), a, b)
            log_u = np.log1p(-rng.random(pending.size))  # log of a uniform on (0, 1], never log(0)
            accept = log_u <= -0.5 * ((x - mean) / std) ** 2 - log_peak
            out[pending[accept]] = x[accept]
            pending = pending[~accept]
    return _fill(array, out)


def constant_(array, val):
    """Fill ``array`` with the value ``val``.

    Args:
        array: a writable float32/float64 ndarray of any shape.
        val: a real number (inf and nan allowed; a finite value too large
            for the dtype is refused).

    Example:
        >>> w = constant_(np.empty((3, 5)), 0.3)
    """
    _writable_float_array(array)
    val = _validate.real(val, "val")   # inf and nan allowed, as torch allows them
    largest = float(np.finfo(array.dtype).max)
    if math.isfinite(val) and abs(val) > largest:
        raise ValueError(f"val={val} does not fit in array's dtype {array.dtype} (largest {largest:g})")
    array[...] = val
    return array


def zeros_(array):
    """Fill ``array`` with 0.

    Example:
        >>> b = zeros_(np.empty(5))
    """
    _writable_float_array(array)
    array[...] = 0.0
    return array


def ones_(array):
    """Fill ``array`` with 1.

    Example:
        >>> g = ones_(np.empty(5))
    """
    _writable_float_array(array)
    array[...] = 1.0
    return array


def eye_(array):
    """Fill the 2-D ``array`` with the identity matrix: 1 where ``i == j``, else 0.

    Preserves the identity of the inputs in ``Linear`` layers, where as many
    inputs are preserved as possible.

    Args:
        array: a writable 2-D float32/float64 ndarray, any (rows, cols).

    Example:
        >>> w = eye_(np.empty((3, 5)))
    """
    _writable_float_array(array)
    if array.ndim != 2:
        raise ValueError(f"eye_ supports only 2-D arrays; array has shape {array.shape}")
    array[...] = np.eye(*array.shape)
    return array


def dirac_(array, groups=1):
    """Fill a {3, 4, 5}-D convolution weight with the Dirac delta.

    ``W[g * out_per_group + d, d, centre...] = 1`` for every group ``g`` and
    ``d < min(out_per_group, in_channels)``, 0 elsewhere, so the convolution
    preserves as many input channels as possible.

    Args:
        array: a writable float ndarray of shape (out, in, *kernel), kernel of 1 to 3 dims.
        groups: number of groups of the convolution; must divide ``out``.

    Example:
        >>> w = dirac_(np.empty((3, 16, 5, 5)))
    """
    _writable_float_array(array)
    if array.ndim not in (3, 4, 5):
        raise ValueError(f"dirac_ supports only 3-, 4- or 5-D arrays; array has shape {array.shape}")
    groups = _validate.integer(groups, "groups", low=1)
    if array.shape[0] % groups != 0:
        raise ValueError(f"groups={groups} must divide dim 0 of array, which is {array.shape[0]}")
    out_per_group = array.shape[0] // groups
    centre = tuple(s // 2 for s in array.shape[2:])
    array[...] = 0.0
    for g in range(groups):
        for d in range(min(out_per_group, array.shape[1])):
            array[(g * out_per_group + d, d) + centre] = 1.0
    return array


# --------------------------------------------------------------------------- scaled by fan


def xavier_uniform_(array, gain=1.0, *, rng=None):
    r"""Fill ``array`` with Xavier (Glorot) uniform values: U(-bound, bound).

    ``bound = gain * sqrt(6 / (fan_in + fan_out))``, i.e. ``sqrt(3) * std`` with
    ``std = gain * sqrt(2 / (fan_in + fan_out))``. From Glorot & Bengio (2010),
    *Understanding the difficulty of training deep feedforward neural networks*.

    Args:
        array: a writable float ndarray with at least 2 dims, laid out (out, in, *kernel).
        gain: a scaling factor >= 0, e.g. ``calculate_gain("tanh")``.
        rng: a ``numpy.random.Generator`` (default: a fresh one).

    Example:
        >>> w = xavier_uniform_(np.empty((3, 5)), gain=calculate_gain("relu"), rng=np.random.default_rng(0))
    """
    _writable_float_array(array)
    gain = _validate.real_number(gain, "gain", low=0.0)   # a negative gain is a negative std (torch refuses it too)
    fan_in, fan_out = calculate_fan_in_and_fan_out(array)
    rng = _validate.generator(rng)
    if array.size == 0:
        return array
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    bound = math.sqrt(3.0) * std
    return _fill(array, np.clip(rng.uniform(-bound, bound, size=array.shape), -bound, bound))


def xavier_normal_(array, gain=1.0, *, rng=None):
    r"""Fill ``array`` with Xavier (Glorot) normal values: N(0, std^2).

    ``std = gain * sqrt(2 / (fan_in + fan_out))``. From Glorot & Bengio (2010).

    Args:
        array: a writable float ndarray with at least 2 dims, laid out (out, in, *kernel).
        gain: a scaling factor >= 0.
        rng: a ``numpy.random.Generator`` (default: a fresh one).

    Example:
        >>> w = xavier_normal_(np.empty((3, 5)), rng=np.random.default_rng(0))
    """
    _writable_float_array(array)
    gain = _validate.real_number(gain, "gain", low=0.0)   # a negative gain is a negative std (torch refuses it too)
    fan_in, fan_out = calculate_fan_in_and_fan_out(array)
    rng = _validate.generator(rng)
    if array.size == 0:
        return array
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return _fill(array, rng.normal(0.0, std, size=array.shape))


def _kaiming_std(array, a, mode, nonlinearity):
    a = _validate.real_number(a, "a")
    fan = _calculate_correct_fan(array, mode)
    gain = calculate_gain(nonlinearity, a)
    return gain / math.sqrt(fan) if fan > 0 else 0.0


def kaiming_uniform_(array, a=0, mode="fan_in", nonlinearity="leaky_relu", *, rng=None):
    r"""Fill ``array`` with Kaiming (He) uniform values: U(-bound, bound).

    ``bound = gain * sqrt(3 / fan_mode)`` with ``gain = calculate_gain(nonlinearity, a)``.
    From He et al. (2015), *Delving deep into rectifiers*. ``nn.Linear``'s default
    weight init is ``kaiming_uniform_(W, a=math.sqrt(5))``, i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    Args:
        array: a writable float ndarray with at least 2 dims, laid out (out, in, *kernel).
        a: the negative slope of the rectifier after this layer (used only
            with ``"leaky_relu"``).
        mode: ``"fan_in"`` (default) preserves the variance of the forward pass,
            ``"fan_out"`` that of the backward pass.
        nonlinearity: the ``nn.functional`` name; ``"relu"`` or ``"leaky_relu"`` (default) recommended.
        rng: a ``numpy.random.Generator`` (default: a fresh one).

    Example:
        >>> w = kaiming_uniform_(np.empty((3, 5)), mode="fan_in", nonlinearity="relu", rng=np.random.default_rng(0))
    """
    _writable_float_array(array)
    std = _kaiming_std(array, a, mode, nonlinearity)
    rng = _validate.generator(rng)
    if array.size == 0:
        return array
    bound = math.sqrt(3.0) * std
    return _fill(array, np.clip(rng.uniform(-bound, bound, size=array.shape), -bound, bound))


def kaiming_normal_(array, a=0, mode="fan_in", nonlinearity="leaky_relu", *, rng=None):
    r"""Fill ``array`` with Kaiming (He) normal values: N(0, std^2).

    ``std = gain / sqrt(fan_mode)`` with ``gain = calculate_gain(nonlinearity, a)``.
    From He et al. (2015).

    Args:
        array: a writable float ndarray with at least 2 dims, laid out (out, in, *kernel).
        a: the negative slope of the rectifier after this layer (used only
            with ``"leaky_relu"``).
        mode: ``"fan_in"`` (default) or ``"fan_out"``.
        nonlinearity: the ``nn.functional`` name; ``"relu"`` or ``"leaky_relu"`` (default) recommended.
        rng: a ``numpy.random.Generator`` (default: a fresh one).

    Example:
        >>> w = kaiming_normal_(np.empty((3, 5)), mode="fan_out", nonlinearity="relu", rng=np.random.default_rng(0))
    """
    _writable_float_array(array)
    std = _kaiming_std(array, a, mode, nonlinearity)
    rng = _validate.generator(rng)
    if array.size == 0:
        return array
    return _fill(array, rng.normal(0.0, std, size=array.shape))


def orthogonal_(array, gain=1.0, *, rng=None):
    r"""Fill ``array`` with a (semi-)orthogonal matrix times ``gain``.

    Flattened to ``(rows, cols) = (shape[0], size // shape[0])``, the result ``W``
    satisfies ``W W^T = gain^2 I`` when rows <= cols and ``W^T W = gain^2 I``
    otherwise. Made as torch does: QR of a standard normal matrix (transposed
    when wide), with Q's columns multiplied by the signs of diag(R) so Q is
    Haar-distributed (Mezzadri 2007). QR runs in float64 and the result is
    rounded once to the array's dtype. From Saxe et al. (2013).

    Args:
        array: a writable float ndarray with at least 2 dims; dims after the first are flattened.
        gain: an optional scaling factor.
        rng: a ``numpy.random.Generator`` (default: a fresh one).

    Example:
        >>> w = orthogonal_(np.empty((3, 5)), rng=np.random.default_rng(0))
        >>> np.allclose(w @ w.T, np.eye(3))
        True
    """
    _writable_float_array(array)
    if array.ndim < 2:
        raise ValueError(f"orthogonal_ supports only arrays with 2 or more dimensions; array has shape {array.shape}")
    gain = _validate.real_number(gain, "gain")
    rng = _validate.generator(rng)
    if array.size == 0:
        return array
    rows = array.shape[0]
    cols = array.size // rows
    flat = rng.normal(0.0, 1.0, size=(rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    # Sign of diag(R), with +1 for an (almost surely absent) exact zero so no column is lost.
    q *= np.where(np.diag(r) < 0, -1.0, 1.0)
    if rows < cols:
        q = q.T
    return _fill(array, gain * q)
