"""The fast kernels of npnet.nn._fast against their plain twins in npnet.nn.functional.

Every fast kernel has a plain twin of the same name and signature; each property
test here draws float32 and float64 inputs of odd shapes (1, primes, rows just
past the 32-class short-row limit), non-contiguous views, inf and nan where the
kernel has to pass them through, and row blocks from one row to the whole array,
and asserts the two agree: exactly where both do the same arithmetic (linear,
sigmoid, ReLU's backward, the position of every nan and inf), else within a few
ulps times sqrt(C) of the result's scale, C the length of the summed row (only
the order of a sum differs). Both are called directly (``F.x.plain`` and
``F.x.fast``), so these tests mean the same under NPNET_KERNELS=plain.
"""
import contextlib
import inspect
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import npnet.nn.functional as F
from npnet.nn import _fast, _kernels
from reference import tolerance
from strategies import dtypes, seeds

ROWS = st.sampled_from([1, 2, 3, 7, 13, 33, 97])
COLS = st.sampled_from([1, 2, 3, 5, 10, 31, 32, 33, 97])
FAST = sorted(name for name, f in vars(_fast).items()
              if inspect.isfunction(f) and not name.startswith("_") and f.__module__.startswith(_fast.__name__))


@contextlib.contextmanager
def block_bytes(n):
    """Run the fast kernels with row blocks of ``n`` bytes (None: as shipped)."""
    before = _fast._BLOCK_BYTES
    _fast._BLOCK_BYTES = before if n is None else n
    try:
        yield
    finally:
        _fast._BLOCK_BYTES = before


@st.composite
def arrays(draw, shape, dtype, *, nonfinite=False, scale=None):
    """A float array of ``shape``, normal at a drawn scale, maybe with inf/-inf/nan
    at drawn places, maybe a non-contiguous view (every other column of a wider
    array, or a transposed copy's transpose)."""
    r = np.random.default_rng(draw(seeds))
    x = np.array(r.standard_normal(shape) * (draw(st.sampled_from([1.0, 1e-3, 30.0])) if scale is None else scale))
    if nonfinite and x.size:
        at = r.random(shape) < draw(st.sampled_from([0.0, 0.05, 0.3]))
        x[at] = r.choice([np.inf, -np.inf, np.nan], size=int(at.sum()))
    x = np.asarray(x, dtype)
    layout = draw(st.sampled_from(["c", "strided", "fortran"]))
    if layout == "strided":
        wide = np.zeros(shape[:-1] + (2 * shape[-1],), dtype) if len(shape) else np.zeros((2,), dtype)
        wide[..., ::2] = x
        x = wide[..., ::2] if len(shape) else wide[0:1].reshape(())
    elif layout == "fortran" and x.ndim:   # (asfortranarray makes a 0-d array 1-d)
        x = np.asfortranarray(x)
    return x


def shape2(data):
    return (data.draw(ROWS), data.draw(COLS))


def blocks(data, shape, dtype):
    """None (as shipped) or blocks of 1 to 3 rows, so that small arrays cross block borders."""
    rows = data.draw(st.sampled_from([None, 1, 2, 3]))
    return None if rows is None else rows * shape[-1] * np.dtype(dtype).itemsize


def same_nonfinite(a, b):
    for test in (np.isnan, np.isposinf, np.isneginf):
        np.testing.assert_array_equal(test(a), test(b), err_msg=test.__name__)


def close(fast, plain, dtype, K, scale):
    """Same shape and dtype, nan and inf in the same places, finite values within
    tolerance(dtype, K) * scale (tolerance: a few ulps times sqrt(K))."""
    fast, plain = np.asarray(fast), np.asarray(plain)
    assert fast.shape == plain.shape and fast.dtype == plain.dtype == dtype
    same_nonfinite(fast, plain)
    ok = np.isfinite(plain)
    err = np.abs(fast[ok].astype(np.float64) - plain[ok]).max(initial=0.0)
    assert err <= tolerance(dtype, K) * scale, f"error {err:.3e} > {tolerance(dtype, K) * scale:.3e}"


def identical(fast, plain):
    """Bit for bit (signed zeros and nan payloads aside: nan in the same places)."""
    fast, plain = np.asarray(fast), np.asarray(plain)
    assert fast.shape == plain.shape and fast.dtype == plain.dtype
    same_nonfinite(fast, plain)
    np.testing.assert_array_equal(fast, plain)


