"""Using a trained model: npnet.load_model, npnet.inference's helpers, `npnet eval` and `npnet predict`.

Runs are trained by the CLI in-process on a small generated IDX dataset
(600 training and 200 test images, tests/idxdata.py) that is the only data
npnet can find.
"""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import idxdata
import npnet
from npnet import cli, inference, nn, optim, plots
from npnet import train as T
from npnet.data import FASHION_MNIST_LABELS, DataLoader, load_fashion_mnist
from npnet.errors import CheckpointError

SMALL = {"train": 600, "test": 200}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def _isolated(tmp_path_factory):
    """A small dataset, the only one npnet can find, and a 2-epoch softmax run on it, for the whole module."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        root = tmp_path_factory.mktemp("inference")
        small = idxdata.isolate(monkeypatch, root, SMALL)
        status = cli.main(["train", "--data-dir", small, "--out", str(root / "run"), "--epochs", "2"])
        assert status == 0
        yield small, str(root / "run")


@pytest.fixture
def small(_isolated, capsys):
    capsys.readouterr()   # the module's training run printed its table
    return _isolated[0]


def run(capsys, *argv):
    """main(argv) -> (status, stdout, stderr)."""
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def one_line_error(err):
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def train(capsys, small, out, *flags):
    status, _, err = run(capsys, "train", "--data-dir", small, "--out", out, "--epochs", 2, *flags)
    assert status == 0, err
    return str(out)


@pytest.fixture
def trained(_isolated, small):
    return _isolated[1]


def small_test_set(small):
    _, _, X_test, y_test = load_fashion_mnist(small)
    return X_test, y_test


# --------------------------------------------------------------------------- load_model

@pytest.mark.parametrize("flags", [(), ("--model", "mlp", "--hidden", "8", "--dropout", "0.3", "--dtype", "float64"),
                                   ("--model", "lenet", "--batch-size", "300"),
                                   ("--model", "cnn", "--hidden", "16", "--batch-size", "300")])
def test_load_model_from_folder_and_file_gives_the_trained_model(small, tmp_path, capsys, flags):
    out = train(capsys, small, tmp_path / "run", *flags)
    ckpt = T.load_checkpoint(os.path.join(out, "checkpoint.npz"))
    for path in (out, os.path.join(out, "checkpoint.npz")):
        model = npnet.load_model(path)
        assert isinstance(model, nn.Sequential)
        assert sorted(model.params) == sorted(ckpt.params)
        for k, v in ckpt.params.items():
            np.testing.assert_array_equal(model.params[k], v)
            assert model.params[k].dtype == v.dtype
        assert {k: v.tobytes() for k, v in model.buffers.items()} == {k: v.tobytes() for k, v in ckpt.buffers.items()}
    X_test, y_test = small_test_set(small)
    x = inference.prepare_images(X_test, dtype=model.dtype)
    # The loaded model scores the test set exactly as training's last evaluation did.
    acc = float(np.mean(model(x).argmax(axis=1) == y_test))
    assert acc == pytest.approx(ckpt.metrics[-1].test_acc, abs=1e-12)
    # Inference mode: dropout off, so two calls agree.
    np.testing.assert_array_equal(model(x), model(x))


def _fit_without_settings(tmp_path, model):
    path = str(tmp_path / "plain.npz")
    rng = np.random.default_rng(1)
    X = rng.random((32, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 32)
    T.fit(model, nn.CrossEntropyLoss(), optim.SGD(model.params, lr=0.1), DataLoader(X, y, 8),
          DataLoader(X, y, 8), 1, checkpoint_path=path)
    return path


@pytest.mark.parametrize("name", ["softmax", "mlp"])
def test_load_model_reads_a_checkpoint_without_settings_off_its_shapes(tmp_path, name):
    model = T.build_model(name, hidden=12, rng=np.random.default_rng(0), dtype=np.float64)
    path = _fit_without_settings(tmp_path, model)
    loaded = npnet.load_model(path)
    x = np.random.default_rng(2).random((3, 1, 28, 28))
    np.testing.assert_array_equal(loaded(x), model(x))


@pytest.mark.parametrize("name, hidden", [("lenet", None), ("cnn", 12)])
def test_load_model_reads_a_convolutional_checkpoint_without_settings_off_its_shapes(tmp_path, name, hidden):
    model = T.build_model(name, hidden=hidden, rng=np.random.default_rng(0), dtype=np.float64)
    path = _fit_without_settings(tmp_path, model)
    loaded = npnet.load_model(path)
    assert {k: v.tobytes() for k, v in loaded.buffers.items()} == {k: v.tobytes() for k, v in model.buffers.items()}
    x = np.random.default_rng(2).random((3, 1, 28, 28))
    np.testing.assert_array_equal(loaded(x), model(x))


@pytest.fixture(scope="module")
def cnn_run(_isolated, tmp_path_factory):
    """A 2-epoch cnn run on the module's small dataset (2 batches an epoch)."""
    out = str(tmp_path_factory.mktemp("cnn") / "run")
    assert cli.main(["train", "--data-dir", _isolated[0], "--out", out, "--epochs", "2", "--model", "cnn",
                     "--hidden", "16", "--batch-size", "300"]) == 0
    return out


