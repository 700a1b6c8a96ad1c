"""Training loops: the course's ``train_ch3``, as library functions.

Nothing here prints. Every function returns numbers, and everything a front end
wants to show (a progress bar, a table row, a comparison with torch) it gets
from callbacks::

    model = build_model("softmax", rng=np.random.default_rng(0))
    opt = optim.SGD(model.params, lr=0.1)
    result = fit(model, nn.CrossEntropyLoss(), opt, train_loader, test_loader, epochs=10,
                 checkpoint_path="runs/x/checkpoint.npz",
                 on_epoch_end=lambda r: print(r.epoch, r.train_loss, r.test_acc))

Definitions, as the course's ``train_epoch_ch3`` has them:

- ``train_loss`` and ``train_acc`` are averages over the epoch's mini-batches
  *as they train* (each batch's loss is computed with the parameters before its
  own update), weighted by batch size: sum of per-sample losses / N.
- ``test_acc`` is measured after the epoch, with dropout off.
- ``seconds`` is the wall time of the epoch's training steps (data, forward,
  backward, update), without evaluation and without time spent in callbacks.

:func:`fit` writes a checkpoint (:mod:`npnet.checkpoint`) after every epoch
(and one for epoch 0 before training), atomically, so an interrupted or
diverged run always leaves the last completed epoch on disk, and
``fit(..., resume=True)`` continues from it to exactly the parameters an
uninterrupted run reaches. The result classes live in :mod:`npnet.results`, the
model zoo in :mod:`npnet.models`, the checkpoint format in
:mod:`npnet.checkpoint`; their names are re-exported here, where they were first.
"""
import math
import time

import numpy as np

from . import _validate as V
from .checkpoint import (  # noqa: F401 (re-exported)
    CHECKPOINT_FORMAT, CHECKPOINT_VERSION, Checkpoint, first_non_finite, load_checkpoint, save_checkpoint)
from .errors import TrainingDiverged
from .models import INITS, MODELS, build_model, collect_rngs  # noqa: F401 (re-exported)
from .nn.losses import CrossEntropyLoss, NLLLoss
from .results import EpochResult, EvalStats, FitResult, StepInfo, TrainStats  # noqa: F401 (re-exported)

__all__ = [
    "MODELS", "INITS", "build_model", "collect_rngs",
    "StepInfo", "TrainStats", "EvalStats", "EpochResult", "FitResult",
    "train_epoch", "evaluate", "evaluate_accuracy", "fit",
    "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "Checkpoint", "save_checkpoint", "load_checkpoint",
]


# --------------------------------------------------------------------------- loops

def _num_correct(Y, y, name="y"):
    """How many samples of ``Y`` (N, ..., C) have their argmax at the label ``y`` (N, ...).

    ``y`` is checked as the losses check class-index targets: an integer dtype,
    exactly Y's shape without the class axis (labels of shape (N, 1) would
    broadcast against N predictions into N * N comparisons), each in [0, C).
    """
    if Y.ndim < 2:
        raise ValueError(f"model output must have shape (N, C) to be scored against labels, got {Y.shape}")
    t, _ = V.class_indices(y, name, Y.shape[-1], Y.shape[:-1], shape_hint=f" for model output of shape {Y.shape}")
    return int(np.count_nonzero(Y.argmax(axis=-1).reshape(-1) == t))


def _hits(Y, y):
    """:func:`_num_correct` for labels that a class-index loss (CrossEntropyLoss,
    NLLLoss) has just checked against ``Y``: an integer dtype, shape (N,) for Y of
    shape (N, C), each in [0, C) or the loss's ignore_index. The loss does not
    refuse ignore_index where the accuracy does, so a batch holding a label outside
    [0, C) (or any other output) takes the full check of :func:`_num_correct`."""
    if Y.ndim != 2 or y.shape != Y.shape[:1] or y.dtype.kind not in "iu" or y.min() < 0 or y.max() >= Y.shape[1]:
        return _num_correct(Y, y)
    return int(np.count_nonzero(Y.argmax(axis=1) == y))


