"""The studies teach facts; these tests assert the facts (at the quick size), then run
each study from the command line as a user would.

Real-data tests (marked ``realdata``) need Fashion-MNIST; without it they skip,
except under CI (env CI set), where a missing data set is a failure.
"""
import argparse
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from npnet.data import load_fashion_mnist, to_float
from npnet.errors import DataError
from npnet.nn import functional as F
from npnet import nn
from npnet.studies import STUDIES, _common, batchnorm, initialization, kfold, load, stability, symmetry, vanishing

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HAS_TORCH = importlib.util.find_spec("torch") is not None


@pytest.fixture(scope="module")
def fmnist():
    """The four Fashion-MNIST arrays (uint8 images), or skip/fail when they are missing."""
    try:
        return load_fashion_mnist(download=False)
    except DataError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Fashion-MNIST is missing under CI: {exc}")
        pytest.skip(f"Fashion-MNIST not available: {str(exc).splitlines()[0]}")


def floats(data, n_train, n_test):
    X_train, y_train, X_test, y_test = data
    return (to_float(X_train[:n_train]), y_train[:n_train],
            to_float(X_test[:n_test]), y_test[:n_test])


# --------------------------------------------------------------------------- softmax-stability

@pytest.fixture(scope="module")
def stab():
    return stability.run(quick=True)


@pytest.mark.parametrize("dtype, low, high", [("float32", 80.0, 88.8), ("float64", 700.0, 709.8)])
def test_naive_softmax_first_overflows_near_log_of_the_largest_float(stab, dtype, low, high):
    # exp(x) overflows above log(finfo.max): 88.72 in float32, 709.78 in float64. The sum of
    # 10 exponentials may overflow up to log(10) earlier; nothing can fail later.
    limit = float(np.log(np.finfo(dtype).max))
    first = stab.first[dtype]["softmax naive"]["value"]
    assert first is not None and low < first <= high
    assert limit - np.log(10) - 1e-6 <= first <= limit + 1e-6
    assert stab.overflow_limit[dtype] == pytest.approx(limit)


@pytest.mark.parametrize("dtype", stability.DTYPES)
def test_stable_forms_never_fail_and_naive_cross_entropy_does(stab, dtype):
    for form in stability.STABLE:
        assert stab.first[dtype][form]["value"] is None, form
        assert stab.first[dtype][form]["grad"] is None, form
    # Subtracting the max fixes the overflow, not log(0): both log-of-probability forms fail.
    for form in ("CE naive", "CE log(stable softmax)"):
        assert stab.first[dtype][form]["value"] is not None, form
        assert stab.first[dtype][form]["value"] < stab.first[dtype]["softmax naive"]["value"]
    loss = stab.loss[dtype]["CE stable"]
    assert np.all(np.isfinite(loss)) and np.all(np.diff(loss) > 0)


def test_a_stable_softmax_probability_can_still_round_to_zero(stab):
    # True probabilities below the smallest float are 0 in any softmax; that is why CE must not take log(p).
    for dtype in stability.DTYPES:
        zero = stab.first[dtype]["softmax stable"]["zero"]
        assert zero is not None and zero == pytest.approx(stab.first[dtype]["softmax naive"]["zero"], rel=1e-6)


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed")
@pytest.mark.parametrize("dtype, tol", [("float32", 1e-5), ("float64", 1e-12)])
def test_stable_gradients_match_torch_at_every_scale(stab, dtype, tol):
    assert stab.grad_error is not None, stab.notes
    for form in stability.STABLE:
        err = stab.grad_error[dtype][form]
        assert np.all(np.isfinite(err)) and err.max() < tol, form
    # The naive softmax agrees too, as long as it is finite.
    naive = stab.grad_error[dtype]["softmax naive"]
    below = stab.scales < stab.first[dtype]["softmax naive"]["value"]
    assert np.all(naive[below] < tol) and np.all(np.isinf(naive[~below]))


