"""Robustness: what npnet does with wrong shapes, dtypes, values and types, bad files, bad flags and full disks.

Read this file as tables. Every row is (a lambda that makes the call, a bad
input, the expected outcome) with an id; pytest runs one test per row.

1. ``ARRAYS`` x ``BAD_ARRAYS``: every array argument of every public function,
   module forward, backward closure, loss, optimizer constructor and step,
   initializer, gradcheck, data and train function, crossed with int, bool,
   object, complex and float16 dtypes, NaN, inf, an empty batch, non-contiguous
   and read-only copies, 0-d arrays, a wrong shape, the other float dtype,
   lists, None, strings and plain numbers.
2. ``SCALARS`` x ``BAD_SCALARS``: every other argument (sizes, rates, flags,
   choices, generators, dtypes, paths, callables, modules, loaders...) crossed
   with None, strings, lists, bools, complex, NaN, inf, negatives, fractions...
3. ``SPECIAL``: rows the cross products cannot express (dict keys, mismatched
   pairs, whole-loader faults...).
4. The checkpoint loader under hypothesis: arbitrary bytes, mutated bytes of a
   real checkpoint, arbitrary arrays under a valid checksum; and a bound on what
   it allocates for a header that claims a huge array.
5. The CLI: every numeric flag with every kind of bad value, corrupt data sets,
   failed runs (exit statuses 2 and 1, one line, --debug for the traceback).
6. Files: nothing written outside --out and the cache, --out used as given, a
   full disk while saving (checkpoints, data downloads, the CLI's text files).

Outcomes:

- ``SAME``: the result equals that of the good (contiguous, writable) input.
  Read-only and non-contiguous inputs must always give it.
- ``REF``: the result equals the row's reference (torch where torch computes),
  NaN and inf in the same places: how NaN, inf and empty batches are judged.
- ``OK``: returns without an error (no reference to compare with).
- ``Raises(TypeError | ValueError, match)``: the message names the argument
  (``match``) and says what was expected and what arrived.

Every call is also checked to leave its inputs unchanged (copies compared
before and after), and no row may raise AssertionError, IndexError, KeyError,
AttributeError or ZeroDivisionError.

Empty batch (N = 0), decided as torch decides:

- forwards map (0, ...) to (0, ...): ``Linear`` (0, in) -> (0, out), activations,
  softmax over a non-empty axis, ``Flatten``, ``Dropout``, ``Sequential``;
  backwards return (0, ...) input gradients and zero parameter gradients.
- losses: ``reduction="mean"`` over no sample is NaN (0 / 0, as torch);
  ``"sum"`` is 0; ``"none"`` is (0,); their gradients are (0, C).
- optimizers accept (0, ...) parameters and step them (nothing to do).
- ``DataLoader`` over 0 samples yields no batch; ``train_epoch`` and
  ``evaluate`` then refuse ("no batches"), and a loader that yields an empty
  batch is refused (its mean loss would be NaN and look like divergence).
- ``kfold``/``get_k_fold_data`` need n >= k (no empty fold).
"""
import copy
import dataclasses
import errno
import gzip
import hashlib
import io
import math
import os
import re
import signal
import struct
import subprocess
import sys
import textwrap
import tracemalloc
import zipfile
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from npnet import _io, cli, data, gradcheck, nn, optim, plots
from npnet import checkpoint as CK
from npnet import train as T
from npnet.errors import CheckpointError, DataError, DownloadError
from npnet.nn import functional as F
from npnet.nn import init
from reference.twins import twin
import idxdata
from strategies import torch_one_thread  # noqa: F401  (a fixture)

pytestmark = [pytest.mark.usefixtures("torch_one_thread"),
              pytest.mark.filterwarnings("ignore:mean is more than 2 std:UserWarning")]   # trunc_normal_(mean=7), as torch

aten = torch.ops.aten
FORBIDDEN = (AssertionError, IndexError, KeyError, AttributeError, ZeroDivisionError)


# =========================================================================== helpers

def randn(*shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def labels(n, C=5, seed=0):
    return np.random.default_rng(seed).integers(0, C, n).astype(np.int64)


def tt(a):
    """numpy -> torch (a copy; None stays None)."""
    return None if a is None else torch.from_numpy(np.array(a))


def nt(t):
    return None if t is None else t.detach().numpy().copy()


def rng(seed=0):
    return np.random.default_rng(seed)


@dataclass(frozen=True)
class Raises:
    exc: Any
    match: str

    def __repr__(self):
        names = "|".join(e.__name__ for e in (self.exc if isinstance(self.exc, tuple) else (self.exc,)))
        return f"Raises({names}, {self.match!r})"


SAME, REF, OK = "SAME", "REF", "OK"
SKIP = None


@dataclass(frozen=True)
class Deviates:
    """The outcome npnet should have, and why it does not yet: the row runs as a strict xfail,
    so it fails loudly the day the deviation is fixed (then replace it by the plain outcome)."""
    outcome: Any
    reason: str


def rows_to_params(rows, ids):
    out = []
    for row, id_ in zip(rows, ids):
        *head, outcome = row
        if isinstance(outcome, Deviates):
            out.append(pytest.param(*head, outcome.outcome, id=id_,
                                    marks=pytest.mark.xfail(strict=True, reason=outcome.reason)))
        else:
            out.append(pytest.param(*row, id=id_))
    return out


def named(name):
    """A regex: the argument's name as a whole word."""
    return rf"(?<![\w.]){re.escape(name)}(?!\w)"


def snapshot(x):
    """A deep copy of what a call must not change (arrays, containers, module parameters)."""
    if isinstance(x, np.ndarray):
        return ("array", x.dtype, x.shape, x.copy(), x.flags.writeable)
    if isinstance(x, dict):
        return ("dict", {k: snapshot(v) for k, v in x.items()})
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, [snapshot(v) for v in x])
    if isinstance(x, nn.Module):
        return ("module", snapshot(x.params))
    if isinstance(x, optim.Optimizer):
        return ("optimizer", snapshot(x.params), snapshot(x.state), snapshot(x.param_groups))
    if isinstance(x, (int, float, str, bytes, type(None), complex, bool)):
        return ("value", x)
    return ("object", id(x))


def assert_unchanged(before, after, where="input"):
    assert before[0] == after[0], where
    if before[0] == "array":
        _, dtype, shape, values, writeable = before
        assert (after[1], after[2], after[4]) == (dtype, shape, writeable), f"{where} changed dtype/shape/flags"
        if dtype.kind in "fc":
            assert np.array_equal(values, after[3], equal_nan=True), f"{where} was modified"
        else:
            assert np.array_equal(values, after[3]), f"{where} was modified"
    elif before[0] == "dict":
        assert before[1].keys() == after[1].keys(), f"{where}: keys changed"
        for k in before[1]:
            assert_unchanged(before[1][k], after[1][k], f"{where}[{k!r}]")
    elif before[0] in ("list", "tuple"):
        assert len(before[1]) == len(after[1]), f"{where}: length changed"
        for i, (b, a) in enumerate(zip(before[1], after[1])):
            assert_unchanged(b, a, f"{where}[{i}]")
    elif before[0] == "module":
        assert_unchanged(before[1], after[1], f"{where}.params")
    elif before[0] == "optimizer":
        for b, a, part in zip(before[1:], after[1:], ("params", "state", "param_groups")):
            assert_unchanged(b, a, f"{where}.{part}")
    elif before[0] == "value":
        assert before[1] == after[1] or (before[1] != before[1] and after[1] != after[1]), where


