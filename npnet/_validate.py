"""Argument checks shared by every public entry point.

Each helper raises ``TypeError`` or ``ValueError`` with a message that names the
argument, says what was expected and what arrived.
"""
import numbers
import os

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def describe(value):
    """A short description of ``value`` for error messages."""
    if isinstance(value, np.ndarray):
        return f"ndarray of shape {value.shape} and dtype {value.dtype}"
    if isinstance(value, (list, tuple, dict)):
        return type(value).__name__
    text = " ".join(repr(value).split())   # one line, even for a multi-line repr (a Sequential)
    return f"{type(value).__name__} {text if len(text) <= 80 else text[:77] + '...'}"


def float_array(x, name, *, min_ndim=0):
    """Return ``x`` unchanged if it is a float32/float64 ndarray, else raise.

    Lists, ints, bools, complex and object arrays are refused: npnet never
    guesses a dtype for its user. A NumPy float32/float64 scalar (what NumPy
    returns for a 0-d array) comes back as a 0-d array.
    """
    if isinstance(x, np.floating):
        x = np.asarray(x)   # what a ufunc returns for a 0-d array: take it back as the 0-d array it was
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of float32 or float64, got {describe(x)}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} must have dtype float32 or float64, got {x.dtype}; "
            f"convert it first, e.g. {name}.astype(np.float32)"
        )
    if x.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimension(s), got shape {x.shape}")
    return x


def like(x, name, ref, ref_name):
    """Return ``x`` (as :func:`float_array`) if it has ``ref``'s shape and dtype, else raise.

    For the upstream gradient of a backward kernel: ``like(dY, "dY", X, "X")``.
    """
    x = float_array(x, name)
    if x.shape != ref.shape:
        raise ValueError(f"{name} must have the shape of {ref_name} {ref.shape}, got {x.shape}")
    if x.dtype != ref.dtype:
        raise TypeError(f"{name} must have dtype {ref.dtype} to match {ref_name}, got {x.dtype}")
    return x


def flag(value, name):
    """Check a bool (Python or NumPy); 0, 1, None and strings are refused."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {describe(value)}")
    return bool(value)


def path(value, name, *, optional=False):
    """Check a file-system path: a non-empty str or os.PathLike (bytes refused); None if ``optional``."""
    if value is None and optional:
        return None
    if isinstance(value, (str, os.PathLike)):
        p = os.fspath(value)
        if isinstance(p, str) and p:
            return p
    raise TypeError(f"{name} must be a non-empty str or os.PathLike{' or None' if optional else ''}, "
                    f"got {describe(value)}")


def dims(value, name):
    """Check a shape: an int >= 0 or a tuple/list of them; returned as a tuple."""
    dims = (value,) if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)) else value
    if not isinstance(dims, (tuple, list)) or any(
            isinstance(d, (bool, np.bool_)) or not isinstance(d, numbers.Integral) for d in dims):
        raise TypeError(f"{name} must be a tuple of non-negative ints, got {value!r}")
    if any(d < 0 for d in dims):
        raise ValueError(f"{name} must be a tuple of non-negative ints, got {tuple(int(d) for d in dims)}")
    return tuple(int(d) for d in dims)


def same_dtype(x, name, dtype):
    if x.dtype != dtype:
        raise TypeError(f"{name} must have dtype {np.dtype(dtype)} to match the input, got {x.dtype}")


def same_shape(x, name, shape):
    if x.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {x.shape}")


def real_number(value, name, *, low=None, high=None, low_open=False, high_open=False):
    """Check a finite real scalar (not bool) inside an optional interval."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {describe(value)}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        interval = f"{lo}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi}"
        raise ValueError(f"{name} must be in {interval}, got {value}")
    return value


def integer(value, name, *, low=None, high=None):
    """Check an integer (not bool) inside an optional closed interval."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {describe(value)}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(
            f"{name} must be an integer in [{'-inf' if low is None else low}, {'inf' if high is None else high}], got {value}"
        )
    return value


def choice(value, name, allowed):
    # ``value in allowed`` alone would compare an ndarray elementwise and raise its own error
    if not isinstance(value, (str, int, float, type(None))) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(repr(a) for a in allowed)}; got {value!r}")
    return value


def generator(rng, name="rng"):
    """Return a numpy Generator: ``rng`` itself, or a fresh one when None."""
    if rng is None:
        return np.random.default_rng()
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{name} must be a numpy.random.Generator or None, got {describe(rng)}; use np.random.default_rng(seed)")
    return rng


def float_dtype(dtype, name="dtype"):
    if dtype is None:   # np.dtype(None) would quietly mean float64
        raise TypeError(f"{name} must be np.float32 or np.float64, got None")
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be np.float32 or np.float64, got {dtype!r}") from None
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be np.float32 or np.float64, got {dt}")
    return dt


def ndarray(x, name, *, sample_axis=False):
    """Return ``x`` if it is a numpy.ndarray of any dtype, else raise; with
    ``sample_axis`` it must also have a first axis to index samples by."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {describe(x)}")
    if sample_axis and x.ndim < 1:
        raise ValueError(f"{name} must have a sample axis, got shape {x.shape}")
    return x
