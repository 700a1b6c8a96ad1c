"""npnet's checkpoint format: round trips, what a damaged or hostile file does, a full disk.

save_checkpoint writes one .npz of plain arrays (no pickle) with a checksum,
atomically; load_checkpoint refuses anything it cannot vouch for with a
CheckpointError naming the file; Checkpoint.restore refuses a checkpoint of
another run before writing anything.
"""
import io
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc

import numpy as np
import pytest

from npnet import optim
from npnet import checkpoint as CK
from npnet import train as T
from npnet.errors import CheckpointError
from runs import run_fit, same_numbers, setup_run


@pytest.fixture
def saved(tmp_path):
    """A checkpoint after 2 epochs of a small run, with everything in it (dropout, momentum, scheduler)."""
    run = setup_run(scheduler=True)
    path = tmp_path / "ckpt.npz"
    result = run_fit(run, 2, checkpoint_path=str(path), config={"hello": [1, 2.5, "x"]})
    return path, run, result


# --------------------------------------------------------------------------- checkpoints

def test_checkpoint_round_trip(saved):
    path, run, result = saved
    with np.load(path, allow_pickle=False) as z:   # plain arrays, no pickle
        files = set(z.files)
        assert all(z[k].dtype.kind in "biufU" for k in files)
        assert z["rng/shuffle"].dtype == np.uint64 and z["rng/shuffle"].shape == (6,)
    assert {"format", "version", "epoch", "checksum", "config", "param/1.weight", "optim/lr",
            "optim/momentum_buffer.1.weight", "sched/last_epoch", "rng/shuffle", "rng/dropout.3",
            "metrics/train_loss"} <= files
    c = T.load_checkpoint(path)
    assert c.epoch == 2 and c.version == T.CHECKPOINT_VERSION
    assert same_numbers(c.params, run["model"].params)
    assert same_numbers(c.optimizer, run["optimizer"].state_dict())
    assert same_numbers(c.scheduler, run["scheduler"].state_dict())
    assert c.rng["shuffle"] == run["train_loader"].rng.bit_generator.state   # the 128-bit ints survive
    assert c.rng["dropout.3"] == run["model"][3].rng.bit_generator.state
    assert c.config == {"hello": [1, 2.5, "x"]}
    assert c.metrics == list(result.history)

    # restore into fresh objects: the generators then draw the same numbers
    fresh = setup_run(scheduler=True, seed=5)
    c.restore(model=fresh["model"], optimizer=fresh["optimizer"], scheduler=fresh["scheduler"],
              rng=T.collect_rngs(fresh["model"], fresh["train_loader"]))
    assert same_numbers(fresh["model"].params, run["model"].params)
    assert fresh["train_loader"].rng.random(5).tolist() == run["train_loader"].rng.random(5).tolist()


def test_checkpoint_with_a_single_generator_and_float64(tmp_path):
    m = T.build_model(rng=np.random.default_rng(0), dtype=np.float64)
    opt = optim.Adam(m.params)
    g = np.random.default_rng(2**100)
    g.random(3)
    T.save_checkpoint(tmp_path / "c.npz", model=m, optimizer=opt, epoch=0, rng=g)
    c = T.load_checkpoint(tmp_path / "c.npz")
    assert c.rng["rng"] == g.bit_generator.state and c.scheduler is None and c.config is None
    h = np.random.default_rng(0)
    c.restore(model=m, optimizer=opt, rng=h)
    assert h.integers(2**62, size=4).tolist() == g.integers(2**62, size=4).tolist()


