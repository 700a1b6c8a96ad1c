"""BatchNorm1d, BatchNorm2d and LayerNorm against torch, their buffers, their kernels and their errors.

torch runs on one thread here (the torch_one_thread fixture).
"""
import copy
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import npnet
from npnet import nn, optim
from npnet import train as T
from npnet.data import DataLoader
from npnet.nn import _fast
from npnet.nn import functional as F
from reference import compare, twin
from reference.lockstep import TorchTwin
from badinput import Raises, check_raises, named
from runs import same_numbers, synthetic
from strategies import dtypes, float_arrays, seeds, torch_one_thread, upstream  # noqa: F401

pytestmark = pytest.mark.usefixtures("torch_one_thread")

BN = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d}
MOMENTA = [0.1, 0.0, 0.5, 1.0, None]


def randn(*shape, seed=0, dtype=np.float64, scale=1.0, shift=0.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale + shift).astype(dtype)


@st.composite
def batch_norms(draw, dtype):
    """A BatchNorm of any of its settings for a drawn (N, C), (N, C, L) or (N, C, H, W) input."""
    ndim = draw(st.sampled_from([2, 3, 4]))
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=ndim, max_size=ndim)))
    m = BN[ndim](shape[1], eps=draw(st.sampled_from([1e-5, 1e-3, 0.5])), momentum=draw(st.sampled_from(MOMENTA)),
                 affine=draw(st.booleans()), track_running_stats=draw(st.booleans()), bias=draw(st.booleans()),
                 dtype=dtype)
    r = np.random.default_rng(draw(seeds))
    if m.params:
        m.load_state_dict({**m.state_dict(), **{k: r.standard_normal(v.shape).astype(dtype) * 2
                                                for k, v in m.params.items()}})
    if m.track_running_stats:
        m.buffers["running_mean"][...] = r.standard_normal(shape[1])
        m.buffers["running_var"][...] = r.uniform(0.1, 3.0, shape[1])
        m.buffers["num_batches_tracked"][...] = r.integers(0, 4)
    one_per_channel = np.prod(shape) // shape[1] == 1
    train = draw(st.booleans()) and not one_per_channel
    if one_per_channel and not m.track_running_stats:   # the batch's statistics of one value: refused
        shape = (2,) + shape[1:]
    return m, shape, train


# --------------------------------------------------------------------------- against torch

@given(dtype=dtypes, data=st.data())
def test_batch_norm_matches_torch_outputs_gradients_and_buffers(dtype, data):
    m, shape, train = data.draw(batch_norms(dtype))
    x = data.draw(float_arrays(shape, dtype, big=100.0))
    dy = data.draw(upstream(shape, dtype))
    result = compare(m, x, dy, dtype=dtype, train=train)
    assert result.ok, f"{m!r} train={train}\n{result}"
    if train and m.track_running_stats:
        assert {"buffer:running_mean", "buffer:running_var", "buffer:num_batches_tracked"} <= set(result.max_rel)