def test_a_loaded_cnn_normalizes_with_its_running_statistics(small, cnn_run):
    """Inference mode: each image's logits are its own, whatever else is in the batch (a BatchNorm
    in training mode would normalize with the batch's statistics instead)."""
    model = npnet.load_model(cnn_run)
    assert int(model.buffers["1.num_batches_tracked"]) == 4
    x = inference.prepare_images(small_test_set(small)[0][:20])
    alone = np.concatenate([model(x[i:i + 1]) for i in range(3)])
    np.testing.assert_allclose(model(x)[:3], alone, rtol=1e-5, atol=1e-5)
    batch_stats, _ = model.forward(x, train=True)   # what the training mode would give: other numbers
    assert np.abs(batch_stats[:3] - alone).max() > 1e-3


def test_predict_with_a_cnn_run(small, cnn_run, tmp_path, capsys, monkeypatch):
    X_test, _ = small_test_set(small)
    monkeypatch.chdir(tmp_path)
    np.save("a.npy", X_test[0])
    np.save("b.npy", X_test[1])
    status, stdout, stderr = run(capsys, "predict", cnn_run, "a.npy", "b.npy")
    assert status == 0, stderr
    expected = _expected_top3(npnet.load_model(cnn_run), [X_test[0], X_test[1]])
    assert _prediction(stdout, "a.npy") == expected[0] and _prediction(stdout, "b.npy") == expected[1]


def test_load_model_refuses_an_unknown_layout_without_settings(tmp_path):
    model = T.build_model("mlp", hidden=12, dropout=0.5, rng=np.random.default_rng(0))   # params 1.* and 4.*
    path = _fit_without_settings(tmp_path, model)
    with pytest.raises(CheckpointError, match="restore"):
        npnet.load_model(path)


def test_load_model_errors(tmp_path, trained):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="holds no checkpoint.npz"):
        npnet.load_model(empty)
    with pytest.raises(CheckpointError, match="no such file"):
        npnet.load_model(tmp_path / "missing.npz")
    with pytest.raises(TypeError, match="path"):
        npnet.load_model(None)
    bad = tmp_path / "bad.npz"
    data = bytearray(open(os.path.join(trained, "checkpoint.npz"), "rb").read())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        npnet.load_model(bad)


