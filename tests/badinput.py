"""The bad-input tables: shared machinery, and what each row's outcome means.

Each module's test file holds its own tables (the section "bad inputs" at its
end); this file holds what they share. Read a table as rows: (a lambda that
makes the call, a bad input, the expected outcome) with an id; pytest runs one
test per row.

1. ``ArrayTable`` x ``BAD_ARRAYS``: every array argument of every public function,
   module forward, backward closure, loss, optimizer constructor and step,
   initializer, gradcheck, data and train function, crossed with int, bool,
   object, complex and float16 dtypes, NaN, inf, an empty batch, non-contiguous
   and read-only copies, 0-d arrays, a wrong shape, the other float dtype,
   lists, None, strings and plain numbers.
2. ``ScalarTable`` x ``BAD_SCALARS``: every other argument (sizes, rates, flags,
   choices, generators, dtypes, paths, callables, modules, loaders...) crossed
   with None, strings, lists, bools, complex, NaN, inf, negatives, fractions...
   An argument's kind ("int>=1", "prob<1", "real>0", "flag", "choice",
   "generator?"; a trailing "?" accepts None) gives each bad value's outcome.
3. ``special_params``: rows the cross products cannot express (dict keys,
   mismatched pairs, whole-loader faults...).

Outcomes:

- ``SAME``: the result equals that of the good (contiguous, writable) input.
  Read-only and non-contiguous inputs must always give it.
- ``REF``: the result equals the row's reference (torch where torch computes),
  NaN and inf in the same places: how NaN, inf and empty batches are judged.
- ``OK``: returns without an error (no reference to compare with).
- ``Names(TypeError | ValueError, argument, *shows)``: an error of that kind whose
  message names the argument and says what was expected or what arrived
  (``check_raises`` looks for those words, not for a wording); ``shows`` are
  values the message must hold verbatim, for a row whose point is a value (the
  offending class index, the shape that arrived). ``Raises(exc, regex)`` is the
  general form, for the few errors that are not about one argument.
- ``Deviates(outcome, reason)``: a known deviation from torch; the row runs as a
  strict xfail, so it fails loudly the day the deviation is fixed.

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
import contextlib
import copy
import dataclasses
import errno
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

from npnet import data, nn, optim
from npnet import train as T
from npnet.errors import DataError
from npnet.nn import functional as F

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
    """An error of kind ``exc`` whose message matches the regex ``match`` (usually
    ``named(argument)``) and holds each string of ``shows`` verbatim. Written
    ``Names(exc, argument, *shows)`` in the tables."""
    exc: Any
    match: str
    shows: tuple = ()

    def __repr__(self):
        names = "|".join(e.__name__ for e in (self.exc if isinstance(self.exc, tuple) else (self.exc,)))
        return f"Raises({names}, {self.match!r}{''.join(', ' + repr(s) for s in self.shows)})"


def Names(exc, argument, *shows):
    """The outcome of a bad argument: an ``exc`` (a class or a tuple) whose message names
    ``argument`` as a whole word (a tuple of names: each of them), and, where a row is about a value (the offending class
    index, the shape that arrived), holds each of ``shows`` verbatim. The wording is free:
    ``check_raises`` asks only that the message say what was expected or what arrived."""
    if isinstance(argument, tuple):
        return Raises(exc, "(?s)^" + "".join(f"(?=.*{named(a)})" for a in argument), tuple(shows))
    return Raises(exc, named(argument), tuple(shows))


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


@contextlib.contextmanager
def refuses(exc, argument, *shows):
    """``pytest.raises`` for a bad argument, as ``Names``: the kind of error, the argument
    named, each of ``shows`` verbatim; the rest of the wording is free."""
    outcome = Names(exc, argument, *shows)
    with pytest.raises(outcome.exc, match=outcome.match) as info:
        yield info
    for shown in outcome.shows:
        assert shown in str(info.value), f"{shown!r} is not in the message: {info.value}"


def check_raises(outcome, call):
    """Run call, expecting ``outcome`` (a Raises); the message must say what arrived or was expected."""
    with pytest.raises(outcome.exc, match=outcome.match) as info:
        call()
    assert not isinstance(info.value, FORBIDDEN), f"{type(info.value).__name__} reached the user: {info.value}"
    message = str(info.value)
    for shown in outcome.shows:
        assert shown in message, f"{shown!r} is not in the message: {message}"
    assert re.search(r"\b(got|expected|expects|must|needs|not|no|refused|only|cannot|allowed|would)\b", message), message
    assert "\n" not in message.strip() or isinstance(info.value, DataError), message
    return info.value




def enospc(*args, **kwargs):
    """A stand-in for a write, fsync or rename on a full disk."""
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


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
    type_error = Names(TypeError, arg.name)
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
        # the point of the row is the offending index: the message must show it
        return Names(ValueError, arg.name, "99" if bad == "out-of-range" else "-3")
    return type_error   # a wrong dtype


class ArrayTable(list):
    """The array arguments of one test file: ``add(...)`` one, ``params()`` every applicable row."""

    def add(self, id, call, args, pos, name=None, **kw):
        pos = pos if isinstance(pos, tuple) else (pos,)
        self.append(Arg(id, call, args, pos, name or pos[-1], **kw))

    def params(self):
        rows = [(arg, bad, outcome_of(arg, bad)) for arg in self for bad in BAD_ARRAYS]
        rows = [r for r in rows if r[2] is not SKIP]
        return rows_to_params(rows, [f"{a.id}-{b}" for a, b, _ in rows])


def check_array_row(arg, bad, outcome):
    """Run one row of an ArrayTable (the body of every file's ``test_array_argument``)."""
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


def grad_of(f, **inputs):
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

# the loss arguments, shared by the kernels (test_functional.py) and the loss modules (test_losses.py)
C = 5
ce_args = lambda: {"X": randn(4, C), "t": labels(4), "w": np.linspace(0.5, 2, C).astype(np.float32)}   # noqa: E731
ce_empty = lambda: {"X": randn(0, C), "t": labels(0), "w": np.linspace(0.5, 2, C).astype(np.float32)}   # noqa: E731


def ce_ref(a):
    return nt(TF.cross_entropy(tt(a["X"]), tt(a["t"]).long(), weight=tt(a["w"])))


def ce_back_ref(a):
    (g,) = grad_of(lambda X: TF.cross_entropy(X, tt(a["t"]).long(), weight=tt(a["w"])), X=a["X"])(
        a["dloss"] if a["dloss"] is not None else np.ones((), a["X"].dtype), ("X",))
    return g


# A wrong_shape row shows the shape that arrived: labels of shape (N, 1) against N
# predictions are the classic mistake, and the message is where the user sees it.
CE_TARGET = dict(
    kind="index", zero_d=Names(ValueError, "target"),
    wrong_shape=(lambda v: v[:, None], Names(ValueError, "target", "(4, 1)")),
    # float targets are class probabilities, so float32 indices are a shape error, not a dtype error
    over={"float32": Names(ValueError, "target"), "bool": Names(TypeError, "target"),
          "object": Names(TypeError, "target"), "complex": Names(TypeError, "target")})
CE_INPUT = dict(
    zero_d=Names(ValueError, "input"),
    # fewer rows of input than targets: the message names the target and shows the input's shape
    wrong_shape=(lambda v: v[:3], Names(ValueError, "target", "(3, 5)")),
    mixed=Names(TypeError, "weight"))
CE_WEIGHT = dict(
    zero_d=Names(ValueError, "weight"),
    wrong_shape=(lambda v: v[:-1], Names(ValueError, "weight", "(4,)")),
    mixed=Names(TypeError, "weight"), over={"None": REF})
CE_INF = Deviates(REF, "with an infinite dloss the fused gradient scale * (p - onehot) gives -inf at the "
                        "target class; torch's unfused nll + log_softmax backward gives inf - inf = nan there")

# an upstream gradient (dY of a kernel, dy of a module, dloss of a loss, grads[...] of a step)
# goes through one check, _validate.like: a wrong shape is a ValueError, the other float
# dtype a TypeError, and both name the argument, whichever caller it reaches through
def like_rows(name, cut=lambda v: v[:, :-1], zero_d=True):
    """The zero_d, wrong_shape and mixed outcomes of an array checked against another by
    ``_validate.like``: ``cut`` makes the badly shaped value; ``zero_d=False`` for an
    argument that is 0-d itself (``dloss`` of a mean)."""
    rows = dict(wrong_shape=(cut, Names(ValueError, name)), mixed=Names(TypeError, name))
    return dict(rows, zero_d=Names(ValueError, name)) if zero_d else rows


DLOSS = like_rows("dloss", cut=lambda v: v.reshape(1), zero_d=False)

# the input of F.linear and of nn.Linear: one feature too many, or no feature axis at all
LINEAR_INPUT = dict(zero_d=Names(ValueError, "input"),
                    wrong_shape=(lambda v: randn(4, v.shape[-1] + 1), Names(ValueError, "input")),
                    mixed=Names(TypeError, "input"))

nll_args = lambda: {"X": F.log_softmax(randn(4, C), 1), "t": labels(4), "w": None}   # noqa: E731
nll_empty = lambda: {"X": randn(0, C), "t": labels(0), "w": None}   # noqa: E731
NLL_TARGET = dict(CE_TARGET, over={k: Names(TypeError, "target") for k in ("float32", "bool", "object", "complex")})

mse_args = lambda: {"X": X0(), "Y": D0(), "dloss": None}   # noqa: E731
mse_empty = lambda: {"X": randn(0, 5), "Y": randn(0, 5), "dloss": None}   # noqa: E731
mse_ref = lambda a: nt(TF.mse_loss(tt(a["X"]), tt(a["Y"])))   # noqa: E731
mseb_ref = lambda a: grad_of(lambda X, Y: TF.mse_loss(X, Y), X=a["X"], Y=a["Y"])(   # noqa: E731
    a["dloss"] if a["dloss"] is not None else np.ones((), a["X"].dtype), ("X",))[0]
MSE = dict(zero_d=Names(ValueError, "target"), wrong_shape=(lambda v: v[:, :-1], Names(ValueError, "target")),
           mixed=Names(TypeError, "target"))   # for the input row too: the target is checked against the input


# =========================================================================== 2. other arguments

BAD_SCALARS = {
    "None": None, "str": "1", "list": [1], "bool": True, "complex": 1 + 2j, "nan": math.nan, "inf": math.inf,
    "negative": -1, "zero": 0, "one": 1, "fraction": 0.5, "above-one": 1.5, "big": 7, "array": np.ones(2),
    "object": object(),
}
NOT_A_NUMBER = ("None", "str", "list", "bool", "complex", "array", "object")


def kind_outcome(kind, bad, name):
    """The default outcome of BAD_SCALARS[bad] for an argument of this kind (OK: accepted)."""
    T_, V_ = Names(TypeError, name), Names(ValueError, name)
    optional = kind.endswith("?")
    kind = kind.rstrip("?")
    if bad == "None" and optional:
        return OK
    bounds = {"real": (-math.inf, math.inf, False, False), "real>=0": (0, math.inf, False, False),
              "real>0": (0, math.inf, True, False), "prob": (0, 1, False, False), "prob<1": (0, 1, False, True)}
    if kind in bounds:
        if bad in NOT_A_NUMBER:
            return T_
        if bad in ("nan", "inf"):
            return V_
        value = BAD_SCALARS[bad]
        lo, hi, lo_open, hi_open = bounds[kind]
        inside = (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
        return OK if inside else V_
    if kind.startswith("int"):
        if bad in NOT_A_NUMBER + ("nan", "inf", "fraction", "above-one"):
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
        return Names((TypeError, ValueError), name) if refused else OK
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


SPECIAL_KINDS = {
    # kinds whose good values are not in BAD_SCALARS, and which values are fine for them
    "shape": {"list": OK},
    "mirrors": {"None": OK, "str": Names(ValueError, "mirrors"), "list": Names(ValueError, "mirrors")},
    "rngs": {},
    # fit names the list history, plot_history names it metrics
    "history": {"list": Raises(TypeError, f"{named('history[0]')}|{named('metrics[0]')}")},
    "callbacks": {"list": Names(TypeError, "callbacks[0]"), "str": Names(TypeError, "callbacks")},
    "loader": {"list": Names(TypeError, "loader")},
    "params": {"list": Names(TypeError, "params")},
}


def scalar_outcome(s, bad):
    if bad in s.over:
        return s.over[bad]
    kind = s.kind
    special = SPECIAL_KINDS.get(kind.rstrip("?"), {})
    if bad in special and not (bad == "None" and kind.endswith("?")):
        return special[bad]
    outcome = kind_outcome(kind, bad, s.name)
    return s.ok if outcome == OK else outcome


class ScalarTable(list):
    """The other arguments of one test file: ``add(...)`` one, ``params()`` every applicable row."""

    def add(self, id, call, name, kind, **kw):
        self.append(Scalar(id, call, name, kind, **kw))

    def params(self):
        rows = [(s, bad, scalar_outcome(s, bad)) for s in self for bad in BAD_SCALARS]
        rows += [(s, "good", s.ok) for s in self if s.good is not SKIP]
        rows = [r for r in rows if r[2] is not SKIP]
        return rows_to_params(rows, [f"{s.id}-{b}" for s, b, _ in rows])


@pytest.fixture
def ctx(tmp_path, monkeypatch):
    """Good objects, and a machine with no Fashion-MNIST anywhere and no network."""
    monkeypatch.setattr(data, "SYSTEM_DIRS", (str(tmp_path / "no-system-data"),))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("NPNET_DATA", raising=False)
    monkeypatch.delenv("NPNET_FASHION_MNIST_URL", raising=False)
    monkeypatch.setattr(data, "_RETRY_BACKOFF", 0.0)
    return Ctx(str(tmp_path))


def check_scalar_row(ctx, s, bad, outcome):
    """Run one row of a ScalarTable (the body of every file's ``test_other_argument``)."""
    value = s.good if bad == "good" else copy.copy(BAD_SCALARS[bad])
    before = snapshot(value)
    if isinstance(outcome, Raises):
        check_raises(outcome, lambda: s.call(value, ctx))
    else:
        with np.errstate(all="ignore"):
            s.call(value, ctx)
    assert_unchanged(before, snapshot(value))


# =========================================================================== 3. rows written out

def special_params(rows):
    """pytest params of (id, lambda ctx: the call, outcome) rows."""
    return [pytest.param(f, o, id=i) for i, f, o in rows]


def check_special_row(ctx, call, outcome):
    """Run one written-out row (the body of every file's ``test_special_row``)."""
    if isinstance(outcome, Raises):
        check_raises(outcome, lambda: call(ctx))
    else:
        with np.errstate(all="ignore"):
            got = call(ctx)
        if outcome == REF:
            assert_same(*got, exact=False)