@given(dtype=dtypes, data=st.data())
def test_layer_norm_matches_torch(dtype, data):
    shape = tuple(data.draw(st.lists(st.integers(1, 5), min_size=1, max_size=4)))
    D = data.draw(st.integers(1, len(shape)))
    m = nn.LayerNorm(shape[len(shape) - D:], eps=data.draw(st.sampled_from([1e-5, 0.1])),
                     elementwise_affine=data.draw(st.booleans()), bias=data.draw(st.booleans()), dtype=dtype)
    if m.params:
        m.load_state_dict({k: data.draw(float_arrays(v.shape, dtype, big=30.0)) for k, v in m.params.items()})
    x = data.draw(float_arrays(shape, dtype, big=100.0))
    result = compare(m, x, data.draw(upstream(shape, dtype)), dtype=dtype)
    assert result.ok, f"{m!r}\n{result}"


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (4, 3, 5, 2)])
def test_running_statistics_after_several_steps_and_eval_equal_torch(shape, momentum):
    m = BN[len(shape)](3, momentum=momentum, dtype=np.float64)
    t = twin(m)
    opt, topt = optim.SGD(m.params, lr=0.1), torch.optim.SGD(t.parameters(), lr=0.1)
    for step in range(5):
        x = randn(*shape, seed=step, scale=step + 1, shift=step)
        dy = randn(*shape, seed=100 + step)
        y, backward = m.forward(x)
        _, grads = backward(dy)
        opt.step(grads)
        xt = torch.from_numpy(x)
        topt.zero_grad()
        yt = t(xt)
        yt.backward(torch.from_numpy(dy))
        topt.step()
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    state = t.state_dict()
    assert int(m.buffers["num_batches_tracked"]) == int(state["num_batches_tracked"]) == 5
    for k in ("running_mean", "running_var", "weight", "bias"):
        np.testing.assert_allclose(m.state_dict()[k], state[k].numpy(), rtol=1e-12, atol=1e-12, err_msg=k)
    t.eval()
    x = randn(*shape, seed=9)
    np.testing.assert_allclose(m(x), t(torch.from_numpy(x)).detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(m(x), m.forward(x, train=False)[0])


# --------------------------------------------------------------------------- buffers and state_dict

def test_buffers_are_torchs_not_params_and_state_dict_round_trips_with_torch_both_ways():
    r = np.random.default_rng(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(6, 4, rng=r), nn.BatchNorm1d(4), nn.ReLU(), nn.LayerNorm(4))
    assert sorted(net.params) == ["1.bias", "1.weight", "2.bias", "2.weight", "4.bias", "4.weight"]
    assert sorted(net.buffers) == ["2.num_batches_tracked", "2.running_mean", "2.running_var"]
    assert net.buffers["2.running_mean"] is net[2].buffers["running_mean"]
    nbt = net.state_dict()["2.num_batches_tracked"]
    assert isinstance(nbt, np.ndarray) and nbt.shape == () and nbt.dtype == np.int64
    net.forward(randn(5, 2, 3, dtype=np.float32))
    # npnet -> torch: every key and shape, strictly
    t = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, 4), torch.nn.BatchNorm1d(4), torch.nn.ReLU(),
                            torch.nn.LayerNorm(4))
    t.load_state_dict({k: torch.from_numpy(v) for k, v in net.state_dict().items()})
    assert int(t[2].num_batches_tracked) == 1
    # torch -> npnet, after torch trained a step
    t.train()
    t(torch.randn(7, 2, 3)).sum().backward()
    net.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})
    for k, v in t.state_dict().items():
        np.testing.assert_array_equal(net.state_dict()[k], v.numpy())
    assert int(net.buffers["2.num_batches_tracked"]) == 2
    # no buffers without running statistics, as torch
    assert nn.BatchNorm2d(3, track_running_stats=False).buffers == {}
    assert sorted(nn.BatchNorm2d(3, affine=False).state_dict()) == sorted(torch.nn.BatchNorm2d(3, affine=False).state_dict())
    assert sorted(nn.BatchNorm1d(3, bias=False).state_dict()) == sorted(torch.nn.BatchNorm1d(3, bias=False).state_dict())


def test_optimizers_never_see_buffers_and_to_casts_float_buffers_only():
    m = nn.BatchNorm1d(3)
    opt = optim.SGD(m.params, lr=0.1)
    assert set(opt.params) == {"weight", "bias"}
    m.to(np.float64)
    assert m.buffers["running_mean"].dtype == m.buffers["running_var"].dtype == np.float64
    assert m.buffers["num_batches_tracked"].dtype == np.int64
    with pytest.raises(TypeError, match=named("state_dict['num_batches_tracked']")):
        m.load_state_dict({**m.state_dict(), "num_batches_tracked": np.array(1.5)})
    with pytest.raises(ValueError, match=r"missing \['running_mean'\]"):
        m.load_state_dict({k: v for k, v in m.state_dict().items() if k != "running_mean"})


def test_training_forward_updates_buffers_in_place_and_earlier_closures_keep_theirs():
    m = nn.BatchNorm1d(3, dtype=np.float64)
    m.buffers["running_mean"][...] = [1.0, -1.0, 2.0]
    held = m.buffers["running_mean"]
    x, dy = randn(4, 3), randn(4, 3, seed=1)
    before = x.copy()
    _, eval_backward = m.forward(x, train=False)
    first = eval_backward(dy)
    m.forward(randn(4, 3, seed=2) * 5)                     # training: the buffers move
    assert m.buffers["running_mean"] is held and not np.allclose(held, [1.0, -1.0, 2.0])
    second = eval_backward(dy)                             # the eval closure keeps the statistics it used
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(x, before)
    _, train_backward = m.forward(x)
    a, b = train_backward(dy), train_backward(dy)
    np.testing.assert_array_equal(a[0], b[0])


