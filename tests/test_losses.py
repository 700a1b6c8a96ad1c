"""Loss modules against torch (through reference.compare), their properties and their errors.

torch runs on one thread here (the torch_one_thread fixture).
"""
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from npnet import nn
from reference import compare
from strategies import (  # noqa: F401  (torch_one_thread is a fixture)
    batch_shape, ce_cases, dtypes, float_arrays, frozen_strided, shapes, torch_one_thread, upstream,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _dloss(data, kw, logits_shape, dtype):
    shape = batch_shape(logits_shape) if kw.get("reduction") == "none" else ()
    return data.draw(upstream(shape, dtype))


@given(st.data())
def test_cross_entropy_matches_torch(data):
    dtype = data.draw(dtypes)
    kw, logits, target = data.draw(ce_cases(dtype))
    loss = nn.CrossEntropyLoss(**kw)
    result = compare(loss, logits, _dloss(data, kw, logits.shape, dtype), dtype=dtype, target=target)
    assert result.ok, str(result)


@given(st.data())
def test_nll_loss_matches_torch(data):
    dtype = data.draw(dtypes)
    kw, log_probs, target = data.draw(ce_cases(dtype, nll=True))
    loss = nn.NLLLoss(**kw)
    result = compare(loss, log_probs, _dloss(data, kw, log_probs.shape, dtype), dtype=dtype, target=target)
    assert result.ok, str(result)


@given(st.data())
def test_mse_loss_matches_torch(data):
    dtype = data.draw(dtypes)
    shape = data.draw(shapes())
    reduction = data.draw(st.sampled_from(["mean", "sum", "none"]))
    x, t = data.draw(float_arrays(shape, dtype)), data.draw(float_arrays(shape, dtype))
    dloss = data.draw(upstream(shape if reduction == "none" else (), dtype))
    result = compare(nn.MSELoss(reduction), x, dloss, dtype=dtype, target=t)
    assert result.ok, str(result)


@given(st.data())
def test_cross_entropy_is_never_negative(data):
    dtype = data.draw(dtypes)
    kw, logits, target = data.draw(ce_cases(dtype))
    loss = nn.CrossEntropyLoss(**kw)(logits, target)
    assert loss.dtype == dtype
    assert np.all((loss >= 0) | np.isnan(loss))
    if kw["reduction"] != "mean" or target.dtype.kind == "f":
        assert np.all(np.isfinite(loss))     # only "mean" over nothing but ignored targets is nan


@given(st.data())
def test_float32_logits_up_to_1e4_stay_finite_and_match_torch(data):
    kw, logits, target = data.draw(ce_cases(np.float32))
    logits = np.clip(logits * np.float32(1e4 / max(1.0, float(np.abs(logits).max()))), -1e4, 1e4)
    loss = nn.CrossEntropyLoss(**kw)
    value, backward = loss.forward(logits, target)
    assert np.all(np.isfinite(backward(_dloss(data, kw, logits.shape, np.float32))))
    every_target_ignored = target.dtype.kind in "iu" and np.all(target == kw.get("ignore_index", -100))
    if not (every_target_ignored and kw["reduction"] == "mean"):
        assert np.all(np.isfinite(value))
    result = compare(loss, logits, dtype=np.float32, target=target)
    assert result.ok, str(result)


# ------------------------------------------------------------------- torch's edge cases

@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("weighted", [False, True])
def test_every_target_ignored_gives_nan_mean_and_zero_gradient(smoothing, weighted):
    x = np.random.default_rng(0).standard_normal((3, 4))
    t = np.full(3, -100)
    kw = {"label_smoothing": smoothing, "weight": np.array([1.0, 2.0, 0.5, 1.0]) if weighted else None}
    value, backward = nn.CrossEntropyLoss(**kw).forward(x, t)
    assert np.isnan(value)
    np.testing.assert_array_equal(backward(), np.zeros_like(x))
    assert compare(nn.CrossEntropyLoss(**kw), x, target=t).ok
    value, backward = nn.NLLLoss().forward(x, t)
    assert np.isnan(value)
    np.testing.assert_array_equal(backward(), np.zeros_like(x))
    for reduction in ("sum", "none"):
        value, backward = nn.CrossEntropyLoss(reduction=reduction, **kw).forward(x, t)
        np.testing.assert_array_equal(value, np.zeros(value.shape))
        np.testing.assert_array_equal(backward(np.ones(value.shape) * 2.5), np.zeros_like(x))


def test_zero_total_weight_is_nan_where_torch_is_nan():
    # kept targets whose class weight is 0: the mean divides 0 by 0
    x = np.random.default_rng(1).standard_normal((3, 4))
    t = np.array([0, 0, -100])
    w = np.array([0.0, 1.0, 1.0, 1.0])
    for loss in (nn.CrossEntropyLoss(weight=w), nn.NLLLoss(weight=w)):
        result = compare(loss, x, target=t)
        assert result.ok, str(result)


def test_unbatched_logits_with_scalar_target():
    x = np.array([0.5, -1.0, 2.0])
    value, backward = nn.CrossEntropyLoss().forward(x, np.array(2))
    assert value.shape == ()
    expected = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(2))
    np.testing.assert_allclose(value, expected.item(), rtol=1e-14)
    assert compare(nn.CrossEntropyLoss(reduction="none"), x, target=np.array(2)).ok


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_losses_keep_dtype_and_leave_inputs_unchanged(dtype):
    r = np.random.default_rng(2)
    x = r.standard_normal((4, 3, 2)).astype(dtype)
    t = r.integers(0, 3, (4, 2))
    probs = np.full(x.shape, 1 / 3, dtype)
    w = np.array([0.5, 1.0, 2.0], dtype)
    cases = [(nn.CrossEntropyLoss(weight=w, label_smoothing=0.1), t), (nn.CrossEntropyLoss(), probs),
             (nn.NLLLoss(weight=w), t), (nn.MSELoss(), r.standard_normal(x.shape).astype(dtype))]
    for loss, target in cases:
        x0, target0 = x.copy(), target.copy()
        value, backward = loss.forward(frozen_strided(x), frozen_strided(target))
        grad = backward()
        assert value.dtype == dtype and grad.dtype == dtype and grad.shape == x.shape
        np.testing.assert_array_equal(x, x0)
        np.testing.assert_array_equal(target, target0)
        np.testing.assert_array_equal(backward(), grad)                 # repeatable
        value2, backward2 = loss.forward(x.copy(), target.copy())       # same on plain arrays
        np.testing.assert_allclose(value2, value, rtol=1e-6 if dtype == np.float32 else 1e-14)


