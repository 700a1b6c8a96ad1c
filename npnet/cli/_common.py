"""What every ``npnet`` subcommand shares, below all of them (``npnet.studies.cli`` too):
the exit statuses, the run folder's file names and settings, the one-line errors
(:class:`UsageError`, :class:`RunFailed`), argparse types, the stop signals, and
the one-line messages for data that cannot be loaded.
"""
import argparse
import math
import signal

from .. import _io

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

# The run's settings and their defaults. A flag left out is None after parsing,
# so --resume can tell "not given" from "given with the default value".
DEFAULTS = {
    "model": "softmax", "hidden": 256, "dropout": 0.0, "init": "normal",
    "optimizer": "sgd", "lr": None, "momentum": 0.0, "weight_decay": 0.0,
    "batch_size": 256, "epochs": 10, "seed": 0, "dtype": "float32", "lr_schedule": "none",
}
# Settings an older checkpoint may lack, and the value its run had (a resume takes that).
SINCE = {"lr_schedule": "none"}
DEFAULT_LR = {"sgd": 0.1, "adam": 1e-3}
# What each model changes of DEFAULTS (its init and hidden width are npnet.models's MODEL_INITS[model][0] and
# DEFAULT_HIDDEN[model]); "lr" is by optimizer, over DEFAULT_LR. The course's LeNet trains with SGD at lr 0.9.
MODEL_DEFAULTS = {"softmax": {}, "mlp": {}, "lenet": {"lr": {"sgd": 0.9}},
                  "cnn": {"optimizer": "adam", "lr_schedule": "cosine"}}
# Settings a resumed run takes from its checkpoint and may not change.
FIXED_ON_RESUME = ("model", "hidden", "dropout", "init", "optimizer", "lr", "momentum", "weight_decay",
                   "batch_size", "seed", "dtype", "lr_schedule")
CHECKPOINT, METRICS, CONFIG, CURVES, PREDICTIONS = (
    "checkpoint.npz", "metrics.csv", "config.json", "curves.png", "predictions.png")
CONFUSION, LOCK = "confusion.png", ".lock"
# The files a run writes into --out: a new run removes exactly these (never anything else).
RUN_FILES = (CHECKPOINT, METRICS, CONFIG, CURVES, PREDICTIONS, CONFUSION)
# metrics.csv's columns, in order (EpochResult's fields; the test loss is the one curves.png plots).
METRICS_COLUMNS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds")
NUM_PREDICTIONS = 24


class UsageError(Exception):
    """A bad command line or missing input: exit status 2, one line."""


class RunFailed(Exception):
    """The run started but failed: exit status 1, one line."""


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line and an exception, not usage text and sys.exit."""

    def error(self, message):
        raise UsageError(f"{self.prog}: error: {message} (see {self.prog} --help)")


# --------------------------------------------------------------------------- argument types

def _integer(low):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {value}")
        return value
    return parse


def _real(low, high=None, *, low_open=False, high_open=False):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        bad = (not math.isfinite(value) or (value <= low if low_open else value < low)
               or (high is not None and (value >= high if high_open else value > high)))
        if bad:
            left, right = "(" if low_open else "[", ")" if high_open or high is None else "]"
            interval = f"{left}{low}, {'inf' if high is None else high}{right}"
            raise argparse.ArgumentTypeError(f"must be a number in {interval}, got {text}")
        return value
    return parse


def _path(text):
    """A file or folder path as given; empty or NUL-bearing text is refused."""
    if not text or "\0" in text:
        raise argparse.ArgumentTypeError(f"expected a path, got {text!r}")
    return text


def _directory(text):
    """A directory path as given (never expanded or passed to a shell); empty or NUL-bearing text is refused."""
    if not text or "\0" in text:
        raise argparse.ArgumentTypeError(f"expected a directory path, got {text!r}")
    return text


class Stopped(KeyboardInterrupt):
    """SIGINT (Ctrl-C), SIGTERM or SIGHUP: unwinds like Ctrl-C; the exit status is 128 + ``signum``."""

    def __init__(self, signum=signal.SIGINT, note=""):
        super().__init__(note)
        self.signum = signum


_STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


class _StopSignals:
    """While active, the first SIGINT/SIGTERM/SIGHUP raises :class:`Stopped`; later ones are ignored,
    so that a second Ctrl-C cannot cut short the clean-up or the line saying where the run stands."""

    def __enter__(self):
        self.previous = {}
        for s in _STOP_SIGNALS:
            try:
                self.previous[s] = signal.signal(s, self._first)
            except (ValueError, OSError):   # not the main thread: keep Python's own handling
                break
        return self

    def _first(self, signum, frame):
        for s in self.previous:
            signal.signal(s, self._later)
        raise Stopped(signum)

    def _later(self, signum, frame):
        pass

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        return False


def _signal_name(signum):
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _one_line(text):
    return " ".join(text.split())


# --------------------------------------------------------------------------- npnet data

def _data_dir_line(e, download_hint):
    """One line for a --data-dir that cannot be used (a data.DataDirError)."""
    line = f"--data-dir {e.folder}: {e.problem}"
    if e.downloadable:
        line += f"; Fashion-MNIST not found there ({download_hint}, or run `npnet data` to see every way to provide it)"
    return _one_line(line)


def _download_line(e):
    """One line for a failed download (a data.DownloadError): that it failed, and why."""
    reason = getattr(e, "reason", None) or (str(e).splitlines() or [type(e).__name__])[-1]
    return _one_line(f"downloading Fashion-MNIST failed: {reason}")


def _write_text(path, text):
    try:
        _io.atomic_write(path, lambda f, _: f.write(text.encode("utf-8")))
    except OSError as e:   # a full disk, a read-only directory...; the temp file is already gone
        raise RunFailed(f"cannot write {path}: {e.strerror or e}") from e


def _loss_text(loss):
    """A loss for people: 4 decimals, or scientific notation from 1000 on (1e6 is never 1000000.0000)."""
    return f"{loss:.4f}" if not abs(loss) >= 1e3 else f"{loss:.3e}"


def _arch(s):
    """The architecture a run's settings name, in a few words (softmax regression, MLP 784-256-10, ...)."""
    model = s.get("model")
    if model == "softmax":
        return "softmax regression"
    if model == "mlp":
        return f"MLP 784-{s.get('hidden')}-10"
    if model == "lenet":
        return "LeNet (sigmoid, average pooling)"
    if model == "cnn":
        return f"CNN (2 Conv-BatchNorm-ReLU-MaxPool blocks, 16 and 32 channels; hidden {s.get('hidden')})"
    return None


def _plural(n, word):
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _load_data(args):
    from .. import data
    from ..errors import DataError, DownloadError

    try:
        return data.load_fashion_mnist(args.data_dir, download=args.download)
    except data.DataDirError as e:
        raise UsageError(_data_dir_line(e, f"pass --download to download it into {e.folder}")) from e
    except DownloadError as e:
        raise UsageError(f"{_download_line(e)}; run `npnet data` to see every other way to provide it") from e
    except DataError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "not found" in first:
            where = f"--data-dir {args.data_dir}, " if args.data_dir else ""
            raise UsageError(f"Fashion-MNIST not found (searched {where}$NPNET_DATA, the per-user cache and "
                             f"{', '.join(data.SYSTEM_DIRS)}); run `npnet data` to download it or to see the other "
                             "ways to provide it, or pass --data-dir DIR") from e
        raise UsageError(f"cannot load Fashion-MNIST: {_one_line(str(e))}") from e
