"""The one place where an npnet module meets torch: one entry per class.

An entry declares, for one npnet module (or loss) class:

- ``twin(module, replay)``: the equivalent ``torch.nn.Module``, holding a copy of
  the module's weights (see :func:`reference.twin` for ``replay``);
- ``bound``: the running error bound :func:`reference.compare` judges it by, in
  the vocabulary below (``elementwise(...)``, ``along_axis(...)``,
  ``moves_values()``, ``Bound(..., K=...)``, ``chain()``, ``LossBound(...)``);
- ``cases()``: the rows of ``python -m reference``, a list of
  ``(name, module, x, compare keyword arguments)``;
- ``strategy(d, shape)``: for the property tests, a module (and compare keyword
  arguments) for an input of ``shape``, drawn through ``d`` (``d.dtype``,
  ``d.integers(lo, hi)``, ``d.choice(seq)``, ``d.boolean()``, ``d.rng()``,
  ``d.array(shape)``; tests/strategies.py implements it over hypothesis, so
  this package needs no hypothesis);
- ``ndims`` (optional): the numbers of input axes the module takes, e.g. ``(3, 4)``
  for a 2-d pooling; the strategies draw it only for such inputs (default: any).

``reference.twin``, ``reference.compare``, ``python -m reference``, the lockstep
twin of ``npnet train --check-torch`` and the hypothesis strategies all read the
entries, so a new layer is declared once. An incomplete entry fails here, when
it is registered, not when the table is first printed::

    from reference import registry
    from reference.registry import elementwise

    registry.register(
        Square, group="activation",
        twin=lambda m, replay: TorchSquare(),
        bound=elementwise(forward=lambda b: b.y + 2 * b.ax * b.m,          # y = x^2
                          backward=lambda b: 2 * (b.ax + b.m) * b.a),      # dx = 2 x dy
        cases=lambda: [("Square", Square(), np.linspace(-3, 3, 12).reshape(3, 4), {})],
        strategy=lambda d, shape: (Square(), {}))

A subclass is compared as its closest registered base class, so a deliberately
broken ``Linear`` subclass meets a correct ``torch.nn.Linear``.
"""
import contextlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

__all__ = [
    "Entry", "register", "unregister", "scoped", "entries", "entry_for", "GROUPS",
    "Bound", "elementwise", "along_axis", "moves_values", "chain", "LossBound",
    "forward_bound", "backward_bound", "buffer_bound", "axis_sum",
]

GROUPS = ("layer", "activation", "kernel", "loss")

_ENTRIES = {}


@dataclass(frozen=True)
class Entry:
    """What the reference package knows of one npnet class (see the module docstring)."""

    cls: type
    group: str
    twin: Callable
    bound: "Bound | LossBound"
    cases: Callable
    strategy: Callable
    ndims: tuple = None

    @property
    def is_loss(self):
        return isinstance(self.bound, LossBound)

    def takes(self, ndim):
        """Whether the module takes an input of ``ndim`` axes (see ``ndims``)."""
        return self.ndims is None or ndim in self.ndims


def register(cls, *, group, twin, bound, cases, strategy, ndims=None):
    """Declare ``cls``'s torch twin, error bound, table cases and strategy hook.

    Every field is required and checked now: a missing or ill-typed one raises
    ``TypeError``/``ValueError`` naming it, and so does registering a class twice
    (unregister it first, or use :func:`scoped`).

    Returns:
        The new :class:`Entry`.
    """
    if not isinstance(cls, type):
        raise TypeError(f"register: cls must be a class, got {cls!r}")
    if cls in _ENTRIES:
        raise ValueError(f"register: {cls.__name__} is already registered; unregister it first")
    if group not in GROUPS:
        raise ValueError(f"register({cls.__name__}): group must be one of {', '.join(GROUPS)}, got {group!r}")
    for name, value in (("twin", twin), ("cases", cases), ("strategy", strategy)):
        if not callable(value):
            raise TypeError(f"register({cls.__name__}): {name} must be callable, got {value!r}")
    if group == "loss" and not isinstance(bound, LossBound):
        raise TypeError(f"register({cls.__name__}): a loss's bound must be a LossBound, got {bound!r}")
    if group != "loss" and not isinstance(bound, Bound):
        raise TypeError(f"register({cls.__name__}): bound must be a Bound (elementwise(...), along_axis(...), "
                        f"moves_values(), chain() or Bound(forward, backward, K=...)), got {bound!r}")
    if ndims is not None and not (isinstance(ndims, tuple) and all(isinstance(n, int) for n in ndims)):
        raise TypeError(f"register({cls.__name__}): ndims must be None or a tuple of ints, got {ndims!r}")
    entry = Entry(cls, group, twin, bound, cases, strategy, ndims)
    _ENTRIES[cls] = entry
    return entry


