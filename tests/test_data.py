"""npnet.data: the IDX reader, Fashion-MNIST sources and download, DataLoader, k-fold.

No test touches the network: downloads go to tests/httpserver.py on 127.0.0.1.
Fashion-MNIST-shaped sources are generated small (npnet.data.fashion_mnist._COUNTS patched to
12 train / 6 test images); the real files are tested under ``-m realdata``.
"""
import gzip
import hashlib
import os
import socket
import struct
import time
import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import npnet.data as data
from httpserver import LocalServer, Reply
from npnet.data import (
    FASHION_MNIST_FILES,
    FASHION_MNIST_LABELS,
    DataLoader,
    get_fashion_mnist_labels,
    get_k_fold_data,
    kfold,
    load_data_fashion_mnist,
    load_fashion_mnist,
    read_idx,
    to_float,
)
from npnet.errors import DataError, DownloadError

CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}
SMALL = {"train": 12, "test": 6}
DEBIAN = "/usr/share/datasets/fashion-mnist"


def idx_bytes(array):
    array = np.asarray(array)
    code = CODES[array.dtype.type]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def gz(raw):
    return gzip.compress(raw, mtime=0)


def write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


# --------------------------------------------------------------------------- #
# read_idx
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("dtype", list(CODES))
@pytest.mark.parametrize("shape", [(5,), (3, 4, 2), (0, 28, 28), (1, 1)])
def test_read_idx_round_trip(tmp_path, compress, dtype, shape):
    rng = np.random.default_rng(0)
    a = (rng.standard_normal(shape) * 100).astype(dtype)
    raw = idx_bytes(a)
    path = write(tmp_path / "f", gz(raw) if compress else raw)
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    assert out.shape == shape
    np.testing.assert_array_equal(out, a)
    assert out.flags.writeable
    assert read_idx(str(path)).shape == shape


def test_read_idx_detects_gzip_by_magic_not_name(tmp_path):
    a = np.arange(20, dtype=np.uint8).reshape(4, 5)
    np.testing.assert_array_equal(read_idx(write(tmp_path / "x.idx", gz(idx_bytes(a)))), a)
    np.testing.assert_array_equal(read_idx(write(tmp_path / "x.gz", idx_bytes(a))), a)


def test_read_idx_reads_multi_member_gzip(tmp_path):
    raw = idx_bytes(np.arange(300, dtype=np.int16).reshape(10, 30))
    path = write(tmp_path / "multi", gz(raw[:100]) + gz(raw[100:]))
    np.testing.assert_array_equal(read_idx(path), np.arange(300).reshape(10, 30))


GOOD = idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
CORRUPT = {
    "bad magic": (b"\x01\x00" + GOOD[2:], "magic"),
    "wrong dtype code": (GOOD[:2] + b"\x07" + GOOD[3:], "type code 0x07"),
    "zero dims": (b"\x00\x00\x08\x00", "0 dimensions"),
    "wrong dims": (GOOD[:3] + b"\x02" + GOOD[4:], "unexpected bytes"),   # claims (2, 3): 6 bytes + leftovers
    "too many dims": (GOOD[:3] + b"\x04" + GOOD[4:], "truncated"),
    "truncated header": (GOOD[:9], "truncated header"),
    "truncated data": (GOOD[:-1], "truncated"),
    "extra bytes": (GOOD + b"\x00", "unexpected bytes"),
    "empty": (b"", "too short"),
    "tiny": (b"\x00\x00", "too short"),
}


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_read_idx_rejects_corrupt_files(tmp_path, case, compress):
    content, needle = CORRUPT[case]
    path = write(tmp_path / f"bad-{case.replace(' ', '_')}.bin", gz(content) if compress else content)
    with pytest.raises(DataError) as info:
        read_idx(path)
    assert str(path) in str(info.value)
    assert needle in str(info.value)


GZ = gz(GOOD)
BAD_GZIP = {
    "truncated gzip": (GZ[:-9], "truncated"),
    "gzip cut in the header": (GZ[:5], "truncated"),
    "corrupt deflate": (GZ[:10] + b"\xff" * 8 + GZ[18:], "corrupt gzip"),
    "bad crc": (GZ[:-8] + bytes([GZ[-8] ^ 1]) + GZ[-7:], "corrupt gzip"),
    "trailing garbage": (GZ + b"garbage", "non-gzip data"),
    "magic only": (b"\x1f\x8b", "truncated"),
}


@pytest.mark.parametrize("case", sorted(BAD_GZIP))
def test_read_idx_rejects_bad_gzip(tmp_path, case):
    content, needle = BAD_GZIP[case]
    path = write(tmp_path / "bad.gz", content)
    with pytest.raises(DataError) as info:
        read_idx(path)
    assert str(path) in str(info.value) and needle in str(info.value)


def test_read_idx_missing_file_directory_and_bad_argument(tmp_path):
    with pytest.raises(DataError, match="nope"):
        read_idx(tmp_path / "nope")
    with pytest.raises(DataError, match="not a regular file"):
        read_idx(tmp_path)
    for bad in (None, 3, b"bytes", ""):
        with pytest.raises(TypeError, match="path"):
            read_idx(bad)


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_refuses_huge_claim_before_allocating(tmp_path, compress):
    header = b"\x00\x00\x08\x03" + struct.pack(">3I", 10**6, 1000, 1000)  # 10**12 bytes claimed
    body = header + bytes(1000)
    path = write(tmp_path / "huge", gz(body) if compress else body)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(DataError, match="header"):
            read_idx(path)
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < 1.0
    assert peak < 4 << 20  # a few read buffers, never the claimed array


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_max_bytes(tmp_path, compress):
    raw = idx_bytes(np.zeros((10, 10), np.uint8))  # 112 bytes with the header
    path = write(tmp_path / "f", gz(raw) if compress else raw)
    assert read_idx(path, max_bytes=112).shape == (10, 10)
    with pytest.raises(DataError, match="more than the 111 allowed"):
        read_idx(path, max_bytes=111)
    with pytest.raises(ValueError, match="max_bytes"):
        read_idx(path, max_bytes=-1)
    with pytest.raises(TypeError, match="max_bytes"):
        read_idx(path, max_bytes=1.5)


def test_read_idx_gzip_with_lying_trailer_never_decompresses_more_than_claimed(tmp_path):
    # Header claims 10 bytes, trailer agrees (fake), real stream is 1 MB of zeros.
    raw = b"\x00\x00\x08\x01" + struct.pack(">I", 10) + bytes(1 << 20)
    content = bytearray(gz(raw))
    content[-4:] = struct.pack("<I", 14)
    path = write(tmp_path / "liar.gz", bytes(content))
    with pytest.raises(DataError, match="unexpected bytes"):
        read_idx(path)


def _mutate(content, edits, cut):
    b = bytearray(content)
    for pos, val in edits:
        if b:
            b[pos % len(b)] = val
    return bytes(b[: len(b) - cut % (len(b) + 1)] if cut else b)


def _read_or_dataerror(content):
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "fuzz")
        with open(path, "wb") as f:
            f.write(content)
        try:
            out = read_idx(path)
        except DataError as e:
            assert path in str(e)
        else:
            assert isinstance(out, np.ndarray)


@given(st.binary(max_size=300))
def test_read_idx_fuzz_arbitrary_bytes(content):
    _read_or_dataerror(content)


@given(st.binary(max_size=300))
def test_read_idx_fuzz_arbitrary_bytes_behind_gzip_magic(content):
    _read_or_dataerror(b"\x1f\x8b\x08" + content)


@given(
    compress=st.booleans(),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4),
    cut=st.integers(0, 50),
)
def test_read_idx_fuzz_mutated_valid_files(compress, edits, cut):
    raw = idx_bytes(np.arange(60, dtype=np.int16).reshape(3, 4, 5))
    _read_or_dataerror(_mutate(gz(raw) if compress else raw, edits, cut))


# --------------------------------------------------------------------------- #
# load_fashion_mnist: search order, validation, decoded cache
# --------------------------------------------------------------------------- #