def rewrite(path, **changes):
    """Rewrite an npz with some arrays changed; the checksum recomputed unless given."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(changes)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    if "checksum" not in changes:
        arrays["checksum"] = np.array(CK._digest(arrays))
    np.savez(path, **arrays)


def test_a_flipped_byte_in_the_data_is_refused(saved):
    path, _, _ = saved
    raw = bytearray(path.read_bytes())
    W = T.load_checkpoint(path).params["1.weight"]
    at = bytes(raw).find(W.tobytes()[:64]) + 1000   # a byte inside the weights
    raw[at] ^= 0x10
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="corrupt|checksum"):
        T.load_checkpoint(path)


def test_every_flipped_byte_is_refused_or_harmless(saved):
    """Some zip metadata (timestamps, 'version made by') protects nothing; any
    flip that changes what is loaded must be refused."""
    path, _, _ = saved
    original = T.load_checkpoint(path)
    raw = path.read_bytes()
    rng = np.random.default_rng(0)
    refused = 0
    for at in rng.choice(len(raw), 60, replace=False):
        damaged = bytearray(raw)
        damaged[at] ^= 1 << int(rng.integers(8))
        path.write_bytes(bytes(damaged))
        try:
            c = T.load_checkpoint(path)
        except CheckpointError:
            refused += 1
            continue
        assert same_numbers(c.params, original.params) and same_numbers(c.optimizer, original.optimizer)
        assert c.rng == original.rng and c.epoch == original.epoch and c.metrics == original.metrics
    assert refused > 40


def test_truncated_and_non_checkpoint_files_are_refused(saved, tmp_path):
    path, _, _ = saved
    raw = path.read_bytes()
    for cut in (0, 10, len(raw) // 2, len(raw) - 1):
        path.write_bytes(raw[:cut])
        with pytest.raises(CheckpointError):
            T.load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no such file"):
        T.load_checkpoint(tmp_path / "missing.npz")
    np.save(tmp_path / "one.npy", np.ones(3))
    with pytest.raises(CheckpointError, match="npz"):
        T.load_checkpoint(tmp_path / "one.npy")
    np.savez(tmp_path / "other.npz", a=np.ones(3))
    with pytest.raises(CheckpointError, match="'format' is missing"):
        T.load_checkpoint(tmp_path / "other.npz")
    with pytest.raises(CheckpointError, match="cannot read"):
        T.load_checkpoint(tmp_path)


def test_wrong_version_and_format_are_refused(saved):
    path, _, _ = saved
    rewrite(path, version=np.array(2, np.int64))
    with pytest.raises(CheckpointError, match="format version 2 is not supported.*reads version 1"):
        T.load_checkpoint(path)
    rewrite(path, version=np.array(1, np.int64), format=np.array("something-else"))
    with pytest.raises(CheckpointError, match="format 'something-else'"):
        T.load_checkpoint(path)


def test_tampering_without_updating_the_checksum_is_refused(saved):
    path, _, _ = saved
    with np.load(path) as z:
        W = z["param/1.weight"].copy()
        checksum = z["checksum"]
    W[0, 0] += 1
    rewrite(path, **{"param/1.weight": W, "checksum": checksum})
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        T.load_checkpoint(path)


def test_wrong_shapes_are_refused(saved):
    path, _, _ = saved
    W = T.load_checkpoint(path).params["1.weight"]
    rewrite(path, **{"param/1.weight": W[:, :-1].copy()})   # a consistent checksum, the wrong shape
    c = T.load_checkpoint(path)
    run = setup_run(scheduler=True)
    before = {k: v.copy() for k, v in run["model"].params.items()}
    with pytest.raises(CheckpointError, match=r"'1.weight' has shape \(32, 783\) in the checkpoint but \(32, 784\)"):
        c.restore(model=run["model"], optimizer=run["optimizer"], scheduler=run["scheduler"])
    assert same_numbers(run["model"].params, before)   # nothing was written


def test_optimizer_state_of_the_wrong_shape_is_refused(saved):
    path, _, _ = saved
    rewrite(path, **{"optim/momentum_buffer.1.weight": np.zeros((3, 3), np.float32)})
    run = setup_run(scheduler=True)
    with pytest.raises(CheckpointError, match="optimizer state does not fit.*momentum_buffer"):
        T.load_checkpoint(path).restore(model=run["model"], optimizer=run["optimizer"], scheduler=run["scheduler"])


def test_restore_refuses_a_different_run(saved):
    path, _, _ = saved
    c = T.load_checkpoint(path)
    plain = setup_run(scheduler=False)
    with pytest.raises(CheckpointError, match="holds scheduler state, but the run has no scheduler"):
        c.restore(model=plain["model"], optimizer=plain["optimizer"])
    scheduled = setup_run(scheduler=True)
    mismatch = r"holds the generators \['dropout.3', 'shuffle'\], but this run draws from \['shuffle'\]"
    with pytest.raises(CheckpointError, match=mismatch):
        c.restore(model=scheduled["model"], optimizer=scheduled["optimizer"], scheduler=scheduled["scheduler"],
                  rng={"shuffle": scheduled["train_loader"].rng})
    c.restore(model=plain["model"])   # parameters alone: always possible
    assert same_numbers(plain["model"].params, c.params)


def test_malformed_entries_are_refused(saved):
    path, _, _ = saved
    raw = path.read_bytes()
    for change, match in (({"surprise": np.ones(2)}, "unexpected entry 'surprise'"),
                          ({"rng/shuffle": np.ones(6)}, "generator 'shuffle' is malformed"),
                          ({"rngtype/shuffle": np.array("MT19937")}, "generator 'shuffle' is malformed"),
                          ({"epoch": np.array(7, np.int64)}, "epoch 7 does not match"),
                          ({"config": np.array("{not json")}, "config is not valid JSON"),
                          ({"param/1.weight": np.ones((2, 2), np.int32)}, "dtype int32")):
        path.write_bytes(raw)
        rewrite(path, **change)
        with pytest.raises(CheckpointError, match=match):
            T.load_checkpoint(path)


def test_non_finite_weights_in_a_checkpoint_are_refused_as_a_bad_checkpoint(saved):
    path, _, _ = saved
    raw = path.read_bytes()
    c = T.load_checkpoint(path)
    for key, value in (("param/1.weight", np.nan), ("param/4.bias", -np.inf),
                       ("optim/momentum_buffer.1.weight", np.inf)):
        path.write_bytes(raw)
        a = (c.params[key[6:]] if key.startswith("param/") else c.optimizer[key[6:]]).copy()
        a.flat[a.size // 2] = value
        rewrite(path, **{key: a})   # a valid checksum over the bad numbers
        with pytest.raises(CheckpointError) as info:
            T.load_checkpoint(path)
        message = str(info.value)
        assert f"{key[6:]!r} holds NaN or inf" in message and "checkpoint is bad" in message
        assert "learning rate" not in message


def test_save_refuses_non_finite_parameters_and_optimizer_state(tmp_path):
    m = T.build_model("mlp", hidden=8, rng=np.random.default_rng(0))
    opt = optim.SGD(m.params, lr=0.1, momentum=0.9)
    opt.step({k: np.ones_like(v) for k, v in m.params.items()})
    path = tmp_path / "c.npz"
    save = dict(model=m, optimizer=opt, epoch=0, rng=np.random.default_rng(0))
    m.params["3.weight"][1, 2] = np.nan
    with pytest.raises(CheckpointError, match=r"cannot save 'param/3.weight': it holds NaN or inf"):
        T.save_checkpoint(path, **save)
    m.params["3.weight"][1, 2] = 0.0
    opt.state["1.bias"]["momentum_buffer"][0] = -np.inf
    with pytest.raises(CheckpointError, match=r"cannot save 'optim/momentum_buffer.1.bias': it holds NaN or inf"):
        T.save_checkpoint(path, **save)
    assert os.listdir(tmp_path) == []
    opt.state["1.bias"]["momentum_buffer"][0] = 0.0
    T.save_checkpoint(path, **save)
    assert T.load_checkpoint(path).epoch == 0


def _deflated_bomb(path, megabytes):
    """An .npz whose one member, deflated, is an .npy of ``megabytes`` MB of zeros (about 1000 times its size)."""
    import zipfile
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (megabytes << 18,)})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("param/1.weight.npy", "w", force_zip64=True) as m:
            m.write(header.getvalue())
            zeros = bytes(1 << 20)
            for _ in range(megabytes):
                m.write(zeros)


def test_compressed_checkpoints_are_refused_before_inflating(saved, tmp_path):
    path, _, _ = saved
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    np.savez_compressed(path, **arrays)   # the same arrays, the same (valid) checksum, deflated
    with pytest.raises(CheckpointError, match=r"member '.*\.npy' is compressed \(deflate\)"):
        T.load_checkpoint(path)

    bomb = tmp_path / "bomb.npz"
    _deflated_bomb(bomb, 64)
    assert bomb.stat().st_size < 1 << 20
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(CheckpointError, match=r"'param/1.weight.npy' is compressed \(deflate\)"):
            T.load_checkpoint(bomb)
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"allocated {peak} bytes for a {bomb.stat().st_size}-byte file"
    assert seconds < 0.5


def test_pickle_bearing_files_are_refused(saved, tmp_path):
    path, _, _ = saved
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["config"] = np.array([{"evil": True}], dtype=object)
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match="pickle"):
        T.load_checkpoint(path)
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"param/1.weight": np.ones(3)}))
    with pytest.raises(CheckpointError, match="pickle"):
        T.load_checkpoint(plain)


def test_save_refuses_what_needs_pickle(tmp_path):
    m = T.build_model(rng=np.random.default_rng(0))
    opt = optim.SGD(m.params, lr=0.1)
    with pytest.raises(CheckpointError, match="JSON"):
        T.save_checkpoint(tmp_path / "c.npz", model=m, optimizer=opt, epoch=0, rng=np.random.default_rng(0),
                          config={"x": object()})
    mt = np.random.Generator(np.random.MT19937(0))
    with pytest.raises(CheckpointError, match="PCG64"):
        T.save_checkpoint(tmp_path / "c.npz", model=m, optimizer=opt, epoch=0, rng=mt)
    assert os.listdir(tmp_path) == []


def test_a_failed_write_keeps_the_old_checkpoint_and_no_temp_file(saved, monkeypatch):
    path, run, _ = saved
    before = path.read_bytes()

    def broken_savez(file, *args, **kwargs):
        file.write(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(CheckpointError, match="No space left"):
        T.save_checkpoint(path, model=run["model"], optimizer=run["optimizer"], epoch=3,
                          rng=np.random.default_rng(0))
    assert path.read_bytes() == before
    assert sorted(os.listdir(path.parent)) == [path.name]


KILL_SCRIPT = textwrap.dedent("""
    import sys, numpy as np
    from npnet import nn, optim, train
    from npnet.data import DataLoader
    rng = np.random.default_rng(0)
    X = rng.integers(0, 255, (64, 28, 28)).astype(np.uint8); y = rng.integers(0, 10, 64)
    # a big model on tiny data: most of the time goes into writing checkpoints
    model = train.build_model("mlp", hidden=1024, rng=rng)
    opt = optim.SGD(model.params, lr=0.01, momentum=0.9)
    print("ready", flush=True)
    train.fit(model, nn.CrossEntropyLoss(), opt, DataLoader(X, y, 64, shuffle=True, rng=rng),
              DataLoader(X, y, 64), 100000, checkpoint_path=sys.argv[1])
