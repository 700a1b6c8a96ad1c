"""Every Python block in the README runs as written (the worked example stays true)."""
import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 2, "the README lost its worked example"
    namespace = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # blocks share one namespace, in order
    assert set(namespace["grads"]) == {"1.weight", "1.bias", "3.weight", "3.bias"}
    assert namespace["dx"].shape == (256, 1, 28, 28)
    # The twin loaded from npnet's params computes the same logits.
    import numpy as np
    import torch
    with torch.no_grad():
        out = namespace["twin"](torch.from_numpy(namespace["x"])).numpy()
    np.testing.assert_allclose(out, namespace["model"](namespace["x"]), rtol=1e-5, atol=1e-5)


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