@pytest.fixture
def env(tmp_path, monkeypatch):
    """An isolated world: a fresh HOME and XDG cache, an empty system dir, small counts."""
    home, xdg, system = tmp_path / "home", tmp_path / "xdg", tmp_path / "system"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    for var in ("NPNET_DATA", "NPNET_FASHION_MNIST_URL", "http_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(data.sources, "SYSTEM_DIRS", (str(system),))
    monkeypatch.setattr(data.fashion_mnist, "_COUNTS", dict(SMALL))
    monkeypatch.setattr(data.download, "_RETRY_BACKOFF", 0.0)

    class Env:
        pass

    e = Env()
    e.tmp, e.home, e.cache, e.system = tmp_path, home, xdg / "npnet" / "fashion-mnist", system
    return e


def fashion_raw(seed):
    """The four decompressed files of a small Fashion-MNIST-shaped dataset."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, images, labels in data.fashion_mnist._SPLITS:
        n = SMALL[split]
        X = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        X[:, 0, 0] = seed  # tells the sources apart
        out[images] = idx_bytes(X)
        out[labels] = idx_bytes(rng.integers(0, 10, size=n).astype(np.uint8))
    return out


def checksums_of(raw):
    return {k: hashlib.sha256(v).hexdigest() for k, v in raw.items()}


def make_source(directory, seed, *, compress=True, skip=(), override=None):
    directory.mkdir(parents=True, exist_ok=True)
    for base, raw in fashion_raw(seed).items():
        if base in skip:
            continue
        content = (override or {}).get(base, raw)
        write(directory / (base + ".gz" if compress else base), gz(content) if compress else content)
    return directory


def seed_of(result):
    X_train, y_train, X_test, y_test = result
    assert X_train.shape == (12, 28, 28) and X_test.shape == (6, 28, 28)
    assert X_train.dtype == np.uint8 and y_train.dtype == np.int64 and y_test.dtype == np.int64
    return int(X_train[0, 0, 0])


# npnet.data's public names when it was one module; the package keeps every one
MODULE_ERA_NAMES = [
    "FASHION_MNIST_LABELS", "FASHION_MNIST_FILES", "FASHION_MNIST_SHA256", "DEFAULT_MIRRORS", "read_idx",
    "DataDirError", "load_fashion_mnist", "find_fashion_mnist", "download_fashion_mnist", "fashion_mnist_cache_dir",
    "get_fashion_mnist_labels", "DataLoader", "load_data_fashion_mnist", "kfold", "get_k_fold_data", "fingerprint",
]


def test_public_names_are_importable_from_npnet_data():
    assert set(data.__all__) == set(MODULE_ERA_NAMES) | {"to_float"}
    namespace = {}
    exec("from npnet.data import *", namespace)
    for name in data.__all__:
        assert namespace[name] is getattr(data, name), name


def test_each_data_module_is_short():
    folder = os.path.dirname(data.__file__)
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py"):
            with open(os.path.join(folder, name)) as f:
                assert len(f.readlines()) <= 500, name


def test_settings_set_on_npnet_data_reach_the_code_that_reads_them(tmp_path, monkeypatch):
    system = make_source(tmp_path / "system", seed=7)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    for var in ("NPNET_DATA", "NPNET_FASHION_MNIST_URL"):
        monkeypatch.delenv(var, raising=False)
    before = data.sources.SYSTEM_DIRS
    checksums, mirrors = {base: "0" * 64 for base in FASHION_MNIST_FILES}, ("http://127.0.0.1:9/a/",)
    monkeypatch.setattr(data, "SYSTEM_DIRS", (str(system),))
    monkeypatch.setattr(data, "_COUNTS", dict(SMALL))
    monkeypatch.setattr(data, "_RETRY_BACKOFF", 0.0)
    monkeypatch.setattr(data, "FASHION_MNIST_SHA256", checksums)
    monkeypatch.setattr(data, "DEFAULT_MIRRORS", mirrors)
    assert data.find_fashion_mnist() == {base: str(system / (base + ".gz")) for base in FASHION_MNIST_FILES}
    assert seed_of(load_fashion_mnist(download=False)) == 7
    assert data.download._RETRY_BACKOFF == 0.0
    assert data.download._download_args(None, 1.0, 0, None) == (list(mirrors), 1.0, 0, checksums)
    monkeypatch.undo()
    assert data.SYSTEM_DIRS == before == data.sources.SYSTEM_DIRS
    assert data.FASHION_MNIST_SHA256 is data.sources.FASHION_MNIST_SHA256 != checksums
    assert "SYSTEM_DIRS" not in vars(data) and data._COUNTS == {"train": 60000, "test": 10000}


SOURCES = ["NPNET_DATA", "cache", "torchvision", "system"]


@pytest.mark.parametrize("first", range(len(SOURCES)))
def test_search_order(env, monkeypatch, first):
    npnet_data = env.tmp / "npnet_data"
    monkeypatch.setenv("NPNET_DATA", str(npnet_data))
    dirs = [npnet_data, env.cache, npnet_data / "FashionMNIST" / "raw", env.system]
    for i in range(first, len(SOURCES)):  # sources at `first` and after; the earlier ones are empty
        make_source(dirs[i], seed=i + 1)
    assert seed_of(load_fashion_mnist(download=False)) == first + 1


@pytest.mark.parametrize("layout", ["root", "torchvision"])
def test_explicit_root_is_the_only_place_looked_at(env, monkeypatch, layout):
    monkeypatch.setenv("NPNET_DATA", str(make_source(env.tmp / "npnet_data", seed=2)))
    make_source(env.cache, seed=3)
    make_source(env.system, seed=4)
    root = env.tmp / "root"
    make_source(root if layout == "root" else root / "FashionMNIST" / "raw", seed=1)
    assert seed_of(load_fashion_mnist(root, download=False)) == 1
    assert data.find_fashion_mnist(root)["train-images-idx3-ubyte"].startswith(str(root))


def test_npnet_data_torchvision_layout_and_raw_files(env, monkeypatch):
    monkeypatch.setenv("NPNET_DATA", str(env.tmp / "d"))
    make_source(env.tmp / "d" / "FashionMNIST" / "raw", seed=7, compress=False)
    assert seed_of(load_fashion_mnist(download=False)) == 7
    assert not env.cache.exists()  # uncompressed sources need no decoded copy


def test_incomplete_source_is_skipped_when_searching(env, monkeypatch):
    monkeypatch.setenv("NPNET_DATA", str(make_source(env.tmp / "d", seed=1, skip=("t10k-labels-idx1-ubyte",))))
    make_source(env.system, seed=2)
    assert seed_of(load_fashion_mnist(download=False)) == 2


def break_root(root, case):
    """Turn a complete source at ``root`` into the named kind of broken folder; returns
    (the folder to pass, the folder the error must name, a word the problem must contain)."""
    victim = root / "t10k-labels-idx1-ubyte.gz"
    if case == "mistyped folder":
        return root.parent / (root.name + "x"), root.parent / (root.name + "x"), "no such directory"
    if case == "one missing file":
        victim.unlink()
        return root, root, "t10k-labels-idx1-ubyte"
    if case == "file is a directory":
        victim.unlink()
        victim.mkdir()
        return root, root, "directory"
    if case == "FIFO":
        victim.unlink()
        os.mkfifo(victim)
        return root, root, "FIFO"
    if case == "symlink loop":
        victim.unlink()
        os.symlink(victim.name, victim)
        return root, root, "loop"
    if case == "broken symlink":
        victim.unlink()
        os.symlink(root / "gone.gz", victim)
        return root, root, "broken"
    if case == "root is a file":
        return victim, victim, "not a directory"
    if case == "root is a symlink loop":
        loop = root.parent / "loop"
        os.symlink("loop", loop)
        return loop, loop, "loop"
    if case == "torchvision layout missing a file":
        raw = root / "FashionMNIST" / "raw"
        raw.mkdir(parents=True)
        for f in root.glob("*.gz"):
            if f != victim:
                f.rename(raw / f.name)
        victim.unlink()
        return root, raw, "t10k-labels-idx1-ubyte"
    raise AssertionError(case)


BROKEN_ROOTS = ["mistyped folder", "one missing file", "file is a directory", "FIFO", "symlink loop",
                "broken symlink", "root is a file", "root is a symlink loop", "torchvision layout missing a file"]


@pytest.mark.parametrize("case", BROKEN_ROOTS)
def test_explicit_root_is_used_or_refused_never_skipped(env, monkeypatch, case):
    make_source(env.system, seed=2)   # a valid copy elsewhere must not be used instead
    make_source(env.cache, seed=3)
    monkeypatch.setenv("NPNET_DATA", str(make_source(env.tmp / "npnet_data", seed=4)))
    given, named, problem = break_root(make_source(env.tmp / "root", seed=1), case)
    with pytest.raises(data.DataDirError) as info:
        load_fashion_mnist(given, download=False)
    assert isinstance(info.value, DataError) and isinstance(info.value, ValueError)
    assert info.value.folder == str(named) and problem in info.value.problem
    assert str(named) in str(info.value) and problem in str(info.value)
    assert "\n" not in str(info.value)
    with pytest.raises(data.DataDirError):
        load_data_fashion_mnist(8, given, download=False)
    if case not in ("mistyped folder", "one missing file"):   # those two a download can still complete
        with pytest.raises(data.DataDirError):
            data.find_fashion_mnist(given)
    else:
        assert data.find_fashion_mnist(given) is None


@pytest.mark.parametrize("case", ["file is a directory", "FIFO", "symlink loop", "broken symlink",
                                  "root is a file", "root is a symlink loop"])
def test_explicit_root_that_a_download_cannot_fix_is_refused_before_any_request(env, server, case):
    raw = fashion_raw(9)
    serve_all(server, raw)
    given, named, problem = break_root(make_source(env.tmp / "root", seed=9), case)
    with pytest.raises(data.DataDirError, match=problem):
        load_fashion_mnist(given, mirrors=[server.url], checksums=checksums_of(raw), timeout=5)
    assert sum(server.count.values()) == 0


@pytest.mark.parametrize("case", ["mistyped folder", "one missing file"])
def test_explicit_root_with_download_is_completed_in_place(env, server, case):
    raw = fashion_raw(9)
    serve_all(server, raw)
    make_source(env.system, seed=2)
    given, _, _ = break_root(make_source(env.tmp / "root", seed=9), case)
    assert seed_of(load_fashion_mnist(given, mirrors=[server.url], checksums=checksums_of(raw), timeout=5)) == 9
    assert sorted(os.listdir(given)) == sorted(b + ".gz" for b in FASHION_MNIST_FILES)
    assert sum(server.count.values()) == (4 if case == "mistyped folder" else 1)


def test_found_but_corrupt_is_an_error_not_replaced(env):
    root = make_source(env.tmp / "root", seed=1)
    make_source(env.system, seed=2)
    bad = root / "train-images-idx3-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:-20])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        load_fashion_mnist(root, download=False)


def test_not_found_without_download_lists_every_way(env):
    with pytest.raises(DataError) as info:
        load_fashion_mnist(download=False)
    msg = str(info.value)
    assert not isinstance(info.value, DownloadError)
    for needle in ("root=", "NPNET_DATA", str(env.cache), "apt-get install dataset-fashion-mnist",
                   "make data", str(env.system)):
        assert needle in msg


@pytest.mark.parametrize("problem", ["image size", "label range", "counts differ", "wrong count", "labels 2-D"])
def test_shapes_and_labels_are_validated(env, problem):
    X = np.zeros((12, 28, 28), np.uint8)
    y = np.zeros(12, np.uint8)
    override = {
        "image size": {"train-images-idx3-ubyte": idx_bytes(np.zeros((12, 27, 28), np.uint8))},
        "label range": {"train-labels-idx1-ubyte": idx_bytes(np.full(12, 10, np.uint8))},
        "counts differ": {"train-labels-idx1-ubyte": idx_bytes(y[:11])},
        "wrong count": {"train-images-idx3-ubyte": idx_bytes(X[:11]), "train-labels-idx1-ubyte": idx_bytes(y[:11])},
        "labels 2-D": {"train-labels-idx1-ubyte": idx_bytes(y.reshape(12, 1))},
    }[problem]
    make_source(env.system, seed=1, override=override)
    with pytest.raises(DataError, match="train-"):
        load_fashion_mnist(download=False)


def test_decoded_cache_is_written_then_used(env, monkeypatch):
    make_source(env.system, seed=3)
    first = load_fashion_mnist(download=False)
    cached = [p for p in os.listdir(env.cache) if p.endswith(".npz")]
    assert len(cached) == 1 and not [p for p in os.listdir(env.cache) if p.endswith(".part")]

    def no_reading(*args, **kwargs):
        raise AssertionError("the decoded cache should have been used")

    monkeypatch.setattr(data.fashion_mnist, "read_idx", no_reading)
    second = load_fashion_mnist(download=False)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong shape", "empty"])
def test_corrupt_decoded_cache_is_deleted_and_rebuilt(env, damage):
    make_source(env.system, seed=3)
    expected = load_fashion_mnist(download=False)
    (path,) = [env.cache / p for p in os.listdir(env.cache) if p.endswith(".npz")]
    if damage == "garbage":
        path.write_bytes(b"not a zip file at all")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        arrays = dict(np.load(path))
        arrays["X_train"] = arrays["X_train"][:, :27]
        with open(path, "wb") as f:
            np.savez(f, **arrays)
    got = load_fashion_mnist(download=False)
    for a, b in zip(expected, got):
        np.testing.assert_array_equal(a, b)
    assert path.exists()  # rebuilt
    assert len(np.load(path)["X_train"][0, 0]) == 28


def test_decoded_cache_follows_source_changes(env):
    make_source(env.system, seed=3)
    load_fashion_mnist(download=False)
    old = set(os.listdir(env.cache))
    make_source(env.system, seed=4)
    st_ = os.stat(env.system / "train-images-idx3-ubyte.gz")
    os.utime(env.system / "train-images-idx3-ubyte.gz", ns=(st_.st_atime_ns, st_.st_mtime_ns + 10**9))
    assert seed_of(load_fashion_mnist(download=False)) == 4
    new = set(os.listdir(env.cache))
    assert len(new) == 1 and new != old  # the stale copy is gone


def test_unwritable_cache_dir_just_skips_caching(env, monkeypatch):
    make_source(env.system, seed=5)
    blocker = env.tmp / "blocker"
    blocker.write_bytes(b"a file where the cache directory should go")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    assert seed_of(load_fashion_mnist(download=False)) == 5
    assert seed_of(load_fashion_mnist(download=False, cache=False)) == 5


def test_cache_false_writes_nothing(env):
    make_source(env.system, seed=5)
    load_fashion_mnist(download=False, cache=False)
    assert not env.cache.exists()


def test_load_fashion_mnist_bad_arguments(env):
    make_source(env.system, seed=1)
    for kwargs, exc, needle in [
        ({"root": 3}, TypeError, "root"),
        ({"download": "yes"}, TypeError, "download"),
        ({"cache": 1}, TypeError, "cache"),
        ({"timeout": 0}, ValueError, "timeout"),
        ({"retries": -1}, ValueError, "retries"),
        ({"mirrors": ["ftp://x/"]}, ValueError, "mirrors"),
        ({"mirrors": []}, ValueError, "mirrors"),
        ({"mirrors": 3}, TypeError, "mirrors"),
        ({"mirrors": {"http://x/": 1}}, TypeError, "mirrors"),
        ({"mirrors": ("http://x/", 5)}, ValueError, "mirrors"),
        ({"checksums": {"a": "b"}}, ValueError, "checksums"),
        ({"checksums": "abc"}, TypeError, "checksums"),
        ({"checksums": list(FASHION_MNIST_FILES)}, TypeError, "checksums"),
    ]:
        with pytest.raises(exc, match=needle):
            load_fashion_mnist(download=False, **kwargs)


def test_labels_helper():
    assert len(FASHION_MNIST_LABELS) == 10
    assert get_fashion_mnist_labels(np.array([0, 1, 9])) == ["t-shirt", "trouser", "ankle boot"]
    assert get_fashion_mnist_labels([5, 6, 7, 8]) == ["sandal", "shirt", "sneaker", "bag"]
    grid = np.array([[2, 3], [4, 0]], dtype=np.uint8)
    assert get_fashion_mnist_labels(grid) == ["pullover", "dress", "coat", "t-shirt"]
    assert get_fashion_mnist_labels([]) == []
    with pytest.raises(ValueError, match=r"labels\[1\]"):
        get_fashion_mnist_labels([3, 10])
    with pytest.raises(ValueError, match=r"labels\[0\]"):
        get_fashion_mnist_labels(np.array([-1]))
    for bad in (np.array([1.0]), [1.0], [True], np.array([True]), "12", b"12", 3, None, [3, "4"], [12, 1.0]):
        with pytest.raises(TypeError, match="labels"):
            get_fashion_mnist_labels(bad)
    assert get_fashion_mnist_labels(iter([np.int64(9), np.uint8(0)])) == ["ankle boot", "t-shirt"]


# --------------------------------------------------------------------------- #
# download
# --------------------------------------------------------------------------- #

@pytest.fixture
def server():
    with LocalServer() as s:
        yield s


def serve_all(server, raw, **overrides):
    for base, content in raw.items():
        server.route(f"/{base}.gz", overrides.get(base, Reply(body=gz(content))))


def leftovers(directory):
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


def test_download_success_lands_verified_in_cache(env, server):
    raw = fashion_raw(9)
    serve_all(server, raw)
    got = load_fashion_mnist(mirrors=[server.url], checksums=checksums_of(raw), timeout=5)
    assert seed_of(got) == 9
    files = leftovers(env.cache)
    assert [f for f in files if f.endswith(".gz")] == sorted(b + ".gz" for b in FASHION_MNIST_FILES)
    assert not [f for f in files if f.endswith(".part") or f.startswith(".")]
    assert all(server.count[f"/{b}.gz"] == 1 for b in FASHION_MNIST_FILES)
    for b in FASHION_MNIST_FILES:
        assert gzip.decompress((env.cache / (b + ".gz")).read_bytes()) == raw[b]
    load_fashion_mnist(mirrors=[server.url], checksums=checksums_of(raw))  # found now: no new request
    assert sum(server.count.values()) == 4


def test_download_goes_to_root_and_uses_env_mirror(env, server, monkeypatch):
    raw = fashion_raw(9)
    serve_all(server, raw)
    monkeypatch.setenv("NPNET_FASHION_MNIST_URL", server.url + "/")
    root = env.tmp / "root"
    assert seed_of(load_fashion_mnist(root, checksums=checksums_of(raw), timeout=5)) == 9
    assert sorted(os.listdir(root)) == sorted(b + ".gz" for b in FASHION_MNIST_FILES)
    assert not env.cache.exists() or not [f for f in os.listdir(env.cache) if f.endswith(".gz")]


def test_download_keeps_verified_files_and_fetches_the_rest(env, server):
    raw = fashion_raw(9)
    serve_all(server, raw)
    make_source(env.cache, seed=9, skip=("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))
    assert seed_of(load_fashion_mnist(mirrors=[server.url], checksums=checksums_of(raw), timeout=5)) == 9
    assert server.count["/train-images-idx3-ubyte.gz"] == 0
    assert server.count["/t10k-images-idx3-ubyte.gz"] == 1


def test_download_refuses_to_overwrite_a_bad_existing_file(env, server):
    raw = fashion_raw(9)
    serve_all(server, raw)
    make_source(env.cache, seed=8, skip=("t10k-labels-idx1-ubyte",))
    with pytest.raises(DataError, match="delete it"):
        load_fashion_mnist(mirrors=[server.url], checksums=checksums_of(raw), timeout=5)


def closed_port_url():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/"


def assert_clean_failure(env, info, *needles):
    msg = str(info.value)
    for needle in needles + ("NPNET_DATA", "root=", "apt-get install dataset-fashion-mnist", "make data"):
        assert needle in msg, (needle, msg)
    assert leftovers(env.cache) == []


def test_download_connection_refused(env):
    start = time.perf_counter()
    with pytest.raises(DownloadError) as info:
        load_fashion_mnist(mirrors=[closed_port_url()], timeout=2, retries=2)
    assert_clean_failure(env, info, "cannot connect", "attempt 3")
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("mode", ["stall", "hang"])
def test_download_stall_is_bounded_by_timeout(env, server, mode):
    raw = fashion_raw(9)
    serve_all(server, raw, **{"train-images-idx3-ubyte": Reply(body=gz(raw["train-images-idx3-ubyte"]), mode=mode)})
    start = time.perf_counter()
    with pytest.raises(DownloadError) as info:
        load_fashion_mnist(mirrors=[server.url], checksums=checksums_of(raw), timeout=0.3, retries=1)
    assert time.perf_counter() - start < 3
    assert_clean_failure(env, info, "0.3 s")
    assert server.count["/train-images-idx3-ubyte.gz"] == 2  # retried once


@pytest.mark.parametrize("mode", ["truncate", "close"])
def test_download_truncated_body_is_retried(env, server, mode):
    raw = fashion_raw(9)
    serve_all(server, raw, **{"train-images-idx3-ubyte": Reply(body=gz(raw["train-images-idx3-ubyte"]), mode=mode)})
    with pytest.raises(DownloadError) as info:
        load_fashion_mnist(mirrors=[server.url], checksums=checksums_of(raw), timeout=2, retries=2)
    assert_clean_failure(env, info, "truncated")
    assert server.count["/train-images-idx3-ubyte.gz"] == 3


def test_download_checksum_mismatch_is_not_retried(env, server):
    raw = fashion_raw(9)
    serve_all(server, raw)
    sums = checksums_of(raw)
    sums["train-images-idx3-ubyte"] = "0" * 64
    with pytest.raises(DownloadError) as info:
        load_fashion_mnist(mirrors=[server.url], checksums=sums, timeout=2, retries=2)
    assert_clean_failure(env, info, "checksum mismatch", "0" * 64)
    assert server.count["/train-images-idx3-ubyte.gz"] == 1


@pytest.mark.parametrize("reply, needle", [
    (Reply(body=b"<!DOCTYPE html><html>rate limited</html>", content_type="text/html"), "web page"),
    (Reply(body=b"<!DOCTYPE html><html>oops</html>"), "not gzip"),
    (Reply(status=404, body=b"missing", content_type="text/plain"), "HTTP 404"),
    (Reply(body=gz(b"not an idx file")), "not a valid IDX"),
], ids=["html-200", "html-as-binary", "404", "gzip-not-idx"])
def test_download_bad_responses_are_not_retried(env, server, reply, needle):
    raw = fashion_raw(9)
    serve_all(server, raw, **{"train-images-idx3-ubyte": reply})
    with pytest.raises(DownloadError) as info:
        load_fashion_mnist(mirrors=[server.url], checksums=checksums_of(raw), timeout=2, retries=2)
    assert_clean_failure(env, info, needle)
    assert server.count["/train-images-idx3-ubyte.gz"] == 1


def test_download_5xx_is_retried_then_fails(env, server):
    raw = fashion_raw(9)
    serve_all(server, raw, **{"train-images-idx3-ubyte": Reply(status=503, body=b"busy", content_type="text/plain")})
    with pytest.raises(DownloadError) as info:
        load_fashion_mnist(mirrors=[server.url], checksums=checksums_of(raw), timeout=2, retries=2)
    assert_clean_failure(env, info, "HTTP 503")
    assert server.count["/train-images-idx3-ubyte.gz"] == 3


def test_download_recovers_after_a_transient_error(env, server):
    raw = fashion_raw(9)
    body = gz(raw["train-images-idx3-ubyte"])
    serve_all(server, raw, **{"train-images-idx3-ubyte": [Reply(status=500), Reply(body=body, mode="truncate"),
                                                         Reply(body=body)]})
    assert seed_of(load_fashion_mnist(mirrors=[server.url], checksums=checksums_of(raw), timeout=2)) == 9
    assert server.count["/train-images-idx3-ubyte.gz"] == 3


def test_download_falls_back_to_the_next_mirror(env, server):
    raw = fashion_raw(9)
    serve_all(server, raw)
    with LocalServer() as broken:  # serves nothing: 404 everywhere
        got = load_fashion_mnist(mirrors=[broken.url, server.url + "/"], checksums=checksums_of(raw), timeout=2)
        assert sum(broken.count.values()) == 4
    assert seed_of(got) == 9


def test_download_error_is_a_data_error_and_value_error():
    assert issubclass(DownloadError, DataError) and issubclass(DataError, ValueError)


# --------------------------------------------------------------------------- #
# Real data
# --------------------------------------------------------------------------- #

RAW_MD5 = {  # published MD5s of the decompressed files (torchvision's raw_data, and others)
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}


@pytest.fixture
def debian_files():
    paths = {b: os.path.join(DEBIAN, b + ".gz") for b in FASHION_MNIST_FILES}
    if not all(os.path.isfile(p) for p in paths.values()):
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI is set but the Fashion-MNIST files are missing from {DEBIAN}")
        pytest.skip(f"Fashion-MNIST not installed in {DEBIAN} (apt-get install dataset-fashion-mnist)")
    return paths


@pytest.mark.realdata
def test_real_fashion_mnist(debian_files, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    start = time.perf_counter()
    X_train, y_train, X_test, y_test = load_fashion_mnist(DEBIAN, download=False)
    first = time.perf_counter() - start
    start = time.perf_counter()
    again = load_fashion_mnist(DEBIAN, download=False)
    second = time.perf_counter() - start
    print(f"\nFashion-MNIST load: first {first:.3f} s, second {second:.3f} s")
    assert second < 1.0
    assert X_train.shape == (60000, 28, 28) and X_test.shape == (10000, 28, 28)
    assert X_train.dtype == X_test.dtype == np.uint8
    assert y_train.dtype == y_test.dtype == np.int64
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10
    for a, b in zip((X_train, y_train, X_test, y_test), again):
        np.testing.assert_array_equal(a, b)
    Xb, yb = next(iter(DataLoader(X_test, y_test, 256)))
    assert Xb.shape == (256, 1, 28, 28) and Xb.dtype == np.float32 and 0 <= Xb.min() and Xb.max() <= 1


@pytest.mark.realdata
def test_real_fashion_mnist_checksums(debian_files):
    for base, path in debian_files.items():
        content = gzip.decompress(open(path, "rb").read())
        assert hashlib.md5(content).hexdigest() == RAW_MD5[base]
        assert hashlib.sha256(content).hexdigest() == data.FASHION_MNIST_SHA256[base]
        assert data.idx._read_idx(path, digest=True)[1] == data.FASHION_MNIST_SHA256[base]


# --------------------------------------------------------------------------- #
# DataLoader
# --------------------------------------------------------------------------- #

def images(n=10, h=4, w=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w), dtype=np.uint8)


def test_loader_shapes_dtypes_and_exact_scaling():
    X, y = images(10), np.arange(10, dtype=np.int32)
    loader = DataLoader(X, y, 4)
    batches = list(loader)
    assert len(loader) == 3 == len(batches) and loader.dataset_size == 10
    assert [b[0].shape for b in batches] == [(4, 1, 4, 3), (4, 1, 4, 3), (2, 1, 4, 3)]
    for Xb, yb in batches:
        assert Xb.dtype == np.float32 and yb.dtype == np.int64
    got = np.concatenate([b[0] for b in batches])
    np.testing.assert_array_equal(got[:, 0], X.astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)


def test_loader_scaling_matches_torchvision_to_tensor():
    torch = pytest.importorskip("torch")
    X = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    (Xb, _), = DataLoader(X, np.zeros(1, np.int64), 1)
    expected = torch.from_numpy(X).unsqueeze(1).float().div(255).numpy()
    np.testing.assert_array_equal(Xb, expected)


def test_to_float_is_one_correctly_rounded_float32_division():
    X = np.arange(256, dtype=np.uint8).reshape(4, 8, 8)
    X0 = X.copy()
    got = to_float(X)
    assert got.dtype == np.float32 and got.shape == (4, 1, 8, 8)
    np.testing.assert_array_equal(got[:, 0], X.astype(np.float32) / np.float32(255))
    # the exact quotient k/255, rounded once to float32
    exact = np.array([np.float32(float(k) / 255) for k in range(256)], dtype=np.float32)
    np.testing.assert_array_equal(got.ravel(), exact)
    # a multiplication by 1/255 would differ in the last bit for some pixel values
    assert np.any(X.astype(np.float32) * np.float32(1 / 255) != got[:, 0])
    np.testing.assert_array_equal(X, X0)
    assert not np.shares_memory(got, X)


@pytest.mark.parametrize("shape, expected", [((5, 4, 3), (5, 1, 4, 3)), ((5, 2, 4, 3), (5, 2, 4, 3)),
                                             ((5, 12), (5, 12)), ((7,), (7,)), ((0, 4, 3), (0, 1, 4, 3))])
def test_to_float_shapes(shape, expected):
    X = np.random.default_rng(1).integers(0, 256, size=shape, dtype=np.uint8)
    got = to_float(X)
    assert got.shape == expected and got.dtype == np.float32
    np.testing.assert_array_equal(got.reshape(shape), X.astype(np.float32) / np.float32(255))


def test_to_float_bad_arguments():
    for bad, exc in [(images(2).tolist(), TypeError), (images(2).astype(np.float32), TypeError),
                     (images(2).astype(np.int64), TypeError), (np.uint8(3), TypeError),
                     (np.zeros((), np.uint8), ValueError)]:
        with pytest.raises(exc, match="images"):
            to_float(bad)


@pytest.mark.parametrize("shuffle", [False, True])
def test_loader_batches_are_to_float_of_the_samples(shuffle):
    X, y = images(11, 5, 6, seed=2), np.arange(11)
    for Xb, yb in DataLoader(X, y, 4, shuffle=shuffle, rng=np.random.default_rng(3)):
        np.testing.assert_array_equal(Xb, to_float(X[yb]))


def test_loader_drop_last():
    loader = DataLoader(images(10), np.arange(10), 4, drop_last=True)
    assert len(loader) == 2 and [len(b[1]) for b in loader] == [4, 4]
    assert len(DataLoader(images(8), np.arange(8), 4, drop_last=True)) == 2
    tiny = DataLoader(images(3), np.arange(3), 4, drop_last=True)
    assert len(tiny) == 0 == len(list(tiny))


def test_loader_shuffle_covers_each_sample_once_and_differs_between_epochs():
    n = 50
    X, y = images(n), np.arange(n)
    loader = DataLoader(X, y, 8, shuffle=True, rng=np.random.default_rng(1))
    epochs = []
    for _ in range(3):
        order = np.concatenate([yb for _, yb in loader])
        assert sorted(order.tolist()) == list(range(n))
        for Xb, yb in loader:
            np.testing.assert_array_equal(Xb[:, 0], X[yb] / np.float32(255))
        epochs.append(order)
    assert not np.array_equal(epochs[0], epochs[1])
    replay = DataLoader(X, y, 8, shuffle=True, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(np.concatenate([yb for _, yb in replay]), epochs[0])


def test_loader_shuffle_without_rng_still_a_permutation():
    loader = DataLoader(images(20), np.arange(20), 6, shuffle=True)
    assert sorted(np.concatenate([yb for _, yb in loader]).tolist()) == list(range(20))


@pytest.mark.parametrize("shuffle", [False, True])
def test_loader_batches_are_fresh_and_inputs_unchanged(shuffle):
    X, y = images(9), np.arange(9)
    X0, y0 = X.copy(), y.copy()
    batches = list(DataLoader(X, y, 4, shuffle=shuffle, rng=np.random.default_rng(0)))
    for Xb, yb in batches:
        assert not np.shares_memory(Xb, X) and not np.shares_memory(yb, y)
        Xb[...] = -1
        yb[...] = -1
    assert not np.shares_memory(batches[0][0], batches[1][0])
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)
    Xf = np.random.default_rng(0).standard_normal((9, 5)).astype(np.float64)
    Xf0 = Xf.copy()
    for Xb, yb in DataLoader(Xf, y, 4, shuffle=shuffle, rng=np.random.default_rng(0)):
        assert not np.shares_memory(Xb, Xf)
        Xb[...] = 0
    np.testing.assert_array_equal(Xf, Xf0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loader_float_input_passes_through(dtype):
    X = np.random.default_rng(0).standard_normal((7, 3)).astype(dtype)
    y = np.random.default_rng(1).standard_normal((7, 1)).astype(dtype)
    batches = list(DataLoader(X, y, 3, shuffle=True, rng=np.random.default_rng(2)))
    assert all(Xb.dtype == dtype and yb.dtype == dtype for Xb, yb in batches)
    Xs, ys = np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])
    order = np.argsort(Xs[:, 0])
    np.testing.assert_array_equal(Xs[order], X[np.argsort(X[:, 0])])
    assert ys.shape == (7, 1)


def test_loader_other_uint8_shapes():
    X4 = np.random.default_rng(0).integers(0, 256, (5, 3, 4, 4), dtype=np.uint8)
    (Xb, _), = DataLoader(X4, np.arange(5), 5)
    assert Xb.shape == (5, 3, 4, 4)
    np.testing.assert_array_equal(Xb, X4 / np.float32(255))
    X2 = X4.reshape(5, -1)
    (Xb, _), = DataLoader(X2, np.arange(5), 8, shuffle=True)
    assert Xb.shape == (5, 48) and Xb.dtype == np.float32


@given(n=st.integers(0, 40), batch_size=st.integers(1, 12), drop_last=st.booleans(), shuffle=st.booleans())
def test_loader_batch_sizes(n, batch_size, drop_last, shuffle):
    loader = DataLoader(images(n, 2, 2), np.arange(n), batch_size, shuffle=shuffle, drop_last=drop_last,
                        rng=np.random.default_rng(0))
    sizes = [len(yb) for _, yb in loader]
    assert len(sizes) == len(loader)
    assert all(s == batch_size for s in sizes[:-1])
    assert sum(sizes) == (n // batch_size * batch_size if drop_last else n)


def test_loader_bad_arguments():
    X, y = images(4), np.arange(4)
    for args, kwargs, exc, needle in [
        ((X, y, 0), {}, ValueError, "batch_size"),
        ((X, y, 1.5), {}, TypeError, "batch_size"),
        ((X, y, True), {}, TypeError, "batch_size"),
        ((X.tolist(), y, 2), {}, TypeError, "X"),
        ((X.astype(np.int32), y, 2), {}, TypeError, "X"),
        ((X, y[:3], 2), {}, ValueError, "y"),
        ((X, list(y), 2), {}, TypeError, "y"),
        ((X, y.astype(bool), 2), {}, TypeError, "y"),
        ((X, y, 2), {"shuffle": True, "rng": 0}, TypeError, "rng"),
        ((X, y, 2), {"rng": np.random.RandomState(0)}, TypeError, "rng"),
        ((X, y, 2), {"shuffle": "yes"}, TypeError, "shuffle"),
        ((X, y, 2), {"drop_last": 1}, TypeError, "drop_last"),
        ((np.zeros((), np.float32), y, 2), {}, ValueError, "X"),
    ]:
        with pytest.raises(exc, match=needle):
            DataLoader(*args, **kwargs)


def test_load_data_fashion_mnist(env):
    make_source(env.system, seed=3)
    train_iter, test_iter = load_data_fashion_mnist(5, rng=np.random.default_rng(0), download=False)
    assert (len(train_iter), len(test_iter)) == (3, 2)
    assert train_iter.shuffle and not test_iter.shuffle
    Xb, yb = next(iter(train_iter))
    assert Xb.shape == (5, 1, 28, 28) and Xb.dtype == np.float32 and yb.dtype == np.int64
    _, _, _, y_test = load_fashion_mnist(download=False)
    np.testing.assert_array_equal(np.concatenate([b for _, b in test_iter]), y_test)
    with pytest.raises(ValueError, match="batch_size"):
        load_data_fashion_mnist(0)
    with pytest.raises(TypeError, match="rng"):
        load_data_fashion_mnist(2, rng=1)


# --------------------------------------------------------------------------- #
# k-fold
# --------------------------------------------------------------------------- #

@given(st.data())
def test_kfold_partition(d):
    n = d.draw(st.integers(2, 120), "n")
    k = d.draw(st.integers(2, n), "k")
    shuffle = d.draw(st.booleans(), "shuffle")
    folds = list(kfold(n, k, shuffle=shuffle, rng=np.random.default_rng(d.draw(st.integers(0, 9)))))
    assert len(folds) == k
    vals = [v for _, v in folds]
    assert sorted(np.concatenate(vals).tolist()) == list(range(n))
    sizes = [len(v) for v in vals]
    assert max(sizes) - min(sizes) <= 1
    assert sizes == [n // k + 1] * (n % k) + [n // k] * (k - n % k)
    for train, val in folds:
        assert train.dtype == val.dtype == np.int64
        assert sorted(np.concatenate([train, val]).tolist()) == list(range(n))
        assert np.all(np.diff(train) > 0)
    if not shuffle:
        start = 0
        for v in vals:
            np.testing.assert_array_equal(v, np.arange(start, start + len(v)))
            start += len(v)


def test_kfold_shuffle_is_reproducible_and_different_from_plain():
    a = [v.tolist() for _, v in kfold(30, 3, shuffle=True, rng=np.random.default_rng(4))]
    b = [v.tolist() for _, v in kfold(30, 3, shuffle=True, rng=np.random.default_rng(4))]
    plain = [v.tolist() for _, v in kfold(30, 3)]
    assert a == b and a != plain


def test_kfold_bad_arguments():
    for args, kwargs, exc, needle in [
        ((10, 1), {}, ValueError, "k"),
        ((3, 4), {}, ValueError, "n"),
        ((10, 2.0), {}, TypeError, "k"),
        ((10.0, 2), {}, TypeError, "n"),
        ((10, 2), {"shuffle": 1}, TypeError, "shuffle"),
        ((10, 2), {"shuffle": True, "rng": 3}, TypeError, "rng"),
    ]:
        with pytest.raises(exc, match=needle):
            kfold(*args, **kwargs)


def d2l_get_k_fold_data(k, i, X, y):
    """The course's definition, with torch.cat spelled np.concatenate."""
    assert k > 1
    fold_size = X.shape[0] // k
    X_train, y_train = None, None
    for j in range(k):
        idx = slice(j * fold_size, (j + 1) * fold_size)
        X_part, y_part = X[idx, :], y[idx]
        if j == i:
            X_valid, y_valid = X_part, y_part
        elif X_train is None:
            X_train, y_train = X_part, y_part
        else:
            X_train = np.concatenate([X_train, X_part], 0)
            y_train = np.concatenate([y_train, y_part], 0)
    return X_train, y_train, X_valid, y_valid


@given(st.data())
def test_get_k_fold_data_matches_the_course(d):
    n = d.draw(st.integers(2, 60), "n")
    k = d.draw(st.integers(2, n), "k")
    i = d.draw(st.integers(0, k - 1), "i")
    X = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    y = np.arange(n, dtype=np.float64).reshape(n, 1)
    X0, y0 = X.copy(), y.copy()
    got = get_k_fold_data(k, i, X, y)
    for a, b in zip(got, d2l_get_k_fold_data(k, i, X, y)):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype
    for a in got:
        assert not np.shares_memory(a, X) and not np.shares_memory(a, y)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)
    assert len(got[0]) == (k - 1) * (n // k) and len(got[2]) == n // k


def test_get_k_fold_data_bad_arguments():
    X, y = np.zeros((6, 2)), np.zeros(6)
    for args, exc, needle in [
        ((1, 0, X, y), ValueError, "k"),
        ((3, 3, X, y), ValueError, "i"),
        ((3, -1, X, y), ValueError, "i"),
        ((3, 0.0, X, y), TypeError, "i"),
        ((3, 0, X.tolist(), y), TypeError, "X"),
        ((3, 0, X, y[:5]), ValueError, "y"),
        ((7, 0, X, y), ValueError, "at least k"),
        ((3, 0, X, np.float64(1.0)), TypeError, "y"),
    ]:
        with pytest.raises(exc, match=needle):
            get_k_fold_data(*args)


# --------------------------------------------------------------------------- #
# fingerprint
# --------------------------------------------------------------------------- #

def small_arrays(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (12, 28, 28), dtype=np.uint8), rng.integers(0, 10, 12).astype(np.int64),
            rng.integers(0, 256, (6, 28, 28), dtype=np.uint8), rng.integers(0, 10, 6).astype(np.int64))