def test_uint8_and_int32_targets_are_class_indices():
    x = np.random.default_rng(3).standard_normal((5, 4))
    t = np.array([0, 3, 2, 1, 3])
    ref = nn.CrossEntropyLoss()(x, t)
    for dtype in (np.uint8, np.int32, np.int16):
        np.testing.assert_array_equal(nn.CrossEntropyLoss()(x, t.astype(dtype)), ref)


# ------------------------------------------------------------------------ bad input

def test_target_out_of_range_is_a_value_error_naming_the_class():
    x = np.zeros((3, 4))
    with refuses(ValueError, ("target", "ignore_index"), "4"):   # the offending index
        nn.CrossEntropyLoss()(x, np.array([0, 4, 1]))
    with refuses(ValueError, "target", "-1"):
        nn.NLLLoss()(x, np.array([0, -1, 1]))
    nn.CrossEntropyLoss(ignore_index=-1)(x, np.array([0, -1, 1]))      # -1 is fine when ignored


def test_batch_shape_mismatch_is_a_value_error():
    with refuses(ValueError, "target", "(2,)"):   # the shape that arrived
        nn.CrossEntropyLoss()(np.zeros((3, 4)), np.array([0, 1]))
    with refuses(ValueError, "target", "(3, 5)"):   # the expected (N, d1) of a (N, C, d1) input
        nn.NLLLoss()(np.zeros((3, 4, 5)), np.array([0, 1, 2]))


def test_probability_target_of_wrong_shape_is_a_value_error():
    with refuses(ValueError, "target", "(3, 5)"):
        nn.CrossEntropyLoss()(np.zeros((3, 4)), np.full((3, 5), 0.2))


