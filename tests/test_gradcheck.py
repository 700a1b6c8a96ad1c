"""Finite differences agree with every hand-written gradient, and a deliberately
broken backward is caught by both gradcheck and reference.compare.

Inputs here are moderate normal samples: finite differences straddle a ReLU kink
at 0 and lose digits at 1e4, which is what the torch comparisons are for.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npnet import gradcheck, nn
from reference import compare
from strategies import ce_cases, leading_dims, moderate, shapes, sizes, torch_one_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("torch_one_thread")

# finite differences cost two forwards per entry: keep the examples few and small
few = settings(max_examples=15)


@few
@given(lead=leading_dims(max_dims=2, max_side=3), i=sizes, o=sizes, bias=st.booleans(), seed=st.integers(0, 99))
def test_linear_gradients_agree_with_finite_differences(lead, i, o, bias, seed):
    layer = nn.Linear(i, o, bias=bias, rng=np.random.default_rng(seed), dtype=np.float64)
    result = gradcheck(layer, moderate(lead + (i,), seed=seed))
    assert result.ok, result
    assert set(result.max_abs) == {"input", *layer.params}


@few
@given(shape=shapes(max_dims=3, max_side=4), seed=st.integers(0, 99), data=st.data())
def test_activation_gradients_agree_with_finite_differences(shape, seed, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    module = data.draw(st.sampled_from([nn.ReLU(), nn.LeakyReLU(0.2), nn.Sigmoid(), nn.Tanh(), nn.Softmax(axis),
                                        nn.LogSoftmax(axis), nn.Flatten(0), nn.Dropout(0.5, rng=np.random.default_rng(seed))]))
    x = moderate(shape, seed=seed, away_from_zero=1e-3)     # no finite difference across a kink
    assert gradcheck(module, x).ok


@few
@given(n=sizes, seed=st.integers(0, 99))
def test_sequential_gradients_agree_with_finite_differences(n, seed):
    r = np.random.default_rng(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(6, 4, rng=r), nn.Tanh(), nn.Dropout(0.3, rng=r),
                        nn.Linear(4, 3, rng=r), nn.LogSoftmax())
    assert gradcheck(net, moderate((n, 2, 3), seed=seed)).ok


@few
@given(data=st.data())
def test_loss_gradients_agree_with_finite_differences(data):
    kw, logits, target = data.draw(ce_cases(np.float64))
    logits = moderate(logits.shape, seed=data.draw(st.integers(0, 99)))
    if target.dtype.kind in "iu" and kw["reduction"] == "mean" and np.all(target == kw.get("ignore_index", -100)):
        kw.pop("ignore_index")               # all ignored: the mean is nan, nothing to differentiate
        target = np.zeros_like(target)
    assert gradcheck(nn.CrossEntropyLoss(**kw), logits, target=target).ok
    if target.dtype.kind in "iu":
        kw.pop("label_smoothing", None)
        assert gradcheck(nn.NLLLoss(**kw), logits, target=target).ok
    assert gradcheck(nn.MSELoss(kw["reduction"]), logits, target=moderate(logits.shape, seed=1)).ok


# -------------------------------------------------------------- deliberately broken

def _broken(base, backward_fn):
    """A subclass of ``base`` whose backward is ``backward_fn(self, X, Y, dY) -> (dX, grads)``."""
    class Broken(base):
        def forward(self, X, train=True):
            Y, _ = base.forward(self, X, train)

            def backward(dY, *, need_dx=True):
                return backward_fn(self, X, Y, dY)
            return Y, backward
    Broken.__name__ = f"Broken{base.__name__}"
    return Broken


def _linear_grads(self, X, dY, *, dX=None, dW=None, db=None):
    W = self.params["weight"]
    return (dY @ W if dX is None else dX), {"weight": dY.T @ X if dW is None else dW,
                                            "bias": dY.sum(axis=0) if db is None else db}


BROKEN = {
    # dX = dY W^T instead of dY W (the weight is square, so the shapes still fit)
    "linear dX forgets a transpose": (_broken(nn.Linear, lambda s, X, Y, dY: _linear_grads(s, X, dY, dX=dY @ s.params["weight"].T)),
                                      lambda cls: cls(4, 4, rng=np.random.default_rng(0))),
    # dW = X^T dY instead of dY^T X
    "linear dW forgets a transpose": (_broken(nn.Linear, lambda s, X, Y, dY: _linear_grads(s, X, dY, dW=X.T @ dY)),
                                      lambda cls: cls(4, 4, rng=np.random.default_rng(0))),
    # db = mean of dY instead of the sum: drops the factor N
    "linear db drops a factor": (_broken(nn.Linear, lambda s, X, Y, dY: _linear_grads(s, X, dY, db=dY.mean(axis=0))),
                                 lambda cls: cls(4, 3, rng=np.random.default_rng(0))),
    # db shaped (1, out): the values are right but it would broadcast silently
    "linear db misshapen": (_broken(nn.Linear, lambda s, X, Y, dY: _linear_grads(s, X, dY, db=dY.sum(axis=0, keepdims=True))),
                            lambda cls: cls(4, 3, rng=np.random.default_rng(0))),
    # dX = Y * dY: the softmax backward without "- sum(dY * Y)"
    "softmax misses the subtraction": (_broken(nn.Softmax, lambda s, X, Y, dY: (Y * dY, {})), lambda cls: cls()),
    # dX = dY (1 - Y) instead of dY (1 - Y^2)
    "tanh wrong derivative": (_broken(nn.Tanh, lambda s, X, Y, dY: (dY * (1 - Y), {})), lambda cls: cls()),
    # ReLU passing the gradient where X <= 0 too
    "relu passes everything": (_broken(nn.ReLU, lambda s, X, Y, dY: (dY, {})), lambda cls: cls()),
}


@pytest.mark.parametrize("name", BROKEN)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_broken_backward_is_caught_by_gradcheck_and_compare(name, dtype):
    cls, make = BROKEN[name]
    x = moderate((5, 4), seed=3, away_from_zero=1e-2)
    broken = make(cls)
    assert gradcheck(broken, x).ok is False
    result = compare(broken, x, dtype=dtype)
    assert result.ok is False, str(result)
    assert result.failed
    # the correct module it derives from passes both
    correct = make(cls.__mro__[1])
    assert gradcheck(correct, x).ok is True
    assert compare(correct, x, dtype=dtype).ok is True


def test_broken_loss_backward_is_caught():
    class MeanForgotten(nn.CrossEntropyLoss):      # the "mean" gradient without the 1 / N
        def forward(self, input, target):
            loss, backward = super().forward(input, target)
            return loss, lambda dloss=None: backward(dloss) * input.shape[0]

    x, t = moderate((5, 4), seed=4), np.array([0, 3, 1, 1, 2])
    assert gradcheck(MeanForgotten(), x, target=t).ok is False
    assert compare(MeanForgotten(), x, target=t).ok is False
    assert gradcheck(nn.CrossEntropyLoss(), x, target=t).ok is True
    assert compare(nn.CrossEntropyLoss(), x, target=t).ok is True


def test_broken_layer_inside_a_sequential_is_caught():
    cls, _ = BROKEN["linear db drops a factor"]
    r = np.random.default_rng(5)
    net = nn.Sequential(nn.Linear(3, 4, rng=r), nn.Tanh(), cls(4, 2, rng=r))
    x = moderate((6, 3), seed=5)
    assert gradcheck(net, x).failed == ["2.bias"]
    result = compare(net, x)
    assert not result.ok and [f.split(":")[0] for f in result.failed] == ["2.bias"]


# -------------------------------------------------------------------- gradcheck itself

def test_gradcheck_leaves_the_module_and_input_alone():
    r = np.random.default_rng(6)
    net = nn.Sequential(nn.Linear(3, 4, rng=r), nn.Dropout(0.5, rng=np.random.default_rng(7)), nn.ReLU())
    params = {k: v.copy() for k, v in net.params.items()}
    state = net[1].rng.bit_generator.state
    x = np.random.default_rng(8).standard_normal((2, 3)).astype(np.float32)
    x0 = x.copy()
    result = gradcheck(net, x)
    assert result.ok and bool(result)
    np.testing.assert_array_equal(x, x0)
    assert net.params["0.weight"].dtype == np.float32      # checked on a float64 copy
    for k, v in net.params.items():
        np.testing.assert_array_equal(v, params[k])
    assert net[1].rng.bit_generator.state == state


def test_gradcheck_reports_errors_per_gradient():
    layer = nn.Linear(3, 2, rng=np.random.default_rng(9), dtype=np.float64)
    result = gradcheck(layer, np.random.default_rng(10).standard_normal((4, 3)))
    assert set(result.max_abs) == set(result.max_rel) == {"input", "weight", "bias"}
    assert max(result.max_abs.values()) < 1e-8 and result.failed == []


def test_gradcheck_uses_the_given_upstream_gradient():
    layer = nn.Linear(3, 2, rng=np.random.default_rng(11), dtype=np.float64)
    x = np.random.default_rng(12).standard_normal((4, 3))
    assert gradcheck(layer, x, dy=np.random.default_rng(13).standard_normal((4, 2))).ok
    with pytest.raises(ValueError, match=r"dy must have shape \(4, 2\), got \(2, 4\)"):
        gradcheck(layer, x, dy=np.ones((2, 4)))


def test_gradcheck_argument_errors():
    layer = nn.Linear(3, 2)
    with pytest.raises(TypeError, match=r"x must have dtype float32 or float64"):
        gradcheck(layer, np.ones((2, 3), np.int64))
    with pytest.raises(ValueError, match=r"eps must be in \(0.0, inf\]"):
        gradcheck(layer, np.ones((2, 3)), eps=0.0)
    with pytest.raises(TypeError, match=r"module must be an npnet module or loss"):
        gradcheck(object(), np.ones((2, 3)))


def test_gradcheck_with_zero_atol_does_not_warn():
    layer = nn.Linear(3, 2, rng=np.random.default_rng(14), dtype=np.float64)
    x = np.zeros((2, 3))          # dW is exactly 0 both ways: 0 / max(|0|, atol=0) must not warn
    result = gradcheck(layer, x, atol=0.0, rtol=1e-5)
    assert np.isfinite(result.max_rel["weight"])


# =========================================================================== bad inputs
# Every array and every other argument of gradcheck,
# crossed with the bad values of tests/badinput.py (its docstring says what
# SAME, REF, OK, Names and Deviates mean), then the rows the tables cannot express.

from badinput import (  # noqa: E402, F401  (ctx is a fixture)
    ArrayTable, OK, Names, SAME, ScalarTable, check_array_row, check_scalar_row, check_special_row,
    ctx, randn, rng, special_params)

ARRAYS = ArrayTable()
add = ARRAYS.add

def _gc(a):
    r = gradcheck(a["m"], a["x"], a.get("dy"))
    return r.ok, sorted(r.failed), sorted(r.max_abs)


add("gradcheck(x)", _gc, lambda: {"x": randn(3, 4, dtype=np.float64), "m": nn.Linear(4, 2, rng=rng())}, "x",
    empty=lambda: {"x": randn(0, 4, dtype=np.float64), "m": nn.Linear(4, 2, rng=rng())},
    zero_d=Names(ValueError, "input"), over={"other-float": SAME},
    wrong_shape=(lambda v: v[:, :-1], Names(ValueError, "input")))
add("gradcheck(dy)", _gc, lambda: {"x": randn(3, 4, dtype=np.float64), "m": nn.Linear(4, 2, rng=rng()),
                                   "dy": randn(3, 2, seed=1, dtype=np.float64)}, "dy",
    zero_d=Names(ValueError, "dy"), over={"None": OK, "other-float": SAME},
    wrong_shape=(lambda v: v.T, Names(ValueError, "dy", "(2, 3)")))   # a transposed dy: shows what arrived


@pytest.mark.parametrize("arg, bad, outcome", ARRAYS.params())
def test_array_argument(arg, bad, outcome):
    check_array_row(arg, bad, outcome)


SCALARS = ScalarTable()
scalar = SCALARS.add

_lin = lambda: nn.Linear(4, 2, rng=rng())   # noqa: E731
_gx = randn(3, 4, dtype=np.float64)
scalar("gradcheck(module)", lambda v, c: gradcheck(v, _gx), "module", "module")
scalar("gradcheck(eps)", lambda v, c: gradcheck(_lin(), _gx, eps=v), "eps", "real>0",
       over={"big": OK, "one": OK, "above-one": OK})
scalar("gradcheck(rtol)", lambda v, c: gradcheck(_lin(), _gx, rtol=v), "rtol", "real>=0")
scalar("gradcheck(atol)", lambda v, c: gradcheck(_lin(), _gx, atol=v), "atol", "real>=0")
scalar("gradcheck(train)", lambda v, c: gradcheck(_lin(), _gx, train=v), "train", "flag")
scalar("gradcheck(seed)", lambda v, c: gradcheck(_lin(), _gx, seed=v), "seed", "int>=0")
scalar("gradcheck(target)", lambda v, c: gradcheck(_lin(), _gx, target=v), "target", "array?")
scalar("gradcheck(loss, target=)", lambda v, c: gradcheck(nn.MSELoss(), _gx, target=v), "target", "array",
       over={"array": Names(ValueError, "target")})


@pytest.mark.parametrize("s, bad, outcome", SCALARS.params())
def test_other_argument(ctx, s, bad, outcome):
    check_scalar_row(ctx, s, bad, outcome)


SPECIAL = [
    # id, lambda ctx: the call, outcome (REF rows give (call, reference) pairs)
    ("gradcheck(loss) without target", lambda c: gradcheck(nn.MSELoss(), randn(2, 3)),
     Names(TypeError, "target")),
]


@pytest.mark.parametrize("call, outcome", special_params(SPECIAL))
def test_special_row(ctx, call, outcome):
    check_special_row(ctx, call, outcome)
