"""Optimizers and learning-rate schedulers, after ``torch.optim``, for npnet's params dicts.

The interface, once
-------------------
An optimizer is built from a module's ``params`` dict (name -> float32/float64
ndarray) and keeps only per-parameter state (momentum buffers, moment estimates)::

    opt = optim.SGD(model.params, lr=0.1, momentum=0.9)
    sched = optim.StepLR(opt, step_size=10, gamma=0.5)      # optional
    for epoch in range(epochs):
        for X, y in batches:
            logits, backward = model.forward(X)
            loss, loss_backward = loss_fn.forward(logits, y)
            _, grads = backward(loss_backward())
            opt.step(grads)                                  # params updated IN PLACE
        sched.step()

The optimizer keeps the arrays it was given (a shallow copy of the dict): build
it after anything that replaces them, such as ``model.to(np.float64)``.

``opt.step(grads)``
    ``grads`` is the dict a backward returns: exactly the keys of ``params``,
    each value an ndarray of its parameter's shape and dtype, or ``None``,
    meaning "no gradient for this parameter this step": it is skipped and its
    state left as it was (torch skips a parameter whose ``p.grad is None``).
    The arrays of ``params`` are updated in place (``p -= ...``), so layers,
    which hold references to them, see the new values. The ``grads`` arrays are
    never modified. A missing or unexpected key, a non-array, a wrong shape or
    dtype raises ``ValueError``/``TypeError`` naming the parameter *before*
    anything is touched, so a step that raises changes no parameter and no state.
``opt.lr``, ``opt.param_groups``
    One parameter group, as a list of one dict of hyperparameters
    (``opt.param_groups[0]["lr"]``...), like torch's; ``opt.lr`` reads and writes
    ``param_groups[0]["lr"]``. The group is a dict that checks every value as it
    is set (``opt.param_groups[0]["lr"] = -1`` raises there, as does a scheduler
    that would set a bad lr), so ``step`` trusts it and checks only ``grads``.
``opt.state``
    name -> dict of that parameter's state arrays, created at its first gradient.
``opt.state_dict()`` / ``opt.load_state_dict(d)``
    A flat dict of str -> numpy arrays (0-d for scalars), safe for
    ``np.savez`` and ``np.load(..., allow_pickle=False)``: ``"optimizer"`` (the
    class name), every hyperparameter (``"lr"``, ``"betas"``...), and
    ``"<state>.<param name>"`` per parameter (``"exp_avg.0.weight"``,
    ``"step.0.weight"``, ``"momentum_buffer.0.weight"``). Loading validates
    everything, then restores exact copies, so training resumes bit-identically.
    Schedulers have the same pair.

There is no ``zero_grad()``: gradients are returned by backward, never
accumulated into the layers, so there is nothing to zero.

Updates follow torch 2.13's single-tensor ("for-loop") implementations
operation by operation (same order, same scalar casts to the parameter's dtype),
so float64 runs agree with torch to rounding. Optimizers are ordered from
simplest to most complex: SGD, Adam, AdamW; then the schedulers StepLR,
CosineAnnealingLR, LambdaLR.
"""
import math
import numbers
from collections.abc import Mapping

import numpy as np

from .. import _validate

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "LRScheduler", "StepLR", "CosineAnnealingLR", "LambdaLR"]


# --------------------------------------------------------------------------- parameter groups


