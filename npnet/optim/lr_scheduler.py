"""Learning-rate schedulers, after ``torch.optim.lr_scheduler``: each sets
``optimizer.param_groups[0]["lr"]`` from a rule, once per ``step()``."""
import math

import numpy as np

from .. import _validate
from .optimizer import Optimizer

__all__ = ["LRScheduler", "StepLR", "CosineAnnealingLR", "LambdaLR"]


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
        self.optimizer = _validate.instance(optimizer, "optimizer", Optimizer, "an npnet.optim optimizer")
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
        d = _validate.keyed(state_dict, "state_dict")
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
        self.lr_lambda = _validate.function(lr_lambda, "lr_lambda", "a function of the epoch")
        super().__init__(optimizer)

    def get_lr(self):
        # checked now, not at the optimizer's next step: a NaN or negative learning rate is never set
        factor = _validate.real_number(self.lr_lambda(self.last_epoch), f"lr_lambda({self.last_epoch})", low=0.0)
        return [base_lr * factor for base_lr in self.base_lrs]