def finite_max(*arrays):
    return max([1.0] + [float(np.abs(a[np.isfinite(a)]).max(initial=0.0)) for a in arrays])


# --------------------------------------------------------------------------- the pairing

def test_every_fast_kernel_has_a_plain_twin_with_the_same_signature():
    assert set(FAST) >= {"linear", "relu_backward", "sigmoid", "softmax", "softmax_backward", "log_softmax",
                         "log_softmax_backward", "cross_entropy", "cross_entropy_backward",
                         "cross_entropy_with_backward"}
    for name in FAST:
        public = getattr(F, name)
        assert public.fast is getattr(_fast, name), name
        assert inspect.signature(public.plain) == inspect.signature(getattr(_fast, name)), name
        assert inspect.signature(public) == inspect.signature(public.plain), name


def _python(code, **env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **env})


@pytest.mark.parametrize("value, mode", [("plain", "plain"), ("fast", "fast"), ("", "fast")])
def test_npnet_kernels_selects_the_implementation(value, mode):
    code = ("import npnet.nn.functional as F; from npnet.nn._kernels import K; "
            "print(F.softmax.active is F.softmax.plain, K.softmax is F.softmax.plain, "
            "K.cross_entropy_with_backward is F.cross_entropy_with_backward.plain, K.gelu is F.gelu.plain)")
    run = _python(code, NPNET_KERNELS=value)
    assert run.returncode == 0, run.stderr
    plain = mode == "plain"
    assert run.stdout.split() == [str(plain), str(plain), str(plain), "True"]   # gelu has no fast twin


def test_a_bad_npnet_kernels_value_fails_at_import_naming_the_variable():
    run = _python("import npnet", NPNET_KERNELS="fastest")
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError") and "NPNET_KERNELS" in last and "'plain'" in last and "fastest" in last


# ------------------------------------------------------------------ one test per kernel

@given(data=st.data())
def test_linear(data):
    dtype = data.draw(dtypes)
    lead = data.draw(st.sampled_from([(), (1,), (7,), (3, 5)]))
    n_in, n_out = data.draw(COLS), data.draw(COLS)
    X = data.draw(arrays(lead + (n_in,), dtype))
    W = data.draw(arrays((n_out, n_in), dtype))
    b = data.draw(st.sampled_from([None, "b"])) and data.draw(arrays((n_out,), dtype))
    identical(_fast.linear(X, W, b), F.linear.plain(X, W, b))


@given(data=st.data())
def test_relu_backward(data):
    dtype = data.draw(dtypes)
    shape = data.draw(st.sampled_from([(), (1,), (7,), (3, 5), (13, 2, 3)]))
    X = data.draw(arrays(shape, dtype, nonfinite=True))
    dY = data.draw(arrays(shape, dtype, nonfinite=True))
    fast, plain = _fast.relu_backward(dY, X), F.relu_backward.plain(dY, X)
    identical(fast, plain)
    assert not np.signbit(fast[~(X > 0)]).any()   # exactly +0.0 where X <= 0 (torch), whatever dY holds there


@given(data=st.data())
def test_sigmoid(data):
    dtype = data.draw(dtypes)
    shape = data.draw(st.sampled_from([(), (1,), (7,), (3, 5)]))
    X = data.draw(arrays(shape, dtype, nonfinite=True, scale=data.draw(st.sampled_from([1.0, 100.0, 1000.0]))))
    identical(_fast.sigmoid(X), F.sigmoid.plain(X))


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@given(data=st.data())
def test_softmax_and_log_softmax(name, data):
    dtype = data.draw(dtypes)
    shape = data.draw(st.one_of(st.builds(lambda r, c: (r, c), ROWS, COLS), st.sampled_from([(), (5,), (2, 3, 4)])))
    axis = data.draw(st.sampled_from([-1, 0] if len(shape) < 2 else [-1, 0, 1]))
    X = data.draw(arrays(shape, dtype, nonfinite=True))
    with block_bytes(blocks(data, shape, dtype) if shape else None):
        fast = getattr(_fast, name)(X, axis)
    plain = getattr(F, name).plain(X, axis)
    C = shape[axis] if shape else 1
    close(fast, plain, dtype, C, 1.0 if name == "softmax" else finite_max(X))


