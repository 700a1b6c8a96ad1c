"""Finite-difference check of a module's hand-written gradients, in float64.

For an upstream gradient dY the objective is ``L = sum(Y * dY)``, whose gradient
with respect to any input or parameter is exactly what ``backward(dY)`` returns.
Each entry is perturbed by +-eps and ``(L(+eps) - L(-eps)) / (2 eps)`` is compared
with the analytic value: ``|analytic - numeric| <= atol + rtol * |numeric|``.

Example::

    >>> import numpy as np, npnet
    >>> layer = npnet.nn.Linear(3, 2, rng=np.random.default_rng(0))
    >>> x = np.random.default_rng(1).standard_normal((4, 3))
    >>> npnet.gradcheck(layer, x).ok
    True
"""
import copy
from dataclasses import dataclass, field

import numpy as np

from . import _validate as V
from .nn.layers import Module

__all__ = ["gradcheck", "GradcheckResult"]


@dataclass
class GradcheckResult:
    """Outcome of :func:`gradcheck`.

    Attributes:
        ok: every gradient within tolerance.
        max_abs: worst absolute error per gradient (``"input"`` and each parameter name).
        max_rel: worst relative error per gradient, |a - n| / max(|n|, atol).
        failed: names of the gradients out of tolerance.
    """

    ok: bool
    max_abs: dict = field(default_factory=dict)
    max_rel: dict = field(default_factory=dict)
    failed: list = field(default_factory=list)

    def __bool__(self):
        return self.ok


def _generators(module, seen=None):
    """Every numpy Generator a module tree holds (Dropout's), to replay its masks."""
    found = []
    for value in vars(module).values():
        if isinstance(value, np.random.Generator):
            found.append(value)
        elif isinstance(value, Module):
            found += _generators(value)
        elif isinstance(value, (list, tuple)):
            found += [g for v in value if isinstance(v, Module) for g in _generators(v)]
    return found


def gradcheck(module, x, dy=None, *, target=None, eps=1e-6, rtol=1e-5, atol=1e-8, train=True, seed=0):
    """Compare a module's analytic gradients (input and every parameter) with
    central finite differences, in float64.

    Args:
        module: an npnet module, or a loss (then pass ``target``). It is not
            changed: the check runs on a float64 deep copy.
        x: the input (any float dtype; checked in float64).
        dy: upstream gradient shaped like the output; default a random normal one
            drawn from ``seed`` (never all ones, which hides softmax bugs).
        target: for a loss module, the target passed to ``forward(x, target)``.
        eps: finite-difference step.
        rtol, atol: tolerance, ``|analytic - numeric| <= atol + rtol * |numeric|``.
        train: passed to forward (dropout's mask is replayed at every evaluation).

    Returns:
        A :class:`GradcheckResult`; ``bool(result)`` is ``result.ok``.
    """
    V.float_array(x, "x")
    eps = V.real_number(eps, "eps", low=0.0, low_open=True)
    rtol = V.real_number(rtol, "rtol", low=0.0)
    atol = V.real_number(atol, "atol", low=0.0)
    if not (isinstance(module, Module) or hasattr(module, "forward")):
        raise TypeError(f"module must be an npnet module or loss, got {V.describe(module)}")
    if not isinstance(module, Module) and target is None:
        raise TypeError(f"target is needed to check a loss ({type(module).__name__}): "
                        "gradcheck(loss, x, target=y), got target=None")
    if isinstance(module, Module) and target is not None:
        raise TypeError(f"target is for a loss; {type(module).__name__} is a layer, so pass target=None, "
                        f"got {V.describe(target)}")
    if dy is not None:
        V.float_array(dy, "dy")
    train = V.flag(train, "train")
    seed = V.integer(seed, "seed", low=0)
    is_loss = target is not None
    m = copy.deepcopy(module)
    if isinstance(m, Module):
        m.to(np.float64)
    elif getattr(m, "weight", None) is not None:
        m.weight = m.weight.astype(np.float64)
    if is_loss and isinstance(target, np.ndarray) and target.dtype.kind == "f":
        target = target.astype(np.float64)
    X = np.array(x, dtype=np.float64)
    gens = _generators(m) if isinstance(m, Module) else []
    states = [g.bit_generator.state for g in gens]

    def run(X_):
        for g, s in zip(gens, states):
            g.bit_generator.state = s
        return m.forward(X_, target) if is_loss else m.forward(X_, train=train)

    Y, backward = run(X)
    Y = np.asarray(Y, np.float64)
    if dy is None:
        dY = np.random.default_rng(seed).standard_normal(Y.shape)
    else:
        dY = np.array(dy, dtype=np.float64)
        V.same_shape(dY, "dy", Y.shape)
    if is_loss:
        analytic = {"input": backward(dY if Y.ndim else np.asarray(dY, np.float64))}
    else:
        dX, grads = backward(dY)
        analytic = {"input": dX, **grads}

    def objective():
        out, _ = run(X)
        return float(np.sum(np.asarray(out, np.float64) * dY))

    params = m.params if isinstance(m, Module) else {}
    targets = {"input": X, **params}
    result = GradcheckResult(ok=True)
    for name, A in targets.items():
        numeric = np.zeros(A.shape)
        flat = A.reshape(-1)  # a view: perturbing it perturbs what the module reads
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            up = objective()
            flat[i] = old - eps
            down = objective()
            flat[i] = old
            numeric.reshape(-1)[i] = (up - down) / (2 * eps)
        got = analytic.get(name)
        # A missing gradient, or one of the wrong shape (which would broadcast silently), fails outright.
        if got is None or np.shape(got) != numeric.shape:
            result.ok = False
            result.failed.append(name)
            result.max_abs[name] = result.max_rel[name] = float("inf")
            continue
        err = np.abs(np.asarray(got, np.float64) - numeric)
        result.max_abs[name] = float(err.max(initial=0.0))
        floor = max(atol, np.finfo(np.float64).tiny)  # atol may be 0; never divide by 0
        result.max_rel[name] = float((err / np.maximum(np.abs(numeric), floor)).max(initial=0.0))
        if not np.all(err <= atol + rtol * np.abs(numeric)):
            result.ok = False
            result.failed.append(name)
    return result