def test_eval_without_running_statistics_uses_the_batch_and_momentum_none_is_the_cumulative_average():
    m = nn.BatchNorm1d(2, track_running_stats=False, dtype=np.float64)
    x = randn(5, 2, shift=3)
    np.testing.assert_allclose(m(x).mean(axis=0), 0, atol=1e-12)
    c = nn.BatchNorm1d(2, momentum=None, dtype=np.float64)
    xs = [randn(5, 2, seed=s, shift=s) for s in range(3)]
    for x in xs:
        c.forward(x)
    np.testing.assert_allclose(c.buffers["running_mean"], np.mean([x.mean(axis=0) for x in xs], axis=0))


# --------------------------------------------------------------------------- edge shapes, inputs

@pytest.mark.parametrize("make, shape", [(lambda: nn.BatchNorm1d(3), (1, 3)), (lambda: nn.BatchNorm2d(3), (1, 3, 1, 1)),
                                         (lambda: nn.BatchNorm1d(3, track_running_stats=False), (1, 3))])
def test_one_value_per_channel_in_training_is_torchs_value_error(make, shape):
    m = make()
    x = randn(*shape, dtype=np.float32)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        m.forward(x)
    t = twin(m)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        t(torch.from_numpy(x))
    if m.track_running_stats:   # inference with the running statistics takes a batch of 1
        assert compare(m, x, train=False).ok


@pytest.mark.parametrize("make, shape", [(lambda: nn.BatchNorm1d(3), (1, 3, 2)), (lambda: nn.BatchNorm2d(2), (1, 2, 3, 1)),
                                         (lambda: nn.LayerNorm(4), (4,)), (lambda: nn.LayerNorm((2, 3)), (2, 3)),
                                         (lambda: nn.LayerNorm(1), (3, 1))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_of_one_unbatched_layer_norm_read_only_and_strided_inputs(make, shape, dtype):
    m = make().to(dtype)
    x = randn(*shape, dtype=dtype)
    assert compare(m, x, dtype=dtype).ok
    ro = x.copy()
    ro.flags.writeable = False
    big = np.zeros(shape + (2,), dtype)
    big[..., 0] = x
    for other in (ro, big[..., 0]):
        a, b = copy.deepcopy(m), copy.deepcopy(m)
        np.testing.assert_array_equal(a.forward(other)[0], b.forward(x)[0])


def test_empty_batch_as_torch():
    m = nn.BatchNorm1d(3)
    y, backward = m.forward(np.zeros((0, 3), np.float32))
    t = torch.nn.BatchNorm1d(3)
    t(torch.zeros(0, 3))
    assert y.shape == (0, 3)
    for k, v in t.state_dict().items():
        np.testing.assert_array_equal(m.state_dict()[k], v.numpy())
    dx, grads = backward(np.zeros((0, 3), np.float32))
    assert dx.shape == (0, 3) and not grads["weight"].any()


@pytest.mark.parametrize("module, shape, train", [
    (lambda: nn.BatchNorm1d(3, momentum=None), (4, 3), True), (lambda: nn.BatchNorm1d(2, affine=False), (3, 2, 4), True),
    (lambda: nn.BatchNorm2d(2), (3, 2, 2, 3), True), (lambda: nn.BatchNorm2d(2), (3, 2, 2, 3), False),
    (lambda: nn.BatchNorm1d(3, track_running_stats=False), (4, 3), False),
    (lambda: nn.LayerNorm((2, 3)), (4, 2, 3), True), (lambda: nn.LayerNorm(3, bias=False), (3,), True)])
def test_gradcheck(module, shape, train):
    m = module()
    if m.params:
        m.load_state_dict({**m.state_dict(), **{k: randn(*v.shape, seed=3, dtype=v.dtype) for k, v in m.params.items()}})
    assert npnet.gradcheck(m, randn(*shape, seed=4, scale=2, shift=1), train=train).ok


# --------------------------------------------------------------------------- the fast twin

@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_batch_norm_equals_the_plain_kernel(seed, dtype):
    r = np.random.default_rng(seed)
    shape = [(7, 3), (5, 4, 9), (3, 2, 5, 7), (1, 3, 1, 2), (2, 1, 1, 1), (6, 5, 3, 3)][seed]
    C = shape[1]
    X = (r.standard_normal(shape) * r.choice([1e-3, 1, 30]) + r.choice([0, 5])).astype(dtype)
    if seed % 2:
        X = np.asfortranarray(X)[..., ::1] if X.ndim > 2 else X.T.copy().T   # non-contiguous layouts
    dY = r.standard_normal(shape).astype(dtype)
    rm, rv = r.standard_normal(C).astype(dtype), r.uniform(0.5, 2, C).astype(dtype)
    w, b = r.standard_normal(C).astype(dtype), r.standard_normal(C).astype(dtype)
    n = X.size // C
    for training in ([True, False] if n > 1 else [False]):
        for weight, bias in ((w, b), (None, None)):
            args = (X, rm, rv, weight, bias, training, 0.3, 1e-5)
            saved = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
            *plain, plain_bw = F.batch_norm_with_backward.plain(*args)
            *fast, fast_bw = _fast.batch_norm_with_backward(*args)
            tol = 64 * np.finfo(dtype).eps * np.sqrt(n)
            for p, f in zip(plain + list(plain_bw(dY)), fast + list(fast_bw(dY))):
                scale = max(1.0, float(np.abs(p).max()))
                np.testing.assert_allclose(f, p, rtol=0, atol=tol * scale)
                assert f.dtype == dtype
            assert fast_bw(dY, need_dX=False)[0] is None
            for a, s in zip(args, saved):
                if isinstance(a, np.ndarray):
                    np.testing.assert_array_equal(a, s)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(37, 3, 9, 10), (20, 5, 14, 14), (9, 4, 3, 3)])