@pytest.mark.parametrize("name", ["softmax_backward", "log_softmax_backward"])
@given(data=st.data())
def test_softmax_backwards(name, data):
    dtype = data.draw(dtypes)
    shape = data.draw(st.one_of(st.builds(lambda r, c: (r, c), ROWS, COLS), st.sampled_from([(), (5,), (2, 3, 4)])))
    axis = data.draw(st.sampled_from([-1, 0] if len(shape) < 2 else [-1, 0, 1]))
    forward = getattr(F, name.replace("_backward", "")).plain
    Y = forward(data.draw(arrays(shape, dtype)), axis)   # a real forward output: rows sum to 1
    if Y.ndim and data.draw(st.booleans()):
        Y = np.asfortranarray(Y)
    dY = data.draw(arrays(shape, dtype))
    with block_bytes(blocks(data, shape, dtype) if shape else None):
        fast = getattr(_fast, name)(dY, Y, axis)
    plain = getattr(F, name).plain(dY, Y, axis)
    C = shape[axis] if shape else 1
    close(fast, plain, dtype, C, finite_max(dY))


@st.composite
def ce_arguments(draw, dtype):
    """logits, target and options of a cross-entropy call: class indices (some
    ignored) or probabilities; weights and smoothing sometimes (the fast path
    hands those to the plain kernel: they must agree exactly then)."""
    shape = draw(st.one_of(st.builds(lambda r, c: (r, c), ROWS, COLS), st.sampled_from([(5,), (3, 4, 2), (2, 0)])))
    C = shape[0 if len(shape) == 1 else 1]
    logits = draw(arrays(shape, dtype, nonfinite=draw(st.booleans())))
    r = np.random.default_rng(draw(seeds))
    batch = shape[:0] if len(shape) == 1 else shape[:1] + shape[2:]
    kind = draw(st.sampled_from(["index", "index", "probs"]))
    if kind == "probs":
        target = r.dirichlet(np.ones(C), size=batch).astype(dtype) if C else np.zeros(shape, dtype)
        target = np.moveaxis(target, -1, 0 if len(shape) == 1 else 1) if len(shape) != 2 else target
    else:
        target = r.integers(0, max(C, 1), size=batch)
        target[r.random(batch) < draw(st.sampled_from([0.0, 0.3, 1.0]))] = -100
        if C == 0:
            target[...] = -100
        target = target.astype(draw(st.sampled_from([np.int64, np.int32, np.uint8])) if (target >= 0).all()
                               else np.int64)
    kw = dict(reduction=draw(st.sampled_from(["mean", "sum", "none"])))
    if draw(st.booleans()):
        kw["weight"] = r.uniform(0, 2, C).astype(dtype)
    if draw(st.booleans()):
        kw["label_smoothing"] = draw(st.sampled_from([0.1, 1.0]))
    loss_shape = () if kw["reduction"] != "none" else batch
    dloss = (r.standard_normal(loss_shape) * draw(st.sampled_from([1.0, 1e3]))).astype(dtype)
    return logits, target, kw, np.asarray(dloss)


def fast(name):
    """The fast twin as the default mode runs it: where it says it does not handle a call
    (weights, smoothing, probability targets, zero classes, kept log-probabilities),
    the plain kernel runs."""
    return _kernels._when(getattr(_fast, name), getattr(F, name).plain)


