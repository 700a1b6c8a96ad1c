"""The reference package itself: twins, state_dict round trips, compare's verdicts
and the ``python -m reference`` table.

torch runs on one thread here (the torch_one_thread fixture).
"""
import ast
import pathlib
import sys
import types

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import reference
import reference.__main__ as cli
from npnet import nn
from reference import ReplayDropout, Row, compare, registry, tolerance, twin
from strategies import dtypes, mlps, registered_cases, shapes, sizes, torch_one_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("torch_one_thread")


# ------------------------------------------------------------------------------- twins

def test_each_module_has_the_right_twin():
    r = np.random.default_rng(0)
    w = np.array([1.0, 2.0, 0.5])
    cases = [
        (nn.Linear(3, 2, rng=r), torch.nn.Linear, {"in_features": 3, "out_features": 2}),
        (nn.ReLU(), torch.nn.ReLU, {}),
        (nn.LeakyReLU(0.3), torch.nn.LeakyReLU, {"negative_slope": 0.3}),
        (nn.Sigmoid(), torch.nn.Sigmoid, {}),
        (nn.Tanh(), torch.nn.Tanh, {}),
        (nn.Softmax(axis=0), torch.nn.Softmax, {"dim": 0}),
        (nn.LogSoftmax(axis=-2), torch.nn.LogSoftmax, {"dim": -2}),
        (nn.Flatten(1, 2), torch.nn.Flatten, {"start_dim": 1, "end_dim": 2}),
        (nn.Dropout(0.25), torch.nn.Dropout, {"p": 0.25}),
        (nn.CrossEntropyLoss(weight=w, ignore_index=2, reduction="sum", label_smoothing=0.1), torch.nn.CrossEntropyLoss,
         {"ignore_index": 2, "reduction": "sum", "label_smoothing": 0.1}),
        (nn.NLLLoss(weight=w, ignore_index=-1, reduction="none"), torch.nn.NLLLoss, {"ignore_index": -1, "reduction": "none"}),
        (nn.MSELoss("sum"), torch.nn.MSELoss, {"reduction": "sum"}),
    ]
    for module, cls, attrs in cases:
        t = twin(module)
        assert type(t) is cls
        for k, v in attrs.items():
            assert getattr(t, k) == v, (cls, k)
    assert torch.equal(twin(cases[9][0]).weight, torch.from_numpy(w))
    assert twin(nn.Linear(3, 2, bias=False)).bias is None
    assert twin(nn.Linear(3, 2, dtype=np.float64)).weight.dtype == torch.float64


def test_twin_of_a_sequential_and_of_a_subclass():
    r = np.random.default_rng(1)
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3, rng=r), nn.ReLU(), nn.Sequential(nn.Linear(3, 2, rng=r)))
    t = twin(net)
    assert [type(c) for c in t] == [torch.nn.Flatten, torch.nn.Linear, torch.nn.ReLU, torch.nn.Sequential]
    assert sorted(t.state_dict()) == sorted(net.params) == ["1.bias", "1.weight", "3.0.bias", "3.0.weight"]

    class MyLinear(nn.Linear):
        pass
    assert type(twin(MyLinear(2, 2))) is torch.nn.Linear


def test_twin_of_something_else_is_a_type_error():
    with pytest.raises(TypeError, match=r"no torch twin for object"):
        twin(object())


def test_replay_dropout_multiplies_by_the_mask_in_training_only():
    mask = np.array([[0.0, 2.0], [2.0, 0.0]], np.float32)
    d = ReplayDropout(0.5, mask)
    x = torch.ones(2, 2)
    assert torch.equal(d(x), torch.from_numpy(mask))
    assert torch.equal(d.eval()(x), x)
    assert d.state_dict() == {}


def test_twin_replays_the_masks_of_a_training_forward():
    r = np.random.default_rng(2)
    net = nn.Sequential(nn.Linear(3, 5, rng=r), nn.Dropout(0.5, rng=r), nn.Tanh(), nn.Dropout(0.2, rng=r))
    x = r.standard_normal((4, 3)).astype(np.float32)
    y, backward = net.forward(x)
    t = twin(net, replay=backward)
    assert isinstance(t[1], ReplayDropout) and isinstance(t[3], ReplayDropout)
    np.testing.assert_allclose(t(torch.from_numpy(x)).detach().numpy(), y, rtol=1e-6, atol=1e-7)
    _, eval_backward = net.forward(x, train=False)
    assert isinstance(twin(net, replay=eval_backward)[1], torch.nn.Dropout)