def test_fast_batch_norm_by_blocks_of_samples_equals_the_plain_kernel_and_one_block(monkeypatch, shape, dtype):
    """Long channels (H W >= 64, a dot per sample and channel) and short ones, over several blocks.
    (Not bit for bit against one block: einsum's sum of a row may round differently where
    the row sits in memory; each within the summation-order tolerance of the plain kernel.)"""
    r = np.random.default_rng(7)
    C, n = shape[1], shape[0] * shape[2] * shape[3]
    X = (r.standard_normal(shape) * 3 + 2).astype(dtype)
    dY = r.standard_normal(shape).astype(dtype)
    rm, rv = r.standard_normal(C).astype(dtype), r.uniform(0.5, 2, C).astype(dtype)
    w, b = r.standard_normal(C).astype(dtype), r.standard_normal(C).astype(dtype)
    for training in (True, False):
        args = (X, rm, rv, w, b, training, 0.1, 1e-5)
        monkeypatch.setattr(_fast.normalization, "_BLOCK_BYTES", 1 << 40)
        *whole, whole_bw = _fast.batch_norm_with_backward(*args)
        monkeypatch.setattr(_fast.normalization, "_BLOCK_BYTES", X[0].nbytes * 3)   # blocks of 3 samples
        *blocked, blocked_bw = _fast.batch_norm_with_backward(*args)
        *plain, plain_bw = F.batch_norm_with_backward.plain(*args)
        tol = 64 * np.finfo(dtype).eps * np.sqrt(n)
        for p, f, one in zip(plain + list(plain_bw(dY)), blocked + list(blocked_bw(dY)), whole + list(whole_bw(dY))):
            for a in (f, one):
                np.testing.assert_allclose(a, p, rtol=0, atol=tol * max(1.0, float(np.abs(p).max())))
                assert a.dtype == dtype


def test_fast_batch_norm_on_strided_input_equals_contiguous():
    X = randn(4, 3, 6, 2, dtype=np.float32)
    strided = np.zeros((4, 3, 6, 4), np.float32)[..., ::2]
    strided[...] = X
    a, b = nn.BatchNorm2d(3), nn.BatchNorm2d(3)
    np.testing.assert_array_equal(a.forward(strided)[0], b.forward(X)[0])


# --------------------------------------------------------------------------- checkpoints and lockstep

