"""The registry entries of npnet's own layers and losses: for each, its torch twin,
its error bound, its rows in ``python -m reference`` and its strategy hook.

One block per class, in the order of the table. The vocabulary is
``reference.registry``'s; ``b`` in a bound is its namespace of the module's input,
output, upstream gradient and their error scales.
"""
import copy

import numpy as np
import torch

from npnet import nn

from . import registry
from .registry import Bound, LossBound, along_axis, axis_sum, chain, elementwise, moves_values
from .twins import GeneratorDropout, ReplayDropout, torch_dtype, twin

# ------------------------------------------------------------------- shared samples
#
# Seeds are fixed so that two runs of ``python -m reference`` print the same table.


def _rng(seed):
    return np.random.default_rng(seed)


def _normal(shape, seed, scale=1.0):
    return _rng(seed).standard_normal(shape) * scale


def _with_specials(x, seed, big=1e4):
    """Some exact zeros and some large magnitudes in a normal sample."""
    r = _rng(seed)
    x = x.copy()
    x[r.random(x.shape) < 0.15] = 0.0
    big_at = r.random(x.shape) < 0.1
    x[big_at] = r.choice([-big, big], size=int(big_at.sum())) * r.uniform(0.1, 1.0, int(big_at.sum()))
    return x


def _probs(shape, seed, axis=1):
    z = np.exp(_normal(shape, seed))
    return z / z.sum(axis=axis, keepdims=True)


def _x():
    return _normal((8, 12), 1)


def _x3():
    return _normal((4, 3, 5), 2)


def _big():
    return _rng(6).uniform(-1e4, 1e4, (8, 12))


def _weighted():
    """The table's MLP and Linear layers, drawn from one generator in this order (the
    MLP's Dropout keeps drawing from it, so its masks depend on the whole stream)."""
    r = _rng(0)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(15, 16, rng=r), nn.ReLU(), nn.Dropout(0.25, rng=r),
                        nn.Linear(16, 8, rng=r), nn.Tanh(), nn.Linear(8, 3, rng=r))
    linears = [nn.Linear(12, 6, rng=r, dtype=np.float64), nn.Linear(12, 6, bias=False, rng=r),
               nn.Linear(5, 4, rng=r), nn.Linear(12, 6, rng=r)]
    return mlp, linears


def _axis(d, shape):
    return d.integers(-len(shape), len(shape) - 1)


# --------------------------------------------------------------------------- Linear

def _linear_twin(m, replay):
    t = torch.nn.Linear(m.in_features, m.out_features, bias="bias" in m.params,
                        dtype=torch_dtype(m.params["weight"].dtype))
    t.load_state_dict({k: torch.from_numpy(v) for k, v in m.params.items()})
    return t


def _linear_backward(b):
    W = np.abs(b.mod.params["weight"])
    a2, x2 = b.a.reshape(-1, W.shape[0]), (b.ax + b.m).reshape(-1, W.shape[1])
    params = {"weight": a2.T @ x2}
    if "bias" in b.mod.params:
        params["bias"] = a2.sum(axis=0)
    return b.a @ W, params


def _linear_cases():
    _, (a, b, c, d) = _weighted()
    x = _x()
    return [
        ("Linear(12, 6)", a, x, {}),
        ("Linear(12, 6, bias=False)", b, x, {}),
        ("Linear(5, 4) on (4, 3, 5)", c, _x3(), {}),
        ("Linear(12, 6), zeros and 1e4 inputs", d, _with_specials(x, 7), {}),
    ]


def _linear_strategy(d, shape):
    layer = nn.Linear(shape[-1], d.integers(1, 6), bias=d.boolean(), rng=d.rng(), dtype=d.dtype)
    if d.boolean():     # drawn weights: exact zeros and large values
        layer.load_state_dict({k: d.array(v.shape, big=30.0) for k, v in layer.params.items()})
    return layer, {}


