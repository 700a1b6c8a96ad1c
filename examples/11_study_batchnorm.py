"""Study from code: the sigmoid LeNet with and without BatchNorm, at the same learning rates.

Calls ``npnet.studies.batchnorm.run`` (like ``npnet study batchnorm``) on a
10,000-image subset for 3 epochs (``--quick``: 2,000 images, 2 epochs), at SGD
learning rates 0.1, 0.9 and 4, prints the table, how much each layer's input to
its sigmoid varies from image to image before training, and writes the figure.
``npnet study batchnorm`` trains on 20,000 images for 5 epochs.

    python examples/11_study_batchnorm.py [--quick] [--out DIR]
"""
import argparse
import os

from npnet.studies import batchnorm

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true")
parser.add_argument("--out", default=os.path.join("runs", "examples"))
args = parser.parse_args()

sizes = {} if args.quick else {"n_train": 10000, "epochs": 3}
result = batchnorm.run(quick=args.quick, **sizes)
print(batchnorm.table(result))
lr = result.lrs[0]
for name in result.models:
    spread = ", ".join(f"{layer} {s:.2g}" for layer, s in zip(batchnorm.LAYERS, result.curves[name, lr].activation_std[0]))
    print(f"{name}: spread of each sigmoid's input before training: {spread}")
for lr in result.lrs:
    plain, normed = (result.curves[name, lr].train_accuracy[0] for name in result.models)
    print(f"lr {lr:g}: training accuracy in epoch 1: {plain:.3f} without BatchNorm, {normed:.3f} with")
best = max(result.curves, key=lambda key: result.curves[key].test_accuracy[-1])
print(f"final test accuracy: {result.curves[best].test_accuracy[-1]:.4f} ({best[0]}, lr {best[1]:g})")
print("figure:", batchnorm.plot(result, os.path.join(args.out, "batchnorm.png")))