# Overflow inside a diverging step is expected and caught by the finiteness
# check below; NumPy's RuntimeWarnings would only add noise on the way there.
_QUIET = dict(over="ignore", invalid="ignore", divide="ignore")


def _hyperparameter(optimizer, key):
    """``optimizer.param_groups[0][key]`` as a float, or None if it is not there or not a number."""
    groups = getattr(optimizer, "param_groups", None)
    try:
        value = groups[0][key]
    except (TypeError, LookupError):
        value = getattr(optimizer, key, None) if key == "lr" else None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    return float(value)


def _divergence_hint(optimizer):
    """What to try after a divergence: the lr, and momentum and weight decay when they are set."""
    lr, momentum, decay = (_hyperparameter(optimizer, k) for k in ("lr", "momentum", "weight_decay"))
    tries = ["a smaller learning rate" + (f" (lr={lr:g})" if lr is not None else "")]
    if momentum:
        tries.append(f"less momentum (momentum={momentum:g})")
    if decay:
        tries.append(f"less weight decay (weight_decay={decay:g})")
    return "try " + (tries[0] if len(tries) == 1 else ", ".join(tries[:-1]) + " or " + tries[-1])


def train_epoch(model, loss_fn, optimizer, loader, *, epoch=1, callback=None):
    """Train ``model`` for one pass over ``loader``; the course's ``train_epoch_ch3``.

    Each step: forward, loss, backward (``need_dx=False``: nothing below the
    first layer needs dX), ``optimizer.step(grads)``. Batches are cast to the
    model's dtype. A loss that is NaN or infinite stops the epoch *before* its
    update is applied.

    Args:
        model: an npnet Module (``forward(X, train=True) -> (Y, backward)``).
        loss_fn: a loss module (``forward(Y, y) -> (loss, backward)``), mean reduction.
        optimizer: an npnet optimizer over ``model.params``.
        loader: iterable of ``(X, y)`` batches with a ``len()``.
        epoch: int, the epoch number reported in callbacks and errors.
        callback: called with a :class:`StepInfo` after each step.

    Returns:
        :class:`TrainStats`: loss and accuracy averaged over samples (weighted
        by batch size), seconds of training (callbacks excluded), samples, steps.

    Raises:
        TrainingDiverged: the loss became NaN or infinite; ``.epoch``, ``.step`` say where.
    """
    dtype = V.model(model, trained=True)
    V.loss(loss_fn)
    V.optimizer(optimizer)
    steps = len(V.loader(loader, sized=True))
    epoch = V.integer(epoch, "epoch", low=0)
    V.callable_(callback, "callback")
    total_loss, correct, samples, step = 0.0, 0, 0, 0
    in_callbacks = 0.0
    forward, loss_forward, update = model.forward, loss_fn.forward, optimizer.step
    # A class-index loss checks the labels against the output on every step; the
    # accuracy then counts hits without checking them a second time.
    count_hits = _hits if isinstance(loss_fn, (CrossEntropyLoss, NLLLoss)) else _num_correct
    caller_errors = np.geterr()   # a callback runs under the caller's floating-point settings
    start = time.perf_counter()
    with np.errstate(**_QUIET):   # entered once per epoch, not once per step
        for batch in loader:
            step += 1
            X, y = V.batch(batch, step, "loader")
            if X.dtype != dtype:
                X = X.astype(dtype)
            n = int(y.shape[0])
            Y, backward = forward(X, train=True)
            loss_array, loss_backward = loss_forward(Y, y)
            loss = float(loss_array)
            if not math.isfinite(loss):
                raise TrainingDiverged(
                    f"training diverged: the loss became {loss} at epoch {epoch}, step {step} of {steps}; "
                    f"{_divergence_hint(optimizer)}",
                    epoch=epoch, step=step)
            _, grads = backward(loss_backward(), need_dx=False)
            update(grads)
            batch_correct = count_hits(Y, y)
            total_loss += loss * n       # the mean loss times the batch size: the batch's sum
            correct += batch_correct
            samples += n
            if callback is not None:
                t = time.perf_counter()
                with np.errstate(**caller_errors):
                    callback(StepInfo(epoch, step, steps, n, loss, batch_correct, X, y))
                in_callbacks += time.perf_counter() - t
    seconds = time.perf_counter() - start - in_callbacks
    if samples == 0:
        raise ValueError("loader yielded no batches; an epoch needs at least one")
    return TrainStats(total_loss / samples, correct / samples, seconds, samples, step)