registry.register(
    nn.Linear, group="layer", twin=_linear_twin,
    # y = x W^T + b: each output sums in_features products; dW sums over the rows
    bound=Bound(lambda b: (b.ax + b.m) @ np.abs(b.mod.params["weight"]).T + np.abs(b.mod.params.get("bias", 0.0)),
                _linear_backward,
                K=lambda mod, x: max(mod.in_features, mod.out_features, x.size // max(mod.in_features, 1)) + 1),
    cases=_linear_cases, strategy=_linear_strategy)


# -------------------------------------------------------------------------- Flatten

def _flatten_strategy(d, shape):
    n = len(shape)
    start = d.integers(-n, n - 1)
    end = d.integers(start % n, n - 1) - d.choice([0, n])
    return nn.Flatten(start, end), {}


registry.register(
    nn.Flatten, group="layer", twin=lambda m, replay: torch.nn.Flatten(m.start_axis, m.end_axis),
    bound=moves_values(),
    cases=lambda: [("Flatten()", nn.Flatten(), _x3(), {}), ("Flatten(0, 1)", nn.Flatten(0, 1), _x3(), {})],
    strategy=_flatten_strategy)


# -------------------------------------------------------------------------- Unflatten

def _unflatten_strategy(d, shape):
    axis = d.integers(-len(shape), len(shape) - 1)
    n = shape[axis]
    sizes = [(n,), (1, n), (n, 1)] + ([(1, -1, 1)] if n else [])
    return nn.Unflatten(axis, sizes[d.integers(0, len(sizes) - 1)]), {}


registry.register(
    nn.Unflatten, group="layer", twin=lambda m, replay: torch.nn.Unflatten(m.axis, m.unflattened_size),
    bound=moves_values(),
    cases=lambda: [("Unflatten(1, (3, 5))", nn.Unflatten(1, (3, 5)), _x3().reshape(4, 15), {}),
                   ("Unflatten(-1, (1, -1))", nn.Unflatten(-1, (1, -1)), _x3(), {})],
    strategy=_unflatten_strategy)

# -------------------------------------------------------------------------- Dropout

def _dropout_twin(m, replay):
    if replay == "rng":
        return GeneratorDropout(m.p, copy.deepcopy(m.rng))
    mask = getattr(replay, "mask", None)
    return torch.nn.Dropout(m.p) if mask is None else ReplayDropout(m.p, mask)


registry.register(
    nn.Dropout, group="layer", twin=_dropout_twin,
    # y = mask * x, the mask already scaled by 1 / (1 - p)
    bound=elementwise(lambda b: b.m if b.mask is None else b.mask * (b.ax + b.m),
                      lambda b: b.mg if b.mask is None else b.mask * b.a),
    cases=lambda: [("Dropout(0.3), train", nn.Dropout(0.3, rng=_rng(8)), _x(), {}),
                   ("Dropout(0.3), eval", nn.Dropout(0.3, rng=_rng(8)), _x(), {"train": False})],
    strategy=lambda d, shape: (nn.Dropout(d.choice([0.0, 0.3, 0.5, 0.9, 1.0]), rng=d.rng()), {"train": d.boolean()}))


# ----------------------------------------------------------------------- Sequential

def _sequential_twin(m, replay):
    children = [replay] * len(m) if replay == "rng" else getattr(replay, "children", None) or [None] * len(m)
    return torch.nn.Sequential(*(twin(c, replay=r) for c, r in zip(m, children)))


def _sequential_strategy(d, shape):
    """One to three registered layers chained on the input's shape."""
    choices = [e for e in registry.entries("layer", "activation", "kernel") if e.cls is not nn.Sequential]
    modules = []
    for _ in range(d.integers(1, 3)):
        module, _ = d.choice([e for e in choices if e.takes(len(shape))]).strategy(d, shape)
        modules.append(module)
        shape = module(np.zeros(shape, d.dtype)).shape
        if not shape:
            break
    return nn.Sequential(*modules), {"train": d.boolean()}


registry.register(
    nn.Sequential, group="layer", twin=_sequential_twin, bound=chain(),
    cases=lambda: [("Sequential MLP (Flatten..Dropout..Tanh)", _weighted()[0], _x3(), {})],
    strategy=_sequential_strategy)


# ------------------------------------------------------------------- activations

registry.register(
    nn.ReLU, group="activation", twin=lambda m, replay: torch.nn.ReLU(),
    # exact and 1-Lipschitz; where x lies within rounding of 0 the gradient may flip: allow all of it
    bound=elementwise(lambda b: b.m, lambda b: b.mg + np.where(b.kink, b.ag / b.e, 0.0)),
    cases=lambda: [("ReLU, zeros and 1e4 inputs", nn.ReLU(), _with_specials(_x(), 9), {})],
    strategy=lambda d, shape: (nn.ReLU(), {}))

SLOPES = (0.0, 0.01, 0.2, 1.0, 3.0, -0.5)


def _leaky_backward(b):
    s = b.mod.negative_slope
    return max(1.0, abs(s)) * b.mg + abs(s) * b.ag + np.where(b.kink, abs(1 - s) * b.ag / b.e, 0.0)


registry.register(
    nn.LeakyReLU, group="activation", twin=lambda m, replay: torch.nn.LeakyReLU(m.negative_slope),
    bound=elementwise(lambda b: max(1.0, abs(b.mod.negative_slope)) * b.m + abs(b.mod.negative_slope) * b.ax,
                      _leaky_backward),
    cases=lambda: [("LeakyReLU(0.1), zeros and 1e4", nn.LeakyReLU(0.1), _with_specials(_x(), 10), {})],
    strategy=lambda d, shape: (nn.LeakyReLU(d.choice(SLOPES)), {}))

registry.register(
    nn.Sigmoid, group="activation", twin=lambda m, replay: torch.nn.Sigmoid(),
    # sigmoid' = y (1 - y) <= 1/4; the backward reads y, which carries forward error
    bound=elementwise(lambda b: np.abs(b.y) + b.m / 4,
                      lambda b: b.a * b.y * (1 - b.y) + b.ag * np.abs(1 - 2 * b.y) * b.m_out),
    cases=lambda: [("Sigmoid, inputs to +-1e4", nn.Sigmoid(), _with_specials(_x() * 5, 11), {})],
    strategy=lambda d, shape: (nn.Sigmoid(), {}))

registry.register(
    nn.Tanh, group="activation", twin=lambda m, replay: torch.nn.Tanh(),
    # tanh' = 1 - y^2 <= 1, read from y
    bound=elementwise(lambda b: np.abs(b.y) + b.m,
                      lambda b: b.a * (1 - b.y * b.y) + b.ag * 2 * np.abs(b.y) * b.m_out),
    cases=lambda: [("Tanh, inputs to +-1e4", nn.Tanh(), _with_specials(_x() * 2, 12), {})],
    strategy=lambda d, shape: (nn.Tanh(), {}))


# ----------------------------------------------------------------- softmax kernels

def _softmax_backward(b):
    a = b.mod.axis
    s = axis_sum(b.g * b.y, a)
    return b.y * (b.a + axis_sum(b.a * b.y, a)) + np.abs(b.g - s) * b.m_out + b.y * axis_sum(b.ag * b.m_out, a)


registry.register(
    nn.Softmax, group="kernel", twin=lambda m, replay: torch.nn.Softmax(dim=m.axis),
    # |J| = diag(y) + y y^T
    bound=along_axis(lambda b: b.y * (1 + b.m + axis_sum(b.y * b.m, b.mod.axis)), _softmax_backward),
    cases=lambda: [("softmax(axis=-1)", nn.Softmax(), _x(), {}),
                   ("softmax(axis=1) on (4, 3, 5)", nn.Softmax(axis=1), _x3(), {}),
                   ("softmax, logits to +-1e4", nn.Softmax(), _big(), {})],
    strategy=lambda d, shape: (nn.Softmax(axis=_axis(d, shape)), {}))


def _log_softmax_backward(b):
    a, p = b.mod.axis, np.exp(b.y)
    return b.a + p * axis_sum(b.a, a) + np.abs(axis_sum(b.g, a)) * p * b.m_out


registry.register(
    nn.LogSoftmax, group="kernel", twin=lambda m, replay: torch.nn.LogSoftmax(dim=m.axis),
    # |J| = I + 1 p^T
    bound=along_axis(lambda b: np.abs(b.y) + b.m + axis_sum(np.exp(b.y) * b.m, b.mod.axis), _log_softmax_backward),
    cases=lambda: [("log_softmax(axis=-1)", nn.LogSoftmax(), _x(), {}),
                   ("log_softmax(axis=0)", nn.LogSoftmax(axis=0), _x(), {}),
                   ("log_softmax, logits to +-1e4", nn.LogSoftmax(), _big(), {})],
    strategy=lambda d, shape: (nn.LogSoftmax(axis=_axis(d, shape)), {}))


# --------------------------------------------------------------------------- losses

def _weight(w):
    return None if w is None else torch.from_numpy(np.array(w))


def _class_loss_bound(loss, x, target, dloss, gx):
    """Scales of a cross-entropy or NLL loss and of its input gradient ``gx``, and K."""
    reduction = loss.reduction
    axis = 0 if x.ndim == 1 else 1
    C = x.shape[axis]
    M = x.size // max(C, 1)
    w = None if loss.weight is None else torch.from_numpy(np.abs(loss.weight))
    xt = torch.from_numpy(x)
    probs = target.dtype.kind == "f"
    tt = torch.from_numpy(target.astype(np.float64) if probs else target.astype(np.int64))
    if isinstance(loss, nn.CrossEntropyLoss):
        rows = torch.nn.functional.cross_entropy(xt, tt, weight=w, ignore_index=loss.ignore_index,
                                                 reduction="none", label_smoothing=loss.label_smoothing)
    else:
        rows = torch.nn.functional.nll_loss(xt, tt, weight=w, ignore_index=loss.ignore_index, reduction="none")
    rows = np.abs(rows.numpy())
    wabs = np.ones(C) if w is None else w.numpy()
    if probs:
        keep, denom = np.ones(rows.shape, bool), float(M)
    else:
        keep = target != loss.ignore_index
        denom = float(wabs[np.where(keep, target, 0)][keep].sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        inv = 1.0 / denom if denom else 0.0
    out = {"none": rows, "sum": rows.sum(), "mean": rows.sum() * inv}[reduction]
    K = M if reduction != "none" else 1
    if not isinstance(loss, nn.CrossEntropyLoss):
        return {"out": out, "dx": np.abs(gx)}, K
    # cross-entropy's gradient is scale * (p * S - T) with S = sum(T) <= w_max * sum|target row|
    scale = np.abs(dloss) * {"none": 1.0, "sum": 1.0, "mean": inv}[reduction] * keep
    S = wabs.max(initial=0.0) * (np.abs(target).sum(axis=axis) if probs else 1.0)
    L = torch.log_softmax(xt, axis).numpy()
    p = np.exp(L)
    per_row = np.expand_dims(scale * S, axis)
    return {"out": out, "dx": np.abs(gx) + per_row * p * (2 + np.abs(L))}, K + C


def _class_loss_strategy(d, shape, *, nll):
    """Any layout, index or probability targets, weight, ignore_index (hit by some or all
    targets), label_smoothing and each reduction; classes on axis 0 of a vector, else 1."""
    axis = 0 if len(shape) == 1 else 1
    C = shape[axis]
    kw = {"reduction": d.choice(["mean", "sum", "none"])}
    if d.boolean():
        kw["weight"] = d.rng().uniform(0.1, 3.0, C).astype(d.dtype)
    if not nll and d.boolean():
        kw["label_smoothing"] = d.choice([0.0, 0.1, 0.5, 1.0])
    r = d.rng()
    if not nll and d.boolean():
        z = np.exp(r.standard_normal(shape) * 2)
        if d.boolean():
            z = (z == z.max(axis=axis, keepdims=True)).astype(float)
        target = (z / z.sum(axis=axis, keepdims=True)).astype(d.dtype)
    else:
        target = r.integers(0, C, shape[:axis] + shape[axis + 1:])
        ignore = d.choice([None, -100, -1, 0])
        if ignore is not None:
            kw["ignore_index"] = ignore
            target = np.where(r.random(target.shape) < d.choice([0.3, 1.0]), ignore, target)
    cls = nn.NLLLoss if nll else nn.CrossEntropyLoss
    return cls(**kw), {"target": target}


def _ce_cases():
    ce, x, x3, big = nn.CrossEntropyLoss, _x(), _x3(), _big()
    t8 = _rng(3).integers(0, 12, 8)
    t_ign = t8.copy()
    t_ign[[1, 4]] = -1
    t3 = _rng(4).integers(0, 3, (4, 5))
    w12 = _rng(5).uniform(0.2, 2.0, 12)
    rows = [
        ("cross_entropy, indices, mean", ce(), x, t8),
        ("cross_entropy, indices, sum", ce(reduction="sum"), x, t8),
        ("cross_entropy, indices, none", ce(reduction="none"), x, t8),
        ("cross_entropy, probs, mean", ce(), x, _probs(x.shape, 13)),
        ("cross_entropy, probs, none, smoothing 0.2", ce(reduction="none", label_smoothing=0.2), x, _probs(x.shape, 14)),
        ("cross_entropy, probs, weight, sum", ce(weight=w12, reduction="sum"), x, _probs(x.shape, 15)),
        ("cross_entropy, weight", ce(weight=w12), x, t8),
        ("cross_entropy, ignore_index=-1", ce(ignore_index=-1), x, t_ign),
        ("cross_entropy, label_smoothing=0.1", ce(label_smoothing=0.1), x, t8),
        ("cross_entropy, weight+ignore+smoothing", ce(weight=w12, ignore_index=-1, label_smoothing=0.3), x, t_ign),
        ("cross_entropy, all ignored (nan, as torch)", ce(ignore_index=-1), x, np.full(8, -1)),
        ("cross_entropy, (N, C, d1), mean", ce(), x3, t3),
        ("cross_entropy, (N, C, d1), weight, none", ce(weight=w12[:3], reduction="none"), x3, t3),
        ("cross_entropy, (N, C, d1), probs", ce(label_smoothing=0.1), x3, _probs(x3.shape, 16)),
        ("cross_entropy, unbatched (C,), target ()", ce(), x[0], np.array(5)),
        ("cross_entropy, logits to +-1e4", ce(label_smoothing=0.1), big, t8),
    ]
    return [(name, loss, inp, {"target": t}) for name, loss, inp, t in rows]


def _nll_cases():
    x, x3 = _x(), _x3()
    t8 = _rng(3).integers(0, 12, 8)
    t_ign = t8.copy()
    t_ign[[1, 4]] = -1
    t3 = _rng(4).integers(0, 3, (4, 5))
    w12 = _rng(5).uniform(0.2, 2.0, 12)
    return [
        ("nll_loss, mean", nn.NLLLoss(), x, {"target": t8}),
        ("nll_loss, weight+ignore, sum", nn.NLLLoss(weight=w12, ignore_index=-1, reduction="sum"), x,
         {"target": t_ign}),
        ("nll_loss, (N, C, d1), none", nn.NLLLoss(reduction="none"), x3, {"target": t3}),
    ]


registry.register(
    nn.CrossEntropyLoss, group="loss",
    twin=lambda m, replay: torch.nn.CrossEntropyLoss(weight=_weight(m.weight), ignore_index=m.ignore_index,
                                                     reduction=m.reduction, label_smoothing=m.label_smoothing),
    bound=LossBound(_class_loss_bound), cases=_ce_cases,
    strategy=lambda d, shape: _class_loss_strategy(d, shape, nll=False))

registry.register(
    nn.NLLLoss, group="loss",
    twin=lambda m, replay: torch.nn.NLLLoss(weight=_weight(m.weight), ignore_index=m.ignore_index,
                                            reduction=m.reduction),
    bound=LossBound(_class_loss_bound), cases=_nll_cases,
    strategy=lambda d, shape: _class_loss_strategy(d, shape, nll=True))


def _mse_bound(loss, x, target, dloss, gx):
    d2 = (x - target.astype(np.float64)) ** 2
    out = {"none": d2, "sum": d2.sum(), "mean": d2.sum() / max(d2.size, 1)}[loss.reduction]
    return {"out": out, "dx": np.abs(gx)}, (1 if loss.reduction == "none" else x.size)


registry.register(
    nn.MSELoss, group="loss", twin=lambda m, replay: torch.nn.MSELoss(reduction=m.reduction),
    bound=LossBound(_mse_bound),
    cases=lambda: [("mse_loss, mean", nn.MSELoss(), _x(), {"target": _normal((8, 12), 17)}),
                   ("mse_loss, sum", nn.MSELoss(reduction="sum"), _x3(), {"target": _normal((4, 3, 5), 18)}),
                   ("mse_loss, none", nn.MSELoss(reduction="none"), _x(), {"target": _normal((8, 12), 19)})],
    strategy=lambda d, shape: (nn.MSELoss(d.choice(["mean", "sum", "none"])), {"target": d.array(shape)}))


# -------------------------------------------------------------------- normalization
#
# x_hat = (x - mean) / s, s = sqrt(var + eps), over n values (a channel's, or a sample's
# normalized axes). The scales: x - mean errs by about eps (|x| + mean|x|); var by
# eps Q with Q = mean((|x| + mean|x|)^2), so 1 / s by eps Q / (2 (var + eps)), relative;
# x_hat's error scale is then xe = (|x| + mean|x| + m) / s + |x_hat| Q / (var + eps).

def _norm_stats(b, axes, train, mean=None, var=None):
    """|x_hat|, its error scale xe, 1 / s and the relative error scale of s, for statistics over ``axes`` (the batch's in
    training, else ``mean``/``var``, the running ones)."""
    x = b.x
    mu_abs = np.mean(b.ax + b.m, axis=axes, keepdims=True) if x.size else np.zeros((1,) * x.ndim)
    if train:
        mean, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
        Q = np.mean((b.ax + mu_abs + b.m) ** 2, axis=axes, keepdims=True)
    else:
        mu_abs = np.abs(mean)
        Q = np.zeros_like(var)
    s = np.sqrt(var + b.mod.eps)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(s > 0, 1 / s, 0.0)
        r = np.where(s > 0, Q * inv * inv, 0.0)     # the relative error scale of s
        xh = np.abs(x - mean) * inv
        xe = (b.ax + mu_abs + b.m) * inv + xh * r
    return xh, xe, inv, r


def _bn_axes(x):
    return (0,) + tuple(range(2, x.ndim))


def _bn_view(mod, name, x):
    """A (C,) parameter or buffer shaped to broadcast along axis 1 (1 when there is none)."""
    v = {**mod.params, **mod.buffers}.get(name)
    return 1.0 if v is None else np.abs(v).reshape((1, -1) + (1,) * (x.ndim - 2))


def _bn_batch(b):
    return b.train or not b.mod.track_running_stats


def _bn_stats(b):
    if _bn_batch(b):
        return _norm_stats(b, _bn_axes(b.x), True)
    shape = (1, -1) + (1,) * (b.x.ndim - 2)
    return _norm_stats(b, _bn_axes(b.x), False, b.mod.buffers["running_mean"].reshape(shape),
                       b.mod.buffers["running_var"].reshape(shape))


def _bn_forward(b):
    xh, xe, _, _ = _bn_stats(b)
    return _bn_view(b.mod, "weight", b.x) * (xh + xe) + _bn_view(b.mod, "bias", b.x)


def _bn_backward(b):
    xh, xe, inv, r = _bn_stats(b)
    axes = _bn_axes(b.x)
    k = _bn_view(b.mod, "weight", b.x) * inv
    A, X = b.a, xh + xe
    params = {}
    if "weight" in b.mod.params:
        params["weight"] = (A * X).sum(axis=axes)
    if "bias" in b.mod.params:
        params["bias"] = A.sum(axis=axes)
    if not _bn_batch(b) or not b.x.size:
        return k * A * 2, params
    mean = lambda v: v.mean(axis=axes, keepdims=True)   # noqa: E731
    return k * (A + mean(A) + 2 * X * mean(A * X)) * (1 + r), params


def _bn_buffers(b):
    mod = b.mod
    if not (b.train and mod.track_running_stats):
        return {}
    axes, x = _bn_axes(b.x), b.x
    n = x.size // max(x.shape[1], 1)
    f = mod.momentum if mod.momentum is not None else 1 / (int(mod.buffers["num_batches_tracked"]) + 1)
    mu_abs = np.mean(b.ax + b.m, axis=axes) if x.size else 0.0
    Q = np.mean((b.ax + mu_abs.reshape((1, -1) + (1,) * (x.ndim - 2)) + b.m) ** 2, axis=axes) if x.size else 0.0
    rm, rv = np.abs(mod.buffers["running_mean"]), np.abs(mod.buffers["running_var"])
    return {"running_mean": (1 - f) * rm + f * mu_abs,
            "running_var": (1 - f) * rv + f * Q * n / max(n - 1, 1)}


def _float_dtype_of(m):
    """The dtype of a module's float parameters or buffers (float64 when it holds none)."""
    return next((v.dtype for v in m.state_dict().values() if v.dtype.kind == "f"), np.dtype(np.float64))


def _bn_twin(m, replay):
    cls = torch.nn.BatchNorm2d if isinstance(m, nn.BatchNorm2d) else torch.nn.BatchNorm1d
    t = cls(m.num_features, eps=m.eps, momentum=m.momentum, affine=m.affine, bias=m.bias,
            track_running_stats=m.track_running_stats, dtype=torch_dtype(_float_dtype_of(m)))
    t.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in m.state_dict().items()})
    return t


def _bn_module(cls, d, C):
    m = cls(C, eps=d.choice([1e-5, 1e-3, 1.0]), momentum=d.choice([0.1, 0.0, 1.0, 0.5, None]),
            affine=d.boolean(), track_running_stats=d.boolean(), bias=d.boolean(), dtype=d.dtype)
    if m.track_running_stats:   # a few steps already taken: running statistics away from 0 and 1
        m.buffers["running_mean"][...] = d.array((C,), big=30.0)
        m.buffers["running_var"][...] = np.abs(d.array((C,), big=30.0, zeros=False)) + 0.5
        m.buffers["num_batches_tracked"][...] = d.integers(0, 5)
    if m.params:
        m.load_state_dict({**m.state_dict(), **{k: d.array(v.shape, big=30.0) for k, v in m.params.items()}})
    return m


def _bn_strategy(d, shape, cls):
    """BatchNorm on the input's shape: BatchNorm1d takes 2-d and 3-d inputs, BatchNorm2d 4-d (a
    longer shape is flattened to fit first); a 1-d input, which no BatchNorm takes, gets a LayerNorm."""
    if len(shape) == 1:
        return nn.LayerNorm(shape[-1], dtype=d.dtype), {}
    if cls is nn.BatchNorm2d and len(shape) < 4:
        cls = nn.BatchNorm1d
    ndim = 4 if cls is nn.BatchNorm2d else 3
    m = _bn_module(cls, d, shape[1])
    if len(shape) > ndim:
        m = nn.Sequential(nn.Flatten(ndim - 1, -1), m)
    n = int(np.prod(shape)) // shape[1]
    train = d.boolean() and n > 1
    if n <= 1 and not (m[-1] if isinstance(m, nn.Sequential) else m).track_running_stats:
        return nn.LayerNorm(shape[-1], dtype=d.dtype), {}   # one value per channel: only running statistics normalize
    return m, {"train": train}


def _bn_cases():
    r = _rng(20)
    x1, x3 = _normal((8, 4), 21) * 3 + 1, _normal((4, 3, 5), 22)
    x4 = _normal((4, 3, 5, 2), 23) * 2 - 1
    stepped = nn.BatchNorm2d(3, momentum=None, dtype=np.float64)
    stepped.buffers["running_mean"][...] = r.standard_normal(3)
    stepped.buffers["running_var"][...] = r.uniform(0.5, 2, 3)
    stepped.buffers["num_batches_tracked"][...] = 4
    stepped.params["weight"][...] = r.standard_normal(3)
    stepped.params["bias"][...] = r.standard_normal(3)
    return [
        ("BatchNorm1d(4), train", nn.BatchNorm1d(4), x1, {}),
        ("BatchNorm1d(4), eval", _stepped_1d(r), x1, {"train": False}),
        ("BatchNorm1d(3) on (N, C, L), affine=False", nn.BatchNorm1d(3, affine=False), x3, {}),
        ("BatchNorm1d(3), track_running_stats=False, eval", nn.BatchNorm1d(3, track_running_stats=False), x3,
         {"train": False}),
        ("BatchNorm2d(3), momentum=None, train", stepped, x4, {}),
        ("BatchNorm2d(3), momentum=None, eval", stepped, x4, {"train": False}),
        ("BatchNorm2d(3), zeros and 1e4 inputs", nn.BatchNorm2d(3), _with_specials(x4, 24), {}),
    ]


def _stepped_1d(r):
    m = nn.BatchNorm1d(4, dtype=np.float64)
    m.buffers["running_mean"][...] = r.standard_normal(4)
    m.buffers["running_var"][...] = r.uniform(0.5, 2, 4)
    return m


_bn_bound = Bound(_bn_forward, _bn_backward, K=lambda mod, x: x.size // max(x.shape[1], 1) + 1, buffers=_bn_buffers)

registry.register(
    nn.BatchNorm1d, group="layer", twin=_bn_twin, bound=_bn_bound,
    cases=lambda: [c for c in _bn_cases() if "BatchNorm1d" in c[0]],
    strategy=lambda d, shape: _bn_strategy(d, shape, nn.BatchNorm1d))

registry.register(
    nn.BatchNorm2d, group="layer", twin=_bn_twin, bound=_bn_bound,
    cases=lambda: [c for c in _bn_cases() if "BatchNorm2d" in c[0]],
    strategy=lambda d, shape: _bn_strategy(d, shape, nn.BatchNorm2d))


def _ln_axes(b):
    return tuple(range(b.x.ndim - len(b.mod.normalized_shape), b.x.ndim))


def _ln_forward(b):
    xh, xe, _, _ = _norm_stats(b, _ln_axes(b), True)
    return np.abs(b.mod.params.get("weight", 1.0)) * (xh + xe) + np.abs(b.mod.params.get("bias", 0.0))


def _ln_backward(b):
    axes = _ln_axes(b)
    lead = tuple(range(b.x.ndim - len(axes)))
    xh, xe, inv, r = _norm_stats(b, axes, True)
    A, X = b.a * np.abs(b.mod.params.get("weight", 1.0)), xh + xe
    params = {}
    if "weight" in b.mod.params:
        params["weight"] = (b.a * X).sum(axis=lead)
    if "bias" in b.mod.params:
        params["bias"] = b.a.sum(axis=lead)
    mean = lambda v: v.mean(axis=axes, keepdims=True) if v.size else v   # noqa: E731
    return inv * (A + mean(A) + 2 * X * mean(A * X)) * (1 + r), params


def _ln_twin(m, replay):
    t = torch.nn.LayerNorm(m.normalized_shape, eps=m.eps, elementwise_affine=m.elementwise_affine, bias=m.bias,
                           dtype=torch_dtype(_float_dtype_of(m)))
    t.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in m.params.items()})
    return t


