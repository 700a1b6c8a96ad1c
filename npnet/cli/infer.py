"""``npnet eval`` and ``npnet predict``: the command-line side of :mod:`npnet.inference`.

:func:`add_parsers` adds both subcommands to ``npnet``'s subparsers; each
command function takes the parsed namespace and returns the exit status, and
raises ``UsageError`` (exit 2, one line) for bad input: a folder
without a checkpoint, a corrupt checkpoint, an image npnet will not guess how
to read.
"""
import os

import numpy as np

from ._common import (CHECKPOINT, CONFUSION, EXIT_OK, RunFailed, UsageError, _arch, _directory, _integer,
                      _load_data, _path)

PREDICT_NOTES = (
    "Images are classified as the model was trained: 28x28 grayscale, light item on a dark "
    "background (Fashion-MNIST's convention; invert dark-on-light pictures first), scaled to [0, 1]. "
    "Accepted: PNG/JPEG (read with Pillow: pip install Pillow) of 28x28 pixels, grayscale or colour "
    "(converted to grayscale, alpha ignored); .npy arrays of shape (28, 28), (1, 28, 28) or (28, 28, 1) "
    "holding uint8 0..255 or floats in [0, 1]. Other sizes are refused: npnet does not resize or crop.")


def add_parsers(sub):
    """Add ``eval`` and ``predict`` to the argparse subparsers ``sub``."""
    p = sub.add_parser(
        "eval", help="evaluate a trained run on the test set: loss, accuracy, per-class accuracy, confusion.png",
        description="Load RUN_DIR's checkpoint, evaluate it on the Fashion-MNIST test set (the data the run "
                    "was trained on, unless --data-dir says otherwise), print the test loss and accuracy and "
                    f"the accuracy of each class, and write {CONFUSION} into RUN_DIR.")
    p.add_argument("run", type=_path, metavar="RUN_DIR", help="a folder written by npnet train --out (or its checkpoint.npz)")
    p.add_argument("--data-dir", type=_directory, metavar="DIR",
                   help="a directory holding the four Fashion-MNIST files (default: the run's)")
    p.add_argument("--download", action="store_true", help="download Fashion-MNIST if it is not found (else: exit 2)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "predict", help="classify 28x28 images (PNG, JPEG or .npy) with a trained run; prints the top classes",
        description="Classify each FILE with the model in RUN_DIR and print its most probable classes with "
                    "their probabilities (softmax of the logits). " + PREDICT_NOTES)
    p.add_argument("run", type=_path, metavar="RUN_DIR", help="a folder written by npnet train --out (or its checkpoint.npz)")
    p.add_argument("files", type=_path, nargs="+", metavar="FILE", help="a PNG or JPEG image or a .npy array")
    p.add_argument("--top", type=_integer(1), default=3, metavar="K", help="classes to show per image (default: 3)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=cmd_predict)


def _load(run):
    from ..errors import CheckpointError
    from ..inference import load_run

    if not os.path.exists(run):
        raise UsageError(f"{run} does not exist; expected a run folder written by npnet train --out, "
                         "or its checkpoint.npz")
    try:
        return load_run(run)
    except CheckpointError as e:
        raise UsageError(f"cannot load {run}: {e}") from e


def _class_names(num_classes):
    from ..data import FASHION_MNIST_LABELS

    return list(FASHION_MNIST_LABELS) if num_classes == len(FASHION_MNIST_LABELS) else \
        [str(i) for i in range(num_classes)]


def _describe(model, ckpt):
    arch = _arch((ckpt.config or {}).get("settings") or {}) or repr(model).replace("\n", " ")
    return f"{arch}, {model.dtype}, after epoch {ckpt.epoch}"


def cmd_eval(args):
    from .. import nn
    from ..data import DataLoader
    from ..inference import confusion_matrix, prepare_images
    from ..train import evaluate

    model, ckpt = _load(args.run)
    run_dir = args.run if os.path.isdir(args.run) else os.path.dirname(args.run) or "."
    config = ckpt.config or {}
    if args.data_dir is None:
        args.data_dir = config.get("data_dir")   # the data the run was trained on
    _, _, X_test, y_test = _load_data(args)
    batch_size = (config.get("settings") or {}).get("batch_size") or 256   # the run's: the same sums as in training
    loader = DataLoader(X_test, y_test, batch_size)
    stats = evaluate(model, loader, nn.CrossEntropyLoss())
    num_classes = model(prepare_images(X_test[:1], dtype=model.dtype)).shape[-1]
    confusion = confusion_matrix(model, loader, num_classes)
    names = _class_names(num_classes)

    print(f"{os.path.join(run_dir, CHECKPOINT) if os.path.isdir(args.run) else args.run}: {_describe(model, ckpt)}")
    print(f"test set: {stats.samples} images; test loss {stats.loss:.4f}, test accuracy {stats.accuracy:.4f}")
    print()
    width = max(len("name"), *(len(n) for n in names))
    print(f"{'class':>5}  {'name':<{width}}  {'images':>6}  {'correct':>7}  {'accuracy':>8}  most often taken for")
    for c in range(num_classes):
        row = confusion[c]
        total = int(row.sum())
        accuracy = f"{row[c] / total:.4f}" if total else "-"
        others = row.copy()
        others[c] = 0
        worst = int(others.argmax())
        taken = f"{names[worst]} ({int(others[worst])})" if others[worst] else "-"
        print(f"{c:>5}  {names[c]:<{width}}  {total:>6}  {int(row[c]):>7}  {accuracy:>8}  {taken}")

    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print(f"note: matplotlib is not installed; skipped {CONFUSION} (pip install matplotlib, or npnet[train])")
        return EXIT_OK
    from ..plots import plot_confusion

    path = os.path.join(run_dir, CONFUSION)
    try:
        plot_confusion(confusion, path, class_names=names, title=f"{_describe(model, ckpt)}")
    except OSError as e:
        raise RunFailed(f"cannot write {path}: {e.strerror or e}") from e
    print(f"\nwrote {path}")
    return EXIT_OK


def cmd_predict(args):
    from ..inference import prepare_images, read_image, topk

    model, _ = _load(args.run)
    images, notes = [], []
    for name in args.files:
        try:
            image, image_notes = read_image(name)
        except (ValueError, ImportError) as e:
            raise UsageError(str(e)) from e
        images.append(prepare_images(image[None], dtype=model.dtype))
        notes += image_notes
    x = np.concatenate(images)
    logits = model(x)
    names = _class_names(logits.shape[1])
    if args.top > logits.shape[1]:
        raise UsageError(f"--top {args.top} is more than the model's {logits.shape[1]} classes")
    classes, probs = topk(logits, args.top)
    for note in notes:
        print(f"note: {note}")
    width, name_width = max(len(f) for f in args.files), max(len(n) for n in names)
    for f, cs, ps in zip(args.files, classes, probs):
        print(f"{f:<{width}}  " + "  ".join(f"{names[c]:<{name_width}} {p:.3f}" for c, p in zip(cs, ps)))
    return EXIT_OK
