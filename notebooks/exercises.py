"""The checks behind the notebooks' exercises: ``CHECKS[name](candidate)``.

Each check runs the learner's function on fixed random inputs and compares the result
with what PyTorch computes (autograd for gradients) when torch is installed, else with
npnet's own kernel; it returns one line saying what agreed, and raises AssertionError
saying what did not. The notebook's check cell calls it through ``course.check``.
"""
import numpy as np

import npnet.nn.functional as F
from npnet import nn
from npnet.data import kfold

__all__ = ["CHECKS"]


def _torch():
    """torch, or None when it is not installed."""
    try:
        import torch
    except ModuleNotFoundError:
        return None
    return torch


def _expect(got, want, what, *, rtol=1e-10, atol=1e-12):
    got = np.asarray(got)
    assert got.shape == want.shape, f"{what}: expected shape {want.shape}, got {got.shape}"
    bad = int(np.size(got) - np.isfinite(got).sum())
    assert bad == 0, f"{what}: {bad} of {got.size} entries are inf or nan"
    err = float(np.max(np.abs(got - want), initial=0.0))
    assert np.allclose(got, want, rtol=rtol, atol=atol), f"{what}: off by up to {err:.3g}"
    return err


def _autograd(f, *arrays, dY):
    """Gradients of sum(f(*arrays) * dY) with respect to each array, by torch autograd."""
    torch = _torch()
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    (f(*ts) * torch.tensor(dY)).sum().backward()
    return [t.grad.numpy() for t in ts]


def _against():
    return "torch" if _torch() is not None else "npnet (torch is not installed)"


# ---------------------------------------------------------------- 01 tensors and reductions

def row_fractions(candidate):
    rng = np.random.default_rng(1)
    X = rng.random((4, 4)) + 0.1                      # square: a missing keepdims does not raise here
    torch = _torch()
    want = (torch.tensor(X) / torch.tensor(X).sum(dim=1, keepdim=True)).numpy() if torch else \
        X / X.sum(axis=1, keepdims=True)
    err = _expect(candidate(X.copy()), want, "row_fractions(X)")
    return f"every row divided by its own sum, as {_against()} does (max error {err:.1e})"


def sum_backward(candidate):
    rng = np.random.default_rng(2)
    X, dY = rng.standard_normal((3, 5)), rng.standard_normal((3, 1))
    if _torch() is not None:
        (want,) = _autograd(lambda t: t.sum(dim=1, keepdim=True), X, dY=dY)
    else:
        want = np.broadcast_to(dY, X.shape).copy()
    err = _expect(candidate(dY.copy(), X.copy()), want, "sum_backward(dY, X)")
    return f"dX of X.sum(axis=1, keepdims=True) matches {_against()} autograd (max error {err:.1e})"


# ---------------------------------------------------------------- 02 softmax regression

def softmax(candidate):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((5, 4)) * 3
    torch = _torch()
    want = torch.softmax(torch.tensor(X), dim=1).numpy() if torch else F.softmax(X, axis=1)
    err = _expect(candidate(X.copy()), want, "softmax(X)")
    return f"matches {_against()}'s softmax over each row (max error {err:.1e})"


def linear_backward(candidate):
    rng = np.random.default_rng(4)
    X, W, b = rng.standard_normal((6, 5)), rng.standard_normal((3, 5)), rng.standard_normal(3)
    dY = rng.standard_normal((6, 3))
    if _torch() is not None:
        want = _autograd(lambda x, w, c: x @ w.T + c, X, W, b, dY=dY)
    else:
        want = F.linear_backward(dY, X, W)
    got = candidate(dY.copy(), X.copy(), W.copy())
    assert isinstance(got, tuple) and len(got) == 3, "linear_backward must return (dX, dW, db)"
    errs = [_expect(g, w, f"linear_backward: {n}") for g, w, n in zip(got, want, ("dX", "dW", "db"))]
    return f"dX, dW and db match {_against()} autograd (max error {max(errs):.1e})"


# ---------------------------------------------------------------- 03 cross-entropy

def log_softmax(candidate):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((4, 6)) * 1000             # logits far beyond where exp overflows
    torch = _torch()
    want = torch.log_softmax(torch.tensor(X), dim=1).numpy() if torch else F.log_softmax(X, axis=1)
    with np.errstate(all="ignore"):
        got = candidate(X.copy())
    err = _expect(got, want, "log_softmax(1000 * X)", rtol=1e-12, atol=1e-9)
    return f"finite at logits of size 1000 and equal to {_against()}'s log_softmax (max error {err:.1e})"


def cross_entropy_backward(candidate):
    rng = np.random.default_rng(6)
    logits, target = rng.standard_normal((8, 5)), rng.integers(0, 5, 8)
    if _torch() is not None:
        torch = _torch()
        t = torch.tensor(logits, requires_grad=True)
        torch.nn.functional.cross_entropy(t, torch.tensor(target)).backward()
        want = t.grad.numpy()
    else:
        want = F.cross_entropy_backward(np.float64(1.0), logits, target)
    err = _expect(candidate(logits.copy(), target.copy()), want, "cross_entropy_backward(logits, target)")
    return f"d mean-loss / d logits matches {_against()} autograd (max error {err:.1e})"