def unregister(cls):
    """Remove ``cls``'s entry (``KeyError`` if there is none)."""
    del _ENTRIES[cls]


@contextlib.contextmanager
def scoped():
    """Entries registered inside the ``with`` block are gone after it (and any removed come back)."""
    saved = dict(_ENTRIES)
    try:
        yield
    finally:
        _ENTRIES.clear()
        _ENTRIES.update(saved)


def entries(*groups):
    """The entries in registration order, only those of ``groups`` when given."""
    return [e for e in _ENTRIES.values() if not groups or e.group in groups]


def entry_for(obj):
    """The entry of ``obj``'s class or of its closest registered base class.

    Raises:
        TypeError: nothing registered for it (the message lists what is).
    """
    for cls in type(obj).__mro__:
        if cls in _ENTRIES:
            return _ENTRIES[cls]
    raise TypeError(f"no torch twin for {type(obj).__name__}; known: {', '.join(c.__name__ for c in _ENTRIES)}"
                    f" (declare one with reference.registry.register)")


# ------------------------------------------------------------- the running error bound
#
# compare judges each quantity q by max |npnet - torch| / S_q, S_q the largest
# element of an error scale carried through the computation (see reference.compare).
# A module's Bound states, for one element, how the error scale m of its input
# becomes that of its output (forward) and how the scale of the upstream
# gradient becomes that of the input gradient (backward). The rules read a
# namespace ``b``:
#
#   b.mod          the module (float64 copy)        b.mask   Dropout's mask, or None
#   b.x, b.ax      the input and |input|            b.m      the input's error scale
#   b.y            torch's output                   b.m_out  the output's error scale (backward only)
#   b.g, b.ag      upstream gradient and |g|        b.mg     its error scale
#   b.a            |g| + mg, the gradient's terms   b.e      the relative tolerance
#   b.kink         where forward error could carry x across 0 (a ReLU's gradient may flip there)
#   b.train        the twin's mode (torch's training mode: a BatchNorm normalizes with the batch's statistics)

class _Values:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def axis_sum(A, axis):
    """``A.sum(axis, keepdims=True)``: the per-row sums in a softmax-like bound."""
    return A.sum(axis=axis, keepdims=True)


class Bound:
    """A module's error-bound rule: ``forward(b) -> m_out``, ``backward(b) -> m_dx``
    or ``(m_dx, {param name: error scale of its gradient})``, and ``K(mod, x)``, the
    reduction length behind the tolerance (an int for a constant)."""

    def __init__(self, forward, backward, *, K, buffers=None):
        if not (callable(forward) and callable(backward)):
            raise TypeError(f"Bound: forward and backward must be callable, got {forward!r}, {backward!r}")
        if not (callable(K) or isinstance(K, int)):
            raise TypeError(f"Bound: K must be an int or a callable (mod, x) -> int, got {K!r}")
        if buffers is not None and not callable(buffers):
            raise TypeError(f"Bound: buffers must be None or a callable b -> {{buffer name: error scale}}, got {buffers!r}")
        self.forward, self.backward, self.K, self.buffers = forward, backward, K, buffers

    def _k(self, mod, x):
        return int(self.K(mod, x)) if callable(self.K) else self.K

    def run_forward(self, mod, tw, backward, x, m):
        """torch's output, its error scale and K, for input ``x`` with error scale ``m`` (float64)."""
        y = _run(tw, x)
        b = _Values(mod=mod, x=x, ax=np.abs(x), m=m, y=y, mask=getattr(backward, "mask", None), train=tw.training)
        return y, self.forward(b), self._k(mod, x)

    def run_buffers(self, mod, tw, backward, x, m):
        """The error scales of the buffers a forward of ``mod`` on ``x`` leaves (``mod``
        holds them as they were before it), keyed as ``mod.buffers``."""
        if self.buffers is None:
            return {}
        b = _Values(mod=mod, x=x, ax=np.abs(x), m=m, y=None, mask=getattr(backward, "mask", None), train=tw.training)
        return self.buffers(b)

    def run_backward(self, mod, tw, backward, x, m, g, mg, e):
        """torch's input gradient for upstream ``g`` (error scale ``mg``), its error
        scale and the error scales of the parameter gradients."""
        y, m_out, _ = self.run_forward(mod, tw, backward, x, m)
        ax, ag = np.abs(x), np.abs(g)
        b = _Values(mod=mod, x=x, ax=ax, m=m, y=y, m_out=m_out, g=g, ag=ag, mg=mg, a=ag + mg, e=e,
                    kink=(m > 0) & (ax <= e * m), mask=getattr(backward, "mask", None), train=tw.training)
        out = self.backward(b)
        m_dx, params = out if isinstance(out, tuple) else (out, {})
        return _vjp(tw, x, g), m_dx, params

    def __repr__(self):
        return f"{type(self).__name__}(K={self.K!r})"


