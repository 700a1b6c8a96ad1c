"""The benchmark scripts run, agree with torch before timing, and write their three files.

Timings are never asserted here: speed targets live in the benchmark report.
"""
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import benchmarks.__main__ as bench_main
from benchmarks import ops, report
from benchmarks.report import markdown

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
INFO = {"cpu": "x", "cpus": 2, "numpy": "2", "numpy_blas": "b", "numpy_threads": 2, "torch": "t",
        "torch_threads": 2, "python": "3"}


def committed_results():
    """{file name: SHA-256} of everything in benchmarks/results."""
    return {name: hashlib.sha256(open(os.path.join(RESULTS, name), "rb").read()).hexdigest()
            for name in sorted(os.listdir(RESULTS))}


def test_quick_ops_run_writes_json_markdown_and_chart(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "ops", "--quick", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("latest.json", "latest.md", "latest.png"):
        assert (tmp_path / name).stat().st_size > 0
    report = json.loads((tmp_path / "latest.json").read_text())
    names = {r["name"] for r in report["results"]}
    assert {"softmax", "log_softmax", "cross_entropy", "Linear", "ReLU", "Sigmoid", "Dropout", "MLP train step"} <= names
    assert {"Conv2d", "Conv2d: matrix products alone", "Conv2d / its floor (time ratio)"} <= names
    conv_shapes = [r["shape"] for r in report["results"] if r["name"] == "Conv2d"]
    assert len(conv_shapes) == 3 and sum(s.endswith("need_dx=False") for s in conv_shapes) == 1
    for shape in conv_shapes:     # every conv row comes with its floor and its ratio to it
        assert {r["name"] for r in report["results"] if r["shape"] == shape} >= {
            "Conv2d", "Conv2d: matrix products alone", "Conv2d / its floor (time ratio)"}
    for r in report["results"]:
        if "value" in r:        # a measurement row (a ratio to a floor), no torch column
            assert r["value"] > 0
            continue
        assert r["agree"] is True and r["npnet_s"] > 0 and r["torch_s"] > 0
        assert r["ratio"] == pytest.approx(r["npnet_s"] / r["torch_s"])
    assert report["machine"]["torch_threads"] >= 1 and "numpy_blas" in report["machine"]
    assert (tmp_path / "latest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _check_one_blas_thread_rows(by_name, label):
    """The epoch and its floor timed again with BLAS on one thread, in the same interleaved set."""
    epoch = by_name[f"{label}, BLAS on one thread"]
    floor = by_name[f"{label}: batch preparation and matrix products alone, BLAS on one thread"]
    assert epoch["npnet_s"] > 0 and floor["reference"] and not epoch.get("reference")
    assert epoch["torch_s"] == by_name[label]["torch_s"] == floor["torch_s"]
    ratio = by_name[f"{label}, BLAS on one thread / its floor on one thread (time ratio)"]["value"]
    assert ratio == pytest.approx(epoch["npnet_s"] / floor["npnet_s"])


@pytest.mark.realdata
def test_quick_train_part_runs_on_real_data(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "train", "--quick", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "latest.json").read_text())
    assert report["quick"] is True
    results = report["results"]
    by_name = {r["name"]: r for r in results}
    assert by_name["softmax regression epoch"]["ratio"] > 0 and by_name["MLP epoch"]["ratio"] > 0
    share = by_name["MLP epoch: share of time in matrix products"]["value"]
    # A ratio of two timings: on a busy machine it can pass 1 either way, so only its being
    # computed is checked here (speed targets live in the report, never in a test).
    assert 0 < share < float("inf")
    rss = [r for r in results if r["name"].startswith("peak RSS")][0]["value"]
    assert 10 < rss < 4000
    for label in ("softmax regression epoch", "MLP epoch"):
        floor = by_name[f"{label}: batch preparation and matrix products alone"]
        for row in (label, f"{label}: worked-example loop (README), need_dx=False",
                    f"{label}: worked-example loop without need_dx=False"):
            assert by_name[row]["npnet_s"] > 0 and by_name[row]["torch_s"] == by_name[label]["torch_s"]
        plain = [r for r in results if r["name"].startswith(f"{label}, NPNET_KERNELS=plain") and "ratio" in r]
        assert len(plain) == 1 and plain[0]["npnet_s"] > 0
        ratio = by_name[f"{label} / its floor (time ratio)"]["value"]
        assert ratio == pytest.approx(by_name[label]["npnet_s"] / floor["npnet_s"])
        _check_one_blas_thread_rows(by_name, label)
        for row in (f"{label}: worked-example loop", f"{label}, NPNET_KERNELS=plain", f"{label}: fused NumPy loop"):
            assert by_name[f"{row} / its floor (time ratio)"]["value"] > 0
    for label in ("LeNet epoch", "cnn epoch"):
        assert by_name[label]["npnet_s"] > 0 and by_name[label]["torch_s"] > 0
        assert by_name[label]["shape"].startswith("512 images")
        floor = by_name[f"{label}: batch preparation and matrix products alone"]
        gemm = by_name[f"{label}: matrix products alone"]
        assert floor["reference"] and gemm["reference"] and floor["torch_s"] == by_name[label]["torch_s"]
        plain = [r for r in results if r["name"].startswith(f"{label}, NPNET_KERNELS=plain") and "ratio" in r]
        assert len(plain) == 1 and plain[0]["npnet_s"] > 0
        ratio = by_name[f"{label} / its floor (time ratio)"]["value"]
        assert ratio == pytest.approx(by_name[label]["npnet_s"] / floor["npnet_s"])
        _check_one_blas_thread_rows(by_name, label)
    from npnet import models
    cnn_rss = [r for r in results if r["name"].startswith("peak RSS of npnet train --model cnn")]
    assert len(cnn_rss) == ("cnn" in models.MODELS)      # measured once npnet train knows the cnn
    assert all(10 < r["value"] < 4000 for r in cnn_rss)
    text = (tmp_path / "latest.md").read_text()
    assert "softmax regression epoch / its floor (time ratio)" in text and "worked-example loop" in text


def test_the_worked_example_loop_computes_exactly_what_train_epoch_computes():
    # The README's loop, timed beside train_epoch, must do the same work: same start,
    # same batches, bit-identical parameters after an epoch (uneven last batch included).
    from benchmarks import e2e
    from npnet import data, nn, optim
    from npnet import train as T
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (300, 28, 28)).astype(np.uint8)
    y = rng.integers(0, 10, 300)
    for kind in ("softmax", "mlp"):
        model, lr = e2e._npnet_model(kind, np.random.default_rng(1))
        twin = ops.nn.layers.clone(model)
        before = {k: v.copy() for k, v in model.params.items()}
        T.train_epoch(model, nn.CrossEntropyLoss(), optim.SGD(model.params, lr=lr),
                      data.DataLoader(X, y, 64, shuffle=True, rng=np.random.default_rng(2)))
        e2e.worked_example_epoch(twin, nn.CrossEntropyLoss(), optim.SGD(twin.params, lr=lr),
                                 data.DataLoader(X, y, 64, shuffle=True, rng=np.random.default_rng(2)))
        for k, v in model.params.items():
            assert not np.array_equal(v, before[k]), k    # the epoch trained
            np.testing.assert_array_equal(twin.params[k], v)
        e2e._check_worked_example(kind, X, y, steps=1)      # the benchmark's own check passes