""")


def test_sigkill_while_writing_checkpoints_leaves_a_loadable_one(tmp_path):
    path = tmp_path / "c.npz"
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT)
    rng = np.random.default_rng()
    epochs = []
    for kill in range(4):
        proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE)
        try:
            assert proc.stdout.readline() == b"ready\n"
            deadline = time.monotonic() + 30
            while not path.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(float(rng.uniform(0.05, 0.6)))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        c = T.load_checkpoint(path)   # never half-written
        assert c.epoch >= 0 and c.params["1.weight"].shape == (1024, 784)
        epochs.append(c.epoch)
        # only our own temp files may be left behind, and they are never the checkpoint
        assert all(n == path.name or (n.startswith(".c.npz.") and n.endswith(".tmp")) for n in os.listdir(tmp_path)
                   if n != "run.py")
    assert len(epochs) == 4


# =========================================================================== bad inputs
# Every argument of save_checkpoint, load_checkpoint and Checkpoint.restore,
# crossed with the bad values of tests/badinput.py (its docstring says what
# SAME, REF, OK, Names and Deviates mean), then the rows the tables cannot express, the loader under fuzz, and a full disk.

import re  # noqa: E402
import struct  # noqa: E402
import zipfile  # noqa: E402

from hypothesis import given  # noqa: E402
from hypothesis import HealthCheck  # noqa: E402
from hypothesis import settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from npnet import nn  # noqa: E402

from runs import tiny_run  # noqa: E402
from badinput import (  # noqa: E402, F401  (ctx is a fixture)
    Names, Raises, SKIP, ScalarTable, check_scalar_row, check_special_row, ctx, enospc, rng,
    special_params)

SCALARS = ScalarTable()
scalar = SCALARS.add

scalar("save_checkpoint(path)", lambda v, c: c.save(path=v), "path", "path", over={"str": SKIP})
scalar("save_checkpoint(model)", lambda v, c: c.save(model=v), "model", "module")
scalar("save_checkpoint(optimizer)", lambda v, c: c.save(optimizer=v), "optimizer", "optimizer")
scalar("save_checkpoint(epoch)", lambda v, c: c.save(epoch=v), "epoch", "int>=0")
scalar("save_checkpoint(rng)", lambda v, c: c.save(rng=v), "rng", "rngs")
scalar("save_checkpoint(scheduler)", lambda v, c: c.save(scheduler=v), "scheduler", "scheduler?")
scalar("save_checkpoint(metrics)", lambda v, c: c.save(metrics=v), "metrics", "history")
scalar("save_checkpoint(config)", lambda v, c: c.save(config=v), "config", "json")
scalar("load_checkpoint(path)", lambda v, c: T.load_checkpoint(v), "path", "path",
       over={"str": Raises(CheckpointError, r"checkpoint 1: no such file")})
scalar("Checkpoint.restore(model)", lambda v, c: (c.save(), T.load_checkpoint(c.ckpt).restore(model=v)), "model", "module")
scalar("Checkpoint.restore(optimizer)",
       lambda v, c: (c.save(), T.load_checkpoint(c.ckpt).restore(model=c.model, optimizer=v)), "optimizer", "optimizer?")
scalar("Checkpoint.restore(rng)", lambda v, c: (c.save(), T.load_checkpoint(c.ckpt).restore(model=c.model, rng=v)),
       "rng", "rngs?")


@pytest.mark.parametrize("s, bad, outcome", SCALARS.params())
def test_other_argument(ctx, s, bad, outcome):
    check_scalar_row(ctx, s, bad, outcome)


SPECIAL = [
    # id, lambda ctx: the call, outcome (REF rows give (call, reference) pairs)
    ("save_checkpoint(rng={'a': None})", lambda c: c.save(rng={"a": None}),
     Names(TypeError, "rng['a']")),
    ("save_checkpoint into a missing directory", lambda c: c.save(path=os.path.join(c.tmp, "no", "c.npz")),
     Raises(CheckpointError, r"cannot write checkpoint .*no/c.npz: No such file or directory")),
    ("load_checkpoint(directory)", lambda c: T.load_checkpoint(c.tmp), Raises(CheckpointError, r"cannot read it")),
]


@pytest.mark.parametrize("call, outcome", special_params(SPECIAL))
def test_special_row(ctx, call, outcome):
    check_special_row(ctx, call, outcome)


# --------------------------------------------------------------------------- the loader under fuzz

@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "c.npz"
    model, opt, sched, loader = tiny_run()
    T.fit(model, nn.CrossEntropyLoss(), opt, loader, loader, 2, scheduler=sched, checkpoint_path=str(path),
          config={"a": [1, 2.5]})
    return path.read_bytes()


def load_or_refuse(path):
    """load_checkpoint either returns a Checkpoint that restores (or refuses to) cleanly, or raises CheckpointError."""
    try:
        ckpt = T.load_checkpoint(path)
    except CheckpointError as e:
        assert str(e).startswith(f"checkpoint {path}: "), e
        assert "\n" not in str(e)
        return None
    assert isinstance(ckpt, T.Checkpoint)
    model, opt, sched, loader = tiny_run(seed=1)
    try:
        ckpt.restore(model=model, optimizer=opt, scheduler=sched, rng=T.collect_rngs(model, loader))
    except CheckpointError:
        return ckpt
    for k, p in model.params.items():
        assert p.dtype == np.float32 and np.array_equal(p, ckpt.params[k], equal_nan=True)
    return ckpt


FUZZ = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@FUZZ
@given(content=st.one_of(st.binary(max_size=600), st.binary(max_size=600).map(lambda b: b"PK\x03\x04" + b),
                         st.binary(max_size=600).map(lambda b: b"\x93NUMPY" + b)))
def test_checkpoint_fuzz_arbitrary_bytes(tmp_path, content):
    path = tmp_path / "c.npz"
    path.write_bytes(content)
    assert load_or_refuse(path) is None or content.startswith(b"PK")


@FUZZ
@given(d=st.data())
def test_checkpoint_fuzz_mutated_bytes(tmp_path, checkpoint_bytes, d):
    raw = bytearray(checkpoint_bytes)
    for _ in range(d.draw(st.integers(1, 3), label="edits")):
        op = d.draw(st.sampled_from(["flip", "set", "cut", "insert", "delete", "copy"]), label="op")
        i = d.draw(st.integers(0, len(raw) - 1), label="at")
        if op == "flip":
            raw[i] ^= 1 << d.draw(st.integers(0, 7))
        elif op == "set":
            raw[i] = d.draw(st.integers(0, 255))
        elif op == "cut":
            del raw[i:]
        elif op == "insert":
            raw[i:i] = d.draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del raw[i:i + d.draw(st.integers(1, 64))]
        else:   # overwrite a stretch with bytes from elsewhere in the file (a plausible header, a size field...)
            j = d.draw(st.integers(0, len(raw) - 1))
            n = d.draw(st.integers(1, 32))
            raw[i:i + n] = raw[j:j + n]
        if not raw:
            break
    path = tmp_path / "c.npz"
    path.write_bytes(bytes(raw))
    load_or_refuse(path)


_DTYPES = ["bool", "int8", "int64", "uint64", "float16", "float32", "float64", "complex64", "U3", "S2", "V4",
           "datetime64[s]", [("a", "<i4"), ("b", "<f8")]]
_KEYS = ["format", "version", "epoch", "config", "checksum", "npnet_version", "param/1.weight", "param/1.bias",
         "param/4.weight", "optim/lr", "optim/betas", "optim/step.1.weight", "optim/exp_avg.1.weight", "sched/last_epoch",
         "sched/base_lrs", "rng/shuffle", "rngtype/shuffle", "rng/dropout.3", "metrics/epoch", "metrics/train_loss",
         "surprise", "param/9.weight"]


@st.composite
def any_array(draw, like=None):
    dtype = np.dtype(draw(st.sampled_from(_DTYPES)))
    shapes = [(), (0,), (3,), (2, 2), (6,)] + ([like.shape] if like is not None else [])
    shape = draw(st.sampled_from(shapes))
    r = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    raw = r.integers(0, 256, size=int(np.prod(shape)) * dtype.itemsize, dtype=np.uint8).tobytes()
    a = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    if dtype.kind == "f" and draw(st.booleans()):
        a = r.standard_normal(shape).astype(dtype)
        if a.size and draw(st.booleans()):
            with np.errstate(over="ignore"):   # 1e30 is inf in float16
                a.reshape(-1)[0] = draw(st.sampled_from([np.nan, np.inf, -np.inf, 1e30]))
    return a


@FUZZ
@given(d=st.data())
def test_checkpoint_fuzz_arrays_under_a_valid_checksum(tmp_path, checkpoint_bytes, d):
    """What the checksum cannot catch (a file rewritten with a fresh checksum) is caught by the checks after it."""
    src = tmp_path / "src.npz"
    src.write_bytes(checkpoint_bytes)
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    for _ in range(d.draw(st.integers(1, 3), label="changes")):
        key = d.draw(st.sampled_from(_KEYS), label="key")
        action = d.draw(st.sampled_from(["replace", "delete", "config", "metric"]), label="action")
        if action == "delete":
            arrays.pop(key, None)
        elif action == "config":
            arrays["config"] = np.array(d.draw(st.sampled_from(['[1, 2]', '"x"', 'null', '{"settings": 3}', '{', 'NaN',
                                                                '{"a": {"b": [1e999]}}'])))
        elif action == "metric":
            col = f'metrics/{d.draw(st.sampled_from(["epoch", "train_loss", "test_acc"]))}'
            if col in arrays and arrays[col].ndim == 1 and arrays[col].size and arrays[col].dtype.kind == "f":
                m = arrays[col].copy()
                m[d.draw(st.integers(0, len(m) - 1))] = d.draw(st.sampled_from([np.nan, np.inf, -1.0, 2.5, 1e300, 2.0**60]))
                arrays[col] = m
        else:
            arrays[key] = d.draw(any_array(like=arrays.get(key)), label="array")
    if d.draw(st.booleans(), label="fresh checksum"):
        arrays["checksum"] = np.array(CK._digest(arrays))
    path = tmp_path / "c.npz"
    (np.savez_compressed if d.draw(st.booleans(), label="compressed") else np.savez)(path, **arrays)
    load_or_refuse(path)


def _npy_claiming(shape, descr="<f8"):
    """The bytes of an .npy whose header claims ``shape`` but which holds 64 bytes of data."""
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, header)
    return out.getvalue() + bytes(64)


@pytest.mark.parametrize("case", ["npz stored", "npz deflated", "npy", "lying zip size", "huge itemsize"])
def test_checkpoint_header_claiming_a_huge_array_is_refused_before_allocating(tmp_path, checkpoint_bytes, case):
    path = tmp_path / "c.npz"
    if case == "npy":
        path.write_bytes(_npy_claiming((10**10,)))
    else:
        with zipfile.ZipFile(io.BytesIO(checkpoint_bytes)) as z:
            members = {n: z.read(n) for n in z.namelist()}
        if case == "huge itemsize":
            members["param/1.weight.npy"] = _npy_claiming((4,), descr="<U100000000")
        else:
            members["param/1.weight.npy"] = _npy_claiming((10**10,))
        method = zipfile.ZIP_DEFLATED if case == "npz deflated" else zipfile.ZIP_STORED
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", method) as z:
            for n, b in members.items():
                z.writestr(n, b)
        raw = bytearray(buf.getvalue())
        if case == "lying zip size":   # the member's uncompressed size, local header and central directory: 2 GB
            for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
                at = raw.find(sig)
                while at >= 0:
                    name_at = at + (30 if sig == b"PK\x03\x04" else 46)
                    if raw[name_at:name_at + 18] == b"param/1.weight.npy":
                        raw[at + offset:at + offset + 4] = struct.pack("<I", 0x7FFFFFFF)
                    at = raw.find(sig, at + 4)
        path.write_bytes(bytes(raw))
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError) as info:
            T.load_checkpoint(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"allocated {peak} bytes for a {path.stat().st_size}-byte file"
    expected = {"npy": "single .npy array", "lying zip size": "more than the file holds",
                "npz deflated": "is compressed (deflate)"}.get(case, "claims")
    assert expected in str(info.value)


def test_checkpoint_with_a_non_npy_member_or_bad_generator_state_is_refused(tmp_path, checkpoint_bytes):
    with zipfile.ZipFile(io.BytesIO(checkpoint_bytes)) as z:
        members = {n: z.read(n) for n in z.namelist()}
    path = tmp_path / "c.npz"
    with zipfile.ZipFile(path, "w") as z:
        for n, b in members.items():
            z.writestr(n, b)
        z.writestr("format", b"npnet-checkpoint")   # np.load would hand back raw bytes for it
    with pytest.raises(CheckpointError, match=r"unexpected member 'format'; an npnet checkpoint holds only .npy arrays"):
        T.load_checkpoint(path)
    path.write_bytes(checkpoint_bytes)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    words = arrays["rng/shuffle"].copy()
    words[5] = 2**40                                  # the buffered uint32 does not fit in 32 bits
    arrays["rng/shuffle"] = words
    arrays["checksum"] = np.array(CK._digest(arrays))
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match=r"generator 'shuffle' holds an invalid state"):
        T.load_checkpoint(path)

# --------------------------------------------------------------------------- a full disk

def _proxy_open_failing_after(limit):
    """os.fdopen whose files accept ``limit`` bytes, then report a full disk."""
    real = os.fdopen

    class Full:
        def __init__(self, f):
            self.f, self.written = f, 0

        def write(self, b):
            if self.written + len(b) > limit:
                enospc()
            self.written += len(b)
            return self.f.write(b)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    return lambda *a, **k: Full(real(*a, **k))


@pytest.mark.parametrize("where", ["mkstemp", "write", "fsync", "replace"])
def test_save_checkpoint_on_a_full_disk_keeps_the_old_one_and_leaves_no_temp_file(tmp_path, monkeypatch, where):
    model, opt, sched, loader = tiny_run()
    path = tmp_path / "c.npz"
    T.save_checkpoint(path, model=model, optimizer=opt, scheduler=sched, epoch=0, rng=rng())
    before = path.read_bytes()
    from npnet import _io   # every file npnet writes goes through _io.atomic_write
    patch = {"mkstemp": (_io.tempfile, "mkstemp", enospc), "write": (_io.os, "fdopen", _proxy_open_failing_after(1000)),
             "fsync": (_io.os, "fsync", enospc), "replace": (_io.os, "replace", enospc)}[where]
    monkeypatch.setattr(*patch)
    with pytest.raises(CheckpointError, match=rf"cannot write checkpoint {re.escape(str(path))}: No space left on device"):
        T.save_checkpoint(path, model=model, optimizer=opt, scheduler=sched, epoch=0, rng=rng(5))
    monkeypatch.undo()
    assert path.read_bytes() == before and T.load_checkpoint(path).epoch == 0
    assert os.listdir(tmp_path) == ["c.npz"]