def test_load_model_refuses_settings_that_build_no_model(tmp_path, trained):
    ckpt = T.load_checkpoint(os.path.join(trained, "checkpoint.npz"))
    config = dict(ckpt.config, settings=dict(ckpt.config["settings"], model="bogus"))
    model = npnet.load_model(trained)
    path = str(tmp_path / "tampered.npz")   # consistent: save_checkpoint computes a valid checksum
    T.save_checkpoint(path, model=model, optimizer=optim.SGD(model.params, lr=0.1), epoch=ckpt.epoch,
                      rng={}, metrics=ckpt.metrics, config=config)
    with pytest.raises(CheckpointError, match=r"unknown setting: model='bogus'"):
        npnet.load_model(path)


# --------------------------------------------------------------------------- helpers

def test_prepare_images_is_the_training_conversion():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    before = X.copy()
    expected, _ = next(iter(DataLoader(X, np.zeros(7, np.int64), 7)))
    got = inference.prepare_images(X)
    assert got.dtype == np.float32 and got.shape == (7, 1, 28, 28)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got, (X.astype(np.float32) / np.float32(255))[:, None])
    np.testing.assert_array_equal(X, before)
    got64 = inference.prepare_images(X[:, None], dtype=np.float64)
    assert got64.dtype == np.float64
    np.testing.assert_array_equal(got64, expected.astype(np.float64))   # as train_epoch casts a batch
    floats = rng.random((2, 28, 28))
    np.testing.assert_array_equal(inference.prepare_images(floats, dtype=np.float64)[:, 0], floats)


@pytest.mark.parametrize("images, error, match", [
    (np.full((1, 28, 28), 1.5, np.float32), ValueError, r"\[0, 1\]"),
    (np.full((1, 28, 28), np.nan), ValueError, r"\[0, 1\]"),
    (np.zeros((1, 3, 28, 28), np.uint8), ValueError, "images"),
    (np.zeros((28,), np.uint8), ValueError, "images"),
    (np.zeros((1, 28, 28), np.int64), TypeError, "images"),
    ([[0]], TypeError, "images"),
])
def test_prepare_images_refuses(images, error, match):
    with pytest.raises(error, match=match):
        inference.prepare_images(images)


def test_topk_is_the_softmax_ranking():
    torch = pytest.importorskip("torch")
    logits = np.random.default_rng(0).standard_normal((5, 10))
    classes, probs = inference.topk(logits, 3)
    p, c = torch.topk(torch.softmax(torch.from_numpy(logits), dim=1), 3, dim=1)
    np.testing.assert_array_equal(classes, c.numpy())
    np.testing.assert_allclose(probs, p.numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="k"):
        inference.topk(logits, 11)
    with pytest.raises(TypeError, match="logits"):
        inference.topk(logits.astype(np.int64), 3)


