"""``compare``: one npnet forward and backward against its torch twin, judged by dtype-derived tolerances.

Both sides get the same input, weights, target, upstream gradient and (for
Dropout) the same mask. Every quantity q is checked: the output ``"out"``, the
input gradient ``"dx"`` and each parameter gradient (``"weight"``, ``"0.bias"``...)::

    max |npnet_q - torch_q| / S_q  <=  tol = c * eps(dtype) * sqrt(K)

- ``eps(dtype)``: machine epsilon, 2**-52 (2.2e-16) in float64, 2**-23 (1.2e-7) in float32.
- ``K``: the reduction length, the longest sum the computation makes. Linear:
  max(in_features, out_features, rows) + 1; softmax and log-softmax: the size of
  their axis; elementwise modules: 1; a Sequential adds up its children's K;
  a loss adds its class count and the rows it reduces.
- ``S_q``: the scale of q, the size of the terms it is made of, not of q itself,
  so a value that ends near 0 by cancellation is judged against what cancelled.
  It comes from a running error bound carried through the computation: an error
  scale ``m`` per element such that rounding leaves that element off by about
  eps * m. The input is exact (m = 0); each module adds its own rounding and
  passes on the error it received, e.g. Linear ``m_out = (|x| + m) |W|^T + |b|``,
  Sigmoid ``m_out = |y| + m / 4``; backward does the same from the upstream
  gradient, including the error a gradient inherits from the forward values it
  reads (tanh's 1 - y^2 uses y, which carries forward error), and the flips of a
  ReLU whose input lies within rounding of 0. ``S_q`` is the largest element of
  q's error scale (at least the smallest normal number), see :func:`_forward_bound`.
- ``c = 4``: both sides round, and two correct implementations stay within about
  eps * sqrt(K) * S_q of each other; 4 leaves room without hiding a real bug,
  which is off by O(S_q).

In float64 the bound is about 1e-15 * sqrt(K) of the scale (far inside 1e-10);
in float32 about 5e-7 * sqrt(K).

Example::

    >>> import numpy as np
    >>> from npnet import nn
    >>> layer = nn.Linear(4, 3, rng=np.random.default_rng(0))
    >>> x = np.random.default_rng(1).standard_normal((5, 4))
    >>> r = compare(layer, x)
    >>> r.ok, sorted(r.max_rel)
    (True, ['bias', 'dx', 'out', 'weight'])
"""
import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from npnet import _validate as V
from npnet import nn

from .report import Row
from .twins import twin

__all__ = ["compare", "CompareResult", "tolerance", "C"]

C = 4.0


def tolerance(dtype, K, c=C):
    """The allowed error relative to a quantity's scale: ``c * eps(dtype) * sqrt(K)``."""
    return c * float(np.finfo(dtype).eps) * math.sqrt(max(K, 1))


@dataclass
class CompareResult:
    """Outcome of :func:`compare`.

    Attributes:
        ok: every quantity within tolerance, of the right shape and dtype.
        dtype: the dtype both sides ran in.
        K: the reduction length behind ``tol``.
        tol: the bound on every ``max_rel``, ``c * eps(dtype) * sqrt(K)``.
        max_abs: quantity -> max |npnet - torch|.
        max_rel: quantity -> max_abs / scale.
        scale: quantity -> S_q, the size of the terms the quantity is made of.
        failed: quantities out of tolerance (or missing, misshapen, of the wrong dtype), with why.
    """

    ok: bool
    dtype: str
    K: int
    tol: float
    max_abs: dict = field(default_factory=dict)
    max_rel: dict = field(default_factory=dict)
    scale: dict = field(default_factory=dict)
    failed: list = field(default_factory=list)

    def __bool__(self):
        return self.ok

    def row(self, group, name, note=""):
        """This result as a line of the ``python -m reference`` table."""
        return Row(group, name, self.dtype, dict(self.max_rel), self.tol, self.ok,
                   note or ("; ".join(self.failed) if self.failed else ""))

    def __str__(self):
        lines = [f"compare ({self.dtype}, K={self.K}, tol={self.tol:.2e}): {'ok' if self.ok else 'FAIL'}"]
        for q in self.max_rel:
            lines.append(f"  {q:<12} abs {self.max_abs[q]:.3e}  rel {self.max_rel[q]:.3e}  scale {self.scale[q]:.3e}")
        lines += [f"  failed: {f}" for f in self.failed]
        return "\n".join(lines)


