"""Hypothesis strategies shared by the test files, and a few helpers built on them.

Values come from a drawn seed (a normal sample at a drawn scale) with exact zeros
and large magnitudes put at drawn places, so every test sees all three without
hypothesis having to find them; shapes shrink toward 1 (batch 1, width 1, a
single class).
"""
import numpy as np
from hypothesis import strategies as st

from conftest import torch_one_thread  # noqa: F401  (the fixture lives in conftest; kept importable from here)
from npnet import nn
from reference import registry, tolerance

BIG = 1e4
DTYPES = (np.float32, np.float64)

dtypes = st.sampled_from(DTYPES)
sizes = st.integers(1, 6)
seeds = st.integers(0, 2**32 - 1)


# ----------------------------------------------------------------------------- shapes

def leading_dims(max_dims=2, max_side=4):
    """Zero to ``max_dims`` leading axes (the batch and any more), sides from 1."""
    return st.lists(st.integers(1, max_side), min_size=0, max_size=max_dims).map(tuple)


def shapes(min_dims=1, max_dims=4, max_side=5):
    return st.lists(st.integers(1, max_side), min_size=min_dims, max_size=max_dims).map(tuple)


# ----------------------------------------------------------------------------- values

@st.composite
def float_arrays(draw, shape, dtype, *, big=BIG, zeros=True, scales=(1.0, 1e-3, 30.0)):
    """A float array of ``shape``: normal at a drawn scale, with exact zeros (sometimes
    all of it) and entries of magnitude up to ``big`` at drawn places."""
    r = np.random.default_rng(draw(seeds))
    x = np.asarray(r.standard_normal(shape) * draw(st.sampled_from(scales)))
    if zeros:
        x[r.random(shape) < draw(st.sampled_from([0.0, 0.25, 1.0]))] = 0.0
    if big:
        at = r.random(shape) < draw(st.sampled_from([0.0, 0.2, 0.6]))
        x[at] = r.choice([-big, big], size=int(at.sum())) * r.uniform(0.1, 1.0, size=int(at.sum()))
    return x.astype(dtype)


@st.composite
def upstream(draw, shape, dtype):
    """A random upstream gradient: normal at a drawn scale, never all ones."""
    r = np.random.default_rng(draw(seeds))
    dy = np.asarray(r.standard_normal(shape) * draw(st.sampled_from([1.0, 1e-2, 1e3])), dtype)
    assert not np.all(dy == 1)
    return dy


def moderate(shape, dtype=np.float64, seed=0, *, away_from_zero=0.0):
    """A plain normal sample (for finite differences); entries at least ``away_from_zero`` from 0."""
    x = np.random.default_rng(seed).standard_normal(shape)
    x = np.where(np.abs(x) < away_from_zero, np.copysign(away_from_zero, x) + x, x)
    return x.astype(dtype)


# ---------------------------------------------------------------------------- modules

@st.composite
def linears(draw, in_features, out_features, dtype=np.float64):
    """A Linear with or without bias; weights from torch's initializer or drawn (zeros, large values)."""
    layer = nn.Linear(in_features, out_features, bias=draw(st.booleans()),
                      rng=np.random.default_rng(draw(seeds)), dtype=dtype)
    if draw(st.booleans()):
        layer.load_state_dict({k: draw(float_arrays(v.shape, dtype, big=30.0)) for k, v in layer.params.items()})
    return layer


negative_slopes = st.sampled_from([0.0, 0.01, 0.2, 1.0, 3.0, -0.5])


class Drawer:
    """What a registry entry's strategy hook draws through (see reference.registry):
    each method is one hypothesis draw, so failures shrink."""

    def __init__(self, draw, dtype):
        self._draw, self.dtype = draw, np.dtype(dtype)

    def integers(self, low, high):
        return self._draw(st.integers(low, high))

    def choice(self, options):
        return self._draw(st.sampled_from(list(options)))

    def boolean(self):
        return self._draw(st.booleans())

    def rng(self):
        return np.random.default_rng(self._draw(seeds))

    def array(self, shape, **kw):
        return self._draw(float_arrays(tuple(shape), self.dtype, **kw))


@st.composite
def registered_modules(draw, shape, dtype=np.float64, groups=("layer", "activation", "kernel", "loss")):
    """(entry, module, compare keyword arguments) from any registered entry of ``groups``,
    for an input of ``shape``: the entry's strategy hook decides the rest."""
    entry = draw(st.sampled_from([e for e in registry.entries(*groups) if e.takes(len(shape))]))
    module, kw = entry.strategy(Drawer(draw, dtype), tuple(shape))
    if isinstance(module, nn.Module):
        module.to(dtype)
    return entry, module, kw


@st.composite
def registered_cases(draw, groups=("layer", "activation", "kernel", "loss")):
    """(entry, module, x, dy, dtype, compare keyword arguments) for the property test of
    every registered entry: a drawn dtype and shape, values with zeros and large
    magnitudes, and a random upstream gradient shaped like the output."""
    dtype = draw(dtypes)
    shape = draw(shapes())
    entry, module, kw = draw(registered_modules(shape, dtype, groups))
    x = draw(float_arrays(shape, dtype))
    out_shape = np.shape(module(x, kw["target"]) if entry.is_loss else module(x))
    return entry, module, x, draw(upstream(out_shape, dtype)), dtype, kw


