"""Adam and AdamW, after ``torch.optim.Adam`` and ``torch.optim.AdamW``."""
import numpy as np

from .. import _validate
from .optimizer import Optimizer

__all__ = ["Adam", "AdamW"]


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
        betas = _validate.pair(group["betas"], "betas", "(beta1, beta2)")
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
