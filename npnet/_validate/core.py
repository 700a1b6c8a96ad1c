"""The argument checks on values and arrays (numbers, dtypes, shapes, containers).

Each helper raises ``TypeError`` or ``ValueError`` with a message that names the
argument, says what was expected and what arrived.
"""
import collections
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
    """Return ``x`` if it is an array shaped and typed like ``ref``, else raise.

    The one check of an array that must match another, used for every upstream
    gradient and every parameter gradient: ``like(dY, "dY", X, "X")`` in a backward
    kernel, ``like(dY, "dy", Y, "Linear's output")`` in a module's backward,
    ``like(g, "grads['weight']", W, "params['weight']")`` in an optimizer step and
    ``dloss`` in :func:`upstream`. ``ref`` is anything with ``shape`` and ``dtype``
    (an array, or a :class:`Like` when the array itself is gone). A NumPy float
    scalar (what NumPy returns for a 0-d array) counts as that 0-d array. Checked
    in this order: an ndarray (TypeError), the shape (ValueError), the dtype
    (TypeError).
    """
    if isinstance(x, np.floating):
        x = np.asarray(x)
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of shape {ref.shape} and dtype {ref.dtype} like {ref_name}, "
                        f"got {describe(x)}")
    if x.shape != ref.shape:
        raise ValueError(f"{name} must have shape {ref.shape} like {ref_name}, got {x.shape}")
    if x.dtype != ref.dtype:
        raise TypeError(f"{name} must have dtype {ref.dtype} like {ref_name}, got {x.dtype}")
    return x


class Like(collections.namedtuple("Like", "shape dtype")):
    """The shape and dtype an array must have, for :func:`like` when no array holds them
    (an output a backward no longer keeps, the loss a ``dloss`` belongs to)."""

    __slots__ = ()

    def __new__(cls, shape, dtype):
        return super().__new__(cls, tuple(shape), np.dtype(dtype))


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


def scalar(value, name):
    """A Python scalar from a Python/NumPy scalar or a 0-d array (what ``np.load`` gives back
    for a saved scalar); an array of any other shape raises."""
    if isinstance(value, np.ndarray):
        if value.ndim != 0:
            raise ValueError(f"{name} must be a scalar (0-d array), got shape {value.shape}")
        return value.item()
    if isinstance(value, np.generic):
        return value.item()
    return value


def param_dict(params, name="params"):
    """Check the name -> array dict an optimizer updates in place; returned as a new dict.

    Keys must be str, values writable float32/float64 ndarrays, no array twice.
    """
    from collections.abc import Mapping

    if not isinstance(params, Mapping):
        hint = "; pass model.params" if hasattr(params, "params") else ""
        raise TypeError(f"{name} must be a dict of name -> numpy.ndarray (a module's params), got {describe(params)}{hint}")
    if len(params) == 0:
        raise ValueError(f"optimizer got an empty parameter list ({name} is an empty dict)")
    seen = {}
    for key, p in params.items():
        if not isinstance(key, str):
            raise TypeError(f"{name} keys must be str (parameter names), got {describe(key)}")
        float_array(p, f"{name}[{key!r}]")
        if not p.flags.writeable:
            raise ValueError(f"{name}[{key!r}] is read-only; the optimizer updates parameters in place")
        if id(p) in seen:
            raise ValueError(f"{name}[{key!r}] is the same array as {name}[{seen[id(p)]!r}]; it would be updated twice")
        seen[id(p)] = key
    return dict(params)


def grad_dict(grads, params):
    """Check the gradients a backward returned against the ``params`` they are for.

    ``grads`` must have exactly the keys of ``params``; each value an ndarray of
    its parameter's shape and dtype (see :func:`like`), or None (no gradient this step). Returns
    ``[(name, param, grad), ...]`` for the parameters that have a gradient.
    """
    from collections.abc import Mapping

    if not isinstance(grads, Mapping):
        raise TypeError(f"grads must be a dict of name -> numpy.ndarray (what backward returns), got {describe(grads)}")
    missing = [k for k in params if k not in grads]
    extra = [k for k in grads if k not in params]
    if missing or extra:
        raise ValueError("grads must have exactly the keys of params; "
                         f"missing: {missing}, unexpected: {extra} (params has {list(params)})")
    todo = []
    for key, p in params.items():
        g = grads[key]
        if g is not None:
            todo.append((key, p, like(g, f"grads[{key!r}]", p, f"params[{key!r}]")))
    return todo


