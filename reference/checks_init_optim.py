"""Rows for ``python -m reference``: npnet.nn.init and npnet.optim against torch.

``init_rows()``: for each initializer, npnet's and torch's samples (float64,
256 x 1024, fixed seeds) compared by mean and std relative to the theoretical
std (tolerance 5 standard errors of a difference), how far npnet's samples
exceed the theoretical bound, and a Kolmogorov-Smirnov statistic against the
theoretical CDF (tolerance 1.63 / sqrt(n), alpha = 0.01). Deterministic fills,
fans and gains must match torch exactly.

``optim_rows()``: for each optimizer configuration, with no schedule, StepLR and
CosineAnnealingLR, the largest parameter difference from torch.optim over 50
steps of identical random gradients, relative to the parameters' scale.
"""
import math

import numpy as np
import torch

from npnet import optim
from npnet.nn import init

from .report import Row

SHAPE = (256, 1024)
N = SHAPE[0] * SHAPE[1]
MOMENT_TOL = 5 * math.sqrt(2.0 / N)  # 5 SE of a difference of two sample means (in units of std)
KS_TOL = 1.63 / math.sqrt(N)

_erf = np.frompyfunc(math.erf, 1, 1)


def _normal_cdf(x, mean, std):
    z = (np.asarray(x, dtype=np.float64) - mean) / (std * math.sqrt(2.0))
    return 0.5 * (1.0 + np.asarray(_erf(z), dtype=np.float64))


def _ks(samples, cdf):
    x = np.sort(np.asarray(samples, dtype=np.float64).ravel())
    n = x.size
    F = cdf(x)
    i = np.arange(1, n + 1)
    return max(float(np.max(i / n - F)), float(np.max(F - (i - 1) / n)))


def _theory(name, kwargs):
    """(cdf, std, bound or None) of the distribution ``name(**kwargs)`` should sample on SHAPE."""
    fan_in, fan_out = SHAPE[1], SHAPE[0]
    if name == "uniform_":
        a, b = kwargs["a"], kwargs["b"]
        return (lambda x: np.clip((x - a) / (b - a), 0, 1)), (b - a) / math.sqrt(12), max(abs(a), abs(b))
    if name == "normal_":
        m, s = kwargs["mean"], kwargs["std"]
        return (lambda x: _normal_cdf(x, m, s)), s, None
    if name == "trunc_normal_":
        m, s, a, b = kwargs["mean"], kwargs["std"], kwargs["a"], kwargs["b"]
        lo, hi = _normal_cdf(a, m, s), _normal_cdf(b, m, s)
        return (lambda x: np.clip((_normal_cdf(x, m, s) - lo) / (hi - lo), 0, 1)), s, max(abs(a), abs(b))
    if name.startswith("xavier"):
        std = kwargs.get("gain", 1.0) * math.sqrt(2.0 / (fan_in + fan_out))
    else:
        fan = fan_in if kwargs.get("mode", "fan_in") == "fan_in" else fan_out
        std = init.calculate_gain(kwargs.get("nonlinearity", "leaky_relu"), kwargs.get("a", 0)) / math.sqrt(fan)
    if name.endswith("uniform_"):
        bound = math.sqrt(3.0) * std
        return (lambda x: np.clip((x + bound) / (2 * bound), 0, 1)), std, bound
    return (lambda x: _normal_cdf(x, 0.0, std)), std, None


