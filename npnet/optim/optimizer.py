"""The ``Optimizer`` base class and its parameter group, a dict that checks every value as it is set.

The interface every optimizer follows is described in ``npnet.optim``'s docstring.
"""
from collections.abc import Mapping

import numpy as np

from .. import _validate

__all__ = ["Optimizer"]


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
        group = _validate.only_item(groups, "param_groups", "dict of hyperparameters", Mapping)
        return _ParamGroup(self._checked_group, group)

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
        d = _validate.keyed(state_dict, "state_dict")
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
            _validate.like(value, f"state_dict[{key!r}]", p, f"params[{name!r}]")
            new_state[name][state_name] = np.array(value, copy=True)
        for name, state in new_state.items():
            self._check_state(name, state, group)

        self.param_groups[0]._store(group)   # checked above
        self.state = new_state

    def _check_state(self, name, state, group):
        """Raise if one parameter's restored state is incomplete."""