def _ln_strategy(d, shape):
    D = d.integers(1, len(shape))
    m = nn.LayerNorm(shape[len(shape) - D:], eps=d.choice([1e-5, 1e-3, 1.0]),
                     elementwise_affine=d.boolean(), bias=d.boolean(), dtype=d.dtype)
    if m.params:
        m.load_state_dict({k: d.array(v.shape, big=30.0) for k, v in m.params.items()})
    return m, {}


registry.register(
    nn.LayerNorm, group="layer", twin=_ln_twin,
    bound=Bound(_ln_forward, _ln_backward, K=lambda mod, x: int(np.prod(mod.normalized_shape)) + x.size // max(
        int(np.prod(mod.normalized_shape)), 1) + 1),
    cases=lambda: [("LayerNorm(12)", nn.LayerNorm(12, dtype=np.float64), _x(), {}),
                   ("LayerNorm((3, 5)), bias=False", nn.LayerNorm((3, 5), bias=False), _x3(), {}),
                   ("LayerNorm(12), zeros and 1e4 inputs", nn.LayerNorm(12), _with_specials(_x(), 25), {})],
    strategy=_ln_strategy)
# ----------------------------------------------------------------- GELU and pooling

_KBETA, _KAPPA = np.sqrt(2 / np.pi), 0.044715