class _ParamGroup(dict):
    """One parameter group: a dict of hyperparameters that its optimizer checks
    as they are set, so a value that reaches ``step`` has already been checked.

    Any change (``group[k] = v``, ``update``, ``setdefault``, ``del``, ``pop``...)
    is checked on the whole would-be group first (a bad value, or a missing
    hyperparameter, raises and leaves the group as it was) and stored in the
    checked, normalised form (``betas`` a tuple of floats...).
    """

    __slots__ = ("_check",)

    def __init__(self, check, values):
        super().__init__()
        self._check = check
        dict.update(self, check(dict(values)))

    def __reduce__(self):   # copy/pickle: rebuild through __init__, not key by key
        return type(self), (self._check, dict(self))

    def _set(self, values):
        self._store(self._check(values))

    def _store(self, checked):
        """Replace every value by ``checked``, which the caller has just checked."""
        dict.clear(self)
        dict.update(self, checked)

    def __setitem__(self, key, value):
        self._set({**self, key: value})

    def __delitem__(self, key):
        values = dict(self)
        del values[key]
        self._set(values)

    def update(self, *args, **kwargs):
        self._set({**self, **dict(*args, **kwargs)})

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = default
        return self[key]

    def pop(self, key, *default):
        if key not in self and default:
            return default[0]
        value = self[key]
        del self[key]
        return value

    def popitem(self):
        key = next(reversed(self))
        return key, self.pop(key)

    def clear(self):
        self._set({})

    def __ior__(self, other):
        self.update(other)
        return self


# --------------------------------------------------------------------------- optimizers


class Optimizer:
    """Base class: one parameter group, per-parameter state, step / state_dict.

    Subclasses set ``_hyperparameters`` (the group's keys, in order),
    ``_state_names`` (per-parameter state), and implement ``_check_group``
    (validate and normalise the group dict in place) and ``_update``.
    ``_check_group`` runs when values are set (construction, any assignment
    into ``param_groups[0]``, ``opt.lr``, schedulers, ``load_state_dict``),
    never in ``step``.
    """

    _hyperparameters = ()
    _state_names = ()

    def __init__(self, params, defaults):
        group = _ParamGroup(self._checked_group, defaults)
        self.params = _validate.param_dict(params)
        self._param_groups = [group]
        self.state = {name: {} for name in self.params}

    @property
    def param_groups(self):
        """A list of one group: a dict of the hyperparameters, checked as they are set."""
        groups = self._param_groups
        if len(groups) != 1 or type(groups[0]) is not _ParamGroup or groups[0]._check != self._checked_group:
            # the list itself was edited (``opt.param_groups[0] = {...}``): check what it holds now
            self._param_groups = groups = [self._adopt(groups)]
        return groups

    @param_groups.setter
    def param_groups(self, groups):
        self._param_groups = [self._adopt(groups)]

    def _adopt(self, groups):
        if not isinstance(groups, list) or len(groups) != 1 or not isinstance(groups[0], Mapping):
            raise TypeError(f"param_groups must be a list of one dict of hyperparameters, got {_validate.describe(groups)}")
        return _ParamGroup(self._checked_group, groups[0])

    def _checked_group(self, group):
        """``group`` (a plain dict, changed in place) with every hyperparameter checked and normalised."""
        missing = [k for k in self._hyperparameters if k not in group]
        if missing:
            raise ValueError(f"param_groups[0] must hold every hyperparameter of {type(self).__name__}; missing {missing}")
        self._check_group(group)
        if "initial_lr" in group:
            group["initial_lr"] = _validate.real_number(group["initial_lr"], "initial_lr", low=0.0)
        return group

    def __repr__(self):
        hp = ", ".join(f"{k}={self.param_groups[0][k]!r}" for k in self._hyperparameters)
        return f"{type(self).__name__}({len(self.params)} parameters, {hp})"

    @property
    def lr(self):
        """The learning rate, ``param_groups[0]["lr"]``."""
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value):
        self.param_groups[0]["lr"] = value

    def _check_group(self, group):
        raise NotImplementedError

    def _update(self, p, g, state, group):
        raise NotImplementedError

    def step(self, grads):
        """Update every parameter that has a gradient, in place.

        Args:
            grads: dict name -> ndarray (same shape and dtype as the parameter)
                or None (skip this parameter this step), with exactly the keys
                of ``params``.
        """
        todo = _validate.grad_dict(grads, self.params)
        group = self.param_groups[0]   # checked when its values were set
        for name, p, g in todo:
            self._update(p, g, self.state[name], group)

    # ----------------------------------------------------------------- state

    def state_dict(self):
        """A flat dict of str -> ndarray copies; see the module docstring for the keys."""
        group = self.param_groups[0]
        d = {"optimizer": np.array(type(self).__name__)}
        for key in self._hyperparameters + (("initial_lr",) if "initial_lr" in group else ()):
            d[key] = np.array(group[key])
        for name, state in self.state.items():
            for key, value in state.items():
                d[f"{key}.{name}"] = np.array(value)
        return d

    def load_state_dict(self, state_dict):
        """Restore hyperparameters and state from ``state_dict()`` output (or ``np.load`` of it).

        Every key is checked (kind of optimizer, hyperparameter values, state
        names, parameter names, shapes, dtypes) before anything changes.
        """
        if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
            raise TypeError(f"state_dict must be a dict (or np.load result), got {_validate.describe(state_dict)}")
        d = {k: state_dict[k] for k in state_dict.keys()}
        kind = _validate.scalar(d.pop("optimizer", None), "state_dict['optimizer']")
        if kind != type(self).__name__:
            raise ValueError(f"state_dict['optimizer'] must be {type(self).__name__!r}, got {kind!r}")

        group = {}
        for key in self._hyperparameters + ("initial_lr",):
            if key not in d:
                if key == "initial_lr":
                    continue
                raise ValueError(f"state_dict is missing hyperparameter {key!r}")
            value = d.pop(key)
            if key == "betas":
                value = np.asarray(value)
                if value.shape != (2,):
                    raise ValueError(f"state_dict['betas'] must have shape (2,), got {value.shape}")
                group[key] = (value[0].item(), value[1].item())
            else:
                group[key] = _validate.scalar(value, f"state_dict[{key!r}]")
        self._checked_group(group)

        new_state = {name: {} for name in self.params}
        for key, value in d.items():
            state_name, _, name = key.partition(".")
            if state_name not in self._state_names or name not in self.params:
                raise ValueError(
                    f"state_dict has an unexpected key {key!r}; expected '<state>.<param name>' with state in "
                    f"{list(self._state_names)} and a name in {list(self.params)}"
                )
            p = self.params[name]
            if state_name == "step":
                step = _validate.scalar(value, f"state_dict[{key!r}]")
                _validate.integer(step, f"state_dict[{key!r}]", low=0)
                new_state[name][state_name] = int(step)
                continue
            if not isinstance(value, np.ndarray):
                raise TypeError(f"state_dict[{key!r}] must be a numpy.ndarray, got {_validate.describe(value)}")
            if value.dtype != p.dtype:
                raise TypeError(f"state_dict[{key!r}] must have dtype {p.dtype} like params[{name!r}], got {value.dtype}")
            if value.shape != p.shape:
                raise ValueError(f"state_dict[{key!r}] must have shape {p.shape} like params[{name!r}], got {value.shape}")
            new_state[name][state_name] = np.array(value, copy=True)
        for name, state in new_state.items():
            self._check_state(name, state, group)

        self.param_groups[0]._store(group)   # checked above
        self.state = new_state

    def _check_state(self, name, state, group):
        """Raise if one parameter's restored state is incomplete."""