def compare(module, x, dy=None, *, dtype=np.float64, target=None, train=True, seed=0, c=C):
    """Run an npnet module (or loss) and its torch twin on the same data; compare
    the output, the input gradient and every parameter gradient.

    The module is not changed: both sides run on copies cast to ``dtype``.

    Args:
        module: an npnet module or loss (see :func:`reference.twin`).
        x: the input, a float ndarray (cast to ``dtype``).
        dy: upstream gradient shaped like the output; default a standard normal
            one drawn from ``seed`` (never all ones, which hides softmax bugs).
            For a loss it is ``dloss`` (0-d unless reduction="none").
        dtype: np.float64 or np.float32: what both sides compute in.
        target: for a loss, class indices (integer) or probabilities (float).
        train: training or inference forward; in training, Dropout's mask is replayed.
        seed: seed of the default ``dy``.
        c: safety factor of the tolerance (see the module docstring).

    Returns:
        A :class:`CompareResult`; ``bool(result)`` is ``result.ok``.
    """
    dtype = V.float_dtype(dtype)
    V.float_array(x, "x")
    is_loss = not isinstance(module, nn.Module)
    if is_loss and target is None:
        raise TypeError(f"compare: {type(module).__name__} is a loss; pass target=")
    mod = _cast(module, dtype)
    X = np.array(x, dtype=dtype)
    T = target
    if target is not None and target.dtype.kind == "f":
        T = target.astype(dtype)

    # npnet, on a copy of the input so that the check below sees any change it makes
    X_np = X.copy()
    if is_loss:
        Y, backward = mod.forward(X_np, T)
    else:
        Y, backward = mod.forward(X_np, train=train)
    dY = _upstream(dy, np.shape(Y), dtype, seed)
    if is_loss:
        got = {"out": Y, "dx": backward(dY.copy())}
    else:
        dX, grads = backward(dY.copy())
        got = {"out": Y, "dx": dX, **grads}

    # torch autograd
    tw = twin(mod, replay=None if is_loss else backward).train(train)
    xt = torch.from_numpy(X.copy()).requires_grad_()
    yt = tw(xt, _torch_target(T)) if is_loss else tw(xt)
    yt.backward(torch.from_numpy(dY.copy()))
    ref = {"out": yt.detach().numpy(), "dx": xt.grad.numpy()}
    ref.update({k: p.grad.numpy() for k, p in tw.named_parameters()})

    # the scales, in float64 from the float64 twin
    X64, dY64 = X.astype(np.float64), dY.astype(np.float64)
    if is_loss:
        scale, K = _loss_bound(_cast(module, np.float64), X64, target, dY64, ref["dx"].astype(np.float64))
    else:
        mod64 = _cast(module, np.float64)
        tw64 = twin(mod64, replay=backward).train(train)
        _, m_out, K = _forward_bound(mod64, tw64, backward, X64, np.zeros_like(X64))
        e = tolerance(dtype, K, c)
        _, m_dx, m_params = _backward_bound(mod64, tw64, backward, X64, np.zeros_like(X64),
                                            dY64, np.zeros_like(dY64), e)
        scale = {"out": m_out, "dx": m_dx, **m_params}
    tol = tolerance(dtype, K, c)

    result = CompareResult(ok=True, dtype=dtype.name, K=K, tol=tol)
    if not np.array_equal(X_np, X):
        result.failed.append("input: changed by forward or backward")
    for q in dict.fromkeys([*ref, *got]):
        a, b = got.get(q), ref.get(q)
        S = _scale(scale.get(q), dtype)
        result.scale[q] = S
        why = _mismatch(q, a, b, dtype)
        if why:
            result.failed.append(why)
            result.max_abs[q] = result.max_rel[q] = float("inf")
            continue
        err = _abs_err(a, b)
        result.max_abs[q] = err
        result.max_rel[q] = err / S
        if not err <= tol * S:
            result.failed.append(f"{q}: error {err / S:.2e} of scale {S:.2e} > tol {tol:.2e}")
    result.ok = not result.failed
    return result


# --------------------------------------------------------------------------- helpers

def _cast(module, dtype):
    """A deep copy of an npnet module or loss with its parameters (or loss weight) in ``dtype``."""
    m = copy.deepcopy(module)
    if isinstance(m, nn.Module):
        return m.to(dtype)
    if getattr(m, "weight", None) is not None:
        m.weight = m.weight.astype(dtype)
    return m


