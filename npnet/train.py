"""Training loops and checkpoints: the course's ``train_ch3``, as library functions.

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

Checkpoints (:func:`save_checkpoint`, :func:`load_checkpoint`) are ``.npz``
files readable by ``np.load(path, allow_pickle=False)``; see
:func:`save_checkpoint` for the layout. :func:`fit` writes one after every
epoch (and one for epoch 0 before training), atomically, so an interrupted or
diverged run always leaves the last completed epoch on disk, and
``fit(..., resume=True)`` continues from it to exactly the parameters an
uninterrupted run reaches.
"""
import dataclasses
import hashlib
import json
import math
import os
import time
import zipfile

import numpy as np

from . import __version__
from . import _io
from . import _validate as V
from . import nn
from .errors import CheckpointError, TrainingDiverged
from .models import INITS, MODELS, _modules, build_model, collect_rngs  # noqa: F401 (the model zoo; re-exported)

__all__ = [
    "MODELS", "INITS", "build_model", "collect_rngs",
    "StepInfo", "TrainStats", "EvalStats", "EpochResult", "FitResult",
    "train_epoch", "evaluate", "evaluate_accuracy", "fit",
    "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "Checkpoint", "save_checkpoint", "load_checkpoint",
    "TorchTwin",
]


# --------------------------------------------------------------------------- results

@dataclasses.dataclass(frozen=True)
class StepInfo:
    """What a per-step callback sees, after the step's update.

    ``loss`` is the batch's mean loss before the update; ``X`` (cast to the
    model's dtype) and ``y`` are the batch itself (for a twin to replay).
    """

    epoch: int
    step: int          # 1-based, within the epoch
    steps: int         # number of steps in the epoch
    batch_size: int
    loss: float
    correct: int
    X: np.ndarray
    y: np.ndarray


@dataclasses.dataclass(frozen=True)
class TrainStats:
    """One epoch of training: batch-size-weighted averages of what the batches saw."""

    loss: float
    accuracy: float
    seconds: float
    samples: int
    steps: int


@dataclasses.dataclass(frozen=True)
class EvalStats:
    """Accuracy (and mean loss, when a loss function was given) over a whole loader."""

    accuracy: float
    loss: float
    samples: int


@dataclasses.dataclass(frozen=True)
class EpochResult:
    """One row of a run's history: the numbers of metrics.csv, plus the test loss."""

    epoch: int
    train_loss: float
    train_acc: float
    test_acc: float
    seconds: float
    test_loss: float = math.nan

    COLUMNS = ("epoch", "train_loss", "train_acc", "test_acc", "seconds")   # metrics.csv, in order

    def as_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class FitResult:
    """What :func:`fit` returns: the whole history, earlier (resumed) epochs included."""

    history: tuple
    start_epoch: int   # the epoch training started after (0, or the checkpoint's when resuming)
    epochs: int

    @property
    def final(self):
        """The last epoch's :class:`EpochResult` (None if no epoch exists)."""
        return self.history[-1] if self.history else None


# --------------------------------------------------------------------------- argument checks

def _check_model(model, name="model"):
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be an npnet Module (e.g. from build_model), got {V.describe(model)}")
    return model


def _check_loss(loss_fn, name="loss_fn", *, optional=False):
    if loss_fn is None and optional:
        return None
    if not callable(getattr(loss_fn, "forward", None)):
        raise TypeError(f"{name} must be an npnet loss such as nn.CrossEntropyLoss(), got {V.describe(loss_fn)}")
    return loss_fn


def _check_optimizer(optimizer, name="optimizer", *, optional=False, needs=("step",)):
    if optimizer is None and optional:
        return None
    if not all(callable(getattr(optimizer, m, None)) for m in needs):
        raise TypeError(f"{name} must be an npnet.optim optimizer (e.g. optim.SGD(model.params, lr=0.1)), "
                        f"got {V.describe(optimizer)}")
    return optimizer