class SGD(Optimizer):
    r"""Stochastic gradient descent, with optional momentum, Nesterov momentum and weight decay.

    Per parameter, with ``g`` the gradient (``-g`` if ``maximize``)::

        g = g + weight_decay * p                     if weight_decay != 0
        b = g  (first step);  b = momentum * b + (1 - dampening) * g  (later)
        g = g + momentum * b  if nesterov  else  b   if momentum != 0
        p = p - lr * g

    Same signature and defaults as ``torch.optim.SGD`` in torch 2.13 (whose
    default ``lr`` is 1e-3).

    Args:
        params: a module's params dict, name -> float ndarray, updated in place.
        lr: learning rate, >= 0.
        momentum: momentum factor, >= 0.
        dampening: dampening for momentum.
        weight_decay: L2 penalty, >= 0.
        nesterov: use Nesterov momentum (needs momentum > 0 and dampening == 0).
        maximize: maximize the objective instead of minimizing it.

    State per parameter: ``momentum_buffer`` (when momentum != 0).

    Example:
        >>> opt = SGD(model.params, lr=0.1, momentum=0.9, nesterov=True)
        >>> opt.step(grads)
    """

    _hyperparameters = ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize")
    _state_names = ("momentum_buffer",)

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, *, maximize=False):
        super().__init__(
            params,
            dict(
                lr=lr,
                momentum=momentum,
                dampening=dampening,
                weight_decay=weight_decay,
                nesterov=nesterov,
                maximize=maximize,
            ),
        )

    def _check_group(self, group):
        group["lr"] = _validate.real_number(group["lr"], "lr", low=0.0)
        group["momentum"] = _validate.real_number(group["momentum"], "momentum", low=0.0)
        group["dampening"] = _validate.real_number(group["dampening"], "dampening")
        group["weight_decay"] = _validate.real_number(group["weight_decay"], "weight_decay", low=0.0)
        group["nesterov"] = _validate.flag(group["nesterov"], "nesterov")
        group["maximize"] = _validate.flag(group["maximize"], "maximize")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                "nesterov=True requires momentum > 0 and dampening == 0, "
                f"got momentum={group['momentum']} and dampening={group['dampening']}"
            )

    def _update(self, p, g, state, group):
        dt = p.dtype.type  # torch casts every scalar to the parameter's dtype; so do we
        lr, momentum, dampening, weight_decay = group["lr"], group["momentum"], group["dampening"], group["weight_decay"]
        if group["maximize"]:
            g = -g
        if weight_decay != 0:
            g = g + dt(weight_decay) * p
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= dt(momentum)
                buf += dt(1 - dampening) * g
            g = g + dt(momentum) * buf if group["nesterov"] else buf
        p += dt(-lr) * g


