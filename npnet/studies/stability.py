"""Study: the naive softmax and cross-entropy break down; the stable ones never do.

The naive softmax computes ``exp(x) / sum(exp(x))``: ``exp`` overflows to inf as
soon as a logit passes ``log(finfo.max)`` (88.72 in float32, 709.78 in float64)
and inf / inf is nan. The naive cross-entropy takes ``-log`` of a probability,
and a probability that rounds to 0 gives ``-log(0) = inf``; subtracting the
maximum first (the stable softmax) cures the overflow but not that log(0). Only
the log-sum-exp form, ``log p = x - max - log(sum(exp(x - max)))``, as
:func:`npnet.nn.functional.cross_entropy` computes it, is finite for every
finite logit.

The inputs are ``scale * Z``: 64 rows of 10 logits, uniform in [-1, 1], each
row's largest entry set to exactly 1 and its target the class with the smallest
logit (a confidently wrong model), for scales from 1 to 1e4.
"""
import dataclasses
import importlib
import importlib.util
import os

import numpy as np

from .. import _validate as V
from ..nn import functional as F
from . import _common

DTYPES = ("float32", "float64")

# form name -> (kind, description)
FORMS = {
    "softmax naive": ("softmax", "exp(x) / sum(exp(x))"),
    "softmax stable": ("softmax", "exp(x - max) / sum(exp(x - max))"),
    "CE naive": ("ce", "-log(naive softmax)"),
    "CE log(stable softmax)": ("ce", "-log(stable softmax)"),
    "CE stable": ("ce", "log-sum-exp (npnet.nn.functional.cross_entropy)"),
}
NAIVE = ("softmax naive", "CE naive", "CE log(stable softmax)")
STABLE = ("softmax stable", "CE stable")


# --------------------------------------------------------------- the naive forms

def naive_softmax(X):
    """``exp(X) / sum(exp(X))`` along the last axis, exactly as first written on paper."""
    with np.errstate(over="ignore", invalid="ignore"):
        E = np.exp(X)
        return E / E.sum(axis=-1, keepdims=True)


def naive_cross_entropy(P, target):
    """Mean of ``-log P[i, target_i]`` given probabilities ``P`` (N, C) and integer
    class indices ``target`` (N,)."""
    P, target = _check_probs_and_target(P, target)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.log(P[np.arange(P.shape[0]), target]).mean(dtype=P.dtype)


def naive_cross_entropy_backward(P, target):
    """d loss / d logits through the probabilities, by the chain rule:
    dP[i, t_i] = -1 / (N P[i, t_i]), then the softmax backward. A zero
    probability makes dP infinite and the result nan."""
    P, target = _check_probs_and_target(P, target)
    N = P.shape[0]
    dP = np.zeros_like(P)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        dP[np.arange(N), target] = -1 / (N * P[np.arange(N), target])
        return F.softmax_backward(dP, P)


def _check_probs_and_target(P, target):
    P = V.float_array(P, "P")
    if P.ndim != 2:
        raise ValueError(f"P must be 2-D (N, C) probabilities, got shape {P.shape}")
    if not isinstance(target, np.ndarray) or target.dtype.kind not in "iu":
        raise TypeError(f"target must be a numpy.ndarray of integer class indices, got {V.describe(target)}")
    if target.shape != P.shape[:1]:
        raise ValueError(f"target must have shape {P.shape[:1]} (one class per row of P), got {target.shape}")
    if target.size and (target.min() < 0 or target.max() >= P.shape[1]):
        raise ValueError(f"target must hold class indices in [0, {P.shape[1]}), got values in "
                         f"[{target.min()}, {target.max()}]")
    return P, target


def _softmax_backward(dY, Y):
    with np.errstate(invalid="ignore", over="ignore"):
        return F.softmax_backward(dY, Y)


# --------------------------------------------------------------- one scale

def _inputs(rng, rows=64, classes=10):
    Z = rng.uniform(-1.0, 1.0, (rows, classes))
    Z[np.arange(rows), Z.argmax(axis=1)] = 1.0
    target = Z.argmin(axis=1).astype(np.int64)
    dY = rng.standard_normal((rows, classes))  # a random upstream gradient for the softmax
    return Z, target, dY