def test_confusion_matrix_counts_true_against_predicted():
    model = T.build_model("softmax", rng=np.random.default_rng(0))
    rng = np.random.default_rng(1)
    X = rng.integers(0, 256, (50, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, 50)
    confusion = inference.confusion_matrix(model, DataLoader(X, y, 16))
    predicted = model(inference.prepare_images(X)).argmax(axis=1)
    expected = np.zeros((10, 10), np.int64)
    for t, p in zip(y, predicted):
        expected[t, p] += 1
    np.testing.assert_array_equal(confusion, expected)
    with pytest.raises(ValueError, match="labels"):
        inference.confusion_matrix(model, DataLoader(X, y + 10, 16))


def test_plot_confusion_writes_a_png_and_checks_its_arguments(tmp_path):
    confusion = np.arange(9).reshape(3, 3)
    path = plots.plot_confusion(confusion, tmp_path / "c.png", class_names=["a", "b", "c"], title="t")
    assert open(path, "rb").read(8) == PNG_MAGIC
    with pytest.raises(TypeError, match="confusion"):
        plots.plot_confusion(confusion.astype(float), tmp_path / "x.png")
    with pytest.raises(ValueError, match="confusion"):
        plots.plot_confusion(np.zeros((2, 3), int), tmp_path / "x.png")
    with pytest.raises(ValueError, match="class_names"):
        plots.plot_confusion(confusion, tmp_path / "x.png", class_names=["a"])
    assert not (tmp_path / "x.png").exists()


# --------------------------------------------------------------------------- npnet eval

ROW = re.compile(r"^\s+(\d)\s+(.+?)\s+(\d+)\s+(\d+)\s+([\d.]+|-)\s+(.+)$")


def parse_eval(stdout):
    m = re.search(r"test set: (\d+) images; test loss ([\d.]+), test accuracy ([\d.]+)", stdout)
    rows = [ROW.match(line).groups() for line in stdout.splitlines() if ROW.match(line)]
    return int(m.group(1)), float(m.group(2)), float(m.group(3)), rows


@pytest.mark.parametrize("flags", [(), ("--model", "mlp", "--hidden", "8", "--dtype", "float64", "--batch-size", "64"),
                                   ("--model", "lenet", "--batch-size", "300")])
def test_eval_prints_what_evaluate_computes(small, tmp_path, capsys, flags):
    out = train(capsys, small, tmp_path / "run", *flags)
    status, stdout, stderr = run(capsys, "eval", out)
    assert status == 0, stderr
    assert stderr == ""
    n, loss, acc, rows = parse_eval(stdout)

    model = npnet.load_model(out)
    X_test, y_test = small_test_set(small)
    batch_size = json.load(open(os.path.join(out, "config.json")))["settings"]["batch_size"]
    direct = T.evaluate(model, DataLoader(X_test, y_test, batch_size), nn.CrossEntropyLoss())
    assert n == direct.samples == 200
    assert loss == round(direct.loss, 4) and acc == round(direct.accuracy, 4)
    assert f"test accuracy {direct.accuracy:.4f}" in stdout
    # The per-class table: every class, the course's names, counts that add up to the confusion matrix.
    assert [r[1] for r in rows] == list(FASHION_MNIST_LABELS)
    confusion = inference.confusion_matrix(model, DataLoader(X_test, y_test, 256))
    assert [int(r[2]) for r in rows] == np.bincount(y_test, minlength=10).tolist() == confusion.sum(1).tolist()
    assert [int(r[3]) for r in rows] == np.diag(confusion).tolist()
    assert sum(int(r[3]) for r in rows) == round(direct.accuracy * n)
    for r, c in zip(rows, range(10)):
        total = confusion[c].sum()
        assert r[4] == (f"{confusion[c, c] / total:.4f}" if total else "-")
    with open(os.path.join(out, "confusion.png"), "rb") as f:
        assert f.read(8) == PNG_MAGIC
    assert f"wrote {os.path.join(out, 'confusion.png')}" in stdout


def test_eval_uses_data_dir_over_the_runs_data(small, trained, tmp_path, capsys):
    other = idxdata.make_dataset(tmp_path / "other", SMALL, seed=5)
    status, stdout, stderr = run(capsys, "eval", trained, "--data-dir", other)
    assert status == 0, stderr
    _, loss, acc, _ = parse_eval(stdout)
    _, _, X_test, y_test = load_fashion_mnist(other)
    direct = T.evaluate(npnet.load_model(trained), DataLoader(X_test, y_test, 256), nn.CrossEntropyLoss())
    assert (loss, acc) == (round(direct.loss, 4), round(direct.accuracy, 4))
    assert not np.array_equal(X_test, small_test_set(small)[0])


def test_eval_refusals_are_one_line_exit_2(small, trained, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    status, _, err = run(capsys, "eval", empty)
    assert status == 2 and "checkpoint.npz" in one_line_error(err)
    status, _, err = run(capsys, "eval", tmp_path / "nowhere")
    assert status == 2 and "nowhere" in one_line_error(err)
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "checkpoint.npz").write_bytes(b"PK\x03\x04 not really a zip")
    status, _, err = run(capsys, "eval", corrupt)
    assert status == 2 and "corrupt" in one_line_error(err)
    status, _, err = run(capsys, "eval", trained, "--data-dir", tmp_path / "no-data")
    assert status == 2
    one_line_error(err)
    assert not (empty / "confusion.png").exists()


# --------------------------------------------------------------------------- npnet predict

def _expected_top3(model, images):
    x = inference.prepare_images(np.stack(images), dtype=model.dtype)
    classes, probs = inference.topk(model(x), 3)
    return [" ".join(f"{FASHION_MNIST_LABELS[c]} {p:.3f}" for c, p in zip(cs, ps)) for cs, ps in zip(classes, probs)]


def _prediction(stdout, name):
    line = next(line for line in stdout.splitlines() if line.startswith(name + " "))
    return " ".join(line[len(name):].split())


def test_predict_reads_png_jpeg_and_npy(small, trained, tmp_path, capsys, monkeypatch):
    Image = pytest.importorskip("PIL.Image")
    X_test, _ = small_test_set(small)
    a, b, c = X_test[:3]
    files = {}
    files["gray.png"] = a
    Image.fromarray(a).save(tmp_path / "gray.png")
    files["gray.jpg"] = None   # lossy: compared with what Pillow reads back
    Image.fromarray(b).save(tmp_path / "gray.jpg")
    np.save(tmp_path / "plain.npy", c)
    files["plain.npy"] = c
    np.save(tmp_path / "chw.npy", a[None])
    files["chw.npy"] = a
    np.save(tmp_path / "hwc.npy", b[:, :, None])
    files["hwc.npy"] = b
    np.save(tmp_path / "ints.npy", c.astype(np.int64))
    files["ints.npy"] = c
    np.save(tmp_path / "floats.npy", c / np.float32(255))
    files["floats.npy"] = c / np.float32(255)
    monkeypatch.chdir(tmp_path)
    status, stdout, stderr = run(capsys, "predict", trained, *files)
    assert status == 0, stderr
    assert "note:" not in stdout   # nothing was converted
    files["gray.jpg"] = np.asarray(Image.open(tmp_path / "gray.jpg"))
    model = npnet.load_model(trained)
    for name, image in files.items():
        if image.dtype == np.uint8:
            expected = _expected_top3(model, [image])[0]
        else:   # floats in [0, 1] go in as they are; ints 0..255 as uint8
            x = image.astype(np.float32)[None, None] if image.dtype.kind == "f" else \
                inference.prepare_images(image.astype(np.uint8)[None])
            cs, ps = inference.topk(model(x), 3)
            expected = " ".join(f"{FASHION_MNIST_LABELS[k]} {p:.3f}" for k, p in zip(cs[0], ps[0]))
        assert _prediction(stdout, name) == expected, name


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P"])
def test_predict_converts_colour_images_with_a_note(small, trained, tmp_path, capsys, mode):
    Image = pytest.importorskip("PIL.Image")
    gray = Image.fromarray(small_test_set(small)[0][0])
    gray.convert(mode).save(tmp_path / "colour.png")
    status, stdout, stderr = run(capsys, "predict", trained, tmp_path / "colour.png")
    assert status == 0, stderr
    assert re.search(rf"^note: .*colour.png: {mode} image converted to grayscale", stdout, re.M)
    model = npnet.load_model(trained)
    expected = _expected_top3(model, [np.asarray(Image.open(tmp_path / "colour.png").convert("L"))])[0]
    assert _prediction(stdout, str(tmp_path / "colour.png")) == expected


def test_predict_notes_a_light_background(small, trained, tmp_path, capsys):
    image = 255 - small_test_set(small)[0][0]
    np.save(tmp_path / "inverted.npy", image)
    status, stdout, _ = run(capsys, "predict", trained, tmp_path / "inverted.npy")
    assert status == 0
    assert "background looks light" in stdout
    np.save(tmp_path / "dark.npy", small_test_set(small)[0][0])
    status, stdout, _ = run(capsys, "predict", trained, tmp_path / "dark.npy", "--top", 5)
    assert status == 0 and "note:" not in stdout
    assert len(re.findall(r"\d\.\d{3}", _prediction(stdout, str(tmp_path / "dark.npy")))) == 5


def _refusals(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "big.png")
    Image.fromarray(np.zeros((28, 28), np.uint16) + 300).save(tmp_path / "deep.png")   # 16-bit grayscale
    (tmp_path / "text.png").write_text("not an image")
    np.save(tmp_path / "two.npy", np.zeros((2, 28, 28), np.uint8))
    np.save(tmp_path / "rgb.npy", np.zeros((3, 28, 28), np.uint8))
    np.save(tmp_path / "over.npy", np.full((28, 28), 2.0))
    np.save(tmp_path / "nan.npy", np.full((28, 28), np.nan, np.float32))
    np.save(tmp_path / "negative.npy", np.full((28, 28), -1, np.int64))
    np.save(tmp_path / "bools.npy", np.zeros((28, 28), bool))
    return {"big.png": "32x32", "deep.png": "image", "text.png": "neither", "two.npy": r"\(2, 28, 28\)",
            "rgb.npy": r"\(3, 28, 28\)", "over.npy": r"\[0, 1\]", "nan.npy": r"\[0, 1\]", "negative.npy": "0..255",
            "bools.npy": "bool", "missing.png": "cannot read"}


def test_predict_refusals_are_one_line_exit_2(trained, tmp_path, capsys):
    for name, match in _refusals(tmp_path).items():
        status, stdout, err = run(capsys, "predict", trained, tmp_path / name)
        assert status == 2, name
        line = one_line_error(err)
        assert line.startswith("npnet predict: error: ") and name in line and re.search(match, line), line
        assert stdout == ""
    # One bad file among good ones: nothing is predicted.
    np.save(tmp_path / "good.npy", np.zeros((28, 28), np.uint8))
    status, stdout, err = run(capsys, "predict", trained, tmp_path / "good.npy", tmp_path / "big.png")
    assert status == 2 and stdout == "" and "big.png" in one_line_error(err)
    status, _, err = run(capsys, "predict", trained, tmp_path / "good.npy", "--top", 11)
    assert status == 2 and "--top" in one_line_error(err)
    status, _, err = run(capsys, "predict", tmp_path / "nowhere", tmp_path / "good.npy")
    assert status == 2 and "nowhere" in one_line_error(err)


def test_read_image_refusals_are_value_errors_naming_the_file(tmp_path):
    for name, match in _refusals(tmp_path).items():
        with pytest.raises(ValueError, match=match) as info:
            inference.read_image(tmp_path / name)
        assert name in str(info.value)


def test_predict_without_pillow_names_the_install_command(trained, tmp_path):
    pytest.importorskip("PIL")
    from PIL import Image

    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "a.png")
    np.save(tmp_path / "a.npy", np.zeros((28, 28), np.uint8))
    code = ("import sys; sys.modules['PIL'] = None; from npnet.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    env = {**os.environ, "PYTHONPATH": ROOT}
    png = subprocess.run([sys.executable, "-c", code, "predict", trained, str(tmp_path / "a.png")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert png.returncode == 2
    assert "pip install Pillow" in one_line_error(png.stderr)
    npy = subprocess.run([sys.executable, "-c", code, "predict", trained, str(tmp_path / "a.npy")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert npy.returncode == 0, npy.stderr   # .npy needs no Pillow


def test_help_says_how_images_must_look(capsys):
    status, stdout, _ = run(capsys, "predict", "--help")
    assert status == 0
    text = " ".join(stdout.split())
    assert "dark background" in text and "28x28" in text and "does not resize" in text
    status, stdout, _ = run(capsys, "--help")
    assert "eval" in stdout and "predict" in stdout