@st.composite
def activations(draw, ndim):
    """A registered parameterless module that keeps its input's shape (groups
    "activation" and "kernel"), for an input of ``ndim`` axes."""
    _, module, _ = draw(registered_modules((1,) * ndim, groups=("activation", "kernel")))
    return module


@st.composite
def mlps(draw, in_shape, out_features):
    """Sequential(Flatten, [Linear, activation, Dropout?] * depth, Linear) for inputs (N, *in_shape);
    the activations are the registered elementwise ones (group "activation")."""
    r = np.random.default_rng(draw(seeds))
    width = int(np.prod(in_shape))
    layers = [nn.Flatten()]
    for _ in range(draw(st.integers(0, 2))):
        hidden = draw(sizes)
        layers.append(nn.Linear(width, hidden, bias=draw(st.booleans()), rng=r))
        layers.append(draw(registered_modules((1, hidden), np.float32, groups=("activation",)))[1])
        if draw(st.booleans()):
            layers.append(nn.Dropout(draw(st.sampled_from([0.0, 0.3, 0.7])), rng=r))
        width = hidden
    layers.append(nn.Linear(width, out_features, rng=r))
    return nn.Sequential(*layers)


# ----------------------------------------------------------------------------- losses

@st.composite
def logits_shapes(draw):
    """(C,) unbatched, (N, C), or (N, C, d1, ...): classes on axis 1, sizes down to 1."""
    C = draw(sizes)
    layout = draw(st.sampled_from(["unbatched", "batched", "spatial"]))
    if layout == "unbatched":
        return (C,)
    N = draw(sizes)
    extra = draw(leading_dims(max_dims=2, max_side=3)) if layout == "spatial" else ()
    return (N, C) + extra


def class_axis(shape):
    return 0 if len(shape) == 1 else 1


def batch_shape(shape):
    a = class_axis(shape)
    return shape[:a] + shape[a + 1:]


@st.composite
def prob_targets(draw, shape, dtype):
    """Class probabilities shaped like the logits: smooth rows, one-hot rows, or rows with exact zeros."""
    r = np.random.default_rng(draw(seeds))
    a = class_axis(shape)
    kind = draw(st.sampled_from(["smooth", "onehot", "sparse"]))
    z = np.exp(r.standard_normal(shape) * 2)
    if kind == "onehot":
        z = (z == z.max(axis=a, keepdims=True)).astype(float)
    elif kind == "sparse":
        z[r.random(shape) < 0.5] = 0.0
        empty = z.sum(axis=a, keepdims=True) == 0
        z[empty & (np.indices(shape)[a] == 0)] = 1.0      # a row left all zero gets its first class
    return (z / z.sum(axis=a, keepdims=True)).astype(dtype)


@st.composite
def ce_cases(draw, dtype, *, nll=False):
    """(loss kwargs, logits, target) for CrossEntropyLoss (or NLLLoss when ``nll``):
    any layout, index or probability targets, weight, ignore_index (hit by some
    or all targets), label_smoothing and each reduction."""
    shape = draw(logits_shapes())
    C = shape[class_axis(shape)]
    logits = draw(float_arrays(shape, dtype))
    kw = {"reduction": draw(st.sampled_from(["mean", "sum", "none"]))}
    if draw(st.booleans()):
        kw["weight"] = np.random.default_rng(draw(seeds)).uniform(0.1, 3.0, C).astype(dtype)
    if not nll and draw(st.booleans()):
        kw["label_smoothing"] = draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]))
    if not nll and draw(st.booleans()):
        return kw, logits, draw(prob_targets(shape, dtype))
    r = np.random.default_rng(draw(seeds))
    target = r.integers(0, C, batch_shape(shape))
    ignore = draw(st.sampled_from([None, -100, -1, 0]))
    if ignore is not None:
        kw["ignore_index"] = ignore
        hit = r.random(target.shape) < draw(st.sampled_from([0.3, 1.0]))
        target = np.where(hit, ignore, target)
    return kw, logits, target


# ---------------------------------------------------------------------------- helpers

def assert_close(a, b, dtype, K=1, scale=None):
    """|a - b| <= tolerance(dtype, K) * scale, scale defaulting to max(1, max|b|)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    if scale is None:
        scale = max(1.0, float(np.abs(b).max(initial=0.0)))
    err = float(np.abs(a - b).max(initial=0.0))
    assert err <= tolerance(dtype, K) * scale, f"error {err:.3e} > {tolerance(dtype, K) * scale:.3e}"


def frozen_strided(x):
    """The same values as ``x`` in a read-only, non-contiguous array."""
    big = np.zeros(x.shape + (2,), x.dtype)
    big[..., 0] = x
    view = big[..., 0]
    view.flags.writeable = False
    assert not view.flags.c_contiguous or x.size <= 1
    return view
