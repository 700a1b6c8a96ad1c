"""The argument checks on training objects: models, losses, optimizers, loaders, batches."""
import sys

import numpy as np

from .core import describe

# --------------------------------------------------------------------------- training objects
# What fit, train_epoch, evaluate and the checkpoint functions are handed: checked
# by the methods they call, so that any object that has them works (duck typing).

def model(value, name="model", *, trained=False):
    """An npnet Module; ``trained``: with parameters (returns their dtype then)."""
    # Looked up, not imported: npnet.nn imports this module, and an object can only
    # be a Module once npnet.nn.layers has been loaded.
    layers = sys.modules.get("npnet.nn.layers")
    if layers is None or not isinstance(value, layers.Module):
        raise TypeError(f"{name} must be an npnet Module (e.g. from build_model), got {describe(value)}")
    if trained:
        if value.dtype is None:
            raise ValueError(f"{name} has no parameters to train: {value!r}")
        return value.dtype
    return value


def loss(value, name="loss_fn", *, optional=False):
    if value is None and optional:
        return None
    if not callable(getattr(value, "forward", None)):
        raise TypeError(f"{name} must be an npnet loss such as nn.CrossEntropyLoss(), got {describe(value)}")
    return value


def optimizer(value, name="optimizer", *, optional=False, needs=("step",)):
    if value is None and optional:
        return None
    if not all(callable(getattr(value, m, None)) for m in needs):
        raise TypeError(f"{name} must be an npnet.optim optimizer (e.g. optim.SGD(model.params, lr=0.1)), "
                        f"got {describe(value)}")
    return value


def scheduler(value, name="scheduler", *, needs=("step",)):
    if value is None:
        return None
    if not all(callable(getattr(value, m, None)) for m in needs):
        raise TypeError(f"{name} must be an npnet.optim scheduler or None, got {describe(value)}")
    return value


def loader(value, name="loader", *, sized=False):
    """An iterable of (X, y) batches (a DataLoader, a list); ``sized``: with a len()."""
    if isinstance(value, (str, bytes, dict, np.ndarray)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{name} must be an iterable of (X, y) batches such as a DataLoader, got {describe(value)}")
    if sized and not hasattr(value, "__len__"):
        raise TypeError(f"{name} must have a len() (the number of batches), as a DataLoader or a list has; "
                        f"got {describe(value)}")
    return value


def callable_(value, name):
    """A function or None."""
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be a function or None, got {describe(value)}")
    return value


def callbacks(value, name, methods):
    """A list or tuple of objects, each with at least one of ``methods``."""
    wanted = ", ".join(methods[:-1]) + " or " + methods[-1]
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{name} must be a list or tuple of objects with {wanted} methods, got {describe(value)}")
    for i, c in enumerate(value):
        if not any(callable(getattr(c, m, None)) for m in methods):
            raise TypeError(f"{name}[{i}] must be an object with {wanted} methods, got {describe(c)}")
    return value


def batch(value, step, name):
    """One (X, y) batch of a loader: numeric arrays with the same, non-zero number of samples."""
    where = f"batch {step} of {name}"
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise TypeError(f"{where} must be a pair (X, y) of numpy arrays, got {describe(value)}")
    X, y = value
    if not isinstance(X, np.ndarray) or X.dtype.kind not in "uif":
        raise TypeError(f"{where}: X must be a numpy.ndarray of real numbers (uint8 or float images), "
                        f"got {describe(X)}")
    if not isinstance(y, np.ndarray):
        raise TypeError(f"{where}: y must be a numpy.ndarray of labels, got {describe(y)}")
    if X.ndim < 1 or y.ndim < 1 or X.shape[0] != y.shape[0]:
        raise ValueError(f"{where}: X and y must have the same number of samples on axis 0, "
                         f"got shapes {X.shape} and {y.shape}")
    if X.shape[0] == 0:
        raise ValueError(f"{where} is empty (0 samples); a loader must not yield empty batches "
                         "(a mean loss over none is NaN)")
    return X, y


def history(value, name):
    """A list of EpochResult (or dicts with its fields), returned as a list of EpochResult."""
    import dataclasses

    from ..results import EpochResult

    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{name} must be a list of EpochResult, got {describe(value)}")
    fields = {f.name for f in dataclasses.fields(EpochResult)}
    required = {f.name for f in dataclasses.fields(EpochResult) if f.default is dataclasses.MISSING}
    out = []
    for i, r in enumerate(value):
        if isinstance(r, EpochResult):
            out.append(r)
            continue
        if not isinstance(r, dict) or not set(r) <= fields or not required <= set(r):
            raise TypeError(f"{name}[{i}] must be an EpochResult or a dict with the keys {sorted(fields)}, "
                            f"got {describe(r)}")
        out.append(EpochResult(**r))
    return out


def generators(value, name, *, optional=False):
    """A Generator (named "rng") or a dict name -> Generator; returned as a new dict (None if ``optional``)."""
    if value is None and optional:
        return None
    if isinstance(value, np.random.Generator):
        return {"rng": value}
    if not isinstance(value, dict):
        raise TypeError(f"{name} must be a numpy.random.Generator or a dict of name -> Generator, "
                        f"got {describe(value)}")
    for k, g in value.items():
        if not isinstance(k, str):
            raise TypeError(f"{name} keys must be str (generator names), got {describe(k)}")
        if not isinstance(g, np.random.Generator):
            raise TypeError(f"{name}[{k!r}] must be a numpy.random.Generator, got {describe(g)}; "
                            "use np.random.default_rng(seed)")
    return dict(value)


def json_text(value, name="config"):
    """``value`` as sorted JSON text; a CheckpointError (a ValueError) if it cannot be (a checkpoint holds it)."""
    import json

    from ..errors import CheckpointError

    try:
        return json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{name} must be JSON-serialisable to go into a checkpoint: {e}") from None


__all__ = [n for n, v in dict(globals()).items()
           if callable(v) and not n.startswith("_") and getattr(v, "__module__", None) == __name__]
