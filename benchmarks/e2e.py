"""End-to-end benchmarks: one training epoch on Fashion-MNIST, npnet against torch.

The torch side is written the way a torch user writes it: the whole training set
as one float32 tensor, batches by slicing a random permutation, and
``optimizer.zero_grad(); loss.backward(); optimizer.step()``. The npnet side is
what ``npnet train`` runs: :func:`npnet.train.train_epoch` over a
:class:`npnet.data.DataLoader` that keeps the images as uint8.
"""
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

from npnet import data, nn, optim
from npnet import train as T

from .timing import interleaved

BATCH = 256


def _models(kind, rng):
    if kind == "softmax":
        model = T.build_model("softmax", init="normal", rng=rng)
        tmodel = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
        lr = 0.1
    else:
        model = T.build_model("mlp", hidden=256, init="normal", rng=rng)
        tmodel = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
        lr = 0.5
    tmodel.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in model.params.items()})
    return model, tmodel, lr


def _torch_epoch(tmodel, topt, Xt, yt, generator):
    perm = torch.randperm(Xt.shape[0], generator=generator)
    total = 0.0
    for i in range(0, Xt.shape[0], BATCH):
        idx = perm[i:i + BATCH]
        loss = torch.nn.functional.cross_entropy(tmodel(Xt[idx]), yt[idx])
        topt.zero_grad()
        loss.backward()
        topt.step()
        total += loss.item() * len(idx)
    return total / Xt.shape[0]


