"""The ``npnet`` command (also ``python -m npnet``): the only module that reads argv or prints.

Subcommands:

- ``npnet train``: the course's softmax regression on Fashion-MNIST by default
  (Flatten + Linear(784, 10), W ~ N(0, 0.01), b = 0, SGD lr 0.1, batch 256,
  10 epochs), or the MLP; writes metrics.csv, curves.png, predictions.png,
  config.json and checkpoint.npz into ``--out``.
- ``npnet data``: find (or download) Fashion-MNIST; exit 0 and say where, or
  exit 1 with every way to provide it (``--quiet``: one line whatever happens),
  2 for a ``--data-dir`` that cannot be used or a corrupt file.
- ``npnet study NAME``: added by ``npnet.studies.cli.add_parser(subparsers)``
  when that module exists. The hook's contract: ``add_parser`` adds its parser
  to the argparse subparsers object and sets ``func``, which takes the parsed
  namespace and returns the exit status.

Exit status: 0 success, 1 a failed run (one line on stderr; diverged, corrupt
checkpoint...), 2 a usage error (unknown flag, bad value, missing data, --out
in use by another run; one line on stderr), 128 + the signal's number when
stopped by a signal: 130 Ctrl-C (SIGINT), 143 SIGTERM, 129 SIGHUP (one line;
the last finished epoch's checkpoint stays). ``--debug`` adds the traceback.
"""
import argparse
import csv
import importlib
import importlib.util
import io
import json
import math
import os
import shlex
import signal
import sys
import time
import traceback

import numpy as np

from . import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

# The run's settings and their defaults. A flag left out is None after parsing,
# so --resume can tell "not given" from "given with the default value".
DEFAULTS = {
    "model": "softmax", "hidden": 256, "dropout": 0.0, "init": "normal",
    "optimizer": "sgd", "lr": None, "momentum": 0.0, "weight_decay": 0.0,
    "batch_size": 256, "epochs": 10, "seed": 0, "dtype": "float32",
}
DEFAULT_LR = {"sgd": 0.1, "adam": 1e-3}
# Settings a resumed run takes from its checkpoint and may not change.
FIXED_ON_RESUME = ("model", "hidden", "dropout", "init", "optimizer", "lr", "momentum", "weight_decay",
                   "batch_size", "seed", "dtype")
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


def _directory(text):
    """A directory path as given (never expanded or passed to a shell); empty or NUL-bearing text is refused."""
    if not text or "\0" in text:
        raise argparse.ArgumentTypeError(f"expected a directory path, got {text!r}")
    return text


# --------------------------------------------------------------------------- the parser