def test_the_worked_example_check_catches_a_loop_that_differs(monkeypatch):
    from benchmarks import e2e
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (256, 28, 28)).astype(np.uint8)
    y = rng.integers(0, 10, 256)
    real = e2e.worked_example_epoch

    def one_step_short(model, loss_fn, opt, loader, **kw):
        real(model, loss_fn, opt, loader, **kw)
        model.params["1.bias"][0] += 1e-6
    monkeypatch.setattr(e2e, "worked_example_epoch", one_step_short)
    with pytest.raises(AssertionError, match="differs"):
        e2e._check_worked_example("softmax", X, y, steps=1)


def test_agreement_check_catches_a_wrong_npnet_result():
    # A benchmark must stop before timing when the two sides disagree.
    with pytest.raises(AssertionError, match="differ"):
        ops._close(np.ones(3) * 1.01, torch.ones(3), "a 1% error")
    rng = np.random.default_rng(0)
    layer = ops.nn.Linear(4, 3, rng=rng)
    case = ops._module_case("Linear", "(2, 4)->3", layer, ops._twin_linear(layer),
                            rng.standard_normal((2, 4)).astype(np.float32), rng.standard_normal((2, 3)).astype(np.float32))
    case.check()  # a correct pair passes
    layer.params["weight"][0, 0] += 0.5  # now npnet and its twin disagree
    with pytest.raises(AssertionError, match="differ"):
        case.check()


def test_markdown_marks_missed_targets():
    info = INFO
    text = markdown([{"group": "ops", "name": "a", "shape": "s", "npnet_s": 2.0, "torch_s": 1.0, "ratio": 2.0, "target": 1.0},
                     {"group": "ops", "name": "b", "shape": "s", "npnet_s": 1.0, "torch_s": 2.0, "ratio": 0.5, "target": 1.0}],
                    info)
    assert "| 2.00 | <= 1.0 | **no** |" in text and "| 0.50 | <= 1.0 | yes |" in text


def test_quick_run_without_out_leaves_the_committed_results_alone(tmp_path):
    before = committed_results()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "ops", "--quick", "--repeats", "1"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert committed_results() == before
    scratch = tmp_path / "runs" / "bench-quick"
    saved = json.loads((scratch / "latest.json").read_text())
    assert saved["quick"] is True and all(r["target"] is None for r in saved["results"])
    text = (scratch / "latest.md").read_text()
    assert text.startswith(report.QUICK_NOTE)
    assert "| yes |" not in text and "**no**" not in text