# --------------------------------------------------------------- state_dict both ways

@given(in_shape=shapes(max_dims=2, max_side=4), out=sizes, dtype=dtypes, data=st.data())
def test_params_are_torch_state_dict_keys_and_shapes_both_ways(in_shape, out, dtype, data):
    net = data.draw(mlps(in_shape, out)).to(dtype)
    t = twin(net)
    sd = t.state_dict()
    assert list(sd) == list(net.params)
    assert {k: tuple(v.shape) for k, v in sd.items()} == {k: v.shape for k, v in net.params.items()}

    # npnet -> torch, spelled out, with strict key matching
    fresh = twin(net)
    with torch.no_grad():
        for p in fresh.parameters():
            p.zero_()
    fresh.load_state_dict({k: torch.from_numpy(v) for k, v in net.params.items()})
    for k, v in fresh.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), net.params[k])

    # torch -> npnet: fresh torch weights go in with no renaming, and both compute the same
    torch.manual_seed(data.draw(st.integers(0, 2**31 - 1)))
    for m in t.modules():
        if isinstance(m, torch.nn.Linear):
            m.reset_parameters()
    arrays = {k: v.detach().numpy() for k, v in t.state_dict().items()}
    assert net.load_state_dict(arrays) is net
    for k, v in net.params.items():
        np.testing.assert_array_equal(v, arrays[k])
        assert v.dtype == dtype
    x = np.random.default_rng(0).standard_normal((3,) + in_shape).astype(dtype)
    assert compare(net, x, dtype=dtype, train=False).ok


def test_load_state_dict_refuses_other_keys_and_shapes():
    layer = nn.Linear(3, 2)
    with pytest.raises(ValueError, match=r"missing \['bias'\], unexpected \['b'\]"):
        layer.load_state_dict({"weight": np.zeros((2, 3)), "b": np.zeros(2)})
    with pytest.raises(ValueError, match=r"state_dict\['weight'\] must have shape \(2, 3\), got \(3, 2\)"):
        layer.load_state_dict({"weight": np.zeros((3, 2)), "bias": np.zeros(2)})


# ----------------------------------------------------------------------------- compare

def test_compare_result_fields_row_and_text():
    layer = nn.Linear(4, 3, rng=np.random.default_rng(3))
    x = np.random.default_rng(4).standard_normal((5, 4))
    r64 = compare(layer, x)
    assert r64.ok and bool(r64) and r64.failed == []
    assert r64.dtype == "float64" and r64.K == 6
    assert set(r64.max_abs) == set(r64.max_rel) == set(r64.scale) == {"out", "dx", "weight", "bias"}
    assert max(r64.max_rel.values()) <= 1e-10          # float64 agrees far inside 1e-10
    assert r64.tol == tolerance(np.float64, 6) == pytest.approx(4 * 2.0**-52 * 6**0.5)
    r32 = compare(layer, x, dtype=np.float32)
    assert r32.ok and r32.tol == pytest.approx(4 * 2.0**-23 * 6**0.5)
    row = r32.row("layer", "Linear")
    assert isinstance(row, Row) and row.ok and row.dtype == "float32" and row.errors == r32.max_rel
    assert "compare (float32, K=6" in str(r32) and "weight" in str(r32)
    assert layer.params["weight"].dtype == np.float32      # compare ran on copies


def test_compare_with_a_given_upstream_gradient_and_its_errors():
    layer = nn.Linear(2, 3)
    x = np.ones((4, 2))
    assert compare(layer, x, np.random.default_rng(5).standard_normal((4, 3))).ok
    with pytest.raises(ValueError, match=r"dy must have shape \(4, 3\), got \(3, 4\)"):
        compare(layer, x, np.ones((3, 4)))
    with pytest.raises(TypeError, match=r"x must have dtype float32 or float64"):
        compare(layer, np.ones((4, 2), np.int64))
    with pytest.raises(TypeError, match=r"CrossEntropyLoss is a loss; pass target="):
        compare(nn.CrossEntropyLoss(), x)
    with pytest.raises(TypeError, match=r"dtype must be np.float32 or np.float64"):
        compare(layer, x, dtype=np.float16)