def _gelu_backward(b):
    # |gelu'| <= 1.13 and |gelu''| <= 0.8 (both forms); the tanh form's derivative reads
    # 1 - tanh^2 times x (1 + 3 kappa x^2), whose rounding grows with |x|^3
    extra = 0.0
    if b.mod.approximate == "tanh":
        extra = b.a * b.ax * _KBETA * (1 + 3 * _KAPPA * b.x * b.x)
    return 1.2 * b.a + extra + b.ag * (b.m + b.m_out)


registry.register(
    nn.GELU, group="activation", twin=lambda m, replay: torch.nn.GELU(approximate=m.approximate),
    # y = x Phi(x): 1 + erf(x / sqrt 2) cancels for x < 0, leaving an error of about eps |x|
    bound=elementwise(lambda b: np.abs(b.y) + b.ax + 1.2 * b.m, _gelu_backward),
    cases=lambda: [("GELU", nn.GELU(), _with_specials(_x() * 3, 20, big=30.0), {}),
                   ("GELU(approximate='tanh')", nn.GELU("tanh"), _with_specials(_x() * 3, 21, big=30.0), {})],
    strategy=lambda d, shape: (nn.GELU(d.choice(["none", "tanh"])), {}))


def _pool_twin(m, replay=None):
    if isinstance(m, nn.MaxPool2d):
        return torch.nn.MaxPool2d(m.kernel_size, m.stride, m.padding, m.dilation, ceil_mode=m.ceil_mode)
    return torch.nn.AvgPool2d(m.kernel_size, m.stride, m.padding, ceil_mode=m.ceil_mode,
                              count_include_pad=m.count_include_pad)