_INT64_MAX = np.iinfo(np.int64).max


def class_indices(target, name, num_classes, shape, *, ignore_index=None, shape_hint=""):
    """Check class-index targets and return them flattened as int64, with a keep-mask.

    ``target`` must be an ndarray of an integer dtype and exactly ``shape`` (no
    broadcasting: labels of shape (N, 1) against N predictions are refused), every
    entry in [0, num_classes) or equal to ``ignore_index``. Unsigned values that
    do not fit int64 (a uint64 ``2**64 - 100``) are refused as given, never
    wrapped around to a negative index such as ignore_index.

    Returns:
        ``(t, keep)``: ``t`` the indices as int64, shape (prod(shape),), with 0 in
        place of ignored entries; ``keep`` a bool mask of the counted entries, or
        None when every entry counts (the common case, with no masks at all).
    """
    if not isinstance(target, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of integer class indices, got {describe(target)}")
    if target.dtype.kind not in "iu":
        raise TypeError(f"{name} must have an integer dtype (class indices), got {target.dtype}")
    shape = tuple(shape)
    if target.shape != shape:
        raise ValueError(f"{name} of class indices must have shape {shape}{shape_hint}, got {target.shape}")
    flat = target.reshape(-1)
    if flat.dtype.kind == "u" and flat.dtype.itemsize == 8 and flat.size:
        too_big = flat > _INT64_MAX
        if too_big.any():
            raise ValueError(f"{name} holds class index {flat[too_big][0]} outside [0, {num_classes}): "
                             f"it does not fit int64")
    t = flat.astype(np.int64, copy=False)
    # One comparison finds every index outside [0, C): seen as unsigned, a
    # negative index is huge. Where there is none and ignore_index is not a
    # class, every entry counts.
    outside = t.view(np.uint64) >= num_classes
    ignore_is_class = ignore_index is not None and 0 <= ignore_index < num_classes
    if not ignore_is_class and not outside.any():
        return t, None
    keep = t != ignore_index if ignore_index is not None else np.ones(t.shape, bool)
    bad = keep & outside
    if bad.any():
        also = "" if ignore_index is None else f" that is not ignore_index ({ignore_index})"
        raise ValueError(f"{name} holds class index {t[bad][0]} outside [0, {num_classes}){also}")
    return np.where(keep, t, 0), keep


def ndarray(x, name, *, sample_axis=False):
    """Return ``x`` if it is a numpy.ndarray of any dtype, else raise; with
    ``sample_axis`` it must also have a first axis to index samples by."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {describe(x)}")
    if sample_axis and x.ndim < 1:
        raise ValueError(f"{name} must have a sample axis, got shape {x.shape}")
    return x


def int_array(values, name, what="class indices"):
    """Check an ndarray of integers (int or uint dtype); ``what`` says what they are, for the message."""
    if not isinstance(values, np.ndarray) or values.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer numpy.ndarray of {what}, got {describe(values)}")
    return values


# --------------------------------------------------------------------------- containers and the rest
# Each names the argument and says what was expected and what arrived, as above.

def real(value, name):
    """A real number (not bool) as a Python float; unlike :func:`real_number`, inf and nan pass."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {describe(value)}")
    return float(value)


def writable_float_array(x, name, why):
    """Return ``x`` if it is a float32/float64 ndarray (as :func:`float_array`) that may be
    written to, else raise; ``why`` says why it must be writable."""
    float_array(x, name)
    if not x.flags.writeable:
        raise ValueError(f"{name} is read-only (flags.writeable is False); {why}")
    return x


def instance(value, name, cls, what):
    """Return ``value`` if it is an instance of ``cls``, else a TypeError saying it must be ``what``."""
    if not isinstance(value, cls):
        raise TypeError(f"{name} must be {what}, got {describe(value)}")
    return value


def function(value, name, what="a function"):
    """A callable (None refused; see :func:`callable_` for an optional one)."""
    if not callable(value):
        raise TypeError(f"{name} must be {what}, got {describe(value)}")
    return value


