"""npnet.train: models, the training loop's definitions, fit and resume, the torch twin.

The checkpoint format has its own file, test_checkpoint.py.

Fast tests use a small synthetic Fashion-MNIST-shaped dataset (uint8 28x28,
a class-dependent bright bar plus noise: learnable in one epoch). The real-data
MLP run (``-m realdata``) is in this file; the default softmax run is in
test_cli.py, through the command line.
"""
import json
import math
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from npnet import nn, optim
from npnet.data import DataLoader
from npnet.errors import CheckpointError, TrainingDiverged
from npnet import train as T
from runs import run_fit, same_numbers, setup_run, synthetic

REAL_DATA_DIR = "/usr/share/datasets/fashion-mnist"


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
        T.build_model("resnet")
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


def test_train_epoch_callbacks_run_under_the_callers_floating_point_settings():
    # The loop silences overflow warnings of a diverging step once per epoch; a
    # callback's own arithmetic must still see the caller's settings.
    run = setup_run(model="softmax", n=70, batch_size=32)
    seen = []
    with np.errstate(over="raise", invalid="warn"):
        T.train_epoch(run["model"], run["loss_fn"], run["optimizer"], run["train_loader"],
                      callback=lambda info: seen.append(np.geterr()))
        after = np.geterr()
    assert len(seen) == 3
    assert all(e["over"] == "raise" and e["invalid"] == "warn" for e in seen)
    assert after["over"] == "raise"


@pytest.mark.parametrize("loss_fn", [nn.CrossEntropyLoss(), nn.NLLLoss()], ids=["cross_entropy", "nll"])
def test_train_epoch_counts_hits_without_a_second_label_check_and_still_refuses_bad_labels(loss_fn):
    # A class-index loss checks the labels on every step, so the accuracy counts
    # argmax hits without checking them again; ties go to the first class, as argmax.
    m = nn.Sequential(nn.Flatten(), nn.Linear(4, 3, rng=np.random.default_rng(0)))
    m[1].params["weight"][...] = 0     # every output 0: a three-way tie, argmax 0
    m[1].params["bias"][...] = 0
    opt = optim.SGD(m.params, lr=0.0)
    X = np.random.default_rng(1).random((5, 2, 2), dtype=np.float32)
    y = np.array([0, 1, 2, 0, 1])
    assert T.train_epoch(m, loss_fn, opt, [(X, y)]).accuracy == 2 / 5
    assert T.train_epoch(m, loss_fn, opt, [(X, y.astype(np.uint8))]).accuracy == 2 / 5
    # the loss ignores a label equal to its ignore_index; the accuracy refuses it, as before
    with pytest.raises(ValueError, match=r"\by\b.*-100"):
        T.train_epoch(m, loss_fn, opt, [(X, np.array([0, 1, -100, 0, 1]))])
    with pytest.raises(ValueError, match=r"\by\b.*\b3\b"):
        T.train_epoch(m, type(loss_fn)(ignore_index=3), opt, [(X, np.array([0, 1, 3, 0, 1]))])


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


# --------------------------------------------------------------------------- torch

def test_npnet_train_and_cli_import_without_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import npnet, npnet.train, npnet.cli, npnet.plots\n"
            "assert 'matplotlib' not in sys.modules and 'reference' not in sys.modules\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out == "ok\n"


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_torch_twin_agrees_in_float64(optimizer):
    from reference.lockstep import TorchTwin   # the twin of --check-torch lives in reference, never in npnet
    run = setup_run(dtype=np.float64, optimizer=optimizer, dropout=0.3, scheduler=True, n=600)
    twin = TorchTwin(run["model"], run["optimizer"])
    run_fit(run, 2, callbacks=[twin])
    assert [d[0] for d in twin.epoch_diffs] == [1, 2]
    assert max(d[1] for d in twin.epoch_diffs) < 1e-10
    assert max(d[2] for d in twin.epoch_diffs) < 1e-10


def test_torch_twin_refuses_what_it_cannot_mirror():
    from reference.lockstep import TorchTwin
    run = setup_run()
    run["optimizer"].step({k: np.ones_like(v) for k, v in run["model"].params.items()})
    with pytest.raises(ValueError, match="without state"):
        TorchTwin(run["model"], run["optimizer"])


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


# =========================================================================== bad inputs
# Every argument of train_epoch, evaluate and fit,
# crossed with the bad values of tests/badinput.py (its docstring says what
# SAME, REF, OK, Names and Deviates mean), then the rows the tables cannot express, and a run repeated.