def _bn_run(seed=0):
    r = np.random.default_rng(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 16, rng=r), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10, rng=r))
    opt = optim.SGD(model.params, lr=0.1, momentum=0.9)
    X, y = synthetic(96)
    Xt, yt = synthetic(40, seed=1)
    loader = DataLoader(X, y, 32, shuffle=True, rng=np.random.default_rng(seed + 1))
    return model, opt, loader, DataLoader(Xt, yt, 20)


def test_resume_with_batch_norm_is_bit_identical_to_an_uninterrupted_run(tmp_path):
    model, opt, loader, test_loader = _bn_run()
    straight = T.fit(model, nn.CrossEntropyLoss(), opt, loader, test_loader, 3)
    path = str(tmp_path / "c.npz")
    first = _bn_run()
    T.fit(first[0], nn.CrossEntropyLoss(), first[1], first[2], first[3], 1, checkpoint_path=path)
    assert sorted(T.load_checkpoint(path).buffers) == ["2.num_batches_tracked", "2.running_mean", "2.running_var"]
    again = _bn_run(seed=7)   # other weights and generators: only the checkpoint can make them agree
    resumed = T.fit(again[0], nn.CrossEntropyLoss(), again[1], again[2], again[3], 3, checkpoint_path=path,
                    resume=True)
    assert same_numbers(again[0].state_dict(), model.state_dict())
    assert int(again[0].buffers["2.num_batches_tracked"]) == 9
    assert [(r.train_loss, r.test_acc, r.test_loss) for r in resumed.history] == \
           [(r.train_loss, r.test_acc, r.test_loss) for r in straight.history]
    loaded = T.load_checkpoint(path)
    fresh = _bn_run(seed=3)[0]
    loaded.restore(model=fresh)
    x = synthetic(5, seed=2)[0].astype(np.float32) / 255
    np.testing.assert_array_equal(fresh(x), model(x))   # eval mode reads the restored running statistics


def test_checkpoint_without_buffers_refused_for_a_model_with_them(tmp_path):
    path = str(tmp_path / "c.npz")
    r = np.random.default_rng(0)
    plain = nn.Sequential(nn.Flatten(), nn.Linear(4, 3, rng=r))
    T.save_checkpoint(path, model=plain, optimizer=optim.SGD(plain.params, lr=0.1), epoch=0, rng=r)
    ckpt = T.load_checkpoint(path)
    assert ckpt.buffers == {}
    ckpt.restore(model=nn.Sequential(nn.Flatten(), nn.Linear(4, 3)))   # no buffers on either side: loads
    with_bn = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.BatchNorm1d(3, affine=False))
    with pytest.raises(npnet.errors.CheckpointError, match="missing buffers"):
        ckpt.restore(model=with_bn)


def test_lockstep_twin_follows_the_running_statistics():
    model, opt, loader, test_loader = _bn_run()
    tw = TorchTwin(model, opt)
    T.fit(model, nn.CrossEntropyLoss(), opt, loader, test_loader, 2, callbacks=[tw])
    assert len(tw.epoch_diffs) == 2 and max(d for _, _, d in tw.epoch_diffs) < 1e-3
    assert int(tw.net[2].num_batches_tracked) == int(model.buffers["2.num_batches_tracked"]) == 6
    model.buffers["2.running_var"][0] += 1   # the diff sees the buffers
    assert tw.param_diff() >= 1 - 1e-3


# --------------------------------------------------------------------------- bad inputs