INIT_CASES = [
    ("uniform_", {"a": -0.5, "b": 0.25}, "uniform_(-0.5, 0.25)"),
    ("normal_", {"mean": 0.1, "std": 0.02}, "normal_(0.1, 0.02)"),
    ("trunc_normal_", {"mean": 0.0, "std": 0.02, "a": -0.04, "b": 0.04}, "trunc_normal_(0, .02, [-.04, .04])"),
    ("trunc_normal_", {"mean": 0.0, "std": 1.0, "a": 1.0, "b": 3.0}, "trunc_normal_(0, 1, [1, 3])"),
    ("xavier_uniform_", {"gain": 1.0}, "xavier_uniform_"),
    ("xavier_normal_", {"gain": 5.0 / 3}, "xavier_normal_(gain=5/3)"),
    ("kaiming_uniform_", {"a": math.sqrt(5)}, "kaiming_uniform_(a=sqrt 5) [Linear]"),
    ("kaiming_uniform_", {"mode": "fan_out", "nonlinearity": "relu"}, "kaiming_uniform_(fan_out, relu)"),
    ("kaiming_normal_", {"nonlinearity": "relu"}, "kaiming_normal_(fan_in, relu)"),
    ("kaiming_normal_", {"a": 0.2, "mode": "fan_out", "nonlinearity": "leaky_relu"}, "kaiming_normal_(fan_out, leaky .2)"),
]


def _label(kind, hp):
    """A short name for an optimizer configuration."""
    short = {"momentum": "mom", "weight_decay": "wd"}
    parts = [f"{short.get(k, k)}={v:g}" if isinstance(v, float) else k for k, v in hp.items() if v is not False]
    return f"{kind}({','.join(parts)})"


def init_rows(seed=0):
    """One moment row and one KS row per random initializer, then exact rows."""
    rows = []
    for i, (name, kwargs, label) in enumerate(INIT_CASES):
        W = getattr(init, name)(np.empty(SHAPE), **kwargs, rng=np.random.default_rng(seed + i))
        g = torch.Generator().manual_seed(seed + i)
        T = getattr(torch.nn.init, name)(torch.empty(SHAPE, dtype=torch.float64), **kwargs, generator=g).numpy()
        cdf, std, bound = _theory(name, kwargs)
        if name == "trunc_normal_":
            std = float(T.std())  # the truncated std; torch's sample is as good a yardstick as any
        errors = {
            "mean_rel": abs(float(W.mean()) - float(T.mean())) / std,
            "std_rel": abs(float(W.std()) - float(T.std())) / std,
        }
        if bound is not None:
            errors["bound_excess"] = max(0.0, float(np.abs(W).max()) - bound) / bound
        rows.append(Row("init", label, "float64", errors, MOMENT_TOL, max(errors.values()) <= MOMENT_TOL, "vs torch"))
        ks = _ks(W, cdf)
        rows.append(Row("init", label + " KS", "float64", {"ks": ks}, KS_TOL, ks <= KS_TOL, "vs theory"))

    for gain in (1.0, 2.0):
        for shape in ((64, 256), (256, 64), (32, 8, 3, 3)):
            W = init.orthogonal_(np.empty(shape), gain=gain, rng=np.random.default_rng(seed)).reshape(shape[0], -1)
            T = torch.nn.init.orthogonal_(torch.empty(shape, dtype=torch.float64), gain=gain).reshape(shape[0], -1).numpy()
            wide = W.shape[0] <= W.shape[1]
            eye = gain**2 * np.eye(min(W.shape))
            errors = {
                "gram": float(np.abs((W @ W.T if wide else W.T @ W) - eye).max()) / gain**2,
                "gram_torch": float(np.abs((T @ T.T if wide else T.T @ T) - eye).max()) / gain**2,
            }
            ok = max(errors.values()) <= 1e-12
            rows.append(Row("init", f"orthogonal_(gain={gain:g}) {shape}", "float64", errors, 1e-12, ok))

    worst = 0.0
    for shape in ((3, 5), (5, 3), (4, 4)):
        for name, args in (("eye_", ()), ("zeros_", ()), ("ones_", ()), ("constant_", (0.3,))):
            W = getattr(init, name)(np.full(shape, np.nan), *args)
            T = getattr(torch.nn.init, name)(torch.empty(shape, dtype=torch.float64), *args).numpy()
            worst = max(worst, float(np.abs(W - T).max()))
    for shape, groups in (((4, 4, 3), 1), ((6, 2, 3, 3), 2), ((3, 5, 2, 3, 3), 1)):
        W = init.dirac_(np.full(shape, np.nan), groups=groups)
        T = torch.nn.init.dirac_(torch.empty(shape, dtype=torch.float64), groups=groups).numpy()
        worst = max(worst, float(np.abs(W - T).max()))
    rows.append(Row("init", "eye_, zeros_, ones_, constant_, dirac_", "float64", {"max_abs": worst}, 0.0, worst == 0.0))

    gains = 0.0
    for nl in ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
               "sigmoid", "tanh", "relu", "leaky_relu", "selu"):
        for param in (None, 0, 0.2, 1, -0.5):
            gains = max(gains, abs(init.calculate_gain(nl, param) - torch.nn.init.calculate_gain(nl, param)))
    fans = 0
    for shape in ((3, 4), (5, 2, 3), (8, 4, 3, 3), (2, 3, 4, 5, 6)):
        ours = init.calculate_fan_in_and_fan_out(np.empty(shape))
        theirs = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
        fans = max(fans, abs(ours[0] - theirs[0]), abs(ours[1] - theirs[1]))
    errors = {"gain": gains, "fan": float(fans)}
    rows.append(Row("init", "calculate_gain, fan_in/fan_out", "-", errors, 0.0, max(errors.values()) == 0.0))
    return rows