def test_fingerprint_same_arrays_same_value_and_inputs_unchanged():
    arrays = small_arrays()
    before = [a.copy() for a in arrays]
    fp = data.fingerprint(*arrays)
    assert isinstance(fp, str) and len(fp) == 64 and int(fp, 16) >= 0
    assert data.fingerprint(*[a.copy() for a in arrays]) == fp
    # a non-contiguous view with the same values, and a read-only copy, give the same value
    X = np.zeros((12, 28, 56), dtype=np.uint8)
    X[:, :, ::2] = arrays[0]
    ro = arrays[2].copy()
    ro.flags.writeable = False
    assert data.fingerprint(X[:, :, ::2], arrays[1], ro, arrays[3]) == fp
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("change", ["pixel", "train label", "test label", "order", "swap splits",
                                    "dtype", "shape", "one image fewer"])
def test_fingerprint_changes_with_the_data(change):
    X_train, y_train, X_test, y_test = arrays = small_arrays()
    fp = data.fingerprint(*arrays)
    if change == "pixel":
        X_train = X_train.copy()
        X_train[3, 14, 14] ^= 1
        other = (X_train, y_train, X_test, y_test)
    elif change == "train label":
        y_train = y_train.copy()
        y_train[0] = (y_train[0] + 1) % 10
        other = (X_train, y_train, X_test, y_test)
    elif change == "test label":
        y_test = y_test.copy()
        y_test[-1] = (y_test[-1] + 1) % 10
        other = (X_train, y_train, X_test, y_test)
    elif change == "order":
        other = (X_train[::-1], y_train[::-1], X_test, y_test)
    elif change == "swap splits":
        other = (X_test, y_test, X_train, y_train)
    elif change == "dtype":
        other = (X_train, y_train.astype(np.uint8), X_test, y_test)
    elif change == "shape":
        other = (X_train.reshape(12, 784), y_train, X_test, y_test)
    else:
        other = (X_train[:-1], y_train[:-1], X_test, y_test)
    assert data.fingerprint(*other) != fp