def _windows_of(m, x, y):
    """Each window's values of ``x`` (N*C, kh*kw, out_h*out_w), padded with -inf as far as the
    windows reach (ceil_mode's last ones included), and the fold back to x's shape."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = m.kernel_size, m.stride, m.padding, m.dilation
    H, W = x.shape[-2:]
    oh, ow = y.shape[-2:]
    extra = (max(0, (oh - 1) * sh + dh * (kh - 1) + 1 - H - 2 * ph), max(0, (ow - 1) * sw + dw * (kw - 1) + 1 - W - 2 * pw))
    size = (H + 2 * ph + extra[0], W + 2 * pw + extra[1])
    args = dict(kernel_size=(kh, kw), dilation=(dh, dw), stride=(sh, sw))

    def unfold(a, fill):
        t = torch.from_numpy(np.ascontiguousarray(a)).reshape(-1, 1, H, W)
        t = torch.nn.functional.pad(t, (pw, pw + extra[1], ph, ph + extra[0]), value=fill)
        return torch.nn.functional.unfold(t, **args)

    def fold(cols):
        full = torch.nn.functional.fold(cols, size, **args)
        return full[..., ph:ph + H, pw:pw + W].reshape(x.shape).numpy()

    return unfold, fold


def _max_pool_backward(b):
    """The gradient goes where torch's went (a scatter of |g| + mg); where the input's error
    could reorder a window's near-maxima, any of them may take it: allow all of it there."""
    m_dx = _vjp(_pool_twin(b.mod), b.x, b.a)
    unfold, fold = _windows_of(b.mod, b.x, b.y)
    cols = unfold(b.x, -np.inf)                                   # (N*C, k, L)
    top = torch.from_numpy(b.y.reshape(cols.shape[0], 1, -1))
    width = torch.from_numpy(2 * b.e * b.m_out.reshape(cols.shape[0], 1, -1))
    near = (cols >= top - width) & (width > 0)
    unsure = near.sum(dim=1, keepdim=True) > 1
    allow = torch.from_numpy(b.a.reshape(cols.shape[0], 1, -1) / b.e)
    return m_dx + fold((near & unsure) * allow)