class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2014), with optional AMSGrad and L2 or decoupled weight decay.

    Per parameter at step t, with ``g`` the gradient (``-g`` if ``maximize``)::

        g = g + weight_decay * p                   (L2; or p = p * (1 - lr * weight_decay) if decoupled)
        m = m + (1 - beta1) * (g - m)              (torch's lerp)
        v = beta2 * v + (1 - beta2) * g * g
        v_max = max(v_max, v);  v = v_max          if amsgrad
        step_size = lr / (1 - beta1^t)
        denom = sqrt(v) / sqrt(1 - beta2^t) + eps
        p = p - step_size * m / denom

    computed in that order, as torch's for-loop implementation does, so the
    bias corrections and eps enter exactly as in torch.

    Args:
        params: a module's params dict, name -> float ndarray, updated in place.
        lr: learning rate, >= 0.
        betas: (beta1, beta2), each in [0, 1).
        eps: added to the denominator, >= 0.
        weight_decay: L2 penalty (or decoupled decay), >= 0.
        amsgrad: use the AMSGrad variant (Reddi et al., 2018).
        maximize: maximize the objective instead of minimizing it.
        decoupled_weight_decay: decay the weights directly (AdamW) instead of
            adding ``weight_decay * p`` to the gradient.

    State per parameter: ``step`` (int), ``exp_avg``, ``exp_avg_sq``, and
    ``max_exp_avg_sq`` with amsgrad. Each parameter counts its own steps, so one
    that skipped steps (grad None) has its own bias correction, as in torch.

    Example:
        >>> opt = Adam(model.params, lr=1e-3)
        >>> opt.step(grads)
    """

    _hyperparameters = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "decoupled_weight_decay")
    _state_names = ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0.0,
        amsgrad=False,
        *,
        maximize=False,
        decoupled_weight_decay=False,
    ):
        super().__init__(
            params,
            dict(
                lr=lr,
                betas=betas,
                eps=eps,
                weight_decay=weight_decay,
                amsgrad=amsgrad,
                maximize=maximize,
                decoupled_weight_decay=decoupled_weight_decay,
            ),
        )

    def _check_group(self, group):
        group["lr"] = _validate.real_number(group["lr"], "lr", low=0.0)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair (beta1, beta2), got {_validate.describe(betas)}")
        group["betas"] = tuple(
            _validate.real_number(b, f"betas[{i}]", low=0.0, high=1.0, high_open=True) for i, b in enumerate(betas)
        )
        group["eps"] = _validate.real_number(group["eps"], "eps", low=0.0)
        group["weight_decay"] = _validate.real_number(group["weight_decay"], "weight_decay", low=0.0)
        group["amsgrad"] = _validate.flag(group["amsgrad"], "amsgrad")
        group["maximize"] = _validate.flag(group["maximize"], "maximize")
        group["decoupled_weight_decay"] = _validate.flag(group["decoupled_weight_decay"], "decoupled_weight_decay")

    def _check_state(self, name, state, group):
        if not state:
            return
        needed = {"step", "exp_avg", "exp_avg_sq"} | ({"max_exp_avg_sq"} if group["amsgrad"] else set())
        missing = sorted(needed - set(state))
        if missing:
            raise ValueError(f"state_dict has state for {name!r} but lacks {[f'{k}.{name}' for k in missing]}")

    def _update(self, p, g, state, group):
        dt = p.dtype.type
        lr, weight_decay, eps = group["lr"], group["weight_decay"], group["eps"]
        beta1, beta2 = group["betas"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(p)
            state["exp_avg_sq"] = np.zeros_like(p)
        if group["amsgrad"] and "max_exp_avg_sq" not in state:
            state["max_exp_avg_sq"] = np.zeros_like(p)
        state["step"] += 1
        step = float(state["step"])
        m, v = state["exp_avg"], state["exp_avg_sq"]

        if group["maximize"]:
            g = -g
        if weight_decay != 0:
            if group["decoupled_weight_decay"]:
                p *= dt(1 - lr * weight_decay)
            else:
                g = g + dt(weight_decay) * p

        # m.lerp_(g, 1 - beta1), with torch's two branches for small and large weights
        w = dt(1 - beta1)
        if abs(w) < 0.5:
            m += w * (g - m)
        else:
            m[...] = g - (g - m) * (dt(1) - w)
        v *= dt(beta2)
        v += (dt(1 - beta2) * g) * g

        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step
        step_size = lr / bias_correction1
        bias_correction2_sqrt = bias_correction2**0.5
        if group["amsgrad"]:
            vmax = state["max_exp_avg_sq"]
            np.maximum(vmax, v, out=vmax)
            v = vmax
        denom = np.sqrt(v) / dt(bias_correction2_sqrt) + dt(eps)
        p += (dt(-step_size) * m) / denom


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter, 2019).

    As :class:`Adam` with ``decoupled_weight_decay=True``: before the moment
    updates, ``p = p * (1 - lr * weight_decay)``; the decay never enters ``m`` or ``v``.
    Same signature and defaults as ``torch.optim.AdamW`` (``weight_decay=1e-2``).

    Args:
        params: a module's params dict, name -> float ndarray, updated in place.
        lr: learning rate, >= 0.
        betas: (beta1, beta2), each in [0, 1).
        eps: added to the denominator, >= 0.
        weight_decay: decoupled weight decay coefficient, >= 0.
        amsgrad: use the AMSGrad variant.
        maximize: maximize the objective instead of minimizing it.

    Example:
        >>> opt = AdamW(model.params, lr=1e-3, weight_decay=0.05)
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *, maximize=False):
        super().__init__(
            params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize, decoupled_weight_decay=True
        )

    def _check_group(self, group):
        super()._check_group(group)
        if not group["decoupled_weight_decay"]:
            raise ValueError("AdamW always decouples weight decay; decoupled_weight_decay must be True, got False")


# --------------------------------------------------------------------------- schedulers


class LRScheduler:
    """Base class: sets ``optimizer.param_groups[0]["lr"]`` from a rule, once per ``step()``.

    As in torch, construction records ``initial_lr`` in the group (if absent),
    takes it as ``base_lrs[0]`` and performs step 0 (``last_epoch = 0``). Call
    ``scheduler.step()`` after ``optimizer.step(grads)``, once per epoch (or
    once per however many optimizer steps the schedule counts). Torch's
    deprecated ``step(epoch)`` form and its ``last_epoch=`` argument are not
    offered: resume with ``load_state_dict``. Subclasses implement ``get_lr()``.
    """

    _hyperparameters = ()

    def __init__(self, optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be an npnet.optim optimizer, got {_validate.describe(optimizer)}")
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = -1
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def __repr__(self):
        hp = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._hyperparameters)
        return f"{type(self).__name__}({hp}, last_epoch={self.last_epoch})"

    def get_lr(self):
        """The learning rates for ``last_epoch`` (a list, one per group)."""
        raise NotImplementedError

    def get_last_lr(self):
        """The learning rates set by the latest ``step()``, as a list (one per group)."""
        return list(self._last_lr)

    def step(self):
        """Advance ``last_epoch`` by one and write the new lr into the optimizer."""
        self._step_count += 1
        self.last_epoch += 1
        values = self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self):
        """A flat dict of str -> ndarray: ``scheduler``, ``last_epoch``, ``step_count``,
        ``base_lrs``, ``last_lr`` and the scheduler's hyperparameters."""
        d = {
            "scheduler": np.array(type(self).__name__),
            "last_epoch": np.array(self.last_epoch),
            "step_count": np.array(self._step_count),
            "base_lrs": np.array(self.base_lrs, dtype=np.float64),
            "last_lr": np.array(self._last_lr, dtype=np.float64),
        }
        for key in self._hyperparameters:
            d[key] = np.array(getattr(self, key))
        return d

    def load_state_dict(self, state_dict):
        """Restore from ``state_dict()`` output (or ``np.load`` of it), after checking every key."""
        if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
            raise TypeError(f"state_dict must be a dict (or np.load result), got {_validate.describe(state_dict)}")
        d = {k: state_dict[k] for k in state_dict.keys()}
        kind = _validate.scalar(d.get("scheduler"), "state_dict['scheduler']")
        if kind != type(self).__name__:
            raise ValueError(f"state_dict['scheduler'] must be {type(self).__name__!r}, got {kind!r}")
        expected = {"scheduler", "last_epoch", "step_count", "base_lrs", "last_lr", *self._hyperparameters}
        if set(d) != expected:
            raise ValueError(
                f"state_dict keys must be {sorted(expected)}; missing {sorted(expected - set(d))}, "
                f"unexpected {sorted(set(d) - expected)}"
            )
        last_epoch = _validate.integer(_validate.scalar(d["last_epoch"], "state_dict['last_epoch']"), "last_epoch", low=0)
        step_count = _validate.integer(_validate.scalar(d["step_count"], "state_dict['step_count']"), "step_count", low=1)
        lists = {}
        for key in ("base_lrs", "last_lr"):
            value = np.asarray(d[key])
            if value.shape != (len(self.optimizer.param_groups),) or value.dtype.kind != "f":
                raise ValueError(
                    f"state_dict[{key!r}] must be a float array of shape ({len(self.optimizer.param_groups)},), "
                    f"got {_validate.describe(value)}"
                )
            lists[key] = [_validate.real_number(x, f"{key}[{i}]", low=0.0) for i, x in enumerate(value.tolist())]
        hyper = {key: self._check_hyperparameter(key, _validate.scalar(d[key], f"state_dict[{key!r}]")) for key in self._hyperparameters}
        for key, value in hyper.items():
            setattr(self, key, value)
        self.last_epoch, self._step_count = last_epoch, step_count
        self.base_lrs, self._last_lr = lists["base_lrs"], lists["last_lr"]

    def _check_hyperparameter(self, key, value):
        raise NotImplementedError


class StepLR(LRScheduler):
    r"""Multiply the learning rate by ``gamma`` every ``step_size`` scheduler steps.

    ``lr_epoch = base_lr * gamma ** (epoch // step_size)``, applied (as torch does)
    multiplicatively to the current lr: at each epoch that is a positive multiple
    of ``step_size``, ``lr = lr * gamma``.

    Args:
        optimizer: an npnet optimizer.
        step_size: period of the decay, an integer >= 1.
        gamma: multiplicative factor, >= 0 (default 0.1).

    Example:
        >>> sched = StepLR(opt, step_size=30, gamma=0.1)   # lr 0.05, 0.005 from epoch 30, ...
    """

    _hyperparameters = ("step_size", "gamma")

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.step_size = self._check_hyperparameter("step_size", step_size)
        self.gamma = self._check_hyperparameter("gamma", gamma)
        super().__init__(optimizer)

    def _check_hyperparameter(self, key, value):
        if key == "step_size":
            return _validate.integer(value, "step_size", low=1)
        return _validate.real_number(value, "gamma", low=0.0)

    def get_lr(self):
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return [group["lr"] for group in self.optimizer.param_groups]
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]


