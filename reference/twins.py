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
To train side by side over many steps, pass ``replay="rng"``: every Dropout twin
then draws from a copy of its npnet module's generator (:class:`GeneratorDropout`).

Each class's builder is declared in its ``reference.registry`` entry.
"""
import numpy as np
import torch

from npnet.nn import functional as F

from .registry import entry_for

__all__ = ["twin", "ReplayDropout", "GeneratorDropout", "torch_dtype"]

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


class GeneratorDropout(torch.nn.Module):
    """Dropout that draws its masks as an npnet Dropout does, from a copy of that
    module's generator taken when the twin is built, with
    :func:`npnet.nn.functional.dropout_mask`; so the twin drops exactly what npnet
    will drop on the same sequence of calls. The identity in eval mode or at p = 0.
    """

    def __init__(self, p, rng):
        super().__init__()
        self.p, self.rng = p, rng

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        mask = F.dropout_mask(tuple(x.shape), self.p, self.rng, np.dtype(str(x.dtype).split(".")[-1]))
        return x * torch.from_numpy(mask)

    def extra_repr(self):
        return f"p={self.p}, masks from a copy of npnet's generator"


def twin(module, *, replay=None):
    """The ``torch.nn.Module`` equivalent to an npnet module or loss, holding a copy
    of its weights (in the weights' dtype).

    The builder is the one declared in the class's ``reference.registry`` entry.
    Subclasses map to their npnet base class's twin, so a deliberately broken
    ``Linear`` subclass is compared with a correct ``torch.nn.Linear``.

    Args:
        module: a registered npnet module (Linear, ReLU, LeakyReLU, Sigmoid, Tanh,
            Softmax, LogSoftmax, Flatten, Dropout, Sequential, ...) or loss
            (CrossEntropyLoss, NLLLoss, MSELoss).
        replay: optional. The backward closure of an npnet training forward of
            ``module``: Dropout twins then replay its masks. ``"rng"``: Dropout
            twins draw from copies of the npnet modules' generators.

    Raises:
        TypeError: no entry for the module's class.

    Returns:
        A torch module. Its ``train()``/``eval()`` mode is torch's default (training);
        set it to match the npnet call.

    Example::

        >>> layer = nn.Linear(3, 2, rng=np.random.default_rng(0))
        >>> t = twin(layer)
        >>> sorted(t.state_dict()) == sorted(layer.params)
        True
    """
    return entry_for(module).twin(module, replay)