# ---------------------------------------------------------------- 04 the MLP

def relu_backward(candidate):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((4, 6))
    X[0, :3] = 0.0                                     # the gradient at exactly 0 is 0, as torch has it
    dY = rng.standard_normal(X.shape)
    if _torch() is not None:
        (want,) = _autograd(lambda t: _torch().relu(t), X, dY=dY)
    else:
        want = F.relu_backward(dY, X)
    err = _expect(candidate(dY.copy(), X.copy()), want, "relu_backward(dY, X) (X holds some exact zeros)")
    return f"matches {_against()} autograd, zeros included (max error {err:.1e})"


def sigmoid_backward(candidate):
    rng = np.random.default_rng(8)
    X, dY = rng.standard_normal((4, 6)) * 3, rng.standard_normal((4, 6))
    Y = F.sigmoid(X)
    if _torch() is not None:
        (want,) = _autograd(lambda t: _torch().sigmoid(t), X, dY=dY)
    else:
        want = F.sigmoid_backward(dY, Y)
    err = _expect(candidate(dY.copy(), Y.copy()), want, "sigmoid_backward(dY, Y)")
    return f"matches {_against()} autograd (max error {err:.1e})"


# ---------------------------------------------------------------- 05 initialization

def xavier_bound(candidate):
    fan_in, fan_out = 300, 100
    b = float(candidate(fan_in, fan_out))
    torch = _torch()
    if torch is not None:
        torch.manual_seed(0)
        W = torch.nn.init.xavier_uniform_(torch.empty(fan_out, fan_in, dtype=torch.float64)).numpy()
    else:
        W = nn.init.xavier_uniform_(np.empty((fan_out, fan_in)), rng=np.random.default_rng(0))
    top = float(np.abs(W).max())
    assert top <= b and top >= 0.999 * b, (f"xavier_bound({fan_in}, {fan_out}) = {b:.5g}, but {_against()}'s "
                                           f"xavier_uniform_ draws up to {top:.5g}")
    return f"{_against()}'s xavier_uniform_ on a ({fan_out}, {fan_in}) weight draws within ±{b:.5g} and reaches {top:.5g}"


def kaiming_std(candidate):
    fan_in = 400
    s = float(candidate(fan_in))
    torch = _torch()
    if torch is not None:
        torch.manual_seed(0)
        W = torch.nn.init.kaiming_normal_(torch.empty(2000, fan_in, dtype=torch.float64), nonlinearity="relu").numpy()
    else:
        W = nn.init.kaiming_normal_(np.empty((2000, fan_in)), nonlinearity="relu", rng=np.random.default_rng(0))
    measured = float(W.std())
    assert abs(measured / s - 1) < 0.005, (f"kaiming_std({fan_in}) = {s:.5g}, but {_against()}'s kaiming_normal_ "
                                           f"(ReLU) draws with std {measured:.5g}")
    return f"{_against()}'s kaiming_normal_ for ReLU draws with std {measured:.5g} (yours: {s:.5g})"


# ---------------------------------------------------------------- 06 k-fold

def kfold_folds(candidate):
    for n, k in ((10, 3), (23, 5), (7, 7)):
        got = [np.asarray(v) for v in candidate(n, k)]
        want = [v for _, v in kfold(n, k)]
        assert len(got) == k, f"kfold_folds({n}, {k}) gave {len(got)} folds, expected {k}"
        everyone = np.sort(np.concatenate(got)) if got else np.array([])
        assert everyone.tolist() == list(range(n)), (
            f"kfold_folds({n}, {k}): the folds must hold every index exactly once; they hold {everyone.tolist()}")
        for i, (g, w) in enumerate(zip(got, want)):
            assert g.tolist() == w.tolist(), f"kfold_folds({n}, {k}) fold {i}: expected {w.tolist()}, got {g.tolist()}"
    return ("the folds partition range(n), the first n % k one larger, exactly as npnet.data.kfold "
            "(torch has no k-fold of its own)")


def sgd_step(candidate):
    rng = np.random.default_rng(9)
    w, g = rng.standard_normal(6), rng.standard_normal(6)
    lr, weight_decay = 0.1, 0.05
    torch = _torch()
    if torch is not None:
        p = torch.tensor(w, requires_grad=True)
        p.grad = torch.tensor(g)
        torch.optim.SGD([p], lr=lr, weight_decay=weight_decay).step()
        want = p.detach().numpy()
    else:
        from npnet import optim

        want = w.copy()
        optim.SGD({"w": want}, lr=lr, weight_decay=weight_decay).step({"w": g})
    err = _expect(candidate(w.copy(), g.copy(), lr, weight_decay), want, "sgd_step(w, g, lr, weight_decay)")
    return f"one step equals {_against()}'s SGD(lr={lr}, weight_decay={weight_decay}) (max error {err:.1e})"