def test_naive_forms_equal_the_stable_ones_on_small_logits():
    rng = np.random.default_rng(1)
    for dtype in (np.float32, np.float64):
        X = rng.standard_normal((5, 7)).astype(dtype)
        t = rng.integers(0, 7, 5)
        tol = 1e-6 if dtype == np.float32 else 1e-14
        np.testing.assert_allclose(stability.naive_softmax(X), F.softmax(X), rtol=tol, atol=tol)
        P = stability.naive_softmax(X)
        np.testing.assert_allclose(stability.naive_cross_entropy(P, t), F.cross_entropy(X, t), rtol=10 * tol)
        np.testing.assert_allclose(stability.naive_cross_entropy_backward(P, t),
                                   F.cross_entropy_backward(None, X, t), rtol=10 * tol, atol=tol)


def _axes(fig, gid):
    (ax,) = [a for a in fig.axes if a.get_gid() == gid]
    return ax


def _lines(ax):
    return {line.get_gid(): line for line in ax.get_lines() if line.get_gid()}


def test_stability_figure_marks_inf_and_nan_where_they_start(stab):
    # The strip has one labelled row per form; each non-finite event is a bar from the exact
    # scale measured in result.first to the end of the grid, and nothing marks a finite form.
    pytest.importorskip("matplotlib")
    fig = stability.figure(stab)
    try:
        for d in stability.DTYPES:
            ax = _axes(fig, f"nonfinite {d}")
            forms = list(stability.FORMS)
            assert [t.get_text() for t in ax.get_yticklabels()] == forms
            bars = _lines(ax)
            for row, form in enumerate(forms):
                for event in ("value", "grad"):
                    start = stab.first[d][form][event]
                    if start is None:
                        assert f"{event} {form}" not in bars, (d, form, event)
                        continue
                    x, y = bars[f"{event} {form}"].get_data()
                    assert x[0] == start and x[-1] == stab.scales[-1], (d, form, event)
                    assert np.all(np.abs(np.asarray(y) - row) < 0.5), (d, form, event)
                    assert any(t.get_text().startswith(f"{event} inf/nan from {start:.4g}") for t in ax.texts)
            naive = stab.first[d]["softmax naive"]["value"]
            assert naive == pytest.approx(stab.overflow_limit[d], rel=0.05)   # where exp overflows
    finally:
        _common.pyplot().close(fig)


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed")
def test_stability_figure_draws_no_point_for_inf_or_nan_and_labels_its_zero_floor(stab):
    # Non-finite errors leave a gap (no marker at a made-up height); exact zeros sit on a labelled floor.
    pytest.importorskip("matplotlib")
    fig = stability.figure(stab)
    try:
        for d in stability.DTYPES:
            ax = _axes(fig, f"grad error {d}")
            lines = _lines(ax)
            assert sorted(f for f in lines if f != "floor") == sorted(stability.FORMS)
            for form, err in stab.grad_error[d].items():
                x, y = (np.asarray(a, dtype=float) for a in lines[form].get_data())
                np.testing.assert_array_equal(x, stab.scales)
                assert np.all(np.isnan(y[~np.isfinite(err)])), (d, form)
                ok = np.isfinite(err)
                np.testing.assert_array_equal(y[ok], np.maximum(err[ok], stability.FLOOR))
            floor = lines["floor"].get_ydata()
            assert np.all(np.asarray(floor) == stability.FLOOR)
            assert any(np.any(e == 0) for e in stab.grad_error[d].values())   # the floor has exact zeros
            assert ax.get_ylim()[0] < stability.FLOOR
            assert any(t.get_text().startswith("0, or below") for t in ax.texts)
            # Every plotted line (loss panel included) holds only finite numbers or gaps.
            for a in (ax, _axes(fig, f"loss {d}")):
                for line in a.get_lines():
                    y = np.asarray(line.get_ydata(), dtype=float)
                    assert not np.any(np.isinf(y)), line.get_gid()
    finally:
        _common.pyplot().close(fig)


