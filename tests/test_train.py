"""npnet.train: models, the training loop's definitions, fit and resume, checkpoints, the torch twin.

Fast tests use a small synthetic Fashion-MNIST-shaped dataset (uint8 28x28,
a class-dependent bright bar plus noise: learnable in one epoch). The real-data
MLP run (``-m realdata``) is in this file; the default softmax run is in
test_cli.py, through the command line.
"""
import io
import json
import math
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

from npnet import nn, optim
from npnet.data import DataLoader
from npnet.errors import CheckpointError, TrainingDiverged
from npnet import checkpoint as CK
from npnet import train as T

REAL_DATA_DIR = "/usr/share/datasets/fashion-mnist"


# --------------------------------------------------------------------------- helpers

def synthetic(n, seed=0):
    """n uint8 (28, 28) images and int64 labels; class c lights rows 2c..2c+3."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n).astype(np.int64)
    X = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    for c in range(10):
        X[y == c, 2 * c + 4:2 * c + 8, 4:24] = 220
    return X, y


def setup_run(*, model="mlp", dropout=0.2, optimizer="sgd", scheduler=False, seed=0, n=300, batch_size=32,
              dtype=np.float32, lr=0.1):
    """Everything fit needs, built from one seed (as the CLI builds it)."""
    init_ss, shuffle_ss, dropout_ss = np.random.SeedSequence(seed).spawn(3)
    m = T.build_model(model, hidden=32, dropout=dropout if model == "mlp" else 0.0,
                      rng=np.random.default_rng(init_ss), dropout_rng=np.random.default_rng(dropout_ss), dtype=dtype)
    if optimizer == "sgd":
        opt = optim.SGD(m.params, lr=lr, momentum=0.9, weight_decay=1e-4)
    else:
        opt = optim.Adam(m.params, lr=lr / 100)
    sched = optim.StepLR(opt, step_size=1, gamma=0.5) if scheduler else None
    X, y = synthetic(n)
    Xt, yt = synthetic(100, seed=1)
    train_loader = DataLoader(X, y, batch_size, shuffle=True, rng=np.random.default_rng(shuffle_ss))
    test_loader = DataLoader(Xt, yt, 50)
    return dict(model=m, loss_fn=nn.CrossEntropyLoss(), optimizer=opt, train_loader=train_loader,
                test_loader=test_loader, scheduler=sched)


def run_fit(run, epochs, **kw):
    return T.fit(run["model"], run["loss_fn"], run["optimizer"], run["train_loader"], run["test_loader"], epochs,
                 scheduler=run["scheduler"], **kw)


def same_numbers(a, b):
    return {k: (v.dtype, v.shape, v.tobytes()) for k, v in a.items()} == \
           {k: (v.dtype, v.shape, v.tobytes()) for k, v in b.items()}


@pytest.fixture
def saved(tmp_path):
    """A checkpoint after 2 epochs of a small run, with everything in it (dropout, momentum, scheduler)."""
    run = setup_run(scheduler=True)
    path = tmp_path / "ckpt.npz"
    result = run_fit(run, 2, checkpoint_path=str(path), config={"hello": [1, 2.5, "x"]})
    return path, run, result


# --------------------------------------------------------------------------- build_model

def test_build_model_softmax_is_the_course_model():
    m = T.build_model(rng=np.random.default_rng(0))
    assert [type(x) for x in m] == [nn.Flatten, nn.Linear]
    W, b = m.params["1.weight"], m.params["1.bias"]
    assert W.shape == (10, 784) and W.dtype == np.float32
    assert np.all(b == 0)
    assert abs(W.std() - 0.01) < 0.0005 and abs(W.mean()) < 0.0005


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_build_model_mlp(dtype):
    m = T.build_model("mlp", hidden=64, dropout=0.5, rng=np.random.default_rng(0), dtype=dtype)
    assert [type(x) for x in m] == [nn.Flatten, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
    assert sorted(m.params) == ["1.bias", "1.weight", "4.bias", "4.weight"]
    assert m.params["1.weight"].shape == (64, 784) and m.params["4.weight"].shape == (10, 64)
    assert all(p.dtype == dtype for p in m.params.values())
    plain = T.build_model("mlp", rng=np.random.default_rng(0))
    assert [type(x) for x in plain] == [nn.Flatten, nn.Linear, nn.ReLU, nn.Linear]


def test_build_model_inits():
    for init in T.INITS:
        m = T.build_model("mlp", init=init, rng=np.random.default_rng(0))
        W = m.params["1.weight"]
        bound = {"normal": 0.06, "constant": 0.01, "xavier": math.sqrt(6 / (784 + 256)), "kaiming": 6 * math.sqrt(2 / 784),
                 "torch-default": 1 / math.sqrt(784)}[init]
        assert np.abs(W).max() <= bound + 1e-7
        assert np.any(m.params["1.bias"] != 0) == (init in ("torch-default", "constant"))
    a = T.build_model("mlp", rng=np.random.default_rng(3))
    b = T.build_model("mlp", rng=np.random.default_rng(3))
    assert same_numbers(a.params, b.params)


def test_build_model_rejects_bad_arguments():
    with pytest.raises(ValueError, match="dropout"):
        T.build_model("softmax", dropout=0.5)
    with pytest.raises(ValueError, match="name"):
        T.build_model("cnn")
    with pytest.raises(ValueError, match="init"):
        T.build_model(init="zeros")
    with pytest.raises(ValueError, match="dropout"):
        T.build_model("mlp", dropout=1.0)


# --------------------------------------------------------------------------- the loop's definitions

def test_train_epoch_averages_as_the_course_and_skips_the_first_dx():
    """loss and accuracy = sums over samples / N with an uneven last batch, each batch
    scored before its own update; the backward is called with need_dx=False."""
    run = setup_run(model="softmax", n=70, batch_size=32)   # batches of 32, 32, 6
    model, loss_fn, opt = run["model"], run["loss_fn"], run["optimizer"]
    reference = nn.layers.clone(model)
    ref_opt = optim.SGD(reference.params, lr=0.1, momentum=0.9, weight_decay=1e-4)
    batches = list(run["train_loader"])
    flags = []
    real_forward = model.forward

    def spying_forward(X, train=True):
        Y, backward = real_forward(X, train)

        def spy(dY, *, need_dx=True):
            flags.append(need_dx)
            return backward(dY, need_dx=need_dx)
        return Y, spy

    model.forward = spying_forward
    stats = T.train_epoch(model, loss_fn, opt, batches, epoch=3)
    total, correct = 0.0, 0
    for X, y in batches:
        Y, backward = reference.forward(X)
        loss, dloss = loss_fn.forward(Y, y)
        total += float(loss) * len(y)
        correct += int((Y.argmax(1) == y).sum())
        ref_opt.step(backward(dloss())[1])
    assert [len(y) for _, y in batches] == [32, 32, 6]
    assert stats.samples == 70 and stats.steps == 3
    assert stats.loss == pytest.approx(total / 70, rel=1e-12)
    assert stats.accuracy == correct / 70
    assert flags == [False, False, False]
    assert same_numbers(model.params, reference.params)   # need_dx=False changes nothing else


def test_train_epoch_casts_batches_to_the_model_dtype():
    run = setup_run(model="softmax", dtype=np.float64)
    seen = []
    T.train_epoch(run["model"], run["loss_fn"], run["optimizer"], run["train_loader"],
                  callback=lambda info: seen.append(info.X.dtype))
    assert set(seen) == {np.dtype(np.float64)}
    assert all(p.dtype == np.float64 for p in run["model"].params.values())


def test_evaluate_accuracy_counts_argmax_hits():
    m = nn.Sequential(nn.Flatten(), nn.Linear(4, 3, rng=np.random.default_rng(0)))
    m[1].params["weight"][...] = np.eye(3, 4, dtype=np.float32)
    m[1].params["bias"][...] = 0
    X = np.array([[[9, 0], [0, 0]], [[0, 9], [0, 0]], [[0, 0], [9, 0]], [[9, 0], [0, 0]]], np.float32)
    y = np.array([0, 1, 2, 2])
    loader = DataLoader(X, y, 3)
    assert T.evaluate_accuracy(m, loader) == 0.75
    ev = T.evaluate(m, loader, nn.CrossEntropyLoss())
    assert ev.samples == 4 and ev.accuracy == 0.75
    assert ev.loss == pytest.approx(float(nn.CrossEntropyLoss()(m(X), y)), rel=1e-6)


def test_fit_returns_numbers_calls_callbacks_and_never_prints(capsys):
    run = setup_run()
    events = []

    class Recorder:
        def on_epoch_start(self, epoch):
            events.append(("start", epoch))

        def on_step(self, info):
            time.sleep(0.002)   # callback time is not training time
            events.append(("step", info.epoch, info.step))

        def on_epoch_end(self, result):
            events.append(("end", result.epoch))

    t0 = time.perf_counter()
    result = run_fit(run, 2, callbacks=[Recorder()], on_epoch_end=lambda r: events.append(("fn", r.epoch)))
    wall = time.perf_counter() - t0
    steps = len(run["train_loader"])
    assert events[0] == ("start", 1) and events[1] == ("step", 1, 1)
    assert events[steps + 1:steps + 3] == [("fn", 1), ("end", 1)]
    assert events[-1] == ("end", 2) and len(events) == 2 * (steps + 3)
    assert [r.epoch for r in result.history] == [1, 2] and result.final is result.history[-1]
    r = result.final
    assert 0 < r.train_loss < 3 and 0 <= r.train_acc <= 1 and 0 <= r.test_acc <= 1 and r.test_loss > 0
    assert r.test_acc > 0.5   # the synthetic classes are easy
    assert sum(x.seconds for x in result.history) < wall - 2 * steps * 0.002
    assert capsys.readouterr() == ("", "")


# --------------------------------------------------------------------------- resume

@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path, optimizer):
    straight = setup_run(optimizer=optimizer, scheduler=True)
    full = run_fit(straight, 3, checkpoint_path=str(tmp_path / "straight.npz"))

    path = str(tmp_path / "resumed.npz")
    first = setup_run(optimizer=optimizer, scheduler=True)
    run_fit(first, 1, checkpoint_path=path)
    # New objects from another seed: only the checkpoint can make them agree.
    again = setup_run(optimizer=optimizer, scheduler=True, seed=99)
    resumed = run_fit(again, 3, checkpoint_path=path, resume=True)

    assert resumed.start_epoch == 1
    assert same_numbers(again["model"].params, straight["model"].params)
    assert same_numbers(again["optimizer"].state_dict(), straight["optimizer"].state_dict())
    assert again["train_loader"].rng.bit_generator.state == straight["train_loader"].rng.bit_generator.state
    assert again["model"][3].rng.bit_generator.state == straight["model"][3].rng.bit_generator.state
    strip = [(r.epoch, r.train_loss, r.train_acc, r.test_acc, r.test_loss) for r in full.history]
    assert [(r.epoch, r.train_loss, r.train_acc, r.test_acc, r.test_loss) for r in resumed.history] == strip
    assert load_params(path) == load_params(tmp_path / "straight.npz")


def load_params(path):
    c = T.load_checkpoint(path)
    return {k: v.tobytes() for k, v in c.params.items()}, c.epoch


def test_resume_refuses_a_checkpoint_of_another_model(tmp_path):
    path = str(tmp_path / "c.npz")
    run_fit(setup_run(model="softmax"), 1, checkpoint_path=path)
    other = setup_run(model="mlp")
    with pytest.raises(CheckpointError, match="does not fit this model"):
        run_fit(other, 2, checkpoint_path=path, resume=True)


# --------------------------------------------------------------------------- divergence

def test_nan_loss_stops_with_epoch_and_step_and_keeps_the_last_good_checkpoint(tmp_path):
    run = setup_run(model="softmax", lr=0.1)
    path = str(tmp_path / "c.npz")
    good = {}

    def explode(result):   # after epoch 1: remember it, then make epoch 2 diverge
        good.update({k: v.copy() for k, v in run["model"].params.items()})
        run["optimizer"].lr = 1e38

    with pytest.raises(TrainingDiverged) as info:
        run_fit(run, 5, checkpoint_path=path, on_epoch_end=explode)
    e = info.value
    assert e.epoch == 2 and e.step >= 2
    message = str(e)
    assert "\n" not in message
    assert f"epoch 2, step {e.step} of" in message and "smaller learning rate" in message
    ckpt = T.load_checkpoint(path)
    assert ckpt.epoch == 1
    assert same_numbers(ckpt.params, good)
    assert all(np.isfinite(p).all() for p in ckpt.params.values())


def test_non_finite_parameters_are_caught_at_the_epoch_end(tmp_path):
    run = setup_run(model="softmax")

    def poison(info):
        if info.step == len(run["train_loader"]):
            run["model"].params["1.bias"][0] = np.inf   # after the last step: the loss never sees it

    with pytest.raises(TrainingDiverged, match="'1.bias' is no longer finite after epoch 1"):
        run_fit(run, 2, checkpoint_path=str(tmp_path / "c.npz"), on_step=poison)
    assert T.load_checkpoint(tmp_path / "c.npz").epoch == 0


def _diverging_epoch(optimizer_factory):
    """One train_epoch of a model whose weights are NaN from the start: the first loss is NaN."""
    m = T.build_model("softmax", rng=np.random.default_rng(0))
    m.params["1.weight"][0, 0] = np.nan
    X, y = synthetic(64)
    with pytest.raises(TrainingDiverged) as info:
        T.train_epoch(m, nn.CrossEntropyLoss(), optimizer_factory(m.params), DataLoader(X, y, 32), epoch=3)
    assert info.value.epoch == 3 and info.value.step == 1
    message = str(info.value)
    assert "\n" not in message and "the loss became nan at epoch 3, step 1 of 2" in message
    return message


@pytest.mark.parametrize("factory, named, unnamed", [
    (lambda p: optim.SGD(p, lr=0.5), ["smaller learning rate (lr=0.5)"], ["momentum", "weight"]),
    (lambda p: optim.SGD(p, lr=0.5, momentum=0.9),
     ["smaller learning rate (lr=0.5) or less momentum (momentum=0.9)"], ["weight"]),
    (lambda p: optim.SGD(p, lr=0.5, weight_decay=0.25),
     ["smaller learning rate (lr=0.5) or less weight decay (weight_decay=0.25)"], ["momentum"]),
    (lambda p: optim.SGD(p, lr=0.5, momentum=0.9, weight_decay=0.25),
     ["(lr=0.5), less momentum (momentum=0.9) or less weight decay (weight_decay=0.25)"], []),
    (lambda p: optim.Adam(p, lr=0.003), ["smaller learning rate (lr=0.003)"], ["momentum", "weight", "beta"]),
    (lambda p: optim.AdamW(p, lr=0.003, weight_decay=0.01),
     ["(lr=0.003) or less weight decay (weight_decay=0.01)"], ["momentum"]),
])
def test_the_divergence_message_names_the_hyperparameters_that_are_set(factory, named, unnamed):
    message = _diverging_epoch(factory)
    for text in named:
        assert text in message
    hint = message.split("; ", 1)[1]
    for text in unnamed:
        assert text not in hint


def test_non_finite_optimizer_state_is_caught_at_the_epoch_end_with_the_hint(tmp_path):
    run = setup_run(model="softmax")   # SGD lr 0.1, momentum 0.9, weight decay 1e-4

    def poison(info):
        if info.step == len(run["train_loader"]):   # after the last update: the parameters stay finite
            run["optimizer"].state["1.bias"]["momentum_buffer"][0] = np.inf

    with pytest.raises(TrainingDiverged) as info:
        run_fit(run, 2, checkpoint_path=str(tmp_path / "c.npz"), on_step=poison)
    message = str(info.value)
    assert "optimizer state 'momentum_buffer.1.bias' is no longer finite after epoch 1" in message
    assert "(lr=0.1), less momentum (momentum=0.9) or less weight decay (weight_decay=0.0001)" in message
    assert all(np.isfinite(p).all() for p in run["model"].params.values())
    assert T.load_checkpoint(tmp_path / "c.npz").epoch == 0   # the diverged epoch was never saved


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


# --------------------------------------------------------------------------- torch

def test_npnet_train_and_cli_import_without_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import npnet, npnet.train, npnet.cli, npnet.plots\n"
            "assert 'matplotlib' not in sys.modules\n"
            "try:\n"
            "    npnet.train.TorchTwin(npnet.train.build_model(), None)\n"
            "except ImportError: print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out == "ok\n"


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_torch_twin_agrees_in_float64(optimizer):
    pytest.importorskip("torch")
    run = setup_run(dtype=np.float64, optimizer=optimizer, dropout=0.3, scheduler=True, n=600)
    twin = T.TorchTwin(run["model"], run["optimizer"])
    run_fit(run, 2, callbacks=[twin])
    assert [d[0] for d in twin.epoch_diffs] == [1, 2]
    assert max(d[1] for d in twin.epoch_diffs) < 1e-10
    assert max(d[2] for d in twin.epoch_diffs) < 1e-10


def test_torch_twin_refuses_what_it_cannot_mirror():
    pytest.importorskip("torch")
    run = setup_run()
    run["optimizer"].step({k: np.ones_like(v) for k, v in run["model"].params.items()})
    with pytest.raises(ValueError, match="without state"):
        T.TorchTwin(run["model"], run["optimizer"])


# --------------------------------------------------------------------------- real data

@pytest.fixture(scope="module")
def real_data():
    if not os.path.isdir(REAL_DATA_DIR) and not os.environ.get("NPNET_DATA"):
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI is set but the Fashion-MNIST files are missing from {REAL_DATA_DIR}")
        pytest.skip("Fashion-MNIST is not installed")


MLP_SCRIPT = textwrap.dedent("""
    import json, numpy as np
    from npnet import nn, optim, train
    from npnet.data import DataLoader, load_fashion_mnist
    X_train, y_train, X_test, y_test = load_fashion_mnist(download=False)
    init_ss, shuffle_ss, _ = np.random.SeedSequence(0).spawn(3)   # seed 0, split as the CLI splits it
    model = train.build_model("mlp", hidden=256, init="normal", rng=np.random.default_rng(init_ss))
    result = train.fit(model, nn.CrossEntropyLoss(), optim.SGD(model.params, lr=0.5),
                       DataLoader(X_train, y_train, 256, shuffle=True, rng=np.random.default_rng(shuffle_ss)),
                       DataLoader(X_test, y_test, 256), 10)
    print(json.dumps([r.as_dict() for r in result.history]))
