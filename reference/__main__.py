"""``python -m reference``: every npnet module and kernel against torch autograd, in float64 and float32.

Prints one row per case and dtype (the worst error relative to the quantity's
scale, and the tolerance ``4 * eps * sqrt(K)``; see ``reference.compare``), then
the rows of ``reference.checks_init_optim`` when that module exists, and exits
with status 1 if any row is out of tolerance. Seeds are fixed and torch runs
on one thread, so two runs print the same table.

Needs PyTorch: without it, one line names the install command and the exit
status is 2.
"""
import argparse
import sys

import numpy as np

from npnet import nn

from . import torch_available, torch_missing_message
from .report import Row, format_table

DTYPES = (np.float64, np.float32)


def _rng(seed):
    return np.random.default_rng(seed)


def _with_specials(x, seed, big=1e4):
    """Some exact zeros and some large magnitudes in a normal sample."""
    r = _rng(seed)
    x = x.copy()
    x[r.random(x.shape) < 0.15] = 0.0
    big_at = r.random(x.shape) < 0.1
    x[big_at] = r.choice([-big, big], size=int(big_at.sum())) * r.uniform(0.1, 1.0, int(big_at.sum()))
    return x


def _normal(shape, seed, scale=1.0):
    return _rng(seed).standard_normal(shape) * scale


def _probs(shape, seed, axis=1):
    z = np.exp(_normal(shape, seed))
    return z / z.sum(axis=axis, keepdims=True)


