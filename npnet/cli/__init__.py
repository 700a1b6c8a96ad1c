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
import importlib
import importlib.util
import signal
import sys
import traceback

from .. import __version__
from ._common import (  # noqa: F401 (the names a caller of npnet.cli has always found here)
    CHECKPOINT, CONFIG, CONFUSION, CURVES, DEFAULT_LR, DEFAULTS, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK,
    EXIT_USAGE, FIXED_ON_RESUME, LOCK, METRICS, METRICS_COLUMNS, NUM_PREDICTIONS, PREDICTIONS, RUN_FILES,
    RunFailed, Stopped, UsageError, _one_line, _Parser, _signal_name, _StopSignals)


def build_parser():
    """The ``npnet`` argument parser with its subcommands."""
    parser = _Parser(prog="npnet", description="npnet: deep learning in pure NumPy, with hand-written backward passes.")
    parser.add_argument("--version", action="version", version=f"npnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    from . import data, infer, train

    train.add_parser(sub)
    data.add_parser(sub)
    _add_studies(sub)
    infer.add_parsers(sub)   # npnet eval, npnet predict
    return parser


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
