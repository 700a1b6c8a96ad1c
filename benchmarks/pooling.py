"""Benchmark rows of the pooling layers: MaxPool2d and AvgPool2d forward plus backward
against torch eager, float32, at LeNet's activations (kernel 2, stride 2)."""
import numpy as np
import torch

from npnet import nn

from .ops import _module_case

SHAPES = [(256, 6, 28, 28), (256, 16, 10, 10)]
QUICK_SHAPES = [(8, 3, 8, 8)]


def cases(quick=False):
    rng = np.random.default_rng(3)
    out = []
    for shape in QUICK_SHAPES if quick else SHAPES:
        N, C, H, W = shape
        X = rng.standard_normal(shape).astype(np.float32)
        dY = rng.standard_normal((N, C, H // 2, W // 2)).astype(np.float32)
        for name, module, tmodule in [("MaxPool2d", nn.MaxPool2d(2), torch.nn.MaxPool2d(2)),
                                      ("AvgPool2d", nn.AvgPool2d(2), torch.nn.AvgPool2d(2))]:
            out.append(_module_case(name, f"{shape} k2", module, tmodule, X, dY))
    return out
