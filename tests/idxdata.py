"""Small Fashion-MNIST-shaped data sets in IDX files, for tests that run the real loader and CLI.

Class c lights rows 2c+4..2c+7 of its images, so a model learns them in a few
steps. ``isolate`` makes such a folder the only data npnet can find.
"""
import gzip
import os
import struct

import numpy as np


def write_idx(path, array, gz=False):
    """``array`` (uint8) as an IDX file, gzipped (reproducibly: mtime 0) if ``gz``."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    raw = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    with open(path, "wb") as f:
        f.write(gzip.compress(raw, mtime=0) if gz else raw)


def make_dataset(directory, counts, *, gz=False, seed=0):
    """The four IDX files, ``counts["train"]`` and ``counts["test"]`` samples, in ``directory``."""
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    suffix = ".gz" if gz else ""
    for prefix, n in (("train", counts["train"]), ("t10k", counts["test"])):
        y = rng.integers(0, 10, n).astype(np.uint8)
        X = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for c in range(10):
            X[y == c, 2 * c + 4:2 * c + 8, 4:24] = 220
        write_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte{suffix}"), X, gz)
        write_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte{suffix}"), y, gz)
    return str(directory)


def isolate(monkeypatch, tmp_path, counts):
    """Make a fresh data set of ``counts`` in ``tmp_path/data`` the only one npnet can
    find (no system folder, no NPNET_DATA, its own cache); returns its folder."""
    from npnet import data

    monkeypatch.setattr(data.fashion_mnist, "_COUNTS", dict(counts))
    monkeypatch.setattr(data.sources, "SYSTEM_DIRS", (str(tmp_path / "no-system-data"),))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("NPNET_DATA", raising=False)
    return make_dataset(tmp_path / "data", counts)
