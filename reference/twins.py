"""Torch twins of npnet modules: the same computation, the same weights, run by torch autograd.

``twin(module)`` builds the ``torch.nn.Module`` that computes what an npnet
module computes. npnet's ``params`` keys and shapes are torch's ``state_dict``
keys and shapes, so the weights move with no renaming in either direction::

    t = twin(layer)                                                   # npnet -> torch, done by twin
    layer.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})   # torch -> npnet

Dropout draws its mask from torch's generator, which differs from NumPy's. To
compare one training step, pass ``replay=backward`` (the closure of an npnet
training forward): every Dropout twin then multiplies by the very mask npnet
drew (``backward.mask``, reached through ``backward.children`` for a Sequential).
"""
import numpy as np
import torch

from npnet import nn

__all__ = ["twin", "ReplayDropout", "torch_dtype"]

_TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def torch_dtype(dtype):
    """The torch dtype of a NumPy float dtype (float32 or float64)."""
    return _TORCH_DTYPES[np.dtype(dtype)]


class ReplayDropout(torch.nn.Module):
    """Dropout that multiplies by a given mask (already scaled by 1 / (1 - p)) in
    training mode and is the identity in eval mode, like ``torch.nn.Dropout``.

    The mask is a non-persistent buffer, so the ``state_dict`` stays empty as
    ``torch.nn.Dropout``'s does.
    """

    def __init__(self, p, mask):
        super().__init__()
        self.p = p
        self.register_buffer("mask", torch.from_numpy(np.array(mask)), persistent=False)

    def forward(self, x):
        return x * self.mask if self.training else x

    def extra_repr(self):
        return f"p={self.p}, replayed mask of shape {tuple(self.mask.shape)}"


def _linear(m, replay):
    dtype = m.params["weight"].dtype
    t = torch.nn.Linear(m.in_features, m.out_features, bias="bias" in m.params, dtype=torch_dtype(dtype))
    t.load_state_dict({k: torch.from_numpy(v) for k, v in m.params.items()})
    return t


def _dropout(m, replay):
    mask = getattr(replay, "mask", None)
    return torch.nn.Dropout(m.p) if mask is None else ReplayDropout(m.p, mask)


def _sequential(m, replay):
    children = getattr(replay, "children", None) or (None,) * len(m)
    return torch.nn.Sequential(*(twin(c, replay=r) for c, r in zip(m, children)))


def _weight(w):
    return None if w is None else torch.from_numpy(np.array(w))


_BUILDERS = {
    nn.Linear: _linear,
    nn.ReLU: lambda m, r: torch.nn.ReLU(),
    nn.LeakyReLU: lambda m, r: torch.nn.LeakyReLU(m.negative_slope),
    nn.Sigmoid: lambda m, r: torch.nn.Sigmoid(),
    nn.Tanh: lambda m, r: torch.nn.Tanh(),
    nn.Softmax: lambda m, r: torch.nn.Softmax(dim=m.axis),
    nn.LogSoftmax: lambda m, r: torch.nn.LogSoftmax(dim=m.axis),
    nn.Flatten: lambda m, r: torch.nn.Flatten(m.start_axis, m.end_axis),
    nn.Dropout: _dropout,
    nn.Sequential: _sequential,
    nn.CrossEntropyLoss: lambda m, r: torch.nn.CrossEntropyLoss(
        weight=_weight(m.weight), ignore_index=m.ignore_index, reduction=m.reduction,
        label_smoothing=m.label_smoothing),
    nn.NLLLoss: lambda m, r: torch.nn.NLLLoss(weight=_weight(m.weight), ignore_index=m.ignore_index,
                                              reduction=m.reduction),
    nn.MSELoss: lambda m, r: torch.nn.MSELoss(reduction=m.reduction),
}


def twin(module, *, replay=None):
    """The ``torch.nn.Module`` equivalent to an npnet module or loss, holding a copy
    of its weights (in the weights' dtype).

    Subclasses map to their npnet base class's twin, so a deliberately broken
    ``Linear`` subclass is compared with a correct ``torch.nn.Linear``.

    Args:
        module: an npnet module (Linear, ReLU, LeakyReLU, Sigmoid, Tanh, Softmax,
            LogSoftmax, Flatten, Dropout, Sequential) or loss (CrossEntropyLoss,
            NLLLoss, MSELoss).
        replay: optional backward closure of an npnet training forward of
            ``module``; Dropout twins then replay its masks.

    Returns:
        A torch module. Its ``train()``/``eval()`` mode is torch's default (training);
        set it to match the npnet call.

    Example::

        >>> layer = nn.Linear(3, 2, rng=np.random.default_rng(0))
        >>> t = twin(layer)
        >>> sorted(t.state_dict()) == sorted(layer.params)
        True
    """
    for cls in type(module).__mro__:
        if cls in _BUILDERS:
            return _BUILDERS[cls](module, replay)
    raise TypeError(f"no torch twin for {type(module).__name__}; known: "
                    f"{', '.join(c.__name__ for c in _BUILDERS)}")
