"""Benchmark rows of the normalization layers: BatchNorm2d at LeNet's activation sizes,
BatchNorm1d after a hidden layer and LayerNorm, forward plus backward against torch eager."""
import numpy as np
import torch

from npnet import nn

from .ops import _module_case


def cases(quick=False):
    rng = np.random.default_rng(4)

    def randn(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    def bn_twin(m, cls):
        t = cls(m.num_features)
        t.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in m.state_dict().items()})
        return t

    out = []
    shapes2d = [(256, 6, 28, 28), (256, 16, 10, 10)] if not quick else [(8, 3, 6, 6)]
    for shape in shapes2d:
        m = nn.BatchNorm2d(shape[1])
        out.append(_module_case("BatchNorm2d", str(shape), m, bn_twin(m, torch.nn.BatchNorm2d), randn(*shape),
                                randn(*shape)))
    shape1d = (256, 256) if not quick else (16, 8)
    m = nn.BatchNorm1d(shape1d[1])
    out.append(_module_case("BatchNorm1d", str(shape1d), m, bn_twin(m, torch.nn.BatchNorm1d), randn(*shape1d),
                            randn(*shape1d)))
    m = nn.LayerNorm(shape1d[1])
    out.append(_module_case("LayerNorm", str(shape1d), m, torch.nn.LayerNorm(shape1d[1]), randn(*shape1d),
                            randn(*shape1d)))
    return out