@pytest.mark.parametrize("bad_logits", [np.zeros((3, 4), np.int64), np.zeros((3, 4), bool)], ids=["int", "bool"])
def test_integer_or_boolean_logits_are_type_errors(bad_logits):
    for loss in (nn.CrossEntropyLoss(), nn.NLLLoss()):
        with pytest.raises(TypeError, match=r"input must have dtype float32 or float64"):
            loss(bad_logits, np.array([0, 1, 2]))
    with pytest.raises(TypeError, match=r"input must have dtype float32 or float64"):
        nn.MSELoss()(bad_logits, np.zeros((3, 4)))


def test_boolean_or_mistyped_targets_are_type_errors():
    x = np.zeros((3, 4))
    with refuses(TypeError, "target"):
        nn.CrossEntropyLoss()(x, np.array([True, False, True]))
    with refuses(TypeError, "target"):
        nn.CrossEntropyLoss()(x, np.full((3, 4), 0.25, np.float32))
    with refuses(TypeError, "target"):
        nn.NLLLoss()(x, np.full((3, 4), 0.25))
    with pytest.raises(TypeError, match=r"target must be a numpy.ndarray"):
        nn.CrossEntropyLoss()(x, [0, 1, 2])
    with pytest.raises(TypeError, match=r"target must have dtype float32 or float64"):
        nn.MSELoss()(x, np.zeros((3, 4), np.int64))


def test_bad_loss_arguments():
    with refuses(ValueError, "reduction", "'avg'"):
        nn.CrossEntropyLoss(reduction="avg")
    with refuses(ValueError, "label_smoothing"):
        nn.CrossEntropyLoss(label_smoothing=1.5)
    with refuses(ValueError, "weight"):
        nn.CrossEntropyLoss(weight=np.ones(3))(np.zeros((2, 4)), np.array([0, 1]))
    with refuses(ValueError, "target"):
        nn.MSELoss()(np.zeros((2, 4)), np.zeros((2, 3)))


@pytest.mark.parametrize("loss, target", [
    (nn.CrossEntropyLoss(), np.array([0, 1])), (nn.NLLLoss(), np.array([0, 1])), (nn.MSELoss(), np.zeros((2, 3))),
], ids=["cross_entropy", "nll", "mse"])
def test_dloss_of_wrong_shape_or_dtype(loss, target):
    _, backward = loss.forward(np.zeros((2, 3)), target)
    with refuses(ValueError, "dloss"):
        backward(np.ones(2))
    with refuses(TypeError, "dloss"):
        backward(np.ones((), np.float32))
    with refuses(TypeError, "dloss"):
        backward(1.0)


@pytest.mark.parametrize("value", [2**64 - 100, 2**63], ids=["2**64-100", "2**63"])
@pytest.mark.parametrize("loss", [nn.CrossEntropyLoss(), nn.NLLLoss(), nn.CrossEntropyLoss(ignore_index=-100, reduction="sum")],
                         ids=["cross_entropy", "nll", "cross_entropy-sum"])
def test_uint64_targets_that_do_not_fit_int64_are_refused_as_given(value, loss):
    # 2**64 - 100 once wrapped around to -100 == ignore_index and dropped out of the mean;
    # torch refuses uint64 targets outright, npnet the values that do not fit int64.
    x = np.random.default_rng(6).standard_normal((3, 4))
    target = np.array([1, value, 2], np.uint64)
    with refuses(ValueError, "target", str(value)):   # the index as given, never wrapped around
        loss(x, target)
    small = np.array([1, 3, 2], np.uint64)                     # uint64 values that fit are class indices
    np.testing.assert_array_equal(loss(x, small), loss(x, small.astype(np.int64)))


def test_large_uint32_targets_are_out_of_range_not_wrapped():
    x = np.zeros((2, 4))
    with refuses(ValueError, "target", str(2**32 - 100)):
        nn.CrossEntropyLoss()(x, np.array([0, 2**32 - 100], np.uint32))