def _check_scheduler(scheduler, name="scheduler", *, needs=("step",)):
    if scheduler is None:
        return None
    if not all(callable(getattr(scheduler, m, None)) for m in needs):
        raise TypeError(f"{name} must be an npnet.optim scheduler or None, got {V.describe(scheduler)}")
    return scheduler


def _check_loader(loader, name="loader", *, sized=False):
    if isinstance(loader, (str, bytes, dict, np.ndarray)) or not hasattr(loader, "__iter__"):
        raise TypeError(f"{name} must be an iterable of (X, y) batches such as a DataLoader, got {V.describe(loader)}")
    if sized and not hasattr(loader, "__len__"):
        raise TypeError(f"{name} must have a len() (the number of batches), as a DataLoader or a list has; "
                        f"got {V.describe(loader)}")
    return loader


def _check_callable(value, name):
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be a function or None, got {V.describe(value)}")
    return value


def _check_batch(batch, step, name):
    """One (X, y) batch of a loader: numeric arrays with the same, non-zero number of samples."""
    where = f"batch {step} of {name}"
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
        raise TypeError(f"{where} must be a pair (X, y) of numpy arrays, got {V.describe(batch)}")
    X, y = batch
    if not isinstance(X, np.ndarray) or X.dtype.kind not in "uif":
        raise TypeError(f"{where}: X must be a numpy.ndarray of real numbers (uint8 or float images), "
                        f"got {V.describe(X)}")
    if not isinstance(y, np.ndarray):
        raise TypeError(f"{where}: y must be a numpy.ndarray of labels, got {V.describe(y)}")
    if X.ndim < 1 or y.ndim < 1 or X.shape[0] != y.shape[0]:
        raise ValueError(f"{where}: X and y must have the same number of samples on axis 0, "
                         f"got shapes {X.shape} and {y.shape}")
    if X.shape[0] == 0:
        raise ValueError(f"{where} is empty (0 samples); a loader must not yield empty batches "
                         "(a mean loss over none is NaN)")
    return X, y


def _check_history(history, name):
    """A list of EpochResult (or dicts with its fields), as EpochResults."""
    if not isinstance(history, (list, tuple)):
        raise TypeError(f"{name} must be a list of EpochResult, got {V.describe(history)}")
    fields = {f.name for f in dataclasses.fields(EpochResult)}
    out = []
    for i, r in enumerate(history):
        if isinstance(r, EpochResult):
            out.append(r)
            continue
        if not isinstance(r, dict) or not set(r) <= fields or not set(EpochResult.COLUMNS) <= set(r):
            raise TypeError(f"{name}[{i}] must be an EpochResult or a dict with the keys {sorted(fields)}, "
                            f"got {V.describe(r)}")
        out.append(EpochResult(**r))
    return out


def _check_rngs(rng, name, *, optional=False):
    """A Generator (saved as "rng") or a dict name -> Generator."""
    if rng is None and optional:
        return None
    if isinstance(rng, np.random.Generator):
        return {"rng": rng}
    if not isinstance(rng, dict):
        raise TypeError(f"{name} must be a numpy.random.Generator or a dict of name -> Generator, "
                        f"got {V.describe(rng)}")
    for k, g in rng.items():
        if not isinstance(k, str):
            raise TypeError(f"{name} keys must be str (generator names), got {V.describe(k)}")
        if not isinstance(g, np.random.Generator):
            raise TypeError(f"{name}[{k!r}] must be a numpy.random.Generator, got {V.describe(g)}; "
                            "use np.random.default_rng(seed)")
    return dict(rng)


def _check_config(config):
    try:
        json.dumps(config, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"config must be JSON-serialisable to go into a checkpoint: {e}") from None
    return config


# --------------------------------------------------------------------------- loops