def test_stability_figure_without_torch_keeps_the_strip(tmp_path):
    pytest.importorskip("matplotlib")
    result = stability.run(quick=True, use_torch=False, scales=np.logspace(0, 3, 13))
    fig = stability.figure(result)
    try:
        gids = {a.get_gid() for a in fig.axes}
        assert gids == {f"{kind} {d}" for kind in ("loss", "nonfinite") for d in stability.DTYPES}
    finally:
        _common.pyplot().close(fig)
    path = stability.plot(result, str(tmp_path / "s.png"))
    assert os.path.getsize(path) > 0


def test_stability_without_torch_skips_the_column():
    result = stability.run(quick=True, use_torch=False, scales=np.logspace(0, 3, 13))
    assert result.grad_error is None and result.notes
    assert "max |grad - torch|" in stability.table(result)


# --------------------------------------------------------------------------- vanishing

@pytest.fixture(scope="module")
def van():
    return vanishing.run(quick=True)


def test_sigmoid_derivative_peaks_at_a_quarter_at_zero(van):
    k = int(np.argmax(van.sigmoid_grad))
    assert van.x[k] == 0.0
    assert van.sigmoid_grad[k] == 0.25
    assert np.all(van.sigmoid_grad <= 0.25)
    assert van.sigmoid_grad[0] < 1e-3 and van.sigmoid_grad[-1] < 1e-3


def test_sigmoid_with_small_init_vanishes_by_orders_of_magnitude(van):
    g = van.norms("sigmoid", "N(0,0.01)")
    assert len(g) == van.depth >= 20
    assert g[0] < 1e-6 * g[-1]
    assert np.all(np.diff(np.log(g)) > 0)  # shrinks at every layer on the way back


def test_kaiming_with_relu_keeps_the_gradient_level(van):
    g = van.norms("relu", "Kaiming")
    assert g.max() / g.min() < 10


def test_relu_with_unit_normal_init_explodes(van):
    assert van.norms("relu", "N(0,1)").min() > 1e6 * van.norms("relu", "Kaiming").max()


def test_product_of_random_matrices_explodes(van):
    assert van.product_norms[-1] > 1e20
    assert len(van.product_norms) == 100


# --------------------------------------------------------------------------- symmetry

@pytest.mark.realdata
def test_constant_init_keeps_hidden_units_exactly_equal(fmnist):
    result = symmetry.run(quick=True, data=fmnist)
    assert result.steps == 100
    constant = result.spread["constant"]
    assert np.all(constant == 0.0)  # exactly, at every one of the 100 steps
    W = result.weights["constant"]
    assert np.all(W == W[0]) and not np.all(W == result.value)  # identical, yet trained
    assert result.final_spread("random N(0,0.01)") > 0
    assert result.final_spread("constant + dropout 0.5") > 0
    assert len(np.unique(result.weights["constant + dropout 0.5"], axis=0)) == result.hidden
    assert result.test_accuracy["random N(0,0.01)"] > result.test_accuracy["constant"]


# --------------------------------------------------------------------------- init

@pytest.mark.realdata
def test_small_init_shrinks_the_signal_and_every_init_learns(fmnist):
    result = initialization.run(quick=True, data=floats(fmnist, 10000, 2000))
    small, kaiming = result.activation_std["N(0,0.01)"], result.activation_std["Kaiming"]
    assert small[-1] < 0.05 * kaiming[-1]
    assert np.all(np.diff(np.log(small)) < np.log(0.5))  # at least halves at every layer
    assert np.all((kaiming > 0.2) & (kaiming < 5))
    for name in result.inits:
        assert result.test_accuracy[name][-1] > 0.3, name  # chance is 0.1
    assert result.test_accuracy["Kaiming"][-1] > result.test_accuracy["N(0,0.01)"][-1]


# --------------------------------------------------------------------------- kfold