def assert_same(got, want, *, exact=True, where="result"):
    """Equal results, recursively: arrays (dtype, shape, values; NaN and inf in the same places)."""
    if isinstance(want, np.ndarray) or isinstance(got, np.ndarray):
        if isinstance(got, np.generic) and np.ndim(want) == 0:
            got = np.asarray(got)   # NumPy's ufuncs return a scalar for a 0-d array (same dtype, same value)
        assert isinstance(got, np.ndarray), f"{where}: expected an ndarray, got {type(got).__name__}"
        want = np.asarray(want)
        assert got.shape == want.shape, f"{where}: shape {got.shape} != {want.shape}"
        assert got.dtype == want.dtype, f"{where}: dtype {got.dtype} != {want.dtype}"
        if got.dtype.kind != "f":
            np.testing.assert_array_equal(got, want, err_msg=where)
        elif exact:
            np.testing.assert_array_equal(got, want, err_msg=where)   # NaN == NaN here
        else:
            eps = float(np.finfo(got.dtype).eps)
            finite = np.abs(want[np.isfinite(want)])
            scale = max(1.0, float(finite.max(initial=0.0)))
            np.testing.assert_allclose(got, want, rtol=64 * eps, atol=64 * eps * scale, equal_nan=True,
                                       err_msg=where)
            assert np.array_equal(np.isnan(got), np.isnan(want)), f"{where}: NaN in other places"
            assert np.array_equal(np.isposinf(got), np.isposinf(want)), f"{where}: +inf in other places"
            assert np.array_equal(np.isneginf(got), np.isneginf(want)), f"{where}: -inf in other places"
    elif isinstance(want, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(want), f"{where}: keys {sorted(got)} != {sorted(want)}"
        for k in want:
            assert_same(got[k], want[k], exact=exact, where=f"{where}[{k!r}]")
    elif isinstance(want, (list, tuple)):
        assert isinstance(got, (list, tuple)) and len(got) == len(want), f"{where}: {got!r} != {want!r}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, exact=exact, where=f"{where}[{i}]")
    elif dataclasses.is_dataclass(want):
        assert_same(dataclasses.asdict(got), dataclasses.asdict(want), exact=exact, where=where)
    elif isinstance(want, float) and math.isnan(want):
        assert isinstance(got, float) and math.isnan(got), f"{where}: {got!r} != nan"
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


def check_raises(outcome, call):
    """Run call, expecting ``outcome`` (a Raises); the message must say what arrived or was expected."""
    with pytest.raises(outcome.exc, match=outcome.match) as info:
        call()
    assert not isinstance(info.value, FORBIDDEN), f"{type(info.value).__name__} reached the user: {info.value}"
    message = str(info.value)
    assert re.search(r"\b(got|expected|expects|must|needs|not|no|refused|only|cannot|allowed|would)\b", message), message
    assert "\n" not in message.strip() or isinstance(info.value, DataError), message
    return info.value


# =========================================================================== 1. array arguments

@dataclass
class Arg:
    """One array argument of one entry point.

    ``args()`` builds fresh good arguments as a dict; ``call(a)`` makes the call
    and returns what is observable (the result, or the parameters a step
    wrote); ``pos`` is the path of the argument under test inside ``a`` (a key,
    or (key, subkey) for a dict argument); ``name`` is how messages call it.
    """

    id: str
    call: Callable
    args: Callable
    pos: tuple
    name: str
    kind: str = "float"          # "float": float32/64 only; "index": integer class indices; "any": any dtype
    ref: Callable = None         # reference (usually torch), ref(a) -> what call(a) returns
    empty: Callable = None       # () -> args with a batch of 0 (None: no such row)
    zero_d: Any = SKIP           # outcome for a 0-d array of the right dtype
    wrong_shape: tuple = None    # (value maker: good value -> badly shaped value, outcome)
    mixed: Any = SKIP            # outcome for the other float dtype (float64 where float32 is expected)
    mutates: tuple = ()          # keys of ``a`` the call may change (the array an initializer fills...)
    over: dict = field(default_factory=dict)   # bad input id -> outcome, overriding the default


def _get(a, pos):
    for k in pos:
        a = a[k]
    return a


def _set(a, pos, value):
    for k in pos[:-1]:
        a = a[k]
    a[pos[-1]] = value


def _with(v, value, where):
    v = v.copy()
    flat = v.reshape(-1)
    for i in where(flat.size):
        flat[i] = value
    v = flat.reshape(v.shape)
    return v


def _strided(v):
    big = np.zeros(v.shape + (2,), v.dtype)
    big[..., 0] = v
    view = big[..., 0]
    assert not view.flags.c_contiguous or v.size <= 1
    return view


def _readonly(v):
    v = v.copy()
    v.flags.writeable = False
    return v


def _other_float(v):
    return v.astype(np.float64 if v.dtype == np.float32 else np.float32)


BAD_ARRAYS = {
    # id: (kinds it applies to, transform of the good value)
    "int64": ("float", lambda v: np.round(v * 3).astype(np.int64)),
    "int32": ("index", lambda v: v.astype(np.int32)),
    "uint8": ("any", lambda v: np.abs(np.round(v * 3)).astype(np.uint8)),
    "bool": ("float index any", lambda v: v > 0),
    "object": ("float index any", lambda v: v.astype(object)),
    "complex": ("float index any", lambda v: v.astype(np.complex128)),
    "float16": ("float", lambda v: v.astype(np.float16)),
    "float32": ("index", lambda v: v.astype(np.float32)),
    "nan": ("float any", lambda v: _with(v, np.nan, lambda n: [0, n // 2])),
    "inf": ("float any", lambda v: _with(v, np.inf, lambda n: [0]) if v.size < 2 else
            _with(_with(v, np.inf, lambda n: [0]), -np.inf, lambda n: [n - 1])),
    "out-of-range": ("index", lambda v: _with(v, 99, lambda n: [n - 1])),
    "negative": ("index", lambda v: _with(v, -3, lambda n: [0])),
    "empty": ("float index any", None),
    "noncontig": ("float index any", _strided),
    "readonly": ("float index any", _readonly),
    "0-d": ("float index any", lambda v: v.reshape(-1)[:1].reshape(())),
    "wrong-shape": ("float index any", None),
    "other-float": ("float", _other_float),
    "list": ("float index any", lambda v: v.tolist()),
    "None": ("float index any", lambda v: None),
    "str": ("float index any", lambda v: "0.5"),
    "number": ("float index any", lambda v: 0.5),
}


def outcome_of(arg, bad):
    """The expected outcome of ``bad`` for ``arg`` (SKIP: the row does not apply)."""
    kinds, _ = BAD_ARRAYS[bad]
    if arg.kind not in kinds.split():
        return SKIP
    if bad in arg.over:
        return arg.over[bad]
    type_error = Raises(TypeError, named(arg.name))
    if bad in ("list", "None", "str", "number"):
        return type_error
    if bad == "empty":
        return SKIP if arg.empty is None else (REF if arg.ref else OK)
    if bad in ("noncontig", "readonly"):
        return SAME
    if bad == "0-d":
        return arg.zero_d
    if bad == "wrong-shape":
        return SKIP if arg.wrong_shape is None else arg.wrong_shape[1]
    if bad == "other-float":
        return arg.mixed
    if bad in ("nan", "inf") and _get(arg.args(), arg.pos).dtype.kind != "f":
        return SKIP   # NaN and inf rows are for float arguments
    if bad in ("nan", "inf", "uint8") or (arg.kind == "any" and bad in ("bool", "object", "complex")):
        return REF if arg.ref else OK
    if bad == "int32":
        return SAME
    if bad in ("out-of-range", "negative"):
        return Raises(ValueError, r"class index -?\d+ outside \[0, \d+\)")
    return type_error   # a wrong dtype


ARRAYS = []


def add(id, call, args, pos, name=None, **kw):
    pos = pos if isinstance(pos, tuple) else (pos,)
    ARRAYS.append(Arg(id, call, args, pos, name or pos[-1], **kw))


# --------------------------------------------------------------------------- functional kernels

def _grad_of(f, **inputs):
    """Torch autograd: f(**tensors) -> y; returns (y, grad function of an upstream gradient)."""
    def run(dy, names):
        ts = {k: tt(v).requires_grad_(k in names) if v is not None else None for k, v in inputs.items()}
        y = f(**ts)
        y.backward(tt(dy))
        return tuple(nt(ts[k].grad) for k in names)
    return run


E = (4, 5)                       # the good shape of elementwise arguments
X0 = lambda: randn(*E)           # noqa: E731
D0 = lambda: randn(*E, seed=1)   # noqa: E731

ELEMENTWISE = [
    # name, npnet forward, torch forward, 0-d outcome
    ("relu", F.relu, torch.relu, REF),
    ("leaky_relu", lambda X: F.leaky_relu(X, 0.2), lambda x: TF.leaky_relu(x, 0.2), REF),
    ("sigmoid", F.sigmoid, torch.sigmoid, REF),
    ("tanh", F.tanh, torch.tanh, REF),
    ("softmax", lambda X: F.softmax(X, -1), lambda x: torch.softmax(x, -1), REF),
    ("log_softmax", lambda X: F.log_softmax(X, -1), lambda x: torch.log_softmax(x, -1), REF),
]
for _name, _f, _tf, _zero_d in ELEMENTWISE:
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
        zero_d=Raises(ValueError, rf"dY must have the shape of {_s} \(4, 5\), got \(\)"),
        wrong_shape=(lambda v: v[:, :-1], Raises(ValueError, rf"dY must have the shape of {_s} \(4, 5\), got \(4, 4\)")),
        mixed=Raises(TypeError, rf"dY must have dtype float32 to match {_s}, got float64"))
    add(f"F.{_name}({_s})", _call, _args, "S", _s, ref=_ref, empty=_empty, over=_DEVIATES.get(_name, {}),
        zero_d=Raises(ValueError, rf"dY must have the shape of {_s} \(\), got \(4, 5\)"),
        wrong_shape=(lambda v: v[:, :-1], Raises(ValueError, rf"dY must have the shape of {_s} \(4, 4\), got \(4, 5\)")),
        mixed=Raises(TypeError, rf"dY must have dtype float64 to match {_s}, got float32"))

# linear and linear_backward
_lin_args = lambda: {"X": randn(4, 3), "W": randn(5, 3, seed=1), "b": randn(5, seed=2)}   # noqa: E731
_lin_empty = lambda: {"X": randn(0, 3), "W": randn(5, 3, seed=1), "b": randn(5, seed=2)}   # noqa: E731
_lin_ref = lambda a: nt(TF.linear(tt(a["X"]), tt(a["W"]), tt(a["b"])))   # noqa: E731
_lin = lambda a: F.linear(a["X"], a["W"], a["b"])   # noqa: E731
add("F.linear(input)", _lin, _lin_args, "X", "input", ref=_lin_ref, empty=_lin_empty,
    zero_d=Raises(ValueError, r"input must have at least 1 dimension"),
    wrong_shape=(lambda v: randn(4, 7), Raises(ValueError, r"input has 7 features on its last axis but weight expects 3")),
    mixed=Raises(TypeError, r"weight must have dtype float64 to match the input, got float32"))
add("F.linear(weight)", _lin, _lin_args, "W", "weight", ref=_lin_ref,
    empty=lambda: {"X": randn(4, 3), "W": randn(0, 3), "b": randn(0)},
    zero_d=Raises(ValueError, r"weight must have at least 2 dimension"),
    wrong_shape=(lambda v: randn(5, 4), Raises(ValueError, r"input has 3 features on its last axis but weight expects 4")),
    mixed=Raises(TypeError, r"weight must have dtype float32 to match the input, got float64"))
add("F.linear(bias)", _lin, _lin_args, "b", "bias", ref=_lin_ref, over={"None": REF},
    zero_d=Raises(ValueError, r"bias must have shape \(5,\), got \(\)"),
    wrong_shape=(lambda v: randn(4), Raises(ValueError, r"bias must have shape \(5,\), got \(4,\)")),
    mixed=Raises(TypeError, r"bias must have dtype float32 to match the input, got float64"))

_linb_args = lambda: {"dY": randn(4, 5, seed=3), "X": randn(4, 3), "W": randn(5, 3, seed=1)}   # noqa: E731
_linb_empty = lambda: {"dY": randn(0, 5, seed=3), "X": randn(0, 3), "W": randn(5, 3, seed=1)}   # noqa: E731


def _linb_ref(a):
    dX, dW, db = _grad_of(lambda X, W, b: TF.linear(X, W, b), X=a["X"], W=a["W"],
                          b=np.zeros(a["W"].shape[0], a["W"].dtype))(a["dY"], ("X", "W", "b"))
    return dX, dW, db


_linb = lambda a: F.linear_backward(a["dY"], a["X"], a["W"])   # noqa: E731
add("F.linear_backward(dY)", _linb, _linb_args, "dY", ref=_linb_ref, empty=_linb_empty,
    zero_d=Raises(ValueError, r"dY must have shape \(4, 5\) \(X's leading dims, W's out_features\), got \(\)"),
    wrong_shape=(lambda v: v[:, :-1], Raises(ValueError, r"dY must have shape \(4, 5\) .*got \(4, 4\)")),
    mixed=Raises(TypeError, r"dY must have dtype float32 to match X, got float64"))
add("F.linear_backward(X)", _linb, _linb_args, "X", ref=_linb_ref,
    zero_d=Raises(ValueError, r"X must have at least 1 dimension"),
    wrong_shape=(lambda v: v[:, :-1], Raises(ValueError, r"X has 2 features on its last axis but W expects 3")),
    mixed=Raises(TypeError, r"dY must have dtype float64 to match X, got float32"))
add("F.linear_backward(W)", _linb, _linb_args, "W", ref=_linb_ref,
    zero_d=Raises(ValueError, r"W must be 2-D \(out_features, in_features\), got shape \(\)"),
    wrong_shape=(lambda v: v[:-1], Raises(ValueError, r"dY must have shape \(4, 4\) .*got \(4, 5\)")),
    mixed=Raises(TypeError, r"W must have dtype float32 to match X, got float64"))

# dropout(X, mask)
_do_args = lambda: {"X": X0(), "mask": F.dropout_mask(E, 0.5, rng(3), np.float32)}   # noqa: E731
_do_empty = lambda: {"X": randn(0, 5), "mask": np.zeros((0, 5), np.float32)}   # noqa: E731
_do_ref = lambda a: nt(tt(a["X"]) * tt(a["mask"]))   # noqa: E731
_do = lambda a: F.dropout(a["X"], a["mask"])   # noqa: E731
add("F.dropout(input)", _do, _do_args, "X", "input", ref=_do_ref, empty=_do_empty,
    zero_d=Raises(ValueError, r"mask must have shape \(\), got \(4, 5\)"),
    wrong_shape=(lambda v: v[:, :-1], Raises(ValueError, r"mask must have shape \(4, 4\), got \(4, 5\)")),
    mixed=Raises(TypeError, r"mask must have dtype float64"))
add("F.dropout(mask)", _do, _do_args, "mask", ref=_do_ref, empty=_do_empty,
    zero_d=Raises(ValueError, r"mask must have shape \(4, 5\), got \(\)"),
    wrong_shape=(lambda v: v[:, :-1], Raises(ValueError, r"mask must have shape \(4, 5\), got \(4, 4\)")),
    mixed=Raises(TypeError, r"mask must have dtype float32"))

# cross_entropy / nll_loss / mse_loss and their backwards
C = 5
_ce_args = lambda: {"X": randn(4, C), "t": labels(4), "w": np.linspace(0.5, 2, C).astype(np.float32)}   # noqa: E731
_ce_empty = lambda: {"X": randn(0, C), "t": labels(0), "w": np.linspace(0.5, 2, C).astype(np.float32)}   # noqa: E731


def _ce_ref(a):
    return nt(TF.cross_entropy(tt(a["X"]), tt(a["t"]).long(), weight=tt(a["w"])))


def _ce_back_ref(a):
    (g,) = _grad_of(lambda X: TF.cross_entropy(X, tt(a["t"]).long(), weight=tt(a["w"])), X=a["X"])(
        a["dloss"] if a["dloss"] is not None else np.ones((), a["X"].dtype), ("X",))
    return g


_ce = lambda a: F.cross_entropy(a["X"], a["t"], weight=a["w"])   # noqa: E731
_ceb = lambda a: F.cross_entropy_backward(a["dloss"], a["X"], a["t"], weight=a["w"])   # noqa: E731
_ceb_args = lambda: {**_ce_args(), "dloss": np.array(0.7, np.float32)}   # noqa: E731
_ceb_empty = lambda: {**_ce_empty(), "dloss": np.array(0.7, np.float32)}   # noqa: E731
_target_shape = Raises(ValueError, r"target of class indices must have shape \(4,\) for input of shape \(4, 5\)")
_CE_TARGET = dict(
    kind="index", zero_d=Raises(ValueError, r"target of class indices must have shape \(4,\) .*got \(\)"),
    wrong_shape=(lambda v: v[:, None],
                 Raises(ValueError, r"target of class indices must have shape \(4,\) .*got \(4, 1\)")),
    over={"float32": Raises(ValueError, r"target of class probabilities must have the input's shape \(4, 5\), got \(4,\)"),
          "bool": Raises(TypeError, r"target must have an integer dtype \(class indices\) or the input's float dtype"),
          "object": Raises(TypeError, r"target must have an integer dtype"),
          "complex": Raises(TypeError, r"target must have an integer dtype")})
_CE_INPUT = dict(
    zero_d=Raises(ValueError, r"input must have at least 1 dimension"),
    wrong_shape=(lambda v: v[:3],
                 Raises(ValueError, r"target of class indices must have shape \(3,\) for input of shape \(3, 5\)")),
    mixed=Raises(TypeError, r"weight must have dtype float64 to match the input, got float32"))
_CE_WEIGHT = dict(
    zero_d=Raises(ValueError, r"weight must have shape \(5,\), got \(\)"),
    wrong_shape=(lambda v: v[:-1], Raises(ValueError, r"weight must have shape \(5,\), got \(4,\)")),
    mixed=Raises(TypeError, r"weight must have dtype float32 to match the input, got float64"), over={"None": REF})
add("F.cross_entropy(input)", _ce, _ce_args, "X", "input", ref=_ce_ref, empty=_ce_empty, **_CE_INPUT)
add("F.cross_entropy(target)", _ce, _ce_args, "t", "target", ref=_ce_ref, empty=_ce_empty, **_CE_TARGET)
add("F.cross_entropy(weight)", _ce, _ce_args, "w", "weight", ref=_ce_ref, **_CE_WEIGHT)
add("F.cross_entropy_backward(input)", _ceb, _ceb_args, "X", "input", ref=_ce_back_ref, empty=_ceb_empty,
    **_CE_INPUT)
add("F.cross_entropy_backward(target)", _ceb, _ceb_args, "t", "target", ref=_ce_back_ref, empty=_ceb_empty, **_CE_TARGET)
add("F.cross_entropy_backward(weight)", _ceb, _ceb_args, "w", "weight", ref=_ce_back_ref, **_CE_WEIGHT)
_CE_INF = Deviates(REF, "with an infinite dloss the fused gradient scale * (p - onehot) gives -inf at the "
                        "target class; torch's unfused nll + log_softmax backward gives inf - inf = nan there")
add("F.cross_entropy_backward(dloss)", _ceb, _ceb_args, "dloss", ref=_ce_back_ref,
    over={"None": REF, "noncontig": SKIP, "inf": _CE_INF},
    wrong_shape=(lambda v: v.reshape(1), Raises(ValueError, r"dloss must have shape \(\), got \(1,\)")),
    mixed=Raises(TypeError, r"dloss must have dtype float32"))
_cebl_args = lambda: {**_ceb_args(), "L": F.log_softmax(randn(4, C), 1)}   # noqa: E731
add("F.cross_entropy_backward(log_probs)",
    lambda a: F.cross_entropy_backward(a["dloss"], a["X"], a["t"], weight=a["w"], log_probs=a["L"]),
    _cebl_args, "L", "log_probs", over={"None": OK},
    zero_d=Raises(ValueError, r"log_probs must have the input's shape \(4, 5\), got \(\)"),
    wrong_shape=(lambda v: v[:, :-1], Raises(ValueError, r"log_probs must have the input's shape \(4, 5\), got \(4, 4\)")),
    mixed=Raises(TypeError, r"log_probs must have the input's dtype float32, got float64"))

_nll_args = lambda: {"X": F.log_softmax(randn(4, C), 1), "t": labels(4), "w": None}   # noqa: E731
_nll_empty = lambda: {"X": randn(0, C), "t": labels(0), "w": None}   # noqa: E731
_nll = lambda a: F.nll_loss(a["X"], a["t"], weight=a["w"])   # noqa: E731
_nll_ref = lambda a: nt(TF.nll_loss(tt(a["X"]), tt(a["t"]).long()))   # noqa: E731
_nllb = lambda a: F.nll_loss_backward(None, a["X"], a["t"])   # noqa: E731
_nllb_ref = lambda a: _grad_of(lambda X: TF.nll_loss(X, tt(a["t"]).long()), X=a["X"])(   # noqa: E731
    np.ones((), a["X"].dtype), ("X",))[0]
_NLL_TARGET = dict(_CE_TARGET, over={"float32": Raises(TypeError,
                                                       r"target must have an integer dtype \(class indices\), got float32"),
                                     "bool": Raises(TypeError, r"target must have an integer dtype"),
                                     "object": Raises(TypeError, r"target must have an integer dtype"),
                                     "complex": Raises(TypeError, r"target must have an integer dtype")})
add("F.nll_loss(input)", _nll, _nll_args, "X", "input", ref=_nll_ref, empty=_nll_empty,
    zero_d=_CE_INPUT["zero_d"], wrong_shape=_CE_INPUT["wrong_shape"])
add("F.nll_loss(target)", _nll, _nll_args, "t", "target", ref=_nll_ref, empty=_nll_empty, **_NLL_TARGET)
add("F.nll_loss_backward(input)", _nllb, _nll_args, "X", "input", ref=_nllb_ref, empty=_nll_empty,
    zero_d=_CE_INPUT["zero_d"], wrong_shape=_CE_INPUT["wrong_shape"])
add("F.nll_loss_backward(target)", _nllb, _nll_args, "t", "target", ref=_nllb_ref, empty=_nll_empty, **_NLL_TARGET)

_mse_args = lambda: {"X": X0(), "Y": D0(), "dloss": None}   # noqa: E731
_mse_empty = lambda: {"X": randn(0, 5), "Y": randn(0, 5), "dloss": None}   # noqa: E731
_mse = lambda a: F.mse_loss(a["X"], a["Y"])   # noqa: E731
_mse_ref = lambda a: nt(TF.mse_loss(tt(a["X"]), tt(a["Y"])))   # noqa: E731
_mseb = lambda a: F.mse_loss_backward(a["dloss"], a["X"], a["Y"])   # noqa: E731
_mseb_ref = lambda a: _grad_of(lambda X, Y: TF.mse_loss(X, Y), X=a["X"], Y=a["Y"])(   # noqa: E731
    a["dloss"] if a["dloss"] is not None else np.ones((), a["X"].dtype), ("X",))[0]
_MSE = dict(zero_d=Raises(ValueError, r"target must have shape"),
            wrong_shape=(lambda v: v[:, :-1], Raises(ValueError, r"target must have shape")))
for _fn, _ref, _label in ((_mse, _mse_ref, "F.mse_loss"), (_mseb, _mseb_ref, "F.mse_loss_backward")):
    add(f"{_label}(input)", _fn, _mse_args, "X", "input", ref=_ref, empty=_mse_empty,
        mixed=Raises(TypeError, r"target must have dtype float64 to match the input"), **_MSE)
    add(f"{_label}(target)", _fn, _mse_args, "Y", "target", ref=_ref, empty=_mse_empty,
        mixed=Raises(TypeError, r"target must have dtype float32 to match the input"), **_MSE)
add("F.mse_loss_backward(dloss)", _mseb, lambda: {**_mse_args(), "dloss": np.array(1.5, np.float32)}, "dloss",
    ref=_mseb_ref, over={"None": REF, "noncontig": SKIP},
    wrong_shape=(lambda v: v.reshape(1), Raises(ValueError, r"dloss must have shape \(\), got \(1,\)")),
    mixed=Raises(TypeError, r"dloss must have dtype float32"))


# --------------------------------------------------------------------------- modules: forward, call, backward

def _module_ref(a, *, train=True, backward=False):
    """The torch twin of a["m"] (replaying the npnet Dropout masks): its output, or (dX, grads)."""
    m, X = a["m"], a["X"]
    replay = copy.deepcopy(m).forward(X, train=train)[1] if train else None
    tw = twin(m, replay=replay)
    tw.train(train)
    x = tt(X).requires_grad_(backward)
    y = tw(x)
    if not backward:
        return nt(y)
    y.backward(tt(a["dy"]))
    return nt(x.grad), {k: nt(p.grad) for k, p in tw.named_parameters()}


MODULES = [
    # id, factory, good input shape, output shape, overrides for the input row
    ("Linear", lambda: nn.Linear(5, 3, rng=rng(1)), (4, 5), (4, 3), dict(
        zero_d=Raises(ValueError, r"Linear\(in_features=5, out_features=3, bias=True\) expected input \(\.\.\., 5\), "
                                  r"got \(\)"),
        wrong_shape=(lambda v: randn(4, 6), Raises(ValueError, r"Linear\(in_features=5, out_features=3, bias=True\) "
                                                               r"expected input \(\.\.\., 5\), got \(4, 6\)$")),
        mixed=Raises(TypeError, r"Linear\(in_features=5, .*\) holds float32 parameters but got float64 input; cast "
                                r"the input \(x.astype\(np.float32\)\) or the layer \(layer.to\(np.float64\)\)"))),
    ("ReLU", nn.ReLU, E, E, dict(zero_d=REF)),
    ("LeakyReLU", lambda: nn.LeakyReLU(0.2), E, E, dict(zero_d=REF)),
    ("Sigmoid", nn.Sigmoid, E, E, dict(zero_d=REF)),
    ("Tanh", nn.Tanh, E, E, dict(zero_d=REF)),
    ("Softmax", lambda: nn.Softmax(axis=1), E, E, dict(zero_d=Raises(ValueError, r"axis must be in \[-1, 0\] for a 0-d"))),
    ("LogSoftmax", lambda: nn.LogSoftmax(axis=1), E, E, dict(zero_d=Raises(ValueError, r"axis must be in \[-1, 0\] for"))),
    ("Flatten", nn.Flatten, (4, 2, 3), (4, 6), dict(
        kind="any", zero_d=Raises(ValueError, r"Flatten\(start_axis=1, end_axis=-1\) does not fit an input of shape \(\)"),
        wrong_shape=(lambda v: v[:, 0, 0], Raises(ValueError, r"Flatten\(start_axis=1, end_axis=-1\) does not fit an "
                                                              r"input of shape \(4,\)")))),
    ("Dropout", lambda: nn.Dropout(0.5, rng=rng(2)), E, E, dict(zero_d=REF)),
    ("Sequential", lambda: nn.Sequential(nn.Flatten(), nn.Linear(6, 4, rng=rng(1)), nn.ReLU(),
                                         nn.Dropout(0.3, rng=rng(2)), nn.Linear(4, 3, rng=rng(3))), (4, 2, 3), (4, 3), dict(
        zero_d=Raises(ValueError, r"Flatten\(start_axis=1, end_axis=-1\) does not fit an input of shape \(\)"),
        wrong_shape=(lambda v: randn(4, 7), Raises(ValueError, r"Linear\(in_features=6, .*\) expected input \(\.\.\., 6\), "
                                                               r"got \(4, 7\)")),
        mixed=Raises(TypeError, r"holds float32 parameters but got float64 input"))),
]


def _flatten_ref(a):
    X = a["X"]
    return X.reshape(X.shape[:1] + (math.prod(X.shape[1:]),))


for _id, _make, _in, _out, _kw in MODULES:
    _kw = dict(_kw)
    _kind = _kw.pop("kind", "float")
    _empty_in = (0,) + _in[1:]
    _fwd_ref = _flatten_ref if _id == "Flatten" else _module_ref
    _call_ref = _flatten_ref if _id == "Flatten" else (lambda a: _module_ref(a, train=False))
    add(f"{_id}.forward(input)", lambda a: a["m"].forward(a["X"])[0],
        lambda make=_make, s=_in: {"X": randn(*s), "m": make()},
        "X", "input", kind=_kind, ref=_fwd_ref, empty=lambda make=_make, s=_empty_in: {"X": randn(*s), "m": make()}, **_kw)
    add(f"{_id}(input)", lambda a: a["m"](a["X"]), lambda make=_make, s=_in: {"X": randn(*s), "m": make()},
        "X", "input", kind=_kind, ref=_call_ref, empty=lambda make=_make, s=_empty_in: {"X": randn(*s), "m": make()}, **_kw)
    _dy_err = f"{_id} backward: dy must"
    add(f"{_id}.forward(...)[1](dy)", lambda a: a["m"].forward(a["X"])[1](a["dy"]),
        lambda make=_make, s=_in, o=_out: {"dy": randn(*o, seed=5), "X": randn(*s), "m": make()}, "dy",
        ref=lambda a: _module_ref(a, backward=True),
        empty=lambda make=_make, s=_empty_in, o=_out: {"dy": randn(0, *o[1:], seed=5), "X": randn(*s), "m": make()},
        zero_d=Raises(ValueError, rf"{_dy_err} have the output's shape \({_out[0]}, {_out[1]}\), got \(\)"),
        wrong_shape=(lambda v: v[:, :-1],
                     Raises(ValueError, rf"{_dy_err} have the output's shape \({_out[0]}, {_out[1]}\), "
                                        rf"got \({_out[0]}, {_out[1] - 1}\)")),
        mixed=Raises(TypeError, rf"{_dy_err} have the output's dtype float32, got float64"))

# losses: forward(input, target), the backward closure (dloss), the constructor's weight
_LOSSES = [
    ("CrossEntropyLoss", lambda w: nn.CrossEntropyLoss(weight=w), _ce_args, _ce_empty, _CE_TARGET, _ce_ref, _ce_back_ref),
    ("NLLLoss", lambda w: nn.NLLLoss(weight=w), lambda: {**_nll_args(), "w": np.linspace(0.5, 2, C).astype(np.float32)},
     lambda: {**_nll_empty(), "w": np.linspace(0.5, 2, C).astype(np.float32)}, _NLL_TARGET,
     lambda a: nt(TF.nll_loss(tt(a["X"]), tt(a["t"]).long(), weight=tt(a["w"]))),
     lambda a: _grad_of(lambda X: TF.nll_loss(X, tt(a["t"]).long(), weight=tt(a["w"])), X=a["X"])(
         a["dloss"] if a["dloss"] is not None else np.ones((), a["X"].dtype), ("X",))[0]),
]
for _id, _make, _args, _empty, _target, _ref, _bref in _LOSSES:
    _fwd = lambda a, make=_make: make(a["w"]).forward(a["X"], a["t"])[0]   # noqa: E731
    add(f"{_id}.forward(input)", _fwd, _args, "X", "input", ref=_ref, empty=_empty, **_CE_INPUT)
    add(f"{_id}()(input)", lambda a, make=_make: make(a["w"])(a["X"], a["t"]), _args, "X", "input", ref=_ref,
        empty=_empty, **_CE_INPUT)
    add(f"{_id}.forward(target)", _fwd, _args, "t", "target", ref=_ref, empty=_empty, **_target)
    add(f"{_id}(weight=)", _fwd, _args, "w", "weight", ref=_ref,
        **dict(_CE_WEIGHT, zero_d=Raises(ValueError, r"weight must have at least 1 dimension")))
    add(f"{_id}.forward(...)[1](dloss)", lambda a, make=_make: make(a["w"]).forward(a["X"], a["t"])[1](a["dloss"]),
        lambda args=_args: {**args(), "dloss": np.array(0.7, np.float32)}, "dloss", ref=_bref,
        over={"None": REF, "noncontig": SKIP, **({"inf": _CE_INF} if _id == "CrossEntropyLoss" else {})},
        wrong_shape=(lambda v: v.reshape(1), Raises(ValueError, r"dloss must have shape \(\), got \(1,\)")),
        mixed=Raises(TypeError, r"dloss must have dtype float32"))
_msem = lambda a: nn.MSELoss().forward(a["X"], a["Y"])[0]   # noqa: E731
add("MSELoss.forward(input)", _msem, _mse_args, "X", "input", ref=_mse_ref, empty=_mse_empty,
    mixed=Raises(TypeError, r"target must have dtype float64 to match the input"), **_MSE)
add("MSELoss.forward(target)", _msem, _mse_args, "Y", "target", ref=_mse_ref, empty=_mse_empty,
    mixed=Raises(TypeError, r"target must have dtype float32 to match the input"), **_MSE)
add("MSELoss.forward(...)[1](dloss)", lambda a: nn.MSELoss().forward(a["X"], a["Y"])[1](a["dloss"]),
    lambda: {**_mse_args(), "dloss": np.array(1.5, np.float32)}, "dloss", ref=_mseb_ref,
    over={"None": REF, "noncontig": SKIP},
    wrong_shape=(lambda v: v.reshape(1), Raises(ValueError, r"dloss must have shape \(\), got \(1,\)")),
    mixed=Raises(TypeError, r"dloss must have dtype float32"))

# Module.load_state_dict: each value is an array copied (with a cast) into the parameter
add("Linear.load_state_dict(state_dict['weight'])",
    lambda a: a["m"].load_state_dict(a["sd"]).state_dict(),
    lambda: {"sd": {"weight": randn(3, 5, seed=4), "bias": randn(3, seed=5)}, "m": nn.Linear(5, 3, rng=rng())},
    ("sd", "weight"), "state_dict['weight']", mutates=("m",),
    ref=lambda a: {k: np.array(v, np.float32) for k, v in a["sd"].items()},
    over={"int64": REF, "float16": REF, "other-float": REF},
    zero_d=Raises(ValueError, r"state_dict\['weight'\] must have shape \(3, 5\), got \(\)"),
    wrong_shape=(lambda v: v.T, Raises(ValueError, r"state_dict\['weight'\] must have shape \(3, 5\), got \(5, 3\)")))


# --------------------------------------------------------------------------- optimizers

OPTIMIZERS = [
    ("SGD", lambda p: optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.01),
     lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.01, foreach=False)),
    ("Adam", lambda p: optim.Adam(p, lr=0.01, weight_decay=0.01),
     lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.01, foreach=False)),
    ("AdamW", lambda p: optim.AdamW(p, lr=0.01), lambda p: torch.optim.AdamW(p, lr=0.01, foreach=False)),
]


