"""Small helpers that the plain kernels and their fast twins share: classes as rows."""
import math

import numpy as np


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


def reduce_rows(loss, denom, reduction, shape):
    """Per-row losses (M,) reduced as ``reduction`` says: "none" reshapes them to ``shape``,
    "sum" adds them, "mean" divides the sum by ``denom``."""
    if reduction == "none":
        return loss.reshape(shape)
    total = loss.sum(dtype=loss.dtype)
    if reduction == "sum":
        return np.asarray(total)
    if denom and math.isfinite(denom):   # the usual case, where the division cannot warn
        return np.asarray(total / denom, loss.dtype)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(total / denom, loss.dtype)  # 0 / 0 = nan when everything is ignored, as torch
