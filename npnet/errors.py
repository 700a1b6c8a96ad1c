"""Exceptions that npnet raises on its own behalf.

Every error npnet raises for bad input is a ``ValueError`` or ``TypeError``
(so ``except ValueError`` keeps working); the classes below add a common base,
:class:`NpnetError`, for the errors that come from files and the network.
"""


class NpnetError(Exception):
    """Base class of npnet's own errors."""


class DataError(NpnetError, ValueError):
    """A data file is missing, truncated, corrupt or of the wrong format."""


class DownloadError(DataError):
    """A download failed: no connection, a timeout, a bad status or a bad checksum."""


class CheckpointError(NpnetError, ValueError):
    """A checkpoint cannot be written or read back safely."""


class TrainingDiverged(NpnetError, FloatingPointError):
    """The training loss became NaN or infinite."""

    def __init__(self, message, *, epoch=None, step=None):
        super().__init__(message)
        self.epoch = epoch
        self.step = step
