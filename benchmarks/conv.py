"""Conv2d rows of ``python -m benchmarks ops``: forward plus backward against torch eager,
each with its floor.

A row's floor is the three matrix products of the layer alone (forward Y^T = W2 P,
dW^T = P dY, dP = W2^T dY^T) on patch matrices made beforehand, in the layout
npnet's fast kernels use (see npnet/nn/_fast/conv.py): what no im2col
implementation of the layer in NumPy goes below. ``ops.run`` reports the floor's
time and the row's ratio to it. The ``need_dx=False`` row is the layer as a network's
first layer runs it (LeNet's): no dX, and its floor has no dP.
"""
import numpy as np
import torch

from npnet import nn

SHAPES = [
    # (input shape, out_channels, kernel, padding, input gradient): LeNet's two convolutions;
    # the first is also timed as LeNet runs it, without dX (its input is the data)
    ((256, 1, 28, 28), 6, 5, 2, True),
    ((256, 1, 28, 28), 6, 5, 2, False),
    ((256, 6, 14, 14), 16, 5, 0, True),
]
QUICK_SHAPES = [((8, 1, 12, 12), 4, 3, 1, True), ((8, 1, 12, 12), 4, 3, 1, False), ((8, 4, 6, 6), 6, 3, 0, True)]


def _twin(layer):
    t = torch.nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                        padding=layer.padding, dilation=layer.dilation, groups=layer.groups)
    t.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in layer.params.items()})
    return t


def floor(layer, x, rng, need_dx=True):
    """The layer's three matrix products alone (two with ``need_dx=False``: no dP), on random
    patch matrices of its shapes."""
    W = layer.params["weight"]
    O = W.shape[0]
    Y = layer(x)
    M, CK = Y.size // O, W[0].size
    P = rng.standard_normal((CK, M)).astype(np.float32)
    dYt = rng.standard_normal((O, M)).astype(np.float32)
    W2 = W.reshape(O, CK)

    def products():
        return W2 @ P, P @ dYt.T, (W2.T @ dYt if need_dx else None)

    return products


def cases(quick=False):
    from .ops import _module_case      # here, not at the top: ops imports this module

    rng = np.random.default_rng(3)
    out = []
    for shape, O, k, pad, need_dx in (QUICK_SHAPES if quick else SHAPES):
        layer = nn.Conv2d(shape[1], O, k, padding=pad, rng=rng)
        x = rng.standard_normal(shape).astype(np.float32)
        dy = rng.standard_normal(layer(x).shape).astype(np.float32)
        case = _module_case("Conv2d", f"{shape}->{O}@{k}x{k} pad {pad}" + ("" if need_dx else ", need_dx=False"),
                            layer, _twin(layer), x, dy, grads_of_input=need_dx)
        case.floor = floor(layer, x, rng, need_dx)
        out.append(case)
    return out
