"""The recipe of CONTRIBUTING.md ("Adding a layer"), followed for a toy layer.

``Square`` (Y = X^2, dX = 2 X dY) is written here alone: its plain kernel pair,
its module, and one ``reference.registry`` entry. Nothing else is touched, and
torch then checks it everywhere a layer is checked: ``reference.compare``, the
registry-driven property test, the rows of ``python -m reference``, Sequential
and the lockstep twin of ``npnet train --check-torch``. The entry lives only
while this file's tests run (``registry.scoped``).
"""
import contextlib
import types

import numpy as np
import pytest
import torch
from hypothesis import find, given, settings

import reference.__main__ as cli
from npnet import nn, optim
from reference import compare, registry, twin
from reference.lockstep import TorchTwin
from reference.registry import elementwise
from strategies import registered_cases, registered_modules

pytestmark = pytest.mark.usefixtures("torch_one_thread", "square_registered")


# (1) the kernels: a plain pair, the formula in the docstring (npnet/nn/functional/)

def square(X):
    """Y = X^2, elementwise.

    Shape: X (*) -> Y (*), X's dtype.
    """
    return X * X


def square_backward(dY, X):
    """dX = 2 X dY, elementwise.

    Shape: dY (*), X (*) -> dX (*).
    """
    return 2 * X * dY


# (2) the module: forward returns (Y, backward); backward returns (dX, grads) (a layer file)

class Square(nn.Module):
    """Y = X^2 elementwise; no parameters."""

    def forward(self, X, train=True):
        Y = square(X)

        def backward(dY, *, need_dx=True):
            return square_backward(dY, X), {}

        return Y, backward


# (3) one registry entry (reference/entries.py): torch twin, error bound, table rows, strategy

class TorchSquare(torch.nn.Module):
    def forward(self, x):
        return x * x


def register_square():
    return registry.register(
        Square, group="activation",
        twin=lambda m, replay: TorchSquare(),
        # y = x^2 carries the input's error m doubled by |x|; dx = 2 x dy sums nothing: K = 1
        bound=elementwise(forward=lambda b: np.abs(b.y) + 2 * b.ax * b.m,
                          backward=lambda b: 2 * (b.ax + b.m) * b.a),
        cases=lambda: [("Square", Square(), np.random.default_rng(0).standard_normal((8, 12)), {}),
                       ("Square, inputs to +-1e3", Square(), np.random.default_rng(1).uniform(-1e3, 1e3, (4, 5)), {})],
        strategy=lambda d, shape: (Square(), {}))


@contextlib.contextmanager
def square_entry():
    """Square registered for the ``with`` block only, so other test files never see it."""
    with registry.scoped():
        register_square()
        yield


@pytest.fixture(scope="module")
def square_registered():
    with square_entry():
        yield


# --------------------------------------------------------------------- what runs then

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compare_checks_square_against_torch(dtype):
    x = np.random.default_rng(2).standard_normal((5, 3)) * 10
    x[0, 0] = 0.0
    result = compare(Square(), x, dtype=dtype)
    assert result.ok, str(result)
    assert set(result.max_rel) == {"out", "dx"}
    assert type(twin(Square())) is TorchSquare


def test_compare_fails_a_square_with_a_wrong_backward():
    class ForgotTheTwo(Square):             # registered as Square through its base class
        def forward(self, X, train=True):
            Y, _ = super().forward(X, train)
            return Y, lambda dY, *, need_dx=True: (X * dY, {})

    result = compare(ForgotTheTwo(), np.random.default_rng(3).standard_normal((4, 6)))
    assert not result.ok
    assert [f.split(":")[0] for f in result.failed] == ["dx"]
    assert result.max_rel["out"] <= result.tol


@given(case=registered_cases(groups=("activation",)))
def test_every_registered_activation_matches_torch_square_included(case):
    entry, module, x, dy, dtype, kw = case
    result = compare(module, x, dy, dtype=dtype, **kw)
    assert result.ok, f"{module!r}\n{result}"


def test_the_registry_strategies_draw_square_alone_and_inside_a_sequential():
    enough = settings(max_examples=2000, database=None)
    _, module, _ = find(registered_modules((3, 4), groups=("activation",)), lambda t: isinstance(t[1], Square),
                        settings=enough)
    assert isinstance(module, Square)
    _, net, kw = find(registered_modules((3, 4), groups=("layer",)),
                      lambda t: isinstance(t[1], nn.Sequential) and any(isinstance(c, Square) for c in t[1]),
                      settings=enough)
    assert compare(net, np.random.default_rng(4).standard_normal((3, 4)), **kw).ok


def test_python_m_reference_rows_include_square_in_both_dtypes():
    cases = [c for c in cli.module_cases() if isinstance(c[2], Square)]
    assert [(group, name) for group, name, *_ in cases] == [("activation", "Square"),
                                                           ("activation", "Square, inputs to +-1e3")]
    rows = cli.module_rows(cases)
    assert [(r.name, r.dtype) for r in rows] == [(n, d) for _, n, *_ in cases for d in ("float64", "float32")]
    assert all(r.ok for r in rows)


def test_the_lockstep_twin_trains_a_model_with_square_alongside_npnet():
    r = np.random.default_rng(5)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 4, rng=r, dtype=np.float64), Square(),
                          nn.Linear(4, 3, rng=r, dtype=np.float64))
    opt = optim.SGD(model.params, lr=0.01)
    side = TorchTwin(model, opt)
    assert isinstance(side.net[2], TorchSquare)
    loss_fn = nn.CrossEntropyLoss()
    side.on_epoch_start(1)
    for _ in range(3):
        X, y = r.standard_normal((5, 2, 3)), r.integers(0, 3, 5)
        Y, backward = model.forward(X)
        loss, loss_backward = loss_fn.forward(Y, y)
        opt.step(backward(loss_backward())[1])
        side.on_step(types.SimpleNamespace(X=X, y=y, loss=float(loss)))
    side.on_epoch_end(types.SimpleNamespace(epoch=1))
    (epoch, loss_diff, param_diff), = side.epoch_diffs
    assert epoch == 1 and loss_diff < 1e-12 and param_diff < 1e-12
    assert 0 < max(float(np.abs(v).max()) for v in model.params.values())


def test_the_entry_lives_only_inside_its_scope():
    assert Square in {e.cls for e in registry.entries()}          # this file's scope
    with registry.scoped():
        registry.unregister(Square)
        before = [e.cls for e in registry.entries()]
        with pytest.raises(TypeError, match="no torch twin for Square"):
            twin(Square())
        with square_entry():                                      # what the fixture does
            assert registry.entry_for(Square()).cls is Square
        assert [e.cls for e in registry.entries()] == before      # and after it: gone, nothing else changed
        with pytest.raises(TypeError, match="no torch twin for Square"):
            compare(Square(), np.ones((2, 2)))