def _check_folds_shared(result, n):
    val_sets = [v for _, v in result.folds]
    assert np.array_equal(np.sort(np.concatenate(val_sets)), np.arange(n))  # a partition
    for train_idx, val_idx in result.folds:
        assert np.intersect1d(train_idx, val_idx).size == 0
    for s in result.settings:
        seen = result.folds_seen[s.name]
        assert len(seen) == result.k
        assert all(a is b for a, b in zip(seen, val_sets))  # the very same folds for every setting


def test_kfold_machinery_on_synthetic_data():
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((10, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 300)
    X = centers[y] + 0.3 * rng.standard_normal((300, 1, 28, 28)).astype(np.float32)
    result = kfold.run(quick=True, data=(X[:240], y[:240], X[240:], y[240:]), epochs=3)
    assert result.k == 3 and result.val_accuracy.shape == (2, 3)
    _check_folds_shared(result, 240)
    assert result.chosen == int(np.argmax(result.mean))
    assert result.test_accuracy > 0.5  # separable clusters
    assert "<- chosen" in kfold.table(result)


@pytest.mark.realdata
def test_kfold_selects_on_shared_folds_and_tests_once(fmnist):
    result = kfold.run(quick=True, data=floats(fmnist, 3000, 2000))
    _check_folds_shared(result, 3000)
    assert result.chosen == int(np.argmax(result.mean))
    assert np.all(result.val_accuracy > 0.3)
    assert np.all(result.std < 0.1)
    assert result.test_accuracy > 0.5
    assert len(result.final_history["loss"]) == result.chosen_setting.epochs


def test_kfold_grids_include_adam_dropout_and_kaiming():
    best = kfold.GRIDS["best"]
    assert any(s.optimizer == "adam" for s in best)
    assert any(s.dropout > 0 for s in best)
    assert any(s.init == "kaiming" for s in best)


# --------------------------------------------------------------------------- batchnorm

@pytest.fixture(scope="module")
def bn(fmnist):
    return batchnorm.run(quick=True)   # 2,000 training images, 2 epochs, lr 0.1, 0.9 and 4


@pytest.mark.realdata
def test_batchnorm_lets_the_sigmoid_lenet_learn_at_every_learning_rate(bn):
    # Checked on seeds 0-3 with lr 0.1, 0.9, 4 and 10: without BatchNorm the training accuracy
    # never left 0.09-0.12; with it, epoch 2 reached 0.32-0.67. At lr <= 0.9 its first epoch's
    # loss was 1.70-1.97 against 2.33-2.58 without; at lr 4 the first steps overshoot
    # (epoch 1 loss 8-10, the last Linear has no BatchNorm) before it learns.
    assert bn.lrs == (0.1, 0.9, 4.0) and bn.epochs == 2
    for lr in bn.lrs:
        plain, normed = bn.curves["LeNet", lr], bn.curves["LeNet+BN", lr]
        assert plain.diverged is None and normed.diverged is None, lr
        assert plain.train_accuracy.max() < 0.2, lr                      # chance is 0.1
        assert normed.train_accuracy[-1] > max(0.25, plain.train_accuracy[-1] + 0.15), lr
        if lr <= 1:
            assert normed.loss[0] < plain.loss[0] - 0.2, lr


@pytest.mark.realdata
def test_batchnorm_keeps_every_layers_activation_scale_near_one(bn):
    for lr in bn.lrs:
        plain = bn.curves["LeNet", lr].activation_std
        normed = bn.curves["LeNet+BN", lr].activation_std
        assert plain.shape == normed.shape == (bn.epochs + 1, len(batchnorm.LAYERS))
        # Without BatchNorm the image-to-image spread shrinks at every layer (seeds 0-3: 3x-7.5x
        # per layer, 0.002 at the fourth) and training does not lift it.
        assert np.all(plain[:, 1:] < plain[:, :-1] / 2), lr
        assert np.all(plain[:, -1] < 0.01), lr
        # With it: 1 before training (BatchNorm's weight starts at 1), near 1 after.
        np.testing.assert_allclose(normed[0], 1.0, atol=0.02)
        assert np.all((normed > 0.5) & (normed < 2.5)), lr


def test_batchnorm_study_compares_like_with_like():
    # Same seed: the same convolution and Linear weights with and without BatchNorm.
    plain, normed = batchnorm.build(False, 3), batchnorm.build(True, 3)
    weighted = (nn.Conv2d, nn.Linear)
    pairs = list(zip([m for m in plain if isinstance(m, weighted)], [m for m in normed if isinstance(m, weighted)]))
    assert len(pairs) == 5 and sum(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in normed) == 4
    for a, b in pairs:
        assert a.params.keys() == b.params.keys()
        for k in a.params:
            np.testing.assert_array_equal(a.params[k], b.params[k])
    # The probe measures with batch statistics and leaves the running statistics as they were.
    X = np.random.default_rng(0).random((64, 1, 28, 28), dtype=np.float32)
    normed.forward(X)                                   # one training step's worth of moved statistics
    before = {k: v.copy() for k, v in normed.buffers.items()}
    stds = batchnorm.preactivation_stds(normed, X)
    np.testing.assert_allclose(stds, 1.0, atol=1e-3)
    for k, v in normed.buffers.items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)
    # An offset shared by every image is no spread.
    Z = np.random.default_rng(1).standard_normal((50, 3, 4, 4))
    assert batchnorm.unit_spread(Z + np.arange(3)[:, None, None]) == pytest.approx(batchnorm.unit_spread(Z))


