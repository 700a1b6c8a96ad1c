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
  q's error scale (at least the smallest normal number). Each module's rule is
  the ``bound`` of its ``reference.registry`` entry.
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

from npnet import nn

from .registry import backward_bound, buffer_bound, entry_for, forward_bound
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
        train: training or inference forward; in training, Dropout's mask is replayed,
            and the buffers a training forward updates (BatchNorm's running
            statistics, ``"buffer:running_mean"``...) are compared too.
        seed: seed of the default ``dy``.
        c: safety factor of the tolerance (see the module docstring).

    Returns:
        A :class:`CompareResult`; ``bool(result)`` is ``result.ok``.
    """
    dtype = _float_dtype(dtype)
    _float_array(x, "x")
    entry = entry_for(module)
    is_loss = not isinstance(module, nn.Module)
    if is_loss and target is None:
        raise TypeError(f"compare: {type(module).__name__} is a loss; pass target=")
    mod = _cast(module, dtype)
    X = np.array(x, dtype=dtype)
    T = target
    if target is not None and target.dtype.kind == "f":
        T = target.astype(dtype)

    # npnet, on a copy of the input so that the check below sees any change it makes; a
    # training forward updates a BatchNorm's buffers, so the twin is built from a copy taken before
    before = copy.deepcopy(mod)
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
    tw = twin(before, replay=None if is_loss else backward).train(train)
    xt = torch.from_numpy(X.copy()).requires_grad_()
    yt = tw(xt, _torch_target(T)) if is_loss else tw(xt)
    yt.backward(torch.from_numpy(dY.copy()))
    ref = {"out": yt.detach().numpy(), "dx": xt.grad.numpy()}
    ref.update({k: p.grad.numpy() for k, p in tw.named_parameters()})
    if not is_loss:   # the buffers after the step (running statistics), as "buffer:<name>"
        got.update({f"buffer:{k}": v for k, v in mod.buffers.items()})
        ref.update({f"buffer:{k}": v.numpy() for k, v in tw.named_buffers() if k.split(".")[-1] in _TORCH_BUFFERS})

    # the scales, in float64 from the float64 twin
    X64, dY64 = X.astype(np.float64), dY.astype(np.float64)
    if is_loss:
        scale, K = entry.bound.fn(_cast(module, np.float64), X64, target, dY64, ref["dx"].astype(np.float64))
    else:
        mod64 = _cast(module, np.float64)
        tw64 = twin(mod64, replay=backward).train(train)
        _, m_out, K = forward_bound(mod64, tw64, backward, X64, np.zeros_like(X64))
        e = tolerance(dtype, K, c)
        _, m_dx, m_params = backward_bound(mod64, tw64, backward, X64, np.zeros_like(X64),
                                            dY64, np.zeros_like(dY64), e)
        m_buffers = buffer_bound(mod64, tw64, backward, X64, np.zeros_like(X64))
        scale = {"out": m_out, "dx": m_dx, **m_params, **{f"buffer:{k}": v for k, v in m_buffers.items()}}
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


def _float_dtype(dtype):
    try:
        dt = None if dtype is None else np.dtype(dtype)
    except (TypeError, ValueError):
        dt = None
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype must be np.float32 or np.float64, got {dtype!r}")
    return dt


def _float_array(x, name):
    if isinstance(x, np.floating):
        x = np.asarray(x)
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of float32 or float64, got {type(x).__name__}")
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must have dtype float32 or float64, got {x.dtype}")
    return x


def _upstream(dy, shape, dtype, seed):
    if dy is None:
        return np.asarray(np.random.default_rng(seed).standard_normal(shape), dtype)
    dy = _float_array(dy, "dy")
    if dy.shape != tuple(shape):
        raise ValueError(f"dy must have shape {tuple(shape)}, got {dy.shape}")
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


# torch's persistent buffers that npnet keeps too (a replayed Dropout's mask is a buffer npnet does not have)
_TORCH_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


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
    if a.dtype.kind == "i" or b.dtype.kind == "i":   # num_batches_tracked: int64 on both sides
        return None if a.dtype == b.dtype == np.int64 else f"{q}: npnet dtype {a.dtype}, torch dtype {b.dtype}"
    if a.dtype != dtype:
        return f"{q}: npnet dtype {a.dtype}, expected {np.dtype(dtype)}"
    return None


def _abs_err(a, b):
    """max |a - b|, counting equal infinities and nan against nan as agreement."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    with np.errstate(invalid="ignore"):
        d = np.where((a == b) | (np.isnan(a) & np.isnan(b)), 0.0, np.abs(a - b))
    return float(np.where(np.isnan(d), np.inf, d).max(initial=0.0))
