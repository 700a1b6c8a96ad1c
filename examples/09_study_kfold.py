"""Study from code: choose a setting by k-fold cross-validation, then test it once.

Calls ``npnet.studies.kfold.run`` (like ``npnet study kfold``) on a 20,000-image
subset with 5 folds and 5 epochs per setting (``--quick``: 3,000 images, 3
folds, the tiny grid), prints mean and std of validation accuracy per setting
and the chosen setting's test accuracy, and writes the figure. For the full
run: ``npnet study kfold`` (or ``--grid best``).

    python examples/09_study_kfold.py [--quick] [--out DIR]
"""
import argparse
import os

from npnet.studies import kfold

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true")
parser.add_argument("--out", default=os.path.join("runs", "examples"))
args = parser.parse_args()

sizes = {} if args.quick else {"n_train": 20000, "k": 5, "epochs": 5}
result = kfold.run(quick=args.quick, **sizes)
print(kfold.table(result))
for setting, mean, std in zip(result.settings, result.mean, result.std):
    print(f"{setting.name}: {mean:.4f} +- {std:.4f}")
print(f"final test accuracy: {result.test_accuracy:.4f} ({result.chosen_setting.name})")
print("figure:", kfold.plot(result, os.path.join(args.out, "kfold.png")))