def test_batchnorm_study_refuses_bad_settings_before_loading_data():
    for kwargs, name, kind in [({"lrs": []}, "lrs", ValueError), ({"lrs": [0.0]}, "lrs", ValueError),
                               ({"lrs": 0.5}, "lrs", TypeError), ({"batch_size": 1}, "batch_size", ValueError),
                               ({"epochs": 0}, "epochs", ValueError)]:
        with pytest.raises(kind, match=name):
            batchnorm.run(quick=True, data=None, **kwargs)


def test_batchnorm_table_csv_and_figure_from_a_small_result(tmp_path):
    # Two epochs, two lrs and one diverged run, without training: the table, the CSV and the figure.
    curves = {}
    rng = np.random.default_rng(0)
    for lr in (0.5, 2.0):
        for name in batchnorm.MODELS:
            loss, acc, stds = rng.random(2) + 1, rng.random(2), rng.random((3, 4)) + 0.1
            diverged = 2 if (name, lr) == ("LeNet", 2.0) else None
            if diverged:
                loss[1] = acc[1] = stds[2] = np.nan
            curves[name, lr] = batchnorm.Curves(loss, acc, acc / 2, stds, diverged)
    result = batchnorm.BatchNormResult(curves, (0.5, 2.0), 2, 32, 100, 50, 20, 0)
    text = batchnorm.table(result)
    assert "diverged" in text and "LeNet+BN  2  " in text and "-> -" in text
    header, rows = batchnorm.csv_rows(result)
    assert header == batchnorm.CSV_HEADER and len(rows) == 2 * 2 * 3
    assert rows[0][:6] == ("LeNet", "0.5", 0, "", "", "") and float(rows[1][3]) == curves["LeNet", 0.5].loss[0]
    pytest.importorskip("matplotlib")
    png = batchnorm.plot(result, str(tmp_path / "bn.png"))
    assert os.path.getsize(png) > 10_000


# --------------------------------------------------------------------------- command line

def _study_command():
    """``python -m npnet study`` when npnet.cli offers it, else ``python -m npnet.studies``."""
    try:
        import npnet.cli  # noqa: F401
        if importlib.util.find_spec("npnet.__main__") is not None:
            out = subprocess.run([sys.executable, "-m", "npnet", "study", "--help"], capture_output=True,
                                 text=True, cwd=REPO, timeout=60)
            if out.returncode == 0:
                return [sys.executable, "-m", "npnet", "study"]
    except ImportError:
        pass
    return [sys.executable, "-m", "npnet.studies"]


