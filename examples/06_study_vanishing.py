"""Study from code: vanishing and exploding gradients.

Calls ``npnet.studies.vanishing.run`` (the same as ``npnet study vanishing``),
prints its table and the per-layer gradient norms of two settings, and writes the figure.

    python examples/06_study_vanishing.py [--quick] [--out DIR]
"""
import argparse
import os

import numpy as np

from npnet.studies import vanishing

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true")
parser.add_argument("--out", default=os.path.join("runs", "examples"))
args = parser.parse_args()

result = vanishing.run(quick=args.quick)
print(vanishing.table(result))
np.set_printoptions(precision=2)
for activation, init in (("sigmoid", "N(0,0.01)"), ("relu", "Kaiming")):
    g = result.norms(activation, init)
    print(f"{activation} + {init}: |dW| from input to output layer:\n{g}")
    print(f"  first / last layer: {g[0] / g[-1]:.3g}")
print("figure:", vanishing.plot(result, os.path.join(args.out, "vanishing.png")))
