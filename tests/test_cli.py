"""The ``npnet`` command line: exit statuses, messages, outputs, resume, interrupts, the torch check.

Fast tests run ``npnet.cli.main`` in-process on a small generated IDX dataset
(600 training and 200 test images; ``npnet.data._COUNTS`` patched, the system
data directory hidden). The default run on the real data (``-m realdata``)
runs once, in a subprocess that also reports its peak RSS.
"""
import csv
import dataclasses
import fcntl
import io
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import idxdata
from npnet import _io, cli
from npnet.cli import _common as cli_common
from npnet.cli import _outdir as cli_outdir
from npnet.cli import train as cli_train
from npnet import checkpoint as CK
from npnet import train as T

REAL_DATA_DIR = "/usr/share/datasets/fashion-mnist"
SMALL = {"train": 600, "test": 200}
COURSE = [  # the course's published softmax-regression run: loss, train acc, test acc
    (0.7878, 0.749, 0.794), (0.5702, 0.814, 0.813), (0.5252, 0.827, 0.819), (0.5010, 0.833, 0.824),
    (0.4858, 0.836, 0.815)]
HEADER = "epoch,train_loss,train_acc,test_loss,test_acc,seconds"
# One BLAS thread: OpenBLAS's float32 results depend on its thread count, so a
# seeded run is reproducible only with the count fixed (and it is faster here).
ONE_THREAD = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def make_dataset(directory, seed=0):
    return idxdata.make_dataset(directory, SMALL, seed=seed)


@pytest.fixture
def small(tmp_path, monkeypatch):
    """A small dataset, the only one npnet can find; returns its directory."""
    return idxdata.isolate(monkeypatch, tmp_path, SMALL)


def run(capsys, *argv):
    """main(argv) -> (status, stdout, stderr)."""
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def read_metrics(out_dir):
    with open(os.path.join(out_dir, "metrics.csv"), newline="") as f:
        return list(csv.reader(f))


def one_line_error(err):
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


# --------------------------------------------------------------------------- a run and its files