class CosineAnnealingLR(LRScheduler):
    r"""Anneal the learning rate from its initial value to ``eta_min`` along a cosine.

    Approximates ``lr_t = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2``
    with torch's recursive (chainable) form, which differs from the closed form in
    the last bits and which we mirror exactly::

        lr_t = eta_min + (lr_{t-1} - eta_min) * (1 + cos(pi t / T_max)) / (1 + cos(pi (t-1) / T_max))

    and, at the restart points ``(t - 1 - T_max) % (2 T_max) == 0``,
    ``lr_t = lr_{t-1} + (base_lr - eta_min) * (1 - cos(pi / T_max)) / 2``. Past
    ``T_max`` the schedule climbs back up (no restarts), as torch's does.

    Args:
        optimizer: an npnet optimizer.
        T_max: half period, an integer >= 1 (usually the number of epochs).
        eta_min: minimum learning rate, >= 0 (default 0).

    Example:
        >>> sched = CosineAnnealingLR(opt, T_max=100)
    """

    _hyperparameters = ("T_max", "eta_min")

    def __init__(self, optimizer, T_max, eta_min=0.0):
        self.T_max = self._check_hyperparameter("T_max", T_max)
        self.eta_min = self._check_hyperparameter("eta_min", eta_min)
        super().__init__(optimizer)

    def _check_hyperparameter(self, key, value):
        if key == "T_max":
            return _validate.integer(value, "T_max", low=1)
        return _validate.real_number(value, "eta_min", low=0.0)

    def get_lr(self):
        groups = self.optimizer.param_groups
        if self._is_initial:
            return [group["lr"] for group in groups]
        if (self.last_epoch - 1 - self.T_max) % (2 * self.T_max) == 0:
            return [
                group["lr"] + (base_lr - self.eta_min) * (1 - math.cos(math.pi / self.T_max)) / 2
                for base_lr, group in zip(self.base_lrs, groups)
            ]
        return [
            (1 + math.cos(math.pi * self.last_epoch / self.T_max))
            / (1 + math.cos(math.pi * (self.last_epoch - 1) / self.T_max))
            * (group["lr"] - self.eta_min)
            + self.eta_min
            for group in groups
        ]