def _evaluate(Z, target, dY, scale, dtype, forms=tuple(FORMS)):
    """The chosen forms' outputs and gradients at one scale: {form: (values, grad)}."""
    X = (scale * Z).astype(dtype)
    dY = dY.astype(dtype)
    out = {}
    if "softmax naive" in forms or "CE naive" in forms:
        P_naive = naive_softmax(X)
    if "softmax stable" in forms or "CE log(stable softmax)" in forms:
        P_stable = F.softmax(X)
    if "softmax naive" in forms:
        out["softmax naive"] = (P_naive, _softmax_backward(dY, P_naive))
    if "softmax stable" in forms:
        out["softmax stable"] = (P_stable, F.softmax_backward(dY, P_stable))
    if "CE naive" in forms:
        out["CE naive"] = (naive_cross_entropy(P_naive, target), naive_cross_entropy_backward(P_naive, target))
    if "CE log(stable softmax)" in forms:
        out["CE log(stable softmax)"] = (naive_cross_entropy(P_stable, target),
                                         naive_cross_entropy_backward(P_stable, target))
    if "CE stable" in forms:
        out["CE stable"] = (F.cross_entropy(X, target), F.cross_entropy_backward(None, X, target))
    return out


EVENTS = ("value", "grad", "zero")


def _events(out):
    """{form: (output non-finite, gradient non-finite, a probability exactly 0)} at one scale."""
    ev = {}
    for form, (values, grad) in out.items():
        zero = FORMS[form][0] == "softmax" and bool(np.any(values == 0))
        ev[form] = (not np.all(np.isfinite(values)), not np.all(np.isfinite(grad)), zero)
    return ev


def _refine(lo, hi, predicate, iterations=40):
    """The smallest scale in (lo, hi] where ``predicate`` holds, to ~1e-12 relative, by bisection
    on a log scale (the events here are monotone in the scale)."""
    for _ in range(iterations):
        mid = np.sqrt(lo * hi)
        if predicate(mid):
            hi = mid
        else:
            lo = mid
    return float(hi)


# --------------------------------------------------------------- the study

@dataclasses.dataclass
class StabilityResult:
    """What :func:`run` measured.

    Attributes:
        scales: (S,) the logit scales, log-spaced from 1 to 1e4.
        first: {dtype: {form: {event: the smallest scale where it happens, or
            None if never}}}, with events "value" (the probabilities or the
            loss hold inf or nan), "grad" (the gradient does) and, for the
            softmax forms only, "zero" (a probability is exactly 0).
        loss: {dtype: {CE form: (S,) loss per scale}}.
        grad_error: {dtype: {form: (S,) max |grad - torch grad|, inf where
            either is non-finite}}, or None when torch was unavailable.
        overflow_limit: {dtype: log(finfo.max)}, where exp overflows.
        notes: human-readable remarks (e.g. why the torch column is missing).
    """

    scales: np.ndarray
    first: dict
    loss: dict
    grad_error: dict
    overflow_limit: dict
    notes: list