def pair(value, name, what):
    """A tuple or list of two items, returned as a tuple; ``what`` names them, e.g. "(beta1, beta2)"."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{name} must be a pair {what}, got {describe(value)}")
    return tuple(value)


def only_item(value, name, what, cls=object):
    """The item of a list of exactly one ``cls`` (``what`` describes it)."""
    if not isinstance(value, list) or len(value) != 1 or not isinstance(value[0], cls):
        raise TypeError(f"{name} must be a list of one {what}, got {describe(value)}")
    return value[0]


def sequence(value, name, what):
    """A list or tuple (a str is refused), returned as a new list; ``what`` says what it holds."""
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{name} must be a list of {what}, got {describe(value)}")
    return list(value)


def iterable(value, name, what):
    """An ndarray or any iterable but a str or bytes, returned unchanged; ``what`` says what is expected."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{name} must be {what}, got {describe(value)}")
    return value


def mapping(value, name, what, *, keys=None):
    """A dict (``what`` describes it), with exactly ``keys`` when given."""
    if not isinstance(value, dict):
        raise TypeError(f"{name} must be a dict {what}, got {describe(value)}")
    if keys is not None and set(value) != set(keys):
        raise ValueError(f"{name} must have exactly the keys {list(keys)}, got {sorted(value)}")
    return value


def keyed(value, name="state_dict"):
    """A dict, or anything with ``keys()`` and ``[]`` (what ``np.load`` returns for an .npz),
    read into a new plain dict."""
    if not hasattr(value, "keys") or not hasattr(value, "__getitem__"):
        raise TypeError(f"{name} must be a dict (or np.load result), got {describe(value)}")
    return {k: value[k] for k in value.keys()}


def upstream(value, name, shape, dtype):
    """The upstream gradient of a loss (``dloss``): None means ones of ``shape``; else an
    array shaped and typed like the loss (:func:`like`; a NumPy float scalar counts as 0-d)."""
    if value is None:
        return np.ones(shape, dtype)
    return like(value, name, Like(shape, dtype), "the loss")


def classification(scores, name, target, weight, ignore_index, *, allow_probs):
    """Check the arrays of a classification loss: ``scores`` (logits or log-probabilities,
    (N, C), (N, C, d1, ...) or (C,)), ``target`` (class indices of the batch shape,
    see :func:`class_indices`, or, if ``allow_probs``, probabilities shaped and typed
    like ``scores``) and an optional per-class ``weight`` (C,). Returns ``scores``."""
    scores = float_array(scores, name, min_ndim=1)
    axis = 0 if scores.ndim == 1 else 1
    C = scores.shape[axis]
    if weight is not None:
        float_array(weight, "weight")
        same_shape(weight, "weight", (C,))
        same_dtype(weight, "weight", scores.dtype)
    if not isinstance(target, np.ndarray):
        raise TypeError(f"target must be a numpy.ndarray of class indices or probabilities, got {describe(target)}")
    if target.dtype.kind in "iu":
        class_indices(target, "target", C, scores.shape[:axis] + scores.shape[axis + 1:], ignore_index=ignore_index,
                      shape_hint=f" for input of shape {scores.shape}")
    elif target.dtype.kind == "f" and allow_probs:
        if target.shape != scores.shape:
            raise ValueError(
                f"target of class probabilities must have the input's shape {scores.shape}, got {target.shape}")
        same_dtype(target, "target", scores.dtype)
    else:
        expected = "an integer dtype (class indices)" + (" or the input's float dtype (probabilities)" if allow_probs else "")
        raise TypeError(f"target must have {expected}, got {target.dtype}")
    return scores


def int_pair(value, name, *, low=None):
    """An int or a pair of ints (height, width), each at least ``low``, as torch's
    kernel_size, stride, padding and dilation; returned as a tuple of two ints."""
    items = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2 or any(isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral) for v in items):
        raise TypeError(f"{name} must be an int or a pair of ints (height, width), got {describe(value)}"
                        + ("" if not isinstance(value, (tuple, list)) else f" {tuple(value)!r}"))
    items = tuple(int(v) for v in items)
    if low is not None and min(items) < low:
        raise ValueError(f"{name} must be at least {low} (an int or a pair of ints), got {value!r}")
    return items


__all__ = ["FLOAT_DTYPES"] + [n for n, v in dict(globals()).items()
                              if callable(v) and not n.startswith("_") and getattr(v, "__module__", None) == __name__]
