"""Which implementation of each kernel runs: the plain one or its fast twin.

``npnet/nn/functional.py`` holds the plain kernels (the math); ``npnet/nn/_fast.py``
holds faster twins of some of them, with the same signatures. Every public kernel
is declared with :func:`kernel`, which checks its arguments once and then calls
the *active* implementation: the fast twin unless the environment says
``NPNET_KERNELS=plain`` (read once, at import).

``K.<name>`` is the active implementation without any check, for modules that
checked their arguments already (``layers.py``, ``losses.py``).
"""
import functools
import math
import os

import numpy as np

_MODES = ("fast", "plain")
MODE = os.environ.get("NPNET_KERNELS", "") or "fast"
if MODE not in _MODES:
    raise ImportError(f"NPNET_KERNELS must be 'fast' or 'plain' (or unset for 'fast'), got {MODE!r}")


class _Active:
    """The active implementation of every kernel, by name; nothing is checked."""

    def __repr__(self):
        return f"<npnet kernels: {MODE}>"


K = _Active()


def kernel(check):
    """Declare a public kernel: ``check`` (the same signature) validates the arguments
    and returns them as a dict; the active implementation then runs on that dict.

    The public function keeps the plain body's name, docstring and signature and
    exposes ``.plain`` (the readable math), ``.fast`` (its twin in ``_fast``, or
    None), ``.active`` (the one that runs) and ``.check``.
    """
    from . import _fast   # here, not at the top: _fast imports this module's helpers

    def declare(plain):
        fast = getattr(_fast, plain.__name__, None)
        active = fast if fast is not None and MODE == "fast" else plain

        @functools.wraps(plain)
        def public(*args, **kwargs):
            return active(**check(*args, **kwargs))

        public.plain, public.fast, public.active, public.check = plain, fast, active, check
        setattr(K, plain.__name__, active)
        return public
    return declare


# ------------------------------------------- small helpers shared by plain and fast

def classes_last(A, class_axis):
    """View an array of scores or targets as (M, C) rows of classes (a copy only when
    the classes must move to the last axis, for (N, C, d1, ...) inputs)."""
    C = A.shape[class_axis]
    M = math.prod(A.shape[:class_axis] + A.shape[class_axis + 1:])   # also when C == 0
    if A.ndim > 2:
        A = np.moveaxis(A, 1, -1)
    return A.reshape(M, C)


def classes_back(R, shape):
    """Inverse of :func:`classes_last`: (M, C) rows back to ``shape``."""
    if len(shape) <= 2:
        return R.reshape(shape)
    moved = shape[:1] + shape[2:] + shape[1:2]
    return np.ascontiguousarray(np.moveaxis(R.reshape(moved), -1, 1))


def class_axis(shape):
    """Classes are on axis 1 of (N, C, ...) and on axis 0 of an unbatched (C,) input."""
    return 0 if len(shape) == 1 else 1


def index_rows(target, ignore_index):
    """Class-index targets (already checked) as (t, keep): t int64 of shape (M,), 0 where
    ignored (so that it can index), keep a bool mask of the rows that count."""
    t = target.reshape(-1).astype(np.int64)
    keep = t != ignore_index
    return np.where(keep, t, 0), keep