def build_parser():
    """The ``npnet`` argument parser with its subcommands."""
    parser = _Parser(prog="npnet", description="npnet: deep learning in pure NumPy, with hand-written backward passes.")
    parser.add_argument("--version", action="version", version=f"npnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_train(sub)
    _add_data(sub)
    _add_studies(sub)
    from .cli_infer import add_parsers as _add_infer   # npnet eval, npnet predict
    _add_infer(sub)
    return parser


def _add_train(sub):
    p = sub.add_parser(
        "train", help="train on Fashion-MNIST (default: the course's softmax regression)",
        description="Train on Fashion-MNIST. Defaults to the course's softmax regression: Flatten + Linear(784, 10), "
                    "W ~ N(0, 0.01), b = 0, SGD lr 0.1, batch 256, 10 epochs. Writes metrics.csv, curves.png, "
                    "predictions.png, config.json and checkpoint.npz (after every epoch) into --out.")
    a = p.add_argument
    a("--model", choices=("softmax", "mlp"), help="softmax regression or the 784-HIDDEN-10 ReLU MLP (default: softmax)")
    a("--hidden", type=_integer(1), metavar="N", help="hidden units of the mlp (default: 256)")
    a("--epochs", type=_integer(1), metavar="N",
      help="train until this epoch (default: 10; with --resume, a new total)")
    a("--lr", type=_real(0.0, low_open=True), metavar="LR", help="learning rate (default: 0.1 for sgd, 0.001 for adam)")
    a("--batch-size", type=_integer(1), metavar="N", help="mini-batch size (default: 256)")
    a("--optimizer", choices=("sgd", "adam"), help="the optimizer (default: sgd)")
    a("--momentum", type=_real(0.0), metavar="M", help="SGD momentum (default: 0)")
    a("--weight-decay", type=_real(0.0), metavar="WD", help="L2 penalty (default: 0)")
    a("--dropout", type=_real(0.0, 1.0, high_open=True), metavar="P",
      help="dropout after the mlp's hidden layer (default: 0)")
    a("--init", choices=("normal", "xavier", "kaiming", "torch-default"),
      help="initial weights: normal = N(0, 0.01) with b = 0, the course's (default: normal)")
    a("--seed", type=_integer(0), metavar="N",
      help="seeds the initial weights, the shuffling and the dropout masks (default: 0)")
    a("--dtype", choices=("float32", "float64"), help="parameter dtype (default: float32)")
    a("--data-dir", type=_directory, metavar="DIR",
      help="the one folder to read the four Fashion-MNIST files from (nothing else is searched)")
    a("--download", action="store_true", help="download Fashion-MNIST if it is not found (else: exit 2)")
    a("--out", type=_directory, default=os.path.join("runs", "default"), metavar="DIR",
      help="output directory (default: %(default)s)")
    a("--resume", action="store_true", help="continue the run in --out from its checkpoint.npz")
    a("--allow-other-data", action="store_true",
      help="with --resume: continue even on data other than the data the checkpoint was trained on")
    a("--overwrite", action="store_true", help="start afresh even if --out holds a checkpoint")
    a("--check-torch", action="store_true",
      help="train a PyTorch twin in lockstep and report the largest loss and parameter differences per epoch")
    a("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=cmd_train)


def _add_data(sub):
    p = sub.add_parser("data", help="find (or download) Fashion-MNIST and say where it is",
                       description="With --data-dir, use that folder only (downloading the missing files into it "
                                   "unless --no-download). Otherwise find Fashion-MNIST ($NPNET_DATA, the per-user "
                                   "cache, /usr/share/datasets/fashion-mnist), else download it into the cache. "
                                   "Exit 0 when the data is there, 1 when it is not found and could not be "
                                   "downloaded, 2 for a --data-dir that cannot be used or a corrupt file.")
    p.add_argument("--data-dir", type=_directory, metavar="DIR",
                   help="the one folder to use, and to download into")
    p.add_argument("--no-download", action="store_true", help="only look; never download")
    p.add_argument("--quiet", "-q", action="store_true",
                   help="print one line whatever happens: where the data is, or why it is not there")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=cmd_data)


def _add_studies(sub):
    """The hook for ``npnet study``: npnet.studies.cli.add_parser(subparsers), if it exists."""
    try:
        if importlib.util.find_spec("npnet.studies") is None or importlib.util.find_spec("npnet.studies.cli") is None:
            return
        module = importlib.import_module("npnet.studies.cli")
        module.add_parser(sub)
    except Exception as e:  # noqa: BLE001 - a broken optional module must not break `npnet train`
        error = f"{type(e).__name__}: {e}"
        p = sub.add_parser("study", help="(unavailable: npnet.studies failed to load)", add_help=False)
        p.add_argument("rest", nargs=argparse.REMAINDER)

        def unavailable(args):
            raise RunFailed(f"npnet study is unavailable: npnet.studies.cli failed to load ({error})")
        p.set_defaults(func=unavailable)


# --------------------------------------------------------------------------- main

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


def main(argv=None):
    """Run the ``npnet`` command line; returns the exit status (the console script exits with it)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    prefix, debug = "npnet", "--debug" in argv
    try:
        with _StopSignals():
            try:
                args = build_parser().parse_args(argv)
            except UsageError as e:
                print(e, file=sys.stderr)
                return EXIT_USAGE
            except SystemExit as e:   # --help, --version
                return e.code if isinstance(e.code, int) else EXIT_USAGE
            args.argv = argv
            debug = getattr(args, "debug", False)
            prefix = f"npnet {args.command}"
            return _run(args, prefix, debug)
    except KeyboardInterrupt as e:   # a signal between two handlers, e.g. while parsing
        return _report_stop(e, prefix, debug)


def _run(args, prefix, debug):
    try:
        return args.func(args)
    except UsageError as e:
        if debug:
            traceback.print_exc()
        print(f"{prefix}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except RunFailed as e:
        if debug:
            traceback.print_exc()
        print(f"{prefix}: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt as e:
        return _report_stop(e, prefix, debug)
    except Exception as e:  # noqa: BLE001 - the last line of defence: one line, no traceback
        if debug:
            traceback.print_exc()
        print(f"{prefix}: error: {type(e).__name__}: {_one_line(str(e))} (run with --debug for the traceback)",
              file=sys.stderr)
        return EXIT_FAILED


def _report_stop(e, prefix, debug):
    """One line for Ctrl-C or a stop signal; the status is 128 + its number."""
    if debug:
        traceback.print_exc()
    signum = getattr(e, "signum", signal.SIGINT)
    how = "interrupted" if signum == signal.SIGINT else f"interrupted by {_signal_name(signum)}"
    print(f"\n{prefix}: {how}" + (f"; {e}" if str(e) else ""), file=sys.stderr, flush=True)
    return 128 + int(signum)


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


def cmd_data(args):
    from . import data
    from .errors import DataError, DownloadError

    download = not args.no_download
    files = None
    try:
        files = data.find_fashion_mnist(args.data_dir)
        if files is None and download and not args.quiet:
            dest = args.data_dir or data.fashion_mnist_cache_dir()
            print(f"Fashion-MNIST not found locally; downloading it into {dest} ...", flush=True)
        X_train, _, X_test, _ = data.load_fashion_mnist(args.data_dir, download=download)
    except data.DataDirError as e:
        raise UsageError(_data_dir_line(e, "drop --no-download to download it there")) from e
    except DataError as e:   # includes DownloadError; the message lists every way to provide the data
        if files is not None:   # found but corrupt: another copy elsewhere would not be used
            raise UsageError(f"cannot load Fashion-MNIST: {_one_line(str(e))}") from e
        if args.debug:
            traceback.print_exc()
        if not args.quiet:
            print(f"npnet data: {e}", file=sys.stderr)
        else:
            why = f"; {_download_line(e)}" if isinstance(e, DownloadError) else ""
            print(f"npnet data: Fashion-MNIST not found locally{why} (run `npnet data` to see every place "
                  "searched and every way to provide it)", file=sys.stderr)
        return EXIT_FAILED
    files = data.find_fashion_mnist(args.data_dir)
    where = os.path.dirname(next(iter(files.values()))) if files else "?"
    print(f"Fashion-MNIST found in {where}: {X_train.shape[0]} training and {X_test.shape[0]} test images")
    return EXIT_OK


# --------------------------------------------------------------------------- npnet train

def _settings(args, saved=None):
    """The run's settings: flags over defaults, or (resuming) the checkpoint's, checked against the flags."""
    given = {k: getattr(args, k) for k in DEFAULTS if getattr(args, k) is not None}
    if saved is not None:
        for k in FIXED_ON_RESUME:
            if k in given and given[k] != saved.get(k):
                flag = "--" + k.replace("_", "-")
                raise UsageError(f"{flag} {given[k]} differs from the checkpoint's {saved.get(k)}; a resumed run keeps "
                                 f"its settings (start a new run with another --out, or --overwrite)")
        s = {k: saved.get(k) for k in DEFAULTS}
        s["epochs"] = given.get("epochs", saved.get("epochs", DEFAULTS["epochs"]))
        return s
    s = {k: given.get(k, v) for k, v in DEFAULTS.items()}
    if s["lr"] is None:
        s["lr"] = DEFAULT_LR[s["optimizer"]]
    if s["model"] == "softmax":
        for k in ("hidden", "dropout"):
            if k in given:
                raise UsageError(f"--{k} applies to --model mlp; softmax regression has no hidden layer")
        s["hidden"] = s["dropout"] = None
    if s["optimizer"] == "adam":
        if "momentum" in given:
            raise UsageError("--momentum applies to --optimizer sgd (Adam has betas)")
        s["momentum"] = None
    return s


def _check_saved_settings(config, path):
    """A checkpoint's settings, checked as the flags are, so that a consistent but
    tampered (or foreign) checkpoint is refused by name rather than deep in build_model.

    Raises:
        CheckpointError: a setting the flags would not accept.
    """
    import re

    from .errors import CheckpointError
    from .train import INITS, MODELS

    saved = config["settings"]
    choices = {"model": MODELS, "init": INITS, "optimizer": tuple(DEFAULT_LR), "dtype": ("float32", "float64")}
    integers = {"hidden": _integer(1), "batch_size": _integer(1), "epochs": _integer(1), "seed": _integer(0)}
    reals = {"lr": _real(0.0, low_open=True), "momentum": _real(0.0), "weight_decay": _real(0.0),
             "dropout": _real(0.0, 1.0, high_open=True)}
    unset = ("hidden", "dropout", "momentum")   # None where a setting does not apply (softmax, adam)

    def unknown(key, value, expected):
        return CheckpointError(f"checkpoint {path} holds an unknown setting: {key}={value!r} ({expected})")

    for key in DEFAULTS:
        value = saved[key]
        if value is None and key in unset:
            continue
        if key in choices:
            if not isinstance(value, str) or value not in choices[key]:
                raise unknown(key, value, f"expected one of {', '.join(choices[key])}")
            continue
        kind = int if key in integers else (int, float)
        if isinstance(value, bool) or not isinstance(value, kind):
            raise unknown(key, value, "expected an integer" if key in integers else "expected a number")
        try:
            (integers.get(key) or reals[key])(repr(value))
        except argparse.ArgumentTypeError as e:
            raise unknown(key, value, str(e)) from None
    data_dir, fingerprint = config.get("data_dir"), config.get("data_fingerprint")
    if data_dir is not None and not (isinstance(data_dir, str) and data_dir and "\0" not in data_dir):
        raise unknown("data_dir", data_dir, "expected a directory path or null")
    if fingerprint is not None and not (isinstance(fingerprint, str) and re.fullmatch(r"[0-9a-f]{64}", fingerprint)):
        raise unknown("data_fingerprint", fingerprint, "expected a SHA-256 hex digest or null")


def _check_same_data(config, path, train_samples, fingerprint, *, allow):
    """``--resume`` continues on the data its checkpoint was trained on, unless ``--allow-other-data``."""
    saved_n, saved = config.get("train_samples"), config.get("data_fingerprint")
    if saved is None:
        print(f"note: {path} records no fingerprint of its data (an older npnet wrote it); "
              "the data found is taken to be the same", flush=True)
    if saved_n in (None, train_samples) and saved in (None, fingerprint):
        return
    if allow:
        print("note: resuming on other data than the checkpoint was trained on (--allow-other-data)", flush=True)
        return
    if saved_n not in (None, train_samples):
        raise UsageError(f"the checkpoint was trained on {saved_n} training images, the data found has "
                         f"{train_samples}; resume with the same data (--data-dir), or pass --allow-other-data")
    raise UsageError(f"the checkpoint was trained on other data than the data found (data fingerprint "
                     f"{saved[:12]}..., found {fingerprint[:12]}...); resume with the same data (--data-dir), "
                     "or pass --allow-other-data")


def _write_text(path, text):
    from .train import _atomic_write

    try:
        _atomic_write(path, lambda f: f.write(text.encode("utf-8")))
    except OSError as e:   # a full disk, a read-only directory...; the temp file is already gone
        raise RunFailed(f"cannot write {path}: {e.strerror or e}") from e


def _write_metrics(path, history):
    """metrics.csv: METRICS_COLUMNS, one row per epoch (a test loss the checkpoint lacks is nan)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(METRICS_COLUMNS)
    for r in history:
        w.writerow([r.epoch] + [repr(float(getattr(r, c, math.nan))) for c in METRICS_COLUMNS[1:]])
    _write_text(path, buf.getvalue())


def _loss_text(loss):
    """A loss for people: 4 decimals, or scientific notation from 1000 on (1e6 is never 1000000.0000)."""
    return f"{loss:.4f}" if not abs(loss) >= 1e3 else f"{loss:.3e}"


def _plural(n, word):
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _describe(s):
    """The model and its key settings, in one line (the run's summary and the title of curves.png)."""
    arch = "softmax regression" if s["model"] == "softmax" else f"MLP 784-{s['hidden']}-10"
    if s["model"] == "mlp" and s["dropout"]:
        arch += f" (dropout {s['dropout']:g})"
    hp = (f"lr {s['lr']:g}" + (f", momentum {s['momentum']:g}" if s["momentum"] else "")
          + (f", weight decay {s['weight_decay']:g}" if s["weight_decay"] else ""))
    return (f"{arch}, init {s['init']}, {s['optimizer']} ({hp}), batch {s['batch_size']}, "
            f"{_plural(s['epochs'], 'epoch')}, {s['dtype']}, seed {s['seed']}")


def _load_data(args):
    from . import data
    from .errors import DataError, DownloadError

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


class _Reporter:
    """Progress bar (tqdm, on a TTY), a table row per epoch, metrics.csv after each epoch."""

    def __init__(self, out, history, samples_per_epoch, *, twin=None):
        self.out, self.history, self.samples, self.twin = out, list(history), samples_per_epoch, twin
        self.bar = None
        self.tqdm = None
        self.started = False   # has an epoch begun?
        if sys.stdout.isatty():
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            self.tqdm = tqdm
        self.last_epoch = history[-1].epoch if history else 0

    def header(self):
        extra = "  torch: max|dloss|  max|dparam|" if self.twin else ""
        print(f"{'epoch':>5}  {'loss':>7}  {'train acc':>9}  {'test acc':>8}  {'seconds':>7}{extra}", flush=True)

    def row(self, r, diffs=None):
        extra = f"  {diffs[1]:>17.3e}  {diffs[2]:>12.3e}" if diffs else ""
        loss = _loss_text(r.train_loss)
        print(f"{r.epoch:>5}  {loss:>7}  {r.train_acc:>9.4f}  {r.test_acc:>8.4f}  {r.seconds:>7.2f}{extra}",
              flush=True)

    def on_epoch_start(self, epoch):
        self.started = True
        self.loss_sum = 0.0
        self.seen = 0
        self.t0 = time.perf_counter()
        if self.tqdm is not None:
            self.bar = self.tqdm(total=self.samples, desc=f"epoch {epoch}", unit="img", unit_scale=True,
                                 leave=False, file=sys.stdout, dynamic_ncols=True)

    def on_step(self, info):
        self.loss_sum += info.loss * info.batch_size
        self.seen += info.batch_size
        if self.bar is not None:
            self.bar.set_postfix(loss=_loss_text(self.loss_sum / self.seen), refresh=False)
            self.bar.update(info.batch_size)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_epoch_end(self, result):
        self.close()
        self.history.append(result)
        self.last_epoch = result.epoch
        _write_metrics(os.path.join(self.out, METRICS), self.history)
        self.row(result, self.twin.epoch_diffs[-1] if self.twin else None)


def _make_plots(out, history, model, X_test, y_test, title):
    """curves.png and predictions.png; a one-line note (and no PNGs) without matplotlib."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print(f"note: matplotlib is not installed; skipped {CURVES} and {PREDICTIONS} "
              "(pip install matplotlib, or npnet[train])")
        return []
    from . import plots
    from .data import FASHION_MNIST_LABELS, DataLoader

    written = []
    if history:
        written.append(plots.plot_curves(history, os.path.join(out, CURVES), title=title))
    n = min(NUM_PREDICTIONS, X_test.shape[0])
    X, y = next(iter(DataLoader(X_test[:n], y_test[:n], n)))
    predictions = model(X.astype(model.dtype, copy=False)).argmax(axis=-1)
    written.append(plots.plot_predictions(X_test[:n], y, predictions, os.path.join(out, PREDICTIONS),
                                          class_names=FASHION_MNIST_LABELS))
    return written


# --------------------------------------------------------------------------- the output folder

class _OutLock:
    """An exclusive ``flock`` on ``<out>/.lock`` (holding the pid) for the whole run.

    The kernel drops the lock when its process ends however it ends, so a lock
    file left by a killed run never blocks the next one. The file is removed
    while still locked; a run that locked a file someone has just removed tries
    again on the new one, so two runs never both hold "the" lock.
    """

    def __init__(self, out):
        self.path = os.path.join(out, LOCK)
        self.fd = None

    def acquire(self, out):
        try:
            import fcntl
        except ImportError:   # no flock on this system: run unlocked
            return self
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise UsageError(f"cannot write into --out {out}: {e.strerror or e}") from e
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 32).decode("ascii", "replace").strip()
                os.close(fd)
                who = f"pid {holder}" if holder.isdigit() else "another process"
                raise UsageError(f"--out {out} is in use by another npnet train ({who}); wait for it to finish, "
                                 "or choose another --out") from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self.fd = fd
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        return self

    def release(self):
        if self.fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self.fd)   # closing drops the flock
        self.fd = None


def _make_out(out):
    """Create --out (and missing parents); returns the directories created, deepest last."""
    missing, d = [], os.path.abspath(out)
    while d and not os.path.isdir(d):
        missing.append(d)
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create --out {out}: {e.strerror or e}") from e
    return missing[::-1]


def _remove_run_files(out):
    """Remove the files an earlier run wrote into ``out`` (RUN_FILES only: nothing of the user's)."""
    for name in RUN_FILES:
        try:
            os.unlink(os.path.join(out, name))
        except FileNotFoundError:
            pass
        except OSError as e:
            raise RunFailed(f"cannot remove the earlier run's {os.path.join(out, name)}: {e.strerror or e}") from e


def _remove_empty_dirs(created):
    for d in reversed(created):
        try:
            os.rmdir(d)
        except OSError:   # not empty (someone else's files) or already gone: leave it
            return


# --------------------------------------------------------------------------- memory

# Fashion-MNIST held in memory as uint8: 70,000 images of 784 pixels and their labels.
_DATA_BYTES = 70_000 * 785


def _memory_needed(s):
    """Bytes a run with settings ``s`` needs, roughly: the parameters with their gradients, optimizer
    state and the copies a checkpoint makes, one batch of activations and gradients, and the data."""
    itemsize = np.dtype(s["dtype"]).itemsize
    hidden = s["hidden"] if s["model"] == "mlp" else 0
    params = (784 * hidden + hidden + hidden * 10 + 10) if hidden else 784 * 10 + 10
    state = 2 if s["optimizer"] == "adam" else (1 if s["momentum"] else 0)
    copies = 1 + 1 + state + 2   # weights, gradients, optimizer state, checkpoint copy and its checksum
    batch = min(s["batch_size"], 60_000)
    per_sample = 2 * 784 + 5 * hidden + 4 * 10   # input and its gradient, hidden layer(s), logits
    return params * copies * itemsize + batch * per_sample * itemsize + _DATA_BYTES


def _available_memory():
    """Bytes of memory available to a new allocation (MemAvailable), else the physical memory, else None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _gb(n):
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.0f} MB"


def _check_memory(s):
    """Refuse, before any data is loaded, a run that cannot fit in memory."""
    needed, available = _memory_needed(s), _available_memory()
    if available is None or needed <= available:
        return
    flag = f"--hidden {s['hidden']}" if s["model"] == "mlp" else f"--batch-size {s['batch_size']}"
    raise UsageError(f"{flag} needs about {_gb(needed)} of memory ({s['dtype']} weights, gradients, "
                     f"{s['optimizer']} state and a batch), more than the {_gb(available)} available; choose a "
                     f"smaller {flag.split()[0]}" + (" or --dtype float32" if s["dtype"] == "float64" else ""))


def _require_torch():
    try:
        importlib.import_module("torch")
    except ImportError as e:
        raise UsageError("--check-torch needs PyTorch, which is not installed; install it with: "
                         "pip install -e '.[reference]' (from npnet's source folder)") from e


# --------------------------------------------------------------------------- npnet train

def cmd_train(args):
    out = args.out
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"cannot create --out {out}: it names an existing file, not a directory; "
                         "choose another --out")
    if args.resume:
        if args.check_torch:
            raise UsageError("--check-torch starts its twin from the initial weights; "
                             "it cannot be combined with --resume")
        if args.overwrite:
            raise UsageError("--resume and --overwrite contradict each other")
        ckpt_path = os.path.join(out, CHECKPOINT)
        if not os.path.isfile(ckpt_path):
            raise UsageError(f"--resume: there is no checkpoint to resume from ({ckpt_path} does not exist)")
        settings = None
    else:
        if args.allow_other_data:
            raise UsageError("--allow-other-data applies to --resume only")
        settings = _settings(args)
        _check_memory(settings)
        if args.check_torch:
            _require_torch()

    created = _make_out(out)
    lock = _OutLock(out)
    run = {"reporter": None, "wrote": False}
    finished = False
    try:
        lock.acquire(out)
        status = _train(args, settings, run)
        finished = True
        return status
    finally:
        # A fresh run that stopped before its first epoch takes back what it wrote (its folder too).
        reporter = run["reporter"]
        if not finished and not args.resume and run["wrote"] and not (reporter and reporter.started):
            try:
                _remove_run_files(out)
            except RunFailed:
                pass
        lock.release()
        if not finished:
            _remove_empty_dirs(created)


def _train(args, settings, run):
    from . import nn, optim
    from .data import DataLoader
    from .data import fingerprint as data_fingerprint
    from .errors import CheckpointError, TrainingDiverged
    from .train import TorchTwin, build_model, fit, load_checkpoint

    out = args.out
    ckpt_path = os.path.join(out, CHECKPOINT)
    saved_history = []
    if args.resume:
        try:
            ckpt = load_checkpoint(ckpt_path)
        except CheckpointError as e:
            raise RunFailed(f"cannot resume: {e}") from e
        saved = (ckpt.config or {}).get("settings")
        if not isinstance(saved, dict) or any(k not in saved for k in DEFAULTS):
            raise RunFailed(f"cannot resume: {ckpt_path} was not written by `npnet train` (no settings in its config)")
        try:
            _check_saved_settings(ckpt.config, ckpt_path)
        except CheckpointError as e:
            raise RunFailed(f"cannot resume: {e}") from e
        settings = _settings(args, saved)
        if ckpt.epoch >= settings["epochs"]:   # touch nothing: config.json, metrics.csv and the plots stay
            print(f"nothing to train: {ckpt_path} is at epoch {ckpt.epoch} and --epochs is {settings['epochs']}; "
                  f"pass a larger --epochs to continue")
            return EXIT_OK
        _check_memory(settings)
        saved_history = ckpt.metrics
        if args.data_dir is None:
            args.data_dir = ckpt.config.get("data_dir")   # the data the run started on
    elif os.path.exists(ckpt_path) and not args.overwrite:
        raise UsageError(f"{out} already holds a run ({ckpt_path}); pass --resume to continue it, "
                         "--overwrite to start again, or choose another --out")

    X_train, y_train, X_test, y_test = _load_data(args)
    fingerprint = data_fingerprint(X_train, y_train, X_test, y_test)
    if args.resume:
        _check_same_data(ckpt.config, ckpt_path, X_train.shape[0], fingerprint, allow=args.allow_other_data)

    s = settings
    dtype = np.dtype(s["dtype"])
    init_seed, shuffle_seed, dropout_seed = np.random.SeedSequence(s["seed"]).spawn(3)
    model = build_model(s["model"], hidden=s["hidden"] or 256, dropout=s["dropout"] or 0.0, init=s["init"],
                        rng=np.random.default_rng(init_seed), dropout_rng=np.random.default_rng(dropout_seed),
                        dtype=dtype)
    if s["optimizer"] == "sgd":
        opt = optim.SGD(model.params, lr=s["lr"], momentum=s["momentum"], weight_decay=s["weight_decay"])
    else:
        opt = optim.Adam(model.params, lr=s["lr"], weight_decay=s["weight_decay"])
    train_loader = DataLoader(X_train, y_train, s["batch_size"], shuffle=True,
                              rng=np.random.default_rng(shuffle_seed))
    test_loader = DataLoader(X_test, y_test, s["batch_size"])
    loss_fn = nn.CrossEntropyLoss()

    twin = None
    if args.check_torch:
        try:
            twin = TorchTwin(model, opt)
        except ImportError as e:
            raise UsageError("--check-torch needs PyTorch and npnet's reference package; install them with: "
                             f"pip install -e '.[reference]' (from npnet's source folder) ({_one_line(str(e))})") from e

    config = {
        "settings": s,
        "command": "npnet " + " ".join(shlex.quote(a) for a in args.argv),
        "data_dir": args.data_dir,
        "check_torch": bool(args.check_torch),
        "npnet_version": __version__,
        "numpy_version": np.__version__,
        "model": repr(model).replace("\n", " "),
        "train_samples": int(X_train.shape[0]),
        "test_samples": int(X_test.shape[0]),
        "data_fingerprint": fingerprint,
    }
    samples = min(len(train_loader) * train_loader.batch_size, train_loader.dataset_size)
    reporter = run["reporter"] = _Reporter(out, saved_history, samples, twin=twin)
    # From here on the run writes into --out. A fresh run first removes an earlier run's files
    # (--overwrite, or the leftovers of a run that never wrote a checkpoint), so none of them can
    # end up beside the new checkpoint.
    run["wrote"] = True
    if not args.resume:
        _remove_run_files(out)
    _write_text(os.path.join(out, CONFIG), json.dumps(config, indent=2, sort_keys=True) + "\n")
    if args.resume:
        _write_metrics(os.path.join(out, METRICS), saved_history)
        print(f"resuming {out} after epoch {reporter.last_epoch}", flush=True)
    print(_describe(s), flush=True)
    reporter.header()
    for r in saved_history:
        reporter.row(r)

    callbacks = [twin, reporter] if twin is not None else [reporter]
    try:
        result = fit(model, loss_fn, opt, train_loader, test_loader, s["epochs"], checkpoint_path=ckpt_path,
                     resume=args.resume, config=config, callbacks=callbacks)
    except TrainingDiverged as e:
        reporter.close()
        kept = f"; {ckpt_path} keeps epoch {reporter.last_epoch}" if os.path.isfile(ckpt_path) else ""
        raise RunFailed(f"{e}{kept}") from e
    except (CheckpointError, RunFailed) as e:   # e.g. the disk is full: the last checkpoint stays
        reporter.close()
        raise RunFailed(f"{e}{_kept(ckpt_path)}") from e
    except KeyboardInterrupt as e:
        reporter.close()
        note = _interrupted(ckpt_path, out) if args.resume or reporter.started else "before the first epoch"
        raise Stopped(getattr(e, "signum", signal.SIGINT), note) from None

    if twin is not None and twin.epoch_diffs:
        print(f"check-torch: largest differences over the run: loss {max(d[1] for d in twin.epoch_diffs):.3e}, "
              f"parameters {max(d[2] for d in twin.epoch_diffs):.3e}")
    try:
        written = _make_plots(out, list(result.history), model, X_test, y_test, "Fashion-MNIST: " + _describe(s))
    except OSError as e:
        raise RunFailed(f"cannot write the plots into {out}: {e.strerror or e}{_kept(ckpt_path)}") from e
    final = result.final
    if final is not None:
        print(f"final: train loss {_loss_text(final.train_loss)}, train acc {final.train_acc:.4f}, "
              f"test acc {final.test_acc:.4f}")
    names = [METRICS, CONFIG, CHECKPOINT] + [os.path.basename(p) for p in written]
    print(f"wrote {', '.join(names)} to {out}")
    return EXIT_OK


def _kept(ckpt_path):
    """'; <path> keeps epoch N' when a loadable checkpoint is there, else ''."""
    from .errors import CheckpointError
    from .train import load_checkpoint

    try:
        return f"; {ckpt_path} keeps epoch {load_checkpoint(ckpt_path).epoch}"
    except CheckpointError:
        return ""


def _interrupted(ckpt_path, out):
    from .errors import CheckpointError
    from .train import load_checkpoint

    try:
        epoch = load_checkpoint(ckpt_path).epoch
    except CheckpointError:
        return "no checkpoint was written"
    return (f"{ckpt_path} holds epoch {epoch}, the last completed one; "
            f"continue with: npnet train --out {shlex.quote(out)} --resume")