from runs import tiny_run  # noqa: E402
from badinput import (  # noqa: E402, F401  (ctx is a fixture)
    Names, Raises, SKIP, ScalarTable, check_scalar_row, check_special_row, ctx, labels, randn,
    special_params)

SCALARS = ScalarTable()
scalar = SCALARS.add

scalar("train_epoch(model)", lambda v, c: T.train_epoch(v, c.loss, c.opt, c.loader), "model", "module")
scalar("train_epoch(loss_fn)", lambda v, c: T.train_epoch(c.model, v, c.opt, c.loader), "loss_fn", "loss")
scalar("train_epoch(optimizer)", lambda v, c: T.train_epoch(c.model, c.loss, v, c.loader), "optimizer", "optimizer")
scalar("train_epoch(loader)", lambda v, c: T.train_epoch(c.model, c.loss, c.opt, v), "loader", "loader")
scalar("train_epoch(epoch)", lambda v, c: T.train_epoch(c.model, c.loss, c.opt, c.loader, epoch=v), "epoch", "int>=0")
scalar("train_epoch(callback)", lambda v, c: T.train_epoch(c.model, c.loss, c.opt, c.loader, callback=v), "callback",
       "callable?")
scalar("evaluate(model)", lambda v, c: T.evaluate(v, c.test_loader), "model", "module")
scalar("evaluate(loader)", lambda v, c: T.evaluate(c.model, v), "loader", "loader")
scalar("evaluate(loss_fn)", lambda v, c: T.evaluate(c.model, c.test_loader, v), "loss_fn", "loss?")
scalar("evaluate_accuracy(model)", lambda v, c: T.evaluate_accuracy(v, c.test_loader), "model", "module")
scalar("evaluate_accuracy(loader)", lambda v, c: T.evaluate_accuracy(c.model, v), "loader", "loader")
scalar("fit(epochs)", lambda v, c: c.fit(epochs=v), "epochs", "int>=1", over={"big": SKIP})
scalar("fit(start_epoch)", lambda v, c: c.fit(epochs=9, start_epoch=v), "start_epoch", "int>=0",
       over={"big": SKIP, "zero": SKIP})
scalar("fit(scheduler)", lambda v, c: c.fit(scheduler=v), "scheduler", "scheduler?")
scalar("fit(checkpoint_path)", lambda v, c: c.fit(checkpoint_path=v), "checkpoint_path", "path?",
       over={"str": SKIP})
scalar("fit(resume)", lambda v, c: c.fit(resume=v, checkpoint_path=c.ckpt), "resume", "flag",
       over={"bool": Raises(CheckpointError, r"no such file")})
scalar("fit(rngs)", lambda v, c: c.fit(rngs=v), "rngs", "dict?")
scalar("fit(history)", lambda v, c: c.fit(history=v), "history", "history")
scalar("fit(config)", lambda v, c: c.fit(config=v, checkpoint_path=c.ckpt), "config", "json")
for _cb in ("on_step", "on_epoch_start", "on_epoch_end"):
    scalar(f"fit({_cb})", lambda v, c, cb=_cb: c.fit(**{cb: v}), _cb, "callable?")
scalar("fit(callbacks)", lambda v, c: c.fit(callbacks=v), "callbacks", "callbacks")


@pytest.mark.parametrize("s, bad, outcome", SCALARS.params())
def test_other_argument(ctx, s, bad, outcome):
    check_scalar_row(ctx, s, bad, outcome)


def _loader_of(*batches):
    return list(batches)   # a list of batches has len() and iterates: all a loop needs


