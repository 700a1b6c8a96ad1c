"""What each fast kernel buys: npnet's fast kernels against their plain twins.

    python -m benchmarks.kernels [--repeats 21]

Both run in one process, interleaved, and each row reports the median time per
call of each and their ratio. The kernels are called directly (``F.x.fast`` /
``F.x.plain``), without the argument checks, so the numbers are the arithmetic
alone. A case with no fast twin for one half (Linear's backward) runs the plain
one on both sides.
"""
import argparse

import numpy as np

import npnet.nn.functional as F

from .timing import interleaved


def cases(rng):
    """(name, {"fast": fn, "plain": fn}) for every measured kernel."""
    out = []
    for shape in [(256, 10), (4096, 1000)]:
        X = rng.standard_normal(shape).astype(np.float32)
        out.append((f"softmax {shape}", {k: (lambda f=getattr(F.softmax, k), X=X: f(X, 1)) for k in ("fast", "plain")}))

    X = rng.standard_normal((256, 10)).astype(np.float32)
    t = rng.integers(0, 10, 256)
    one = np.ones((), np.float32)

    def ce(impl):
        def run():
            _, backward = impl(X, t)
            return backward(one)
        return run
    out.append(("cross_entropy forward+backward (256, 10)",
                {k: ce(getattr(F.cross_entropy_with_backward, k)) for k in ("fast", "plain")}))

    Xr, dY = rng.standard_normal((256, 256)).astype(np.float32), rng.standard_normal((256, 256)).astype(np.float32)
    out.append(("relu_backward (256, 256)",
                {k: (lambda f=getattr(F.relu_backward, k): f(dY, Xr)) for k in ("fast", "plain")}))

    Xl = rng.standard_normal((256, 784)).astype(np.float32)
    W = (rng.standard_normal((256, 784)) / 28).astype(np.float32)
    b = rng.standard_normal(256).astype(np.float32)
    dYl = rng.standard_normal((256, 256)).astype(np.float32)

    def linear(impl):
        def run():
            impl(Xl, W, b)
            return F.linear_backward.plain(dYl, Xl, W)
        return run
    out.append(("Linear forward+backward (256, 784) -> 256",
                {k: linear(getattr(F.linear, k)) for k in ("fast", "plain")}))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.kernels", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21, help="interleaved repeats; the median is reported")
    args = parser.parse_args(argv)
    rows = ["| kernel | fast | plain | plain / fast |", "|---|---:|---:|---:|"]
    for name, fns in cases(np.random.default_rng(0)):
        medians, _ = interleaved(fns, repeats=args.repeats)
        f, p = medians["fast"], medians["plain"]
        rows.append(f"| {name} | {f * 1e6:.1f} us | {p * 1e6:.1f} us | {p / f:.2f}x |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