@given(data=st.data())
def test_cross_entropy_with_backward(data):
    dtype = data.draw(dtypes)
    logits, target, kw, dloss = data.draw(ce_arguments(dtype))
    with block_bytes(blocks(data, logits.shape, dtype) if logits.ndim == 2 else None):
        loss, backward = fast("cross_entropy_with_backward")(logits, target, **kw)
        grad = backward(dloss)
        loss_only = fast("cross_entropy")(logits, target, **kw)
        grad_only = fast("cross_entropy_backward")(dloss, logits, target, **kw)
    p_loss, p_backward = F.cross_entropy_with_backward.plain(logits, target, **kw)
    p_grad = p_backward(dloss)
    identical(loss_only, loss)       # the public pair runs the very same fused computation
    identical(grad_only, grad)
    identical(p_loss, F.cross_entropy.plain(logits, target, **kw))
    identical(p_grad, F.cross_entropy_backward.plain(dloss, logits, target, **kw))
    C = logits.shape[0 if logits.ndim == 1 else 1]
    w = float(np.max(kw.get("weight", 1.0), initial=1.0))
    # The loss is log(sum exp(z)) - z_t: error of a few ulps of |z| and log C per row.
    close(loss, p_loss, dtype, max(C, 1), finite_max(logits) * w * (logits.size // max(C, 1)))
    close(grad, p_grad, dtype, max(C, 1), finite_max(dloss) * w)


def test_cross_entropy_backward_from_kept_log_probs_is_the_plain_kernel():
    X = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    t, L = np.array([0, 2, 1, 1]), F.log_softmax.plain(X, 1)
    assert not _fast.cross_entropy_backward.handles(np.float32(0.5), X, t, log_probs=L)
    identical(fast("cross_entropy_backward")(np.float32(0.5), X, t, log_probs=L),
              F.cross_entropy_backward.plain(np.float32(0.5), X, t, log_probs=L))


# ------------------------------------------------- row blocks against one block and torch

@pytest.mark.parametrize("shape", [(301, 7), (50, 40), (3, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_blocked_kernels_agree_with_one_block_and_torch(shape, dtype):
    # Row-wise kernels work on blocks of rows that fit in cache; the blocks must
    # not change what they compute: tiny blocks (a row or two) against one block.
    rng = np.random.default_rng(1)
    X, dY = (rng.standard_normal(shape) * 4).astype(dtype), rng.standard_normal(shape).astype(dtype)
    t = rng.integers(0, shape[1], shape[0])

    def everything():
        out = {"softmax": _fast.softmax(X), "log_softmax": _fast.log_softmax(X)}
        out["softmax_backward"] = _fast.softmax_backward(dY, out["softmax"])
        out["log_softmax_backward"] = _fast.log_softmax_backward(dY, out["log_softmax"])
        out["cross_entropy"], backward = _fast.cross_entropy_with_backward(X, t)
        out["cross_entropy_backward"] = backward(np.asarray(1, dtype))
        return out

    with block_bytes(1 << 30):
        whole = everything()
    with block_bytes(2 * shape[1] * np.dtype(dtype).itemsize):   # two rows a block
        assert len(_fast._row_blocks(shape[0], shape[1] * np.dtype(dtype).itemsize)) == -(-shape[0] // 2)
        blocked = everything()
    eps = np.finfo(dtype).eps
    for name, value in blocked.items():
        assert value.shape == whole[name].shape and value.dtype == dtype, name
        np.testing.assert_allclose(value, whole[name], rtol=8 * eps, atol=8 * eps, err_msg=name)
    xt = torch.from_numpy(X).requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(xt, torch.from_numpy(t))
    np.testing.assert_allclose(blocked["cross_entropy"], loss.item(), rtol=tolerance(dtype, shape[1]))
    np.testing.assert_allclose(blocked["cross_entropy_backward"], torch.autograd.grad(loss, [xt])[0].numpy(),
                               rtol=tolerance(dtype, shape[1]), atol=tolerance(dtype, shape[1]) / shape[0])
    np.testing.assert_allclose(blocked["softmax"], torch.softmax(torch.from_numpy(X), 1).numpy(),
                               rtol=tolerance(dtype, shape[1]), atol=tolerance(dtype, shape[1]))


# ------------------------------------------------- cross-entropy on short rows, by class

@pytest.mark.parametrize("ignore_index", [-100, 0, 13])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_by_class_agrees_with_the_plain_kernel_and_torch(ignore_index, reduction, dtype):
    # A classifier's logits (256, 10) take the by-class route (the transposed copy);
    # some targets equal ignore_index, which is below, inside or above the classes.
    rng = np.random.default_rng(2)
    M, C = 256, 10
    assert C <= _fast._SHORT_ROW < M
    X = (rng.standard_normal((M, C)) * 5).astype(dtype)
    t = rng.integers(0, C, M)
    t[rng.random(M) < 0.2] = ignore_index
    kw = dict(ignore_index=ignore_index, reduction=reduction)
    dloss = np.asarray(rng.standard_normal(() if reduction != "none" else (M,)), dtype)
    loss, backward = _fast.cross_entropy_with_backward(X, t, **kw)
    grad = backward(dloss)
    p_loss, p_backward = F.cross_entropy_with_backward.plain(X, t, **kw)
    p_grad = p_backward(dloss)
    close(loss, p_loss, dtype, C, finite_max(X) * M)
    close(grad, p_grad, dtype, C, finite_max(dloss))
    assert grad.shape == (M, C) and grad.dtype == dtype
    xt = torch.from_numpy(X).requires_grad_(True)
    tl = torch.nn.functional.cross_entropy(xt, torch.from_numpy(t), **kw)
    tl.backward(torch.from_numpy(dloss))
    np.testing.assert_allclose(loss, tl.detach().numpy(), rtol=tolerance(dtype, C), atol=tolerance(dtype, C))
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=tolerance(dtype, C), atol=tolerance(dtype, C))


@pytest.mark.parametrize("ignore_index, targets, kept", [
    (-100, [0, 3, 9], True), (-100, [0, -100, 9], False),
    (0, [1, 3, 9], True), (0, [1, 0, 9], False),
    (10, [0, 3, 9], True), (10, [0, 10, 9], False),
    (-100, [], True),
])
def test_all_kept_answers_with_one_reduction_for_checked_targets(ignore_index, targets, kept):
    t = np.array(targets, np.int64)
    assert _fast._all_kept(t, ignore_index, 10) is kept
    assert kept == bool((t != ignore_index).all())


# ------------------------------------------- activations by flat blocks, on 1, 2, 3 threads

# The activations' fast twins that run over flat blocks (_fast._elementwise), with the
# names of their arguments: X an input, Y a forward output, dY an upstream gradient.
ELEMENTWISE = {"relu": "X", "relu_backward": "dY X", "sigmoid": "X", "sigmoid_backward": "dY Y",
               "tanh": "X", "tanh_backward": "dY Y"}


@pytest.mark.parametrize("name", ["relu", "sigmoid_backward", "tanh", "tanh_backward"])
@given(data=st.data())
def test_the_other_elementwise_twins_equal_the_plain_kernels(name, data):
    # relu_backward and sigmoid have tests of their own above
    dtype = data.draw(dtypes)
    shape = data.draw(st.sampled_from([(), (1,), (7,), (3, 5), (13, 2, 3)]))
    # inf only where the plain kernel takes it without a warning (inf * 0 in a backward is nan, and warns)
    args = [data.draw(arrays(shape, dtype, nonfinite=arg == "X")) for arg in ELEMENTWISE[name].split()]
    if "Y" in ELEMENTWISE[name].split():
        args[1] = np.clip(args[1], -1, 1)   # an output of sigmoid or tanh
    identical(getattr(_fast, name)(*args), getattr(F, name).plain(*args))


def bits(a):
    """What must be equal for two results to be the same to the bit (signed zeros, nan payloads)."""
    return a.shape, a.dtype, a.tobytes()


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elementwise_twins_give_the_same_bits_for_every_thread_count(name, dtype, num_threads):
    # An array of a little over three flat blocks (the last one partial), with nan
    # everywhere, inf and -inf in the inputs X (relu_backward's dY too), and signed zeros.
    rng = np.random.default_rng(11)
    shape = (7, 3 * _fast._FLAT_BLOCK_BYTES // np.dtype(dtype).itemsize // 7 + 101)
    args = []
    for arg in ELEMENTWISE[name].split():
        x = rng.standard_normal(shape) * 30
        x[rng.random(shape) < 0.05] = np.nan
        x[rng.random(shape) < 0.05] = 0.0
        x[rng.random(shape) < 0.05] = -0.0
        if arg == "X" or name == "relu_backward":
            x[rng.random(shape) < 0.02] = np.inf
            x[rng.random(shape) < 0.02] = -np.inf
        if arg == "Y":
            x = np.clip(x, -1, 1)
        args.append(x.astype(dtype))
    before = [a.copy() for a in args]
    kernel = getattr(_fast, name)
    results = []
    for n in (1, 2, 3):
        num_threads(n)
        results.append(kernel(*args))
    assert args[0].nbytes > 3 * _fast._FLAT_BLOCK_BYTES   # several blocks, shared among the threads
    for got in results[1:]:
        assert bits(got) == bits(results[0])
    identical(results[0], getattr(F, name).plain(*args))
    for a, b in zip(args, before):
        np.testing.assert_array_equal(a, b)
