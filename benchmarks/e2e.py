"""End-to-end benchmarks: one training epoch on Fashion-MNIST, npnet against torch.

The torch side is written the way a torch user writes it: the whole training set
as one float32 tensor, batches by slicing a random permutation, and
``optimizer.zero_grad(); loss.backward(); optimizer.step()``. The npnet side is
what ``npnet train`` runs: :func:`npnet.train.train_epoch` over a
:class:`npnet.data.DataLoader` that keeps the images as uint8.

The course's two linear models (softmax regression, the MLP) get the most rows:
the README's worked-example loop, a fused NumPy loop written without npnet, the
plain kernels. The convolutional models (LeNet, the cnn) get npnet's epoch, the
plain kernels' epoch and their floor (:func:`conv_floor_epoch`), each beside the
torch twin's epoch on the same number of batches.
"""
import copy
import os
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from npnet import data, models, nn, optim
from npnet import train as T

from .timing import interleaved

BATCH = 256
# the convolutional models: their row's label and the SGD learning rate their epochs run with
# (LeNet's is the course's; an epoch's time does not depend on it)
CONV_MODELS = {"lenet": ("LeNet epoch", 0.9), "cnn": ("cnn epoch", 0.1)}
CONV_QUICK_IMAGES = 512
# The LeNet and cnn epochs are timed on the first 12,800 training images (50 batches), three
# times each: an epoch's cost is the same per batch, and the plain-kernel epochs of all 60,000
# images would keep make bench busy for most of an hour. The rows say how many images.
CONV_FULL_IMAGES, CONV_REPEATS = 12800, 3


def _conv_model(kind, rng, dtype=np.float32):
    """LeNet or the cnn, as ``npnet train --model KIND`` builds it."""
    return models.build_model(kind, rng=rng, dtype=dtype)


def _npnet_model(kind, rng, dtype=np.float32):
    """The course's model of ``kind`` ("softmax", "mlp", "lenet" or "cnn") and its learning rate."""
    if kind in CONV_MODELS:
        return _conv_model(kind, rng, dtype), CONV_MODELS[kind][1]
    if kind == "softmax":
        return models.build_model("softmax", init="normal", rng=rng), 0.1
    return models.build_model("mlp", hidden=256, init="normal", rng=rng), 0.5


def _models(kind, rng, dtype=np.float32):
    model, lr = _npnet_model(kind, rng, dtype)
    if kind in CONV_MODELS:
        import reference     # its torch twin (train mode, same weights and buffers)
        return model, reference.twin(model).train(), lr
    if kind == "softmax":
        tmodel = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    else:
        tmodel = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    tmodel.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in model.params.items()})
    return model, tmodel, lr


def one_blas_thread(fn):
    """``fn`` run with NumPy's BLAS on one thread (threadpoolctl), npnet's own threads unchanged.

    OpenBLAS's threads keep spinning for a while after each product; on a 2-core machine
    they then hold the core that npnet's kernel threads (``npnet.set_num_threads``) need
    for the elementwise work between the products. These rows show what an epoch takes
    when BLAS stays on the calling thread: still two cores, npnet's threads on both."""
    def run():
        with threadpool_limits(limits=1, user_api="blas"):
            return fn()
    return run


def worked_example_epoch(model, loss_fn, opt, loader, *, need_dx=False):
    """One epoch written as the README's worked example, one step per batch of ``loader``.

    With ``need_dx=False``, as the example says: the data needs no gradient (torch
    skips it too, since the images do not require grad), so the first layer's
    dX = dY W is never computed. ``need_dx=True`` times the same loop without the
    flag, to show what it costs.
    """
    for x, y in loader:
        logits, backward = model.forward(x)
        loss, loss_backward = loss_fn.forward(logits, y)
        dlogits = loss_backward()
        dx, grads = backward(dlogits, need_dx=need_dx)
        opt.step(grads)