X32 = randn(4, 3, dtype=np.float32)
BAD = [
    # id, call, exception, the argument the message names
    ("BatchNorm1d(num_features=0)", lambda: nn.BatchNorm1d(0), ValueError, "num_features"),
    ("BatchNorm1d(num_features=2.5)", lambda: nn.BatchNorm1d(2.5), TypeError, "num_features"),
    ("BatchNorm1d(eps=-1)", lambda: nn.BatchNorm1d(3, eps=-1), ValueError, "eps"),
    ("BatchNorm1d(eps='1')", lambda: nn.BatchNorm1d(3, eps="1"), TypeError, "eps"),
    ("BatchNorm1d(momentum=1.5)", lambda: nn.BatchNorm1d(3, momentum=1.5), ValueError, "momentum"),
    ("BatchNorm1d(momentum=nan)", lambda: nn.BatchNorm1d(3, momentum=float("nan")), ValueError, "momentum"),
    ("BatchNorm1d(affine=1)", lambda: nn.BatchNorm1d(3, affine=1), TypeError, "affine"),
    ("BatchNorm1d(track_running_stats=None)", lambda: nn.BatchNorm1d(3, track_running_stats=None), TypeError,
     "track_running_stats"),
    ("BatchNorm2d(dtype=float16)", lambda: nn.BatchNorm2d(3, dtype=np.float16), TypeError, "dtype"),
    ("BatchNorm1d input list", lambda: nn.BatchNorm1d(3)(X32.tolist()), TypeError, "input"),
    ("BatchNorm1d input int", lambda: nn.BatchNorm1d(3)(X32.astype(int)), TypeError, "input"),
    ("BatchNorm1d input 1-d", lambda: nn.BatchNorm1d(3)(X32[0]), ValueError, "input"),
    ("BatchNorm1d input 4-d", lambda: nn.BatchNorm1d(3)(X32[:, :, None, None]), ValueError, "input"),
    ("BatchNorm2d input 3-d (unbatched: torch refuses it too)", lambda: nn.BatchNorm2d(3)(X32[:, :, None]),
     ValueError, "input"),
    ("BatchNorm1d wrong channels", lambda: nn.BatchNorm1d(4)(X32), ValueError, "channels"),
    ("BatchNorm1d float64 input", lambda: nn.BatchNorm1d(3)(X32.astype(np.float64)), TypeError, "input"),
    ("BatchNorm1d train=1", lambda: nn.BatchNorm1d(3).forward(X32, train=1), TypeError, "train"),
    ("BatchNorm1d dy shape", lambda: nn.BatchNorm1d(3).forward(X32)[1](X32[:2]), ValueError, "dy"),
    ("BatchNorm1d dy dtype", lambda: nn.BatchNorm1d(3).forward(X32)[1](X32.astype(np.float64)), TypeError, "dy"),
    ("LayerNorm(normalized_shape=-1)", lambda: nn.LayerNorm(-1), ValueError, "normalized_shape"),
    ("LayerNorm(normalized_shape='4')", lambda: nn.LayerNorm("4"), TypeError, "normalized_shape"),
    ("LayerNorm(elementwise_affine=None)", lambda: nn.LayerNorm(3, elementwise_affine=None), TypeError,
     "elementwise_affine"),
    ("LayerNorm(bias=0)", lambda: nn.LayerNorm(3, bias=0), TypeError, "bias"),
    ("LayerNorm wrong trailing shape", lambda: nn.LayerNorm(5)(X32), ValueError, "input"),
    ("LayerNorm float64 input", lambda: nn.LayerNorm(3)(X32.astype(np.float64)), TypeError, "input"),
    ("F.batch_norm training=False without statistics", lambda: F.batch_norm(X32, None, None), ValueError,
     "running_mean"),
    ("F.batch_norm running_mean shape", lambda: F.batch_norm(X32, np.zeros(4, np.float32), np.ones(3, np.float32)),
     ValueError, "running_mean"),
    ("F.batch_norm weight dtype", lambda: F.batch_norm(X32, None, None, np.ones(3), None, True), TypeError, "weight"),
    ("F.batch_norm one value per channel", lambda: F.batch_norm(X32[:1], None, None, training=True), ValueError,
     "value per channel"),
    ("F.layer_norm normalized_shape", lambda: F.layer_norm(X32, (4,)), ValueError, "normalized_shape"),
    ("F.layer_norm_backward dY shape", lambda: F.layer_norm_backward(X32[:2], X32, 3), ValueError, "dY"),
    ("F.batch_norm_backward dY dtype", lambda: F.batch_norm_backward(X32.astype(np.float64), X32, None, None, None,
                                                                     True), TypeError, "dY"),
]


@pytest.mark.parametrize("call, exc, name", [pytest.param(c, e, n, id=i) for i, c, e, n in BAD])
def test_bad_input_names_the_argument(call, exc, name):
    check_raises(Raises(exc, named(name) if " " not in name else name), call)


# --------------------------------------------------------------------------- threads