SPECIAL = [
    # id, lambda ctx: the call, outcome (REF rows give (call, reference) pairs)
    ("train_epoch on a loader of no batches", lambda c: T.train_epoch(c.model, c.loss, c.opt, _loader_of()),
     Names(ValueError, "loader")),
    ("train_epoch on an empty batch", lambda c: T.train_epoch(c.model, c.loss, c.opt, _loader_of((randn(0, 4), labels(0)))),
     Names(ValueError, "loader", "batch 1")),   # the message says which batch
    ("train_epoch on list batches", lambda c: T.train_epoch(c.model, c.loss, c.opt, _loader_of(([[1.0] * 4], [0]))),
     Names(TypeError, ("loader", "X"))),
    ("train_epoch on complex batches", lambda c: T.train_epoch(c.model, c.loss, c.opt,
                                                                _loader_of((randn(2, 4).astype(complex), labels(2)))),
     Names(TypeError, ("loader", "X"))),
    ("train_epoch on X, y of different lengths", lambda c: T.train_epoch(c.model, c.loss, c.opt,
                                                                          _loader_of((randn(3, 4), labels(2)))),
     Names(ValueError, ("loader", "X", "y"))),
    ("train_epoch with float labels", lambda c: T.train_epoch(c.model, c.loss, c.opt,
                                                               _loader_of((randn(2, 4), np.zeros(2, np.float32)))),
     Names(ValueError, "target")),
    ("train_epoch on a generator (no len)", lambda c: T.train_epoch(c.model, c.loss, c.opt, iter(c.loader)),
     Names(TypeError, "loader")),
    ("evaluate on a loader of no batches", lambda c: T.evaluate(c.model, _loader_of()),
     Names(ValueError, "loader")),
    ("fit(scheduler=object()) before any epoch", lambda c: c.fit(scheduler=object()),
     Names(TypeError, "scheduler")),
    ("fit(start_epoch=2, history=()) with a checkpoint", lambda c: c.fit(epochs=3, start_epoch=2, checkpoint_path=c.ckpt),
     Names(ValueError, ("history", "start_epoch"))),
    ("fit(resume=True) without checkpoint_path", lambda c: c.fit(resume=True),
     Names(ValueError, ("resume", "checkpoint_path"))),
    ("fit(config=object()) with a checkpoint, before any epoch", lambda c: c.fit(config={"x": object()},
                                                                                 checkpoint_path=c.ckpt),
     Names(CheckpointError, "config")),
]


@pytest.mark.parametrize("call, outcome", special_params(SPECIAL))
def test_special_row(ctx, call, outcome):
    check_special_row(ctx, call, outcome)


def test_same_seed_same_run_with_and_without_interruption(tmp_path):
    """Two runs from one seed are bit-identical, and so is one stopped after epoch 1 and resumed."""
    def run(epochs, path, resume=False):
        model, opt, sched, loader = tiny_run(seed=4)
        result = T.fit(model, nn.CrossEntropyLoss(), opt, loader, loader, epochs, scheduler=sched,
                       checkpoint_path=str(path), resume=resume)
        return {k: v.tobytes() for k, v in model.params.items()}, [r.train_loss for r in result.history]
    a = run(3, tmp_path / "a.npz")
    assert run(3, tmp_path / "b.npz") == a
    run(1, tmp_path / "c.npz")
    assert run(3, tmp_path / "c.npz", resume=True) == a
    model, opt, sched, loader = tiny_run(seed=5)
    T.fit(model, nn.CrossEntropyLoss(), opt, loader, loader, 3, scheduler=sched)
    assert {k: v.tobytes() for k, v in model.params.items()} != a[0]


def test_batchnorm_trains_in_training_mode_and_is_evaluated_in_inference_mode():
    """train_epoch normalizes with each batch's statistics and moves the running ones (once per step);
    evaluate normalizes with the running statistics and leaves them alone."""
    init_ss, shuffle_ss, _ = np.random.SeedSequence(0).spawn(3)
    model = T.build_model("cnn", hidden=8, rng=np.random.default_rng(init_ss))
    opt = optim.Adam(model.params, lr=1e-3)
    X, y = synthetic(96)
    loader = DataLoader(X, y, 32, shuffle=True, rng=np.random.default_rng(shuffle_ss))
    seen = []
    original = model.forward

    def forward(x, train=True):
        seen.append(train)
        return original(x, train=train)

    model.forward = forward
    T.train_epoch(model, nn.CrossEntropyLoss(), opt, loader)
    assert seen == [True] * 3
    assert int(model.buffers["1.num_batches_tracked"]) == 3 and np.any(model.buffers["5.running_var"] != 1)
    before = {k: v.copy() for k, v in model.buffers.items()}
    Xt, yt = synthetic(40, seed=1)
    stats = T.evaluate(model, DataLoader(Xt, yt, 16), nn.CrossEntropyLoss())
    assert seen == [True] * 3   # evaluate called model(X), not forward(X, train=True)
    assert all(np.array_equal(before[k], v) for k, v in model.buffers.items())
    x = Xt.reshape(40, 1, 28, 28).astype(np.float32) / 255
    by_sample = np.concatenate([model(x[i:i + 1]) for i in range(40)])   # running statistics: batch-independent
    assert stats.accuracy == np.mean(by_sample.argmax(axis=1) == yt)