def _upstream(dy, shape, dtype, seed):
    if dy is None:
        return np.asarray(np.random.default_rng(seed).standard_normal(shape), dtype)
    V.float_array(dy, "dy")
    V.same_shape(dy, "dy", shape)
    return dy.astype(dtype)


def _torch_target(T):
    if T.dtype.kind == "f":
        return torch.from_numpy(T.copy())
    return torch.from_numpy(T.astype(np.int64))


def _scale(mag, dtype):
    tiny = float(np.finfo(dtype).tiny)
    if mag is None:
        return tiny
    mag = np.asarray(mag, np.float64)
    finite = mag[np.isfinite(mag)]
    return max(float(finite.max(initial=0.0)), tiny)


def _mismatch(q, a, b, dtype):
    """Why a (npnet) cannot be compared with b (torch), or None."""
    if a is None:
        return f"{q}: missing from npnet"
    if b is None:
        return f"{q}: npnet returned it, torch has no such quantity"
    if not isinstance(a, np.ndarray):
        return f"{q}: npnet returned {type(a).__name__}, not an ndarray"
    if a.shape != b.shape:
        return f"{q}: npnet shape {a.shape}, torch shape {b.shape}"
    if a.dtype != dtype:
        return f"{q}: npnet dtype {a.dtype}, expected {np.dtype(dtype)}"
    return None