def _model_dtype(model):
    dtype = _check_model(model).dtype
    if dtype is None:
        raise ValueError(f"model has no parameters to train: {model!r}")
    return dtype


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
    dtype = _model_dtype(model)
    _check_loss(loss_fn)
    _check_optimizer(optimizer)
    steps = len(_check_loader(loader, sized=True))
    epoch = V.integer(epoch, "epoch", low=0)
    _check_callable(callback, "callback")
    total_loss, correct, samples, step = 0.0, 0, 0, 0
    in_callbacks = 0.0
    start = time.perf_counter()
    for batch in loader:
        step += 1
        X, y = _check_batch(batch, step, "loader")
        X = X.astype(dtype, copy=False)
        n = int(y.shape[0])
        with np.errstate(**_QUIET):
            Y, backward = model.forward(X, train=True)
            loss_array, loss_backward = loss_fn.forward(Y, y)
            loss = float(loss_array)
            if not math.isfinite(loss):
                raise TrainingDiverged(
                    f"training diverged: the loss became {loss} at epoch {epoch}, step {step} of {steps}; "
                    f"{_divergence_hint(optimizer)}",
                    epoch=epoch, step=step)
            _, grads = backward(loss_backward(), need_dx=False)
            optimizer.step(grads)
        batch_correct = _num_correct(Y, y)
        total_loss += loss * n       # the mean loss times the batch size: the batch's sum
        correct += batch_correct
        samples += n
        if callback is not None:
            t = time.perf_counter()
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
    dtype = _model_dtype(model)
    _check_loader(loader)
    _check_loss(loss_fn, optional=True)
    total_loss, correct, samples = 0.0, 0, 0
    with np.errstate(**_QUIET):
        for step, batch in enumerate(loader, 1):
            X, y = _check_batch(batch, step, "loader")
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


def _non_finite(arrays):
    """The first key of ``arrays`` whose float array holds NaN or inf, or None."""
    for key, a in arrays.items():
        a = np.asarray(a)
        if a.dtype.kind in "fc" and not np.all(np.isfinite(a)):
            return key
    return None


def _check_finite_state(model, optimizer, epoch):
    """Parameters and optimizer state must be finite before an epoch counts (and is checkpointed)."""
    name = _non_finite(model.params)
    what = f"parameter {name!r}"
    if name is None and callable(getattr(optimizer, "state_dict", None)):
        name = _non_finite(optimizer.state_dict())
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
    _check_model(model)
    _check_loss(loss_fn)
    _check_optimizer(optimizer)
    _check_loader(train_loader, "train_loader", sized=True)
    _check_loader(test_loader, "test_loader")
    epochs = V.integer(epochs, "epochs", low=1)
    start_epoch = V.integer(start_epoch, "start_epoch", low=0)
    _check_scheduler(scheduler)
    checkpoint_path = V.path(checkpoint_path, "checkpoint_path", optional=True)
    resume = V.flag(resume, "resume")
    rngs = collect_rngs(model, train_loader) if rngs is None else _check_rngs(rngs, "rngs")
    history = _check_history(history, "history")
    for name, f in (("on_step", on_step), ("on_epoch_start", on_epoch_start), ("on_epoch_end", on_epoch_end)):
        _check_callable(f, name)
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"callbacks must be a list or tuple of objects with on_step, on_epoch_start or "
                        f"on_epoch_end methods, got {V.describe(callbacks)}")
    for i, c in enumerate(callbacks):
        if not any(callable(getattr(c, m, None)) for m in ("on_step", "on_epoch_start", "on_epoch_end")):
            raise TypeError(f"callbacks[{i}] must be an object with on_step, on_epoch_start or on_epoch_end "
                            f"methods, got {V.describe(c)}")
    if checkpoint_path is not None:
        _check_config(config)
        _check_optimizer(optimizer, needs=("step", "state_dict", "load_state_dict"))
        _check_scheduler(scheduler, needs=("step", "state_dict", "load_state_dict"))
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


# --------------------------------------------------------------------------- checkpoints

CHECKPOINT_FORMAT = "npnet-checkpoint"
CHECKPOINT_VERSION = 1
_PREFIXES = ("param/", "optim/", "sched/", "rng/", "rngtype/", "metrics/")
_SCALARS = ("format", "version", "epoch", "checksum", "config", "npnet_version")
_RNG_TYPES = ("PCG64", "PCG64DXSM")   # same state layout: two 128-bit ints and a buffered uint32
_U64 = (1 << 64) - 1