def _params(shape=(3, 4)):
    return {"w": randn(*shape, seed=6), "b": randn(shape[-1], seed=7)}


def _grads_for(params):
    return {k: randn(*v.shape, seed=8 + i).astype(v.dtype) for i, (k, v) in enumerate(params.items())}


def _torch_steps(make_torch, params, grads, steps=2):
    ps = {k: torch.nn.Parameter(tt(v)) for k, v in params.items()}
    opt = make_torch(list(ps.values()))
    for _ in range(steps):
        for k, p in ps.items():
            p.grad = tt(grads[k]) if grads.get(k) is not None else None
        opt.step()
    return {k: nt(p) for k, p in ps.items()}


def _steps(opt, grads, steps=2):
    for _ in range(steps):
        opt.step(grads)
    return {k: v.copy() for k, v in opt.params.items()}


for _id, _make, _tmake in OPTIMIZERS:
    # step(grads): the optimizer's params change (by design); the grads never do
    add(f"{_id}.step(grads['w'])", lambda a: _steps(a["opt"], a["grads"]),
        lambda make=_make: (lambda p: {"grads": _grads_for(p), "opt": make(p), "p0": {k: v.copy() for k, v in p.items()}})(
            _params()),
        ("grads", "w"), "grads['w']", mutates=("opt",),
        ref=lambda a, tmake=_tmake: _torch_steps(tmake, a["p0"], a["grads"]),
        empty=lambda make=_make: (lambda p: {"grads": _grads_for(p), "opt": make(p),
                                             "p0": {k: v.copy() for k, v in p.items()}})(_params((0, 4))),
        over={"None": REF},
        zero_d=Raises(ValueError, r"grads\['w'\] must have shape \(3, 4\) like params\['w'\], got \(\)"),
        wrong_shape=(lambda v: v.T, Raises(ValueError, r"grads\['w'\] must have shape \(3, 4\) like params\['w'\], "
                                                       r"got \(4, 3\)")),
        mixed=Raises(TypeError, r"grads\['w'\] must have dtype float32 like params\['w'\], got float64"))
    # the constructor: params are updated in place, so they may be strided views but not read-only
    add(f"{_id}(params['w'])", lambda a, make=_make: _steps(make(a["params"]), _grads_for(a["params"])),
        lambda: {"params": _params()}, ("params", "w"), "params['w']", mutates=("params",),
        ref=lambda a, tmake=_tmake: _torch_steps(tmake, a["params"], _grads_for(a["params"])),
        empty=lambda: {"params": _params((0, 4))}, zero_d=REF, over={
            "readonly": Raises(ValueError, r"params\['w'\] is read-only; the optimizer updates parameters in place"),
            "other-float": REF})


# --------------------------------------------------------------------------- initializers

def _fill(fn):
    def call(a):
        out = fn(a["A"])
        assert out is a["A"]
        return np.array(out)
    return call