def _abs_err(a, b):
    """max |a - b|, counting equal infinities and nan against nan as agreement."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    with np.errstate(invalid="ignore"):
        d = np.where((a == b) | (np.isnan(a) & np.isnan(b)), 0.0, np.abs(a - b))
    return float(np.where(np.isnan(d), np.inf, d).max(initial=0.0))


def _run(tw, x):
    with torch.no_grad():
        return tw(torch.from_numpy(x)).numpy()


def _vjp(tw, x, g):
    xt = torch.from_numpy(x).requires_grad_()
    (gx,) = torch.autograd.grad(tw(xt), xt, torch.from_numpy(g))
    return gx.numpy()


def _sum(A, axis):
    return A.sum(axis=axis, keepdims=True)


def _children(backward, n):
    return getattr(backward, "children", None) or (None,) * n


# ------------------------------------------------------------- the running error bound

def _forward_bound(mod, tw, backward, x, m):
    """Reference output ``y``, its error scale ``m_out`` and the reduction length ``K``
    of ``mod`` at input ``x`` whose error scale is ``m`` (all float64)."""
    if isinstance(mod, nn.Sequential):
        K = 0
        for child, t, b in zip(mod, tw, _children(backward, len(mod))):
            x, m, k = _forward_bound(child, t, b, x, m)
            K += k
        return x, m, max(K, 1)
    y = _run(tw, x)
    ax = np.abs(x)
    if isinstance(mod, nn.Linear):
        W, b = np.abs(mod.params["weight"]), np.abs(mod.params.get("bias", 0.0))
        rows = x.size // max(mod.in_features, 1)
        return y, (ax + m) @ W.T + b, max(mod.in_features, mod.out_features, rows) + 1
    if isinstance(mod, nn.ReLU):
        return y, m, 1                                   # exact, 1-Lipschitz
    if isinstance(mod, nn.LeakyReLU):
        s = abs(mod.negative_slope)
        return y, max(1.0, s) * m + s * ax, 1
    if isinstance(mod, nn.Sigmoid):
        return y, np.abs(y) + m / 4, 1                   # sigmoid' <= 1/4
    if isinstance(mod, nn.Tanh):
        return y, np.abs(y) + m, 1
    if isinstance(mod, nn.Softmax):
        a = mod.axis                                     # |J| = diag(y) + y y^T
        return y, y * (1 + m + _sum(y * m, a)), x.shape[a]
    if isinstance(mod, nn.LogSoftmax):
        a = mod.axis                                     # |J| = I + 1 p^T
        return y, np.abs(y) + m + _sum(np.exp(y) * m, a), x.shape[a]
    if isinstance(mod, nn.Dropout):
        mask = getattr(backward, "mask", None)
        return y, (m if mask is None else mask * (ax + m)), 1
    if isinstance(mod, nn.Flatten):
        return y, m.reshape(y.shape), 1
    raise TypeError(f"no error bound for {type(mod).__name__}")


def _backward_bound(mod, tw, backward, x, m, g, mg, e):
    """Reference input gradient for upstream ``g`` (error scale ``mg``), its error
    scale, and the error scales of the parameter gradients. ``e`` is the relative
    tolerance, used to spot ReLU inputs within rounding of the kink."""
    if isinstance(mod, nn.Sequential):
        xs, ms = [], []
        for child, t, b in zip(mod, tw, _children(backward, len(mod))):
            xs.append(x)
            ms.append(m)
            x, m, _ = _forward_bound(child, t, b, x, m)
        params = {}
        bws = _children(backward, len(mod))
        for i in range(len(mod) - 1, -1, -1):
            g, mg, p = _backward_bound(mod[i], tw[i], bws[i], xs[i], ms[i], g, mg, e)
            params.update({f"{i}.{k}": v for k, v in p.items()})
        return g, mg, params
    y, m_out, _ = _forward_bound(mod, tw, backward, x, m)
    gx = _vjp(tw, x, g)
    ag = np.abs(g)
    a = ag + mg                                          # the upstream gradient's terms and error
    ax = np.abs(x)
    # where the forward error could carry x across 0, a ReLU's gradient may flip: allow all of it
    kink = (m > 0) & (ax <= e * m)
    if isinstance(mod, nn.Linear):
        W = np.abs(mod.params["weight"])
        a2, x2 = a.reshape(-1, W.shape[0]), (ax + m).reshape(-1, W.shape[1])
        params = {"weight": a2.T @ x2}
        if "bias" in mod.params:
            params["bias"] = a2.sum(axis=0)
        return gx, a @ W, params
    if isinstance(mod, nn.ReLU):
        return gx, mg + np.where(kink, ag / e, 0.0), {}
    if isinstance(mod, nn.LeakyReLU):
        s = mod.negative_slope
        return gx, max(1.0, abs(s)) * mg + abs(s) * ag + np.where(kink, abs(1 - s) * ag / e, 0.0), {}
    if isinstance(mod, nn.Sigmoid):
        return gx, a * y * (1 - y) + ag * np.abs(1 - 2 * y) * m_out, {}
    if isinstance(mod, nn.Tanh):
        return gx, a * (1 - y * y) + ag * 2 * np.abs(y) * m_out, {}
    if isinstance(mod, nn.Softmax):
        ax_ = mod.axis
        s = _sum(g * y, ax_)
        return gx, y * (a + _sum(a * y, ax_)) + np.abs(g - s) * m_out + y * _sum(ag * m_out, ax_), {}
    if isinstance(mod, nn.LogSoftmax):
        ax_ = mod.axis
        p = np.exp(y)
        return gx, a + p * _sum(a, ax_) + np.abs(_sum(g, ax_)) * p * m_out, {}
    if isinstance(mod, nn.Dropout):
        mask = getattr(backward, "mask", None)
        return gx, (mg if mask is None else mask * a), {}
    if isinstance(mod, nn.Flatten):
        return gx, mg.reshape(x.shape), {}
    raise TypeError(f"no error bound for {type(mod).__name__}")


def _loss_bound(loss, x, target, dloss, gx):
    """Scales of a loss and of its input gradient ``gx`` (torch's), and K."""
    reduction = loss.reduction
    if isinstance(loss, nn.MSELoss):
        d2 = (x - target.astype(np.float64)) ** 2
        out = {"none": d2, "sum": d2.sum(), "mean": d2.sum() / max(d2.size, 1)}[reduction]
        return {"out": out, "dx": np.abs(gx)}, (1 if reduction == "none" else x.size)

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
    if isinstance(loss, nn.NLLLoss):
        return {"out": out, "dx": np.abs(gx)}, K
    # cross-entropy's gradient is scale * (p * S - T) with S = sum(T) <= w_max * sum|target row|
    scale = np.abs(dloss) * {"none": 1.0, "sum": 1.0, "mean": inv}[reduction] * keep
    S = wabs.max(initial=0.0) * (np.abs(target).sum(axis=axis) if probs else 1.0)
    L = torch.log_softmax(xt, axis).numpy()
    p = np.exp(L)
    per_row = np.expand_dims(scale * S, axis)
    return {"out": out, "dx": np.abs(gx) + per_row * p * (2 + np.abs(L))}, K + C