def test_compare_fails_a_module_that_changes_its_input():
    class Scribbler(nn.ReLU):
        def forward(self, X, train=True):
            Y, backward = super().forward(X, train)
            X[...] = 0
            return Y, backward

    result = compare(Scribbler(), np.random.default_rng(6).standard_normal((3, 2)))
    assert not result.ok and "input: changed" in result.failed[0]


def test_compare_fails_a_wrong_dtype_and_a_missing_gradient():
    class Float64Out(nn.Tanh):
        def forward(self, X, train=True):
            Y, backward = super().forward(X, train)
            return Y.astype(np.float64), lambda dY, need_dx=True: (backward(dY.astype(X.dtype))[0], {})

    result = compare(Float64Out(), np.ones((2, 2)), dtype=np.float32)
    assert not result.ok and result.failed == ["out: npnet dtype float64, expected float32"]

    class NoBiasGrad(nn.Linear):
        def forward(self, X, train=True):
            Y, backward = super().forward(X, train)

            def bw(dY, *, need_dx=True):
                dX, grads = backward(dY)
                return dX, {"weight": grads["weight"]}
            return Y, bw

    result = compare(NoBiasGrad(2, 2), np.ones((3, 2)))
    assert not result.ok and result.failed == ["bias: missing from npnet"]


def test_compare_counts_matching_nan_and_inf_as_agreement():
    result = compare(nn.CrossEntropyLoss(), np.zeros((2, 3)), target=np.array([-100, -100]))
    assert result.ok and result.max_abs["out"] == 0.0       # nan on both sides
    result = compare(nn.ReLU(), np.array([np.inf, -np.inf, 1.0]))
    assert result.ok


# ----------------------------------------------------------------------- the table

def test_module_rows_cover_every_kernel_in_both_dtypes_and_pass():
    rows = cli.module_rows()
    assert all(isinstance(r, Row) for r in rows)
    bad = [f"{r.name} {r.dtype}: {r.note}" for r in rows if not r.ok]
    assert not bad
    names = {r.name for r in rows}
    for word in ["softmax", "log_softmax", "indices, mean", "indices, sum", "indices, none", "probs", "weight",
                 "ignore_index", "label_smoothing", "(N, C, d1)", "unbatched", "nll_loss", "mse_loss",
                 "Linear(12, 6)", "bias=False", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Flatten", "Dropout",
                 "Sequential"]:
        assert any(word in n for n in names), word
    for name in names:
        assert {r.dtype for r in rows if r.name == name} == {"float64", "float32"}
    # deterministic: the same numbers twice
    assert [r.errors for r in cli.module_rows()] == [r.errors for r in rows]


