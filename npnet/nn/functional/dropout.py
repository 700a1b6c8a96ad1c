"""Dropout's plain kernels: the keep-mask, and multiplying by it forward and backward."""
import numpy as np

from ... import _validate as V
from .._kernels import kernel


# --------------------------------------------------------------------------- Dropout

def _check_dropout_mask(shape, p, rng, dtype=np.float32):
    return dict(shape=V.dims(shape, "shape"), p=V.real_number(p, "p", low=0.0, high=1.0),
                rng=V.generator(rng), dtype=V.float_dtype(dtype))


@kernel(_check_dropout_mask)
def dropout_mask(shape, p, rng, dtype=np.float32):
    """A keep-mask for inverted dropout: each entry is ``1 / (1 - p)`` with probability
    ``1 - p`` and 0 otherwise (all zeros when p == 1, as in torch).
    """
    if p == 1:
        return np.zeros(shape, dtype)
    keep = rng.random(shape, dtype=np.float64 if dtype == np.float64 else np.float32) >= p
    return keep.astype(dtype) * dtype.type(1.0 / (1.0 - p))


def _check_dropout(X, mask):
    V.float_array(X, "input")
    V.float_array(mask, "mask")
    V.same_shape(mask, "mask", X.shape)
    V.same_dtype(mask, "mask", X.dtype)
    return dict(X=X, mask=mask)


@kernel(_check_dropout)
def dropout(X, mask):
    """Y = X * mask, with ``mask`` from :func:`dropout_mask` (already scaled by 1 / (1 - p))."""
    return X * mask


def _check_dropout_backward(dY, mask):
    mask = V.float_array(mask, "mask")
    return dict(dY=V.like(dY, "dY", mask, "mask"), mask=mask)


@kernel(_check_dropout_backward)
def dropout_backward(dY, mask):
    """dX = dY * mask: dropped units pass no gradient, kept ones are scaled as in forward."""
    return dY * mask
