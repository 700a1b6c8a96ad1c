"""What training returns: a step, an epoch's training and evaluation, a row of a
run's history, a whole fit. Plain frozen dataclasses, below both the loops
(:mod:`npnet.train`) and the checkpoint format (:mod:`npnet.checkpoint`), which
stores the history.
"""
import dataclasses
import math

import numpy as np

__all__ = ["StepInfo", "TrainStats", "EvalStats", "EpochResult", "FitResult"]


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

    # The fields every row must have (a history written before test_loss existed lacks it);
    # metrics.csv's column order is the CLI's METRICS_COLUMNS, not this.
    COLUMNS = ("epoch", "train_loss", "train_acc", "test_acc", "seconds")

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