def test_quick_run_refuses_the_committed_results_folder(capsys):
    with pytest.raises(SystemExit) as exc:
        bench_main.main(["ops", "--quick", "--out", RESULTS])
    assert exc.value.code == 2
    assert "--out" in capsys.readouterr().err


def test_quick_targets_are_not_judged():
    results = [{"group": "ops", "name": "softmax", "shape": "(256, 10)", "npnet_s": 1.0, "torch_s": 4.0, "ratio": 0.25},
               {"group": "memory", "name": "peak RSS", "value": 50.0, "unit": "MB", "target": 200}]
    full = markdown(bench_main._attach_targets([dict(r) for r in results]), INFO)
    assert "| 0.25 | <= 0.5 | yes |" in full and "| <= 200 | yes |" in full
    quick_results = bench_main._attach_targets([dict(r) for r in results], quick=True)
    assert [r["target"] for r in quick_results] == [None, None]
    quick = markdown(results, INFO, quick=True)   # even with targets still in the rows
    assert quick.startswith(report.QUICK_NOTE) and "yes" not in quick


def test_chart_has_a_legend_for_its_colours(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    figures, close = [], plt.close
    monkeypatch.setattr(plt, "close", figures.append)
    results = [{"group": "ops", "name": "a", "shape": "s", "ratio": 0.4, "target": 0.5},
               {"group": "ops", "name": "b", "shape": "s", "ratio": 2.0, "target": 1.0},
               {"group": "train", "name": "c", "shape": "s", "ratio": 0.3, "reference": True}]
    report.bar_chart(results, tmp_path / "chart.png")
    (fig,) = figures
    legend = fig.axes[0].get_legend()
    labels = [t.get_text() for t in legend.get_texts()]
    assert len(labels) == 4 and any("met" in t for t in labels) and any("missed" in t for t in labels)
    assert any("NumPy" in t for t in labels) and "target" in labels
    assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    close(fig)


def test_without_torch_one_line_names_the_install_command_and_exits_2():
    code = ("import sys, runpy; sys.modules['torch'] = None; sys.argv = ['benchmarks', 'ops', '--quick', "
            "'--out', 'unused']; runpy.run_module('benchmarks', run_name='__main__', alter_sys=True)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.splitlines()
    assert "torch" in line and bench_main.INSTALL in line and bench_main.INSTALL == "pip install -e '.[bench]'"
    assert not os.path.exists(os.path.join(ROOT, "unused"))


def test_the_conv_epoch_floor_has_the_products_of_lenet_and_the_cnn():
    # The floor times each Conv2d's products on its patch matrix (O x C kH kW times
    # C kH kW x N oH oW) and each Linear's; the first layer computes no input gradient.
    from benchmarks import e2e
    lenet, _ = e2e._npnet_model("lenet", np.random.default_rng(0))
    assert e2e._product_shapes(lenet, 256) == [
        ("conv", 6, 25, 256 * 28 * 28, True), ("conv", 16, 150, 256 * 10 * 10, False),
        ("linear", 256, 400, 120, False), ("linear", 256, 120, 84, False), ("linear", 256, 84, 10, False)]
    cnn, _ = e2e._npnet_model("cnn", np.random.default_rng(0))
    shapes = e2e._product_shapes(cnn, 7)
    assert [s[0] for s in shapes] == ["conv", "conv", "linear", "linear"] and shapes[0][-1] and not shapes[1][-1]
    assert shapes[0][1:4] == (cnn[0].out_channels, 9, 7 * 28 * 28)
    X = np.random.default_rng(1).integers(0, 256, (300, 28, 28)).astype(np.uint8)
    e2e.conv_floor_epoch(lenet, X)()     # a full and an uneven last batch (300 = 256 + 44)


def test_the_conv_lockstep_check_catches_a_wrong_gradient(monkeypatch):
    # Before timing, LeNet and the cnn step beside their torch twins: a wrong gradient stops the run.
    from benchmarks import e2e
    from npnet import nn
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (512, 28, 28)).astype(np.uint8)
    y = rng.integers(0, 10, 512)
    e2e._check_lockstep("lenet", X, y, steps=2)
    real = nn.Conv2d.forward

    def halved_weight_gradient(self, X, train=True):
        Y, backward = real(self, X, train)

        def half(dY, **kw):
            dX, grads = backward(dY, **kw)
            return dX, {**grads, "weight": grads["weight"] / 2}
        return Y, half
    monkeypatch.setattr(nn.Conv2d, "forward", halved_weight_gradient)
    with pytest.raises(AssertionError, match="differs"):
        e2e._check_lockstep("lenet", X, y, steps=2)