def _encode_rng(name, gen):
    """A PCG64 state as uint64 [state_hi, state_lo, inc_hi, inc_lo, has_uint32, uinteger]."""
    V.generator(gen, f"rng[{name!r}]")
    st = gen.bit_generator.state
    kind = st["bit_generator"]
    if kind not in _RNG_TYPES:
        raise CheckpointError(f"rng[{name!r}] uses {kind}; checkpoints hold PCG64 generators only "
                              "(np.random.default_rng makes them)")
    s, inc = st["state"]["state"], st["state"]["inc"]
    words = [s >> 64, s & _U64, inc >> 64, inc & _U64, st["has_uint32"], st["uinteger"]]
    return np.array(words, dtype=np.uint64), np.array(kind)


def _decode_rng(words, kind):
    w = [int(x) for x in words]
    return {"bit_generator": kind, "state": {"state": (w[0] << 64) | w[1], "inc": (w[2] << 64) | w[3]},
            "has_uint32": w[4], "uinteger": w[5]}


def _digest(arrays):
    """SHA-256 over the sorted key names, each array's dtype, shape and bytes."""
    h = hashlib.sha256()
    for key in sorted(k for k in arrays if k != "checksum"):
        a = np.ascontiguousarray(arrays[key])
        h.update(key.encode("utf-8") + b"\0")
        h.update(a.dtype.str.encode() + b"\0" + repr(a.shape).encode() + b"\0")
        h.update(a.tobytes())
    return h.hexdigest()


def _atomic_write(path, write):
    """Call ``write(fileobj)`` on a temp file next to ``path``, then put it in
    place in one step (:func:`npnet._io.atomic_write`): an exception or Ctrl-C
    leaves ``path`` as it was, a SIGKILL never leaves half a file there."""
    _io.atomic_write(path, lambda f, _: write(f))


