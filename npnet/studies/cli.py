"""The ``npnet study`` command: run one study, print its table, write its PNG.

``npnet.cli`` calls :func:`add_parser` to add the subcommand; ``python -m
npnet.studies NAME ...`` runs the same thing through :func:`main`. Like
``npnet.cli``, this module is allowed to print; the studies themselves never do.
"""
import argparse
import os
import sys
import time

from . import STUDIES, load

HELP = {
    "softmax-stability": "where the naive softmax and cross-entropy turn inf/nan, float32 and float64, against torch",
    "vanishing": "sigmoid derivative, per-layer gradient norms of a 20-layer MLP, product of random matrices",
    "symmetry": "constant initialization keeps hidden units identical; random init and dropout separate them",
    "init": "N(0, 0.01), torch default, Xavier and Kaiming: activation std at step 0 and test accuracy",
    "kfold": "k-fold cross-validation over a grid of settings, the best retrained and tested once",
    "batchnorm": "sigmoid LeNet with and without BatchNorm at several learning rates: loss, accuracy and "
                 "each layer's activation scale per epoch",
}


def _add_studies(subparsers):
    from ..cli._common import _directory   # the same check as ``npnet train --out``: '' is a usage error (exit 2)

    for name in STUDIES:
        p = subparsers.add_parser(name, help=HELP[name], description=HELP[name])
        p.add_argument("--out", type=_directory, default=os.path.join("runs", f"study-{name}"),
                       help="folder for the table and the PNG (default: %(default)s)")
        p.add_argument("--quick", action="store_true", help="the small, seconds-long version the tests run")
        p.add_argument("--seed", type=int, default=0, help="seeds every random draw (default: %(default)s)")
        if name == "symmetry":
            p.add_argument("--steps", type=int, default=None, help="SGD steps (default 100 with --quick, else 1000)")
        if name in ("init", "kfold", "batchnorm"):
            p.add_argument("--epochs", type=int, default=None, help="override the number of epochs")
        if name == "batchnorm":
            p.add_argument("--lrs", type=float, nargs="+", default=None, metavar="LR",
                           help="the SGD learning rates (default: 0.1 0.9 4)")
        if name == "kfold":
            from .kfold import GRIDS

            p.add_argument("--grid", choices=sorted(GRIDS), default=None,
                           help="the settings to compare (default: tiny with --quick, else default); "
                                "'best' adds Adam, dropout and Kaiming init")
            p.add_argument("-k", "--k", type=int, default=None, help="number of folds (default 3 with --quick, else 5)")
        p.set_defaults(func=lambda args, name=name: run_study(name, args))


def add_parser(subparsers):
    """Add ``study`` with one sub-subcommand per study to an argparse subparsers object.

    Each sets ``func``, which takes the parsed namespace and returns an exit code.
    """
    p = subparsers.add_parser("study", help="run one of the studies (softmax-stability, vanishing, ...)",
                              description="Run a study: print its table, write its PNG into --out.")
    _add_studies(p.add_subparsers(dest="study", metavar="NAME", required=True))
    return p


def _kwargs(name, args):
    kw = {"quick": args.quick, "seed": args.seed}
    for option in ("steps", "epochs", "grid", "k", "lrs"):
        if getattr(args, option, None) is not None:
            kw[option] = getattr(args, option)
    if name == "kfold":
        kw["progress"] = lambda message: print(message, file=sys.stderr, flush=True)
    return kw


def run_study(name, args):
    """Run study ``name`` with the parsed options; print the table; write table.txt, the PNG
    and, for a study with ``csv_rows``, ``NAME.csv``."""
    from ..errors import DataError

    if args.seed < 0:
        print(f"npnet study {name}: --seed must be >= 0, got {args.seed}", file=sys.stderr)
        return 2
    module = load(name)
    start = time.perf_counter()
    try:
        result = module.run(**_kwargs(name, args))
    except DataError as exc:
        print(f"npnet study {name}: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"npnet study {name}: {exc}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - start
    text = module.table(result)
    print(text)   # printed first: a folder that cannot be written loses nothing of the result
    try:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "table.txt"), "w", encoding="utf-8") as f:
            f.write(text + "\n")
        written = [os.path.join(args.out, "table.txt")]
        if hasattr(module, "csv_rows"):
            written.append(_write_csv(os.path.join(args.out, f"{name}.csv"), *module.csv_rows(result)))
        try:
            png = module.plot(result, os.path.join(args.out, f"{name}.png"))
        except ImportError as exc:
            print(f"(no figure: {exc}; pip install matplotlib)")
            png = None
    except OSError as exc:
        print(f"npnet study {name}: cannot write into --out {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if png:
        written.append(png)
    print(f"{name}: {elapsed:.1f} s; wrote {', '.join(written[:-1])} and {written[-1]}" if len(written) > 1
          else f"{name}: {elapsed:.1f} s; wrote {written[0]}")
    return 0


def _write_csv(path, header, rows):
    """``header`` and ``rows`` as a CSV file, written atomically; returns the path."""
    import csv
    import io

    from .._io import atomic_write

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write(path, lambda f, _: f.write(buf.getvalue().encode("utf-8")))
    return path


def main(argv=None):
    """``python -m npnet.studies NAME [options]``."""
    parser = argparse.ArgumentParser(prog="python -m npnet.studies", description="Run one npnet study.")
    _add_studies(parser.add_subparsers(dest="study", metavar="NAME", required=True))
    args = parser.parse_args(argv)
    return args.func(args)
