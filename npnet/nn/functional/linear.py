"""Linear's plain kernels: ``Y = X W^T + b`` and its gradients."""
from ... import _validate as V
from .._kernels import kernel


# --------------------------------------------------------------------------- Linear

def _check_linear(X, W, b=None):
    X = V.float_array(X, "input", min_ndim=1)
    W = V.float_array(W, "weight", min_ndim=2)
    if W.ndim != 2:
        raise ValueError(f"weight must be 2-D (out_features, in_features), got shape {W.shape}")
    if X.shape[-1] != W.shape[1]:
        raise ValueError(f"linear: input has {X.shape[-1]} features on its last axis but weight expects "
                         f"{W.shape[1]}: input shape {X.shape}, weight shape {W.shape}")
    V.same_dtype(W, "weight", X.dtype)
    if b is not None:
        V.float_array(b, "bias")
        V.same_shape(b, "bias", (W.shape[0],))
        V.same_dtype(b, "bias", X.dtype)
    return dict(X=X, W=W, b=b)


@kernel(_check_linear)
def linear(X, W, b=None):
    """Affine map ``Y = X W^T + b`` over any leading dims, as ``torch.nn.functional.linear``.

    Args:
        X: input, shape (*, in_features).
        W: weight, shape (out_features, in_features) (torch's layout).
        b: optional bias, shape (out_features,).

    Shape:
        Y: (*, out_features), the dtype of X.
    """
    Y = X @ W.T
    return Y if b is None else Y + b


def _check_linear_backward(dY, X, W, *, need_dX=True, need_db=True):
    X = V.float_array(X, "X", min_ndim=1)
    W = V.float_array(W, "W")
    if W.ndim != 2:
        raise ValueError(f"W must be 2-D (out_features, in_features), got shape {W.shape}")
    if X.shape[-1] != W.shape[1]:
        raise ValueError(f"X has {X.shape[-1]} features on its last axis but W expects {W.shape[1]}: "
                         f"X shape {X.shape}, W shape {W.shape}")
    dY = V.float_array(dY, "dY")
    expected = X.shape[:-1] + W.shape[:1]
    if dY.shape != expected:
        raise ValueError(f"dY must have shape {expected} (X's leading dims, W's out_features), got {dY.shape}")
    if dY.dtype != X.dtype:
        raise TypeError(f"dY must have dtype {X.dtype} to match X, got {dY.dtype}")
    if W.dtype != X.dtype:
        raise TypeError(f"W must have dtype {X.dtype} to match X, got {W.dtype}")
    return dict(dY=dY, X=X, W=W, need_dX=V.flag(need_dX, "need_dX"), need_db=V.flag(need_db, "need_db"))


@kernel(_check_linear_backward)
def linear_backward(dY, X, W, *, need_dX=True, need_db=True):
    """Gradients of ``Y = X W^T + b``.

    dX = dY W,   dW = dY^T X (summed over every leading dim),   db = sum of dY over leading dims.

    Args:
        dY: upstream gradient, shape (*, out_features).
        X: the forward input, shape (*, in_features).
        W: the weight, shape (out_features, in_features).
        need_dX: compute dX; the first layer of a network does not need it.
        need_db: compute db (False for a layer without bias).

    Returns:
        ``(dX, dW, db)``; ``dX`` is None when not needed, ``db`` None when not needed.
    """
    dY2 = dY.reshape(-1, dY.shape[-1])   # every leading dim is a batch dim: (n, out_features)
    X2 = X.reshape(-1, X.shape[-1])      # (n, in_features)
    dW = dY2.T @ X2
    db = dY2.sum(axis=0) if need_db else None
    dX = dY @ W if need_dX else None
    return dX, dW, db