# =========================================================================== bad inputs
# Every array and every other argument of the loss modules,
# crossed with the bad values of tests/badinput.py (its docstring says what
# SAME, REF, OK, Names and Deviates mean), then the rows the tables cannot express.

import torch.nn.functional as TF  # noqa: E402
from badinput import (  # noqa: E402, F401  (ctx is a fixture)
    ArrayTable, C, CE_INF, CE_INPUT, CE_TARGET, CE_WEIGHT, DLOSS, MSE, NLL_TARGET,
    OK, REF, Names, SKIP, refuses, ScalarTable, ce_args, ce_back_ref, ce_empty,
    ce_ref, check_array_row, check_scalar_row, check_special_row, ctx, grad_of, labels, mse_args,
    mse_empty, mse_ref, mseb_ref, nll_args, nll_empty, nt, randn, special_params,
    tt)

ARRAYS = ArrayTable()
add = ARRAYS.add

# losses: forward(input, target), the backward closure (dloss), the constructor's weight
_LOSSES = [
    ("CrossEntropyLoss", lambda w: nn.CrossEntropyLoss(weight=w), ce_args, ce_empty, CE_TARGET, ce_ref, ce_back_ref),
    ("NLLLoss", lambda w: nn.NLLLoss(weight=w), lambda: {**nll_args(), "w": np.linspace(0.5, 2, C).astype(np.float32)},
     lambda: {**nll_empty(), "w": np.linspace(0.5, 2, C).astype(np.float32)}, NLL_TARGET,
     lambda a: nt(TF.nll_loss(tt(a["X"]), tt(a["t"]).long(), weight=tt(a["w"]))),
     lambda a: grad_of(lambda X: TF.nll_loss(X, tt(a["t"]).long(), weight=tt(a["w"])), X=a["X"])(
         a["dloss"] if a["dloss"] is not None else np.ones((), a["X"].dtype), ("X",))[0]),
]
for _id, _make, _args, _empty, _target, _ref, _bref in _LOSSES:
    _fwd = lambda a, make=_make: make(a["w"]).forward(a["X"], a["t"])[0]   # noqa: E731
    add(f"{_id}.forward(input)", _fwd, _args, "X", "input", ref=_ref, empty=_empty, **CE_INPUT)
    add(f"{_id}()(input)", lambda a, make=_make: make(a["w"])(a["X"], a["t"]), _args, "X", "input", ref=_ref,
        empty=_empty, **CE_INPUT)
    add(f"{_id}.forward(target)", _fwd, _args, "t", "target", ref=_ref, empty=_empty, **_target)
    add(f"{_id}(weight=)", _fwd, _args, "w", "weight", ref=_ref,
        **CE_WEIGHT)
    add(f"{_id}.forward(...)[1](dloss)", lambda a, make=_make: make(a["w"]).forward(a["X"], a["t"])[1](a["dloss"]),
        lambda args=_args: {**args(), "dloss": np.array(0.7, np.float32)}, "dloss", ref=_bref,
        over={"None": REF, "noncontig": SKIP, **({"inf": CE_INF} if _id == "CrossEntropyLoss" else {})}, **DLOSS)
_msem = lambda a: nn.MSELoss().forward(a["X"], a["Y"])[0]   # noqa: E731
add("MSELoss.forward(input)", _msem, mse_args, "X", "input", ref=mse_ref, empty=mse_empty, **MSE)
add("MSELoss.forward(target)", _msem, mse_args, "Y", "target", ref=mse_ref, empty=mse_empty, **MSE)
add("MSELoss.forward(...)[1](dloss)", lambda a: nn.MSELoss().forward(a["X"], a["Y"])[1](a["dloss"]),
    lambda: {**mse_args(), "dloss": np.array(1.5, np.float32)}, "dloss", ref=mseb_ref,
    over={"None": REF, "noncontig": SKIP}, **DLOSS)


@pytest.mark.parametrize("arg, bad, outcome", ARRAYS.params())
def test_array_argument(arg, bad, outcome):
    check_array_row(arg, bad, outcome)


SCALARS = ScalarTable()
scalar = SCALARS.add

