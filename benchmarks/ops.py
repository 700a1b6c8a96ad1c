"""Per-kernel benchmarks: forward plus backward, npnet against torch eager autograd.

Every case builds identical float32 inputs for both sides, checks that they
agree (outputs and every gradient), then times them interleaved.
"""
from dataclasses import dataclass

import numpy as np
import torch

from npnet import nn, optim

from . import conv
from .timing import interleaved


@dataclass
class Case:
    name: str
    shape: str
    npnet: object      # callable: one forward + backward (+ step)
    torch: object
    check: object      # callable raising AssertionError when the two sides disagree
    floor: object = None   # optional callable: the case's matrix products alone, timed beside it


def _close(a, b, what, *, rtol=2e-4, atol=2e-5):
    b = b.detach().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    a = np.asarray(a)
    if a.shape != b.shape:
        raise AssertionError(f"{what}: npnet shape {a.shape} != torch shape {b.shape}")
    scale = max(1.0, float(np.abs(b).max(initial=0.0)))
    err = float(np.abs(a - b).max(initial=0.0))
    if not err <= atol * scale + rtol * scale:
        raise AssertionError(f"{what}: npnet and torch differ by {err:.3e} (scale {scale:.3e})")


def _module_case(name, shape, module, tmodule, x, dy, *, grads_of_input=True):
    """A module against its torch twin: forward, then backward with the same dy.
    ``grads_of_input=False``: neither side computes the input's gradient (npnet's
    ``need_dx=False``; torch's input does not require grad), as for a network's first layer."""
    xt = torch.from_numpy(x).requires_grad_(grads_of_input)
    dyt = torch.from_numpy(dy)
    tparams = list(tmodule.parameters())
    wrt = ([xt] if grads_of_input else []) + tparams

    def run_np():
        y, backward = module.forward(x)
        return y, backward(dy, need_dx=grads_of_input)

    def run_torch():
        y = tmodule(xt)
        return y, torch.autograd.grad(y, wrt, dyt)

    def check():
        (y, (dx, grads)), (yt, gt) = run_np(), run_torch()
        _close(y, yt, f"{name} output")
        if grads_of_input:
            _close(dx, gt[0], f"{name} input gradient")
        for (k, _), g in zip(tmodule.named_parameters(), gt[1 if grads_of_input else 0:]):
            _close(grads[k], g, f"{name} {k} gradient")

    return Case(name, shape, run_np, run_torch, check)


def _twin_linear(layer):
    t = torch.nn.Linear(layer.in_features, layer.out_features)
    t.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in layer.params.items()})
    return t