def test_fingerprint_is_the_same_for_every_source_of_the_same_data(env):
    gz_dir = make_source(env.tmp / "gz", seed=3)
    raw_dir = make_source(env.tmp / "raw", seed=3, compress=False)
    first = load_fashion_mnist(gz_dir, download=False)           # builds the decoded cache
    again = load_fashion_mnist(gz_dir, download=False)           # reads it
    plain = load_fashion_mnist(raw_dir, download=False)
    fp = data.fingerprint(*first)
    assert data.fingerprint(*again) == fp == data.fingerprint(*plain)
    assert data.fingerprint(*load_fashion_mnist(make_source(env.tmp / "other", seed=4), download=False)) != fp


def test_fingerprint_bad_arguments():
    X_train, y_train, X_test, y_test = small_arrays()
    with pytest.raises(TypeError, match="y_train"):
        data.fingerprint(X_train, y_train.tolist(), X_test, y_test)
    with pytest.raises(TypeError, match="X_test"):
        data.fingerprint(X_train, y_train, X_test.astype(object), y_test)


def test_fingerprint_follows_its_documented_definition():
    # checkpoints store the value, so its definition must not drift
    arrays = small_arrays(5)
    h = hashlib.sha256(b"npnet-data-fingerprint-v1\0")
    for a in arrays:
        h.update(f"{a.dtype.str}{a.shape};".encode() + a.tobytes())
    assert data.fingerprint(*arrays) == h.hexdigest()


