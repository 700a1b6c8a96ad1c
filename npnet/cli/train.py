"""``npnet train``: the course's softmax regression (or the MLP, LeNet, a small CNN) on Fashion-MNIST,
its settings, the table and metrics.csv it writes as it goes, resume and the torch check."""
import csv
import importlib
import importlib.util
import io
import json
import math
import os
import shlex
import signal
import sys
import time

import numpy as np

from .. import __version__
from . import _outdir
from ._common import (CHECKPOINT, CONFIG, CURVES, DEFAULT_LR, DEFAULTS, EXIT_OK, FIXED_ON_RESUME, METRICS,
                      METRICS_COLUMNS, MODEL_DEFAULTS, NUM_PREDICTIONS, PREDICTIONS, SINCE, RunFailed, Stopped,
                      UsageError,
                      _arch, _directory, _integer, _load_data, _loss_text, _one_line, _plural, _real, _write_text)


def add_parser(sub):
    p = sub.add_parser(
        "train", help="train on Fashion-MNIST (default: the course's softmax regression)",
        description="Train on Fashion-MNIST. Defaults to the course's softmax regression: Flatten + Linear(784, 10), "
                    "W ~ N(0, 0.01), b = 0, SGD lr 0.1, batch 256, 10 epochs. Writes metrics.csv, curves.png, "
                    "predictions.png, config.json and checkpoint.npz (after every epoch) into --out.")
    a = p.add_argument
    a("--model", choices=("softmax", "mlp", "lenet", "cnn"),
      help="softmax regression, the 784-HIDDEN-10 ReLU MLP, the course's LeNet (init xavier, lr 0.9) or a small "
           "CNN with BatchNorm (adam, lr 0.001) (default: softmax)")
    a("--hidden", type=_integer(1), metavar="N",
      help="hidden units of the mlp (default: 256) or of the cnn's classifier (default: 128)")
    a("--epochs", type=_integer(1), metavar="N",
      help="train until this epoch (default: 10; with --resume, a new total)")
    a("--lr", type=_real(0.0, low_open=True), metavar="LR",
      help="learning rate (default: 0.1 for sgd, 0.9 for the lenet's sgd, 0.001 for adam)")
    a("--batch-size", type=_integer(1), metavar="N", help="mini-batch size (default: 256)")
    a("--optimizer", choices=("sgd", "adam"), help="the optimizer (default: sgd; adam for the cnn)")
    a("--lr-schedule", choices=("none", "cosine"),
      help="none keeps --lr; cosine lowers it to 0 over --epochs, after each epoch (default: none; cosine for the cnn)")
    a("--momentum", type=_real(0.0), metavar="M", help="SGD momentum (default: 0)")
    a("--weight-decay", type=_real(0.0), metavar="WD", help="L2 penalty (default: 0)")
    a("--dropout", type=_real(0.0, 1.0, high_open=True), metavar="P",
      help="dropout after the mlp's hidden layer (default: 0)")
    a("--init", choices=("normal", "xavier", "kaiming", "torch-default"),
      help="initial weights: normal = N(0, 0.01) with b = 0, the course's (default: normal; lenet: xavier, "
           "its weights only; cnn: torch-default; these two take xavier or torch-default)")
    a("--seed", type=_integer(0), metavar="N",
      help="seeds the initial weights, the shuffling and the dropout masks (default: 0)")
    a("--dtype", choices=("float32", "float64"), help="parameter dtype (default: float32)")
    a("--data-dir", type=_directory, metavar="DIR",
      help="the one folder to read the four Fashion-MNIST files from (nothing else is searched)")
    a("--download", action="store_true", help="download Fashion-MNIST if it is not found (else: exit 2)")
    a("--out", type=_directory, default=os.path.join("runs", "default"), metavar="DIR",
      help="output directory (default: %(default)s)")
    a("--resume", action="store_true", help="continue the run in --out from its checkpoint.npz")
    a("--allow-other-data", action="store_true",
      help="with --resume: continue even on data other than the data the checkpoint was trained on")
    a("--overwrite", action="store_true", help="start afresh even if --out holds a checkpoint")
    a("--check-torch", action="store_true",
      help="train a PyTorch twin in lockstep and report the largest loss and parameter differences per epoch")
    a("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=cmd_train)


def _settings(args, saved=None):
    """The run's settings: flags over defaults, or (resuming) the checkpoint's, checked against the flags."""
    given = {k: getattr(args, k) for k in DEFAULTS if getattr(args, k) is not None}
    if saved is not None:
        for k in FIXED_ON_RESUME:
            if k in given and given[k] != saved.get(k):
                flag = "--" + k.replace("_", "-")
                raise UsageError(f"{flag} {given[k]} differs from the checkpoint's {saved.get(k)}; a resumed run keeps "
                                 f"its settings (start a new run with another --out, or --overwrite)")
        s = {k: saved.get(k, SINCE.get(k)) for k in DEFAULTS}
        s["epochs"] = given.get("epochs", saved.get("epochs", DEFAULTS["epochs"]))
        if s["lr_schedule"] == "cosine" and s["epochs"] != saved.get("epochs"):
            raise UsageError(f"--epochs {s['epochs']} differs from the checkpoint's {saved.get('epochs')}: its cosine "
                             f"schedule ends at epoch {saved.get('epochs')}; start a new run for a longer one")
        return s
    from ..models import DEFAULT_HIDDEN, MODEL_INITS

    model = given.get("model", DEFAULTS["model"])
    own = {**MODEL_DEFAULTS[model], "init": MODEL_INITS[model][0], "hidden": DEFAULT_HIDDEN[model]}
    s = {k: given.get(k, own.get(k, v) if k != "lr" else v) for k, v in DEFAULTS.items()}
    if s["lr"] is None:
        s["lr"] = own["lr"].get(s["optimizer"], DEFAULT_LR[s["optimizer"]]) if "lr" in own else DEFAULT_LR[s["optimizer"]]
    if model == "softmax":
        for k in ("hidden", "dropout"):
            if k in given:
                raise UsageError(f"--{k} applies to --model mlp{' or cnn' if k == 'hidden' else ''}; "
                                 "softmax regression has no hidden layer")
    if model in ("lenet", "cnn"):
        for k in ("hidden", "dropout") if model == "lenet" else ("dropout",):
            if k in given:
                raise UsageError(f"--{k} applies to --model mlp{' or cnn' if k == 'hidden' else ''}; "
                                 f"the {model} has no {'hidden width to set' if k == 'hidden' else 'dropout'}")
        if s["init"] not in MODEL_INITS[model]:
            raise UsageError(f"--init {s['init']} does not apply to --model {model}; it takes "
                             f"{' or '.join(MODEL_INITS[model])} (default: {MODEL_INITS[model][0]})")
    if model != "mlp":
        s["dropout"] = None
    s["hidden"] = s["hidden"] if DEFAULT_HIDDEN[model] else None
    if s["optimizer"] == "adam":
        if "momentum" in given:
            raise UsageError("--momentum applies to --optimizer sgd (Adam has betas)")
        s["momentum"] = None
    return s


def _check_same_data(config, path, train_samples, fingerprint, *, allow):
    """``--resume`` continues on the data its checkpoint was trained on, unless ``--allow-other-data``."""
    saved_n, saved = config.get("train_samples"), config.get("data_fingerprint")
    if saved is None:
        print(f"note: {path} records no fingerprint of its data (an older npnet wrote it); "
              "the data found is taken to be the same", flush=True)
    if saved_n in (None, train_samples) and saved in (None, fingerprint):
        return
    if allow:
        print("note: resuming on other data than the checkpoint was trained on (--allow-other-data)", flush=True)
        return
    if saved_n not in (None, train_samples):
        raise UsageError(f"the checkpoint was trained on {saved_n} training images, the data found has "
                         f"{train_samples}; resume with the same data (--data-dir), or pass --allow-other-data")
    raise UsageError(f"the checkpoint was trained on other data than the data found (data fingerprint "
                     f"{saved[:12]}..., found {fingerprint[:12]}...); resume with the same data (--data-dir), "
                     "or pass --allow-other-data")


def _write_metrics(path, history):
    """metrics.csv: METRICS_COLUMNS, one row per epoch (a test loss the checkpoint lacks is nan)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(METRICS_COLUMNS)
    for r in history:
        w.writerow([r.epoch] + [repr(float(getattr(r, c, math.nan))) for c in METRICS_COLUMNS[1:]])
    _write_text(path, buf.getvalue())


def _describe(s):
    """The model and its key settings, in one line (the run's summary and the title of curves.png)."""
    arch = _arch(s)
    if s["model"] == "mlp" and s["dropout"]:
        arch += f" (dropout {s['dropout']:g})"
    hp = (f"lr {s['lr']:g}" + (f", momentum {s['momentum']:g}" if s["momentum"] else "")
          + (f", weight decay {s['weight_decay']:g}" if s["weight_decay"] else ""))
    if s.get("lr_schedule") == "cosine":
        hp += ", cosine schedule"
    return (f"{arch}, init {s['init']}, {s['optimizer']} ({hp}), batch {s['batch_size']}, "
            f"{_plural(s['epochs'], 'epoch')}, {s['dtype']}, seed {s['seed']}")


class _Reporter:
    """Progress bar (tqdm, on a TTY), a table row per epoch, metrics.csv after each epoch."""

    def __init__(self, out, history, samples_per_epoch, *, twin=None):
        self.out, self.history, self.samples, self.twin = out, list(history), samples_per_epoch, twin
        self.bar = None
        self.tqdm = None
        self.started = False   # has an epoch begun?
        if sys.stdout.isatty():
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            self.tqdm = tqdm
        self.last_epoch = history[-1].epoch if history else 0

    def header(self):
        extra = "  torch: max|dloss|  max|dparam|" if self.twin else ""
        print(f"{'epoch':>5}  {'loss':>7}  {'train acc':>9}  {'test acc':>8}  {'seconds':>7}{extra}", flush=True)

    def row(self, r, diffs=None):
        extra = f"  {diffs[1]:>17.3e}  {diffs[2]:>12.3e}" if diffs else ""
        loss = _loss_text(r.train_loss)
        print(f"{r.epoch:>5}  {loss:>7}  {r.train_acc:>9.4f}  {r.test_acc:>8.4f}  {r.seconds:>7.2f}{extra}",
              flush=True)

    def on_epoch_start(self, epoch):
        self.started = True
        self.loss_sum = 0.0
        self.seen = 0
        self.t0 = time.perf_counter()
        if self.tqdm is not None:
            self.bar = self.tqdm(total=self.samples, desc=f"epoch {epoch}", unit="img", unit_scale=True,
                                 leave=False, file=sys.stdout, dynamic_ncols=True)

    def on_step(self, info):
        self.loss_sum += info.loss * info.batch_size
        self.seen += info.batch_size
        if self.bar is not None:
            self.bar.set_postfix(loss=_loss_text(self.loss_sum / self.seen), refresh=False)
            self.bar.update(info.batch_size)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_epoch_end(self, result):
        self.close()
        self.history.append(result)
        self.last_epoch = result.epoch
        _write_metrics(os.path.join(self.out, METRICS), self.history)
        self.row(result, self.twin.epoch_diffs[-1] if self.twin else None)


def _make_plots(out, history, model, X_test, y_test, title):
    """curves.png and predictions.png; a one-line note (and no PNGs) without matplotlib."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print(f"note: matplotlib is not installed; skipped {CURVES} and {PREDICTIONS} "
              "(pip install matplotlib, or npnet[train])")
        return []
    from .. import plots
    from ..data import FASHION_MNIST_LABELS, DataLoader

    written = []
    if history:
        written.append(plots.plot_curves(history, os.path.join(out, CURVES), title=title))
    n = min(NUM_PREDICTIONS, X_test.shape[0])
    X, y = next(iter(DataLoader(X_test[:n], y_test[:n], n)))
    predictions = model(X.astype(model.dtype, copy=False)).argmax(axis=-1)
    written.append(plots.plot_predictions(X_test[:n], y, predictions, os.path.join(out, PREDICTIONS),
                                          class_names=FASHION_MNIST_LABELS))
    return written


def _require_torch():
    try:
        importlib.import_module("torch")
    except ImportError as e:
        raise UsageError("--check-torch needs PyTorch, which is not installed; install it with: "
                         "pip install -e '.[reference]' (from npnet's source folder)") from e


# --------------------------------------------------------------------------- npnet train

def cmd_train(args):
    out = args.out
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"cannot create --out {out}: it names an existing file, not a directory; "
                         "choose another --out")
    if args.resume:
        if args.check_torch:
            raise UsageError("--check-torch starts its twin from the initial weights; "
                             "it cannot be combined with --resume")
        if args.overwrite:
            raise UsageError("--resume and --overwrite contradict each other")
        ckpt_path = os.path.join(out, CHECKPOINT)
        if not os.path.isfile(ckpt_path):
            raise UsageError(f"--resume: there is no checkpoint to resume from ({ckpt_path} does not exist)")
        settings = None
    else:
        if args.allow_other_data:
            raise UsageError("--allow-other-data applies to --resume only")
        settings = _settings(args)
        _outdir._check_memory(settings)
        if args.check_torch:
            _require_torch()

    created = _outdir._make_out(out)
    lock = _outdir._OutLock(out)
    run = {"reporter": None, "wrote": False}
    finished = False
    try:
        lock.acquire(out)
        status = _train(args, settings, run)
        finished = True
        return status
    finally:
        # A fresh run that stopped before its first epoch takes back what it wrote (its folder too).
        reporter = run["reporter"]
        if not finished and not args.resume and run["wrote"] and not (reporter and reporter.started):
            try:
                _outdir._remove_run_files(out)
            except RunFailed:
                pass
        lock.release()
        if not finished:
            _outdir._remove_empty_dirs(created)


def _train(args, settings, run):
    from .. import nn, optim
    from .. import train as T   # T.fit, looked up when called
    from ..checkpoint import load_checkpoint
    from ..data import DataLoader
    from ..data import fingerprint as data_fingerprint
    from ..errors import CheckpointError, TrainingDiverged
    from ..models import build_model, check_run_settings

    out = args.out
    ckpt_path = os.path.join(out, CHECKPOINT)
    saved_history = []
    if args.resume:
        try:
            ckpt = load_checkpoint(ckpt_path)
        except CheckpointError as e:
            raise RunFailed(f"cannot resume: {e}") from e
        saved = (ckpt.config or {}).get("settings")
        if not isinstance(saved, dict) or any(k not in saved for k in DEFAULTS if k not in SINCE):
            raise RunFailed(f"cannot resume: {ckpt_path} was not written by `npnet train` (no settings in its config)")
        try:
            check_run_settings(ckpt.config, ckpt.path)   # the words npnet eval uses for the same checkpoint
        except CheckpointError as e:
            raise RunFailed(f"cannot resume: {e}") from e
        settings = _settings(args, saved)
        if ckpt.epoch >= settings["epochs"]:   # touch nothing: config.json, metrics.csv and the plots stay
            print(f"nothing to train: {ckpt_path} is at epoch {ckpt.epoch} and --epochs is {settings['epochs']}; "
                  f"pass a larger --epochs to continue")
            return EXIT_OK
        _outdir._check_memory(settings)
        saved_history = ckpt.metrics
        if args.data_dir is None:
            args.data_dir = ckpt.config.get("data_dir")   # the data the run started on
    elif os.path.exists(ckpt_path) and not args.overwrite:
        raise UsageError(f"{out} already holds a run ({ckpt_path}); pass --resume to continue it, "
                         "--overwrite to start again, or choose another --out")

    X_train, y_train, X_test, y_test = _load_data(args)
    fingerprint = data_fingerprint(X_train, y_train, X_test, y_test)
    if args.resume:
        _check_same_data(ckpt.config, ckpt_path, X_train.shape[0], fingerprint, allow=args.allow_other_data)

    s = settings
    dtype = np.dtype(s["dtype"])
    init_seed, shuffle_seed, dropout_seed = np.random.SeedSequence(s["seed"]).spawn(3)
    model = build_model(s["model"], hidden=s["hidden"], dropout=s["dropout"] or 0.0, init=s["init"],
                        rng=np.random.default_rng(init_seed), dropout_rng=np.random.default_rng(dropout_seed),
                        dtype=dtype)
    if s["optimizer"] == "sgd":
        opt = optim.SGD(model.params, lr=s["lr"], momentum=s["momentum"], weight_decay=s["weight_decay"])
    else:
        opt = optim.Adam(model.params, lr=s["lr"], weight_decay=s["weight_decay"])
    # cosine: the lr falls from --lr to 0 over the run's --epochs, stepped after each epoch (torch's
    # CosineAnnealingLR with T_max = epochs); the checkpoint holds its state, so --resume continues it
    scheduler = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=s["epochs"]) if s["lr_schedule"] == "cosine" else None
    train_loader = DataLoader(X_train, y_train, s["batch_size"], shuffle=True,
                              rng=np.random.default_rng(shuffle_seed))
    test_loader = DataLoader(X_test, y_test, s["batch_size"])
    loss_fn = nn.CrossEntropyLoss()

    twin = None
    if args.check_torch:
        try:
            # torch itself is asked for, not only reference.lockstep: that may be imported already
            if importlib.util.find_spec("torch") is None:
                raise ImportError("No module named 'torch'")
            from reference.lockstep import TorchTwin
            twin = TorchTwin(model, opt)
        except ImportError as e:
            raise UsageError("--check-torch needs PyTorch and npnet's reference package; install them with: "
                             f"pip install -e '.[reference]' (from npnet's source folder) ({_one_line(str(e))})") from e

    config = {
        "settings": s,
        "command": "npnet " + " ".join(shlex.quote(a) for a in args.argv),
        "data_dir": args.data_dir,
        "check_torch": bool(args.check_torch),
        "npnet_version": __version__,
        "numpy_version": np.__version__,
        "model": repr(model).replace("\n", " "),
        "train_samples": int(X_train.shape[0]),
        "test_samples": int(X_test.shape[0]),
        "data_fingerprint": fingerprint,
    }
    samples = min(len(train_loader) * train_loader.batch_size, train_loader.dataset_size)
    reporter = run["reporter"] = _Reporter(out, saved_history, samples, twin=twin)
    # From here on the run writes into --out. A fresh run first removes an earlier run's files
    # (--overwrite, or the leftovers of a run that never wrote a checkpoint), so none of them can
    # end up beside the new checkpoint.
    run["wrote"] = True
    if not args.resume:
        _outdir._remove_run_files(out)
    _write_text(os.path.join(out, CONFIG), json.dumps(config, indent=2, sort_keys=True) + "\n")
    if args.resume:
        _write_metrics(os.path.join(out, METRICS), saved_history)
        print(f"resuming {out} after epoch {reporter.last_epoch}", flush=True)
    print(_describe(s), flush=True)
    reporter.header()
    for r in saved_history:
        reporter.row(r)

    callbacks = [twin, reporter] if twin is not None else [reporter]
    try:
        result = T.fit(model, loss_fn, opt, train_loader, test_loader, s["epochs"], scheduler=scheduler,
                     checkpoint_path=ckpt_path, resume=args.resume, config=config, callbacks=callbacks)
    except TrainingDiverged as e:
        reporter.close()
        kept = f"; {ckpt_path} keeps epoch {reporter.last_epoch}" if os.path.isfile(ckpt_path) else ""
        raise RunFailed(f"{e}{kept}") from e
    except (CheckpointError, RunFailed) as e:   # e.g. the disk is full: the last checkpoint stays
        reporter.close()
        raise RunFailed(f"{e}{_kept(ckpt_path)}") from e
    except KeyboardInterrupt as e:
        reporter.close()
        note = _interrupted(ckpt_path, out) if args.resume or reporter.started else "before the first epoch"
        raise Stopped(getattr(e, "signum", signal.SIGINT), note) from None

    if twin is not None and twin.epoch_diffs:
        print(f"check-torch: largest differences over the run: loss {max(d[1] for d in twin.epoch_diffs):.3e}, "
              f"parameters {max(d[2] for d in twin.epoch_diffs):.3e}")
    try:
        written = _make_plots(out, list(result.history), model, X_test, y_test, "Fashion-MNIST: " + _describe(s))
    except OSError as e:
        raise RunFailed(f"cannot write the plots into {out}: {e.strerror or e}{_kept(ckpt_path)}") from e
    final = result.final
    if final is not None:
        print(f"final: train loss {_loss_text(final.train_loss)}, train acc {final.train_acc:.4f}, "
              f"test acc {final.test_acc:.4f}")
    names = [METRICS, CONFIG, CHECKPOINT] + [os.path.basename(p) for p in written]
    print(f"wrote {', '.join(names)} to {out}")
    return EXIT_OK


def _kept(ckpt_path):
    """'; <path> keeps epoch N' when a loadable checkpoint is there, else ''."""
    from ..checkpoint import load_checkpoint
    from ..errors import CheckpointError

    try:
        return f"; {ckpt_path} keeps epoch {load_checkpoint(ckpt_path).epoch}"
    except CheckpointError:
        return ""


def _interrupted(ckpt_path, out):
    from ..checkpoint import load_checkpoint
    from ..errors import CheckpointError

    try:
        epoch = load_checkpoint(ckpt_path).epoch
    except CheckpointError:
        return "no checkpoint was written"
    return (f"{ckpt_path} holds epoch {epoch}, the last completed one; "
            f"continue with: npnet train --out {shlex.quote(out)} --resume")
