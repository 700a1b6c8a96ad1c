"""Every script in examples/ runs with --quick, exits 0 and prints what it promises.

Examples that train on Fashion-MNIST are marked ``realdata``: without the data
they skip, except under CI (env CI set), where that is a failure.
"""
import os
import re
import subprocess
import sys

import pytest

from npnet.data import load_fashion_mnist
from npnet.errors import DataError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(REPO, "examples")
FINAL = re.compile(r"^final test accuracy: (\d\.\d+)", re.MULTILINE)

# script -> (needs Fashion-MNIST, a regular expression its output must match)
SCRIPTS = {
    "01_softmax_from_scratch.py": (True, r"keepdims=True\): \[\[6\.0\], \[15\.0\]\]"),
    "02_softmax_npnet.py": (True, r"weight gradient shape \(10, 784\)"),
    "03_mlp.py": (True, r"Linear\(in_features=784, out_features=256"),
    "04_dropout.py": (True, r"dropout p=1\.0:\n\[\[0\. 0\."),
    "05_study_stability.py": (False, r"float32: the naive softmax first gives inf/nan at logit scale 8\d\.\d\d"),
    "06_study_vanishing.py": (False, r"first / last layer: \d\.\d+e-\d\d\n"),
    "07_study_symmetry.py": (True, r"constant: after 100 steps the hidden units differ by at most 0\.0 "),
    "08_study_init.py": (True, r"last layer's output std at step 0"),
    "09_study_kfold.py": (True, r"<- chosen"),
    "10_conv_from_scratch.py": (False, r"dW, db, dX by hand == nn\.Conv2d's backward: True\n(.|\n)*"
                                       r"im2col by hand vs nn\.Conv2d, largest difference: Y \d"),
    "11_study_batchnorm.py": (True, r"LeNet: spread of each sigmoid's input before training: conv1 0\.\d+, conv2 0\.0"),
}


def test_every_example_is_listed():
    assert sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".py")) == sorted(SCRIPTS)


@pytest.fixture(scope="module")
def have_data():
    try:
        load_fashion_mnist(download=False)
    except DataError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Fashion-MNIST is missing under CI: {exc}")
        pytest.skip(f"Fashion-MNIST not available: {str(exc).splitlines()[0]}")


@pytest.mark.parametrize("script", [
    pytest.param(name, marks=pytest.mark.realdata) if real else name for name, (real, _) in SCRIPTS.items()
])
def test_example_runs_quick(script, tmp_path, request):
    real, pattern = SCRIPTS[script]
    if real:
        request.getfixturevalue("have_data")
    proc = subprocess.run([sys.executable, os.path.join(EXAMPLES, script), "--quick"], capture_output=True,
                          text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(pattern, proc.stdout), proc.stdout[-3000:]
    final = FINAL.search(proc.stdout)
    if real:
        assert final, "an example that trains must end with its test accuracy"
    if final:
        assert float(final.group(1)) > 0.2  # chance is 0.1
    if "study" in script:
        (png,) = list((tmp_path / "runs" / "examples").glob("*.png"))
        assert png.stat().st_size > 10_000