def _bits(a):
    """The raw bits of a float array (or None), so that -0.0 != +0.0 and NaN payloads count."""
    if a is None:
        return None
    a = np.ascontiguousarray(a)
    return a.view({4: np.int32, 8: np.int64}[a.itemsize])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, special", [
    ((23, 3, 9, 10), False),   # long channels (L = 90 >= 64): per-(sample, channel) sums on the threads
    ((23, 3, 9, 10), True),    # ... with nan, inf and -inf in the input and in dY
    ((29, 5, 4, 4), False),    # short channels (L = 16): the elementwise passes on the threads
    ((41, 7), True),           # BatchNorm1d's (N, C)
])
def test_fast_batch_norm_gives_the_same_bits_for_every_thread_count(monkeypatch, num_threads, shape, special,
                                                                    dtype):
    r = np.random.default_rng(11)
    C = shape[1]
    X = (r.standard_normal(shape) * 3 + 1).astype(dtype)
    dY = r.standard_normal(shape).astype(dtype)
    if special:
        for A in (X, dY):
            flat = A.reshape(-1)
            flat[r.choice(flat.size, 3, replace=False)] = [np.nan, np.inf, -np.inf]
    rm, rv = r.standard_normal(C).astype(dtype), r.uniform(0.5, 2, C).astype(dtype)
    w, b = r.standard_normal(C).astype(dtype), r.standard_normal(C).astype(dtype)
    monkeypatch.setattr(_fast.normalization, "_BLOCK_BYTES", X[0].nbytes * 2)   # blocks of 2 samples
    seen = []
    real_run = _fast.normalization.parallel.run
    monkeypatch.setattr(_fast.normalization.parallel, "run", lambda fn, blocks: seen.append(len(blocks)) or
                        real_run(fn, blocks))
    for training in (True, False):
        for weight, bias in ((w, b), (None, None)):
            args = (X, rm, rv, weight, bias, training, 0.1, 1e-5)
            results = []
            for threads in (1, 2, 3):
                npnet.set_num_threads(threads)
                with np.errstate(invalid="ignore"):
                    *out, backward = _fast.batch_norm_with_backward(*args)
                    results.append([_bits(a) for a in out + list(backward(dY))])
            for other in results[1:]:
                for one, many in zip(results[0], other):
                    np.testing.assert_array_equal(many, one)
    assert min(seen) >= shape[0] // 2   # every pass that ran on the threads had several blocks


def test_fast_batch_norm_keeps_the_callers_errstate_on_every_thread(monkeypatch, num_threads):
    """np.errstate lives in the calling thread's context: the blocks run by other threads
    must see it too (an inf in the last sample gives inf - inf in the last block)."""
    X = randn(12, 2, 8, 8, dtype=np.float32)
    X[-1, 0, 3, 3] = np.inf
    monkeypatch.setattr(_fast.normalization, "_BLOCK_BYTES", X[0].nbytes * 2)
    for threads in (1, 2, 3):
        npnet.set_num_threads(threads)
        with np.errstate(invalid="raise"), pytest.raises(FloatingPointError):
            _fast.batch_norm_with_backward(X, None, None, None, None, True)
        with np.errstate(invalid="ignore"):   # and no warning (an error under this suite's filter)
            Y = _fast.batch_norm_with_backward(X, None, None, None, None, True)[0]
        assert np.isnan(Y[-1, 0, 3, 3])


# --------------------------------------------------------------------------- layer norm's fast twin

def _layer_norm_case(r, shape, D, dtype, special=False):
    X = (r.standard_normal(shape) * r.choice([1e-3, 1, 30]) + r.choice([0, 5])).astype(dtype)
    dY = r.standard_normal(shape).astype(dtype)
    if special:
        for A in (X, dY):
            flat = A.reshape(-1)
            flat[r.choice(flat.size, 3, replace=False)] = [np.nan, np.inf, -np.inf]
    norm = shape[len(shape) - D:]
    w, b = r.standard_normal(norm).astype(dtype), r.standard_normal(norm).astype(dtype)
    return X, dY, norm, w, b


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, D, special", [
    ((7, 5), 1, False), ((3, 4, 6), 2, False), ((2, 3, 4, 5), 1, True), ((5,), 1, False), ((9, 1), 1, False),
    ((40, 33), 1, True), ((4, 2, 3), 3, False)])
