"""nn.Linear starts exactly as torch.nn.Linear does by default, and reproducibly."""
import math

import numpy as np
import pytest
import torch

from npnet import nn


def ks_uniform(samples, low, high):
    """Kolmogorov-Smirnov statistic of samples against U(low, high), computed here."""
    x = np.sort(samples.ravel().astype(np.float64))
    n = x.size
    cdf = np.clip((x - low) / (high - low), 0, 1)
    return max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n))


@pytest.mark.parametrize("in_features,out_features", [(784, 256), (256, 10), (3, 2000)])
def test_linear_default_init_matches_torch_distribution(in_features, out_features):
    layer = nn.Linear(in_features, out_features, rng=np.random.default_rng(0))
    torch.manual_seed(0)   # an unseeded draw would fail this 1% test once in about 30 runs (six checks)
    tlayer = torch.nn.Linear(in_features, out_features)
    bound = 1 / math.sqrt(in_features)
    for name in ("weight", "bias"):
        ours = layer.params[name]
        theirs = getattr(tlayer, name).detach().numpy()
        assert ours.shape == theirs.shape and ours.dtype == np.float32
        # Both inside the same exact bound, both uniform on it.
        assert np.abs(ours).max() <= bound and np.abs(theirs).max() <= bound
        crit = 1.63 / math.sqrt(ours.size)  # KS critical value at alpha = 0.01
        assert ks_uniform(ours, -bound, bound) < crit
        assert ks_uniform(theirs, -bound, bound) < crit
    # Negative control: the same check rejects a bound 20% too wide.
    if layer.params["weight"].size > 1000:
        assert ks_uniform(layer.params["weight"], -1.2 * bound, 1.2 * bound) > 1.63 / math.sqrt(layer.params["weight"].size)


def test_same_seed_is_bit_identical_and_reset_parameters_redraws():
    a = nn.Sequential(nn.Linear(20, 8, rng=np.random.default_rng(5)))
    b = nn.Sequential(nn.Linear(20, 8, rng=np.random.default_rng(5)))
    for k in a.params:
        assert np.array_equal(a.params[k], b.params[k])
    w = a[0].params["weight"]
    before = w.copy()
    a[0].reset_parameters(rng=np.random.default_rng(6))
    assert a[0].params["weight"] is w, "reset_parameters must refill the same array (optimizers hold it)"
    assert not np.array_equal(before, w)
    a[0].reset_parameters(rng=np.random.default_rng(5))
    assert np.array_equal(before, w)


def test_float64_layer_draws_the_same_values_as_float32_rounded():
    a = nn.Linear(10, 4, rng=np.random.default_rng(3), dtype=np.float64)
    b = nn.Linear(10, 4, rng=np.random.default_rng(3), dtype=np.float32)
    assert a.params["weight"].dtype == np.float64
    np.testing.assert_array_equal(a.params["weight"].astype(np.float32), b.params["weight"])


def test_init_leaves_global_numpy_random_state_alone():
    state = np.random.get_state()
    nn.Linear(50, 50)
    nn.Dropout(0.5).forward(np.ones((4, 4), np.float32))
    after = np.random.get_state()
    assert all(np.array_equal(x, y) for x, y in zip(state[1:2], after[1:2])) and state[2:] == after[2:]
