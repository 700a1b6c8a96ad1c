"""Study from code: constant initialization keeps every hidden unit identical.

Calls ``npnet.studies.symmetry.run`` (the same as ``npnet study symmetry``) on
Fashion-MNIST, prints its table, checks the fact, and writes the figure.

    python examples/07_study_symmetry.py [--quick] [--out DIR]
"""
import argparse
import os

from npnet.studies import symmetry

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true")
parser.add_argument("--out", default=os.path.join("runs", "examples"))
args = parser.parse_args()

result = symmetry.run(quick=args.quick)
print(symmetry.table(result))
for name in result.settings:
    spread = result.final_spread(name)
    print(f"{name}: after {result.steps} steps the hidden units differ by at most {spread!r}"
          + ("  (exact copies)" if spread == 0.0 else ""))
print(f"final test accuracy: {result.test_accuracy['random N(0,0.01)']:.4f} (random init; "
      f"constant init: {result.test_accuracy['constant']:.4f})")
print("figure:", symmetry.plot(result, os.path.join(args.out, "symmetry.png")))