def _vjp(tw, x, g):
    xt = torch.from_numpy(x).requires_grad_()
    (gx,) = torch.autograd.grad(tw(xt), xt, torch.from_numpy(g))
    return gx.numpy()


def _pool_run(m, a):
    with torch.no_grad():
        return _pool_twin(m)(torch.from_numpy(a)).numpy()


def _pool_strategy(cls, d, shape):
    """A pool for an input (N, C, H, W) or (C, H, W): kernels up to the input, padding up to
    half the kernel, dilation (max pool; with no padding, so no window lies all in padding)."""
    H, W = shape[-2:]
    k = (d.integers(1, H), d.integers(1, W))
    p = (d.integers(0, k[0] // 2), d.integers(0, k[1] // 2))
    kw = dict(stride=d.choice([None, 1, 2, 3, (1, 2)]), padding=p if d.boolean() else p[0] if p[0] == p[1] else p,
              ceil_mode=d.boolean())
    if cls is nn.MaxPool2d:
        if p == (0, 0):
            kw["dilation"] = tuple(d.integers(1, max(1, (n - 1) // (kk - 1) if kk > 1 else 3)) for n, kk in zip((H, W), k))
    else:
        kw["count_include_pad"] = d.boolean()
    return cls(k if k[0] != k[1] else k[0], **kw), {}


def _pool_cases(cls):
    x = _normal((2, 3, 7, 6), 22)
    ties = np.round(_normal((2, 2, 6, 6), 23))           # many equal values: the first maximum takes the gradient
    rows = [(f"{cls.__name__}(2)", cls(2), x),
            (f"{cls.__name__}(3, stride=2, padding=1, ceil_mode=True)", cls(3, 2, 1, ceil_mode=True), x),
            (f"{cls.__name__}((2, 3), stride=1), unbatched", cls((2, 3), stride=1), x[0])]
    if cls is nn.MaxPool2d:
        rows += [("MaxPool2d(2), ties", cls(2), ties), ("MaxPool2d(2, dilation=2)", cls(2, dilation=2), x)]
    else:
        rows += [("AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)",
                  cls(3, 2, 1, ceil_mode=True, count_include_pad=False), x)]
    return [(name, m, inp, {}) for name, m, inp in rows]


registry.register(
    nn.MaxPool2d, group="layer", twin=_pool_twin, ndims=(3, 4),
    # y = a max: exact, off by at most the largest input error in its window
    bound=Bound(lambda b: _pool_run(b.mod, b.m), _max_pool_backward, K=1),
    cases=lambda: _pool_cases(nn.MaxPool2d), strategy=lambda d, shape: _pool_strategy(nn.MaxPool2d, d, shape))

registry.register(
    nn.AvgPool2d, group="layer", twin=_pool_twin, ndims=(3, 4),
    # y = a mean of kh * kw terms; its backward spreads g / count back over each window
    bound=Bound(lambda b: _pool_run(b.mod, b.ax + b.m), lambda b: _vjp(_pool_twin(b.mod), b.x, b.a),
                K=lambda mod, x: mod.kernel_size[0] * mod.kernel_size[1]),
    cases=lambda: _pool_cases(nn.AvgPool2d), strategy=lambda d, shape: _pool_strategy(nn.AvgPool2d, d, shape))
# -------------------------------------------------------------------------- Conv2d

def _conv_twin(m, replay):
    t = torch.nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride, padding=m.padding,
                        dilation=m.dilation, groups=m.groups, bias="bias" in m.params,
                        dtype=torch_dtype(m.params["weight"].dtype))
    t.load_state_dict({k: torch.from_numpy(v) for k, v in m.params.items()})
    return t


def _conv_abs(mod, x, g=None):
    """The convolution of |x| with |W| (plus |b|); with ``g``, also the input and weight
    gradients of that convolution for upstream ``g`` (torch autograd, float64)."""
    W = torch.from_numpy(np.abs(mod.params["weight"]))
    xt = torch.from_numpy(x)
    if g is not None:
        xt, W = xt.requires_grad_(), W.requires_grad_()
    b = mod.params.get("bias")
    y = torch.nn.functional.conv2d(xt, W, None if b is None else torch.from_numpy(np.abs(b)), mod.stride,
                                   mod.padding, mod.dilation, mod.groups)
    if g is None:
        return y.detach().numpy()
    gx, gw = torch.autograd.grad(y, [xt, W], torch.from_numpy(g))
    return gx.numpy(), gw.numpy()


def _conv_backward(b):
    # dX = dY sent back through |W|; dW = dY correlated with the input, each with its error
    m_dx, m_w = _conv_abs(b.mod, b.ax + b.m, b.a)
    params = {"weight": m_w}
    if "bias" in b.mod.params:
        params["bias"] = b.a.sum(axis=tuple(a for a in range(b.a.ndim) if a != b.a.ndim - 3))
    return m_dx, params


def _conv_k(mod, x):
    kH, kW = mod.kernel_size
    per_out = mod.in_channels // mod.groups * kH * kW             # terms of one output
    per_in = mod.out_channels // mod.groups * kH * kW             # terms of one input gradient
    y = _conv_abs(mod, x)
    positions = y.size // max(y.shape[-3], 1) if y.size else 0      # N oH oW: the terms of one dW entry
    return max(per_out, per_in, positions) + 1


def _conv_cases():
    r = _rng(20)
    x = _normal((2, 4, 7, 6), 21)
    rows = [
        ("Conv2d(4, 6, 3)", nn.Conv2d(4, 6, 3, rng=r), x),
        ("Conv2d(4, 6, (3, 2), stride 2, padding 1, dilation 2, groups 2)",
         nn.Conv2d(4, 6, (3, 2), stride=2, padding=1, dilation=2, groups=2, rng=r), x),
        ("Conv2d(4, 2, 4, padding='same', bias=False)", nn.Conv2d(4, 2, 4, padding="same", bias=False, rng=r), x),
        ("Conv2d(4, 3, (7, 6)), kernel as large as the input", nn.Conv2d(4, 3, (7, 6), rng=r), x),
        ("Conv2d(4, 5, 2) on unbatched (4, 7, 6)", nn.Conv2d(4, 5, 2, rng=r), x[0]),
        ("Conv2d(4, 6, 3, padding=1), zeros and 1e4 inputs", nn.Conv2d(4, 6, 3, padding=1, rng=r),
         _with_specials(x, 22)),
    ]
    return [(name, m, inp, {}) for name, m, inp in rows]


def _conv_strategy(d, shape):
    """A Conv2d for a (C, H, W) or (N, C, H, W) input: any stride, padding (ints, pairs,
    "same", "valid"), dilation, groups and kernel that fits the padded input."""
    C, H, W = shape[-3:]
    groups = d.choice([g for g in range(1, C + 1) if C % g == 0])
    out_channels = groups * d.integers(1, 3)
    dilation = (d.integers(1, 3), d.integers(1, 3))
    padding = d.choice(["int", "pair", "same", "valid"])
    stride = (1, 1) if padding == "same" else (d.integers(1, 3), d.integers(1, 3))
    if padding == "int":
        padding = d.integers(0, 2)
    elif padding == "pair":
        padding = (d.integers(0, 2), d.integers(0, 2))
    pads = (0, 0) if isinstance(padding, str) else padding if isinstance(padding, tuple) else (padding, padding)
    # the largest kernel whose dilated extent fits the padded input ("same" fits any kernel: take up to H + 1)
    kernel = tuple(d.integers(1, size + 1 if padding == "same" else (size + 2 * p - 1) // dil + 1)
                   for size, p, dil in zip((H, W), pads, dilation))
    layer = nn.Conv2d(C, out_channels, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups,
                      bias=d.boolean(), rng=d.rng(), dtype=d.dtype)
    if d.boolean():     # drawn weights: exact zeros and large values
        layer.load_state_dict({k: d.array(v.shape, big=30.0) for k, v in layer.params.items()})
    return layer, {}


registry.register(
    nn.Conv2d, group="layer", twin=_conv_twin, ndims=(3, 4),
    # y = b + sum over C/G kH kW taps of W x: Linear's bound, tap by tap
    bound=Bound(lambda b: _conv_abs(b.mod, b.ax + b.m), _conv_backward, K=_conv_k),
    cases=_conv_cases, strategy=_conv_strategy)