def test_main_prints_the_table_and_exits_by_the_verdicts(monkeypatch, capsys):
    ok_row = Row("init", "fake init check", "float64", {"x": 0.0}, 1e-12, True)
    monkeypatch.setattr(cli, "init_optim_rows", lambda: [ok_row])
    monkeypatch.setattr(cli, "module_rows", lambda: [Row("layer", "fake layer", "float32", {"out": 1e-8}, 1e-6, True)])
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert "fake layer" in out and "fake init check" in out and "0 out of tolerance" in out
    monkeypatch.setattr(cli, "init_optim_rows", lambda: [Row("optim", "broken", "float32", {"p": 1.0}, 1e-6, False)])
    assert cli.main([]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_init_optim_rows_come_from_their_module_or_a_note(monkeypatch):
    fake = types.ModuleType("reference.checks_init_optim")
    fake.init_rows = lambda: [Row("init", "a", "float64", ok=True)]
    fake.optim_rows = lambda: [Row("optim", "b", "float64", ok=True)]
    monkeypatch.setitem(sys.modules, "reference.checks_init_optim", fake)
    monkeypatch.setattr(reference, "checks_init_optim", fake, raising=False)
    assert [r.name for r in cli.init_optim_rows()] == ["a", "b"]
    monkeypatch.setitem(sys.modules, "reference.checks_init_optim", None)     # as if the file were absent
    monkeypatch.delattr(reference, "checks_init_optim", raising=False)
    (note,) = cli.init_optim_rows()
    assert note.ok and "skipped" in note.name


# ---------------------------------------------------------------------- the registry

@given(case=registered_cases())
def test_every_registered_module_matches_torch(case):
    entry, module, x, dy, dtype, kw = case
    result = compare(module, x, dy, dtype=dtype, **kw)
    assert result.ok, f"{entry.cls.__name__}: {module!r}\n{result}"


def test_every_public_layer_and_loss_has_a_registry_entry():
    public = [getattr(nn, name) for name in nn.__all__]
    classes = [c for c in public if isinstance(c, type) and c is not nn.Module]
    assert classes, "npnet.nn lists no classes"
    missing = [c.__name__ for c in classes if c not in {e.cls for e in registry.entries()}]
    assert not missing
    for e in registry.entries():
        assert e.cases(), e.cls.__name__          # each has rows in python -m reference


def _complete(**over):
    fields = dict(group="activation", twin=lambda m, replay: torch.nn.Identity(),
                  bound=registry.elementwise(lambda b: b.m, lambda b: b.mg),
                  cases=lambda: [], strategy=lambda d, shape: (None, {}))
    fields.update(over)
    return fields


def test_register_refuses_an_incomplete_or_wrong_entry_when_it_is_made():
    class Toy(nn.Module):
        pass

    with registry.scoped():
        with pytest.raises(TypeError, match="bound"):
            registry.register(Toy, **{k: v for k, v in _complete().items() if k != "bound"})
        with pytest.raises(TypeError, match="bound"):
            registry.register(Toy, **_complete(bound=None))
        with pytest.raises(TypeError, match="bound"):                  # a module given a loss's rule
            registry.register(Toy, **_complete(bound=registry.LossBound(lambda *a: ({}, 1))))
        with pytest.raises(TypeError, match="twin"):
            registry.register(Toy, **_complete(twin=None))
        with pytest.raises(TypeError, match="strategy"):
            registry.register(Toy, **_complete(strategy="relu"))
        with pytest.raises(ValueError, match="group"):
            registry.register(Toy, **_complete(group="layers"))
        with pytest.raises(TypeError, match="K"):
            registry.Bound(lambda b: b.m, lambda b: b.mg, K="in_features")
        with pytest.raises(TypeError, match="cls"):
            registry.register("Toy", **_complete())
        with pytest.raises(ValueError, match="already registered"):
            registry.register(nn.ReLU, **_complete())
        assert Toy not in {e.cls for e in registry.entries()}
        registry.register(Toy, **_complete())
        assert registry.entry_for(Toy()).cls is Toy
    assert Toy not in {e.cls for e in registry.entries()}          # scoped() put the registry back
    with pytest.raises(TypeError, match="no torch twin for Toy"):
        twin(Toy())


def _imports(path):
    """(module, name, bound as) for every import in a file, resolving relative ones inside reference/."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, None, a.asname or a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = "reference" + ("." + base if base else "")
            for a in node.names:
                yield base, a.name, a.asname or a.name


def _private_npnet_names(root):
    private = []
    for path in sorted(root.glob("*.py")):
        text = path.read_text()
        npnet_aliases = set()
        for module, name, alias in _imports(path):
            if module.split(".")[0] != "npnet":
                continue
            if any(part.startswith("_") for part in module.split(".")) or (name or "").startswith("_"):
                private.append(f"{path.name}: from {module} import {name}")
            npnet_aliases.add(alias)
        for node in ast.walk(ast.parse(text)):
            # an underscored attribute of an npnet name (train._modules, ...)
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and isinstance(node.value, ast.Name) and node.value.id in npnet_aliases):
                private.append(f"{path.name}:{node.lineno}: {node.value.id}.{node.attr}")
    return private


def test_reference_uses_npnet_public_names_only(tmp_path):
    assert _private_npnet_names(pathlib.Path(reference.__file__).parent) == []
    # and the check sees both kinds of back door
    (tmp_path / "a.py").write_text("from npnet import _validate as V\nfrom npnet import train as T\nT._modules(1)\n")
    assert len(_private_npnet_names(tmp_path)) == 2