CLI_FACTS = {
    "softmax-stability": "88.72",
    "vanishing": "relu        Kaiming",
    "symmetry": "1 of 16",
    "init": "Kaiming",
    "kfold": "<- chosen",
    "batchnorm": "LeNet+BN  0.9",
}
REAL = {"symmetry", "init", "kfold", "batchnorm"}
CLI_OPTIONS = {"batchnorm": ["--epochs", "1", "--lrs", "0.9"]}   # what the facts need; the facts test the rest


@pytest.fixture(scope="module")
def study_command():
    return _study_command()


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.realdata) if n in REAL else n for n in STUDIES])
def test_every_study_runs_from_the_command_line(name, study_command, tmp_path, request):
    if name in REAL:
        request.getfixturevalue("fmnist")
    out = tmp_path / "out"
    proc = subprocess.run(study_command + [name, "--quick", "--out", str(out)] + CLI_OPTIONS.get(name, []),
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert CLI_FACTS[name] in proc.stdout
    png = out / f"{name}.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert (out / "table.txt").read_text().strip() in proc.stdout
    if hasattr(load(name), "csv_rows"):
        lines = (out / f"{name}.csv").read_text().splitlines()
        assert lines[0] == ",".join(load(name).CSV_HEADER) and len(lines) > 1


def test_add_parser_builds_the_study_subcommand():
    parser = argparse.ArgumentParser(prog="npnet")
    from npnet.studies.cli import add_parser

    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["study", "kfold", "--quick", "--grid", "best", "-k", "4", "--seed", "3"])
    assert (args.study, args.quick, args.grid, args.k, args.seed) == ("kfold", True, "best", 4, 3)
    assert args.out == os.path.join("runs", "study-kfold") and callable(args.func)
    args = parser.parse_args(["study", "batchnorm", "--lrs", "0.5", "2", "--epochs", "1"])
    assert (args.lrs, args.epochs) == ([0.5, 2.0], 1)
    for name in STUDIES:
        args = parser.parse_args(["study", name])
        assert args.out == os.path.join("runs", f"study-{name}") and not args.quick and args.seed == 0
        assert load(name).__name__.endswith(STUDIES[name])


def test_a_bad_option_is_an_exit_code_not_a_traceback(tmp_path):
    from npnet.studies.cli import main

    assert main(["vanishing", "--quick", "--seed", "-1", "--out", str(tmp_path)]) == 2
    with pytest.raises(SystemExit):
        main(["no-such-study"])


def test_an_unusable_out_folder_is_an_exit_code_not_a_traceback(tmp_path, capsys):
    from npnet.studies.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["vanishing", "--quick", "--out", ""])
    assert exc.value.code == 2 and "--out" in capsys.readouterr().err
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    assert main(["vanishing", "--quick", "--out", str(a_file)]) == 1
    captured = capsys.readouterr()
    assert "cannot write into --out" in captured.err and str(a_file) in captured.err
    assert "product of 100 random" in captured.out      # the result was printed before the write failed
    assert a_file.read_text() == "not a folder"


def test_naive_cross_entropy_refuses_what_is_not_class_indices():
    from npnet.studies import stability

    P = np.full((2, 3), 1 / 3)
    assert stability.naive_cross_entropy(P, np.array([0, 2])) == pytest.approx(np.log(3))
    for fn in (stability.naive_cross_entropy, stability.naive_cross_entropy_backward):
        with pytest.raises(TypeError, match="target must be an integer"):
            fn(P, np.array([0.0, 1.0]))          # once an IndexError from NumPy
        with pytest.raises(ValueError, match=r"in \[0, 3\)"):
            fn(P, np.array([0, 3]))
        with pytest.raises(ValueError, match="one class per row"):
            fn(P, np.array([0, 1, 2]))