# ---------------------------------------------------------------- 07 convolution and pooling

def conv_output_size(candidate):
    torch = _torch()
    tried = 0
    for n in (1, 5, 7, 8, 28):
        for k in (1, 2, 3, 5):
            for padding in (0, 1, 2):
                for stride in (1, 2, 3):
                    if k > n + 2 * padding:
                        continue
                    if torch is not None:
                        want = torch.nn.functional.conv2d(torch.zeros(1, 1, n, 1), torch.zeros(1, 1, k, 1),
                                                          padding=(padding, 0), stride=(stride, 1)).shape[2]
                    else:
                        want = F.conv2d(np.zeros((1, 1, n, 1)), np.zeros((1, 1, k, 1)), padding=(padding, 0),
                                        stride=(stride, 1)).shape[2]
                    got = candidate(n, k, padding, stride)
                    assert got == want, (f"conv_output_size(n={n}, k={k}, padding={padding}, stride={stride}) = "
                                         f"{got}, but {_against()}'s conv2d gives {want}")
                    tried += 1
    return f"{tried} combinations of n, k, padding and stride give {_against()}'s conv2d output size"


def avg_pool2d_backward(candidate):
    rng = np.random.default_rng(10)
    k = 2
    X, dY = rng.standard_normal((2, 3, 6, 8)), rng.standard_normal((2, 3, 3, 4))
    if _torch() is not None:
        (want,) = _autograd(lambda t: _torch().nn.functional.avg_pool2d(t, k), X, dY=dY)
    else:
        want = F.avg_pool2d_backward(dY, X, k)
    err = _expect(candidate(dY.copy(), k), want, f"avg_pool2d_backward(dY, k={k})")
    return f"dX of 2 x 2 average pooling matches {_against()} autograd (max error {err:.1e})"


def conv_weight_grad(candidate):
    rng = np.random.default_rng(11)
    X, dY = rng.standard_normal((6, 7)), rng.standard_normal((4, 5))       # a 3 x 3 kernel
    W = np.zeros((1, 1, 3, 3))
    if _torch() is not None:
        _, want = _autograd(lambda x, w: _torch().nn.functional.conv2d(x, w), X[None, None], W, dY=dY[None, None])
    else:
        _, want, _ = F.conv2d_backward(dY[None, None], X[None, None], W)
    err = _expect(candidate(dY.copy(), X.copy()), want[0, 0], "conv_weight_grad(dY, X)")
    return f"dW of a one-channel 3 x 3 convolution matches {_against()} autograd (max error {err:.1e})"


# ---------------------------------------------------------------- 08 batch normalization

def batch_norm_dx(candidate):
    rng = np.random.default_rng(12)
    X, dY = 2 + 3 * rng.standard_normal((8, 4)), rng.standard_normal((8, 4))
    gamma, eps = rng.standard_normal(4), 1e-5
    torch = _torch()
    if torch is not None:
        (want,) = _autograd(lambda t: torch.nn.functional.batch_norm(t, None, None, torch.tensor(gamma), None,
                                                                     training=True, eps=eps), X, dY=dY)
    else:
        want = F.batch_norm_backward(dY, X, gamma, None, None, training=True, eps=eps)[0]
    err = _expect(candidate(dY.copy(), X.copy(), gamma.copy(), eps), want, "batch_norm_dx(dY, X, gamma, eps)",
                  rtol=1e-9, atol=1e-11)
    return f"dX in training mode matches {_against()} autograd (max error {err:.1e})"


def running_stats(candidate):
    rng = np.random.default_rng(13)
    batches = [3 + 2 * rng.standard_normal((n, 3)) for n in (5, 8, 4, 6)]     # small batches: n / (n - 1) matters
    momentum = 0.2
    torch = _torch()
    if torch is not None:
        m = torch.nn.BatchNorm1d(3, momentum=momentum, dtype=torch.float64)
        for b in batches:
            m(torch.tensor(b))
        want = m.running_mean.numpy(), m.running_var.numpy()
    else:
        m = nn.BatchNorm1d(3, momentum=momentum, dtype=np.float64)
        for b in batches:
            m.forward(b)
        want = m.buffers["running_mean"], m.buffers["running_var"]
    got = candidate([b.copy() for b in batches], momentum)
    assert isinstance(got, tuple) and len(got) == 2, "running_stats must return (running_mean, running_var)"
    errs = [_expect(g, w, f"running_stats: {n}") for g, w, n in zip(got, want, ("running_mean", "running_var"))]
    return (f"running mean and variance after 4 batches match {_against()}'s BatchNorm1d(momentum={momentum}) "
            f"(max error {max(errs):.1e})")


CHECKS = {f.__name__: f for f in (row_fractions, sum_backward, softmax, linear_backward, log_softmax,
                                  cross_entropy_backward, relu_backward, sigmoid_backward, xavier_bound,
                                  kaiming_std, kfold_folds, sgd_step, conv_output_size,
                                  avg_pool2d_backward, conv_weight_grad, batch_norm_dx, running_stats)}