def _check_lockstep(kind, X, y, steps=10):
    """Same initial weights, same batches: npnet and torch must stay together."""
    rng = np.random.default_rng(0)
    model, tmodel, lr = _models(kind, rng)
    opt, topt = optim.SGD(model.params, lr=lr), torch.optim.SGD(tmodel.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    loader = data.DataLoader(X, y, BATCH, shuffle=True, rng=rng)
    for step, (xb, yb) in enumerate(loader):
        if step == steps:
            break
        out, backward = model.forward(xb)
        loss, loss_backward = loss_fn.forward(out, yb)
        _, grads = backward(loss_backward(), need_dx=False)
        opt.step(grads)
        tloss = torch.nn.functional.cross_entropy(tmodel(torch.from_numpy(xb)), torch.from_numpy(yb))
        topt.zero_grad()
        tloss.backward()
        topt.step()
        if abs(float(loss) - tloss.item()) > 1e-4 * max(1.0, abs(tloss.item())):
            raise AssertionError(f"{kind}: loss differs at step {step}: npnet {float(loss)}, torch {tloss.item()}")
    for k, v in tmodel.state_dict().items():
        err = float(np.abs(model.params[k] - v.numpy()).max())
        if err > 1e-4:
            raise AssertionError(f"{kind}: parameter {k} differs by {err:.2e} after {steps} lockstep steps")


def gemm_epoch_seconds(n, hidden, repeats):
    """The time an MLP epoch's matrix products alone take, at the epoch's shapes.

    Per batch: X W1^T and H W2^T forward; dZ2^T H, dZ2 W2 and dZ1^T X backward
    (the first layer needs no input gradient).
    """
    rng = np.random.default_rng(0)
    f32 = np.float32
    W1, W2 = rng.standard_normal((hidden, 784), dtype=f32), rng.standard_normal((10, hidden), dtype=f32)
    sizes = [min(BATCH, n - i) for i in range(0, n, BATCH)]
    arrays = {}
    for b in set(sizes):
        arrays[b] = (rng.standard_normal((b, 784), dtype=f32), rng.standard_normal((b, hidden), dtype=f32),
                     rng.standard_normal((b, 10), dtype=f32), rng.standard_normal((b, hidden), dtype=f32))

    def epoch():
        for b in sizes:
            X, H, dZ2, dZ1 = arrays[b]
            X @ W1.T
            H @ W2.T
            dZ2.T @ H
            dZ2 @ W2
            dZ1.T @ X

    medians, _ = interleaved({"gemm": epoch}, repeats=repeats, target_seconds=0.0)
    return medians["gemm"]


def peak_rss_mb(args):
    """Peak resident memory of ``npnet train`` with ``args``, run in a subprocess."""
    with tempfile.TemporaryDirectory() as out:
        # VmHWM, not getrusage's ru_maxrss: on Linux ru_maxrss survives exec, so a child
        # forked from this (large) process would report the parent's size.
        code = ("import sys\nfrom npnet import cli\ncode = cli.main(sys.argv[1:])\n"
                "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
                "print('MAXRSS', hwm.split()[1])\nsys.exit(code)")
        proc = subprocess.run([sys.executable, "-c", code, "train", "--out", out, *args],
                              capture_output=True, text=True, env={**os.environ, "MPLBACKEND": "Agg"})
        if proc.returncode != 0:
            raise RuntimeError(f"npnet train failed: {proc.stderr[-2000:]}")
        kb = int(proc.stdout.rsplit("MAXRSS", 1)[1].split()[0])
        return kb / 1024


def second_load_seconds():
    """Wall time of ``load_fashion_mnist()`` in a fresh process, after a first load filled the cache."""
    code = ("import time\nfrom npnet.data import load_fashion_mnist\nload_fashion_mnist()\n")
    subprocess.run([sys.executable, "-c", code], check=True)
    timed = ("import time\nfrom npnet.data import load_fashion_mnist\nt = time.perf_counter()\n"
             "load_fashion_mnist()\nprint(time.perf_counter() - t)")
    times = []
    for _ in range(5):
        out = subprocess.run([sys.executable, "-c", timed], check=True, capture_output=True, text=True).stdout
        times.append(float(out.strip().splitlines()[-1]))
    return float(np.median(times))


def run(quick=False, repeats=7):
    X_train, y_train, _, _ = data.load_fashion_mnist()
    if quick:
        X_train, y_train = X_train[:2048], y_train[:2048]
    results = []
    Xt = torch.from_numpy(X_train).float().div_(255).unsqueeze(1)
    yt = torch.from_numpy(y_train)
    epoch_times = {}
    for kind, label in (("softmax", "softmax regression epoch"), ("mlp", "MLP epoch")):
        _check_lockstep(kind, X_train, y_train)
        rng = np.random.default_rng(1)
        model, tmodel, lr = _models(kind, rng)
        opt, topt = optim.SGD(model.params, lr=lr), torch.optim.SGD(tmodel.parameters(), lr=lr)
        loader = data.DataLoader(X_train, y_train, BATCH, shuffle=True, rng=rng)
        loss_fn = nn.CrossEntropyLoss()
        gen = torch.Generator().manual_seed(1)
        medians, _ = interleaved({
            "npnet": lambda: T.train_epoch(model, loss_fn, opt, loader),
            "torch": lambda: _torch_epoch(tmodel, topt, Xt, yt, gen),
        }, repeats=repeats, target_seconds=0.0)
        epoch_times[kind] = medians["npnet"]
        results.append({"group": "train", "name": label, "shape": f"{len(X_train)} images, batch {BATCH}",
                        "npnet_s": medians["npnet"], "torch_s": medians["torch"],
                        "ratio": medians["npnet"] / medians["torch"], "agree": True})
    gemm = gemm_epoch_seconds(len(X_train), 256, repeats)
    results.append({"group": "train", "name": "MLP epoch: matrix products alone (GEMM-bound limit)",
                    "value": gemm, "unit": "s", "target": None})
    results.append({"group": "train", "name": "MLP epoch: share of time in matrix products",
                    "value": gemm / epoch_times["mlp"], "unit": "", "target": 0.75, "higher_is_better": True})
    start = time.perf_counter()
    data.load_fashion_mnist()
    results.append({"group": "data", "name": "load_fashion_mnist, in process, warm", "value": time.perf_counter() - start,
                    "unit": "s", "target": None})
    results.append({"group": "data", "name": "load_fashion_mnist, second time, fresh process",
                    "value": second_load_seconds(), "unit": "s", "target": 0.3})
    rss_args = ["--epochs", "1"] if quick else []
    results.append({"group": "memory", "name": f"peak RSS of npnet train {' '.join(rss_args) or '(default run)'}",
                    "value": peak_rss_mb(rss_args), "unit": "MB", "target": 200})
    return results