INITIALIZERS = [
    # name, call on the array, outcome for a 0-d array, for a 3-D one (the wrong shape)
    ("uniform_", lambda A: init.uniform_(A, -1, 2, rng=rng()), OK, OK),
    ("normal_", lambda A: init.normal_(A, 1, 2, rng=rng()), OK, OK),
    ("trunc_normal_", lambda A: init.trunc_normal_(A, 0, 1, -1, 1, rng=rng()), OK, OK),
    ("constant_", lambda A: init.constant_(A, 0.3), OK, OK),
    ("zeros_", init.zeros_, OK, OK),
    ("ones_", init.ones_, OK, OK),
    ("eye_", init.eye_, Raises(ValueError, r"eye_ supports only 2-D arrays; array has shape \(\)"),
     Raises(ValueError, r"eye_ supports only 2-D arrays; array has shape \(4, 5, 2\)")),
    ("dirac_", init.dirac_, Raises(ValueError, r"dirac_ supports only 3-, 4- or 5-D arrays; array has shape \(\)"), OK),
    ("xavier_uniform_", lambda A: init.xavier_uniform_(A, rng=rng()),
     Raises(ValueError, r"fewer than 2 dimensions; array has shape \(\)"), OK),
    ("xavier_normal_", lambda A: init.xavier_normal_(A, rng=rng()),
     Raises(ValueError, r"fewer than 2 dimensions; array has shape \(\)"), OK),
    ("kaiming_uniform_", lambda A: init.kaiming_uniform_(A, rng=rng()),
     Raises(ValueError, r"fewer than 2 dimensions; array has shape \(\)"), OK),
    ("kaiming_normal_", lambda A: init.kaiming_normal_(A, rng=rng()),
     Raises(ValueError, r"fewer than 2 dimensions; array has shape \(\)"), OK),
    ("orthogonal_", lambda A: init.orthogonal_(A, rng=rng()),
     Raises(ValueError, r"orthogonal_ supports only arrays with 2 or more dimensions; array has shape \(\)"), OK),
]
for _name, _fn, _zero_d, _wrong in INITIALIZERS:
    _good = (lambda: {"A": np.zeros((4, 5, 3), np.float32)}) if _name == "dirac_" else \
        (lambda: {"A": np.zeros(E, np.float32)})
    _wrong_shape = (lambda v: np.zeros((4, 5), v.dtype)) if _name == "dirac_" else (lambda v: np.zeros((4, 5, 2), v.dtype))
    _wrong_outcome = Raises(ValueError, r"dirac_ supports only 3-, 4- or 5-D arrays; array has shape \(4, 5\)") \
        if _name == "dirac_" else _wrong
    # NaN and inf in the array are overwritten: the same fill as a clean array (SAME)
    add(f"init.{_name}(array)", _fill(_fn), _good, "A", "array", mutates=("A",), zero_d=_zero_d,
        empty=(lambda: {"A": np.zeros((0, 5, 3), np.float32)}) if _name == "dirac_" else
        (lambda: {"A": np.zeros((0, 5), np.float32)}), wrong_shape=(_wrong_shape, _wrong_outcome),
        mixed=OK, over={
            "nan": SAME, "inf": SAME,
            "readonly": Raises(ValueError, r"array is read-only \(flags.writeable is False\); initializers fill in place")})
add("init.calculate_fan_in_and_fan_out(array)", lambda a: init.calculate_fan_in_and_fan_out(a["A"]),
    lambda: {"A": np.zeros((4, 5, 3), np.float32)}, "A", "array", kind="any",
    ref=lambda a: (a["A"].shape[1] * a["A"].shape[2], a["A"].shape[0] * a["A"].shape[2]),
    zero_d=Raises(ValueError, r"fewer than 2 dimensions; array has shape \(\)"),
    empty=lambda: {"A": np.zeros((0, 5, 3))})


# --------------------------------------------------------------------------- gradcheck

def _gc(a):
    r = gradcheck(a["m"], a["x"], a.get("dy"))
    return r.ok, sorted(r.failed), sorted(r.max_abs)


add("gradcheck(x)", _gc, lambda: {"x": randn(3, 4, dtype=np.float64), "m": nn.Linear(4, 2, rng=rng())}, "x",
    empty=lambda: {"x": randn(0, 4, dtype=np.float64), "m": nn.Linear(4, 2, rng=rng())},
    zero_d=Raises(ValueError, r"expected input \(\.\.\., 4\), got \(\)"), over={"other-float": SAME},
    wrong_shape=(lambda v: v[:, :-1], Raises(ValueError, r"expected input \(\.\.\., 4\), got \(3, 3\)")))
add("gradcheck(dy)", _gc, lambda: {"x": randn(3, 4, dtype=np.float64), "m": nn.Linear(4, 2, rng=rng()),
                                   "dy": randn(3, 2, seed=1, dtype=np.float64)}, "dy",
    zero_d=Raises(ValueError, r"dy must have shape \(3, 2\), got \(\)"), over={"None": OK, "other-float": SAME},
    wrong_shape=(lambda v: v.T, Raises(ValueError, r"dy must have shape \(3, 2\), got \(2, 3\)")))


# --------------------------------------------------------------------------- data

def _batches(a, batch_size=2):
    return [(x, y) for x, y in data.DataLoader(a["X"], a["y"], batch_size)]


def _batches_ref(a, batch_size=2):
    X, y = a["X"], a["y"]
    if X.dtype == np.uint8:
        X = (X.astype(np.float32) / np.float32(255))[:, None] if X.ndim == 3 else X.astype(np.float32) / np.float32(255)
    y = y.astype(np.int64) if y.dtype.kind in "iu" else y
    return [(X[i:i + batch_size], y[i:i + batch_size]) for i in range(0, X.shape[0], batch_size)]


_dl_args = lambda: {"X": randn(5, 3), "y": labels(5)}   # noqa: E731
_dl_empty = lambda: {"X": randn(0, 3), "y": labels(0)}   # noqa: E731
_per_sample = Raises(ValueError, r"y must have one entry per sample of X \(5\), got shape \(4,\)")
add("DataLoader(X)", _batches, _dl_args, "X", ref=_batches_ref, empty=_dl_empty,
    zero_d=Raises(ValueError, r"X must have a sample axis, got shape \(\)"),
    wrong_shape=(lambda v: v[:4], Raises(ValueError, r"y must have one entry per sample of X \(4\), got shape \(5,\)")),
    over={"other-float": REF,
          "int64": Raises(TypeError, r"X must have dtype uint8 \(images\) or float32/float64, got int64")})
add("DataLoader(X uint8)", _batches, lambda: {"X": np.arange(5 * 12, dtype=np.uint8).reshape(5, 3, 4), "y": labels(5)},
    "X", kind="any", ref=_batches_ref, empty=lambda: {"X": np.zeros((0, 3, 4), np.uint8), "y": labels(0)},
    zero_d=Raises(ValueError, r"X must have a sample axis, got shape \(\)"),
    over={k: Raises(TypeError, r"X must have dtype uint8 \(images\) or float32/float64, got")
          for k in ("bool", "object", "complex")})
add("DataLoader(y)", _batches, _dl_args, "y", kind="index", ref=_batches_ref, empty=_dl_empty,
    zero_d=Raises(ValueError, r"y must have one entry per sample of X \(5\), got shape \(\)"),
    wrong_shape=(lambda v: v[:4], _per_sample),
    over={"float32": REF, "out-of-range": REF, "negative": REF,
          "bool": Raises(TypeError, r"y must hold integer labels or float32/float64 targets, got dtype bool"),
          "object": Raises(TypeError, r"y must hold integer labels or float32/float64 targets, got dtype object"),
          "complex": Raises(TypeError, r"y must hold integer labels or float32/float64 targets, got dtype complex128")})

_kf_args = lambda: {"X": randn(5, 3), "y": labels(5)}   # noqa: E731
_kf = lambda a: data.get_k_fold_data(2, 1, a["X"], a["y"])   # noqa: E731
_kf_ref = lambda a: (a["X"][:2].copy(), a["y"][:2].copy(), a["X"][2:4].copy(), a["y"][2:4].copy())   # noqa: E731
add("get_k_fold_data(X)", _kf, _kf_args, "X", kind="any", ref=_kf_ref,
    empty=lambda: {"X": randn(0, 3), "y": labels(0)},
    over={"empty": Raises(ValueError, r"X must have at least k=2 samples so that no fold is empty, got 0")},
    zero_d=Raises(ValueError, r"X must have a sample axis, got shape \(\)"),
    wrong_shape=(lambda v: v[:4], Raises(ValueError, r"y must have one entry per sample of X \(4\), got shape \(5,\)")))
add("get_k_fold_data(y)", _kf, _kf_args, "y", kind="any", ref=_kf_ref,
    zero_d=Raises(ValueError, r"y must have a sample axis, got shape \(\)"),
    wrong_shape=(lambda v: v[:4], _per_sample))
for _k in ("nan", "inf"):   # float rows for the integer labels above would be meaningless
    ARRAYS[-1].over[_k] = SKIP

ARRAY_ROWS = [(arg, bad, outcome_of(arg, bad)) for arg in ARRAYS for bad in BAD_ARRAYS]
ARRAY_ROWS = [r for r in ARRAY_ROWS if r[2] is not SKIP]


@pytest.mark.parametrize("arg, bad, outcome", rows_to_params(ARRAY_ROWS, [f"{a.id}-{b}" for a, b, _ in ARRAY_ROWS]))
def test_array_argument(arg, bad, outcome):
    a = arg.empty() if bad == "empty" else arg.args()
    if bad not in ("empty",):
        good = _get(a, arg.pos)
        make = arg.wrong_shape[0] if bad == "wrong-shape" else BAD_ARRAYS[bad][1]
        _set(a, arg.pos, make(good))
    with np.errstate(all="ignore"):
        want = arg.ref(copy.deepcopy(a)) if outcome == REF else None
    before = {k: snapshot(v) for k, v in a.items() if k not in arg.mutates}
    if isinstance(outcome, Raises):
        check_raises(outcome, lambda: arg.call(a))
    else:
        with np.errstate(all="ignore"):
            got = arg.call(a)
        if outcome == SAME:
            assert_same(got, arg.call(arg.args()))   # bit for bit
        elif outcome == REF:
            assert_same(got, want, exact=False)   # torch rounds differently
    for k, b in before.items():
        assert_unchanged(b, snapshot(a[k]), k)


# =========================================================================== 2. other arguments

BAD_SCALARS = {
    "None": None, "str": "1", "list": [1], "bool": True, "complex": 1 + 2j, "nan": math.nan, "inf": math.inf,
    "negative": -1, "zero": 0, "one": 1, "fraction": 0.5, "above-one": 1.5, "big": 7, "array": np.ones(2),
    "object": object(),
}
_NOT_A_NUMBER = ("None", "str", "list", "bool", "complex", "array", "object")