@pytest.mark.parametrize("block_rows", [None, 1, 3])
def test_fast_layer_norm_equals_the_plain_kernel(monkeypatch, shape, D, special, block_rows, dtype):
    """nan and inf in the same places, finite values within the summation-order tolerance,
    for one block and for blocks of 1 or 3 rows, on contiguous and strided input."""
    r = np.random.default_rng(len(shape) * 10 + D)
    X, dY, norm, w, b = _layer_norm_case(r, shape, D, dtype, special)
    if block_rows is not None:
        monkeypatch.setattr(_fast.normalization, "_BLOCK_BYTES", block_rows * math.prod(norm) * X.itemsize)
    m = math.prod(norm)
    tol = 64 * np.finfo(dtype).eps * np.sqrt(max(m, X.size // m))
    for Xs in (X, np.asfortranarray(X)):
        for weight, bias in ((w, b), (None, None)):
            saved = (Xs.copy(), dY.copy())
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
                pairs = [(F.layer_norm.plain(Xs, norm, weight, bias, 1e-5),
                          _fast.layer_norm(Xs, norm, weight, bias, 1e-5))]
                plain = F.layer_norm_backward.plain(dY, Xs, norm, weight, 1e-5)
                fast = _fast.layer_norm_backward(dY, Xs, norm, weight, 1e-5)
                assert _fast.layer_norm_backward(dY, Xs, norm, weight, 1e-5, need_dX=False)[0] is None
            pairs += list(zip(plain, fast))
            for p, f in pairs:
                assert f.shape == p.shape and f.dtype == p.dtype == dtype
                for test in (np.isnan, np.isposinf, np.isneginf):
                    np.testing.assert_array_equal(test(f), test(p))
                ok = np.isfinite(p)
                scale = max(1.0, float(np.abs(p[ok]).max(initial=0.0)))
                np.testing.assert_allclose(f[ok], p[ok], rtol=0, atol=tol * scale)
            np.testing.assert_array_equal(Xs, saved[0])
            np.testing.assert_array_equal(dY, saved[1])


def test_layer_norm_runs_the_fast_twin_and_the_plain_one_on_empty_input():
    assert F.layer_norm.fast is _fast.layer_norm and F.layer_norm_backward.fast is _fast.layer_norm_backward
    X = np.zeros((0, 4), np.float32)
    assert F.layer_norm(X, (4,)).shape == (0, 4)
    dX, dW, db = F.layer_norm_backward(X, X, (4,), np.ones(4, np.float32))
    assert dX.shape == (0, 4) and dW.shape == db.shape == (4,)
    np.testing.assert_array_equal(db, 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("special", [False, True])
def test_fast_layer_norm_gives_the_same_bits_for_every_thread_count(monkeypatch, num_threads, special, dtype):
    r = np.random.default_rng(5)
    X, dY, norm, w, b = _layer_norm_case(r, (37, 3, 20), 2, dtype, special)
    monkeypatch.setattr(_fast.normalization, "_BLOCK_BYTES", 2 * X[0].nbytes)   # 19 blocks
    results = []
    for threads in (1, 2, 3):
        npnet.set_num_threads(threads)
        with np.errstate(invalid="ignore", over="ignore"):
            Y = _fast.layer_norm(X, norm, w, b, 1e-5)
            results.append([_bits(a) for a in (Y,) + _fast.layer_norm_backward(dY, X, norm, w, 1e-5)])
    for other in results[1:]:
        for one, many in zip(results[0], other):
            np.testing.assert_array_equal(many, one)


@pytest.mark.parametrize("N, row_bytes", [(256, 18816), (256, 6400), (256, 50176), (256, 1024), (3, 10 ** 7), (7, 1),
                                          (1, 4), (1000, 3000)])
def test_normalization_blocks_cover_every_sample_once_evenly(N, row_bytes):
    blocks = _fast.normalization._blocks(N, row_bytes)
    assert [i for b in blocks for i in range(N)[b]] == list(range(N))
    sizes = [b.stop - b.start for b in blocks]
    assert max(sizes) - min(sizes) <= 1
    assert len(blocks) == 1 or len(blocks) % 2 == 0 or len(blocks) == N   # two threads share them evenly
    assert max(sizes) == 1 or max(sizes) * row_bytes <= _fast.normalization._BLOCK_BYTES + row_bytes