# --------------------------------------------------------------------------- #
# the command line: --data-dir is used or refused; `npnet data --quiet`
# --------------------------------------------------------------------------- #

def run_cli(capsys, *argv):
    from npnet import cli

    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def one_line(text):
    assert "Traceback" not in text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


@pytest.mark.parametrize("case", BROKEN_ROOTS)
@pytest.mark.parametrize("command", ["train", "data"])
def test_cli_bad_data_dir_exits_2_naming_it_and_never_trains(env, monkeypatch, capsys, case, command):
    make_source(env.system, seed=2)   # a valid copy elsewhere, which the old search fell back to
    make_source(env.cache, seed=3)
    monkeypatch.setenv("NPNET_FASHION_MNIST_URL", closed_port_url())   # never the internet
    given, named, problem = break_root(make_source(env.tmp / "root", seed=1), case)
    out = env.tmp / "run"
    if command == "train":
        argv = ("train", "--data-dir", given, "--out", out, "--epochs", 1)
    else:
        argv = ("data", "--data-dir", given, "--no-download")
    status, stdout, stderr = run_cli(capsys, *argv)
    assert status == 2
    line = one_line(stderr)
    assert "--data-dir" in line and str(named) in line and problem in line
    assert "found in" not in stdout
    assert not os.path.exists(out / "metrics.csv") and not os.path.exists(out / "checkpoint.npz")


