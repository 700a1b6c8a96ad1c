"""Study from code: where the naive softmax and cross-entropy break, and the stable ones do not.

Calls ``npnet.studies.stability.run`` (the same as ``npnet study softmax-stability``),
prints its table, a few numbers taken from the result, and writes the figure.

    python examples/05_study_stability.py [--quick] [--out DIR]
"""
import argparse
import os

from npnet.studies import stability

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true")
parser.add_argument("--out", default=os.path.join("runs", "examples"))
args = parser.parse_args()

result = stability.run(quick=args.quick)
print(stability.table(result))
for dtype in stability.DTYPES:
    first = result.first[dtype]
    print(f"{dtype}: the naive softmax first gives inf/nan at logit scale {first['softmax naive']['value']:.2f} "
          f"(exp overflows above {result.overflow_limit[dtype]:.2f}); the stable cross-entropy: "
          f"{'never' if first['CE stable']['value'] is None else first['CE stable']['value']}")
print("figure:", stability.plot(result, os.path.join(args.out, "softmax-stability.png")))