# --------------------------------------------------------------------------- optimizers

_SHAPES = {"0.weight": (4, 3), "0.bias": (4,), "scale": (1,), "conv.weight": (3, 4, 5)}

OPTIM_CASES = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-2}),
    ("Adam", {"lr": 1e-2}),
    ("Adam", {"lr": 1e-2, "amsgrad": True, "weight_decay": 1e-2}),
    ("AdamW", {"lr": 1e-2, "weight_decay": 0.1}),
]
SCHEDULES = [
    None,
    ("StepLR", {"step_size": 3, "gamma": 0.5}),
    ("CosineAnnealingLR", {"T_max": 10}),
]


def optim_parity(kind, hp, schedule=None, dtype=np.float64, steps=50, every=2, seed=0):
    """Largest relative parameter difference and largest lr difference from torch over ``steps`` steps."""
    r = np.random.default_rng(seed)
    P = {k: r.standard_normal(s).astype(dtype) for k, s in _SHAPES.items()}
    T = {k: torch.nn.Parameter(torch.from_numpy(v.copy())) for k, v in P.items()}
    opt = getattr(optim, kind)(P, **hp)
    topt = getattr(torch.optim, kind)(list(T.values()), **hp, foreach=False)
    sched = tsched = None
    if schedule is not None:
        sched = getattr(optim, schedule[0])(opt, **schedule[1])
        tsched = getattr(torch.optim.lr_scheduler, schedule[0])(topt, **schedule[1])
    worst_lr = 0.0
    for t in range(steps):
        grads = {k: r.standard_normal(s).astype(dtype) for k, s in _SHAPES.items()}
        opt.step(grads)
        for k, g in grads.items():
            T[k].grad = torch.from_numpy(g.copy())
        topt.step()
        if sched is not None and (t + 1) % every == 0:
            sched.step()
            tsched.step()
        worst_lr = max(worst_lr, abs(opt.lr - topt.param_groups[0]["lr"]))
    worst = max(
        float(np.abs(P[k] - T[k].detach().numpy()).max()) / max(1.0, float(np.abs(P[k]).max())) for k in P
    )
    return worst, worst_lr


def optim_rows(steps=50):
    """One row per optimizer configuration x schedule x dtype."""
    rows = []
    for kind, hp in OPTIM_CASES:
        for schedule in SCHEDULES:
            for dtype, tol in ((np.float64, 1e-12), (np.float32, 1e-5)):
                params_err, lr_err = optim_parity(kind, hp, schedule, dtype, steps)
                name = _label(kind, hp) + ("" if schedule is None else f" +{schedule[0].replace('AnnealingLR', '')}")
                errors = {"params": params_err, "lr": lr_err}
                ok = params_err <= tol and lr_err == 0.0
                rows.append(Row("optim", name, np.dtype(dtype).name, errors, tol, ok, f"{steps} steps"))
    return rows


if __name__ == "__main__":
    from .report import format_table

    print(format_table(init_rows() + optim_rows()))
