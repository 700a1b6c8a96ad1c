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
so float64 runs agree with torch to rounding.

The modules, as torch lays them out, simplest first: ``optimizer`` (the
``Optimizer`` base and its checked parameter group), ``sgd`` (``SGD``),
``adam`` (``Adam``, ``AdamW``) and ``lr_scheduler`` (``LRScheduler``,
``StepLR``, ``CosineAnnealingLR``, ``LambdaLR``). Every name is importable
from ``npnet.optim`` itself, and ``optim.lr_scheduler.StepLR`` works as in torch.
"""
from . import lr_scheduler
from .adam import Adam, AdamW
from .lr_scheduler import CosineAnnealingLR, LambdaLR, LRScheduler, StepLR
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "LRScheduler", "StepLR", "CosineAnnealingLR", "LambdaLR"]