""")


@pytest.fixture(scope="module")
def mlp_run(real_data):
    """The course's MLP (784-256-10, N(0, 0.01), SGD lr 0.5, batch 256), 10 epochs, seed 0.

    In a subprocess with one BLAS thread: OpenBLAS's float32 matmuls round
    differently with another thread count, and at lr 0.5 the last epoch's test
    accuracy swings by about 0.01 with any such difference.
    """
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-c", MLP_SCRIPT], capture_output=True, text=True, env=env, timeout=900)
    assert p.returncode == 0, p.stderr
    return [T.EpochResult(**r) for r in json.loads(p.stdout)]


@pytest.mark.realdata
@pytest.mark.slow
def test_mlp_reaches_the_targets(mlp_run):
    final = mlp_run[-1]
    assert final.epoch == 10
    assert final.train_acc >= 0.88
    assert final.test_acc >= 0.84
    losses = [r.train_loss for r in mlp_run]
    assert losses == sorted(losses, reverse=True)   # lr 0.5 is large, but the training loss still falls


def _identity_classifier():
    """Flatten + Linear(4, 4) with weight eye(4): the prediction is the brightest of 4 pixels."""
    m = nn.Sequential(nn.Flatten(), nn.Linear(4, 4, rng=np.random.default_rng(0)))
    m[1].params["weight"][...] = np.eye(4, dtype=np.float32)
    m[1].params["bias"][...] = 0
    return m


def test_evaluate_refuses_labels_that_would_broadcast():
    # Labels of shape (N, 1) compared with N predictions broadcast to N x N: this batch
    # once scored 2.0 (16 "hits" over 8 samples) against a true accuracy of 0.125.
    m = _identity_classifier()
    X = np.zeros((8, 2, 2), np.float32)
    X.reshape(8, 4)[np.arange(8), [0, 1, 2, 3, 0, 1, 2, 3]] = 1      # predictions 0 1 2 3 0 1 2 3
    y = np.array([0, 0, 0, 0, 3, 3, 3, 2])                         # one hit: the truth is 0.125
    assert T.evaluate_accuracy(m, [(X, y)]) == 0.125
    for f in (T.evaluate, T.evaluate_accuracy):
        with pytest.raises(ValueError, match=r"\by\b.*shape \(8,\).*got \(8, 1\)"):
            f(m, [(X, y[:, None])])


@pytest.mark.parametrize("labels, error", [
    (np.array([0, 1, 4, 3]), ValueError),                       # class 4 of 4: once a silent miss
    (np.array([0, 1, -1, 3]), ValueError),
    (np.array([0, 1, 2**64 - 100, 3], np.uint64), ValueError),   # once -100
    (np.array([0.0, 1.0, 2.0, 3.0]), TypeError),
    (np.array([True, False, True, False]), TypeError),
], ids=["class-4", "negative", "uint64-huge", "float", "bool"])
def test_evaluate_checks_labels_as_the_losses_check_targets(labels, error):
    m = _identity_classifier()
    X = np.eye(4, dtype=np.float32).reshape(4, 2, 2)
    for f in (T.evaluate, T.evaluate_accuracy):
        with pytest.raises(error, match=r"\by\b"):
            f(m, [(X, labels)])
    assert T.evaluate(m, [(X, np.array([0, 1, 2, 3], np.uint8))]).accuracy == 1.0   # uint8 labels are fine