def cases(quick=False):
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    small = [(256, 10)]
    big = [(256, 10), (4096, 1000)] if not quick else [(64, 100)]
    out = []

    def randn(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    for N, C in (small + big[1:]):
        shape = f"({N}, {C})"
        X, dY = randn(N, C, scale=3), randn(N, C)
        out.append(_module_case("softmax", shape, nn.Softmax(-1), torch.nn.Softmax(-1), X, dY))
        out.append(_module_case("log_softmax", shape, nn.LogSoftmax(-1), torch.nn.LogSoftmax(-1), X, dY))
        t = rng.integers(0, C, N)
        out.append(_ce_case(shape, X, t))

    linear_shapes = [(256, 784, 256), (256, 784, 10)] if not quick else [(32, 78, 16)]
    if not quick:
        linear_shapes.append((4096, 1000, 1000))
    for N, I, O in linear_shapes:
        layer = nn.Linear(I, O, rng=rng)
        out.append(_module_case("Linear", f"({N}, {I})->{O}", layer, _twin_linear(layer), randn(N, I), randn(N, O)))

    ew_shape = (256, 784) if not quick else (32, 78)
    for name, m, tm in [("ReLU", nn.ReLU(), torch.nn.ReLU()), ("Sigmoid", nn.Sigmoid(), torch.nn.Sigmoid())]:
        out.append(_module_case(name, str(ew_shape), m, tm, randn(*ew_shape, scale=2), randn(*ew_shape)))
    out.append(_dropout_case(ew_shape, randn(*ew_shape), randn(*ew_shape)))
    out.append(_mlp_step_case(quick))
    from . import normalization   # here: normalization imports _module_case from this module
    out += normalization.cases(quick)
    from . import pooling
    out += pooling.cases(quick)
    out += conv.cases(quick)
    return out


def _ce_case(shape, X, t):
    loss_fn = nn.CrossEntropyLoss()
    xt = torch.from_numpy(X).requires_grad_(True)
    tt = torch.from_numpy(t)

    def run_np():
        loss, backward = loss_fn.forward(X, t)
        return loss, backward()

    def run_torch():
        loss = torch.nn.functional.cross_entropy(xt, tt)
        return loss, torch.autograd.grad(loss, [xt])[0]

    def check():
        (l, d), (lt, dt) = run_np(), run_torch()
        _close(l, lt, "cross_entropy loss")
        _close(d, dt, "cross_entropy gradient")

    return Case("cross_entropy", shape, run_np, run_torch, check)


def _dropout_case(shape, X, dY, p=0.5):
    layer = nn.Dropout(p, rng=np.random.default_rng(1))
    tlayer = torch.nn.Dropout(p)
    xt = torch.from_numpy(X).requires_grad_(True)
    dyt = torch.from_numpy(dY)

    def run_np():
        y, backward = layer.forward(X)
        return y, backward(dY), backward.mask

    def run_torch():
        y = tlayer(xt)
        return y, torch.autograd.grad(y, [xt], dyt)[0]

    def check():
        # The two sides draw different masks; each must be an exact inverted dropout.
        y, (dx, _), mask = run_np()
        kept = mask != 0
        _close(y, torch.from_numpy(X * kept / (1 - p)), "Dropout output")
        _close(dx, torch.from_numpy(dY * kept / (1 - p)), "Dropout input gradient")
        yt, dxt = run_torch()
        keptt = yt.detach().numpy() != 0
        _close(X * keptt / (1 - p), yt, "torch Dropout output")
        for frac in (kept.mean(), keptt.mean()):
            if abs(frac - (1 - p)) > 0.05:
                raise AssertionError(f"Dropout kept {frac:.3f} of the units, expected {1 - p}")

    return Case("Dropout", str(shape), run_np, run_torch, check)


def mlp_pair(hidden=256, rng=None, lr=0.1):
    """The course's MLP in npnet and in torch, with identical initial weights."""
    rng = rng or np.random.default_rng(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, hidden, rng=rng), nn.ReLU(), nn.Linear(hidden, 10, rng=rng))
    tmodel = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10))
    tmodel.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in model.params.items()})
    return model, tmodel


def _mlp_step_case(quick):
    rng = np.random.default_rng(2)
    N = 256 if not quick else 32
    X = rng.random((N, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, N)
    model, tmodel = mlp_pair(rng=rng)
    loss_fn = nn.CrossEntropyLoss()
    opt = optim.SGD(model.params, lr=0.1)
    topt = torch.optim.SGD(tmodel.parameters(), lr=0.1)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

    def run_np():
        out, backward = model.forward(X)
        loss, loss_backward = loss_fn.forward(out, y)
        _, grads = backward(loss_backward(), need_dx=False)
        opt.step(grads)
        return loss

    def run_torch():
        loss = torch.nn.functional.cross_entropy(tmodel(Xt), yt)
        topt.zero_grad()
        loss.backward()
        topt.step()
        return loss

    def check():
        before = {k: v.copy() for k, v in model.params.items()}
        _close(run_np(), run_torch(), "MLP step loss")
        for k, v in tmodel.state_dict().items():
            _close(model.params[k], v, f"MLP step {k} after one SGD step")
        model.load_state_dict(before)
        tmodel.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in before.items()})

    return Case("MLP train step", f"({N}, 784)-256-10", run_np, run_torch, check)


def run(quick=False, repeats=7):
    """Check and time every case; returns a list of result dicts."""
    results = []
    for case in cases(quick):
        case.check()
        fns = {"npnet": case.npnet, "torch": case.torch, **({"floor": case.floor} if case.floor else {})}
        medians, _ = interleaved(fns, repeats=repeats, target_seconds=0.01 if quick else 0.1)
        results.append({
            "group": "ops", "name": case.name, "shape": case.shape, "agree": True,
            "npnet_s": medians["npnet"], "torch_s": medians["torch"],
            "ratio": medians["npnet"] / medians["torch"],
        })
        if case.floor:
            results.append({"group": "ops", "name": f"{case.name}: matrix products alone", "shape": case.shape,
                            "agree": True, "npnet_s": medians["floor"], "torch_s": medians["torch"],
                            "ratio": medians["floor"] / medians["torch"], "reference": True})
            results.append({"group": "ops", "name": f"{case.name} / its floor (time ratio)", "shape": case.shape,
                            "value": medians["npnet"] / medians["floor"], "unit": ""})
    return results
