"""Every Python block in the README runs as written (the worked example stays true)."""
import os
import pathlib
import re

import numpy as np

import idxdata

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
TRAINED_MODEL = "Use a trained model"   # its blocks need a run folder: run apart, in a folder holding one


def python_blocks(*, section=None, without=None):
    """The README's ```python blocks, in order: those under the heading ``section``, or all but ``without``'s."""
    blocks = []
    for part in re.split(r"^## ", README.read_text(), flags=re.M)[1:]:
        heading = part.splitlines()[0].strip()
        if (section is not None and heading != section) or heading == without:
            continue
        blocks += re.findall(r"```python\n(.*?)```", part, flags=re.S)
    return blocks


def test_readme_python_blocks_run():
    blocks = python_blocks(without=TRAINED_MODEL)
    assert len(blocks) >= 2, "the README lost its worked example"
    namespace = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # blocks share one namespace, in order
    assert set(namespace["grads"]) == {"1.weight", "1.bias", "3.weight", "3.bias"}
    assert namespace["dx"] is None   # need_dx=False: the data's gradient is never computed
    # The twin loaded from npnet's params computes the same logits.
    import torch
    with torch.no_grad():
        out = namespace["twin"](torch.from_numpy(namespace["x"])).numpy()
    np.testing.assert_allclose(out, namespace["model"](namespace["x"]), rtol=1e-5, atol=1e-5)


def test_readme_use_a_trained_model_runs_as_pasted(tmp_path, monkeypatch, capsys):
    """The example runs where `make train` has left runs/default (here: one epoch on a small data set
    that is the only one npnet can find), and scales images as training does."""
    from npnet import cli, inference
    from npnet.data import load_fashion_mnist

    small = idxdata.isolate(monkeypatch, tmp_path, {"train": 600, "test": 200})
    monkeypatch.setenv("NPNET_DATA", small)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "--out", os.path.join("runs", "default"), "--epochs", "1"]) == 0
    capsys.readouterr()
    blocks = python_blocks(section=TRAINED_MODEL)
    assert blocks, f"the README lost the example of its section {TRAINED_MODEL!r}"
    namespace = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 5 and all("true: " in line for line in printed)
    _, _, X_test, y_test = load_fashion_mnist(small)
    np.testing.assert_array_equal(namespace["images"], inference.prepare_images(X_test[:5]))
    model = inference.load_model(tmp_path / "runs" / "default")
    np.testing.assert_array_equal(namespace["probabilities"].argmax(axis=1),
                                  model(inference.prepare_images(X_test[:5])).argmax(axis=1))
    np.testing.assert_allclose(namespace["probabilities"].sum(axis=1), 1, rtol=1e-6)


def test_readme_points_a_learner_to_every_example_in_order():
    text = README.read_text()
    examples = sorted(p.name for p in (README.parent / "examples").glob("[0-9][0-9]_*.py"))
    for name in examples:
        assert name in text, f"README never mentions examples/{name}"
    # The learner's path starts with 01-04, in that order, each with the command that runs it.
    commands = re.findall(r"`python examples/(\d\d)_\w+\.py`", text)
    assert commands[:4] == ["01", "02", "03", "04"], commands


def test_every_npnet_command_in_the_readme_parses():
    # A quoted command whose flag was renamed or removed would fail for the reader who copies it.
    import shlex

    from npnet import cli

    text = README.read_text()
    commands = re.findall(r"(?<![\w.])npnet ((?:train|study)(?: [^`\n;|(]*)?)", text)
    commands = [c for c in commands if not re.search(r"\b[A-Z]{2,}\b", c)]   # NAME, X: placeholders
    assert any("--lr 0.5" in c for c in commands) and any("--check-torch" in c for c in commands)
    for command in commands:
        argv = shlex.split(command.replace("$s", "0").strip())
        cli.build_parser().parse_args(argv)   # raises UsageError naming the bad flag or value