def evaluate(model, loader, loss_fn=None):
    """Accuracy (and mean loss) of ``model`` over ``loader``, in inference mode.

    Args:
        model: an npnet Module; called as ``model(X)`` (dropout off).
        loader: iterable of ``(X, y)`` batches.
        loss_fn: optional loss module; its mean is weighted by batch size.

    Returns:
        :class:`EvalStats` (loss is NaN without ``loss_fn``).
    """
    dtype = V.model(model, trained=True)
    V.loader(loader)
    V.loss(loss_fn, optional=True)
    total_loss, correct, samples = 0.0, 0, 0
    with np.errstate(**_QUIET):
        for step, batch in enumerate(loader, 1):
            X, y = V.batch(batch, step, "loader")
            Y = model(X.astype(dtype, copy=False))
            n = int(y.shape[0])
            correct += _num_correct(Y, y, f"batch {step} of loader: y")
            if loss_fn is not None:
                total_loss += float(loss_fn(Y, y)) * n
            samples += n
    if samples == 0:
        raise ValueError("loader yielded no batches; nothing to evaluate")
    return EvalStats(correct / samples, total_loss / samples if loss_fn is not None else math.nan, samples)


def evaluate_accuracy(model, loader):
    """Fraction of samples in ``loader`` whose argmax prediction equals the label.

    Example:
        >>> evaluate_accuracy(model, test_loader)        # doctest: +SKIP
        0.8339
    """
    return evaluate(model, loader).accuracy


def _check_finite_state(model, optimizer, epoch):
    """Parameters and optimizer state must be finite before an epoch counts (and is checkpointed)."""
    name = first_non_finite(model.params)
    what = f"parameter {name!r}"
    if name is None and callable(getattr(optimizer, "state_dict", None)):
        name = first_non_finite(optimizer.state_dict())
        what = f"optimizer state {name!r}"
    if name is not None:
        raise TrainingDiverged(
            f"training diverged: {what} is no longer finite after epoch {epoch}; {_divergence_hint(optimizer)}",
            epoch=epoch, step=None)


def _callables(single, callbacks, method):
    out = [single] if single is not None else []
    out += [getattr(c, method) for c in callbacks if callable(getattr(c, method, None))]
    return out