scalar("CrossEntropyLoss(weight)", lambda v, c: nn.CrossEntropyLoss(weight=v), "weight", "array?", over={"array": OK})
scalar("CrossEntropyLoss(ignore_index)", lambda v, c: nn.CrossEntropyLoss(ignore_index=v), "ignore_index", "int")
scalar("CrossEntropyLoss(reduction)", lambda v, c: nn.CrossEntropyLoss(reduction=v), "reduction", "choice")
scalar("CrossEntropyLoss(label_smoothing)", lambda v, c: nn.CrossEntropyLoss(label_smoothing=v), "label_smoothing",
       "prob")
scalar("NLLLoss(weight)", lambda v, c: nn.NLLLoss(weight=v), "weight", "array?", over={"array": OK})
scalar("NLLLoss(ignore_index)", lambda v, c: nn.NLLLoss(ignore_index=v), "ignore_index", "int")
scalar("NLLLoss(reduction)", lambda v, c: nn.NLLLoss(reduction=v), "reduction", "choice")
scalar("MSELoss(reduction)", lambda v, c: nn.MSELoss(reduction=v), "reduction", "choice")


@pytest.mark.parametrize("s, bad, outcome", SCALARS.params())
def test_other_argument(ctx, s, bad, outcome):
    check_scalar_row(ctx, s, bad, outcome)


def _empty_batch_losses():
    """Every loss over an empty batch, as torch: mean NaN, sum 0, none (0,); gradients (0, C)."""
    X, t = randn(0, C), labels(0)
    out = {}
    for reduction in ("mean", "sum", "none"):
        for name, loss in (("ce", nn.CrossEntropyLoss(reduction=reduction)), ("nll", nn.NLLLoss(reduction=reduction)),
                           ("mse", nn.MSELoss(reduction=reduction))):
            value, backward = loss.forward(X, randn(0, C) if name == "mse" else t)
            out[f"{name}-{reduction}"] = (value, backward())
    return out


def _empty_batch_torch():
    out = {}
    for reduction in ("mean", "sum", "none"):
        for name, f in (("ce", TF.cross_entropy), ("nll", TF.nll_loss), ("mse", TF.mse_loss)):
            x = torch.zeros((0, C), requires_grad=True)
            value = f(x, torch.zeros((0, C)) if name == "mse" else torch.zeros(0, dtype=torch.long), reduction=reduction)
            value.backward(torch.ones_like(value))
            out[f"{name}-{reduction}"] = (nt(value), nt(x.grad))
    return out


SPECIAL = [
    # id, lambda ctx: the call, outcome (REF rows give (call, reference) pairs)
    ("every loss over an empty batch, as torch", lambda c: (_empty_batch_losses(), _empty_batch_torch()), REF),
]


@pytest.mark.parametrize("call, outcome", special_params(SPECIAL))
def test_special_row(ctx, call, outcome):
    check_special_row(ctx, call, outcome)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_impossible_targets_under_full_smoothing_and_ignored_nan_rows_give_torchs_values(dtype):
    # label_smoothing=1 at a target whose logit is -inf: torch computes 0 * inf = nan
    # for that row (npnet once gave inf); a row NLLLoss ignores adds exactly 0 even
    # when its log-probabilities are nan (npnet once gave nan: 0 * nan).
    x = np.array([[0.1, -0.1], [0.6, 0.1], [-0.5, -np.inf]], dtype)
    t = np.array([1, 1, 1])
    got = nn.CrossEntropyLoss(reduction="none", label_smoothing=1.0)(x, t)
    want = torch.nn.functional.cross_entropy(torch.from_numpy(x), torch.from_numpy(t), reduction="none",
                                             label_smoothing=1.0).numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[:2], want[:2], rtol=1e-6)
    L = np.array([[np.nan, np.nan], [-0.5, -1.0]], dtype)
    t = np.array([-100, 0])
    got = nn.NLLLoss(reduction="none")(L, t)
    want = torch.nn.functional.nll_loss(torch.from_numpy(L), torch.from_numpy(t), reduction="none").numpy()
    np.testing.assert_array_equal(got, want)
    assert nn.NLLLoss(reduction="sum")(L, t) == 0.5