class LambdaLR(LRScheduler):
    r"""Set the learning rate to ``base_lr * lr_lambda(epoch)``.

    Applied at construction too (epoch 0), as torch does. ``lr_lambda`` itself
    is not part of ``state_dict()``; pass the same function when resuming.

    Args:
        optimizer: an npnet optimizer.
        lr_lambda: a function of the integer epoch returning a real factor.

    Example:
        >>> sched = LambdaLR(opt, lambda epoch: min(1.0, (epoch + 1) / 5))   # linear warm-up
    """

    def __init__(self, optimizer, lr_lambda):
        if not callable(lr_lambda):
            raise TypeError(f"lr_lambda must be a function of the epoch, got {_validate.describe(lr_lambda)}")
        self.lr_lambda = lr_lambda
        super().__init__(optimizer)

    def get_lr(self):
        factor = self.lr_lambda(self.last_epoch)
        if isinstance(factor, (bool, np.bool_)) or not isinstance(factor, numbers.Real):
            raise TypeError(f"lr_lambda({self.last_epoch}) must return a real number, got {_validate.describe(factor)}")
        # checked now, not at the optimizer's next step: a NaN or negative learning rate is never set
        factor = _validate.real_number(factor, f"lr_lambda({self.last_epoch})", low=0.0)
        return [base_lr * factor for base_lr in self.base_lrs]