class PlainKernelsEpoch:
    """A callable running one npnet epoch in a child process started with
    ``NPNET_KERNELS=plain`` (the switch is read at import), built as this process
    builds its own; each call asks for one epoch and waits for it, so the child's
    epochs interleave with the parent's timings."""

    def __init__(self, kind, images, threads):
        env = {**os.environ, "NPNET_KERNELS": "plain"}
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks._epoch_worker", kind, str(images), str(threads)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=root)
        first = self.proc.stdout.readline().split()
        if not first or first[0] != "ready":
            self.close()
            raise RuntimeError(f"the NPNET_KERNELS=plain epoch process did not start (exit status {self.proc.returncode})")
        self.kernels = first[1] if len(first) > 1 else "unknown"
        self.seconds = []

    def __call__(self):
        self.proc.stdin.write("epoch\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().split()
        if not answer or answer[0] != "done":
            raise RuntimeError("the NPNET_KERNELS=plain epoch process stopped")
        self.seconds.append(float(answer[1]))

    def close(self):
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


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
    """Same initial weights, same batches: npnet and torch must stay together. The
    convolutional models step in float64: in float32 batch norm lets the two sides'
    rounding grow past the tolerance within a few steps."""
    rng = np.random.default_rng(0)
    dtype = np.float64 if kind in CONV_MODELS else np.float32
    model, tmodel, lr = _models(kind, rng, dtype)
    opt, topt = optim.SGD(model.params, lr=lr), torch.optim.SGD(tmodel.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    loader = data.DataLoader(X, y, BATCH, shuffle=True, rng=rng)
    for step, (xb, yb) in enumerate(loader):
        if step == steps:
            break
        xb = xb.astype(dtype, copy=False)
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
    state = model.state_dict()      # parameters and buffers (BatchNorm's running statistics)
    for k, v in tmodel.state_dict().items():
        err = float(np.abs(state[k] - v.numpy()).max())
        if err > 1e-4 * max(1.0, float(np.abs(v.numpy()).max())):
            raise AssertionError(f"{kind}: {k} differs by {err:.2e} after {steps} lockstep steps")


def fused_numpy_epoch(kind, params, X, y, order, lr):
    """One epoch written straight in NumPy, no library: the same model, data and
    SGD update as npnet's epoch, with every step fused and in place by hand.

    What NumPy itself allows on this machine, so the report can tell npnet's own
    cost apart from NumPy's. ``params`` (torch's keys) are updated in place;
    returns the mean loss.
    """
    f32 = np.float32
    Xf = X.reshape(X.shape[0], -1)
    staging = np.empty((BATCH, Xf.shape[1]), np.uint8)
    xb = np.empty((BATCH, Xf.shape[1]), f32)
    mlp = kind == "mlp"
    if mlp:
        W1, b1, W2, b2 = params["1.weight"], params["1.bias"], params["3.weight"], params["3.bias"]
    else:
        W2, b2 = params["1.weight"], params["1.bias"]
    step = f32(lr)
    total = 0.0
    for start in range(0, len(order), BATCH):
        idx = order[start:start + BATCH]
        m = len(idx)
        x = xb[:m]
        np.divide(np.take(Xf, idx, axis=0, out=staging[:m]), f32(255), out=x, dtype=f32)
        t = y[idx]
        if mlp:
            H = x @ W1.T
            H += b1
            np.maximum(H, 0, out=H)
        else:
            H = x
        Z = H @ W2.T
        Z += b2
        Z -= Z.max(axis=1, keepdims=True)
        rows = np.arange(m)
        z_t = Z[rows, t]
        np.exp(Z, out=Z)
        s = Z.sum(axis=1)
        total += float((np.log(s) - z_t).sum())
        Z *= (f32(1) / (s * f32(m)))[:, None]     # softmax / m
        Z[rows, t] -= f32(1) / f32(m)             # (softmax - onehot) / m
        dW2, db2 = Z.T @ H, Z.sum(axis=0)
        if mlp:
            dH = Z @ W2
            dH *= H > 0
            dW1, db1 = dH.T @ x, dH.sum(axis=0)
            W1 -= step * dW1
            b1 -= step * db1
        W2 -= step * dW2
        b2 -= step * db2
    return total / len(order)


def floor_epoch(kind, X, hidden=256, *, prepare=True):
    """A callable running only the unavoidable work of one epoch: the shuffled
    uint8 gather and float32 conversion of every batch, and the matrix products
    (forward and weight gradients, plus dH for the MLP) at the epoch's shapes.
    No implementation in NumPy can take less.

    With ``prepare=False``, the products alone on one fixed, warm batch: the
    GEMM-bound limit. Per MLP batch: X W1^T and H W2^T forward; dZ2^T H, dZ2 W2
    and dZ1^T X backward (the first layer needs no input gradient).
    """
    f32 = np.float32
    rng = np.random.default_rng(0)
    Xf = X.reshape(X.shape[0], -1)
    staging = np.empty((BATCH, Xf.shape[1]), np.uint8)
    xb = rng.standard_normal((BATCH, Xf.shape[1]), dtype=f32)
    out = 10
    W1 = rng.standard_normal((hidden, Xf.shape[1]), dtype=f32)
    W2 = rng.standard_normal((out, hidden if kind == "mlp" else Xf.shape[1]), dtype=f32)
    dZ = rng.standard_normal((BATCH, out), dtype=f32)
    dH = rng.standard_normal((BATCH, hidden), dtype=f32)

    def epoch():
        order = rng.permutation(Xf.shape[0]) if prepare else np.arange(Xf.shape[0])
        for start in range(0, len(order), BATCH):
            idx = order[start:start + BATCH]
            m = len(idx)
            x = xb[:m]
            if prepare:
                np.divide(np.take(Xf, idx, axis=0, out=staging[:m]), f32(255), out=x, dtype=f32)
            H = x @ W1.T if kind == "mlp" else x
            H @ W2.T
            dZ[:m].T @ H
            if kind == "mlp":
                dZ[:m] @ W2
                dH[:m].T @ x
    return epoch


def _product_shapes(model, m):
    """The matrix products of one training step of ``model`` on a batch of ``m`` images, as
    [(layer kind, a, b, c, first)]: a Conv2d's weight (a = O, b = C kH kW) times its patch
    matrix (c = m oH oW columns), a Linear's batch (a = m) times its weight (b = in, c = out);
    ``first`` for the first layer with weights, which needs no input gradient."""
    x = np.zeros((m, 1, 28, 28), np.float32)
    shapes = []
    for layer in model:
        if isinstance(layer, nn.Conv2d):
            y = layer(x)
            O = layer.out_channels
            shapes.append(("conv", O, layer.params["weight"][0].size, y.size // O, not shapes))
            x = y
            continue
        if isinstance(layer, nn.Linear):
            shapes.append(("linear", x.shape[0], layer.in_features, layer.out_features, not shapes))
        x = layer(x)
    return shapes


def _products(shapes, rng):
    """A callable computing the products of :func:`_product_shapes` on random operands made now:
    a Conv2d's forward Y^T = W2 P, dW^T = P dY and dP = W2^T dY^T (the patch matrix P made
    beforehand, in the layout of npnet's fast kernels and benchmarks.conv's floor); a Linear's
    forward X W^T, dW = dY^T X and dX = dY W; the first layer skips its input gradient."""
    f32 = np.float32
    calls = []
    for kind, a, b, c, first in shapes:
        if kind == "conv":
            W2, P, dYt = (rng.standard_normal(s, dtype=f32) for s in ((a, b), (b, c), (a, c)))
            calls.append(lambda W2=W2, P=P, dYt=dYt, first=first: (W2 @ P, P @ dYt.T, None if first else W2.T @ dYt))
        else:
            X, W, dY = (rng.standard_normal(s, dtype=f32) for s in ((a, b), (c, b), (a, c)))
            calls.append(lambda X=X, W=W, dY=dY, first=first: (X @ W.T, dY.T @ X, None if first else dY @ W))

    def products():
        for call in calls:
            call()
    return products


def conv_floor_epoch(model, X, *, prepare=True):
    """A callable running only the unavoidable work of one epoch of a convolutional model:
    the shuffled uint8 gather and float32 conversion of every batch, and the matrix products
    of its convolutions (as GEMMs on patch matrices unfolded beforehand: unfolding them is
    not counted) and of its Linears, forward and backward. The elementwise layers (sigmoid,
    ReLU, pooling, batch norm), the unfolding and col2im are left out: no NumPy
    implementation of the epoch can take less. With ``prepare=False``, the products alone.
    """
    f32 = np.float32
    rng = np.random.default_rng(0)
    Xf = X.reshape(X.shape[0], -1)
    staging = np.empty((BATCH, Xf.shape[1]), np.uint8)
    xb = np.empty((BATCH, Xf.shape[1]), f32)
    sizes = {min(BATCH, len(X)), len(X) % BATCH} - {0}
    steps = {m: _products(_product_shapes(model, m), rng) for m in sizes}

    def epoch():
        order = rng.permutation(Xf.shape[0])
        for start in range(0, len(order), BATCH):
            idx = order[start:start + BATCH]
            m = len(idx)
            if prepare:
                np.divide(np.take(Xf, idx, axis=0, out=staging[:m]), f32(255), out=xb[:m], dtype=f32)
            steps[m]()
    return epoch


def _check_fused(kind, model, X, y, lr, steps=5):
    """The fused loop must compute what npnet computes: same start, same batches."""
    order = np.random.default_rng(3).permutation(len(X))[:steps * BATCH]
    params = {k: v.copy() for k, v in model.params.items()}
    clone = copy.deepcopy(model)
    opt = optim.SGD(clone.params, lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    for start in range(0, len(order), BATCH):
        idx = order[start:start + BATCH]
        xb = data.to_float(X[idx])
        out, backward = clone.forward(xb)
        loss, loss_backward = loss_fn.forward(out, y[idx].astype(np.int64))
        _, grads = backward(loss_backward(), need_dx=False)
        opt.step(grads)
        losses.append(float(loss))
    fused = fused_numpy_epoch(kind, params, X, y, order, lr)
    if abs(fused - np.mean(losses)) > 1e-4 * max(1.0, abs(fused)):
        raise AssertionError(f"{kind}: fused loop's mean loss {fused} != npnet's {np.mean(losses)}")
    for k, v in clone.params.items():
        err = float(np.abs(params[k] - v).max())
        if err > 1e-4:
            raise AssertionError(f"{kind}: fused loop's {k} differs from npnet's by {err:.2e}")


def peak_rss_mb(args, counts=None):
    """Peak resident memory of ``npnet train`` with ``args``, run in a subprocess;
    ``counts`` ({"train": n, "test": m}): the sizes a quick run's small data set has."""
    with tempfile.TemporaryDirectory() as out:
        # VmHWM, not getrusage's ru_maxrss: on Linux ru_maxrss survives exec, so a child
        # forked from this (large) process would report the parent's size.
        small = ("" if counts is None else
                 f"from npnet.data import fashion_mnist\nfashion_mnist._COUNTS.update({counts!r})\n")
        code = (small + "import sys\nfrom npnet import cli\ncode = cli.main(sys.argv[1:])\n"
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


def _check_worked_example(kind, X, y, steps=4):
    """The worked-example loop must compute exactly what train_epoch computes:
    same start, same batches, bit-identical parameters."""
    rng = np.random.default_rng(5)
    model, _ = _npnet_model(kind, rng)
    twin = copy.deepcopy(model)
    n = steps * BATCH
    lr = 0.1
    T.train_epoch(model, nn.CrossEntropyLoss(), optim.SGD(model.params, lr=lr),
                  data.DataLoader(X[:n], y[:n], BATCH, shuffle=True, rng=np.random.default_rng(6)))
    worked_example_epoch(twin, nn.CrossEntropyLoss(), optim.SGD(twin.params, lr=lr),
                         data.DataLoader(X[:n], y[:n], BATCH, shuffle=True, rng=np.random.default_rng(6)))
    for k, v in model.params.items():
        if not np.array_equal(v, twin.params[k]):
            raise AssertionError(f"{kind}: the worked-example loop's {k} differs from train_epoch's")


def run(quick=False, repeats=7, threads=None):
    X_train, y_train, _, _ = data.load_fashion_mnist()
    if quick:
        X_train, y_train = X_train[:2048], y_train[:2048]
    threads = threads or os.cpu_count()
    results = []
    Xt = torch.from_numpy(X_train).float().div_(255).unsqueeze(1)
    yt = torch.from_numpy(y_train)
    epoch_times = {}
    for kind, label in (("softmax", "softmax regression epoch"), ("mlp", "MLP epoch")):
        _check_lockstep(kind, X_train, y_train)
        _check_worked_example(kind, X_train, y_train)
        rng = np.random.default_rng(1)
        model, tmodel, lr = _models(kind, rng)
        opt, topt = optim.SGD(model.params, lr=lr), torch.optim.SGD(tmodel.parameters(), lr=lr)
        loader = data.DataLoader(X_train, y_train, BATCH, shuffle=True, rng=rng)
        loss_fn = nn.CrossEntropyLoss()
        gen = torch.Generator().manual_seed(1)
        _check_fused(kind, model, X_train, y_train, lr)
        fused_params = {k: v.copy() for k, v in model.params.items()}
        fused_rng = np.random.default_rng(2)
        # the worked-example loops train their own copies on their own loaders (same seed, same batches)
        worked = {flag: (copy.deepcopy(model), data.DataLoader(X_train, y_train, BATCH, shuffle=True,
                                                               rng=np.random.default_rng(1)))
                  for flag in (False, True)}
        worked_opts = {flag: optim.SGD(m.params, lr=lr) for flag, (m, _) in worked.items()}
        plain = PlainKernelsEpoch(kind, len(X_train), threads)
        try:
            medians, _ = interleaved({
                "npnet": lambda: T.train_epoch(model, loss_fn, opt, loader),
                "worked": lambda: worked_example_epoch(worked[False][0], loss_fn, worked_opts[False], worked[False][1]),
                "worked_dx": lambda: worked_example_epoch(worked[True][0], loss_fn, worked_opts[True], worked[True][1],
                                                          need_dx=True),
                "plain": plain,
                "torch": lambda: _torch_epoch(tmodel, topt, Xt, yt, gen),
                "fused": lambda: fused_numpy_epoch(kind, fused_params, X_train, y_train,
                                                   fused_rng.permutation(len(X_train)), lr),
                "floor": floor_epoch(kind, X_train),
                "npnet_blas1": one_blas_thread(lambda: T.train_epoch(model, loss_fn, opt, loader)),
                "floor_blas1": one_blas_thread(floor_epoch(kind, X_train)),
                **({"gemm": floor_epoch(kind, X_train, prepare=False)} if kind == "mlp" else {}),
            }, repeats=repeats, target_seconds=0.0, pause=0.1)
        finally:
            plain.close()
        epoch_times[kind] = medians
        shape = f"{len(X_train)} images, batch {BATCH}"
        plain_name = f"{label}, NPNET_KERNELS=plain" + ("" if plain.kernels == "plain" else
                                                         " (this npnet has no such switch yet: the same kernels)")
        for key, name in (("npnet", label),
                          ("worked", f"{label}: worked-example loop (README), need_dx=False"),
                          ("worked_dx", f"{label}: worked-example loop without need_dx=False"),
                          ("plain", plain_name),
                          ("fused", f"{label}: fused NumPy loop, no library"),
                          ("floor", f"{label}: batch preparation and matrix products alone"),
                          ("npnet_blas1", f"{label}, BLAS on one thread"),
                          ("floor_blas1", f"{label}: batch preparation and matrix products alone, BLAS on one thread")):
            results.append({"group": "train", "name": name, "shape": shape,
                            "npnet_s": medians[key], "torch_s": medians["torch"],
                            "ratio": medians[key] / medians["torch"], "agree": True,
                            "reference": key in ("fused", "floor", "floor_blas1")})
        for key, name, target in (("npnet", label, 1.25), ("worked", f"{label}: worked-example loop", None),
                                  ("plain", f"{label}, NPNET_KERNELS=plain", None),
                                  ("fused", f"{label}: fused NumPy loop", None)):
            results.append({"group": "train", "name": f"{name} / its floor (time ratio)",
                            "value": medians[key] / medians["floor"], "unit": "", "target": target})
        results.append({"group": "train", "name": f"{label}, BLAS on one thread / its floor on one thread (time ratio)",
                        "value": medians["npnet_blas1"] / medians["floor_blas1"], "unit": "", "target": None})
    n = CONV_QUICK_IMAGES if quick else min(len(X_train), CONV_FULL_IMAGES)     # a quick run: two batches
    for kind, (label, _) in CONV_MODELS.items():
        results += conv_epoch_rows(kind, label, X_train[:n], y_train[:n], Xt[:n], yt[:n],
                                   repeats=min(repeats, CONV_REPEATS), threads=threads)
    mlp = epoch_times["mlp"]
    results.append({"group": "train", "name": "MLP epoch: matrix products alone (GEMM-bound limit)",
                    "value": mlp["gemm"], "unit": "s", "target": None})
    results.append({"group": "train", "name": "MLP epoch: share of time in matrix products",
                    "value": mlp["gemm"] / mlp["npnet"], "unit": "", "target": 0.75, "higher_is_better": True})
    start = time.perf_counter()
    data.load_fashion_mnist()
    results.append({"group": "data", "name": "load_fashion_mnist, in process, warm", "value": time.perf_counter() - start,
                    "unit": "s", "target": None})
    results.append({"group": "data", "name": "load_fashion_mnist, second time, fresh process",
                    "value": second_load_seconds(), "unit": "s", "target": 0.3})
    rss_args = ["--epochs", "1"] if quick else []
    results.append({"group": "memory", "name": f"peak RSS of npnet train {' '.join(rss_args) or '(default run)'}",
                    "value": peak_rss_mb(rss_args), "unit": "MB", "target": 200})
    results += cnn_rss_rows(X_train, y_train, quick=quick)
    return results


def conv_epoch_rows(kind, label, X, y, Xt, yt, *, repeats=7, threads=None):
    """The rows of one convolutional model: npnet's ``train_epoch``, the same with
    ``NPNET_KERNELS=plain`` and the epoch's floor, each against the torch twin's epoch,
    all interleaved; then each epoch's ratio to the floor."""
    _check_lockstep(kind, X, y)
    rng = np.random.default_rng(1)
    model, tmodel, lr = _models(kind, rng)
    opt, topt = optim.SGD(model.params, lr=lr), torch.optim.SGD(tmodel.parameters(), lr=lr)
    loader = data.DataLoader(X, y, BATCH, shuffle=True, rng=rng)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(1)
    plain = PlainKernelsEpoch(kind, len(X), threads or os.cpu_count())
    try:
        medians, _ = interleaved({
            "npnet": lambda: T.train_epoch(model, loss_fn, opt, loader),
            "plain": plain,
            "torch": lambda: _torch_epoch(tmodel, topt, Xt, yt, gen),
            "floor": conv_floor_epoch(model, X),
            "gemm": conv_floor_epoch(model, X, prepare=False),
            "npnet_blas1": one_blas_thread(lambda: T.train_epoch(model, loss_fn, opt, loader)),
            "floor_blas1": one_blas_thread(conv_floor_epoch(model, X)),
        }, repeats=repeats, target_seconds=0.0, pause=0.1)
    finally:
        plain.close()
    shape = f"{len(X)} images, batch {BATCH}"
    plain_name = f"{label}, NPNET_KERNELS=plain" + ("" if plain.kernels == "plain" else " (no such switch: the same kernels)")
    rows = []
    for key, name in (("npnet", label), ("plain", plain_name),
                      ("floor", f"{label}: batch preparation and matrix products alone"),
                      ("gemm", f"{label}: matrix products alone"),
                      ("npnet_blas1", f"{label}, BLAS on one thread"),
                      ("floor_blas1", f"{label}: batch preparation and matrix products alone, BLAS on one thread")):
        rows.append({"group": "train", "name": name, "shape": shape, "npnet_s": medians[key],
                     "torch_s": medians["torch"], "ratio": medians[key] / medians["torch"], "agree": True,
                     "reference": key in ("floor", "gemm", "floor_blas1")})
    for key, name, target in (("npnet", label, 1.3), ("plain", f"{label}, NPNET_KERNELS=plain", None)):
        rows.append({"group": "train", "name": f"{name} / its floor (time ratio)",
                     "value": medians[key] / medians["floor"], "unit": "", "target": target})
    rows.append({"group": "train", "name": f"{label}, BLAS on one thread / its floor on one thread (time ratio)",
                 "value": medians["npnet_blas1"] / medians["floor_blas1"], "unit": "", "target": None})
    return rows


def _write_idx(path, array):
    array = np.ascontiguousarray(array, dtype=np.uint8)
    with open(path, "wb") as f:
        f.write(bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes())


def cnn_rss_rows(X, y, *, quick=False):
    """Peak RSS of ``npnet train --model cnn --epochs 1`` (the peak is reached in the first
    epoch: later epochs allocate the same arrays again). A quick run trains on a folder
    holding the first images of ``X`` and 512 test images. No row while ``npnet train``
    has no such model."""
    if "cnn" not in models.MODELS:
        print("peak RSS of npnet train --model cnn: skipped, npnet train has no --model cnn", file=sys.stderr)
        return []
    args = ["--model", "cnn", "--epochs", "1"]
    with tempfile.TemporaryDirectory() as folder:
        if quick:
            _, _, X_test, y_test = data.load_fashion_mnist()
            for prefix, images, labels in (("train", X, y), ("t10k", X_test[:512], y_test[:512])):
                _write_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte"), images)
                _write_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte"), labels)
            args += ["--data-dir", folder]
        # a quick run's folder is not the real data set: the child accepts its sizes
        mb = peak_rss_mb(args, counts={"train": len(X), "test": 512} if quick else None)
    name = "peak RSS of npnet train --model cnn --epochs 1" + (f" ({len(X)} training images)" if quick else "")
    return [{"group": "memory", "name": name, "value": mb, "unit": "MB", "target": 300}]