def test_train_writes_the_five_files(small, tmp_path, capsys):
    out = tmp_path / "run"
    status, stdout, stderr = run(capsys, "train", "--data-dir", small, "--out", out, "--epochs", 3)
    assert status == 0, stderr
    assert stderr == ""
    assert sorted(os.listdir(out)) == ["checkpoint.npz", "config.json", "curves.png", "metrics.csv", "predictions.png"]
    rows = read_metrics(out)
    assert ",".join(rows[0]) == HEADER
    assert [r[0] for r in rows[1:]] == ["1", "2", "3"]
    values = np.array([[float(x) for x in r] for r in rows[1:]])
    assert np.all(values[:, [2, 4]] <= 1) and np.all(values[:, 1:] > 0)
    config = json.load(open(out / "config.json"))
    assert config["settings"] == {"model": "softmax", "hidden": None, "dropout": None, "init": "normal",
                                  "optimizer": "sgd", "lr": 0.1, "momentum": 0.0, "weight_decay": 0.0,
                                  "batch_size": 256, "epochs": 3, "seed": 0, "dtype": "float32",
                                  "lr_schedule": "none"}
    ckpt = T.load_checkpoint(out / "checkpoint.npz")
    assert ckpt.epoch == 3 and ckpt.params["1.weight"].shape == (10, 784)
    assert [round(r.train_loss, 12) for r in ckpt.metrics] == [round(v, 12) for v in values[:, 1]]
    assert [r.test_loss for r in ckpt.metrics] == list(values[:, 3])   # the test loss curves.png plots
    for png in ("curves.png", "predictions.png"):
        assert open(out / png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    # the table: a header and one row per epoch; no progress bar when stdout is not a TTY
    assert "\r" not in stdout and "img/s" not in stdout
    table = [line for line in stdout.splitlines() if re.match(r"\s+\d+\s+\d\.\d{4}\s", line)]
    assert len(table) == 3 and "train acc" in stdout and "seconds" in stdout


def test_progress_bar_on_a_tty(small, tmp_path, monkeypatch):
    pytest.importorskip("tqdm")

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    screen = Terminal()
    monkeypatch.setattr(sys, "stdout", screen)
    real_on_step = cli_train._Reporter.on_step

    def slow_on_step(self, info):   # a slower epoch, so that tqdm redraws (every 0.1 s) with the loss
        time.sleep(0.004)
        real_on_step(self, info)

    monkeypatch.setattr(cli_train._Reporter, "on_step", slow_on_step)
    assert cli.main(["train", "--data-dir", small, "--out", str(tmp_path / "run"), "--epochs", "1",
                     "--batch-size", "4"]) == 0
    shown = screen.getvalue()
    assert "\repoch 1:" in shown and re.search(r"img/s, loss=\d\.\d{4}\]", shown)
    row = shown.index("    1  ")
    assert shown.rindex("\r", 0, row) > shown.rindex("loss=")   # the bar is cleared before the row


def test_mlp_flags_reach_the_model(small, tmp_path, capsys):
    out = tmp_path / "run"
    status, stdout, stderr = run(capsys, "train", "--data-dir", small, "--out", out, "--epochs", 1, "--model", "mlp",
                                 "--hidden", 16, "--dropout", 0.25, "--optimizer", "adam", "--init", "kaiming",
                                 "--weight-decay", 1e-4, "--batch-size", 50, "--seed", 7, "--dtype", "float64")
    assert status == 0, stderr
    c = T.load_checkpoint(out / "checkpoint.npz")
    assert sorted(c.params) == ["1.bias", "1.weight", "4.bias", "4.weight"]
    assert c.params["1.weight"].shape == (16, 784) and c.params["1.weight"].dtype == np.float64
    assert c.optimizer["optimizer"] == "Adam" and float(c.optimizer["lr"]) == 1e-3
    assert set(c.rng) == {"shuffle", "dropout.3"}
    assert c.config["settings"]["batch_size"] == 50 and c.config["settings"]["momentum"] is None
    assert "MLP 784-16-10" in stdout


def test_without_matplotlib_the_pngs_are_skipped_with_a_note(small, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = tmp_path / "run"
    status, stdout, stderr = run(capsys, "train", "--data-dir", small, "--out", out, "--epochs", 1)
    assert status == 0, stderr
    assert sorted(os.listdir(out)) == ["checkpoint.npz", "config.json", "metrics.csv"]
    notes = [line for line in stdout.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "matplotlib is not installed; skipped" in notes[0]


# --------------------------------------------------------------------------- exit statuses

@pytest.mark.parametrize("argv, message", [
    (["train", "--lr", "-1"], "--lr: must be a number in (0.0, inf), got -1"),
    (["train", "--lr", "nan"], "--lr"),
    (["train", "--epochs", "0"], "--epochs: must be an integer >= 1, got 0"),
    (["train", "--batch-size", "abc"], "--batch-size: expected an integer, got 'abc'"),
    (["train", "--dropout", "1"], "--dropout"),
    (["train", "--model", "resnet"], "invalid choice: 'resnet'"),
    (["train", "--bogus"], "unrecognized arguments: --bogus"),
    (["train", "--dropout", "0.5"], "--dropout applies to --model mlp"),
    (["train", "--hidden", "64"], "--hidden applies to --model mlp"),
    (["train", "--optimizer", "adam", "--momentum", "0.9"], "--momentum applies to --optimizer sgd"),
    (["train", "--model", "lenet", "--hidden", "64"], "--hidden applies to --model mlp or cnn"),
    (["train", "--model", "lenet", "--dropout", "0.5"], "--dropout applies to --model mlp"),
    (["train", "--model", "cnn", "--dropout", "0.5"], "--dropout applies to --model mlp"),
    (["train", "--model", "lenet", "--init", "normal"], "--init normal does not apply to --model lenet"),
    (["train", "--model", "cnn", "--init", "kaiming"], "--init kaiming does not apply to --model cnn"),
    (["train", "--model", "cnn", "--optimizer", "adam", "--momentum", "0.9"], "--momentum applies to --optimizer sgd"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    ([], "required: COMMAND"),
])
def test_bad_command_lines_exit_2_with_one_line(argv, message, small, tmp_path, capsys):
    status, stdout, stderr = run(capsys, *argv, *(["--out", tmp_path / "run"] if argv[:1] == ["train"] else []))
    assert status == 2
    line = one_line_error(stderr)
    assert message in line and line.startswith("npnet")
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


def test_help_exits_0(capsys):
    assert cli.main(["train", "--help"]) == 0
    assert "--check-torch" in capsys.readouterr().out


def test_the_real_exit_status_through_python_m():
    p = subprocess.run([sys.executable, "-m", "npnet", "train", "--batch-size", "abc"], capture_output=True, text=True)
    assert p.returncode == 2 and p.stdout == ""
    assert one_line_error(p.stderr) == ("npnet train: error: argument --batch-size: expected an integer, got 'abc' "
                                        "(see npnet train --help)")


def test_missing_data_exits_2_with_one_line(small, tmp_path, capsys):
    status, _, stderr = run(capsys, "train", "--data-dir", tmp_path / "empty", "--out", tmp_path / "run")
    assert status == 2
    line = one_line_error(stderr)
    assert "Fashion-MNIST not found" in line and "npnet data" in line and str(tmp_path / "empty") in line


def test_npnet_data_finds_the_files_or_explains(small, tmp_path, capsys):
    status, stdout, _ = run(capsys, "data", "--data-dir", small)
    assert status == 0
    assert f"found in {small}" in stdout and "600 training and 200 test images" in stdout
    status, stdout, stderr = run(capsys, "data", "--no-download")   # nothing anywhere (a bad --data-dir exits 2)
    assert status == 1
    assert "Fashion-MNIST not found" in stderr and "apt-get install dataset-fashion-mnist" in stderr
    assert "Traceback" not in stderr and len(stderr.splitlines()) > 3


def test_debug_adds_the_traceback(small, tmp_path, capsys):
    out = tmp_path / "run"
    assert run(capsys, "train", "--data-dir", small, "--out", out, "--epochs", 1)[0] == 0
    (out / "checkpoint.npz").write_bytes(b"PK\x03\x04 not really")
    status, _, stderr = run(capsys, "train", "--data-dir", small, "--out", out, "--resume")
    assert status == 1
    assert "cannot resume" in one_line_error(stderr)
    status, _, stderr = run(capsys, "train", "--data-dir", small, "--out", out, "--resume", "--debug")
    assert status == 1 and "Traceback" in stderr and "CheckpointError" in stderr


# --------------------------------------------------------------------------- resume, overwrite

def test_resume_reaches_the_same_parameters_and_keeps_the_rows(small, tmp_path, capsys):
    common = ["train", "--data-dir", small, "--model", "mlp", "--hidden", 32, "--dropout", 0.2, "--momentum", 0.9,
              "--batch-size", 64]
    assert run(capsys, *common, "--out", tmp_path / "a", "--epochs", 3)[0] == 0
    assert run(capsys, *common, "--out", tmp_path / "b", "--epochs", 1)[0] == 0
    status, stdout, stderr = run(capsys, "train", "--data-dir", small, "--out", tmp_path / "b", "--epochs", 3,
                                 "--resume")
    assert status == 0, stderr
    assert "resuming" in stdout
    a, b = T.load_checkpoint(tmp_path / "a" / "checkpoint.npz"), T.load_checkpoint(tmp_path / "b" / "checkpoint.npz")
    assert {k: v.tobytes() for k, v in a.params.items()} == {k: v.tobytes() for k, v in b.params.items()}
    assert {k: v.tobytes() for k, v in a.optimizer.items()} == {k: v.tobytes() for k, v in b.optimizer.items()}
    rows_a, rows_b = read_metrics(tmp_path / "a"), read_metrics(tmp_path / "b")
    assert len(rows_b) == 4
    assert [r[:4] for r in rows_a] == [r[:4] for r in rows_b]   # all but the seconds


def test_resume_and_overwrite_rules(small, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--data-dir", small, "--out", out]
    status, _, stderr = run(capsys, *args, "--resume")
    assert status == 2 and "no checkpoint to resume from" in one_line_error(stderr)
    assert run(capsys, *args, "--epochs", 1)[0] == 0
    status, _, stderr = run(capsys, *args, "--epochs", 1)
    assert status == 2 and "--resume" in one_line_error(stderr) and "--overwrite" in stderr
    status, _, stderr = run(capsys, *args, "--resume", "--lr", 0.2)
    assert status == 2 and "--lr 0.2 differs from the checkpoint's 0.1" in one_line_error(stderr)
    # --epochs defaults to the saved total: nothing to do; --data-dir defaults to the saved one
    status, stdout, stderr = run(capsys, "train", "--out", out, "--resume")
    assert status == 0 and "nothing to train" in stdout, stderr
    status, _, _ = run(capsys, *args, "--epochs", 2, "--overwrite", "--lr", 0.05)
    assert status == 0
    c = T.load_checkpoint(out / "checkpoint.npz")
    assert c.epoch == 2 and float(c.optimizer["lr"]) == 0.05


# --------------------------------------------------------------------------- failures and interrupts

def test_divergence_exits_1_and_keeps_the_last_good_checkpoint(small, tmp_path, capsys):
    out = tmp_path / "run"
    status, stdout, stderr = run(capsys, "train", "--data-dir", small, "--out", out, "--lr", 1e37, "--epochs", 3,
                                 "--batch-size", 32)
    assert status == 1
    line = one_line_error(stderr)
    assert re.search(r"the loss became (nan|inf) at epoch 1, step \d+ of 19; try a smaller learning rate", line)
    assert "keeps epoch 0" in line
    c = T.load_checkpoint(out / "checkpoint.npz")   # the last good state: the initial one
    assert c.epoch == 0 and all(np.isfinite(p).all() for p in c.params.values())


def test_ctrl_c_exits_130_and_resume_stays_exact(small, tmp_path, capsys, monkeypatch):
    args = ["train", "--data-dir", small, "--model", "mlp", "--hidden", 16, "--dropout", 0.3, "--batch-size", 100]
    assert run(capsys, *args, "--out", tmp_path / "straight", "--epochs", 3)[0] == 0

    real = T.train_epoch
    calls = []

    def interrupted_in_epoch_2(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(T, "train_epoch", interrupted_in_epoch_2)
    out = tmp_path / "interrupted"
    status, _, stderr = run(capsys, *args, "--out", out, "--epochs", 3)
    assert status == 130
    assert "holds epoch 1" in stderr and "--resume" in stderr and "Traceback" not in stderr
    monkeypatch.setattr(T, "train_epoch", real)
    assert run(capsys, "train", "--data-dir", small, "--out", out, "--epochs", 3, "--resume")[0] == 0
    a = T.load_checkpoint(tmp_path / "straight" / "checkpoint.npz")
    b = T.load_checkpoint(out / "checkpoint.npz")
    assert {k: v.tobytes() for k, v in a.params.items()} == {k: v.tobytes() for k, v in b.params.items()}


def test_sigint_in_a_real_process(small, tmp_path):
    """A real Ctrl-C: status 130, the message, a loadable checkpoint."""
    out = tmp_path / "run"
    code = ("import sys; import npnet.data as d; "
            f"d._COUNTS.update({SMALL!r}); d.SYSTEM_DIRS = ({str(tmp_path / 'none')!r},); "
            "from npnet.cli import main; "
            f"sys.exit(main(['train', '--data-dir', {small!r}, '--out', {str(out)!r}, '--epochs', '100000', "
            "'--batch-size', '16', '--model', 'mlp']))")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")})
    try:
        for line in p.stdout:   # wait for the first table row
            if re.match(r"\s+1\s", line):
                break
        time.sleep(0.3)
        p.send_signal(signal.SIGINT)
        _, stderr = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, stderr
    assert "interrupted" in stderr and "the last completed one" in stderr and "Traceback" not in stderr
    epoch = T.load_checkpoint(out / "checkpoint.npz").epoch
    assert epoch >= 1 and f"holds epoch {epoch}" in stderr


def spawn(tmp_path, argv, prelude="pass"):
    """`npnet` in a child process that sees only the small data set; ``prelude`` runs first."""
    code = ("import sys, time; import npnet.data as d; from npnet import cli; "
            f"d._COUNTS.update({SMALL!r}); d.SYSTEM_DIRS = ({str(tmp_path / 'none')!r},); "
            f"{prelude}; sys.exit(cli.main({[str(a) for a in argv]!r}))")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**ONE_THREAD, "XDG_CACHE_HOME": str(tmp_path / "cache")})


def wait_for_line(p, pattern):
    for line in p.stdout:
        if re.search(pattern, line):
            return line
    raise AssertionError(f"the child ended without printing {pattern!r}: {p.communicate(timeout=60)}")


def finish(p):
    try:
        _, stderr = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    return stderr


SLOW_DATA = ("real_load = d.load_fashion_mnist\n"
             "def slow_load(*a, **kw):\n"
             "    print('loading', flush=True); time.sleep(60); return real_load(*a, **kw)\n"
             "d.load_fashion_mnist = slow_load")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_start_up_is_one_line_and_leaves_no_out(small, tmp_path, signum):
    out = tmp_path / "new" / "run"
    p = spawn(tmp_path, ["train", "--data-dir", small, "--out", out], prelude="exec(%r)" % SLOW_DATA)
    wait_for_line(p, r"^loading")
    p.send_signal(signum)
    stderr = finish(p)
    assert p.returncode == 128 + signum, stderr
    assert "interrupted" in one_line_error(stderr)
    assert not (tmp_path / "new").exists()   # the folders the run created went with it


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_keep_the_checkpoint_like_ctrl_c(small, tmp_path, signum):
    out = tmp_path / "run"
    p = spawn(tmp_path, ["train", "--data-dir", small, "--out", out, "--epochs", 100000, "--batch-size", 16])
    wait_for_line(p, r"^\s+1\s")
    p.send_signal(signum)
    stderr = finish(p)
    assert p.returncode == 128 + signum, stderr
    line = one_line_error(stderr)
    epoch = T.load_checkpoint(out / "checkpoint.npz").epoch
    assert epoch >= 1 and f"holds epoch {epoch}" in line and "--resume" in line
    assert signal.Signals(signum).name in line
    assert not (out / ".lock").exists()


def test_a_second_ctrl_c_keeps_the_continue_hint(small, tmp_path):
    out = tmp_path / "run"
    slow_hint = ("from npnet.cli import train as cli_train\n"
                 "real = cli_train._interrupted\n"
                 "def slow(*a):\n"
                 "    print('stopping', flush=True); time.sleep(1.5); return real(*a)\n"
                 "cli_train._interrupted = slow")
    p = spawn(tmp_path, ["train", "--data-dir", small, "--out", out, "--epochs", 100000, "--batch-size", 16],
              prelude="exec(%r)" % slow_hint)
    wait_for_line(p, r"^\s+1\s")
    p.send_signal(signal.SIGINT)
    wait_for_line(p, r"^stopping")
    p.send_signal(signal.SIGINT)   # while the first one is being handled
    stderr = finish(p)
    assert p.returncode == 130, stderr
    line = one_line_error(stderr)
    assert "continue with: npnet train --out" in line and "--resume" in line


# --------------------------------------------------------------------------- one run per --out

def test_a_second_run_on_the_same_out_exits_2_naming_the_holder(small, tmp_path, capsys):
    out = tmp_path / "run"
    p = spawn(tmp_path, ["train", "--data-dir", small, "--out", out, "--epochs", 100000, "--batch-size", 16])
    try:
        wait_for_line(p, r"^\s+1\s")
        before = {n: (out / n).read_bytes() for n in ("config.json", "checkpoint.npz")}
        for extra in ([], ["--overwrite"], ["--resume"]):
            status, _, stderr = run(capsys, "train", "--data-dir", small, "--out", out, "--epochs", 1, *extra)
            assert status == 2
            line = one_line_error(stderr)
            assert "--out" in line and f"pid {p.pid}" in line
        assert (out / "config.json").read_bytes() == before["config.json"]
    finally:
        p.send_signal(signal.SIGTERM)
        stderr = finish(p)
    assert p.returncode == 143, stderr   # the child's last words, should a stop ever end otherwise


def test_the_lock_is_held_for_the_whole_run_and_released(small, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    real_fit = T.fit
    seen = []

    def fit(*a, **kw):   # in the middle of the run, the lock is taken by this process
        fd = os.open(out / ".lock", os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            seen.append(os.read(fd, 100).decode())
        finally:
            os.close(fd)
        return real_fit(*a, **kw)

    monkeypatch.setattr(T, "fit", fit)
    status, _, stderr = run(capsys, "train", "--data-dir", small, "--out", out, "--epochs", 1)
    assert status == 0, stderr
    assert seen == [f"{os.getpid()}\n"]
    assert not (out / ".lock").exists()


def test_a_held_lock_refuses_and_a_stale_lock_file_does_not(small, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    with open(out / ".lock", "w") as f:   # as another live run would hold it
        f.write("4242\n")
        f.flush()
        fcntl.flock(f, fcntl.LOCK_EX)
        status, _, stderr = run(capsys, "train", "--data-dir", small, "--out", out, "--epochs", 1)
        assert status == 2 and "pid 4242" in one_line_error(stderr)
        assert os.listdir(out) == [".lock"]
    # the file left behind by a killed run: no process holds its lock any more
    status, _, stderr = run(capsys, "train", "--data-dir", small, "--out", out, "--epochs", 1)
    assert status == 0, stderr
    assert not (out / ".lock").exists()


# --------------------------------------------------------------------------- what a new run leaves behind

def test_overwrite_removes_the_old_runs_files_before_writing(small, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert run(capsys, "train", "--data-dir", small, "--out", out, "--epochs", 2)[0] == 0
    (out / "confusion.png").write_bytes(b"old")
    (out / "notes.txt").write_text("mine")
    real_fit = T.fit
    seen = []
    monkeypatch.setattr(T, "fit", lambda *a, **kw: (seen.append(sorted(os.listdir(out))), real_fit(*a, **kw))[1])
    status, _, stderr = run(capsys, "train", "--data-dir", small, "--out", out, "--epochs", 1, "--overwrite",
                            "--model", "mlp", "--hidden", 8)
    assert status == 0, stderr
    assert seen == [[".lock", "config.json", "notes.txt"]]
    assert sorted(os.listdir(out)) == ["checkpoint.npz", "config.json", "curves.png", "metrics.csv", "notes.txt",
                                       "predictions.png"]
    assert (out / "notes.txt").read_text() == "mine" and len(read_metrics(out)) == 2


def test_overwrite_with_missing_data_keeps_the_old_run(small, tmp_path, capsys):
    out = tmp_path / "run"
    assert run(capsys, "train", "--data-dir", small, "--out", out, "--epochs", 1)[0] == 0
    before = sorted(os.listdir(out))
    status, _, stderr = run(capsys, "train", "--data-dir", tmp_path / "nothing", "--out", out, "--overwrite")
    assert status == 2 and "Fashion-MNIST not found" in one_line_error(stderr)
    assert sorted(os.listdir(out)) == before and T.load_checkpoint(out / "checkpoint.npz").epoch == 1


def test_a_run_failing_before_its_first_epoch_leaves_no_out(small, tmp_path, capsys, monkeypatch):
    status, _, stderr = run(capsys, "train", "--data-dir", tmp_path / "nothing", "--out", tmp_path / "a" / "b")
    assert status == 2 and "Fashion-MNIST not found" in one_line_error(stderr)
    assert not (tmp_path / "a").exists()

    def no_epoch(*a, **kw):   # after config.json and the epoch-0 checkpoint would be written
        raise KeyboardInterrupt
    monkeypatch.setattr(T, "fit", no_epoch)
    status, _, stderr = run(capsys, "train", "--data-dir", small, "--out", tmp_path / "c")
    assert status == 130 and "before the first epoch" in one_line_error(stderr)
    assert not (tmp_path / "c").exists()
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "notes.txt").write_text("mine")   # a folder that was there stays, with the user's files
    status, _, _ = run(capsys, "train", "--data-dir", small, "--out", tmp_path / "d")
    assert status == 130 and os.listdir(tmp_path / "d") == ["notes.txt"]


def test_resume_with_nothing_to_train_touches_nothing(small, tmp_path, capsys):
    out = tmp_path / "run"
    assert run(capsys, "train", "--data-dir", small, "--out", out, "--epochs", 2)[0] == 0
    before = {n: ((out / n).stat().st_mtime_ns, (out / n).read_bytes()) for n in os.listdir(out)}
    time.sleep(0.05)
    for epochs in (1, 2):
        status, stdout, stderr = run(capsys, "train", "--out", out, "--resume", "--epochs", epochs)
        assert status == 0, stderr
        assert "nothing to train" in stdout and "train acc" not in stdout   # no table header either
        assert {n: ((out / n).stat().st_mtime_ns, (out / n).read_bytes()) for n in os.listdir(out)} == before


# --------------------------------------------------------------------------- memory

def test_a_layer_too_large_for_memory_is_refused_before_loading_data(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli_outdir, "_available_memory", lambda: 8 * 2**30)
    out = tmp_path / "run"
    status, _, stderr = run(capsys, "train", "--model", "mlp", "--hidden", 3000000, "--data-dir", tmp_path / "none",
                            "--out", out)
    assert status == 2
    line = one_line_error(stderr)
    assert "--hidden 3000000" in line and "memory" in line and "GB" in line
    assert not out.exists()
    monkeypatch.undo()   # the machine's own memory: no machine has the 12 TB this needs
    status, _, stderr = run(capsys, "train", "--model", "mlp", "--hidden", 10**9, "--data-dir", tmp_path / "none",
                            "--out", out)
    assert status == 2 and "--hidden 1000000000" in one_line_error(stderr) and not out.exists()


def test_the_memory_estimate_grows_with_the_model():
    s = dict(cli.DEFAULTS, lr=0.1, hidden=None, dropout=None)
    small_run = cli_outdir._memory_needed(s)
    assert 50e6 < small_run < 100e6   # mostly the data set
    mlp = dict(s, model="mlp", hidden=1000000)
    assert cli_outdir._memory_needed(mlp) > 784e6 * 4 * 3   # weights, gradients, checkpoint copy
    assert cli_outdir._memory_needed(dict(mlp, dtype="float64")) > cli_outdir._memory_needed(mlp)
    assert cli_outdir._memory_needed(dict(mlp, optimizer="adam", momentum=None)) > cli_outdir._memory_needed(mlp)


# --------------------------------------------------------------------------- what the run shows and writes

def test_curves_are_titled_with_the_model_and_its_settings(small, tmp_path, capsys, monkeypatch):
    from npnet import plots

    titles = []
    real = plots.plot_curves
    monkeypatch.setattr(plots, "plot_curves", lambda *a, title=None, **kw: (titles.append(title),
                                                                             real(*a, title=title, **kw))[1])
    status, stdout, stderr = run(capsys, "train", "--data-dir", small, "--out", tmp_path / "run", "--epochs", 1,
                                 "--model", "mlp", "--hidden", 12, "--dropout", 0.1, "--optimizer", "adam",
                                 "--lr", 0.002, "--batch-size", 64, "--seed", 3)
    assert status == 0, stderr
    [title] = titles
    for part in ("MLP 784-12-10", "dropout 0.1", "adam", "lr 0.002", "batch 64", "seed 3", "init normal"):
        assert part in title, title


def test_one_epoch_is_singular(small, tmp_path, capsys):
    status, stdout, _ = run(capsys, "train", "--data-dir", small, "--out", tmp_path / "run", "--epochs", 1)
    assert status == 0 and "1 epoch," in stdout and "1 epochs" not in stdout
    status, stdout, _ = run(capsys, "train", "--data-dir", small, "--out", tmp_path / "run2", "--epochs", 2)
    assert status == 0 and "2 epochs," in stdout


def test_huge_losses_are_shown_in_scientific_notation(small, tmp_path, capsys, monkeypatch):
    real = T.train_epoch
    monkeypatch.setattr(T, "train_epoch", lambda *a, **kw: dataclasses.replace(real(*a, **kw), loss=2.5e7))
    status, stdout, stderr = run(capsys, "train", "--data-dir", small, "--out", tmp_path / "run", "--epochs", 1)
    assert status == 0, stderr
    assert "25000000" not in stdout
    assert re.search(r"^\s+1\s+2\.500e\+07\s", stdout, re.M) and "final: train loss 2.500e+07," in stdout
    assert cli_common._loss_text(0.4858) == "0.4858" and cli_common._loss_text(-3e6) == "-3.000e+06"


def test_an_out_that_is_a_file_says_so(small, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for extra in ([], ["--resume"], ["--overwrite"]):
        status, _, stderr = run(capsys, "train", "--data-dir", small, "--out", afile, *extra)
        line = one_line_error(stderr)
        assert status == 2 and "--out" in line and "not a directory" in line and str(afile) in line
    assert afile.read_text() == "x"


# --------------------------------------------------------------------------- --check-torch

def test_check_torch_agrees_in_float64(small, tmp_path, capsys):
    pytest.importorskip("torch")
    status, stdout, stderr = run(capsys, "train", "--data-dir", small, "--out", tmp_path / "run", "--epochs", 2,
                                 "--model", "mlp", "--hidden", 32, "--dropout", 0.2, "--momentum", 0.9,
                                 "--batch-size", 50, "--dtype", "float64", "--check-torch")
    assert status == 0, stderr
    assert "max|dloss|" in stdout and "max|dparam|" in stdout
    found = re.search(r"largest differences over the run: loss (\S+), parameters (\S+)", stdout)
    loss, params = map(float, found.groups())
    assert loss < 1e-10 and params < 1e-10


def test_check_torch_without_torch_names_the_install_command(tmp_path):
    """In a process where torch cannot be imported, before any data is looked for."""
    code = ("import sys; sys.modules['torch'] = None; from npnet.cli import main; "
            f"sys.exit(main(['train', '--data-dir', {str(tmp_path / 'no-data')!r}, '--out', "
            f"{str(tmp_path / 'run')!r}, '--check-torch']))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    line = one_line_error(p.stderr)
    assert "--check-torch" in line and "pip install -e '.[reference]'" in line
    assert not (tmp_path / "run").exists()


def test_check_torch_cannot_resume(small, tmp_path, capsys):
    status, _, stderr = run(capsys, "train", "--data-dir", small, "--out", tmp_path, "--resume", "--check-torch")
    assert status == 2 and "--check-torch" in one_line_error(stderr)


# --------------------------------------------------------------------------- the convolutional models

def _settings_of(out):
    with open(os.path.join(out, "config.json")) as f:
        return json.load(f)["settings"]


@pytest.mark.parametrize("model, expected", [
    ("lenet", dict(init="xavier", optimizer="sgd", lr=0.9, hidden=None, dropout=None, momentum=0.0, epochs=1)),
    ("cnn", dict(init="torch-default", optimizer="adam", lr=0.001, hidden=128, dropout=None, momentum=None,
                 epochs=1)),
])
def test_lenet_and_cnn_train_with_their_own_defaults(model, expected, small, tmp_path, capsys):
    out = tmp_path / model
    status, stdout, stderr = run(capsys, "train", "--data-dir", small, "--out", out, "--model", model, "--epochs", 1)
    assert status == 0, stderr
    settings = _settings_of(out)
    assert {k: settings[k] for k in expected} == expected
    ckpt = T.load_checkpoint(out / "checkpoint.npz")
    assert ckpt.epoch == 1 and len(read_metrics(out)) == 2
    assert ("LeNet" if model == "lenet" else "CNN") in stdout
    if model == "cnn":   # its BatchNorm buffers are in the checkpoint, moved by the epoch's 3 batches
        assert int(ckpt.buffers["1.num_batches_tracked"]) == 3 and np.any(ckpt.buffers["1.running_mean"] != 0)


def test_cnn_hidden_and_lenet_init_flags_reach_the_model(small, tmp_path, capsys):
    common = ["train", "--data-dir", small, "--epochs", 1, "--batch-size", 300]
    assert run(capsys, *common, "--out", tmp_path / "c", "--model", "cnn", "--hidden", 24)[0] == 0
    assert T.load_checkpoint(tmp_path / "c" / "checkpoint.npz").params["9.weight"].shape == (24, 32 * 49)
    assert run(capsys, *common, "--out", tmp_path / "l", "--model", "lenet", "--init", "torch-default",
               "--optimizer", "adam")[0] == 0
    assert {k: _settings_of(tmp_path / "l")[k] for k in ("init", "lr")} == {"init": "torch-default", "lr": 0.001}


def test_cnn_resume_is_bit_identical_with_its_batchnorm_buffers(small, tmp_path, capsys):
    # a constant lr, so that a run extended by --resume is the same run (a cosine schedule ends where it was planned)
    common = ["train", "--data-dir", small, "--model", "cnn", "--batch-size", 128, "--lr-schedule", "none"]
    assert run(capsys, *common, "--out", tmp_path / "a", "--epochs", 2)[0] == 0
    assert run(capsys, *common, "--out", tmp_path / "b", "--epochs", 1)[0] == 0
    status, _, stderr = run(capsys, "train", "--data-dir", small, "--out", tmp_path / "b", "--epochs", 2, "--resume")
    assert status == 0, stderr
    a, b = T.load_checkpoint(tmp_path / "a" / "checkpoint.npz"), T.load_checkpoint(tmp_path / "b" / "checkpoint.npz")
    assert "5.running_var" in a.buffers
    for x, y in ((a.params, b.params), (a.buffers, b.buffers), (a.optimizer, b.optimizer)):
        assert {k: v.tobytes() for k, v in x.items()} == {k: v.tobytes() for k, v in y.items()}
    assert [r[:5] for r in read_metrics(tmp_path / "a")] == [r[:5] for r in read_metrics(tmp_path / "b")]


@pytest.mark.parametrize("model", ["lenet", "cnn"])
def test_check_torch_agrees_in_float64_for_the_convolutional_models(model, small, tmp_path, capsys):
    pytest.importorskip("torch")
    status, stdout, stderr = run(capsys, "train", "--data-dir", small, "--out", tmp_path / "run", "--epochs", 2,
                                 "--model", model, "--batch-size", 100, "--dtype", "float64", "--check-torch")
    assert status == 0, stderr
    found = re.search(r"check-torch: largest differences over the run: loss (\S+), parameters (\S+)\n", stdout)
    loss, params = map(float, found.groups())
    assert loss < 1e-10 and params < 1e-10


# --------------------------------------------------------------------------- the study hook

def test_study_hook(monkeypatch, capsys):
    import importlib.util

    has_studies = importlib.util.find_spec("npnet.studies.cli") is not None
    choices = cli.build_parser()._subparsers._group_actions[0].choices
    assert ("study" in choices) == has_studies

    def broken(name):
        raise RuntimeError("half-written module")

    monkeypatch.setattr(cli.importlib, "import_module", broken)
    if has_studies:   # a broken studies package never breaks train, and says what is wrong
        assert "train" in cli.build_parser()._subparsers._group_actions[0].choices
        status, _, stderr = run(capsys, "study", "anything")
        assert status == 1 and "half-written module" in one_line_error(stderr)


# --------------------------------------------------------------------------- real data

@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """`npnet train` with every default, once, in a subprocess that reports its peak RSS."""
    need_real_data()
    out = tmp_path_factory.mktemp("default-run") / "out"
    # Peak RSS from VmHWM: ru_maxrss of a child forked from this (large) pytest process
    # would include the parent's pages copied at fork.
    code = ("import re, sys; from npnet.cli import main; "
            f"status = main(['train', '--out', {str(out)!r}]); "
            "print('peak_kb', re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)); "
            "sys.exit(status)")
    start = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=ONE_THREAD)
    wall = time.perf_counter() - start
    assert p.returncode == 0, p.stderr
    rows = read_metrics(out)
    rss_mb = int(re.search(r"peak_kb (\d+)", p.stdout).group(1)) / 1024
    return dict(out=out, rows=rows, stdout=p.stdout, rss_mb=rss_mb, wall=wall)


@pytest.mark.realdata
@pytest.mark.slow
def test_default_run_matches_the_course(default_run):
    rows = default_run["rows"]
    assert ",".join(rows[0]) == HEADER and len(rows) == 11
    epochs = [dict(zip(rows[0], map(float, r))) for r in rows[1:]]
    assert abs(epochs[4]["train_loss"] - 0.4858) <= 0.01
    for mine, (loss, train_acc, test_acc) in zip(epochs, COURSE):
        assert abs(mine["train_loss"] - loss) < 0.01 and abs(mine["train_acc"] - train_acc) < 0.01
        assert abs(mine["test_acc"] - test_acc) < 0.03   # the test accuracy wobbles from epoch to epoch
    assert epochs[9]["test_acc"] >= 0.81
    assert sorted(os.listdir(default_run["out"])) == [
        "checkpoint.npz", "config.json", "curves.png", "metrics.csv", "predictions.png"]
    assert default_run["rss_mb"] <= 200, f"peak RSS {default_run['rss_mb']:.0f} MB"


def need_real_data():
    if not os.path.isdir(REAL_DATA_DIR) and not os.environ.get("NPNET_DATA"):
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI is set but the Fashion-MNIST files are missing from {REAL_DATA_DIR}")
        pytest.skip("Fashion-MNIST is not installed")


@pytest.mark.realdata
def test_npnet_data_finds_the_real_files():
    need_real_data()
    p = subprocess.run([sys.executable, "-m", "npnet", "data"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "Fashion-MNIST found in" in p.stdout and "60000 training and 10000 test images" in p.stdout


# --------------------------------------------------------------------------- resume: the checkpoint's data and settings

def rewrite_config(path, change):
    """Rewrite a checkpoint with ``change(config)`` applied and the checksum recomputed: consistent, but tampered."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    config = json.loads(arrays["config"].item())
    change(config)
    arrays["config"] = np.array(json.dumps(config, sort_keys=True))
    arrays["checksum"] = np.array(CK._digest(arrays))
    np.savez(path, **arrays)


def test_resume_refuses_other_data_of_the_same_size_unless_allowed(small, tmp_path, capsys):
    out = tmp_path / "run"
    assert run(capsys, "train", "--data-dir", small, "--out", out, "--epochs", 1)[0] == 0
    fingerprint = T.load_checkpoint(out / "checkpoint.npz").config["data_fingerprint"]
    assert re.fullmatch(r"[0-9a-f]{64}", fingerprint)
    assert json.load(open(out / "config.json"))["data_fingerprint"] == fingerprint
    other = make_dataset(tmp_path / "other", seed=1)   # the same size, other images

    status, stdout, stderr = run(capsys, "train", "--data-dir", other, "--out", out, "--resume", "--epochs", 2)
    line = one_line_error(stderr)
    assert status == 2 and "other data" in line and "--allow-other-data" in line
    assert T.load_checkpoint(out / "checkpoint.npz").epoch == 1

    status, stdout, stderr = run(capsys, "train", "--data-dir", small, "--out", out, "--resume", "--epochs", 2)
    assert status == 0 and stderr == "" and "note:" not in stdout
    assert T.load_checkpoint(out / "checkpoint.npz").epoch == 2

    status, stdout, stderr = run(capsys, "train", "--data-dir", other, "--out", out, "--resume", "--epochs", 3,
                                 "--allow-other-data")
    assert status == 0, stderr
    assert "--allow-other-data" in stdout
    c = T.load_checkpoint(out / "checkpoint.npz")
    assert c.epoch == 3 and c.config["data_fingerprint"] not in (None, fingerprint)   # it records the new data

    status, _, stderr = run(capsys, "train", "--data-dir", small, "--out", tmp_path / "new", "--allow-other-data")
    assert status == 2 and "--allow-other-data" in one_line_error(stderr)


def test_resume_of_a_checkpoint_without_a_data_fingerprint_continues_with_a_note(small, tmp_path, capsys):
    out = tmp_path / "run"
    assert run(capsys, "train", "--data-dir", small, "--out", out, "--epochs", 1)[0] == 0
    rewrite_config(out / "checkpoint.npz", lambda c: c.pop("data_fingerprint"))   # as an older npnet wrote it
    status, stdout, stderr = run(capsys, "train", "--out", out, "--resume", "--epochs", 2)
    assert status == 0 and stderr == ""
    notes = [line for line in stdout.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "no fingerprint" in notes[0]
    assert T.load_checkpoint(out / "checkpoint.npz").config["data_fingerprint"]   # from now on it has one


UNKNOWN_SETTINGS = [
    ("model", "bogus"),
    ("optimizer", "rmsprop"),   # used to build Adam silently
    ("init", "zeros"),
    ("dtype", "float16"),
    ("dtype", None),
    ("lr", -1.0),
    ("batch_size", 0),
    ("seed", "7"),
    ("momentum", True),
    ("hidden", 0),
    ("dropout", 1.0),
    ("weight_decay", -0.5),
]


def _unknown_setting(line, key, value):
    """The one message form of a bad saved setting, from ``checkpoint`` to the end of the line."""
    assert f"holds an unknown setting: {key}={value!r} (expected " in line, line
    return line[line.index("checkpoint "):]


def test_resume_refuses_a_consistent_checkpoint_holding_an_unknown_setting(small, tmp_path, capsys):
    out = tmp_path / "run"
    assert run(capsys, "train", "--data-dir", small, "--out", out, "--epochs", 1)[0] == 0
    path = out / "checkpoint.npz"
    raw = path.read_bytes()
    for key, value in UNKNOWN_SETTINGS:
        path.write_bytes(raw)
        rewrite_config(path, lambda c: c["settings"].update({key: value}))
        assert T.load_checkpoint(path).config["settings"][key] == value   # the library keeps config opaque
        status, _, stderr = run(capsys, "train", "--out", out, "--resume", "--epochs", 2)
        assert status == 1, key
        _unknown_setting(one_line_error(stderr), key, value)
        assert T.load_checkpoint(path).epoch == 1


def test_eval_and_resume_refuse_a_bad_saved_setting_in_the_same_words(small, tmp_path, capsys):
    out = tmp_path / "run"
    assert run(capsys, "train", "--data-dir", small, "--out", out, "--epochs", 1)[0] == 0
    path = out / "checkpoint.npz"
    raw = path.read_bytes()
    bad = UNKNOWN_SETTINGS + [("data_fingerprint", "abc"), ("data_dir", "")]
    for key, value in bad:
        path.write_bytes(raw)
        where = "settings" if key in cli.DEFAULTS else None
        rewrite_config(path, lambda c: (c[where] if where else c).update({key: value}))
        status, _, stderr = run(capsys, "eval", out)
        assert status == 2, key   # eval: a checkpoint it cannot use is bad input
        said_by_eval = _unknown_setting(one_line_error(stderr), key, value)
        status, _, stderr = run(capsys, "train", "--out", out, "--resume", "--epochs", 2)
        assert status == 1, key
        assert _unknown_setting(one_line_error(stderr), key, value) == said_by_eval
        assert str(path) in said_by_eval


def test_eval_and_resume_refuse_an_init_the_saved_model_does_not_take(small, tmp_path, capsys):
    out = tmp_path / "run"
    assert run(capsys, "train", "--data-dir", small, "--out", out, "--epochs", 1, "--model", "lenet",
               "--batch-size", 300)[0] == 0
    rewrite_config(out / "checkpoint.npz", lambda c: c["settings"].update(init="normal"))
    status, _, stderr = run(capsys, "eval", out)
    line = one_line_error(stderr)
    assert status == 2 and "init='normal'" in line and "lenet" in line
    status, _, stderr = run(capsys, "train", "--out", out, "--resume", "--epochs", 2)
    assert status == 1 and "init='normal'" in one_line_error(stderr)


def test_the_saved_settings_are_the_flags_settings():
    from npnet import models

    assert set(models.RUN_SETTINGS) == set(cli.DEFAULTS)
    assert models.OPTIMIZERS == tuple(cli_common.DEFAULT_LR)


def test_resume_refuses_a_checkpoint_with_nan_weights_as_a_bad_checkpoint(small, tmp_path, capsys):
    out = tmp_path / "run"
    assert run(capsys, "train", "--data-dir", small, "--out", out, "--epochs", 1)[0] == 0
    path = out / "checkpoint.npz"
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    W = arrays["param/1.weight"].copy()
    W[3, 5] = np.nan
    arrays["param/1.weight"] = W
    arrays["checksum"] = np.array(CK._digest(arrays))
    np.savez(path, **arrays)
    status, _, stderr = run(capsys, "train", "--out", out, "--resume", "--epochs", 2)
    line = one_line_error(stderr)
    assert status == 1 and "'1.weight' holds NaN or inf" in line and "checkpoint is bad" in line
    assert "learning rate" not in line


# =========================================================================== bad inputs
# Every numeric flag with every kind of bad value, corrupt data sets and failed runs,
# crossed with the bad values of tests/badinput.py (its docstring says what
# SAME, REF, OK, Raises and Deviates mean) (exit statuses 2 and 1, one line, --debug for the traceback); then where npnet writes, and a full disk.

import errno  # noqa: E402
import math  # noqa: E402
import textwrap  # noqa: E402

from npnet import data  # noqa: E402

TINY = {"train": 60, "test": 20}
THREAD_VARS = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


write_idx = idxdata.write_idx


def make_tiny_dataset(directory, *, gz=False, seed=0):
    return idxdata.make_dataset(directory, TINY, gz=gz, seed=seed)


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """A tiny dataset, the only one npnet can find; returns its directory."""
    return idxdata.isolate(monkeypatch, tmp_path, TINY)


def run_cli(capsys, *argv):
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def one_line(err):
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


FLAG_KINDS = {"--hidden": "int>=1", "--epochs": "int>=1", "--batch-size": "int>=1", "--seed": "int>=0",
              "--lr": "real>0", "--momentum": "real>=0", "--weight-decay": "real>=0", "--dropout": "prob<1"}
BAD_TEXTS = ["abc", "", " ", "nan", "inf", "-inf", "1e999", "-1", "0", "1", "1.5", "0x10", "1,5", "1e-400", "--"]


def _refused(kind, text):
    """Whether the CLI must refuse ``text`` for a flag of this kind."""
    try:
        value = int(text) if kind.startswith("int") else float(text)
    except ValueError:
        return True
    if not math.isfinite(value):
        return True
    return {"int>=1": value < 1, "int>=0": value < 0, "real>0": value <= 0, "real>=0": value < 0,
            "prob<1": not 0 <= value < 1}[kind]


CLI_BAD = [(flag, text) for flag, kind in FLAG_KINDS.items() for text in BAD_TEXTS if _refused(kind, text)]
CLI_BAD += [(flag, None) for flag in FLAG_KINDS]                       # the value left out
CLI_BAD += [(flag, text) for flag in ("--model", "--optimizer", "--init", "--dtype") for text in ("bogus", "", "MLP")]
CLI_BAD += [("--out", ""), ("--data-dir", ""), ("--out", "a\0b")]


@pytest.mark.parametrize("flag, text", CLI_BAD, ids=[f"{f} {t!r}" for f, t in CLI_BAD])
def test_cli_bad_value_exits_2_with_one_line(tiny, tmp_path, capsys, flag, text):
    argv = ["train", "--data-dir", tiny, "--out", tmp_path / "run"] + ([flag] if text is None else [flag, text])
    status, stdout, stderr = run_cli(capsys, *argv)
    assert status == 2
    line = one_line(stderr)
    assert line.startswith(f"npnet train: error: argument {flag}: ") and line.endswith("(see npnet train --help)"), line
    assert not os.path.exists(tmp_path / "run")


def test_cli_data_with_empty_data_dir_exits_2(capsys):
    status, _, stderr = run_cli(capsys, "data", "--data-dir", "")
    assert status == 2 and "argument --data-dir: expected a directory path, got ''" in one_line(stderr)


def _truncate(path):
    raw = open(path, "rb").read()
    open(path, "wb").write(raw[:len(raw) // 2])


def _label_12(path):
    raw = bytearray(open(path, "rb").read())
    raw[-1] = 12
    open(path, "wb").write(bytes(raw))


DAMAGE = {
    # id: (file, how)
    "truncated images": ("train-images-idx3-ubyte", _truncate),
    "garbage labels": ("t10k-labels-idx1-ubyte", lambda p: open(p, "wb").write(os.urandom(100))),
    "empty file": ("train-labels-idx1-ubyte", lambda p: open(p, "wb").close()),
    "label out of range": ("t10k-labels-idx1-ubyte", _label_12),
    "one image short": ("train-images-idx3-ubyte", lambda p: write_idx(p, np.zeros((TINY["train"] - 1, 28, 28)))),
    "images 32x32": ("t10k-images-idx3-ubyte", lambda p: write_idx(p, np.zeros((TINY["test"], 32, 32)))),
    "bad gzip": ("train-images-idx3-ubyte", lambda p: (os.rename(p, p + ".gz"), open(p + ".gz", "r+b").write(
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbage"))),
    "html page": ("train-labels-idx1-ubyte", lambda p: open(p, "wb").write(b"<!DOCTYPE html><html>404</html>")),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_cli_corrupt_data_exits_2_naming_the_file(tiny, tmp_path, capsys, damage):
    name, how = DAMAGE[damage]
    how(os.path.join(tiny, name))
    status, _, stderr = run_cli(capsys, "train", "--data-dir", tiny, "--out", tmp_path / "run", "--epochs", 1)
    assert status == 2
    line = one_line(stderr)
    assert line.startswith("npnet train: error: cannot load Fashion-MNIST: ") and name in line, line
    assert not os.path.exists(tmp_path / "run" / "checkpoint.npz")


def test_cli_data_dir_a_file_or_missing_and_out_a_file_exit_2(tiny, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    status, _, stderr = run_cli(capsys, "train", "--data-dir", afile, "--out", tmp_path / "run")
    line = one_line(stderr)
    assert status == 2 and line.startswith("npnet train: error: --data-dir ") and str(afile) in line, line
    status, _, stderr = run_cli(capsys, "train", "--data-dir", tiny, "--out", afile)
    assert status == 2 and f"cannot create --out {afile}" in one_line(stderr)


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _fail_from_call(n, real):
    """A stand-in for ``real`` that works n - 1 times, then finds the disk full."""
    calls = []

    def fake(*args, **kwargs):
        calls.append(1)
        if len(calls) >= n:
            enospc()
        return real(*args, **kwargs)
    return fake


def test_cli_full_disk_while_checkpointing_exits_1_and_keeps_the_last_epoch(tiny, tmp_path, capsys, monkeypatch):
    args = ["train", "--data-dir", tiny, "--epochs", 3, "--batch-size", 16]
    assert run_cli(capsys, *args, "--out", tmp_path / "straight")[0] == 0
    out = tmp_path / "run"
    monkeypatch.setattr(np, "savez", _fail_from_call(3, np.savez))   # epoch 0 and 1 fit, epoch 2 does not
    status, _, stderr = run_cli(capsys, *args, "--out", out)
    assert status == 1
    line = one_line(stderr)
    ckpt = re.escape(str(out / "checkpoint.npz"))
    assert re.fullmatch(rf"npnet train: cannot write checkpoint {ckpt}: No space left on device; {ckpt} keeps epoch 1",
                        line), line
    assert T.load_checkpoint(out / "checkpoint.npz").epoch == 1
    assert [n for n in os.listdir(out) if n.startswith(".")] == []          # no temp file left
    assert open(out / "metrics.csv").read().count("\n") == 2                # the header and epoch 1
    monkeypatch.setattr(np, "savez", _fail_from_call(1, np.savez))
    status, _, stderr = run_cli(capsys, "train", "--out", out, "--resume", "--debug")
    assert status == 1 and "Traceback" in stderr and "No space left on device" in stderr
    monkeypatch.undo()
    monkeypatch.setattr(data, "_COUNTS", dict(TINY))
    monkeypatch.setattr(data, "SYSTEM_DIRS", (str(tmp_path / "no-system-data"),))
    status, _, stderr = run_cli(capsys, "train", "--out", out, "--resume")   # space freed: the run finishes
    assert status == 0, stderr
    a, b = T.load_checkpoint(tmp_path / "straight" / "checkpoint.npz"), T.load_checkpoint(out / "checkpoint.npz")
    assert {k: v.tobytes() for k, v in a.params.items()} == {k: v.tobytes() for k, v in b.params.items()}
    assert [r.train_loss for r in a.metrics] == [r.train_loss for r in b.metrics]


@pytest.mark.parametrize("what", ["metrics.csv", "config.json", "curves.png"])
def test_cli_full_disk_writing_the_other_files_exits_1_with_one_line(tiny, tmp_path, capsys, monkeypatch, what):
    out = tmp_path / "run"
    real = _io.atomic_write

    def atomic_write(path, write, **kw):   # the disk fills up in the middle of writing this one file
        if os.path.basename(path) == what:
            return real(path, lambda f, tmp: (f.write(b"half a file"), enospc()), **kw)
        return real(path, write, **kw)

    monkeypatch.setattr(_io, "atomic_write", atomic_write)
    status, _, stderr = run_cli(capsys, "train", "--data-dir", tiny, "--out", out, "--epochs", 2)
    assert status == 1
    line = one_line(stderr)
    if what == "curves.png":
        assert f"cannot write the plots into {out}: No space left on device" in line and "keeps epoch 2" in line, line
    else:
        assert f"cannot write {out}/{what}: No space left on device" in line, line
    if what == "metrics.csv":
        assert "checkpoint.npz keeps epoch 1" in line, line
    # failing before its first epoch (config.json), a new run takes its folder back with it
    assert [n for n in (os.listdir(out) if out.exists() else []) if n.startswith(".")] == []
    assert not os.path.exists(out / what) or what == "metrics.csv"


FSIZE_SCRIPT = textwrap.dedent("""
    import sys
    from npnet import cli, data
    data._COUNTS = {"train": %d, "test": %d}
    data.SYSTEM_DIRS = ()
    sys.exit(cli.main(sys.argv[1:]))
""") % (TINY["train"], TINY["test"])


def _npnet(argv, env, cwd, fsize=None):
    def limit():
        import resource
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    return subprocess.run([sys.executable, "-c", FSIZE_SCRIPT] + [str(a) for a in argv], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120, preexec_fn=limit if fsize else None)


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs RLIMIT_FSIZE")
def test_a_real_write_failure_mid_run_keeps_the_finished_epoch_and_resume_finishes_it(tiny, tmp_path):
    """No monkeypatching: the kernel refuses the write (RLIMIT_FSIZE, the way a full disk refuses it)."""
    env = {**os.environ, **THREAD_VARS, "XDG_CACHE_HOME": str(tmp_path / "cache"), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("NPNET_DATA", None)
    args = ["train", "--data-dir", tiny, "--batch-size", 16, "--seed", 3]
    p = _npnet(args + ["--out", "aa", "--epochs", 1], env, tmp_path)
    assert p.returncode == 0, p.stderr
    size1 = (tmp_path / "aa" / "checkpoint.npz").stat().st_size     # epoch 2's is 48 bytes of metrics larger
    p = _npnet(args + ["--out", "bb", "--epochs", 3], env, tmp_path, fsize=size1 + 24)
    assert p.returncode == 1, p.stderr
    line = one_line(p.stderr)
    assert "File too large" in line and "checkpoint.npz keeps epoch 1" in line, line
    assert T.load_checkpoint(tmp_path / "bb" / "checkpoint.npz").epoch == 1
    assert [n for n in os.listdir(tmp_path / "bb") if n.startswith(".")] == []
    assert _npnet(["train", "--out", "bb", "--resume", "--epochs", 3], env, tmp_path).returncode == 0
    assert _npnet(args + ["--out", "cc", "--epochs", 3], env, tmp_path).returncode == 0
    a, b = T.load_checkpoint(tmp_path / "cc" / "checkpoint.npz"), T.load_checkpoint(tmp_path / "bb" / "checkpoint.npz")
    assert {k: v.tobytes() for k, v in a.params.items()} == {k: v.tobytes() for k, v in b.params.items()}


# =========================================================================== 6. files: where npnet writes

def tree(root):
    """{relative path: (kind, size, mtime_ns)} of everything under root."""
    out = {}
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(d, name)
            st_ = os.lstat(p)
            out[os.path.relpath(p, root)] = ("dir" if name in dirs else "file",
                                             0 if name in dirs else st_.st_size, 0 if name in dirs else st_.st_mtime_ns)
    return out


NASTY = "my run 'x' \"y\" $(touch pwned) `touch pwned2`; rm -rf z && echo | ünï☃ *?[a]"


def test_npnet_train_writes_only_into_out_and_the_cache(tmp_path):
    """A real `npnet train` with HOME, XDG_CACHE_HOME and TMPDIR in a sandbox, the cwd in another
    directory, and an --out full of shell syntax: the only new files are in --out and the cache."""
    for d in ("home", "cache", "tmp", "cwd"):
        (tmp_path / d).mkdir()
    data_dir = make_tiny_dataset(tmp_path / "data", gz=True)     # gzipped: the decoded copy goes to the cache
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path / "home"),
           "XDG_CACHE_HOME": str(tmp_path / "cache"), "TMPDIR": str(tmp_path / "tmp"), "PYTHONDONTWRITEBYTECODE": "1",
           "LANG": "C.UTF-8", **THREAD_VARS}
    before = tree(tmp_path)
    p = _npnet(["train", "--data-dir", data_dir, "--out", NASTY, "--epochs", 2], env, tmp_path / "cwd")
    assert p.returncode == 0, p.stderr
    after = tree(tmp_path)
    new = {k: v for k, v in after.items() if before.get(k) != v}
    out_dir = os.path.join("cwd", NASTY)
    outside = sorted(k for k in new if not (k == out_dir or k.startswith(out_dir + os.sep) or k.startswith("cache" + os.sep)
                                            or k == "cache"))
    # matplotlib keeps its font cache in $XDG_CACHE_HOME/matplotlib (the cache), and its import creates its
    # (empty) config directory ~/.config/matplotlib: that directory, and no file, may appear outside
    matplotlib_config = {os.path.join("home", ".config"), os.path.join("home", ".config", "matplotlib")}
    assert [k for k in outside if k not in matplotlib_config] == [], f"written outside --out and the cache: {outside}"
    assert all(new[k][0] == "dir" for k in outside)
    assert sorted(os.listdir(tmp_path / out_dir)) == ["checkpoint.npz", "config.json", "curves.png", "metrics.csv",
                                                      "predictions.png"]
    assert sorted(os.listdir(tmp_path / "cwd")) == [NASTY]                 # no "pwned": nothing ran the text
    decoded = os.listdir(tmp_path / "cache" / "npnet" / "fashion-mnist")
    assert len(decoded) == 1 and decoded[0].startswith("decoded-") and decoded[0].endswith(".npz")
    assert os.listdir(tmp_path / "tmp") == []


@pytest.mark.parametrize("out", [NASTY, "-starts with a dash", "trailing space ", "a/b/../c"],
                         ids=["shell", "dash", "space", "dots"])
def test_out_is_used_as_given(tiny, tmp_path, capsys, monkeypatch, out):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    status, stdout, stderr = run_cli(capsys, "train", "--data-dir", tiny, f"--out={out}", "--epochs", 1)
    assert status == 0, stderr
    assert os.path.isfile(os.path.join(cwd, out, "checkpoint.npz"))
    created = sorted(os.path.relpath(os.path.join(d, n), cwd) for d, ds, fs in os.walk(cwd) for n in ds + fs)
    # the kernel resolves the path (a/b/../c is a/c once a/b exists): os.makedirs(out) and nothing else
    where = os.path.relpath(os.path.realpath(os.path.join(cwd, out)), cwd)
    dirs = {"a", "a/b", "a/c"} if out == "a/b/../c" else {where}
    files = {os.path.join(where, n) for n in ("checkpoint.npz", "config.json", "curves.png", "metrics.csv",
                                              "predictions.png")}
    assert set(created) == dirs | files, created
    assert f"to {out}" in stdout


def test_cosine_schedule_lowers_the_lr_over_the_planned_epochs_and_is_the_cnns_default(small, tmp_path, capsys):
    status, stdout, stderr = run(capsys, "train", "--data-dir", small, "--out", tmp_path / "c", "--model", "cnn",
                                 "--epochs", 2, "--batch-size", 300)
    assert status == 0, stderr
    assert "cosine schedule" in stdout and _settings_of(tmp_path / "c")["lr_schedule"] == "cosine"
    ckpt = T.load_checkpoint(tmp_path / "c" / "checkpoint.npz")
    # lr_t = lr (1 + cos(pi t / T_max)) / 2 with T_max = 2: 0.001, then 0.0005 in epoch 2, then 0, as torch's
    assert ckpt.scheduler is not None and int(ckpt.scheduler["T_max"]) == 2
    assert float(ckpt.optimizer["lr"]) == pytest.approx(0.0, abs=1e-12)
    status, _, stderr = run(capsys, "train", "--data-dir", small, "--out", tmp_path / "c", "--epochs", 3, "--resume")
    assert status == 2 and "--epochs" in stderr and "cosine" in stderr
    status, _, stderr = run(capsys, "train", "--data-dir", small, "--out", tmp_path / "s", "--epochs", 1,
                            "--batch-size", 300, "--lr-schedule", "cosine")
    assert status == 0, stderr
    assert _settings_of(tmp_path / "s")["lr_schedule"] == "cosine"


def test_a_checkpoint_from_before_lr_schedule_resumes_with_a_constant_lr(small, tmp_path, capsys):
    out = tmp_path / "old"
    assert run(capsys, "train", "--data-dir", small, "--out", out, "--epochs", 1, "--batch-size", 300)[0] == 0
    saved = {k: v for k, v in _settings_of(out).items() if k != "lr_schedule"}   # as an older npnet saved them
    args = cli.build_parser().parse_args(["train", "--out", str(out), "--epochs", "2", "--resume"])
    assert cli_train._settings(args, saved)["lr_schedule"] == "none"
