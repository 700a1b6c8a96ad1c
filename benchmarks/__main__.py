"""python -m benchmarks [ops|train|all] [--quick] [--out DIR] [--repeats N] [--threads N]"""
import argparse
import os
import sys

TARGETS = {
    # (group, name, shape-prefix) -> ratio target (npnet time / torch time)
    ("ops", "cross_entropy", "(256, 10)"): 0.5,
    ("ops", "cross_entropy", "(4096, 1000)"): 1.0,
    ("ops", "softmax", "(256, 10)"): 0.5,
    ("ops", "softmax", "(4096, 1000)"): 1.0,
    ("ops", "log_softmax", "(256, 10)"): 0.5,
    ("ops", "log_softmax", "(4096, 1000)"): 1.0,
    ("ops", "Linear", "(256, 784)->256"): 1.0,
    ("train", "softmax regression epoch", ""): 0.2,
    ("train", "MLP epoch", ""): 0.67,
}


def _attach_targets(results):
    for r in results:
        for (group, name, shape), target in TARGETS.items():
            if r["group"] == group and r["name"] == name and r.get("shape", "").startswith(shape):
                r["target"] = target
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("part", nargs="?", default="all", choices=["all", "ops", "train"])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: proves the scripts run and agree")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per case (default 7, quick 3)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for both NumPy's BLAS and torch")
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 7)

    import torch
    from threadpoolctl import threadpool_limits

    from . import report
    torch.set_num_threads(args.threads)
    with threadpool_limits(limits=args.threads, user_api="blas"):
        info = report.machine_info()
        results = []
        if args.part in ("all", "ops"):
            from . import ops
            results += ops.run(quick=args.quick, repeats=repeats)
        if args.part in ("all", "train"):
            from . import e2e
            results += e2e.run(quick=args.quick, repeats=repeats)
    _attach_targets(results)
    report.write(results, info, args.out)
    print(report.markdown(results, info))
    print(f"wrote {args.out}/latest.json, latest.md, latest.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
