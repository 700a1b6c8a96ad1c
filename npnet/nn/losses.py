"""Loss modules: ``loss, backward = loss_fn.forward(input, target)``; ``backward(dloss=None)``
returns the gradient with respect to ``input`` (dloss defaults to 1, shaped like the loss).

Targets get no gradient: they are data, as in every torch training loop.
"""

from .. import _validate as V
from . import functional as F
from ._kernels import K   # the active kernels, unchecked: forward checks the arguments once

__all__ = ["CrossEntropyLoss", "NLLLoss", "MSELoss"]


class _Loss:
    def __init__(self, reduction="mean"):
        self.reduction = V.choice(reduction, "reduction", ("mean", "sum", "none"))

    def __call__(self, input, target):
        loss, _ = self.forward(input, target)
        return loss

    def __repr__(self):
        return f"{type(self).__name__}(reduction={self.reduction!r})"


class CrossEntropyLoss(_Loss):
    """Cross-entropy of raw logits against class indices or class probabilities,
    as ``torch.nn.CrossEntropyLoss`` (see :func:`npnet.nn.functional.cross_entropy`).

    Its backward is the fused ``softmax - target`` form (divided by N under
    "mean"), computed from the log-probabilities kept by forward.

    Example::

        >>> loss_fn = CrossEntropyLoss()
        >>> logits = np.array([[2.0, 0.5, -1.0]], np.float32)
        >>> loss, backward = loss_fn.forward(logits, np.array([0]))
        >>> dlogits = backward()          # softmax(logits) - onehot(0)
    """

    def __init__(self, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__(reduction)
        if weight is not None:
            V.float_array(weight, "weight", min_ndim=1)
        self.weight = weight
        self.ignore_index = V.integer(ignore_index, "ignore_index")
        self.label_smoothing = V.real_number(label_smoothing, "label_smoothing", low=0.0, high=1.0)

    def _kw(self):
        return dict(weight=self.weight, ignore_index=self.ignore_index, reduction=self.reduction,
                    label_smoothing=self.label_smoothing)

    def forward(self, input, target):
        V.classification(input, "input", target, self.weight, self.ignore_index, allow_probs=True)
        loss, grad = K.cross_entropy_with_backward(input, target, **self._kw())

        def backward(dloss=None):
            # w[t] (softmax - onehot(target)) per row, times the reduction's scale and dloss
            return grad(V.upstream(dloss, "dloss", loss.shape, loss.dtype))

        return loss, backward


class NLLLoss(_Loss):
    """Negative log-likelihood of log-probabilities, as ``torch.nn.NLLLoss``."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean"):
        super().__init__(reduction)
        if weight is not None:
            V.float_array(weight, "weight", min_ndim=1)
        self.weight = weight
        self.ignore_index = V.integer(ignore_index, "ignore_index")

    def forward(self, input, target):
        V.classification(input, "input", target, self.weight, self.ignore_index, allow_probs=False)
        kw = dict(weight=self.weight, ignore_index=self.ignore_index, reduction=self.reduction)
        loss = K.nll_loss(input, target, **kw)

        def backward(dloss=None):
            dloss = V.upstream(dloss, "dloss", loss.shape, loss.dtype)
            return K.nll_loss_backward(dloss, input, target, **kw)   # -w[t] * scale at the target class, 0 elsewhere

        return loss, backward


class MSELoss(_Loss):
    """Mean squared error, as ``torch.nn.MSELoss``."""

    def forward(self, input, target):
        args = F.mse_loss.check(input, target, reduction=self.reduction)
        loss = K.mse_loss(**args)

        def backward(dloss=None):
            dloss = V.upstream(dloss, "dloss", loss.shape, loss.dtype)
            return K.mse_loss_backward(dloss, **args)   # 2 (x - y) / n

        return loss, backward