def test_cli_train_download_without_network_says_it_failed_and_why(env, monkeypatch, capsys):
    monkeypatch.setenv("NPNET_FASHION_MNIST_URL", closed_port_url())
    out = env.tmp / "run"
    status, _, stderr = run_cli(capsys, "train", "--data-dir", env.tmp / "new", "--download", "--out", out)
    assert status == 2
    line = one_line(stderr)
    assert "download" in line and "failed" in line and "refused" in line.lower()
    assert not os.path.exists(out / "metrics.csv")


def test_cli_train_download_fills_an_explicit_data_dir(env, server, monkeypatch, capsys):
    raw = fashion_raw(9)
    serve_all(server, raw)
    monkeypatch.setattr(data.sources, "FASHION_MNIST_SHA256", checksums_of(raw))
    monkeypatch.setenv("NPNET_FASHION_MNIST_URL", server.url)
    make_source(env.system, seed=2)
    target = env.tmp / "new"
    status, _, stderr = run_cli(capsys, "train", "--data-dir", target, "--download", "--out", env.tmp / "run",
                                "--epochs", 1, "--batch-size", 4)
    assert status == 0, stderr
    assert sorted(os.listdir(target)) == sorted(b + ".gz" for b in FASHION_MNIST_FILES)


@pytest.mark.parametrize("download", [True, False])
def test_npnet_data_quiet_prints_one_line_when_nothing_is_found(env, monkeypatch, capsys, download):
    monkeypatch.setenv("NPNET_FASHION_MNIST_URL", closed_port_url())
    argv = ("data", "--quiet") + (() if download else ("--no-download",))
    status, stdout, stderr = run_cli(capsys, *argv)
    assert status == 1
    assert stdout == ""
    line = one_line(stderr)
    assert "not found" in line and "npnet data" in line
    if download:
        assert "download" in line and "failed" in line and "refused" in line.lower()
    # without --quiet the failure still lists every place, every attempt and every way
    status, stdout, stderr = run_cli(capsys, *argv[:1] + argv[2:])
    assert status == 1
    for needle in (str(env.cache), str(env.system), "NPNET_DATA", "root=", "apt-get install dataset-fashion-mnist",
                   "make data") + (("attempt 3",) if download else ()):
        assert needle in stderr, needle
    assert len(stderr.splitlines()) > 5