def _torch_reference():
    """``reference.stability`` (which imports torch), or None and a note saying why not.

    In a source checkout that was not installed with ``reference`` importable,
    the file beside the ``npnet`` folder is loaded directly.
    """
    try:
        return importlib.import_module("reference.stability"), None
    except ImportError as exc:
        error = exc
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                        "reference", "stability.py")
    if os.path.isfile(path):
        try:
            spec = importlib.util.spec_from_file_location("_npnet_reference_stability", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module, None
        except ImportError as exc:
            error = exc
    return None, f"torch comparison skipped: reference.stability unavailable ({error})"


def run(*, quick=False, seed=0, scales=None, use_torch=True):
    """Measure where each softmax and cross-entropy form first fails, per dtype.

    Args:
        quick: a coarser grid of scales (81 instead of 401 points).
        seed: seeds the logits and the upstream gradient.
        scales: override the grid (an increasing 1-D array of positive scales).
        use_torch: compare gradients against torch (via ``reference.stability``).

    Returns:
        :class:`StabilityResult`.
    """
    seed = V.integer(seed, "seed", low=0)
    if scales is None:
        scales = np.logspace(0, 4, 81 if quick else 401)
    scales = np.asarray(scales, dtype=np.float64)
    Z, target, dY = _inputs(np.random.default_rng(seed))
    ref, note = _torch_reference() if use_torch else (None, "torch comparison not requested")
    notes = [note] if note else []

    first, loss, grad_error, limit = {}, {}, {}, {}
    for dtype_name in DTYPES:
        dtype = np.dtype(dtype_name)
        limit[dtype_name] = float(np.log(np.finfo(dtype).max))
        events = []
        loss[dtype_name] = {f: np.empty(len(scales)) for f in FORMS if FORMS[f][0] == "ce"}
        errs = {f: np.empty(len(scales)) for f in FORMS}
        for s_i, scale in enumerate(scales):
            out = _evaluate(Z, target, dY, scale, dtype)
            events.append(_events(out))
            for f in loss[dtype_name]:
                loss[dtype_name][f][s_i] = float(out[f][0])
            if ref is not None:
                X = (scale * Z).astype(dtype)
                torch_grads = {
                    "softmax": ref.softmax_grad(X, dY.astype(dtype)),
                    "ce": ref.cross_entropy_grad(X, target),
                }
                for f, (_, grad) in out.items():
                    errs[f][s_i] = _max_abs_error(grad, torch_grads[FORMS[f][0]])
        grad_error[dtype_name] = errs if ref is not None else None

        first[dtype_name] = {}
        for f in FORMS:
            first[dtype_name][f] = {}
            for which, event in enumerate(EVENTS):
                if event == "zero" and FORMS[f][0] != "softmax":
                    continue
                hits = [i for i, ev in enumerate(events) if ev[f][which]]
                if not hits or hits[0] == 0:
                    first[dtype_name][f][event] = float(scales[0]) if hits else None
                    continue

                def predicate(scale, f=f, which=which, dtype=dtype):
                    return _events(_evaluate(Z, target, dY, scale, dtype, (f,)))[f][which]

                first[dtype_name][f][event] = _refine(scales[hits[0] - 1], scales[hits[0]], predicate)
    return StabilityResult(scales, first, loss, grad_error if ref is not None else None, limit, notes)


def _max_abs_error(a, b):
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return np.inf
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def table(result):
    """One row per dtype and form: where it first fails, and its worst gradient error
    against torch while it still worked."""
    header = ["dtype", "form", "computes", "value inf/nan", "grad inf/nan", "some p = 0",
              "max |grad - torch|"]
    rows = []
    for d in DTYPES:
        for f, (kind, what) in FORMS.items():
            at = result.first[d][f]
            err = "-"
            if result.grad_error is not None:
                e = result.grad_error[d][f]
                finite = e[np.isfinite(e)]
                err = _common.fmt(float(finite.max())) if finite.size else "none finite"
            rows.append([d, f, what, _common.fmt(at["value"], ".4g"), _common.fmt(at["grad"], ".4g"),
                         _common.fmt(at["zero"], ".4g") if "zero" in at else "-", err])
    lines = [_common.format_table(header, rows, left=3)]
    lines.append("Columns 4-6: the smallest logit scale (of 1 to 1e4) at which it happens. "
                 "exp overflows above log(finfo.max): " + ", ".join(
                     f"{d} {result.overflow_limit[d]:.2f}" for d in DTYPES) + ".")
    lines.append("The last column is the worst error over the scales where both npnet's and torch's "
                 "gradients are finite.")
    lines += result.notes
    return "\n".join(lines)


def plot(result, path):
    """Loss per scale (top) and gradient error against torch (bottom), float32 left, float64 right."""
    plt = _common.pyplot()
    has_torch = result.grad_error is not None
    fig, axes = plt.subplots(2 if has_torch else 1, 2, figsize=(12, 8 if has_torch else 4.5), squeeze=False)
    styles = {"CE naive": ("tab:red", "-"), "CE log(stable softmax)": ("tab:orange", "--"),
              "CE stable": ("tab:green", "-"), "softmax naive": ("tab:purple", "-"),
              "softmax stable": ("tab:blue", "-")}
    for j, d in enumerate(DTYPES):
        ax = axes[0][j]
        for f, curve in result.loss[d].items():
            color, ls = styles[f]
            finite = np.isfinite(curve)
            wide = f != "CE stable"  # drawn wide underneath: until they fail they equal the stable curve
            ax.plot(result.scales[finite], curve[finite], color=color, ls=ls, label=f,
                    lw=5 if wide else 1.5, alpha=0.45 if wide else 1.0)
            bad = result.first[d][f]["value"]
            if bad is not None:
                ax.axvline(bad, color=color, ls=":", lw=1)
        ax.axvline(result.overflow_limit[d], color="k", lw=0.8, alpha=0.5)
        ax.text(result.overflow_limit[d], ax.get_ylim()[1], " log(max)", va="top", fontsize=8)
        ax.set(xscale="log", yscale="log", xlabel="logit scale", ylabel="cross-entropy",
               title=f"{d}: loss until it turns inf/nan (dotted)")
        ax.legend(fontsize=8)
        if has_torch:
            ax = axes[1][j]
            for k, (f, err) in enumerate(result.grad_error[d].items()):
                color, ls = styles[f]
                shown = np.where(np.isfinite(err), np.maximum(err, 1e-18), np.nan)
                ax.plot(result.scales, shown, color=color, ls=ls, label=f)
                bad = ~np.isfinite(err)
                if bad.any():
                    ax.plot(result.scales[bad], np.full(bad.sum(), 10.0 ** k), "x", color=color, ms=3)
            ax.set(xscale="log", yscale="log", xlabel="logit scale", ylabel="max |grad - torch grad|",
                   title=f"{d}: gradient against torch (x = inf/nan)")
            ax.legend(fontsize=8)
    fig.tight_layout()
    return _common.savefig(fig, path)
