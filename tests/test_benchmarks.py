"""The benchmark scripts run, agree with torch before timing, and write their three files.

Timings are never asserted here: speed targets live in the benchmark report.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from benchmarks import ops
from benchmarks.report import markdown

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_quick_ops_run_writes_json_markdown_and_chart(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "ops", "--quick", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("latest.json", "latest.md", "latest.png"):
        assert (tmp_path / name).stat().st_size > 0
    report = json.loads((tmp_path / "latest.json").read_text())
    names = {r["name"] for r in report["results"]}
    assert {"softmax", "log_softmax", "cross_entropy", "Linear", "ReLU", "Sigmoid", "Dropout", "MLP train step"} <= names
    for r in report["results"]:
        assert r["agree"] is True and r["npnet_s"] > 0 and r["torch_s"] > 0
        assert r["ratio"] == pytest.approx(r["npnet_s"] / r["torch_s"])
    assert report["machine"]["torch_threads"] >= 1 and "numpy_blas" in report["machine"]
    assert (tmp_path / "latest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.realdata
def test_quick_train_part_runs_on_real_data(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "train", "--quick", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "latest.json").read_text())["results"]
    by_name = {r["name"]: r for r in results}
    assert by_name["softmax regression epoch"]["ratio"] > 0 and by_name["MLP epoch"]["ratio"] > 0
    share = by_name["MLP epoch: share of time in matrix products"]["value"]
    assert 0 < share < 1.5
    rss = [r for r in results if r["name"].startswith("peak RSS")][0]["value"]
    assert 10 < rss < 4000


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
    info = {"cpu": "x", "cpus": 2, "numpy": "2", "numpy_blas": "b", "numpy_threads": 2, "torch": "t",
            "torch_threads": 2, "python": "3"}
    text = markdown([{"group": "ops", "name": "a", "shape": "s", "npnet_s": 2.0, "torch_s": 1.0, "ratio": 2.0, "target": 1.0},
                     {"group": "ops", "name": "b", "shape": "s", "npnet_s": 1.0, "torch_s": 2.0, "ratio": 0.5, "target": 1.0}],
                    info)
    assert "| 2.00 | <= 1.0 | **no** |" in text and "| 0.50 | <= 1.0 | yes |" in text
