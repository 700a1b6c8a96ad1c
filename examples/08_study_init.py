"""Study from code: N(0, 0.01), torch's default, Xavier and Kaiming initialization.

Calls ``npnet.studies.initialization.run`` (like ``npnet study init``) on all
of Fashion-MNIST for 3 epochs (``--quick``: 10,000 images, 2 epochs), prints
the table and writes the figure. ``npnet study init`` trains for 10 epochs.

    python examples/08_study_init.py [--quick] [--out DIR]
"""
import argparse
import os

from npnet.studies import initialization

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true")
parser.add_argument("--out", default=os.path.join("runs", "examples"))
args = parser.parse_args()

sizes = {} if args.quick else {"epochs": 3}
result = initialization.run(quick=args.quick, **sizes)
print(initialization.table(result))
small, kaiming = result.activation_std["N(0,0.01)"], result.activation_std["Kaiming"]
print(f"last layer's output std at step 0: N(0,0.01) {small[-1]:.3g}, Kaiming {kaiming[-1]:.3g}")
best = max(result.inits, key=lambda name: result.test_accuracy[name][-1])
print(f"final test accuracy: {result.test_accuracy[best][-1]:.4f} ({best})")
print("figure:", initialization.plot(result, os.path.join(args.out, "init.png")))
