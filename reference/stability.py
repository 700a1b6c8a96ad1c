"""Torch twins for ``npnet.studies.stability``: softmax and cross-entropy gradients.

npnet never imports torch; the study loads this module by name
(``importlib.import_module("reference.stability")``) and skips its torch column
when that fails.
"""
import numpy as np
import torch


def softmax_grad(X, dY):
    """d/dX of sum(softmax(X) * dY) along the last axis, by torch autograd, as NumPy in X's dtype.

    Shape: X, dY (N, C) -> (N, C).
    """
    x = torch.tensor(X, requires_grad=True)
    y = torch.softmax(x, dim=-1)
    y.backward(torch.tensor(dY))
    return x.grad.numpy().astype(X.dtype, copy=False)


def cross_entropy_grad(logits, target):
    """d/dlogits of torch.nn.functional.cross_entropy(logits, target) (mean over rows).

    Shape: logits (N, C), target (N,) int -> (N, C) in the logits' dtype.
    """
    x = torch.tensor(logits, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(x, torch.tensor(np.asarray(target, np.int64)))
    loss.backward()
    return x.grad.numpy().astype(logits.dtype, copy=False)
