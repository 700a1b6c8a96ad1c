"""python -m benchmarks [ops|train|all] [--quick] [--out DIR] [--repeats N] [--threads N]

A full run writes benchmarks/results/latest.{json,md,png}, the committed results.
A --quick run (tiny sizes: it proves the scripts run and agree with torch) writes
into runs/bench-quick unless --out says otherwise, never into benchmarks/results,
and its report says it was quick: the speed targets do not apply to it.
"""
import argparse
import os
import sys

# Before torch or NumPy is imported (both load here): OpenBLAS's idle threads sleep at once,
# as they do under npnet imported first (see npnet/__init__.py), instead of spinning on the
# cores npnet's kernel threads need. torch does not use OpenBLAS; NumPy's products (npnet's
# and the floors') keep their threads.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
QUICK_OUT = os.path.join("runs", "bench-quick")
INSTALL = "pip install -e '.[bench]'"

TARGETS = {
    # (group, name, shape-prefix) -> ratio target (npnet time / torch time)
    ("ops", "cross_entropy", "(256, 10)"): 0.5,
    ("ops", "cross_entropy", "(4096, 1000)"): 1.0,
    ("ops", "softmax", "(256, 10)"): 0.5,
    ("ops", "softmax", "(4096, 1000)"): 1.0,
    ("ops", "log_softmax", "(256, 10)"): 0.5,
    ("ops", "log_softmax", "(4096, 1000)"): 1.0,
    ("ops", "Linear", "(256, 784)->256"): 1.0,
    ("ops", "BatchNorm2d", "(256, 6, 28, 28)"): 1.0,
    ("ops", "BatchNorm2d", "(256, 16, 10, 10)"): 1.0,
    ("ops", "MaxPool2d", "(256, 6, 28, 28)"): 1.0,
    ("ops", "MaxPool2d", "(256, 16, 10, 10)"): 1.0,
    ("ops", "Conv2d", "(256, 1, 28, 28)"): 1.0,        # with and without dX
    ("ops", "Conv2d / its floor (time ratio)", "(256, 6, 14, 14)"): 1.25,
    ("train", "softmax regression epoch", ""): 0.2,
    ("train", "MLP epoch", ""): 0.67,
    ("train", "LeNet epoch", ""): 1.0,
    ("train", "cnn epoch", ""): 1.0,
}


def _attach_targets(results, quick=False):
    """Each result's target; a quick run's tiny sizes have none (every target is set to None)."""
    for r in results:
        if quick:
            r["target"] = None
            continue
        for (group, name, shape), target in TARGETS.items():
            if r["group"] == group and r["name"] == name and r.get("shape", "").startswith(shape):
                r["target"] = target
    return results


def _missing_requirement():
    """None when torch and threadpoolctl import, else the one line saying how to install them."""
    for module in ("torch", "threadpoolctl"):
        try:
            __import__(module)
        except ModuleNotFoundError as e:
            if (e.name or "").split(".")[0] != module:
                raise
            return f"python -m benchmarks: {module} is not installed; install the benchmark extras with `{INSTALL}` in the npnet repository"
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", nargs="?", default="all", choices=["all", "ops", "train"])
    parser.add_argument("--quick", action="store_true",
                        help=f"tiny sizes: proves the scripts run and agree; writes into {QUICK_OUT} by default")
    parser.add_argument("--out", default=None,
                        help=f"where latest.{{json,md,png}} go (default benchmarks/results, quick: {QUICK_OUT})")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per case (default 7, quick 3)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for NumPy's BLAS, npnet's fast kernels (npnet.set_num_threads) and torch")
    args = parser.parse_args(argv)
    out = args.out if args.out is not None else (QUICK_OUT if args.quick else RESULTS)
    if args.quick and os.path.realpath(out) == os.path.realpath(RESULTS):
        parser.error(f"--out: a quick run never writes into {RESULTS} (the committed full-size results); "
                     f"pass another folder or leave --out out ({QUICK_OUT})")
    repeats = args.repeats or (3 if args.quick else 7)
    missing = _missing_requirement()
    if missing:
        print(missing, file=sys.stderr)
        return 2

    import torch
    from threadpoolctl import threadpool_limits

    from . import report
    import npnet
    torch.set_num_threads(args.threads)
    npnet.set_num_threads(args.threads)
    with threadpool_limits(limits=args.threads, user_api="blas"):
        info = report.machine_info()
        results = []
        if args.part in ("all", "ops"):
            from . import ops
            results += ops.run(quick=args.quick, repeats=repeats)
        if args.part in ("all", "train"):
            from . import e2e
            results += e2e.run(quick=args.quick, repeats=repeats, threads=args.threads)
    _attach_targets(results, quick=args.quick)
    report.write(results, info, out, quick=args.quick)
    print(report.markdown(results, info, quick=args.quick))
    print(f"wrote {out}/latest.json, latest.md, latest.png" + (" (quick run)" if args.quick else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
