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