def save_checkpoint(path, *, model, optimizer, epoch, rng, scheduler=None, metrics=(), config=None):
    """Write a training checkpoint to ``path`` (an ``.npz``), atomically.

    The archive holds only plain arrays (``np.load(path, allow_pickle=False)``
    reads it):

    ========================  =====================================================
    ``format``, ``version``   ``"npnet-checkpoint"``, 1
    ``epoch``                 int64, the number of completed epochs
    ``param/<name>``          each of ``model.params`` ("param/1.weight", ...)
    ``optim/<key>``           ``optimizer.state_dict()``
    ``sched/<key>``           ``scheduler.state_dict()``, when there is a scheduler
    ``rng/<name>``            uint64 (6,): PCG64 state and increment as (high, low)
                              64-bit halves, ``has_uint32``, ``uinteger``
    ``rngtype/<name>``        "PCG64" or "PCG64DXSM"
    ``metrics/<column>``      float64 per epoch: epoch, train_loss, train_acc, test_acc, seconds, test_loss
    ``config``                JSON text of ``config``
    ``npnet_version``         the writer's npnet version (informational)
    ``checksum``              SHA-256 hex over sorted key names + dtype + shape + bytes of every other array
    ========================  =====================================================

    The file is written to a temp file in the same directory, flushed, fsynced
    and renamed over ``path``: a crash at any moment leaves either the old
    checkpoint or the new one, never a mix.

    Args:
        path: str or os.PathLike; its directory must exist.
        model: the module whose ``params`` to save.
        optimizer: an npnet optimizer (its ``state_dict()``).
        epoch: int >= 0, completed epochs.
        rng: a numpy Generator (saved as "rng") or a dict name -> Generator:
            every generator the run draws from (shuffling, dropout).
        scheduler: optional scheduler with ``state_dict()``.
        metrics: sequence of :class:`EpochResult` (or dicts with its fields).
        config: JSON-serialisable dict, or None.

    Raises:
        CheckpointError: something cannot be stored without pickle, a parameter or
            an optimizer state array holds NaN or inf (:func:`load_checkpoint`
            would refuse it), or the write failed.
    """
    path = V.path(path, "path")
    _check_model(model)
    _check_optimizer(optimizer, needs=("state_dict",))
    epoch = V.integer(epoch, "epoch", low=0)
    rngs = _check_rngs(rng, "rng")
    _check_scheduler(scheduler, needs=("state_dict",))
    metrics = _check_history(metrics, "metrics")
    arrays = {
        "format": np.array(CHECKPOINT_FORMAT),
        "version": np.array(CHECKPOINT_VERSION, dtype=np.int64),
        "epoch": np.array(epoch, dtype=np.int64),
        "npnet_version": np.array(__version__),
    }
    for prefix, d in (("param/", model.params), ("optim/", optimizer.state_dict()),
                      ("sched/", scheduler.state_dict() if scheduler is not None else {})):
        for k, v in d.items():
            arrays[prefix + k] = np.array(v)   # a copy: the saved bytes are the ones hashed
    bad = _non_finite({k: a for k, a in arrays.items() if k.startswith(("param/", "optim/"))})
    if bad is not None:
        raise CheckpointError(f"cannot save {bad!r}: it holds NaN or inf, and a checkpoint of a diverged model "
                              "could not be loaded back")
    for name, gen in rngs.items():
        arrays["rng/" + name], arrays["rngtype/" + name] = _encode_rng(name, gen)
    rows = [r.as_dict() for r in metrics]
    for col in (f.name for f in dataclasses.fields(EpochResult)):
        arrays["metrics/" + col] = np.array([float(r.get(col, math.nan)) for r in rows], dtype=np.float64)
    try:
        arrays["config"] = np.array(json.dumps(config, sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"config must be JSON-serialisable to go into a checkpoint: {e}") from None
    for k, a in arrays.items():
        if a.dtype.kind not in "biufU":
            raise CheckpointError(f"cannot store {k!r} (dtype {a.dtype}) in a checkpoint without pickle")
    arrays["checksum"] = np.array(_digest(arrays))
    try:
        _atomic_write(path, lambda f: np.savez(f, allow_pickle=False, **arrays))
    except OSError as e:
        raise CheckpointError(f"cannot write checkpoint {path}: {e.strerror or e}") from None


@dataclasses.dataclass
class Checkpoint:
    """A checkpoint read back and verified by :func:`load_checkpoint`."""

    path: str
    version: int
    epoch: int
    params: dict       # name -> ndarray
    optimizer: dict    # the optimizer's state_dict
    scheduler: dict    # the scheduler's state_dict, or None
    rng: dict          # name -> bit_generator.state dict
    metrics: list      # EpochResult per completed epoch
    config: dict       # or None

    def restore(self, *, model, optimizer=None, scheduler=None, rng=None):
        """Put the saved state into live objects: parameters, optimizer, scheduler, generators.

        The model's parameter names, shapes and dtypes, the optimizer's and the
        scheduler's state and the generators' names are all checked before the
        model is touched.

        Args:
            model: the module to load the parameters into (in place).
            optimizer, scheduler: optional; loaded from the saved state dicts.
            rng: a Generator or dict name -> Generator (the names that were saved).

        Raises:
            CheckpointError: anything does not fit; the message names it.
        """
        where = f"checkpoint {self.path}"
        params = _check_model(model).params
        _check_optimizer(optimizer, optional=True, needs=("state_dict", "load_state_dict"))
        _check_scheduler(scheduler, needs=("load_state_dict",))
        _check_rngs(rng, "rng", optional=True)
        missing, extra = sorted(set(params) - set(self.params)), sorted(set(self.params) - set(params))
        if missing or extra:
            raise CheckpointError(f"{where} does not fit this model: missing parameters {missing}, "
                                  f"unexpected {extra}")
        for k, p in params.items():
            v = self.params[k]
            if v.shape != p.shape:
                raise CheckpointError(f"{where} does not fit this model: {k!r} has shape {v.shape} in the "
                                      f"checkpoint but {p.shape} in the model")
            if v.dtype != p.dtype:
                raise CheckpointError(f"{where} does not fit this model: {k!r} is {v.dtype} in the "
                                      f"checkpoint but {p.dtype} in the model")
        rngs = {} if rng is None else ({"rng": rng} if isinstance(rng, np.random.Generator) else dict(rng))
        if rng is not None and set(rngs) != set(self.rng):
            raise CheckpointError(f"{where} holds the generators {sorted(self.rng)}, "
                                  f"but this run draws from {sorted(rngs)}")
        for name, gen in rngs.items():
            kind = gen.bit_generator.state["bit_generator"]
            if kind != self.rng[name]["bit_generator"]:
                raise CheckpointError(f"{where}: generator {name!r} is {self.rng[name]['bit_generator']}, "
                                      f"the run's is {kind}")
        if scheduler is not None and self.scheduler is None:
            raise CheckpointError(f"{where} holds no scheduler state, but the run has a scheduler")
        if scheduler is None and self.scheduler is not None and optimizer is not None:
            raise CheckpointError(f"{where} holds scheduler state, but the run has no scheduler; "
                                  "resuming without it would change the learning rates")
        # Each load_state_dict checks everything before it changes anything; if the
        # scheduler's fails after the optimizer's succeeded, put the optimizer back.
        before = optimizer.state_dict() if optimizer is not None else None
        for what, obj, state in (("optimizer", optimizer, self.optimizer), ("scheduler", scheduler, self.scheduler)):
            if obj is None:
                continue
            try:
                obj.load_state_dict(state)
            except (ValueError, TypeError) as e:
                if what == "scheduler" and before is not None:
                    optimizer.load_state_dict(before)
                raise CheckpointError(f"{where}: the saved {what} state does not fit: {e}") from None
        model.load_state_dict(self.params)
        for name, gen in rngs.items():
            gen.bit_generator.state = self.rng[name]


def _refuse(path, why):
    return CheckpointError(f"checkpoint {path}: {why}")


_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_ZIP_METHODS = {zipfile.ZIP_DEFLATED: "deflate", zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "lzma"}


def _check_archive(path, f, size):
    """Look at every member of an .npz before np.load does, and refuse what it would
    misread or allocate too much for.

    np.load allocates an array of the shape a member's .npy header claims before
    it reads the data, so a 200-byte file could ask for terabytes. Here each
    member must be an .npy array, stored (npnet never compresses a checkpoint:
    inflating a deflated member costs memory and time before the checksum can
    refuse it, about 1000 times its size), whose claimed size fits in the bytes
    the member really holds, with no Python objects (pickle). Only the zip
    directory and the .npy headers are read.
    """
    try:
        with zipfile.ZipFile(f) as zf:
            stored = 0
            for info in zf.infolist():
                name = info.filename
                if not name.endswith(".npy"):
                    raise _refuse(path, f"unexpected member {name!r}; an npnet checkpoint holds only .npy arrays")
                if info.compress_type != zipfile.ZIP_STORED:
                    method = _ZIP_METHODS.get(info.compress_type, f"method {info.compress_type}")
                    raise _refuse(path, f"member {name!r} is compressed ({method}); npnet writes checkpoints "
                                        "uncompressed (np.savez, not np.savez_compressed), so a compressed "
                                        "member is refused before it is inflated")
                stored += info.compress_size
                if info.file_size > info.compress_size or stored > size:
                    raise _refuse(path, f"member {name!r} claims {info.file_size} bytes, more than the file "
                                        f"holds for it; the file is corrupt")
                with zf.open(info) as m:
                    version = np.lib.format.read_magic(m)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(m)
                    elif version == (2, 0):
                        shape, _, dtype = np.lib.format.read_array_header_2_0(m)
                    else:
                        raise _refuse(path, f"member {name!r} is an .npy of version {version}, which npnet "
                                            "does not write")
                    key = name[:-4]
                    if dtype.hasobject:
                        raise _refuse(path, f"array {key!r} holds pickled Python objects; npnet checkpoints "
                                            "never do, and loading a pickle can run arbitrary code, so it is "
                                            "refused")
                    claimed = math.prod(shape) * dtype.itemsize
                    if claimed > info.file_size - m.tell():
                        raise _refuse(path, f"array {key!r} claims shape {shape} of {dtype} ({claimed} bytes) "
                                            f"but its member holds {max(info.file_size - m.tell(), 0)}; "
                                            "the file is corrupt")
    except CheckpointError:
        raise
    except Exception as e:   # noqa: BLE001 - zipfile and the .npy header parser fail in many ways
        raise _refuse(path, f"corrupt .npz archive ({type(e).__name__}: {e})") from None


def load_checkpoint(path):
    """Read and verify a checkpoint written by :func:`save_checkpoint`.

    Refused with a :class:`~npnet.errors.CheckpointError` that says why: a
    missing or unreadable file, not an npz archive, a compressed member (npnet
    never writes one; refused before it is inflated), a pickle-bearing array
    (npnet never writes one, and loading one could run arbitrary code), another
    format, another format version, a checksum that does not match (a flipped
    byte), malformed entries, or parameters or optimizer state holding NaN or
    inf (npnet never saves them). Whether the shapes fit a model is checked by
    :meth:`Checkpoint.restore`.

    Args:
        path: str or os.PathLike.

    Returns:
        :class:`Checkpoint`.
    """
    path = V.path(path, "path")
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(8)
            if head.startswith(_ZIP_MAGICS):
                f.seek(0)
                _check_archive(path, f, size)
    except FileNotFoundError:
        raise _refuse(path, "no such file") from None
    except OSError as e:
        raise _refuse(path, f"cannot read it: {e.strerror or e}") from None
    if not head.startswith(_ZIP_MAGICS):
        if not head:
            why = "the file is empty"
        elif head.startswith(b"\x93NUMPY"):
            why = "not an npnet checkpoint: a single .npy array, not an .npz archive"
        elif head[:1] == b"\x80":
            why = ("it holds pickled data; npnet checkpoints never do, and loading a pickle can run arbitrary "
                   "code, so it is refused")
        else:
            why = f"not an npnet checkpoint: an .npz (zip) archive starts with PK, this file with {head[:4]!r}"
        raise _refuse(path, why)
    try:
        z = np.load(path, allow_pickle=False)
    except OSError as e:
        raise _refuse(path, f"cannot read it: {e.strerror or e}") from None
    except Exception as e:   # noqa: BLE001 - a damaged file can fail in many ways inside np.load
        raise _refuse(path, f"corrupt or not an .npz file ({type(e).__name__}: {e})") from None
    arrays = {}
    with z:
        for key in z.files:
            try:
                arrays[key] = z[key]
            except Exception as e:   # noqa: BLE001 - bad CRC, truncated member, broken header...
                raise _refuse(path, f"array {key!r} is corrupt ({type(e).__name__}: {e})") from None
            if not isinstance(arrays[key], np.ndarray):   # np.load returns the raw bytes of a non-.npy member
                raise _refuse(path, f"the entry {key!r} is not an .npy array")

    def scalar(key, kind):
        a = arrays.get(key)
        if a is None:
            raise _refuse(path, f"the entry {key!r} is missing; not an npnet checkpoint or a damaged one")
        if a.shape != () or a.dtype.kind not in kind:
            raise _refuse(path, f"the entry {key!r} is malformed ({a.dtype}, shape {a.shape})")
        return a.item()

    fmt = scalar("format", "U")
    if fmt != CHECKPOINT_FORMAT:
        raise _refuse(path, f"format {fmt!r} is not {CHECKPOINT_FORMAT!r}")
    version = scalar("version", "iu")
    if version != CHECKPOINT_VERSION:
        newer = " (written by a newer npnet?)" if version > CHECKPOINT_VERSION else ""
        raise _refuse(path, f"format version {version} is not supported{newer}; "
                            f"this npnet reads version {CHECKPOINT_VERSION}")
    checksum = scalar("checksum", "U")
    if checksum != _digest(arrays):
        raise _refuse(path, "checksum mismatch: the file is corrupt or was modified after it was written")

    params, optim, sched, rng_words, rng_kinds, metrics = {}, {}, {}, {}, {}, {}
    by_prefix = {"param/": params, "optim/": optim, "sched/": sched, "rng/": rng_words,
                 "rngtype/": rng_kinds, "metrics/": metrics}
    for key, a in arrays.items():
        if key in _SCALARS:
            continue
        prefix = next((p for p in _PREFIXES if key.startswith(p)), None)
        if prefix is None:
            raise _refuse(path, f"unexpected entry {key!r}")
        by_prefix[prefix][key[len(prefix):]] = a
    for name, p in params.items():
        if p.dtype not in V.FLOAT_DTYPES:
            raise _refuse(path, f"parameter {name!r} has dtype {p.dtype}, expected float32 or float64")
    for what, entries in (("parameter", params), ("optimizer state", optim)):
        bad = _non_finite(entries)
        if bad is not None:
            raise _refuse(path, f"{what} {bad!r} holds NaN or inf; the checkpoint is bad (npnet never saves a "
                                "diverged model) and cannot be resumed")
    rngs = {}
    if set(rng_words) != set(rng_kinds):
        raise _refuse(path, f"generator entries do not pair up: {sorted(rng_words)} vs {sorted(rng_kinds)}")
    for name, words in rng_words.items():
        kind = rng_kinds[name]
        if words.dtype != np.uint64 or words.shape != (6,) or kind.shape != () or kind.item() not in _RNG_TYPES:
            raise _refuse(path, f"generator {name!r} is malformed")
        rngs[name] = _decode_rng(words, kind.item())
        try:   # a state numpy would refuse, refused now rather than halfway through restore()
            getattr(np.random, kind.item())().state = rngs[name]
        except (ValueError, TypeError, OverflowError) as e:
            raise _refuse(path, f"generator {name!r} holds an invalid state ({e})") from None
    columns = [f.name for f in dataclasses.fields(EpochResult)]
    if sorted(metrics) != sorted(columns) or len({m.shape for m in metrics.values()}) != 1 \
            or any(m.ndim != 1 or m.dtype != np.float64 for m in metrics.values()):
        raise _refuse(path, f"metrics must be float64 vectors of equal length named {columns}")
    epochs_column = metrics["epoch"]
    if not np.all(np.isfinite(epochs_column)) or np.any(epochs_column != np.round(epochs_column)) \
            or np.any(np.abs(epochs_column) > 2**53):
        raise _refuse(path, "metrics/epoch must hold whole epoch numbers")
    rows = [EpochResult(**{c: (int(metrics[c][i]) if c == "epoch" else float(metrics[c][i])) for c in columns})
            for i in range(metrics["epoch"].shape[0])]
    try:
        config = json.loads(scalar("config", "U"))
    except ValueError as e:
        raise _refuse(path, f"config is not valid JSON ({e})") from None
    if config is not None and not isinstance(config, dict):
        raise _refuse(path, f"config must be a JSON object or null, got {type(config).__name__}")
    epoch = scalar("epoch", "iu")
    if epoch < 0 or len(rows) != epoch:
        raise _refuse(path, f"epoch {epoch} does not match the {len(rows)} rows of metrics")
    return Checkpoint(path, version, int(epoch), params, optim, sched or None, rngs, rows, config)


# --------------------------------------------------------------------------- torch twin

def TorchTwin(model, optimizer):
    """A PyTorch copy of an npnet model and optimizer, trained in lockstep
    (what ``npnet train --check-torch`` uses): see :class:`reference.lockstep.TorchTwin`.

    torch lives in the sibling package ``reference``, never in npnet: this
    function imports it only when called.

    Raises:
        ImportError: torch (or the reference package) is not installed.
    """
    import importlib
    try:
        importlib.import_module("torch")   # itself: reference.lockstep may already be imported
        lockstep = importlib.import_module("reference.lockstep")
    except ImportError as e:
        raise ImportError(f"a torch twin needs PyTorch and npnet's reference package: {e}") from e
    return lockstep.TorchTwin(model, optimizer)