def _kind_outcome(kind, bad, name):
    """The default outcome of BAD_SCALARS[bad] for an argument of this kind (OK: accepted)."""
    T_, V_ = Raises(TypeError, named(name)), Raises(ValueError, named(name))
    optional = kind.endswith("?")
    kind = kind.rstrip("?")
    if bad == "None" and optional:
        return OK
    bounds = {"real": (-math.inf, math.inf, False, False), "real>=0": (0, math.inf, False, False),
              "real>0": (0, math.inf, True, False), "prob": (0, 1, False, False), "prob<1": (0, 1, False, True)}
    if kind in bounds:
        if bad in _NOT_A_NUMBER:
            return T_
        if bad in ("nan", "inf"):
            return V_
        value = BAD_SCALARS[bad]
        lo, hi, lo_open, hi_open = bounds[kind]
        inside = (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
        return OK if inside else V_
    if kind.startswith("int"):
        if bad in _NOT_A_NUMBER + ("nan", "inf", "fraction", "above-one"):
            return T_
        low = {"int": -math.inf, "int>=0": 0, "int>=1": 1, "int>=2": 2}[kind]
        return OK if BAD_SCALARS[bad] >= low else V_
    if kind == "flag":
        return OK if bad == "bool" else T_
    if kind == "choice":
        return V_
    if kind == "path" and bad == "str":
        return OK   # "1" is a path
    if kind == "json":   # anything json.dumps(allow_nan=False) takes is fine
        refused = bad in ("nan", "inf", "complex", "array", "object")
        return Raises((TypeError, ValueError), named(name)) if refused else OK
    return T_   # generator, dtype, path, module, loss, optimizer, loader, callable... : a wrong type


@dataclass
class Scalar:
    """One non-array argument: ``call(v, ctx)`` passes v as that argument (everything else good)."""

    id: str
    call: Callable
    name: str
    kind: str
    good: Any = SKIP             # a good value: its row must pass (checks the lambda itself)
    ok: Any = OK                 # the outcome when the value is accepted (e.g. a DataError: no data here)
    over: dict = field(default_factory=dict)


class Ctx:
    """Good objects for the calls: a tiny model, optimizer, loaders and a temp dir."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.X, self.y = randn(8, 4), labels(8, C=3)
        self.model = T.build_model("softmax", in_features=4, num_classes=3, rng=rng())
        self.opt = optim.SGD(self.model.params, lr=0.1)
        self.sched = optim.StepLR(self.opt, 1)
        self.loader = data.DataLoader(self.X, self.y, 4, shuffle=True, rng=rng(1))
        self.test_loader = data.DataLoader(self.X, self.y, 4)
        self.loss = nn.CrossEntropyLoss()
        self.ckpt = os.path.join(tmp, "ckpt.npz")
        self.idx = os.path.join(tmp, "a.idx")
        with open(self.idx, "wb") as f:
            f.write(bytes([0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3]))

    def fit(self, **kw):
        kw = {"epochs": 1, **kw}
        epochs = kw.pop("epochs")
        return T.fit(self.model, self.loss, self.opt, self.loader, self.test_loader, epochs, **kw)

    def save(self, **kw):
        kw = {"path": self.ckpt, "model": self.model, "optimizer": self.opt, "epoch": 0, "rng": rng(), **kw}
        return T.save_checkpoint(kw.pop("path"), **kw)


SCALARS = []


def scalar(id, call, name, kind, **kw):
    SCALARS.append(Scalar(id, call, name, kind, **kw))


_X, _DY = X0(), D0()
# An explicit root that holds no data set is refused by name (it is never skipped for another copy).
_NO_DATA = Raises(DataError, r"Fashion-MNIST not found|root=\S+: (no such directory|holds none)")
_NOT_DOWNLOADED = Raises(DownloadError, "Could not download")
_LOCAL = dict(mirrors=["http://127.0.0.1:9/"], retries=0, timeout=2)   # port 9 refuses at once: never the internet

# functional kernels
scalar("F.leaky_relu(negative_slope)", lambda v, c: F.leaky_relu(_X, v), "negative_slope", "real", good=0.2)
scalar("F.leaky_relu_backward(negative_slope)", lambda v, c: F.leaky_relu_backward(_DY, _X, v), "negative_slope", "real")
for _f in ("softmax", "log_softmax"):
    scalar(f"F.{_f}(axis)", lambda v, c, f=getattr(F, _f): f(_X, v), "axis", "int", good=-1, over={"big": Raises(
        ValueError, r"axis must be in \[-2, 1\] for a 2-d input, got 7"), "negative": OK})
    scalar(f"F.{_f}_backward(axis)", lambda v, c, f=getattr(F, _f + "_backward"): f(_DY, F.softmax(_X), v), "axis", "int",
           over={"big": Raises(ValueError, r"axis must be in \[-2, 1\]")})
scalar("F.dropout_mask(shape)", lambda v, c: F.dropout_mask(v, 0.5, rng()), "shape", "shape", good=(2, 3),
       over={**{k: OK for k in ("negative", "zero", "one", "big", "list")},
             "negative": Raises(ValueError, r"shape must be a tuple of non-negative ints, got \(-1,\)")})
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

# modules
scalar("Linear(in_features)", lambda v, c: nn.Linear(v, 3), "in_features", "int>=0", good=5)
scalar("Linear(out_features)", lambda v, c: nn.Linear(5, v), "out_features", "int>=0")
scalar("Linear(bias)", lambda v, c: nn.Linear(5, 3, v), "bias", "flag", good=False)
scalar("Linear(rng)", lambda v, c: nn.Linear(5, 3, rng=v), "rng", "generator?", good=rng())
scalar("Linear(dtype)", lambda v, c: nn.Linear(5, 3, dtype=v), "dtype", "dtype", good=np.float64)
scalar("Linear.reset_parameters(rng)", lambda v, c: nn.Linear(5, 3).reset_parameters(v), "rng", "generator?")
scalar("Linear.to(dtype)", lambda v, c: nn.Linear(5, 3).to(v), "dtype", "dtype", good="float64")
scalar("LeakyReLU(negative_slope)", lambda v, c: nn.LeakyReLU(v), "negative_slope", "real")
scalar("Softmax(axis)", lambda v, c: nn.Softmax(v), "axis", "int")
scalar("LogSoftmax(axis)", lambda v, c: nn.LogSoftmax(v), "axis", "int")
scalar("Softmax(axis).forward", lambda v, c: nn.Softmax(v).forward(_X), "axis", "int",
       over={"big": Raises(ValueError, r"axis must be in \[-2, 1\] for a 2-d input, got 7")})
scalar("Flatten(start_axis)", lambda v, c: nn.Flatten(v), "start_axis", "int")
scalar("Flatten(end_axis)", lambda v, c: nn.Flatten(0, v), "end_axis", "int")
scalar("Flatten(start_axis).forward", lambda v, c: nn.Flatten(v).forward(randn(2, 3, 4)), "start_axis", "int",
       over={"big": Raises(ValueError, r"Flatten\(start_axis=7, end_axis=-1\) does not fit an input of shape \(2, 3, 4\)"),
             "negative": OK})
scalar("Dropout(p)", lambda v, c: nn.Dropout(v), "p", "prob")
scalar("Dropout(rng)", lambda v, c: nn.Dropout(rng=v), "rng", "generator?")
scalar("Dropout.forward(train)", lambda v, c: nn.Dropout(0.5, rng=rng()).forward(_X, train=v), "train", "flag")
scalar("Sequential(module)", lambda v, c: nn.Sequential(nn.ReLU(), v), "Sequential argument 1", "module")
scalar("Linear.load_state_dict(state_dict)", lambda v, c: nn.Linear(5, 3).load_state_dict(v), "state_dict", "dict")
scalar("CrossEntropyLoss(weight)", lambda v, c: nn.CrossEntropyLoss(weight=v), "weight", "array?", over={"array": OK})
scalar("CrossEntropyLoss(ignore_index)", lambda v, c: nn.CrossEntropyLoss(ignore_index=v), "ignore_index", "int")
scalar("CrossEntropyLoss(reduction)", lambda v, c: nn.CrossEntropyLoss(reduction=v), "reduction", "choice")
scalar("CrossEntropyLoss(label_smoothing)", lambda v, c: nn.CrossEntropyLoss(label_smoothing=v), "label_smoothing",
       "prob")
scalar("NLLLoss(weight)", lambda v, c: nn.NLLLoss(weight=v), "weight", "array?", over={"array": OK})
scalar("NLLLoss(ignore_index)", lambda v, c: nn.NLLLoss(ignore_index=v), "ignore_index", "int")
scalar("NLLLoss(reduction)", lambda v, c: nn.NLLLoss(reduction=v), "reduction", "choice")
scalar("MSELoss(reduction)", lambda v, c: nn.MSELoss(reduction=v), "reduction", "choice")

# optimizers and schedulers
_P = lambda: _params()   # noqa: E731
for _cls in (optim.SGD, optim.Adam, optim.AdamW):
    _n = _cls.__name__
    scalar(f"{_n}(params)", lambda v, c, cls=_cls: cls(v), "params", "params")
    scalar(f"{_n}(lr)", lambda v, c, cls=_cls: cls(_P(), lr=v), "lr", "real>=0", good=0.1)
    scalar(f"{_n}(weight_decay)", lambda v, c, cls=_cls: cls(_P(), weight_decay=v), "weight_decay", "real>=0")
    scalar(f"{_n}(maximize)", lambda v, c, cls=_cls: cls(_P(), maximize=v), "maximize", "flag")
    scalar(f"{_n}.lr = ", lambda v, c, cls=_cls: setattr(cls(_P()), "lr", v), "lr", "real>=0")
    scalar(f"{_n}.step(grads)", lambda v, c, cls=_cls: cls(_P()).step(v), "grads", "dict")
    scalar(f"{_n}.load_state_dict(state_dict)", lambda v, c, cls=_cls: cls(_P()).load_state_dict(v), "state_dict", "dict")
scalar("SGD(momentum)", lambda v, c: optim.SGD(_P(), momentum=v), "momentum", "real>=0")
scalar("SGD(dampening)", lambda v, c: optim.SGD(_P(), dampening=v), "dampening", "real")
scalar("SGD(nesterov)", lambda v, c: optim.SGD(_P(), momentum=0.9, nesterov=v), "nesterov", "flag")
for _cls in (optim.Adam, optim.AdamW):
    _n = _cls.__name__
    scalar(f"{_n}(betas)", lambda v, c, cls=_cls: cls(_P(), betas=v), "betas", "pair")
    scalar(f"{_n}(betas[0])", lambda v, c, cls=_cls: cls(_P(), betas=(v, 0.999)), "betas[0]", "prob<1")
    scalar(f"{_n}(betas[1])", lambda v, c, cls=_cls: cls(_P(), betas=(0.9, v)), "betas[1]", "prob<1")
    scalar(f"{_n}(eps)", lambda v, c, cls=_cls: cls(_P(), eps=v), "eps", "real>=0")
    scalar(f"{_n}(amsgrad)", lambda v, c, cls=_cls: cls(_P(), amsgrad=v), "amsgrad", "flag")
scalar("Adam(decoupled_weight_decay)", lambda v, c: optim.Adam(_P(), decoupled_weight_decay=v), "decoupled_weight_decay",
       "flag")
_opt = lambda: optim.SGD(_P(), lr=0.1)   # noqa: E731
for _cls in (optim.StepLR, optim.CosineAnnealingLR, optim.LambdaLR):
    _first = {"StepLR": (1,), "CosineAnnealingLR": (10,), "LambdaLR": (lambda e: 1.0,)}[_cls.__name__]
    scalar(f"{_cls.__name__}(optimizer)", lambda v, c, cls=_cls, first=_first: cls(v, *first), "optimizer", "optimizer")
    scalar(f"{_cls.__name__}.load_state_dict(state_dict)",
           lambda v, c, cls=_cls, first=_first: cls(_opt(), *first).load_state_dict(v), "state_dict", "dict")
scalar("StepLR(step_size)", lambda v, c: optim.StepLR(_opt(), v), "step_size", "int>=1")
scalar("StepLR(gamma)", lambda v, c: optim.StepLR(_opt(), 1, v), "gamma", "real>=0")
scalar("CosineAnnealingLR(T_max)", lambda v, c: optim.CosineAnnealingLR(_opt(), v), "T_max", "int>=1")
scalar("CosineAnnealingLR(eta_min)", lambda v, c: optim.CosineAnnealingLR(_opt(), 10, v), "eta_min", "real>=0")
scalar("LambdaLR(lr_lambda)", lambda v, c: optim.LambdaLR(_opt(), v), "lr_lambda", "callable")
scalar("LambdaLR(lr_lambda returns)", lambda v, c: optim.LambdaLR(_opt(), lambda epoch: v), "lr_lambda(0)", "real>=0")

# initializers
_A = lambda: np.zeros((4, 5), np.float32)   # noqa: E731
for _name, _params_ in (("uniform_", ("a", "b")), ("normal_", ("mean", "std")),
                        ("trunc_normal_", ("mean", "std", "a", "b")), ("xavier_uniform_", ("gain",)),
                        ("xavier_normal_", ("gain",)), ("kaiming_uniform_", ("a",)), ("kaiming_normal_", ("a",)),
                        ("orthogonal_", ("gain",))):
    _fn = getattr(init, _name)
    for _p in _params_:
        _kind = {"std": "real>=0", "b": "real"}.get(_p, "real")
        _over = {}
        if _name == "trunc_normal_" and _p == "std":
            _kind = "real>0"
        if _name == "uniform_" and _p == "b":
            _over = {"negative": Raises(ValueError,
                                        r"uniform_ expects a <= b \(the interval \[a, b\]\), got a=0.0 > b=-1.0")}
        if _name == "uniform_" and _p == "a":
            _over = {k: Raises(ValueError, r"uniform_ expects a <= b") for k in ("big", "above-one")}
        if _name == "trunc_normal_" and _p == "a":
            _over = {"big": Raises(ValueError, r"trunc_normal_ expects a <= b")}
        if _name.startswith("xavier") and _p == "gain":
            _kind = "real>=0"
        scalar(f"init.{_name}({_p})", lambda v, c, fn=_fn, p=_p: fn(_A(), **{p: v}, rng=rng()), _p, _kind, over=_over)
    scalar(f"init.{_name}(rng)", lambda v, c, fn=_fn: fn(_A(), rng=v), "rng", "generator?")
for _name in ("kaiming_uniform_", "kaiming_normal_"):
    scalar(f"init.{_name}(mode)", lambda v, c, fn=getattr(init, _name): fn(_A(), mode=v), "mode", "choice")
    scalar(f"init.{_name}(nonlinearity)", lambda v, c, fn=getattr(init, _name): fn(_A(), nonlinearity=v),
           "nonlinearity", "choice")
scalar("init.constant_(val)", lambda v, c: init.constant_(_A(), v), "val", "real", over={"nan": OK, "inf": OK})
scalar("init.dirac_(groups)", lambda v, c: init.dirac_(np.zeros((4, 2, 3)), v), "groups", "int>=1",
       over={"big": Raises(ValueError, r"groups=7 must divide dim 0 of array, which is 4")})
scalar("init.calculate_gain(nonlinearity)", lambda v, c: init.calculate_gain(v), "nonlinearity", "choice")
scalar("init.calculate_gain(param)", lambda v, c: init.calculate_gain("leaky_relu", v), "param", "real?",
       over={k: Raises(ValueError, r"param \(negative_slope of leaky_relu\) must be") for k in _NOT_A_NUMBER[1:]})
scalar("init.calculate_fan_in_and_fan_out(array)", lambda v, c: init.calculate_fan_in_and_fan_out(v), "array", "array",
       over={"array": Raises(ValueError, r"fewer than 2 dimensions; array has shape \(2,\)")})

# gradcheck
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
       over={"array": Raises(ValueError, r"target must have shape \(3, 4\), got \(2,\)")})

# data
_dl = lambda **kw: list(data.DataLoader(randn(5, 3), labels(5), **{"batch_size": 2, **kw}))   # noqa: E731
scalar("DataLoader(batch_size)", lambda v, c: _dl(batch_size=v), "batch_size", "int>=1", good=2)
scalar("DataLoader(shuffle)", lambda v, c: _dl(shuffle=v), "shuffle", "flag")
scalar("DataLoader(drop_last)", lambda v, c: _dl(drop_last=v), "drop_last", "flag")
scalar("DataLoader(rng)", lambda v, c: _dl(shuffle=True, rng=v), "rng", "generator?")
scalar("kfold(n)", lambda v, c: list(data.kfold(v, 2)), "n", "int>=2", good=5)
scalar("kfold(k)", lambda v, c: list(data.kfold(9, v)), "k", "int>=2")
scalar("kfold(shuffle)", lambda v, c: list(data.kfold(5, 2, shuffle=v)), "shuffle", "flag")
scalar("kfold(rng)", lambda v, c: list(data.kfold(5, 2, shuffle=True, rng=v)), "rng", "generator?")
scalar("get_k_fold_data(k)", lambda v, c: data.get_k_fold_data(v, 0, randn(9, 2), labels(9)), "k", "int>=2")
scalar("get_k_fold_data(i)", lambda v, c: data.get_k_fold_data(2, v, randn(9, 2), labels(9)), "i", "int>=0",
       over={"big": Raises(ValueError, r"i must be an integer in \[0, 1\], got 7")})
scalar("read_idx(path)", lambda v, c: data.read_idx(v), "path", "path",
       over={"str": Raises(DataError, r"^1: cannot read IDX file: No such file or directory")})
scalar("read_idx(max_bytes)", lambda v, c: data.read_idx(c.idx, max_bytes=v), "max_bytes", "int>=0?",
       over={"zero": Raises(DataError, r"claims 11 bytes, more than the 0 allowed"),
             "one": Raises(DataError, r"more than the 1 allowed"), "big": Raises(DataError, r"more than the 7 allowed")})
_lfm = lambda c, **kw: data.load_fashion_mnist(   # noqa: E731
    **{"root": os.path.join(c.tmp, "nothing"), "download": False, **kw})
scalar("load_fashion_mnist(root)", lambda v, c: data.load_fashion_mnist(v, download=False), "root", "path?", ok=_NO_DATA)
scalar("load_fashion_mnist(download)", lambda v, c: _lfm(c, download=v, **_LOCAL), "download", "flag",
       ok=_NOT_DOWNLOADED)
scalar("load_fashion_mnist(timeout)", lambda v, c: _lfm(c, timeout=v), "timeout", "real>0", ok=_NO_DATA)
scalar("load_fashion_mnist(retries)", lambda v, c: _lfm(c, retries=v), "retries", "int>=0", ok=_NO_DATA,
       over={"big": _NO_DATA})
scalar("load_fashion_mnist(mirrors)", lambda v, c: _lfm(c, mirrors=v), "mirrors", "mirrors?", ok=_NO_DATA)
scalar("load_fashion_mnist(checksums)", lambda v, c: _lfm(c, checksums=v), "checksums", "dict?", ok=_NO_DATA)
scalar("load_fashion_mnist(cache)", lambda v, c: _lfm(c, cache=v), "cache", "flag", ok=_NO_DATA)
scalar("find_fashion_mnist(root)", lambda v, c: data.find_fashion_mnist(v), "root", "path?",
       over={"str": OK})
scalar("download_fashion_mnist(root)", lambda v, c: data.download_fashion_mnist(v, **_LOCAL), "root", "path?",
       ok=_NOT_DOWNLOADED, over={"str": SKIP})
scalar("download_fashion_mnist(timeout)",
       lambda v, c: data.download_fashion_mnist(c.tmp, mirrors=_LOCAL["mirrors"], retries=0, timeout=v),
       "timeout", "real>0", ok=_NOT_DOWNLOADED)
scalar("load_data_fashion_mnist(batch_size)", lambda v, c: data.load_data_fashion_mnist(v, c.tmp, download=False),
       "batch_size", "int>=1", ok=_NO_DATA)
scalar("load_data_fashion_mnist(rng)", lambda v, c: data.load_data_fashion_mnist(2, c.tmp, rng=v, download=False),
       "rng", "generator?", ok=_NO_DATA)

# train
scalar("build_model(name)", lambda v, c: T.build_model(v), "name", "choice", good="mlp")
scalar("build_model(hidden)", lambda v, c: T.build_model("mlp", hidden=v), "hidden", "int>=1")
scalar("build_model(dropout)", lambda v, c: T.build_model("mlp", dropout=v), "dropout", "prob<1")
scalar("build_model(init)", lambda v, c: T.build_model(init=v), "init", "choice")
scalar("build_model(std)", lambda v, c: T.build_model(std=v), "std", "real>=0")
scalar("build_model(rng)", lambda v, c: T.build_model(rng=v), "rng", "generator?")
scalar("build_model(dropout_rng)", lambda v, c: T.build_model("mlp", dropout=0.5, dropout_rng=v), "dropout_rng",
       "generator?")
scalar("build_model(dtype)", lambda v, c: T.build_model(dtype=v), "dtype", "dtype")
scalar("build_model(in_features)", lambda v, c: T.build_model(in_features=v), "in_features", "int>=1")
scalar("build_model(num_classes)", lambda v, c: T.build_model(num_classes=v), "num_classes", "int>=1")
scalar("train_epoch(model)", lambda v, c: T.train_epoch(v, c.loss, c.opt, c.loader), "model", "module")
scalar("train_epoch(loss_fn)", lambda v, c: T.train_epoch(c.model, v, c.opt, c.loader), "loss_fn", "loss")
scalar("train_epoch(optimizer)", lambda v, c: T.train_epoch(c.model, c.loss, v, c.loader), "optimizer", "optimizer")
scalar("train_epoch(loader)", lambda v, c: T.train_epoch(c.model, c.loss, c.opt, v), "loader", "loader")
scalar("train_epoch(epoch)", lambda v, c: T.train_epoch(c.model, c.loss, c.opt, c.loader, epoch=v), "epoch", "int>=0")
scalar("train_epoch(callback)", lambda v, c: T.train_epoch(c.model, c.loss, c.opt, c.loader, callback=v), "callback",
       "callable?")
scalar("evaluate(model)", lambda v, c: T.evaluate(v, c.test_loader), "model", "module")
scalar("evaluate(loader)", lambda v, c: T.evaluate(c.model, v), "loader", "loader")
scalar("evaluate(loss_fn)", lambda v, c: T.evaluate(c.model, c.test_loader, v), "loss_fn", "loss?")
scalar("evaluate_accuracy(model)", lambda v, c: T.evaluate_accuracy(v, c.test_loader), "model", "module")
scalar("evaluate_accuracy(loader)", lambda v, c: T.evaluate_accuracy(c.model, v), "loader", "loader")
scalar("fit(epochs)", lambda v, c: c.fit(epochs=v), "epochs", "int>=1", over={"big": SKIP})
scalar("fit(start_epoch)", lambda v, c: c.fit(epochs=9, start_epoch=v), "start_epoch", "int>=0",
       over={"big": SKIP, "zero": SKIP})
scalar("fit(scheduler)", lambda v, c: c.fit(scheduler=v), "scheduler", "scheduler?")
scalar("fit(checkpoint_path)", lambda v, c: c.fit(checkpoint_path=v), "checkpoint_path", "path?",
       over={"str": SKIP})
scalar("fit(resume)", lambda v, c: c.fit(resume=v, checkpoint_path=c.ckpt), "resume", "flag",
       over={"bool": Raises(CheckpointError, r"no such file")})
scalar("fit(rngs)", lambda v, c: c.fit(rngs=v), "rngs", "dict?")
scalar("fit(history)", lambda v, c: c.fit(history=v), "history", "history")
scalar("fit(config)", lambda v, c: c.fit(config=v, checkpoint_path=c.ckpt), "config", "json")
for _cb in ("on_step", "on_epoch_start", "on_epoch_end"):
    scalar(f"fit({_cb})", lambda v, c, cb=_cb: c.fit(**{cb: v}), _cb, "callable?")
scalar("fit(callbacks)", lambda v, c: c.fit(callbacks=v), "callbacks", "callbacks")
scalar("save_checkpoint(path)", lambda v, c: c.save(path=v), "path", "path", over={"str": SKIP})
scalar("save_checkpoint(model)", lambda v, c: c.save(model=v), "model", "module")
scalar("save_checkpoint(optimizer)", lambda v, c: c.save(optimizer=v), "optimizer", "optimizer")
scalar("save_checkpoint(epoch)", lambda v, c: c.save(epoch=v), "epoch", "int>=0")
scalar("save_checkpoint(rng)", lambda v, c: c.save(rng=v), "rng", "rngs")
scalar("save_checkpoint(scheduler)", lambda v, c: c.save(scheduler=v), "scheduler", "scheduler?")
scalar("save_checkpoint(metrics)", lambda v, c: c.save(metrics=v), "metrics", "history")
scalar("save_checkpoint(config)", lambda v, c: c.save(config=v), "config", "json")
scalar("load_checkpoint(path)", lambda v, c: T.load_checkpoint(v), "path", "path",
       over={"str": Raises(CheckpointError, r"checkpoint 1: no such file")})
scalar("Checkpoint.restore(model)", lambda v, c: (c.save(), T.load_checkpoint(c.ckpt).restore(model=v)), "model", "module")
scalar("Checkpoint.restore(optimizer)",
       lambda v, c: (c.save(), T.load_checkpoint(c.ckpt).restore(model=c.model, optimizer=v)), "optimizer", "optimizer?")
scalar("Checkpoint.restore(rng)", lambda v, c: (c.save(), T.load_checkpoint(c.ckpt).restore(model=c.model, rng=v)),
       "rng", "rngs?")

# plots
_hist = [T.EpochResult(1, 0.5, 0.8, 0.7, 1.0)]
scalar("plot_curves(history)", lambda v, c: plots.plot_curves(v, os.path.join(c.tmp, "c.png")), "history", "history")
scalar("plot_curves(path)", lambda v, c: plots.plot_curves(_hist, v), "path", "path", over={"str": SKIP})
scalar("plot_predictions(images)",
       lambda v, c: plots.plot_predictions(v, labels(2), labels(2), os.path.join(c.tmp, "p.png")), "images", "array",
       over={"array": Raises(ValueError, r"images must be \(n, H, W\) or \(n, 1, H, W\), got shape \(2,\)")})
scalar("plot_predictions(ncols)",
       lambda v, c: plots.plot_predictions(np.zeros((2, 4, 4)), labels(2), labels(2), os.path.join(c.tmp, "p.png"),
                                           ncols=v), "ncols", "int>=1")


SPECIAL_KINDS = {
    # kinds whose good values are not in BAD_SCALARS, and which values are fine for them
    "shape": {"list": OK},
    "mirrors": {"None": OK, "str": Raises(ValueError, r"mirrors must hold http:// or https:// base URLs, got '1'"),
                "list": Raises(ValueError, r"mirrors must hold http:// or https:// base URLs, got 1")},
    "rngs": {},
    "history": {"list": Raises(TypeError, r"(history|metrics)\[0\] must be an EpochResult or a dict")},
    "callbacks": {"list": Raises(TypeError, r"callbacks\[0\] must be an object with on_step"),
                  "str": Raises(TypeError, r"callbacks must be a list or tuple")},
    "loader": {"list": Raises(TypeError, r"batch 1 of loader must be a pair \(X, y\) of numpy arrays, got int")},
    "params": {"list": Raises(TypeError, r"params must be a dict of name -> numpy.ndarray")},
}


def _scalar_outcome(s, bad):
    if bad in s.over:
        return s.over[bad]
    kind = s.kind
    special = SPECIAL_KINDS.get(kind.rstrip("?"), {})
    if bad in special and not (bad == "None" and kind.endswith("?")):
        return special[bad]
    outcome = _kind_outcome(kind, bad, s.name)
    return s.ok if outcome == OK else outcome


SCALAR_ROWS = [(s, bad, _scalar_outcome(s, bad)) for s in SCALARS for bad in BAD_SCALARS]
SCALAR_ROWS += [(s, "good", s.ok) for s in SCALARS if s.good is not SKIP]
SCALAR_ROWS = [r for r in SCALAR_ROWS if r[2] is not SKIP]


@pytest.fixture
def ctx(tmp_path, monkeypatch):
    """Good objects, and a machine with no Fashion-MNIST anywhere and no network."""
    monkeypatch.setattr(data, "SYSTEM_DIRS", (str(tmp_path / "no-system-data"),))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("NPNET_DATA", raising=False)
    monkeypatch.delenv("NPNET_FASHION_MNIST_URL", raising=False)
    monkeypatch.setattr(data, "_RETRY_BACKOFF", 0.0)
    return Ctx(str(tmp_path))


@pytest.mark.parametrize("s, bad, outcome", rows_to_params(SCALAR_ROWS, [f"{s.id}-{b}" for s, b, _ in SCALAR_ROWS]))
def test_other_argument(ctx, s, bad, outcome):
    value = s.good if bad == "good" else copy.copy(BAD_SCALARS[bad])
    before = snapshot(value)
    if isinstance(outcome, Raises):
        check_raises(outcome, lambda: s.call(value, ctx))
    else:
        with np.errstate(all="ignore"):
            s.call(value, ctx)
    assert_unchanged(before, snapshot(value))


# =========================================================================== 3. rows written out

def _loader_of(*batches):
    return list(batches)   # a list of batches has len() and iterates: all a loop needs


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
    ("Linear(784) on images names Flatten", lambda c: nn.Linear(784, 10)(randn(2, 28, 28)), Raises(
        ValueError, r"^Linear\(in_features=784, out_features=10, bias=True\) expected input \(\.\.\., 784\), "
                    r"got \(2, 28, 28\); add nn.Flatten\(\) first\?$")),
    ("Sequential of 0-d through ReLU, Tanh", lambda c: nn.Sequential(nn.ReLU(), nn.Tanh()).forward(np.array(0.5))[0], OK),
    ("Sequential(non-module)", lambda c: nn.Sequential(nn.ReLU(), "relu"),
     Raises(TypeError, r"Sequential argument 1 must be an npnet Module, got str 'relu'")),
    ("load_state_dict missing key", lambda c: nn.Linear(5, 3).load_state_dict({"weight": randn(3, 5)}),
     Raises(ValueError, r"state_dict keys do not match Linear: missing \['bias'\], unexpected \[\]")),
    ("SGD(model) hints model.params", lambda c: optim.SGD(c.model),
     Raises(TypeError, r"params must be a dict of name -> numpy.ndarray .*; pass model.params")),
    ("SGD({})", lambda c: optim.SGD({}), Raises(ValueError, r"optimizer got an empty parameter list")),
    ("SGD same array twice", lambda c: (lambda w: optim.SGD({"a": w, "b": w}))(randn(2)),
     Raises(ValueError, r"params\['b'\] is the same array as params\['a'\]")),
    ("SGD(params key not str)", lambda c: optim.SGD({1: randn(2)}), Raises(TypeError, r"params keys must be str")),
    ("step(grads) missing key", lambda c: optim.SGD(_params()).step({"w": randn(3, 4)}),
     Raises(ValueError, r"grads must have exactly the keys of params; missing: \['b'\], unexpected: \[\]")),
    ("step(grads) extra key", lambda c: optim.SGD(_params()).step({**_grads_for(_params()), "x": randn(2)}),
     Raises(ValueError, r"unexpected: \['x'\]")),
    ("step(grads) a bad grad changes nothing", lambda c: (lambda o: (o.step({"w": randn(3, 4, seed=1), "b": randn(2)}),))(
        optim.Adam(_params())), Raises(ValueError, r"grads\['b'\] must have shape \(4,\) like params\['b'\], got \(2,\)")),
    ("Adam(betas=(0.9,))", lambda c: optim.Adam(_params(), betas=(0.9,)),
     Raises(TypeError, r"betas must be a pair \(beta1, beta2\), got tuple")),
    ("SGD(nesterov, momentum=0)", lambda c: optim.SGD(_params(), nesterov=True),
     Raises(ValueError, r"nesterov=True requires momentum > 0 and dampening == 0")),
    ("AdamW(decoupled_weight_decay=False) via load", lambda c: optim.AdamW(_params()).load_state_dict(
        {**optim.AdamW(_params()).state_dict(), "decoupled_weight_decay": np.array(False)}),
     Raises(ValueError, r"AdamW always decouples weight decay")),
    ("LambdaLR(lr_lambda returns str)", lambda c: optim.LambdaLR(optim.SGD(_params()), lambda e: "0.1"),
     Raises(TypeError, r"lr_lambda\(0\) must return a real number, got str '0.1'")),
    ("LambdaLR(lr_lambda turns NaN at epoch 2)",
     lambda c: [s.step() for s in [optim.LambdaLR(optim.SGD(_params()), lambda e: math.nan if e == 2 else 1.0)]
                for _ in range(2)], Raises(ValueError, r"lr_lambda\(2\) must be finite, got nan")),
    ("gradcheck(loss) without target", lambda c: gradcheck(nn.MSELoss(), randn(2, 3)),
     Raises(TypeError, r"target is needed to check a loss \(MSELoss\)")),
    ("init.calculate_gain('relu ')", lambda c: init.calculate_gain("relu "),
     Raises(ValueError, r"nonlinearity must be one of .*; got 'relu '")),
    ("init.dirac_ groups that do not divide", lambda c: init.dirac_(np.zeros((3, 2, 3)), 2),
     Raises(ValueError, r"groups=2 must divide dim 0 of array, which is 3")),
    ("init.constant_ too large for float32", lambda c: init.constant_(np.zeros(2, np.float32), 1e300),
     Raises(ValueError, r"val=1e\+300 does not fit in array's dtype float32")),
    ("cross_entropy all targets ignored is NaN as torch",
     lambda c: (F.cross_entropy(randn(3, C), np.full(3, -100)),
                nt(TF.cross_entropy(tt(randn(3, C)), torch.full((3,), -100)))), REF),
    ("every loss over an empty batch, as torch", lambda c: (_empty_batch_losses(), _empty_batch_torch()), REF),
    ("DataLoader over 0 samples yields nothing", lambda c: (list(data.DataLoader(randn(0, 3), labels(0), 4)), []), REF),
    ("DataLoader batch_size 10**12 allocates by the data",
     lambda c: (len(list(data.DataLoader(np.zeros((3, 28, 28), np.uint8), labels(3), 10**12, shuffle=True, rng=rng()))),
                1), REF),
    ("kfold n < k", lambda c: list(data.kfold(3, 5)),
     Raises(ValueError, r"n must be at least k=5 so that no fold is empty")),
    ("read_idx(directory)", lambda c: data.read_idx(c.tmp), Raises(DataError, r"not a regular file")),
    ("train_epoch on a loader of no batches", lambda c: T.train_epoch(c.model, c.loss, c.opt, _loader_of()),
     Raises(ValueError, r"loader yielded no batches; an epoch needs at least one")),
    ("train_epoch on an empty batch", lambda c: T.train_epoch(c.model, c.loss, c.opt, _loader_of((randn(0, 4), labels(0)))),
     Raises(ValueError, r"batch 1 of loader is empty \(0 samples\)")),
    ("train_epoch on list batches", lambda c: T.train_epoch(c.model, c.loss, c.opt, _loader_of(([[1.0] * 4], [0]))),
     Raises(TypeError, r"batch 1 of loader: X must be a numpy.ndarray of real numbers .*got list")),
    ("train_epoch on complex batches", lambda c: T.train_epoch(c.model, c.loss, c.opt,
                                                                _loader_of((randn(2, 4).astype(complex), labels(2)))),
     Raises(TypeError, r"batch 1 of loader: X must be a numpy.ndarray of real numbers .*complex128")),
    ("train_epoch on X, y of different lengths", lambda c: T.train_epoch(c.model, c.loss, c.opt,
                                                                          _loader_of((randn(3, 4), labels(2)))),
     Raises(ValueError, r"batch 1 of loader: X and y must have the same number of samples on axis 0")),
    ("train_epoch with float labels", lambda c: T.train_epoch(c.model, c.loss, c.opt,
                                                               _loader_of((randn(2, 4), np.zeros(2, np.float32)))),
     Raises(ValueError, r"target of class probabilities must have the input's shape \(2, 3\), got \(2,\)")),
    ("train_epoch on a generator (no len)", lambda c: T.train_epoch(c.model, c.loss, c.opt, iter(c.loader)),
     Raises(TypeError, r"loader must have a len\(\)")),
    ("evaluate on a loader of no batches", lambda c: T.evaluate(c.model, _loader_of()),
     Raises(ValueError, r"loader yielded no batches; nothing to evaluate")),
    ("fit(scheduler=object()) before any epoch", lambda c: c.fit(scheduler=object()),
     Raises(TypeError, r"scheduler must be an npnet.optim scheduler or None")),
    ("fit(start_epoch=2, history=()) with a checkpoint", lambda c: c.fit(epochs=3, start_epoch=2, checkpoint_path=c.ckpt),
     Raises(ValueError, r"history must hold one EpochResult per epoch already done when checkpointing \(start_epoch=2\), "
                        r"got 0")),
    ("fit(resume=True) without checkpoint_path", lambda c: c.fit(resume=True),
     Raises(ValueError, r"resume=True needs checkpoint_path")),
    ("fit(config=object()) with a checkpoint, before any epoch", lambda c: c.fit(config={"x": object()},
                                                                                 checkpoint_path=c.ckpt),
     Raises(CheckpointError, r"config must be JSON-serialisable")),
    ("save_checkpoint(rng={'a': None})", lambda c: c.save(rng={"a": None}),
     Raises(TypeError, r"rng\['a'\] must be a numpy.random.Generator, got NoneType")),
    ("save_checkpoint into a missing directory", lambda c: c.save(path=os.path.join(c.tmp, "no", "c.npz")),
     Raises(CheckpointError, r"cannot write checkpoint .*no/c.npz: No such file or directory")),
    ("load_checkpoint(directory)", lambda c: T.load_checkpoint(c.tmp), Raises(CheckpointError, r"cannot read it")),
    ("plot_predictions labels of the wrong length",
     lambda c: plots.plot_predictions(np.zeros((3, 4, 4)), labels(2), labels(3), os.path.join(c.tmp, "p.png")),
     Raises(ValueError, r"labels must have shape \(3,\), one per image, got \(2,\)")),
]


@pytest.mark.parametrize("call, outcome", [pytest.param(f, o, id=i) for i, f, o in SPECIAL])
def test_special_row(ctx, call, outcome):
    if isinstance(outcome, Raises):
        check_raises(outcome, lambda: call(ctx))
    else:
        with np.errstate(all="ignore"):
            got = call(ctx)
        if outcome == REF:
            assert_same(*got, exact=False)


# =========================================================================== 4. the checkpoint loader under fuzz

def _tiny_run(seed=0):
    """A small run with everything a checkpoint holds: dropout and shuffle generators, Adam state, a scheduler."""
    init_ss, shuffle_ss, dropout_ss = np.random.SeedSequence(seed).spawn(3)
    model = T.build_model("mlp", hidden=3, dropout=0.5, in_features=4, num_classes=3, rng=rng(init_ss),
                          dropout_rng=rng(dropout_ss))
    opt = optim.Adam(model.params, lr=0.01)
    sched = optim.StepLR(opt, 1, gamma=0.5)
    loader = data.DataLoader(randn(8, 4), labels(8, C=3), 4, shuffle=True, rng=rng(shuffle_ss))
    return model, opt, sched, loader


@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "c.npz"
    model, opt, sched, loader = _tiny_run()
    T.fit(model, nn.CrossEntropyLoss(), opt, loader, loader, 2, scheduler=sched, checkpoint_path=str(path),
          config={"a": [1, 2.5]})
    return path.read_bytes()


def load_or_refuse(path):
    """load_checkpoint either returns a Checkpoint that restores (or refuses to) cleanly, or raises CheckpointError."""
    try:
        ckpt = T.load_checkpoint(path)
    except CheckpointError as e:
        assert str(e).startswith(f"checkpoint {path}: "), e
        assert "\n" not in str(e)
        return None
    assert isinstance(ckpt, T.Checkpoint)
    model, opt, sched, loader = _tiny_run(seed=1)
    try:
        ckpt.restore(model=model, optimizer=opt, scheduler=sched, rng=T.collect_rngs(model, loader))
    except CheckpointError:
        return ckpt
    for k, p in model.params.items():
        assert p.dtype == np.float32 and np.array_equal(p, ckpt.params[k], equal_nan=True)
    return ckpt


FUZZ = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@FUZZ
@given(content=st.one_of(st.binary(max_size=600), st.binary(max_size=600).map(lambda b: b"PK\x03\x04" + b),
                         st.binary(max_size=600).map(lambda b: b"\x93NUMPY" + b)))
def test_checkpoint_fuzz_arbitrary_bytes(tmp_path, content):
    path = tmp_path / "c.npz"
    path.write_bytes(content)
    assert load_or_refuse(path) is None or content.startswith(b"PK")


@FUZZ
@given(d=st.data())
def test_checkpoint_fuzz_mutated_bytes(tmp_path, checkpoint_bytes, d):
    raw = bytearray(checkpoint_bytes)
    for _ in range(d.draw(st.integers(1, 3), label="edits")):
        op = d.draw(st.sampled_from(["flip", "set", "cut", "insert", "delete", "copy"]), label="op")
        i = d.draw(st.integers(0, len(raw) - 1), label="at")
        if op == "flip":
            raw[i] ^= 1 << d.draw(st.integers(0, 7))
        elif op == "set":
            raw[i] = d.draw(st.integers(0, 255))
        elif op == "cut":
            del raw[i:]
        elif op == "insert":
            raw[i:i] = d.draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del raw[i:i + d.draw(st.integers(1, 64))]
        else:   # overwrite a stretch with bytes from elsewhere in the file (a plausible header, a size field...)
            j = d.draw(st.integers(0, len(raw) - 1))
            n = d.draw(st.integers(1, 32))
            raw[i:i + n] = raw[j:j + n]
        if not raw:
            break
    path = tmp_path / "c.npz"
    path.write_bytes(bytes(raw))
    load_or_refuse(path)


_DTYPES = ["bool", "int8", "int64", "uint64", "float16", "float32", "float64", "complex64", "U3", "S2", "V4",
           "datetime64[s]", [("a", "<i4"), ("b", "<f8")]]
_KEYS = ["format", "version", "epoch", "config", "checksum", "npnet_version", "param/1.weight", "param/1.bias",
         "param/4.weight", "optim/lr", "optim/betas", "optim/step.1.weight", "optim/exp_avg.1.weight", "sched/last_epoch",
         "sched/base_lrs", "rng/shuffle", "rngtype/shuffle", "rng/dropout.3", "metrics/epoch", "metrics/train_loss",
         "surprise", "param/9.weight"]


@st.composite
def any_array(draw, like=None):
    dtype = np.dtype(draw(st.sampled_from(_DTYPES)))
    shapes = [(), (0,), (3,), (2, 2), (6,)] + ([like.shape] if like is not None else [])
    shape = draw(st.sampled_from(shapes))
    r = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    raw = r.integers(0, 256, size=int(np.prod(shape)) * dtype.itemsize, dtype=np.uint8).tobytes()
    a = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    if dtype.kind == "f" and draw(st.booleans()):
        a = r.standard_normal(shape).astype(dtype)
        if a.size and draw(st.booleans()):
            with np.errstate(over="ignore"):   # 1e30 is inf in float16
                a.reshape(-1)[0] = draw(st.sampled_from([np.nan, np.inf, -np.inf, 1e30]))
    return a


@FUZZ
@given(d=st.data())
def test_checkpoint_fuzz_arrays_under_a_valid_checksum(tmp_path, checkpoint_bytes, d):
    """What the checksum cannot catch (a file rewritten with a fresh checksum) is caught by the checks after it."""
    src = tmp_path / "src.npz"
    src.write_bytes(checkpoint_bytes)
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    for _ in range(d.draw(st.integers(1, 3), label="changes")):
        key = d.draw(st.sampled_from(_KEYS), label="key")
        action = d.draw(st.sampled_from(["replace", "delete", "config", "metric"]), label="action")
        if action == "delete":
            arrays.pop(key, None)
        elif action == "config":
            arrays["config"] = np.array(d.draw(st.sampled_from(['[1, 2]', '"x"', 'null', '{"settings": 3}', '{', 'NaN',
                                                                '{"a": {"b": [1e999]}}'])))
        elif action == "metric":
            col = f'metrics/{d.draw(st.sampled_from(["epoch", "train_loss", "test_acc"]))}'
            if col in arrays and arrays[col].ndim == 1 and arrays[col].size and arrays[col].dtype.kind == "f":
                m = arrays[col].copy()
                m[d.draw(st.integers(0, len(m) - 1))] = d.draw(st.sampled_from([np.nan, np.inf, -1.0, 2.5, 1e300, 2.0**60]))
                arrays[col] = m
        else:
            arrays[key] = d.draw(any_array(like=arrays.get(key)), label="array")
    if d.draw(st.booleans(), label="fresh checksum"):
        arrays["checksum"] = np.array(CK._digest(arrays))
    path = tmp_path / "c.npz"
    (np.savez_compressed if d.draw(st.booleans(), label="compressed") else np.savez)(path, **arrays)
    load_or_refuse(path)


def _npy_claiming(shape, descr="<f8"):
    """The bytes of an .npy whose header claims ``shape`` but which holds 64 bytes of data."""
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, header)
    return out.getvalue() + bytes(64)


@pytest.mark.parametrize("case", ["npz stored", "npz deflated", "npy", "lying zip size", "huge itemsize"])
def test_checkpoint_header_claiming_a_huge_array_is_refused_before_allocating(tmp_path, checkpoint_bytes, case):
    path = tmp_path / "c.npz"
    if case == "npy":
        path.write_bytes(_npy_claiming((10**10,)))
    else:
        with zipfile.ZipFile(io.BytesIO(checkpoint_bytes)) as z:
            members = {n: z.read(n) for n in z.namelist()}
        if case == "huge itemsize":
            members["param/1.weight.npy"] = _npy_claiming((4,), descr="<U100000000")
        else:
            members["param/1.weight.npy"] = _npy_claiming((10**10,))
        method = zipfile.ZIP_DEFLATED if case == "npz deflated" else zipfile.ZIP_STORED
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", method) as z:
            for n, b in members.items():
                z.writestr(n, b)
        raw = bytearray(buf.getvalue())
        if case == "lying zip size":   # the member's uncompressed size, local header and central directory: 2 GB
            for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
                at = raw.find(sig)
                while at >= 0:
                    name_at = at + (30 if sig == b"PK\x03\x04" else 46)
                    if raw[name_at:name_at + 18] == b"param/1.weight.npy":
                        raw[at + offset:at + offset + 4] = struct.pack("<I", 0x7FFFFFFF)
                    at = raw.find(sig, at + 4)
        path.write_bytes(bytes(raw))
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError) as info:
            T.load_checkpoint(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"allocated {peak} bytes for a {path.stat().st_size}-byte file"
    expected = {"npy": "single .npy array", "lying zip size": "more than the file holds",
                "npz deflated": "is compressed (deflate)"}.get(case, "claims")
    assert expected in str(info.value)


def test_checkpoint_with_a_non_npy_member_or_bad_generator_state_is_refused(tmp_path, checkpoint_bytes):
    with zipfile.ZipFile(io.BytesIO(checkpoint_bytes)) as z:
        members = {n: z.read(n) for n in z.namelist()}
    path = tmp_path / "c.npz"
    with zipfile.ZipFile(path, "w") as z:
        for n, b in members.items():
            z.writestr(n, b)
        z.writestr("format", b"npnet-checkpoint")   # np.load would hand back raw bytes for it
    with pytest.raises(CheckpointError, match=r"unexpected member 'format'; an npnet checkpoint holds only .npy arrays"):
        T.load_checkpoint(path)
    path.write_bytes(checkpoint_bytes)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    words = arrays["rng/shuffle"].copy()
    words[5] = 2**40                                  # the buffered uint32 does not fit in 32 bits
    arrays["rng/shuffle"] = words
    arrays["checksum"] = np.array(CK._digest(arrays))
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match=r"generator 'shuffle' holds an invalid state"):
        T.load_checkpoint(path)


# =========================================================================== 5. the command line

SMALL = {"train": 60, "test": 20}
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


write_idx = idxdata.write_idx


def make_dataset(directory, *, gz=False, seed=0):
    return idxdata.make_dataset(directory, SMALL, gz=gz, seed=seed)


@pytest.fixture
def small(tmp_path, monkeypatch):
    """A small dataset, the only one npnet can find; returns its directory."""
    return idxdata.isolate(monkeypatch, tmp_path, SMALL)


def run_cli(capsys, *argv):
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def one_line(err):
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


FLAG_KINDS = {"--hidden": "int>=1", "--epochs": "int>=1", "--batch-size": "int>=1", "--seed": "int>=0",
              "--lr": "real>0", "--momentum": "real>=0", "--weight-decay": "real>=0", "--dropout": "prob<1"}
BAD_TEXTS = ["abc", "", " ", "nan", "inf", "-inf", "1e999", "-1", "0", "1", "1.5", "0x10", "1,5", "1e-400", "--"]


def _refused(kind, text):
    """Whether the CLI must refuse ``text`` for a flag of this kind."""
    try:
        value = int(text) if kind.startswith("int") else float(text)
    except ValueError:
        return True
    if not math.isfinite(value):
        return True
    return {"int>=1": value < 1, "int>=0": value < 0, "real>0": value <= 0, "real>=0": value < 0,
            "prob<1": not 0 <= value < 1}[kind]


CLI_BAD = [(flag, text) for flag, kind in FLAG_KINDS.items() for text in BAD_TEXTS if _refused(kind, text)]
CLI_BAD += [(flag, None) for flag in FLAG_KINDS]                       # the value left out
CLI_BAD += [(flag, text) for flag in ("--model", "--optimizer", "--init", "--dtype") for text in ("bogus", "", "MLP")]
CLI_BAD += [("--out", ""), ("--data-dir", ""), ("--out", "a\0b")]


@pytest.mark.parametrize("flag, text", CLI_BAD, ids=[f"{f} {t!r}" for f, t in CLI_BAD])
def test_cli_bad_value_exits_2_with_one_line(small, tmp_path, capsys, flag, text):
    argv = ["train", "--data-dir", small, "--out", tmp_path / "run"] + ([flag] if text is None else [flag, text])
    status, stdout, stderr = run_cli(capsys, *argv)
    assert status == 2
    line = one_line(stderr)
    assert line.startswith(f"npnet train: error: argument {flag}: ") and line.endswith("(see npnet train --help)"), line
    assert not os.path.exists(tmp_path / "run")


def test_cli_data_with_empty_data_dir_exits_2(capsys):
    status, _, stderr = run_cli(capsys, "data", "--data-dir", "")
    assert status == 2 and "argument --data-dir: expected a directory path, got ''" in one_line(stderr)


def _truncate(path):
    raw = open(path, "rb").read()
    open(path, "wb").write(raw[:len(raw) // 2])


def _label_12(path):
    raw = bytearray(open(path, "rb").read())
    raw[-1] = 12
    open(path, "wb").write(bytes(raw))


DAMAGE = {
    # id: (file, how)
    "truncated images": ("train-images-idx3-ubyte", _truncate),
    "garbage labels": ("t10k-labels-idx1-ubyte", lambda p: open(p, "wb").write(os.urandom(100))),
    "empty file": ("train-labels-idx1-ubyte", lambda p: open(p, "wb").close()),
    "label out of range": ("t10k-labels-idx1-ubyte", _label_12),
    "one image short": ("train-images-idx3-ubyte", lambda p: write_idx(p, np.zeros((SMALL["train"] - 1, 28, 28)))),
    "images 32x32": ("t10k-images-idx3-ubyte", lambda p: write_idx(p, np.zeros((SMALL["test"], 32, 32)))),
    "bad gzip": ("train-images-idx3-ubyte", lambda p: (os.rename(p, p + ".gz"), open(p + ".gz", "r+b").write(
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbage"))),
    "html page": ("train-labels-idx1-ubyte", lambda p: open(p, "wb").write(b"<!DOCTYPE html><html>404</html>")),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_cli_corrupt_data_exits_2_naming_the_file(small, tmp_path, capsys, damage):
    name, how = DAMAGE[damage]
    how(os.path.join(small, name))
    status, _, stderr = run_cli(capsys, "train", "--data-dir", small, "--out", tmp_path / "run", "--epochs", 1)
    assert status == 2
    line = one_line(stderr)
    assert line.startswith("npnet train: error: cannot load Fashion-MNIST: ") and name in line, line
    assert not os.path.exists(tmp_path / "run" / "checkpoint.npz")


def test_cli_data_dir_a_file_or_missing_and_out_a_file_exit_2(small, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    status, _, stderr = run_cli(capsys, "train", "--data-dir", afile, "--out", tmp_path / "run")
    assert status == 2 and f"--data-dir {afile}: is a file, not a directory" in one_line(stderr)
    status, _, stderr = run_cli(capsys, "train", "--data-dir", small, "--out", afile)
    assert status == 2 and f"cannot create --out {afile}" in one_line(stderr)


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _fail_from_call(n, real):
    """A stand-in for ``real`` that works n - 1 times, then finds the disk full."""
    calls = []

    def fake(*args, **kwargs):
        calls.append(1)
        if len(calls) >= n:
            _enospc()
        return real(*args, **kwargs)
    return fake


def test_cli_full_disk_while_checkpointing_exits_1_and_keeps_the_last_epoch(small, tmp_path, capsys, monkeypatch):
    args = ["train", "--data-dir", small, "--epochs", 3, "--batch-size", 16]
    assert run_cli(capsys, *args, "--out", tmp_path / "straight")[0] == 0
    out = tmp_path / "run"
    monkeypatch.setattr(np, "savez", _fail_from_call(3, np.savez))   # epoch 0 and 1 fit, epoch 2 does not
    status, _, stderr = run_cli(capsys, *args, "--out", out)
    assert status == 1
    line = one_line(stderr)
    ckpt = re.escape(str(out / "checkpoint.npz"))
    assert re.fullmatch(rf"npnet train: cannot write checkpoint {ckpt}: No space left on device; {ckpt} keeps epoch 1",
                        line), line
    assert T.load_checkpoint(out / "checkpoint.npz").epoch == 1
    assert [n for n in os.listdir(out) if n.startswith(".")] == []          # no temp file left
    assert open(out / "metrics.csv").read().count("\n") == 2                # the header and epoch 1
    monkeypatch.setattr(np, "savez", _fail_from_call(1, np.savez))
    status, _, stderr = run_cli(capsys, "train", "--out", out, "--resume", "--debug")
    assert status == 1 and "Traceback" in stderr and "No space left on device" in stderr
    monkeypatch.undo()
    monkeypatch.setattr(data, "_COUNTS", dict(SMALL))
    monkeypatch.setattr(data, "SYSTEM_DIRS", (str(tmp_path / "no-system-data"),))
    status, _, stderr = run_cli(capsys, "train", "--out", out, "--resume")   # space freed: the run finishes
    assert status == 0, stderr
    a, b = T.load_checkpoint(tmp_path / "straight" / "checkpoint.npz"), T.load_checkpoint(out / "checkpoint.npz")
    assert {k: v.tobytes() for k, v in a.params.items()} == {k: v.tobytes() for k, v in b.params.items()}
    assert [r.train_loss for r in a.metrics] == [r.train_loss for r in b.metrics]


@pytest.mark.parametrize("what", ["metrics.csv", "config.json", "curves.png"])
def test_cli_full_disk_writing_the_other_files_exits_1_with_one_line(small, tmp_path, capsys, monkeypatch, what):
    out = tmp_path / "run"
    real = _io.atomic_write

    def atomic_write(path, write, **kw):   # the disk fills up in the middle of writing this one file
        if os.path.basename(path) == what:
            return real(path, lambda f, tmp: (f.write(b"half a file"), _enospc()), **kw)
        return real(path, write, **kw)

    monkeypatch.setattr(_io, "atomic_write", atomic_write)
    status, _, stderr = run_cli(capsys, "train", "--data-dir", small, "--out", out, "--epochs", 2)
    assert status == 1
    line = one_line(stderr)
    if what == "curves.png":
        assert f"cannot write the plots into {out}: No space left on device" in line and "keeps epoch 2" in line, line
    else:
        assert f"cannot write {out}/{what}: No space left on device" in line, line
    if what == "metrics.csv":
        assert "checkpoint.npz keeps epoch 1" in line, line
    # failing before its first epoch (config.json), a new run takes its folder back with it
    assert [n for n in (os.listdir(out) if out.exists() else []) if n.startswith(".")] == []
    assert not os.path.exists(out / what) or what == "metrics.csv"


FSIZE_SCRIPT = textwrap.dedent("""
    import sys
    from npnet import cli, data
    data._COUNTS = {"train": %d, "test": %d}
    data.SYSTEM_DIRS = ()
    sys.exit(cli.main(sys.argv[1:]))
""") % (SMALL["train"], SMALL["test"])


def _npnet(argv, env, cwd, fsize=None):
    def limit():
        import resource
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    return subprocess.run([sys.executable, "-c", FSIZE_SCRIPT] + [str(a) for a in argv], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120, preexec_fn=limit if fsize else None)


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs RLIMIT_FSIZE")
def test_a_real_write_failure_mid_run_keeps_the_finished_epoch_and_resume_finishes_it(small, tmp_path):
    """No monkeypatching: the kernel refuses the write (RLIMIT_FSIZE, the way a full disk refuses it)."""
    env = {**os.environ, **ONE_THREAD, "XDG_CACHE_HOME": str(tmp_path / "cache"), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("NPNET_DATA", None)
    args = ["train", "--data-dir", small, "--batch-size", 16, "--seed", 3]
    p = _npnet(args + ["--out", "aa", "--epochs", 1], env, tmp_path)
    assert p.returncode == 0, p.stderr
    size1 = (tmp_path / "aa" / "checkpoint.npz").stat().st_size     # epoch 2's is 48 bytes of metrics larger
    p = _npnet(args + ["--out", "bb", "--epochs", 3], env, tmp_path, fsize=size1 + 24)
    assert p.returncode == 1, p.stderr
    line = one_line(p.stderr)
    assert "File too large" in line and "checkpoint.npz keeps epoch 1" in line, line
    assert T.load_checkpoint(tmp_path / "bb" / "checkpoint.npz").epoch == 1
    assert [n for n in os.listdir(tmp_path / "bb") if n.startswith(".")] == []
    assert _npnet(["train", "--out", "bb", "--resume", "--epochs", 3], env, tmp_path).returncode == 0
    assert _npnet(args + ["--out", "cc", "--epochs", 3], env, tmp_path).returncode == 0
    a, b = T.load_checkpoint(tmp_path / "cc" / "checkpoint.npz"), T.load_checkpoint(tmp_path / "bb" / "checkpoint.npz")
    assert {k: v.tobytes() for k, v in a.params.items()} == {k: v.tobytes() for k, v in b.params.items()}


# =========================================================================== 6. files: where npnet writes

def tree(root):
    """{relative path: (kind, size, mtime_ns)} of everything under root."""
    out = {}
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(d, name)
            st_ = os.lstat(p)
            out[os.path.relpath(p, root)] = ("dir" if name in dirs else "file",
                                             0 if name in dirs else st_.st_size, 0 if name in dirs else st_.st_mtime_ns)
    return out


NASTY = "my run 'x' \"y\" $(touch pwned) `touch pwned2`; rm -rf z && echo | ünï☃ *?[a]"


def test_npnet_train_writes_only_into_out_and_the_cache(tmp_path):
    """A real `npnet train` with HOME, XDG_CACHE_HOME and TMPDIR in a sandbox, the cwd in another
    directory, and an --out full of shell syntax: the only new files are in --out and the cache."""
    for d in ("home", "cache", "tmp", "cwd"):
        (tmp_path / d).mkdir()
    data_dir = make_dataset(tmp_path / "data", gz=True)     # gzipped: the decoded copy goes to the cache
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path / "home"),
           "XDG_CACHE_HOME": str(tmp_path / "cache"), "TMPDIR": str(tmp_path / "tmp"), "PYTHONDONTWRITEBYTECODE": "1",
           "LANG": "C.UTF-8", **ONE_THREAD}
    before = tree(tmp_path)
    p = _npnet(["train", "--data-dir", data_dir, "--out", NASTY, "--epochs", 2], env, tmp_path / "cwd")
    assert p.returncode == 0, p.stderr
    after = tree(tmp_path)
    new = {k: v for k, v in after.items() if before.get(k) != v}
    out_dir = os.path.join("cwd", NASTY)
    outside = sorted(k for k in new if not (k == out_dir or k.startswith(out_dir + os.sep) or k.startswith("cache" + os.sep)
                                            or k == "cache"))
    # matplotlib keeps its font cache in $XDG_CACHE_HOME/matplotlib (the cache), and its import creates its
    # (empty) config directory ~/.config/matplotlib: that directory, and no file, may appear outside
    matplotlib_config = {os.path.join("home", ".config"), os.path.join("home", ".config", "matplotlib")}
    assert [k for k in outside if k not in matplotlib_config] == [], f"written outside --out and the cache: {outside}"
    assert all(new[k][0] == "dir" for k in outside)
    assert sorted(os.listdir(tmp_path / out_dir)) == ["checkpoint.npz", "config.json", "curves.png", "metrics.csv",
                                                      "predictions.png"]
    assert sorted(os.listdir(tmp_path / "cwd")) == [NASTY]                 # no "pwned": nothing ran the text
    decoded = os.listdir(tmp_path / "cache" / "npnet" / "fashion-mnist")
    assert len(decoded) == 1 and decoded[0].startswith("decoded-") and decoded[0].endswith(".npz")
    assert os.listdir(tmp_path / "tmp") == []


@pytest.mark.parametrize("out", [NASTY, "-starts with a dash", "trailing space ", "a/b/../c"],
                         ids=["shell", "dash", "space", "dots"])
def test_out_is_used_as_given(small, tmp_path, capsys, monkeypatch, out):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    status, stdout, stderr = run_cli(capsys, "train", "--data-dir", small, f"--out={out}", "--epochs", 1)
    assert status == 0, stderr
    assert os.path.isfile(os.path.join(cwd, out, "checkpoint.npz"))
    created = sorted(os.path.relpath(os.path.join(d, n), cwd) for d, ds, fs in os.walk(cwd) for n in ds + fs)
    # the kernel resolves the path (a/b/../c is a/c once a/b exists): os.makedirs(out) and nothing else
    where = os.path.relpath(os.path.realpath(os.path.join(cwd, out)), cwd)
    dirs = {"a", "a/b", "a/c"} if out == "a/b/../c" else {where}
    files = {os.path.join(where, n) for n in ("checkpoint.npz", "config.json", "curves.png", "metrics.csv",
                                              "predictions.png")}
    assert set(created) == dirs | files, created
    assert f"to {out}" in stdout


# --------------------------------------------------------------------------- a full disk, unit by unit

def _proxy_open_failing_after(limit):
    """os.fdopen whose files accept ``limit`` bytes, then report a full disk."""
    real = os.fdopen

    class Full:
        def __init__(self, f):
            self.f, self.written = f, 0

        def write(self, b):
            if self.written + len(b) > limit:
                _enospc()
            self.written += len(b)
            return self.f.write(b)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    return lambda *a, **k: Full(real(*a, **k))


@pytest.mark.parametrize("where", ["mkstemp", "write", "fsync", "replace"])
def test_save_checkpoint_on_a_full_disk_keeps_the_old_one_and_leaves_no_temp_file(tmp_path, monkeypatch, where):
    model, opt, sched, loader = _tiny_run()
    path = tmp_path / "c.npz"
    T.save_checkpoint(path, model=model, optimizer=opt, scheduler=sched, epoch=0, rng=rng())
    before = path.read_bytes()
    from npnet import _io   # every file npnet writes goes through _io.atomic_write
    patch = {"mkstemp": (_io.tempfile, "mkstemp", _enospc), "write": (_io.os, "fdopen", _proxy_open_failing_after(1000)),
             "fsync": (_io.os, "fsync", _enospc), "replace": (_io.os, "replace", _enospc)}[where]
    monkeypatch.setattr(*patch)
    with pytest.raises(CheckpointError, match=rf"cannot write checkpoint {re.escape(str(path))}: No space left on device"):
        T.save_checkpoint(path, model=model, optimizer=opt, scheduler=sched, epoch=0, rng=rng(5))
    monkeypatch.undo()
    assert path.read_bytes() == before and T.load_checkpoint(path).epoch == 0
    assert os.listdir(tmp_path) == ["c.npz"]


def test_download_on_a_full_disk_leaves_no_partial_file(tmp_path, monkeypatch):
    from httpserver import LocalServer, Reply

    raw = bytes([0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3])
    with LocalServer() as server:
        for base in data.FASHION_MNIST_FILES:
            server.route(f"/{base}.gz", Reply(body=gzip.compress(raw)))
        monkeypatch.setattr(data.os, "fsync", _enospc)
        with pytest.raises(DownloadError, match=r"cannot write .*train-images-idx3-ubyte.gz: No space left on device"):
            data.download_fashion_mnist(tmp_path / "d", mirrors=[server.url], timeout=5, retries=0,
                                        checksums={b: hashlib.sha256(raw).hexdigest() for b in data.FASHION_MNIST_FILES})
    assert os.listdir(tmp_path / "d") == []


def test_decoded_cache_on_a_full_disk_is_just_skipped(small, tmp_path, monkeypatch):
    gz_dir = make_dataset(tmp_path / "gz", gz=True)
    monkeypatch.setattr(data.os, "fsync", _enospc)
    X_train, y_train, X_test, y_test = data.load_fashion_mnist(gz_dir, download=False)
    assert X_train.shape == (SMALL["train"], 28, 28) and y_test.shape == (SMALL["test"],)
    cache = tmp_path / "cache" / "npnet" / "fashion-mnist"
    assert not cache.exists() or os.listdir(cache) == []


def test_same_seed_same_run_with_and_without_interruption(tmp_path):
    """Two runs from one seed are bit-identical, and so is one stopped after epoch 1 and resumed."""
    def run(epochs, path, resume=False):
        model, opt, sched, loader = _tiny_run(seed=4)
        result = T.fit(model, nn.CrossEntropyLoss(), opt, loader, loader, epochs, scheduler=sched,
                       checkpoint_path=str(path), resume=resume)
        return {k: v.tobytes() for k, v in model.params.items()}, [r.train_loss for r in result.history]
    a = run(3, tmp_path / "a.npz")
    assert run(3, tmp_path / "b.npz") == a
    run(1, tmp_path / "c.npz")
    assert run(3, tmp_path / "c.npz", resume=True) == a
    model, opt, sched, loader = _tiny_run(seed=5)
    T.fit(model, nn.CrossEntropyLoss(), opt, loader, loader, 3, scheduler=sched)
    assert {k: v.tobytes() for k, v in model.params.items()} != a[0]