def test_npnet_data_quiet_prints_one_line_when_found(env, capsys):
    make_source(env.system, seed=2)
    status, stdout, stderr = run_cli(capsys, "data", "--quiet")
    assert status == 0 and stderr == ""
    assert str(env.system) in one_line(stdout)


def test_npnet_data_corrupt_file_exits_2_with_one_line(env, capsys):
    bad = make_source(env.system, seed=2) / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:-5])
    status, _, stderr = run_cli(capsys, "data", "--quiet")
    assert status == 2
    assert "train-labels-idx1-ubyte.gz" in one_line(stderr)


# --------------------------------------------------------------------------- #
# `make data`: one line on the way to Debian's package, the full report only when every way failed
# --------------------------------------------------------------------------- #

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_data(tmp_path, apt):
    """Run the Makefile's `data` target with Fashion-MNIST nowhere, no network and a fake apt-get
    that installs a small data set (apt="ok") or fails (apt="fail"); returns (status, stdout, stderr)."""
    import shutil
    import subprocess
    import sys

    system, bin_dir = tmp_path / "system", tmp_path / "bin"
    bin_dir.mkdir()
    tests = os.path.join(REPO, "tests")
    wrapper = bin_dir / "py"   # stands in for the venv's python: the real CLI with the system folder moved
    wrapper.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        f"sys.path[:0] = [{REPO!r}, {tests!r}]\n"
        "import npnet.data as d\n"
        f"d.SYSTEM_DIRS, d._COUNTS, d._RETRY_BACKOFF = ({str(system)!r},), {SMALL!r}, 0.0\n"
        "assert sys.argv[1:3] == ['-m', 'npnet'], sys.argv\n"
        "from npnet.cli import main\n"
        "sys.exit(main(sys.argv[3:]))\n")
    installer = bin_dir / "install-dataset"
    installer.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {tests!r})\nimport idxdata\n"
                         f"idxdata.make_dataset({str(system)!r}, {SMALL!r}, gz=True)\n")
    apt_get = bin_dir / "apt-get"
    apt_get.write_text("#!/bin/sh\n"
                       'case "$1" in update) exit 0;; install) ' + (f"{installer}; exit $?" if apt == "ok" else "exit 100")
                       + ";; esac\nexit 1\n")
    for f in (wrapper, installer, apt_get):
        f.chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.path.dirname(shutil.which('make'))}:/usr/bin:/bin",
           "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "NPNET_FASHION_MNIST_URL": closed_port_url(), "no_proxy": "127.0.0.1"}
    p = subprocess.run(["make", "--no-print-directory", "-C", REPO, "-o", ".venv/.installed-train", "data",
                        f"PY={wrapper}"], env=env, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


@pytest.mark.skipif(not __import__("shutil").which("make"), reason="needs make")
def test_make_data_falls_back_to_debian_with_one_line(tmp_path):
    status, stdout, stderr = make_data(tmp_path, "ok")
    assert status == 0, stdout + stderr
    assert stderr == ""
    assert stdout.splitlines() == [
        "Fashion-MNIST not found locally; installing Debian's dataset-fashion-mnist package...",
        f"Fashion-MNIST found in {tmp_path / 'system'}: 12 training and 6 test images"]


@pytest.mark.skipif(not __import__("shutil").which("make"), reason="needs make")
def test_make_data_lists_every_way_when_every_way_failed(tmp_path):
    status, stdout, stderr = make_data(tmp_path, "fail")
    assert status != 0
    assert "installing Debian's dataset-fashion-mnist package" in stdout
    for needle in ("apt-get install dataset-fashion-mnist failed", str(tmp_path / "system"), "NPNET_DATA",
                   "attempt 3", "Connection refused", "make data"):
        assert needle in stderr, needle


# =========================================================================== bad inputs
# Every array and every other argument of DataLoader, kfold and the Fashion-MNIST loaders,
# crossed with the bad values of tests/badinput.py (its docstring says what
# SAME, REF, OK, Names and Deviates mean), then the rows the tables cannot express, and a full disk.

import idxdata  # noqa: E402
from badinput import (  # noqa: E402, F401  (ctx is a fixture)
    ArrayTable, OK, REF, Names, Raises, SKIP, ScalarTable, check_array_row, check_scalar_row,
    check_special_row, ctx, enospc, labels, randn, rng, special_params)

ARRAYS = ArrayTable()
add = ARRAYS.add

def _batches(a, batch_size=2):
    return [(x, y) for x, y in data.DataLoader(a["X"], a["y"], batch_size)]


def _batches_ref(a, batch_size=2):
    X, y = a["X"], a["y"]
    if X.dtype == np.uint8:
        X = (X.astype(np.float32) / np.float32(255))[:, None] if X.ndim == 3 else X.astype(np.float32) / np.float32(255)
    y = y.astype(np.int64) if y.dtype.kind in "iu" else y
    return [(X[i:i + batch_size], y[i:i + batch_size]) for i in range(0, X.shape[0], batch_size)]


_dl_args = lambda: {"X": randn(5, 3), "y": labels(5)}   # noqa: E731
_dl_empty = lambda: {"X": randn(0, 3), "y": labels(0)}   # noqa: E731
_per_sample = Names(ValueError, ("y", "X"))
add("DataLoader(X)", _batches, _dl_args, "X", ref=_batches_ref, empty=_dl_empty,
    zero_d=Names(ValueError, "X"), wrong_shape=(lambda v: v[:4], _per_sample),
    over={"other-float": REF, "int64": Names(TypeError, "X")})
add("DataLoader(X uint8)", _batches, lambda: {"X": np.arange(5 * 12, dtype=np.uint8).reshape(5, 3, 4), "y": labels(5)},
    "X", kind="any", ref=_batches_ref, empty=lambda: {"X": np.zeros((0, 3, 4), np.uint8), "y": labels(0)},
    zero_d=Names(ValueError, "X"), over={k: Names(TypeError, "X") for k in ("bool", "object", "complex")})
add("DataLoader(y)", _batches, _dl_args, "y", kind="index", ref=_batches_ref, empty=_dl_empty,
    zero_d=_per_sample, wrong_shape=(lambda v: v[:4], _per_sample),
    over={"float32": REF, "out-of-range": REF, "negative": REF,
          **{k: Names(TypeError, "y") for k in ("bool", "object", "complex")}})

_kf_args = lambda: {"X": randn(5, 3), "y": labels(5)}   # noqa: E731
_kf = lambda a: data.get_k_fold_data(2, 1, a["X"], a["y"])   # noqa: E731
_kf_ref = lambda a: (a["X"][:2].copy(), a["y"][:2].copy(), a["X"][2:4].copy(), a["y"][2:4].copy())   # noqa: E731
add("get_k_fold_data(X)", _kf, _kf_args, "X", kind="any", ref=_kf_ref,
    empty=lambda: {"X": randn(0, 3), "y": labels(0)},
    over={"empty": Names(ValueError, ("X", "k"))},
    zero_d=Names(ValueError, "X"), wrong_shape=(lambda v: v[:4], _per_sample))
add("get_k_fold_data(y)", _kf, _kf_args, "y", kind="any", ref=_kf_ref,
    zero_d=Names(ValueError, "y"),
    wrong_shape=(lambda v: v[:4], _per_sample))
for _k in ("nan", "inf"):   # float rows for the integer labels above would be meaningless
    ARRAYS[-1].over[_k] = SKIP


@pytest.mark.parametrize("arg, bad, outcome", ARRAYS.params())
def test_array_argument(arg, bad, outcome):
    check_array_row(arg, bad, outcome)


SCALARS = ScalarTable()
scalar = SCALARS.add

# no data: the search names the data set; an explicit root is named in the message (root=...)
_NO_DATA = Raises(DataError, r"Fashion-MNIST not found|(?<![\w.])root=")
_NOT_DOWNLOADED = Raises(DownloadError, "Could not download")
_LOCAL = dict(mirrors=["http://127.0.0.1:9/"], retries=0, timeout=2)   # port 9 refuses at once: never the internet
_dl = lambda **kw: list(data.DataLoader(randn(5, 3), labels(5), **{"batch_size": 2, **kw}))   # noqa: E731
scalar("DataLoader(batch_size)", lambda v, c: _dl(batch_size=v), "batch_size", "int>=1", good=2)
scalar("DataLoader(shuffle)", lambda v, c: _dl(shuffle=v), "shuffle", "flag")
scalar("DataLoader(drop_last)", lambda v, c: _dl(drop_last=v), "drop_last", "flag")
scalar("DataLoader(rng)", lambda v, c: _dl(shuffle=True, rng=v), "rng", "generator?")
scalar("kfold(n)", lambda v, c: list(data.kfold(v, 2)), "n", "int>=2", good=5)
scalar("kfold(k)", lambda v, c: list(data.kfold(9, v)), "k", "int>=2")
scalar("kfold(shuffle)", lambda v, c: list(data.kfold(5, 2, shuffle=v)), "shuffle", "flag")
scalar("kfold(rng)", lambda v, c: list(data.kfold(5, 2, shuffle=True, rng=v)), "rng", "generator?")
scalar("get_k_fold_data(k)", lambda v, c: data.get_k_fold_data(v, 0, randn(9, 2), labels(9)), "k", "int>=2")
scalar("get_k_fold_data(i)", lambda v, c: data.get_k_fold_data(2, v, randn(9, 2), labels(9)), "i", "int>=0",
       over={"big": Names(ValueError, "i")})
scalar("read_idx(path)", lambda v, c: data.read_idx(v), "path", "path",
       over={"str": Raises(DataError, r"^1: cannot read IDX file: No such file or directory")})
scalar("read_idx(max_bytes)", lambda v, c: data.read_idx(c.idx, max_bytes=v), "max_bytes", "int>=0?",
       over={"zero": Raises(DataError, r"claims 11 bytes, more than the 0 allowed"),
             "one": Raises(DataError, r"more than the 1 allowed"), "big": Raises(DataError, r"more than the 7 allowed")})
_lfm = lambda c, **kw: data.load_fashion_mnist(   # noqa: E731
    **{"root": os.path.join(c.tmp, "nothing"), "download": False, **kw})
scalar("load_fashion_mnist(root)", lambda v, c: data.load_fashion_mnist(v, download=False), "root", "path?", ok=_NO_DATA)
scalar("load_fashion_mnist(download)", lambda v, c: _lfm(c, download=v, **_LOCAL), "download", "flag",
       ok=_NOT_DOWNLOADED)
scalar("load_fashion_mnist(timeout)", lambda v, c: _lfm(c, timeout=v), "timeout", "real>0", ok=_NO_DATA)
scalar("load_fashion_mnist(retries)", lambda v, c: _lfm(c, retries=v), "retries", "int>=0", ok=_NO_DATA,
       over={"big": _NO_DATA})
scalar("load_fashion_mnist(mirrors)", lambda v, c: _lfm(c, mirrors=v), "mirrors", "mirrors?", ok=_NO_DATA)
scalar("load_fashion_mnist(checksums)", lambda v, c: _lfm(c, checksums=v), "checksums", "dict?", ok=_NO_DATA)
scalar("load_fashion_mnist(cache)", lambda v, c: _lfm(c, cache=v), "cache", "flag", ok=_NO_DATA)
scalar("find_fashion_mnist(root)", lambda v, c: data.find_fashion_mnist(v), "root", "path?",
       over={"str": OK})
scalar("download_fashion_mnist(root)", lambda v, c: data.download_fashion_mnist(v, **_LOCAL), "root", "path?",
       ok=_NOT_DOWNLOADED, over={"str": SKIP})
scalar("download_fashion_mnist(timeout)",
       lambda v, c: data.download_fashion_mnist(c.tmp, mirrors=_LOCAL["mirrors"], retries=0, timeout=v),
       "timeout", "real>0", ok=_NOT_DOWNLOADED)
scalar("load_data_fashion_mnist(batch_size)", lambda v, c: data.load_data_fashion_mnist(v, c.tmp, download=False),
       "batch_size", "int>=1", ok=_NO_DATA)
scalar("load_data_fashion_mnist(rng)", lambda v, c: data.load_data_fashion_mnist(2, c.tmp, rng=v, download=False),
       "rng", "generator?", ok=_NO_DATA)


@pytest.mark.parametrize("s, bad, outcome", SCALARS.params())
def test_other_argument(ctx, s, bad, outcome):
    check_scalar_row(ctx, s, bad, outcome)


SPECIAL = [
    # id, lambda ctx: the call, outcome (REF rows give (call, reference) pairs)
    ("DataLoader over 0 samples yields nothing", lambda c: (list(data.DataLoader(randn(0, 3), labels(0), 4)), []), REF),
    ("DataLoader batch_size 10**12 allocates by the data",
     lambda c: (len(list(data.DataLoader(np.zeros((3, 28, 28), np.uint8), labels(3), 10**12, shuffle=True, rng=rng()))),
                1), REF),
    ("kfold n < k", lambda c: list(data.kfold(3, 5)),
     Names(ValueError, ("n", "k"))),
    ("read_idx(directory)", lambda c: data.read_idx(c.tmp), Raises(DataError, r"not a regular file")),
]


@pytest.mark.parametrize("call, outcome", special_params(SPECIAL))
def test_special_row(ctx, call, outcome):
    check_special_row(ctx, call, outcome)


# --------------------------------------------------------------------------- a full disk

TINY = {"train": 60, "test": 20}


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """A tiny dataset, the only one npnet can find; returns its directory."""
    return idxdata.isolate(monkeypatch, tmp_path, TINY)


def test_download_on_a_full_disk_leaves_no_partial_file(tmp_path, monkeypatch):
    from httpserver import LocalServer, Reply

    raw = bytes([0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3])
    with LocalServer() as server:
        for base in data.FASHION_MNIST_FILES:
            server.route(f"/{base}.gz", Reply(body=gzip.compress(raw)))
        monkeypatch.setattr(data.os, "fsync", enospc)
        with pytest.raises(DownloadError, match=r"cannot write .*train-images-idx3-ubyte.gz: No space left on device"):
            data.download_fashion_mnist(tmp_path / "d", mirrors=[server.url], timeout=5, retries=0,
                                        checksums={b: hashlib.sha256(raw).hexdigest() for b in data.FASHION_MNIST_FILES})
    assert os.listdir(tmp_path / "d") == []


def test_decoded_cache_on_a_full_disk_is_just_skipped(tiny, tmp_path, monkeypatch):
    gz_dir = idxdata.make_dataset(tmp_path / "gz", TINY, gz=True)
    monkeypatch.setattr(data.os, "fsync", enospc)
    X_train, y_train, X_test, y_test = data.load_fashion_mnist(gz_dir, download=False)
    assert X_train.shape == (TINY["train"], 28, 28) and y_test.shape == (TINY["test"],)
    cache = tmp_path / "cache" / "npnet" / "fashion-mnist"
    assert not cache.exists() or os.listdir(cache) == []