def elementwise(forward, backward):
    """An elementwise module: no sums, K = 1."""
    return Bound(forward, backward, K=1)


def along_axis(forward, backward):
    """A module that reduces along ``mod.axis`` (softmax, log-softmax): K = the size of that axis."""
    return Bound(forward, backward, K=lambda mod, x: x.shape[mod.axis])


def moves_values():
    """A module that only moves values (reshape, flatten): exact, K = 1."""
    return Bound(lambda b: b.m.reshape(b.y.shape), lambda b: b.mg.reshape(b.x.shape), K=1)


class _Chain(Bound):
    """A container: each child's bound in turn, forward then backward; K adds up."""

    def __init__(self):
        pass

    def __repr__(self):
        return "chain()"

    def run_forward(self, mod, tw, backward, x, m):
        K = 0
        for child, t, b in zip(mod, tw, _children(backward, len(mod))):
            x, m, k = forward_bound(child, t, b, x, m)
            K += k
        return x, m, max(K, 1)

    def run_buffers(self, mod, tw, backward, x, m):
        scales = {}
        for i, (child, t, b) in enumerate(zip(mod, tw, _children(backward, len(mod)))):
            scales.update({f"{i}.{k}": v for k, v in buffer_bound(child, t, b, x, m).items()})
            x, m, _ = forward_bound(child, t, b, x, m)
        return scales

    def run_backward(self, mod, tw, backward, x, m, g, mg, e):
        xs, ms = [], []
        bws = _children(backward, len(mod))
        for child, t, b in zip(mod, tw, bws):
            xs.append(x)
            ms.append(m)
            x, m, _ = forward_bound(child, t, b, x, m)
        params = {}
        for i in range(len(mod) - 1, -1, -1):
            g, mg, p = backward_bound(mod[i], tw[i], bws[i], xs[i], ms[i], g, mg, e)
            params.update({f"{i}.{k}": v for k, v in p.items()})
        return g, mg, params


def chain():
    """A container of modules (Sequential): its children's bounds in turn."""
    return _Chain()


class LossBound:
    """A loss's error-bound rule: ``fn(loss, x, target, dloss, gx) -> ({"out": scale,
    "dx": scale}, K)``, ``gx`` being torch's input gradient (all float64)."""

    def __init__(self, fn):
        if not callable(fn):
            raise TypeError(f"LossBound: fn must be callable, got {fn!r}")
        self.fn = fn

    def __repr__(self):
        return f"LossBound({getattr(self.fn, '__name__', self.fn)!r})"


def forward_bound(mod, tw, backward, x, m):
    """Output, output error scale and K of a registered module (see :class:`Bound`)."""
    return entry_for(mod).bound.run_forward(mod, tw, backward, x, m)


def backward_bound(mod, tw, backward, x, m, g, mg, e):
    """Input gradient, its error scale and the parameter gradients' error scales."""
    return entry_for(mod).bound.run_backward(mod, tw, backward, x, m, g, mg, e)


def buffer_bound(mod, tw, backward, x, m):
    """The error scales of the buffers a training forward updates (BatchNorm's running statistics)."""
    return entry_for(mod).bound.run_buffers(mod, tw, backward, x, m)


def _run(tw, x):
    with torch.no_grad():
        return tw(torch.from_numpy(x)).numpy()


def _vjp(tw, x, g):
    xt = torch.from_numpy(x).requires_grad_()
    (gx,) = torch.autograd.grad(tw(xt), xt, torch.from_numpy(g))
    return gx.numpy()


def _children(backward, n):
    return getattr(backward, "children", None) or (None,) * n