def module_cases():
    """(group, name, module, x, compare keyword arguments) for every module and kernel."""
    r = _rng(0)
    x = _normal((8, 12), 1)
    x3 = _normal((4, 3, 5), 2)
    t8 = _rng(3).integers(0, 12, 8)
    t_ign = t8.copy()
    t_ign[[1, 4]] = -1
    t3 = _rng(4).integers(0, 3, (4, 5))
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(15, 16, rng=r), nn.ReLU(), nn.Dropout(0.25, rng=r),
                        nn.Linear(16, 8, rng=r), nn.Tanh(), nn.Linear(8, 3, rng=r))
    w12 = _rng(5).uniform(0.2, 2.0, 12)
    big = _rng(6).uniform(-1e4, 1e4, (8, 12))
    cases = [
        ("layer", "Linear(12, 6)", nn.Linear(12, 6, rng=r, dtype=np.float64), x, {}),
        ("layer", "Linear(12, 6, bias=False)", nn.Linear(12, 6, bias=False, rng=r), x, {}),
        ("layer", "Linear(5, 4) on (4, 3, 5)", nn.Linear(5, 4, rng=r), x3, {}),
        ("layer", "Linear(12, 6), zeros and 1e4 inputs", nn.Linear(12, 6, rng=r), _with_specials(x, 7), {}),
        ("layer", "Flatten()", nn.Flatten(), x3, {}),
        ("layer", "Flatten(0, 1)", nn.Flatten(0, 1), x3, {}),
        ("layer", "Dropout(0.3), train", nn.Dropout(0.3, rng=_rng(8)), x, {}),
        ("layer", "Dropout(0.3), eval", nn.Dropout(0.3, rng=_rng(8)), x, {"train": False}),
        ("layer", "Sequential MLP (Flatten..Dropout..Tanh)", mlp, x3, {}),
        ("activation", "ReLU, zeros and 1e4 inputs", nn.ReLU(), _with_specials(x, 9), {}),
        ("activation", "LeakyReLU(0.1), zeros and 1e4", nn.LeakyReLU(0.1), _with_specials(x, 10), {}),
        ("activation", "Sigmoid, inputs to +-1e4", nn.Sigmoid(), _with_specials(x * 5, 11), {}),
        ("activation", "Tanh, inputs to +-1e4", nn.Tanh(), _with_specials(x * 2, 12), {}),
        ("kernel", "softmax(axis=-1)", nn.Softmax(), x, {}),
        ("kernel", "softmax(axis=1) on (4, 3, 5)", nn.Softmax(axis=1), x3, {}),
        ("kernel", "softmax, logits to +-1e4", nn.Softmax(), big, {}),
        ("kernel", "log_softmax(axis=-1)", nn.LogSoftmax(), x, {}),
        ("kernel", "log_softmax(axis=0)", nn.LogSoftmax(axis=0), x, {}),
        ("kernel", "log_softmax, logits to +-1e4", nn.LogSoftmax(), big, {}),
    ]
    ce = nn.CrossEntropyLoss
    losses = [
        ("cross_entropy, indices, mean", ce(), x, t8),
        ("cross_entropy, indices, sum", ce(reduction="sum"), x, t8),
        ("cross_entropy, indices, none", ce(reduction="none"), x, t8),
        ("cross_entropy, probs, mean", ce(), x, _probs(x.shape, 13)),
        ("cross_entropy, probs, none, smoothing 0.2", ce(reduction="none", label_smoothing=0.2), x, _probs(x.shape, 14)),
        ("cross_entropy, probs, weight, sum", ce(weight=w12, reduction="sum"), x, _probs(x.shape, 15)),
        ("cross_entropy, weight", ce(weight=w12), x, t8),
        ("cross_entropy, ignore_index=-1", ce(ignore_index=-1), x, t_ign),
        ("cross_entropy, label_smoothing=0.1", ce(label_smoothing=0.1), x, t8),
        ("cross_entropy, weight+ignore+smoothing", ce(weight=w12, ignore_index=-1, label_smoothing=0.3), x, t_ign),
        ("cross_entropy, all ignored (nan, as torch)", ce(ignore_index=-1), x, np.full(8, -1)),
        ("cross_entropy, (N, C, d1), mean", ce(), x3, t3),
        ("cross_entropy, (N, C, d1), weight, none", ce(weight=w12[:3], reduction="none"), x3, t3),
        ("cross_entropy, (N, C, d1), probs", ce(label_smoothing=0.1), x3, _probs(x3.shape, 16)),
        ("cross_entropy, unbatched (C,), target ()", ce(), x[0], np.array(5)),
        ("cross_entropy, logits to +-1e4", ce(label_smoothing=0.1), big, t8),
        ("nll_loss, mean", nn.NLLLoss(), x, t8),
        ("nll_loss, weight+ignore, sum", nn.NLLLoss(weight=w12, ignore_index=-1, reduction="sum"), x, t_ign),
        ("nll_loss, (N, C, d1), none", nn.NLLLoss(reduction="none"), x3, t3),
        ("mse_loss, mean", nn.MSELoss(), x, _normal(x.shape, 17)),
        ("mse_loss, sum", nn.MSELoss(reduction="sum"), x3, _normal(x3.shape, 18)),
        ("mse_loss, none", nn.MSELoss(reduction="none"), x, _normal(x.shape, 19)),
    ]
    cases += [("loss", name, loss, inp, {"target": tgt}) for name, loss, inp, tgt in losses]
    return cases


def module_rows():
    """One report row per module case and dtype."""
    from .compare import compare
    rows = []
    for group, name, module, x, kw in module_cases():
        for dtype in DTYPES:
            rows.append(compare(module, x, dtype=dtype, **kw).row(group, name))
    return rows


def init_optim_rows():
    """Rows of ``reference.checks_init_optim`` (initializers and optimizers), or a note
    row when that module is not there yet."""
    try:
        from . import checks_init_optim
    except ModuleNotFoundError as e:
        if e.name != f"{__package__}.checks_init_optim":
            raise
        return [Row("init/optim", "skipped: reference/checks_init_optim.py not found", "-", ok=True)]
    return list(checks_init_optim.init_rows()) + list(checks_init_optim.optim_rows())


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m reference", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)
    if not torch_available():
        print(torch_missing_message("python -m reference"), file=sys.stderr)
        return 2
    import torch
    # One thread: these tensors are tiny, and waking a thread pool costs far more than the
    # arithmetic (about 10 ms against 4 us per op on a busy 2-core machine).
    torch.set_num_threads(1)
    rows = module_rows() + init_optim_rows()
    print(format_table(rows))
    failed = [r for r in rows if not r.ok]
    print(f"\n{len(rows)} rows, {len(failed)} out of tolerance. Error: max |npnet - torch| / scale of the "
          f"quantity; tolerance 4 * eps(dtype) * sqrt(K), K the reduction length (see reference.compare).")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
