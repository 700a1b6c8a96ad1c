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
    V.int_array(target, "target", "class indices")
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

    Imported by its name, so the sibling package must be importable (installed,
    or its folder on the path, as in a source checkout run from the top folder).
    """
    try:
        from reference import stability
    except ImportError as exc:
        return None, f"torch comparison skipped: reference.stability unavailable ({exc})"
    return stability, None


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


# Gradient errors below this (exact zeros included) are drawn on it: a log axis has no 0.
FLOOR = 1e-18
STYLES = {"softmax naive": ("tab:purple", "-"), "softmax stable": ("tab:blue", "-"),
          "CE naive": ("tab:red", "-"), "CE log(stable softmax)": ("tab:orange", "--"),
          "CE stable": ("tab:green", "-")}


def figure(result):
    """The study's figure, one column per dtype, returned open (``plot`` saves it).

    Rows: the cross-entropy per scale while it is finite; a strip with one row per
    form marking, from the exact scale in ``result.first`` to the end of the grid,
    where its output ("value") and its gradient ("grad") are inf/nan; and, when
    torch was available, the largest gradient error against torch, left blank
    where either gradient is inf/nan, with errors below ``FLOOR`` (exact zeros
    included) drawn on a floor line labelled as such.

    Artists carry ids for inspection: axes ``"loss <dtype>"``, ``"nonfinite
    <dtype>"`` and ``"grad error <dtype>"``; in the strip, lines ``"<event>
    <form>"`` (event "value" or "grad"); in the error panel, lines ``"<form>"``
    and ``"floor"``.
    """
    plt = _common.pyplot()
    has_torch = result.grad_error is not None
    rows = [3.0, 1.9] + ([3.0] if has_torch else [])
    fig, axes = plt.subplots(len(rows), 2, figsize=(12, 2.2 + 1.6 * sum(rows) / 2), squeeze=False,
                             sharex="col", gridspec_kw={"height_ratios": rows})
    lo, hi = float(result.scales[0]), float(result.scales[-1])
    forms = list(FORMS)
    for j, d in enumerate(DTYPES):
        limit = result.overflow_limit[d]

        ax = axes[0][j]
        ax.set_gid(f"loss {d}")
        for f, curve in result.loss[d].items():
            color, ls = STYLES[f]
            finite = np.isfinite(curve)
            wide = f != "CE stable"  # drawn wide underneath: until they fail they equal the stable curve
            ax.plot(result.scales[finite], curve[finite], color=color, ls=ls, label=f,
                    lw=5 if wide else 1.5, alpha=0.45 if wide else 1.0, gid=f)
        ax.axvline(limit, color="k", lw=0.8, alpha=0.5)
        ax.text(limit, 0.02, f" exp overflows\n above {limit:.2f}", transform=ax.get_xaxis_transform(),
                fontsize=8, va="bottom")
        ax.set(xscale="log", yscale="log", ylabel="cross-entropy",
               title=f"{d}: the loss, drawn while it is finite")
        ax.legend(fontsize=8, loc="upper left")

        ax = axes[1][j]
        ax.set_gid(f"nonfinite {d}")
        for i, f in enumerate(forms):
            color, _ = STYLES[f]
            events = [e for e in ("value", "grad") if result.first[d][f][e] is not None]
            if not events:
                ax.text(lo, i, "  finite at every scale", va="center", fontsize=7, color=color)
            for event in events:
                start = result.first[d][f][event]
                y = i + (-0.2 if event == "value" else 0.2)
                ax.plot([start, hi], [y, y], color=color, lw=4 if event == "grad" else 2.5,
                        alpha=1.0 if event == "grad" else 0.5, solid_capstyle="butt", gid=f"{event} {f}")
                ax.text(start, y, f"{event} inf/nan from {start:.4g}  ", ha="right", va="center",
                        fontsize=7, color=color)
        ax.axvline(limit, color="k", lw=0.8, alpha=0.5)
        ax.set_yticks(range(len(forms)), forms, fontsize=8)
        ax.set_ylim(len(forms) - 0.5, -0.5)
        ax.set(xscale="log", title=f"{d}: where the output (value) and the gradient (grad) are inf or nan")
        ax.title.set_fontsize(10)

        if has_torch:
            ax = axes[2][j]
            ax.set_gid(f"grad error {d}")
            for f, err in result.grad_error[d].items():
                color, ls = STYLES[f]
                shown = np.where(np.isfinite(err), np.maximum(err, FLOOR), np.nan)  # blank where inf/nan
                ax.plot(result.scales, shown, color=color, ls=ls, label=f, gid=f)
            ax.axhline(FLOOR, color="0.5", lw=0.8, ls=":", gid="floor")
            ax.text(hi, FLOOR, f"0, or below {FLOOR:.0e}: drawn on this line ", ha="right", va="top",
                    fontsize=7, color="0.3")
            finite = [e[np.isfinite(e)] for e in result.grad_error[d].values()]
            top = max([FLOOR] + [float(e.max()) for e in finite if e.size])
            ax.set(yscale="log", ylabel="max |grad - torch grad|", ylim=(FLOOR / 30, top * 1e4),
                   title=f"{d}: gradient against torch (blank where either is inf/nan)")
            ax.legend(fontsize=8, loc="upper right", ncol=2)  # in the headroom above the curves
        axes[-1][j].set(xlabel="logit scale", xlim=(lo / 1.15, hi * 1.15))
    fig.tight_layout()
    return fig


def plot(result, path):
    """Write :func:`figure` to ``path`` (a PNG) and return ``path``."""
    return _common.savefig(figure(result), path)
