"""The pure kernels of npnet.nn.functional.

Each kernel is checked against torch.nn.functional directly, and bit for bit
against the layer or loss built on it (which test_layers / test_losses compare
with torch autograd under dtype-derived tolerances). Then the properties that
need no torch: softmax sums to 1 and ignores shifts, cross-entropy is never
negative, inputs are never modified (read-only and non-contiguous ones work),
dtypes are kept.

torch runs on one thread here (the torch_one_thread fixture).
"""
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import npnet.nn.functional as F
from npnet import nn
from reference import tolerance
from strategies import (  # noqa: F401  (torch_one_thread is a fixture)
    assert_close, batch_shape, ce_cases, class_axis, dtypes, float_arrays, frozen_strided, leading_dims,
    negative_slopes, shapes, sizes, torch_one_thread, upstream,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")
TF = torch.nn.functional


def _torch_grad(fn, x, dy, *others):
    """torch's output and input gradient of ``fn(x, *others)`` for upstream ``dy``."""
    xt = torch.from_numpy(x.copy()).requires_grad_()
    y = fn(xt, *others)
    y.backward(torch.from_numpy(dy.copy()))
    return y.detach().numpy(), xt.grad.numpy()


# ------------------------------------------------------- elementwise and softmax kernels

ELEMENTWISE = {
    "relu": (F.relu, F.relu_backward, torch.relu, "x"),
    "sigmoid": (F.sigmoid, F.sigmoid_backward, torch.sigmoid, "y"),
    "tanh": (F.tanh, F.tanh_backward, torch.tanh, "y"),
}


@pytest.mark.parametrize("name", ELEMENTWISE)
@given(data=st.data())
def test_elementwise_kernels_match_torch(name, data):
    fwd, bwd, tfn, reads = ELEMENTWISE[name]
    dtype, shape = data.draw(dtypes), data.draw(shapes())
    x, dy = data.draw(float_arrays(shape, dtype)), data.draw(upstream(shape, dtype))
    y = fwd(x)
    dx = bwd(dy, x if reads == "x" else y)
    y_ref, dx_ref = _torch_grad(tfn, x, dy)
    assert y.dtype == dx.dtype == dtype
    assert_close(y, y_ref, dtype, scale=max(float(np.abs(y_ref).max()), np.finfo(dtype).tiny))
    # the backward reads y, which carries forward rounding: the gradient's scale is |dy|
    assert_close(dx, dx_ref, dtype, scale=max(float(np.abs(dy).max()), np.finfo(dtype).tiny))


@given(data=st.data())
def test_leaky_relu_kernel_matches_torch(data):
    dtype, shape, slope = data.draw(dtypes), data.draw(shapes()), data.draw(negative_slopes)
    x, dy = data.draw(float_arrays(shape, dtype)), data.draw(upstream(shape, dtype))
    y_ref, dx_ref = _torch_grad(lambda t: TF.leaky_relu(t, slope), x, dy)
    assert_close(F.leaky_relu(x, slope), y_ref, dtype, scale=float(np.abs(x).max()) + 1e-30)
    assert_close(F.leaky_relu_backward(dy, x, slope), dx_ref, dtype, scale=float(np.abs(dy).max()) * max(1, abs(slope)))


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@given(data=st.data())
def test_softmax_kernels_match_torch_and_the_layers(log, data):
    dtype, shape = data.draw(dtypes), data.draw(shapes())
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x, dy = data.draw(float_arrays(shape, dtype)), data.draw(upstream(shape, dtype))
    fwd, bwd = (F.log_softmax, F.log_softmax_backward) if log else (F.softmax, F.softmax_backward)
    y = fwd(x, axis)
    dx = bwd(dy, y, axis)
    y_ref, dx_ref = _torch_grad((torch.log_softmax if log else torch.softmax), x, dy, axis)
    K = shape[axis]
    assert_close(y, y_ref, dtype, K, scale=float(np.abs(y_ref).max()) + np.finfo(dtype).tiny)
    assert_close(dx, dx_ref, dtype, K, scale=float(np.abs(dy).max()) * 2)
    layer_y, layer_backward = (nn.LogSoftmax if log else nn.Softmax)(axis).forward(x)
    np.testing.assert_array_equal(layer_y, y)
    np.testing.assert_array_equal(layer_backward(dy)[0], dx)


# ------------------------------------------------------------------------------ linear

@given(data=st.data())
def test_linear_kernels_match_torch(data):
    dtype = data.draw(dtypes)
    lead, i, o = data.draw(leading_dims(max_dims=3)), data.draw(sizes), data.draw(sizes)
    X = data.draw(float_arrays(lead + (i,), dtype))
    W = data.draw(float_arrays((o, i), dtype, big=30.0))
    b = data.draw(st.none() | float_arrays((o,), dtype, big=30.0))
    dY = data.draw(upstream(lead + (o,), dtype))
    Y = F.linear(X, W, b)
    dX, dW, db = F.linear_backward(dY, X, W, need_db=b is not None)
    Xt, Wt = torch.from_numpy(X.copy()).requires_grad_(), torch.from_numpy(W.copy()).requires_grad_()
    bt = None if b is None else torch.from_numpy(b.copy()).requires_grad_()
    Yt = TF.linear(Xt, Wt, bt)
    Yt.backward(torch.from_numpy(dY.copy()))
    rows = max(X.size // i, 1)
    aX, aW, adY = np.abs(X).astype(float), np.abs(W).astype(float), np.abs(dY).astype(float)
    # each quantity against the size of the terms it sums
    assert_close(Y, Yt.detach().numpy(), dtype, i + 1, scale=float((aX @ aW.T).max()) + (0 if b is None else float(np.abs(b).max())) + 1e-30)
    assert_close(dX, Xt.grad.numpy(), dtype, o, scale=float((adY @ aW).max()) + 1e-30)
    assert_close(dW, Wt.grad.numpy(), dtype, rows, scale=float((adY.reshape(-1, o).T @ aX.reshape(-1, i)).max()) + 1e-30)
    if b is not None:
        assert_close(db, bt.grad.numpy(), dtype, rows, scale=float(adY.reshape(-1, o).sum(0).max()))
    else:
        assert db is None
    assert Y.dtype == dX.dtype == dW.dtype == dtype
    none_dX, dW2, _ = F.linear_backward(dY, X, W, need_dX=False)
    assert none_dX is None
    np.testing.assert_array_equal(dW2, dW)


# ----------------------------------------------------------------------------- dropout

@given(p=st.sampled_from([0.0, 0.5, 1.0]) | st.floats(0.0, 1.0), seed=st.integers(0, 99), dtype=dtypes)
def test_dropout_mask_values_and_replay(p, seed, dtype):
    mask = F.dropout_mask((50, 40), p, np.random.default_rng(seed), dtype)
    assert mask.dtype == dtype
    if p == 1:
        assert not mask.any()
    else:
        assert set(np.unique(mask).tolist()) <= {0.0, float(dtype(1 / (1 - p)))}
    np.testing.assert_array_equal(F.dropout_mask((50, 40), p, np.random.default_rng(seed), dtype), mask)
    x = np.random.default_rng(seed + 1).standard_normal(mask.shape).astype(dtype)
    np.testing.assert_array_equal(F.dropout(x, mask), x * mask)
    np.testing.assert_array_equal(F.dropout_backward(x, mask), x * mask)


def test_dropout_mask_keeps_about_one_minus_p_and_leaves_global_state_alone():
    state = np.random.get_state()[1].copy()
    mask = F.dropout_mask((200, 500), 0.3, np.random.default_rng(0), np.float64)
    kept = (mask > 0).mean()
    assert abs(kept - 0.7) < 5 * np.sqrt(0.21 / mask.size)
    assert abs(mask.mean() - 1.0) < 0.01          # inverted dropout keeps the expectation
    np.testing.assert_array_equal(np.random.get_state()[1], state)


# ------------------------------------------------------------------------------ losses

@given(data=st.data())
def test_cross_entropy_kernels_equal_the_loss_module_and_torch(data):
    dtype = data.draw(dtypes)
    kw, logits, target = data.draw(ce_cases(dtype))
    dloss = data.draw(upstream(batch_shape(logits.shape) if kw["reduction"] == "none" else (), dtype))
    value = F.cross_entropy(logits, target, **kw)
    grad = F.cross_entropy_backward(dloss, logits, target, **kw)
    grad_reuse = F.cross_entropy_backward(dloss, logits, target, **kw,
                                          log_probs=F.log_softmax(logits, axis=class_axis(logits.shape)))
    m_value, m_backward = nn.CrossEntropyLoss(**kw).forward(logits, target)
    np.testing.assert_array_equal(value, m_value)
    np.testing.assert_array_equal(grad, m_backward(dloss))
    # From kept log-probabilities the softmax is exp(log p) rather than exp(z) / s:
    # the same number up to rounding, so the two paths agree to a few ulps.
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(grad_reuse, grad, rtol=16 * eps, atol=16 * eps * max(1.0, float(np.abs(grad).max(initial=0))))
    assert value.dtype == grad.dtype == dtype and grad.shape == logits.shape
    assert np.all((value >= 0) | np.isnan(value))
    # and torch directly, in float64, at 1e-12 of a plain scale (test_losses does the
    # dtype-derived comparison): the loss's terms are all >= 0, so |loss| is its scale, and
    # the gradient is at most |dloss| * max(weight) * sum|target row| per entry
    if dtype == np.float64:
        tkw = dict(kw, weight=None if kw.get("weight") is None else torch.from_numpy(kw["weight"]))
        t = torch.from_numpy(target.astype(np.int64) if target.dtype.kind in "iu" else target)
        ref, ref_grad = _torch_grad(lambda x: TF.cross_entropy(x, t, **tkw), logits, dloss)
        np.testing.assert_allclose(value, ref, rtol=1e-12, atol=1e-12)
        rows = np.abs(target).sum(axis=class_axis(target.shape)).max(initial=1.0) if target.dtype.kind == "f" else 1.0
        g_scale = float(np.abs(dloss).max()) * float(np.max(kw.get("weight", 1.0))) * max(1.0, rows)
        np.testing.assert_allclose(grad, ref_grad, rtol=0, atol=1e-12 * g_scale)


@given(data=st.data())
def test_nll_kernels_equal_the_loss_module(data):
    dtype = data.draw(dtypes)
    kw, log_probs, target = data.draw(ce_cases(dtype, nll=True))
    dloss = data.draw(upstream(batch_shape(log_probs.shape) if kw["reduction"] == "none" else (), dtype))
    m_value, m_backward = nn.NLLLoss(**kw).forward(log_probs, target)
    np.testing.assert_array_equal(F.nll_loss(log_probs, target, **kw), m_value)
    np.testing.assert_array_equal(F.nll_loss_backward(dloss, log_probs, target, **kw), m_backward(dloss))


@given(data=st.data())
def test_mse_kernels_equal_the_loss_module_and_torch(data):
    dtype, shape = data.draw(dtypes), data.draw(shapes())
    reduction = data.draw(st.sampled_from(["mean", "sum", "none"]))
    x, t = data.draw(float_arrays(shape, dtype)), data.draw(float_arrays(shape, dtype))
    dloss = data.draw(upstream(shape if reduction == "none" else (), dtype))
    value = F.mse_loss(x, t, reduction=reduction)
    grad = F.mse_loss_backward(dloss, x, t, reduction=reduction)
    m_value, m_backward = nn.MSELoss(reduction).forward(x, t)
    np.testing.assert_array_equal(value, m_value)
    np.testing.assert_array_equal(grad, m_backward(dloss))
    ref, ref_grad = _torch_grad(lambda a: TF.mse_loss(a, torch.from_numpy(t), reduction=reduction), x, dloss)
    d2 = (x.astype(float) - t) ** 2
    n = x.size if reduction != "none" else 1
    assert_close(value, ref, dtype, n, scale=float(d2.sum() / (x.size if reduction == "mean" else 1)) + 1e-30)
    assert_close(grad, ref_grad, dtype, 1, scale=float(np.abs(ref_grad).max()) + 1e-30)


# ------------------------------------------------------------ properties without torch

@given(data=st.data())
def test_softmax_rows_sum_to_one(data):
    dtype, shape = data.draw(dtypes), data.draw(shapes())
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = data.draw(float_arrays(shape, dtype))
    y = F.softmax(x, axis)
    assert np.all(y >= 0) and np.all(y <= 1)
    assert_close(y.sum(axis=axis, dtype=np.float64), np.ones(y.sum(axis=axis).shape), dtype, 4 * shape[axis])
    assert_close(np.exp(F.log_softmax(x, axis).astype(np.float64)).sum(axis=axis),
                 np.ones(y.sum(axis=axis).shape), dtype, 4 * shape[axis])


@pytest.mark.parametrize("fn", [F.softmax, F.log_softmax], ids=["softmax", "log_softmax"])
@given(data=st.data())
def test_softmax_is_shift_invariant(fn, data):
    """On a grid of eighths and integer shifts, x + c is exact: the answers are bit-identical."""
    dtype, shape = data.draw(dtypes), data.draw(shapes())
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = np.round(data.draw(float_arrays(shape, np.float64, big=False, scales=(1.0, 30.0))) * 8) / 8
    c = np.float64(data.draw(st.integers(-1000, 1000)))
    x = x.astype(dtype)
    np.testing.assert_array_equal(fn(x + dtype(c), axis), fn(x, axis))
    # any shift, along the axis only: equal up to the rounding of x + c
    shift = data.draw(float_arrays(np.take(x, [0], axis=axis).shape, dtype, zeros=False, big=False))
    scale = float(np.abs(x).max() + np.abs(shift).max()) + 1
    assert_close(fn(x + shift, axis), fn(x, axis), dtype, shape[axis], scale=scale)


def test_softmax_backward_of_a_constant_upstream_gradient_is_zero():
    # the rows of the softmax Jacobian sum to 0: a backward that forgets "- sum(dY * Y)" fails here
    x = np.random.default_rng(0).standard_normal((3, 5))
    y = F.softmax(x)
    np.testing.assert_allclose(F.softmax_backward(np.full_like(y, 2.5), y), 0, atol=1e-15)
    z = F.log_softmax(x)
    dy = np.random.default_rng(1).standard_normal(z.shape)
    np.testing.assert_allclose(F.log_softmax_backward(dy, z).sum(axis=-1), 0, atol=1e-14)


KERNELS = {
    "linear": lambda x: (F.linear(x, np.ones((2, x.shape[-1]), x.dtype), np.ones(2, x.dtype)),),
    "linear_backward": lambda x: F.linear_backward(x, x, np.ones((x.shape[-1], x.shape[-1]), x.dtype))[:2],
    "relu": lambda x: (F.relu(x), F.relu_backward(x, x)),
    "leaky_relu": lambda x: (F.leaky_relu(x, 0.1), F.leaky_relu_backward(x, x, 0.1)),
    "sigmoid": lambda x: (F.sigmoid(x), F.sigmoid_backward(x, x)),
    "tanh": lambda x: (F.tanh(x), F.tanh_backward(x, x)),
    "softmax": lambda x: (F.softmax(x, 0), F.softmax_backward(x, x, 0)),
    "log_softmax": lambda x: (F.log_softmax(x, 1), F.log_softmax_backward(x, x, 1)),
    "dropout": lambda x: (F.dropout(x, np.full_like(x, 2)), F.dropout_backward(x, np.full_like(x, 2))),
    "cross_entropy": lambda x: (F.cross_entropy(x, np.zeros(x.shape[:1] + x.shape[2:], np.int64), label_smoothing=0.1),
                                F.cross_entropy_backward(None, x, np.zeros(x.shape[:1] + x.shape[2:], np.int64))),
    "cross_entropy_probs": lambda x: (F.cross_entropy(x, np.abs(x)), F.cross_entropy_backward(None, x, np.abs(x))),
    "nll_loss": lambda x: (F.nll_loss(x, np.zeros(x.shape[:1] + x.shape[2:], np.int64)),
                           F.nll_loss_backward(None, x, np.zeros(x.shape[:1] + x.shape[2:], np.int64))),
    "mse_loss": lambda x: (F.mse_loss(x, x[::-1].copy()), F.mse_loss_backward(None, x, x[::-1].copy())),
}


@pytest.mark.parametrize("name", KERNELS)
@given(dtype=dtypes, shape=shapes(min_dims=2, max_dims=3), seed=st.integers(0, 9))
def test_kernels_keep_dtype_and_leave_read_only_strided_inputs_alone(name, dtype, shape, seed):
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    frozen = frozen_strided(x)
    out = KERNELS[name](frozen)
    np.testing.assert_array_equal(frozen, x)
    for a in out:
        assert a.dtype == dtype
    for a, b in zip(out, KERNELS[name](x.copy())):
        np.testing.assert_allclose(a, b, rtol=tolerance(dtype, 64), atol=tolerance(dtype, 64))


# ------------------------------------------------------------------------ bad input

@pytest.mark.parametrize("fn", [F.relu, F.sigmoid, F.tanh, F.softmax, F.log_softmax, lambda a: F.leaky_relu(a, 0.1)],
                         ids=["relu", "sigmoid", "tanh", "softmax", "log_softmax", "leaky_relu"])
@pytest.mark.parametrize("dtype", [np.int64, bool], ids=["int", "bool"])
def test_kernels_refuse_integer_and_boolean_arrays(fn, dtype):
    with refuses(TypeError, "input"):
        fn(np.ones((2, 3), dtype))


def test_linear_kernel_names_the_mismatch():
    with refuses(ValueError, ("input", "weight"), "(2, 3)", "(5, 4)"):   # both shapes, side by side
        F.linear(np.zeros((2, 3)), np.zeros((5, 4)))
    with refuses(TypeError, "weight"):
        F.linear(np.zeros((2, 4)), np.zeros((5, 4), np.float32))
    with refuses(ValueError, "bias"):
        F.linear(np.zeros((2, 4)), np.zeros((5, 4)), np.zeros(4))


def test_dropout_kernel_checks_the_mask():
    with refuses(ValueError, "mask"):
        F.dropout(np.zeros((2, 3)), np.ones(3))
    with refuses(TypeError, "mask"):
        F.dropout(np.zeros((2, 3)), np.ones((2, 3), np.float32))


def test_cross_entropy_kernel_errors():
    x = np.zeros((2, 3))
    with refuses(ValueError, "target", "3"):   # the offending index
        F.cross_entropy(x, np.array([0, 3]))
    with refuses(ValueError, "target", "7"):
        F.cross_entropy_backward(None, x, np.array([7, 0]))
    with refuses(ValueError, "target", "(2, 1)"):   # labels of shape (N, 1): the shape that arrived
        F.nll_loss(x, np.zeros((2, 1), np.int64))
    with refuses(ValueError, "target"):
        F.cross_entropy(x, np.zeros((3, 2)))
    with refuses(ValueError, "target", "[0, 0)"):   # no class at all
        F.cross_entropy(np.zeros((2, 0)), np.zeros(2, np.int64))      # torch: IndexError, target 0 out of bounds


@pytest.mark.parametrize("shape, axis", [((3, 0), -1), ((0, 3), 0), ((0, 3), -1)])
def test_softmax_of_an_empty_axis_is_empty_as_in_torch(shape, axis):
    for fn, tfn in [(F.softmax, torch.softmax), (F.log_softmax, torch.log_softmax)]:
        y = fn(np.zeros(shape, np.float32), axis)
        assert y.shape == tuple(tfn(torch.zeros(shape), axis).shape) and y.dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_backward_keeps_the_shape_of_0d_and_strided_inputs(dtype):
    # A 0-d input once came back as shape (1,): np.ascontiguousarray adds an axis to 0-d arrays.
    dx = F.relu_backward(np.array(2.5, dtype), np.array(1.0, dtype))
    assert dx.shape == () and dx.dtype == dtype and dx == 2.5
    assert F.relu_backward(np.array(np.inf, dtype), np.array(-1.0, dtype)) == 0   # torch: 0, not inf * 0
    X = np.arange(-6, 6, dtype=dtype).reshape(3, 4)[:, ::2]          # non-contiguous
    dY = np.full((3, 4), 3.0, dtype)[:, ::2]
    np.testing.assert_array_equal(F.relu_backward(dY, X), np.where(X > 0, 3.0, 0.0).astype(dtype))


# ----------------------------------------------------- 0-d inputs, zero classes, inf logits

def _same_as_torch(got, want, dtype, where):
    """Values within the kernel tolerance, nan and +-inf in exactly torch's places."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype, (where, got.shape, want.shape, got.dtype)
    for test in (np.isnan, np.isposinf, np.isneginf):
        np.testing.assert_array_equal(test(got), test(want), err_msg=f"{where}: {test.__name__}")
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=tolerance(dtype, 3), atol=tolerance(dtype, 3),
                               err_msg=where)


@pytest.mark.parametrize("value", [3.0, -50.0, np.inf, -np.inf, np.nan], ids=["3", "-50", "inf", "-inf", "nan"])
@pytest.mark.parametrize("axis", [0, -1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_of_a_0d_array_matches_torch(value, axis, dtype):
    # torch: softmax of a 0-d tensor is 1 and log_softmax 0 (nan for inf or nan), gradient 0
    X, dY = np.array(value, dtype), np.array(2.5, dtype)
    for fn, fn_backward, tfn, layer in [(F.softmax, F.softmax_backward, torch.softmax, nn.Softmax),
                                        (F.log_softmax, F.log_softmax_backward, torch.log_softmax, nn.LogSoftmax)]:
        want_y, want_dx = _torch_grad(lambda x: tfn(x, axis), X, dY)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            Y = fn(X, axis)
            dX = fn_backward(dY, Y, axis)
            Y_layer, backward = layer(axis).forward(X)
            dX_layer, grads = backward(dY)
        for got, want, where in [(Y, want_y, "Y"), (dX, want_dx, "dX"), (Y_layer, want_y, "layer Y"),
                                 (dX_layer, want_dx, "layer dX")]:
            _same_as_torch(got, want, dtype, f"{fn.__name__}({value}) {where}")
        assert grads == {}
        np.testing.assert_array_equal(X, np.array(value, dtype))


@pytest.mark.parametrize("fn", [F.softmax, F.log_softmax])
def test_softmax_of_a_0d_array_refuses_other_axes(fn):
    for axis in (1, -2):      # torch: IndexError, dimension out of range [-1, 0]
        with pytest.raises(ValueError, match=r"axis must be in \[-1, 0\] for a 0-d input"):
            fn(np.array(1.0), axis)


def _zero_class_cases():
    """(logits shape, target, kwargs) with zero classes that torch answers without an error."""
    cases = []
    for shape, batch in [((3, 0), (3,)), ((0, 0), (0,)), ((0,), ()), ((0, 0, 4), (0, 4))]:
        for reduction in ("mean", "sum", "none"):
            for eps in (0.0, 0.2):
                for weight in (False, True):
                    kw = dict(reduction=reduction, label_smoothing=eps, weight=weight)
                    cases.append((shape, np.full(batch, -100, np.int64), kw))      # every target ignored
                    cases.append((shape, "probs", kw))
    return cases


@pytest.mark.parametrize("shape, target, kw", _zero_class_cases())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_with_zero_classes_matches_torch(shape, target, kw, dtype):
    # torch (issue 73165): no crash; "mean" is nan (0 / 0), smoothing of index targets nan (eps / 0)
    kw = dict(kw, weight=np.zeros(0, dtype) if kw["weight"] else None)
    logits = np.zeros(shape, dtype)
    target = np.zeros(shape, dtype) if isinstance(target, str) else target
    xt = torch.from_numpy(logits.copy()).requires_grad_()
    tkw = dict(kw, weight=None if kw["weight"] is None else torch.from_numpy(kw["weight"]))
    want = TF.cross_entropy(xt, torch.from_numpy(target), **tkw)
    dloss = np.full(want.shape, 0.7, dtype)
    want.backward(torch.from_numpy(dloss))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = F.cross_entropy(logits, target, **kw)
        dX = F.cross_entropy_backward(dloss, logits, target, **kw)
        loss_fn = nn.CrossEntropyLoss(**kw)
        got_module, backward = loss_fn.forward(logits, target)
        dX_module = backward(dloss)
    for g, w, where in [(got, want.detach().numpy(), "loss"), (got_module, want.detach().numpy(), "module loss"),
                        (dX, xt.grad.numpy(), "dX"), (dX_module, xt.grad.numpy(), "module dX")]:
        _same_as_torch(g, w, dtype, where)
    if target.dtype.kind == "i" and not kw["label_smoothing"]:
        nkw = dict(kw)
        del nkw["label_smoothing"]
        want_nll = TF.nll_loss(torch.from_numpy(logits), torch.from_numpy(target), **dict(nkw, weight=tkw["weight"]))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            _same_as_torch(F.nll_loss(logits, target, **nkw), want_nll.numpy(), dtype, "nll")
            _same_as_torch(nn.NLLLoss(**nkw)(logits, target), want_nll.numpy(), dtype, "NLLLoss")
            assert F.nll_loss_backward(dloss, logits, target, **nkw).shape == shape


_NONFINITE_ROWS = [[np.inf, 0, 1], [-np.inf, 0, 1], [np.inf, np.inf, 0], [-np.inf, -np.inf, -np.inf],
                   [np.inf, -np.inf, 0], [np.nan, 0, 1], [0, 1, 2], [-np.inf, 0, 0], [1e4, -1e4, 0]]


def _nonfinite_cases():
    """(name, npnet f(X, dY) -> (Y, dX), torch f(x) -> y): every kernel a logit reaches."""
    t = np.array([0, 1, 2, 1, 0, 0, 2, 1, 2])
    probs = np.abs(np.random.default_rng(5).standard_normal((len(_NONFINITE_ROWS), 3)))
    probs /= probs.sum(axis=1, keepdims=True)
    cases = [
        ("softmax", lambda X, d: (F.softmax(X), F.softmax_backward(d, F.softmax(X))), lambda x: torch.softmax(x, -1)),
        ("softmax axis 0", lambda X, d: (F.softmax(X, 0), F.softmax_backward(d, F.softmax(X, 0), 0)),
         lambda x: torch.softmax(x, 0)),
        ("log_softmax", lambda X, d: (F.log_softmax(X), F.log_softmax_backward(d, F.log_softmax(X))),
         lambda x: torch.log_softmax(x, -1)),
        ("sigmoid", lambda X, d: (F.sigmoid(X), F.sigmoid_backward(d, F.sigmoid(X))), torch.sigmoid),
        ("tanh", lambda X, d: (F.tanh(X), F.tanh_backward(d, F.tanh(X))), torch.tanh),
        ("leaky_relu", lambda X, d: (F.leaky_relu(X, 0.1), F.leaky_relu_backward(d, X, 0.1)),
         lambda x: TF.leaky_relu(x, 0.1)),
        ("mse_loss", lambda X, d: (F.mse_loss(X, X[::-1], reduction="none"),
                                   F.mse_loss_backward(d, X, X[::-1], reduction="none")),
         lambda x: TF.mse_loss(x, x.detach().flip(0), reduction="none")),
    ]
    for reduction in ("none", "mean", "sum"):
        for kw in (dict(), dict(label_smoothing=0.2), dict(weight=True), dict(target=probs)):
            kw = dict(kw, reduction=reduction)
            target = kw.pop("target", t)

            def ce(X, d, kw=kw, target=target):
                kw = dict(kw, weight=np.array([0.5, 1.0, 2.0], X.dtype) if kw.get("weight") else None)
                target = target.astype(X.dtype) if target.dtype.kind == "f" else target
                d = d[:, 0] if kw["reduction"] == "none" else d[0, 0]
                loss, backward = nn.CrossEntropyLoss(**kw).forward(X, target)
                return (F.cross_entropy(X, target, **kw), F.cross_entropy_backward(d, X, target, **kw),
                        loss, backward(d))

            def torch_ce(x, kw=kw, target=target):
                w = torch.tensor([0.5, 1.0, 2.0], dtype=x.dtype) if kw.get("weight") else None
                tt = torch.from_numpy(target.astype(x.numpy(force=True).dtype) if target.dtype.kind == "f" else target)
                return TF.cross_entropy(x, tt, **dict(kw, weight=w))

            cases.append((f"cross_entropy {target.dtype.kind} {kw}", ce, torch_ce))
    return cases


@pytest.mark.parametrize("name, npnet_fn, torch_fn", _nonfinite_cases(), ids=[c[0] for c in _nonfinite_cases()])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nonfinite_logits_give_torchs_values_without_warnings(name, npnet_fn, torch_fn, dtype):
    X = np.array(_NONFINITE_ROWS, dtype)
    dY = np.random.default_rng(4).standard_normal(X.shape).astype(dtype)
    xt = torch.from_numpy(X.copy()).requires_grad_()
    y = torch_fn(xt)
    d = dY if y.dim() == 2 else (dY[:, 0] if y.dim() == 1 else dY[0, 0])
    y.backward(torch.from_numpy(np.array(d)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")        # a stray RuntimeWarning from NumPy fails here
        got = npnet_fn(X, dY)
    wants = (y.detach().numpy(), xt.grad.numpy()) * (len(got) // 2)
    for i, (g, w) in enumerate(zip(got, wants)):
        _same_as_torch(g, w, dtype, f"{name} output {i}")


# =========================================================================== bad inputs
# Every array and every other argument of the kernels,
# crossed with the bad values of tests/badinput.py (its docstring says what
# SAME, REF, OK, Names and Deviates mean), then the rows the tables cannot express.

from badinput import (  # noqa: E402, F401  (ctx is a fixture)
    ArrayTable, C, CE_INF, CE_INPUT, CE_TARGET, CE_WEIGHT, D0, DLOSS, Deviates,
    E, LINEAR_INPUT, MSE, NLL_TARGET, Names, OK, REF, SKIP, ScalarTable, like_rows, refuses,
    X0, ce_args, ce_back_ref, ce_empty, ce_ref, check_array_row, check_scalar_row, check_special_row,
    ctx, grad_of, labels, mse_args, mse_empty, mse_ref, mseb_ref, nll_args,
    nll_empty, nt, randn, rng, special_params, tt)

aten = torch.ops.aten
ARRAYS = ArrayTable()
add = ARRAYS.add

ELEMENTWISE_ROWS = [
    # name, npnet forward, torch forward, 0-d outcome
    ("relu", F.relu, torch.relu, REF),
    ("leaky_relu", lambda X: F.leaky_relu(X, 0.2), lambda x: TF.leaky_relu(x, 0.2), REF),
    ("sigmoid", F.sigmoid, torch.sigmoid, REF),
    ("tanh", F.tanh, torch.tanh, REF),
    ("softmax", lambda X: F.softmax(X, -1), lambda x: torch.softmax(x, -1), REF),
    ("log_softmax", lambda X: F.log_softmax(X, -1), lambda x: torch.log_softmax(x, -1), REF),
]
for _name, _f, _tf, _zero_d in ELEMENTWISE_ROWS:
    add(f"F.{_name}(input)", lambda a, f=_f: f(a["X"]), lambda: {"X": X0()}, "X", "input",
        ref=lambda a, tf=_tf: nt(tf(tt(a["X"]))), empty=lambda: {"X": randn(0, 5)}, zero_d=_zero_d)

BACKWARD_KERNELS = [
    # name, npnet backward(dY, S), what S is, S from X, torch backward(dY, S)
    ("relu_backward", F.relu_backward, "X", lambda X: X,
     lambda dy, s: aten.threshold_backward(dy, s, 0)),
    ("leaky_relu_backward", lambda dY, X: F.leaky_relu_backward(dY, X, 0.2), "X", lambda X: X,
     lambda dy, s: aten.leaky_relu_backward(dy, s, 0.2, False)),
    ("sigmoid_backward", F.sigmoid_backward, "Y", F.sigmoid, aten.sigmoid_backward),
    ("tanh_backward", F.tanh_backward, "Y", F.tanh, aten.tanh_backward),
    ("softmax_backward", lambda dY, Y: F.softmax_backward(dY, Y, -1), "Y", F.softmax,
     lambda dy, s: aten._softmax_backward_data(dy, s, -1, s.dtype)),
    ("log_softmax_backward", lambda dY, Y: F.log_softmax_backward(dY, Y, -1), "Y", F.log_softmax,
     lambda dy, s: aten._log_softmax_backward_data(dy, s, -1, s.dtype)),
    ("dropout_backward", F.dropout_backward, "mask", lambda X: F.dropout_mask(X.shape, 0.5, rng(3), X.dtype),
     lambda dy, s: dy * s),
]
_RELU_NAN = Deviates(REF, "relu_backward passes no gradient where X is NaN; torch's threshold_backward "
                          "(X <= 0 ? 0 : dY) passes dY there")
_DEVIATES = {"relu_backward": {"nan": _RELU_NAN}}
for _name, _f, _s, _make, _tf in BACKWARD_KERNELS:
    _args = lambda make=_make: {"dY": D0(), "S": make(X0())}   # noqa: E731
    _empty = lambda make=_make: {"dY": randn(0, 5, seed=1), "S": make(randn(0, 5))}   # noqa: E731
    _ref = lambda a, tf=_tf: nt(tf(tt(a["dY"]), tt(a["S"])))   # noqa: E731
    _call = lambda a, f=_f: f(a["dY"], a["S"])   # noqa: E731
    add(f"F.{_name}(dY)", _call, _args, "dY", ref=_ref, empty=_empty,
        **like_rows("dY"))
    # a bad X (Y, mask) no longer matches dY: the message names both
    add(f"F.{_name}({_s})", _call, _args, "S", _s, ref=_ref, empty=_empty, over=_DEVIATES.get(_name, {}),
        **like_rows(("dY", _s)))

# linear and linear_backward
_lin_args = lambda: {"X": randn(4, 3), "W": randn(5, 3, seed=1), "b": randn(5, seed=2)}   # noqa: E731
_lin_empty = lambda: {"X": randn(0, 3), "W": randn(5, 3, seed=1), "b": randn(5, seed=2)}   # noqa: E731
_lin_ref = lambda a: nt(TF.linear(tt(a["X"]), tt(a["W"]), tt(a["b"])))   # noqa: E731
_lin = lambda a: F.linear(a["X"], a["W"], a["b"])   # noqa: E731
add("F.linear(input)", _lin, _lin_args, "X", "input", ref=_lin_ref, empty=_lin_empty, **LINEAR_INPUT)   # as nn.Linear
add("F.linear(weight)", _lin, _lin_args, "W", "weight", ref=_lin_ref,
    empty=lambda: {"X": randn(4, 3), "W": randn(0, 3), "b": randn(0)},
    zero_d=Names(ValueError, "weight"),
    wrong_shape=(lambda v: randn(5, 4), Names(ValueError, ("input", "weight"))),
    mixed=Names(TypeError, "weight"))
add("F.linear(bias)", _lin, _lin_args, "b", "bias", ref=_lin_ref, over={"None": REF},
    zero_d=Names(ValueError, "bias"), wrong_shape=(lambda v: randn(4), Names(ValueError, "bias", "(4,)")),
    mixed=Names(TypeError, "bias"))

_linb_args = lambda: {"dY": randn(4, 5, seed=3), "X": randn(4, 3), "W": randn(5, 3, seed=1)}   # noqa: E731
_linb_empty = lambda: {"dY": randn(0, 5, seed=3), "X": randn(0, 3), "W": randn(5, 3, seed=1)}   # noqa: E731


def _linb_ref(a):
    dX, dW, db = grad_of(lambda X, W, b: TF.linear(X, W, b), X=a["X"], W=a["W"],
                          b=np.zeros(a["W"].shape[0], a["W"].dtype))(a["dY"], ("X", "W", "b"))
    return dX, dW, db


_linb = lambda a: F.linear_backward(a["dY"], a["X"], a["W"])   # noqa: E731
add("F.linear_backward(dY)", _linb, _linb_args, "dY", ref=_linb_ref, empty=_linb_empty,
    **like_rows("dY"))
add("F.linear_backward(X)", _linb, _linb_args, "X", ref=_linb_ref,
    zero_d=Names(ValueError, "X"), wrong_shape=(lambda v: v[:, :-1], Names(ValueError, ("X", "W"))),
    mixed=Names(TypeError, ("dY", "X")))
add("F.linear_backward(W)", _linb, _linb_args, "W", ref=_linb_ref,
    zero_d=Names(ValueError, "W"), wrong_shape=(lambda v: v[:-1], Names(ValueError, ("dY", "W"))),
    mixed=Names(TypeError, ("W", "X")))

# dropout(X, mask)
_do_args = lambda: {"X": X0(), "mask": F.dropout_mask(E, 0.5, rng(3), np.float32)}   # noqa: E731
_do_empty = lambda: {"X": randn(0, 5), "mask": np.zeros((0, 5), np.float32)}   # noqa: E731
_do_ref = lambda a: nt(tt(a["X"]) * tt(a["mask"]))   # noqa: E731
_do = lambda a: F.dropout(a["X"], a["mask"])   # noqa: E731
add("F.dropout(input)", _do, _do_args, "X", "input", ref=_do_ref, empty=_do_empty,
    **like_rows("mask"))   # the mask is checked against the input
add("F.dropout(mask)", _do, _do_args, "mask", ref=_do_ref, empty=_do_empty, **like_rows("mask"))
_ce = lambda a: F.cross_entropy(a["X"], a["t"], weight=a["w"])   # noqa: E731
_ceb = lambda a: F.cross_entropy_backward(a["dloss"], a["X"], a["t"], weight=a["w"])   # noqa: E731
_ceb_args = lambda: {**ce_args(), "dloss": np.array(0.7, np.float32)}   # noqa: E731
_ceb_empty = lambda: {**ce_empty(), "dloss": np.array(0.7, np.float32)}   # noqa: E731
add("F.cross_entropy(input)", _ce, ce_args, "X", "input", ref=ce_ref, empty=ce_empty, **CE_INPUT)
add("F.cross_entropy(target)", _ce, ce_args, "t", "target", ref=ce_ref, empty=ce_empty, **CE_TARGET)
add("F.cross_entropy(weight)", _ce, ce_args, "w", "weight", ref=ce_ref, **CE_WEIGHT)
add("F.cross_entropy_backward(input)", _ceb, _ceb_args, "X", "input", ref=ce_back_ref, empty=_ceb_empty,
    **CE_INPUT)
add("F.cross_entropy_backward(target)", _ceb, _ceb_args, "t", "target", ref=ce_back_ref, empty=_ceb_empty, **CE_TARGET)
add("F.cross_entropy_backward(weight)", _ceb, _ceb_args, "w", "weight", ref=ce_back_ref, **CE_WEIGHT)
add("F.cross_entropy_backward(dloss)", _ceb, _ceb_args, "dloss", ref=ce_back_ref,
    over={"None": REF, "noncontig": SKIP, "inf": CE_INF}, **DLOSS)
_cebl_args = lambda: {**_ceb_args(), "L": F.log_softmax(randn(4, C), 1)}   # noqa: E731
add("F.cross_entropy_backward(log_probs)",
    lambda a: F.cross_entropy_backward(a["dloss"], a["X"], a["t"], weight=a["w"], log_probs=a["L"]),
    _cebl_args, "L", "log_probs", over={"None": OK}, **like_rows("log_probs"))

_nll = lambda a: F.nll_loss(a["X"], a["t"], weight=a["w"])   # noqa: E731
_nll_ref = lambda a: nt(TF.nll_loss(tt(a["X"]), tt(a["t"]).long()))   # noqa: E731
_nllb = lambda a: F.nll_loss_backward(None, a["X"], a["t"])   # noqa: E731
_nllb_ref = lambda a: grad_of(lambda X: TF.nll_loss(X, tt(a["t"]).long()), X=a["X"])(   # noqa: E731
    np.ones((), a["X"].dtype), ("X",))[0]
add("F.nll_loss(input)", _nll, nll_args, "X", "input", ref=_nll_ref, empty=nll_empty,
    zero_d=CE_INPUT["zero_d"], wrong_shape=CE_INPUT["wrong_shape"])
add("F.nll_loss(target)", _nll, nll_args, "t", "target", ref=_nll_ref, empty=nll_empty, **NLL_TARGET)
add("F.nll_loss_backward(input)", _nllb, nll_args, "X", "input", ref=_nllb_ref, empty=nll_empty,
    zero_d=CE_INPUT["zero_d"], wrong_shape=CE_INPUT["wrong_shape"])
add("F.nll_loss_backward(target)", _nllb, nll_args, "t", "target", ref=_nllb_ref, empty=nll_empty, **NLL_TARGET)

_mse = lambda a: F.mse_loss(a["X"], a["Y"])   # noqa: E731
_mseb = lambda a: F.mse_loss_backward(a["dloss"], a["X"], a["Y"])   # noqa: E731
for _fn, _ref, _label in ((_mse, mse_ref, "F.mse_loss"), (_mseb, mseb_ref, "F.mse_loss_backward")):
    add(f"{_label}(input)", _fn, mse_args, "X", "input", ref=_ref, empty=mse_empty, **MSE)
    add(f"{_label}(target)", _fn, mse_args, "Y", "target", ref=_ref, empty=mse_empty, **MSE)
add("F.mse_loss_backward(dloss)", _mseb, lambda: {**mse_args(), "dloss": np.array(1.5, np.float32)}, "dloss",
    ref=mseb_ref, over={"None": REF, "noncontig": SKIP}, **DLOSS)


@pytest.mark.parametrize("arg, bad, outcome", ARRAYS.params())
def test_array_argument(arg, bad, outcome):
    check_array_row(arg, bad, outcome)


SCALARS = ScalarTable()
scalar = SCALARS.add

_X, _DY = X0(), D0()
scalar("F.leaky_relu(negative_slope)", lambda v, c: F.leaky_relu(_X, v), "negative_slope", "real", good=0.2)
scalar("F.leaky_relu_backward(negative_slope)", lambda v, c: F.leaky_relu_backward(_DY, _X, v), "negative_slope", "real")
for _f in ("softmax", "log_softmax"):
    scalar(f"F.{_f}(axis)", lambda v, c, f=getattr(F, _f): f(_X, v), "axis", "int", good=-1, over={"big": Names(ValueError, "axis"),
                                                                                      "negative": OK})
    scalar(f"F.{_f}_backward(axis)", lambda v, c, f=getattr(F, _f + "_backward"): f(_DY, F.softmax(_X), v), "axis", "int",
           over={"big": Names(ValueError, "axis")})
scalar("F.dropout_mask(shape)", lambda v, c: F.dropout_mask(v, 0.5, rng()), "shape", "shape", good=(2, 3),
       over={**{k: OK for k in ("negative", "zero", "one", "big", "list")},
             "negative": Names(ValueError, "shape")})
scalar("F.dropout_mask(p)", lambda v, c: F.dropout_mask((2, 3), v, rng()), "p", "prob", good=0.5)
scalar("F.dropout_mask(rng)", lambda v, c: F.dropout_mask((2, 3), 0.5, v), "rng", "generator?", good=rng())
scalar("F.dropout_mask(dtype)", lambda v, c: F.dropout_mask((2, 3), 0.5, rng(), v), "dtype", "dtype", good=np.float64)
scalar("F.linear_backward(need_dX)", lambda v, c: F.linear_backward(randn(4, 5), randn(4, 3), randn(5, 3), need_dX=v),
       "need_dX", "flag")
scalar("F.linear_backward(need_db)", lambda v, c: F.linear_backward(randn(4, 5), randn(4, 3), randn(5, 3), need_db=v),
       "need_db", "flag")
scalar("F.cross_entropy(ignore_index)", lambda v, c: F.cross_entropy(randn(4, C), labels(4), ignore_index=v),
       "ignore_index", "int")
scalar("F.cross_entropy(reduction)", lambda v, c: F.cross_entropy(randn(4, C), labels(4), reduction=v), "reduction",
       "choice", good="sum")
scalar("F.cross_entropy(label_smoothing)", lambda v, c: F.cross_entropy(randn(4, C), labels(4), label_smoothing=v),
       "label_smoothing", "prob")
scalar("F.nll_loss(reduction)", lambda v, c: F.nll_loss(randn(4, C), labels(4), reduction=v), "reduction", "choice")
scalar("F.nll_loss(ignore_index)", lambda v, c: F.nll_loss(randn(4, C), labels(4), ignore_index=v), "ignore_index", "int")
scalar("F.mse_loss(reduction)", lambda v, c: F.mse_loss(_X, _DY, reduction=v), "reduction", "choice")
scalar("F.mse_loss_backward(reduction)", lambda v, c: F.mse_loss_backward(None, _X, _DY, reduction=v), "reduction",
       "choice")


@pytest.mark.parametrize("s, bad, outcome", SCALARS.params())
def test_other_argument(ctx, s, bad, outcome):
    check_scalar_row(ctx, s, bad, outcome)


SPECIAL = [
    # id, lambda ctx: the call, outcome (REF rows give (call, reference) pairs)
    ("cross_entropy all targets ignored is NaN as torch",
     lambda c: (F.cross_entropy(randn(3, C), np.full(3, -100)),
                nt(TF.cross_entropy(tt(randn(3, C)), torch.full((3,), -100)))), REF),
]


@pytest.mark.parametrize("call, outcome", special_params(SPECIAL))
def test_special_row(ctx, call, outcome):
    check_special_row(ctx, call, outcome)