def fit(model, loss_fn, optimizer, train_loader, test_loader, epochs, *, scheduler=None,
        start_epoch=0, history=(), checkpoint_path=None, resume=False, rngs=None, config=None,
        on_step=None, on_epoch_start=None, on_epoch_end=None, callbacks=()):
    """Train for epochs ``start_epoch + 1 .. epochs``, evaluating after each; the course's ``train_ch3``.

    After each epoch: evaluate on ``test_loader``, step ``scheduler`` (if any),
    check that every parameter and the optimizer's state are finite, write the checkpoint (if
    ``checkpoint_path``), then call ``on_epoch_end``. A fresh run with a
    checkpoint path also writes epoch 0 (the initial state) first, so there is
    always a checkpoint to resume from.

    Args:
        model, loss_fn, optimizer: as for :func:`train_epoch`.
        train_loader: batches to train on; its ``rng`` is checkpointed when it shuffles.
        test_loader: batches to evaluate on.
        epochs: int >= 1, the epoch to stop after (a total, not a count from start_epoch).
        scheduler: optional lr scheduler, stepped once per epoch.
        start_epoch: int >= 0, the epochs already done (set by ``resume``).
        history: earlier :class:`EpochResult` s to keep in front of the new ones.
        checkpoint_path: str or None; written atomically after every epoch.
        resume: restore model, optimizer, scheduler and generators from
            ``checkpoint_path`` and continue after its epoch (``start_epoch``
            and ``history`` then come from the checkpoint).
        rngs: dict name -> Generator saved in checkpoints; default :func:`collect_rngs`.
        config: JSON-serialisable dict stored in checkpoints (e.g. the CLI's flags).
        on_step: called with a :class:`StepInfo` after each step.
        on_epoch_start: called with the epoch number before its first step.
        on_epoch_end: called with the :class:`EpochResult` after the checkpoint is written.
        callbacks: objects with any of the methods ``on_step``, ``on_epoch_start``,
            ``on_epoch_end`` (same arguments), called after the functions above.

    Returns:
        :class:`FitResult` with the history of every epoch (earlier ones included).

    Raises:
        TrainingDiverged: a NaN/infinite loss or parameter; the last checkpoint stays.
        CheckpointError: ``resume`` and the checkpoint is missing, corrupt or does not fit.
        KeyboardInterrupt: passed through; the checkpoint of the last completed epoch stays.
    """
    # Everything is checked before the first epoch, so that no bad argument can
    # cost a finished epoch (a scheduler without step(), a path that is not one...).
    V.model(model)
    V.loss(loss_fn)
    V.optimizer(optimizer)
    V.loader(train_loader, "train_loader", sized=True)
    V.loader(test_loader, "test_loader")
    epochs = V.integer(epochs, "epochs", low=1)
    start_epoch = V.integer(start_epoch, "start_epoch", low=0)
    V.scheduler(scheduler)
    checkpoint_path = V.path(checkpoint_path, "checkpoint_path", optional=True)
    resume = V.flag(resume, "resume")
    rngs = collect_rngs(model, train_loader) if rngs is None else V.generators(rngs, "rngs")
    history = V.history(history, "history")
    for name, f in (("on_step", on_step), ("on_epoch_start", on_epoch_start), ("on_epoch_end", on_epoch_end)):
        V.callable_(f, name)
    V.callbacks(callbacks, "callbacks", ("on_step", "on_epoch_start", "on_epoch_end"))
    if checkpoint_path is not None:
        V.json_text(config, "config")
        V.optimizer(optimizer, needs=("step", "state_dict", "load_state_dict"))
        V.scheduler(scheduler, needs=("step", "state_dict", "load_state_dict"))
        if not resume and len(history) != start_epoch:
            raise ValueError(f"history must hold one EpochResult per epoch already done when checkpointing "
                             f"(start_epoch={start_epoch}), got {len(history)}; a checkpoint's metrics and "
                             "epoch must agree to load back")
    if resume:
        if checkpoint_path is None:
            raise ValueError("resume=True needs checkpoint_path")
        ckpt = load_checkpoint(checkpoint_path)
        ckpt.restore(model=model, optimizer=optimizer, scheduler=scheduler, rng=rngs)
        start_epoch, history = ckpt.epoch, ckpt.metrics
    step_fns = _callables(on_step, callbacks, "on_step")
    start_fns = _callables(on_epoch_start, callbacks, "on_epoch_start")
    end_fns = _callables(on_epoch_end, callbacks, "on_epoch_end")

    def step_callback(info):
        for f in step_fns:
            f(info)

    def save(epoch):
        save_checkpoint(checkpoint_path, model=model, optimizer=optimizer, epoch=epoch, rng=rngs,
                        scheduler=scheduler, metrics=history, config=config)

    if checkpoint_path is not None and not resume and start_epoch == 0:
        save(0)
    for epoch in range(start_epoch + 1, epochs + 1):
        for f in start_fns:
            f(epoch)
        stats = train_epoch(model, loss_fn, optimizer, train_loader, epoch=epoch,
                            callback=step_callback if step_fns else None)
        ev = evaluate(model, test_loader, loss_fn)
        if scheduler is not None:
            scheduler.step()
        _check_finite_state(model, optimizer, epoch)
        result = EpochResult(epoch, stats.loss, stats.accuracy, ev.accuracy, stats.seconds, ev.loss)
        history.append(result)
        if checkpoint_path is not None:
            save(epoch)
        for f in end_fns:
            f(result)
    return FitResult(tuple(history), start_epoch, epochs)
