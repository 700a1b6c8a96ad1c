"""Stochastic gradient descent, after ``torch.optim.SGD``."""
from .. import _validate
from .optimizer import Optimizer

__all__ = ["SGD"]


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
