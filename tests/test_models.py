"""npnet.models: the one model builder builds exactly what the two builders it replaced built.

The oracle below is a frozen copy of those two builders (``npnet.train.build_model``
with its ``_init_linear``, and the studies' ``_common.mlp`` with its ``init_linear``
and ``child_rng``) as they were before the model zoo moved to npnet.models. The
README quotes numbers computed from their models, so every parameter, every
Dropout generator and the state the build leaves ``rng`` in must match bit for bit.
"""
import argparse
import itertools

import numpy as np
import pytest

from npnet import models, nn, train
from npnet.nn import init as nn_init
from npnet.studies import _common


# --------------------------------------------------------------------------- the oracle (frozen copies)

class Oracle:
    INITS_TRAIN = ("normal", "xavier", "kaiming", "torch-default")
    INITS_STUDIES = ("normal", "constant", "xavier", "kaiming", "torch-default")
    ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}

    # npnet/train.py
    @staticmethod
    def _init_linear(layer, scheme, rng, std):
        W, b = layer.params["weight"], layer.params.get("bias")
        if scheme == "torch-default":
            return layer.reset_parameters(rng=rng)
        if scheme == "normal":
            nn_init.normal_(W, 0.0, std, rng=rng)
        elif scheme == "xavier":
            nn_init.xavier_uniform_(W, rng=rng)
        else:
            nn_init.kaiming_normal_(W, nonlinearity="relu", rng=rng)
        if b is not None:
            nn_init.zeros_(b)
        return layer

    @classmethod
    def build_model(cls, name="softmax", *, hidden=256, dropout=0.0, init="normal", std=0.01, rng=None,
                    dropout_rng=None, dtype=np.float32, in_features=784, num_classes=10):
        il = cls._init_linear
        if name == "softmax":
            return nn.Sequential(nn.Flatten(),
                                 il(nn.Linear(in_features, num_classes, rng=rng, dtype=dtype), init, rng, std))
        layers = [nn.Flatten(), il(nn.Linear(in_features, hidden, rng=rng, dtype=dtype), init, rng, std), nn.ReLU()]
        if dropout:
            dropout_rng = rng.spawn(1)[0] if dropout_rng is None else dropout_rng
            layers.append(nn.Dropout(dropout, rng=dropout_rng))
        layers.append(il(nn.Linear(hidden, num_classes, rng=rng, dtype=dtype), init, rng, std))
        return nn.Sequential(*layers)

    # npnet/studies/_common.py
    @staticmethod
    def child_rng(rng):
        return np.random.default_rng(rng.integers(2**63))

    @staticmethod
    def init_linear(layer, scheme, *, rng, std=0.01, value=0.01):
        W = layer.params["weight"]
        b = layer.params.get("bias")
        if scheme == "torch-default":
            layer.reset_parameters(rng=rng)
            return layer
        if scheme == "normal":
            nn_init.normal_(W, 0.0, std, rng=rng)
        elif scheme == "constant":
            nn_init.constant_(W, value)
        elif scheme == "xavier":
            nn_init.xavier_uniform_(W, rng=rng)
        else:
            nn_init.kaiming_normal_(W, nonlinearity="relu", rng=rng)
        if b is not None:
            nn_init.constant_(b, value) if scheme == "constant" else nn_init.zeros_(b)
        return layer

    @classmethod
    def mlp(cls, hidden=(256,), *, in_features=784, out_features=10, activation="relu", dropout=0.0,
            init="torch-default", std=0.01, value=0.01, rng=None, dtype=np.float32):
        layers, width = [nn.Flatten()], in_features
        for h in hidden:
            layers += [cls.init_linear(nn.Linear(width, h, rng=rng, dtype=dtype), init, rng=rng, std=std, value=value),
                       cls.ACTIVATIONS[activation]()]
            if dropout:
                layers.append(nn.Dropout(dropout, rng=cls.child_rng(rng)))
            width = h
        last = nn.Linear(width, out_features, rng=rng, dtype=dtype)
        layers.append(cls.init_linear(last, init, rng=rng, std=std, value=value))
        return nn.Sequential(*layers)


def assert_same_model(new, old):
    """Same layers, same parameter bytes, same Dropout p and generator state."""
    assert [type(m) for m in new] == [type(m) for m in old]
    assert list(new.params) == list(old.params)
    for k in old.params:
        a, b = new.params[k], old.params[k]
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), k
    for m_new, m_old in zip(new, old):
        if isinstance(m_old, nn.Dropout):
            assert m_new.p == m_old.p
            assert m_new.rng.bit_generator.state == m_old.rng.bit_generator.state


def twice(seed):
    """Two generators in the same state (seed may be an int or a SeedSequence entropy list)."""
    return np.random.default_rng(seed), np.random.default_rng(seed)


# --------------------------------------------------------------------------- build_model is today's build_model

BUILD_CASES = [
    dict(name="softmax"),
    dict(name="softmax", init="xavier", dtype=np.float64),
    dict(name="softmax", init="torch-default", in_features=12, num_classes=3),
    dict(name="mlp"),
    dict(name="mlp", hidden=64, dropout=0.5),
    dict(name="mlp", hidden=32, dropout=0.2, init="kaiming", dtype=np.float64),
    dict(name="mlp", hidden=7, init="normal", std=0.3, in_features=5, num_classes=4),
    dict(name="mlp", hidden=16, dropout=0.1, init="torch-default"),
    dict(name="mlp", hidden=16, init="xavier", dropout=0.3, dropout_rng="given"),
]


@pytest.mark.parametrize("seed", [0, 3, [5, 1]])
@pytest.mark.parametrize("case", BUILD_CASES, ids=lambda c: "-".join(f"{v}" for v in c.values()))
def test_build_model_is_bit_identical_to_the_train_builder_it_replaced(case, seed):
    case = dict(case)
    rng_new, rng_old = twice(seed)
    if case.get("dropout_rng") == "given":
        case_new = dict(case, dropout_rng=np.random.default_rng(99))
        case_old = dict(case, dropout_rng=np.random.default_rng(99))
    else:
        case_new = case_old = case
    new = models.build_model(rng=rng_new, **case_new)
    old = Oracle.build_model(rng=rng_old, **case_old)
    assert_same_model(new, old)
    assert rng_new.bit_generator.state == rng_old.bit_generator.state   # later draws from rng agree too
    assert rng_new.bit_generator.seed_seq.n_children_spawned == rng_old.bit_generator.seed_seq.n_children_spawned


def test_build_model_is_still_reachable_from_npnet_train():
    assert train.build_model is models.build_model
    assert train.collect_rngs is models.collect_rngs
    assert train.INITS is models.INITS and train.MODELS is models.MODELS


# --------------------------------------------------------------------------- mlp is today's studies' mlp

MLP_CASES = [
    dict(hidden=(256,)),                                                   # Setting() default
    dict(hidden=(64,), init="kaiming", dropout=0.2),                        # kfold "tiny"
    dict(hidden=(512, 256), init="kaiming", dropout=0.5),                   # kfold "best"
    dict(hidden=(256, 256), init="normal", std=0.01),                       # init study
    dict(hidden=(32,), init="constant", value=0.01, dropout=0.5, std=0.01),  # symmetry
    dict(hidden=(32,), init="constant", value=-0.2),
    dict(hidden=(8,) * 4, in_features=8, activation="sigmoid", init="normal", std=1.0, dtype=np.float64),  # vanishing
    dict(hidden=(8,) * 4, in_features=8, activation="tanh", init="xavier", dtype=np.float64),
    dict(hidden=(), init="normal"),
]


@pytest.mark.parametrize("seed", [0, 7, [0, 1]])
@pytest.mark.parametrize("case", MLP_CASES, ids=lambda c: "-".join(f"{v}" for v in c.values()))
def test_mlp_is_bit_identical_to_the_studies_builder_it_replaced(case, seed):
    rng_new, rng_old = twice(seed)
    assert_same_model(models.mlp(rng=rng_new, **case), Oracle.mlp(rng=rng_old, **case))
    assert rng_new.bit_generator.state == rng_old.bit_generator.state


def test_study_settings_build_todays_models():
    from npnet.studies import kfold

    for setting in itertools.chain.from_iterable(kfold.GRIDS.values()):
        rng_new, rng_old = twice(11)
        old = Oracle.mlp(setting.hidden, activation=setting.activation, dropout=setting.dropout, init=setting.init,
                         std=setting.std, rng=rng_old)
        assert_same_model(setting.build(rng_new), old)


def test_child_rng_is_todays():
    a, b = twice(4)
    assert models.child_rng(a).bit_generator.state == Oracle.child_rng(b).bit_generator.state


# --------------------------------------------------------------------------- one INITS

def test_one_inits_list_for_every_builder():
    assert models.INITS == ("normal", "constant", "xavier", "kaiming", "torch-default")
    assert set(models.INITS) == set(Oracle.INITS_TRAIN) | set(Oracle.INITS_STUDIES)
    assert not hasattr(_common, "INITS") and not hasattr(_common, "mlp")
    for init in models.INITS:   # every builder takes every scheme
        models.build_model("mlp", hidden=4, init=init, rng=np.random.default_rng(0))
        models.mlp((4,), init=init, rng=np.random.default_rng(0))


def test_build_model_constant_init_sets_every_value():
    m = models.build_model("mlp", hidden=5, init="constant", value=0.25, rng=np.random.default_rng(0))
    assert all(np.all(p == np.float32(0.25)) for p in m.params.values())


def test_cli_init_choices_are_inits():
    from npnet import cli

    sub = [a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    actions = [a for s in sub for p in s.choices.values() for a in p._actions if "--init" in a.option_strings]
    assert actions
    for a in actions:
        assert set(a.choices) <= set(models.INITS)


@pytest.mark.parametrize("kwargs, exc, word", [
    (dict(hidden=256), TypeError, "hidden"),
    (dict(hidden=(256, 0)), ValueError, "hidden[1]"),
    (dict(activation="gelu"), ValueError, "activation"),
    (dict(init="zeros"), ValueError, "init"),
    (dict(dropout=1.0), ValueError, "dropout"),
    (dict(std=-1.0), ValueError, "std"),
    (dict(value=float("nan")), ValueError, "value"),
    (dict(dropout=0.5, dropout_rng=3), TypeError, "dropout_rng"),
    (dict(dtype=np.int32), TypeError, "dtype"),
    (dict(in_features=0), ValueError, "in_features"),
    (dict(num_classes=0), ValueError, "num_classes"),
    (dict(rng=0), TypeError, "rng"),
])
def test_mlp_rejects_bad_arguments(kwargs, exc, word):
    with pytest.raises(exc) as info:
        models.mlp(**kwargs)
    assert word in str(info.value)


def test_collect_rngs_names_the_dropout_generators():
    m = models.mlp((4, 3), dropout=0.5, in_features=6, rng=np.random.default_rng(0))
    rngs = models.collect_rngs(m)
    assert sorted(rngs) == ["dropout.3", "dropout.6"]
    assert rngs["dropout.3"] is m[3].rng and rngs["dropout.6"] is m[6].rng


# =========================================================================== bad inputs
# Every argument of build_model,
# crossed with the bad values of tests/badinput.py (its docstring says what
# SAME, REF, OK, Raises and Deviates mean).

from npnet import train as T  # noqa: E402
from badinput import (  # noqa: E402, F401  (ctx is a fixture)
    ScalarTable, check_scalar_row, ctx)

SCALARS = ScalarTable()
scalar = SCALARS.add

scalar("build_model(name)", lambda v, c: T.build_model(v), "name", "choice", good="mlp")
scalar("build_model(hidden)", lambda v, c: T.build_model("mlp", hidden=v), "hidden", "int>=1?")   # None: 256
scalar("build_model(dropout)", lambda v, c: T.build_model("mlp", dropout=v), "dropout", "prob<1")
scalar("build_model(init)", lambda v, c: T.build_model(init=v), "init", "choice?")   # None: the model's default
scalar("build_model(std)", lambda v, c: T.build_model(std=v), "std", "real>=0")
scalar("build_model(rng)", lambda v, c: T.build_model(rng=v), "rng", "generator?")
scalar("build_model(dropout_rng)", lambda v, c: T.build_model("mlp", dropout=0.5, dropout_rng=v), "dropout_rng",
       "generator?")
scalar("build_model(dtype)", lambda v, c: T.build_model(dtype=v), "dtype", "dtype")
scalar("build_model(in_features)", lambda v, c: T.build_model(in_features=v), "in_features", "int>=1")
scalar("build_model(num_classes)", lambda v, c: T.build_model(num_classes=v), "num_classes", "int>=1")


@pytest.mark.parametrize("s, bad, outcome", SCALARS.params())
def test_other_argument(ctx, s, bad, outcome):
    check_scalar_row(ctx, s, bad, outcome)


def test_lenet_and_cnn_map_images_to_logits_and_back():
    x = np.random.default_rng(1).random((3, 1, 28, 28), dtype=np.float32)   # what DataLoader yields
    for model in (models.lenet(rng=np.random.default_rng(0)), models.lenet(batch_norm=True, rng=np.random.default_rng(0)),
                  models.cnn(rng=np.random.default_rng(0))):
        y, backward = model.forward(x)
        dx, grads = backward(np.random.default_rng(2).standard_normal(y.shape).astype(np.float32))
        assert y.shape == (3, 10) and dx.shape == x.shape
        assert sorted(grads) == sorted(model.params) and all(g.shape == model.params[k].shape for k, g in grads.items())
    assert len(models.lenet().params) == 10 and len(models.lenet(batch_norm=True).buffers) == 12
    with pytest.raises(ValueError, match="channels"):
        models.cnn(channels=(8,))


def test_build_model_names_lenet_and_cnn_with_their_own_inits():
    assert {"lenet", "cnn"} <= set(models.MODELS)
    lenet = models.build_model("lenet", rng=np.random.default_rng(0))
    assert_same_model(lenet, models.lenet(init="xavier", rng=np.random.default_rng(0)))
    cnn = models.build_model("cnn", hidden=24, rng=np.random.default_rng(0), dtype=np.float64)
    assert_same_model(cnn, models.cnn(hidden=24, init="torch-default", rng=np.random.default_rng(0),
                                      dtype=np.float64))
    assert cnn.params["9.weight"].shape == (24, 32 * 7 * 7) and cnn.dtype == np.float64
    assert models.build_model("cnn").params["9.weight"].shape[0] == models.DEFAULT_HIDDEN["cnn"] == 128
    # no bias before a BatchNorm: its gradient would be rounding noise, which Adam turns into steps
    assert "0.bias" not in cnn.params and "4.bias" not in cnn.params and "1.bias" in cnn.params
    for name in models.MODELS:
        init = models.MODEL_INITS[name][0]
        assert models.build_model(name, init=None, rng=np.random.default_rng(1)).params.keys() == \
            models.build_model(name, init=init, rng=np.random.default_rng(1)).params.keys()


@pytest.mark.parametrize("name, kwargs, word", [
    ("lenet", dict(init="normal"), "init"),
    ("cnn", dict(init="kaiming"), "init"),
    ("lenet", dict(hidden=64), "hidden"),
    ("lenet", dict(dropout=0.5), "dropout"),
    ("cnn", dict(dropout=0.5), "dropout"),
    ("cnn", dict(std=0.1), "std"),
    ("lenet", dict(value=0.5), "value"),
    ("cnn", dict(in_features=100), "in_features"),
])
def test_build_model_refuses_a_setting_a_convolutional_model_does_not_have(name, kwargs, word):
    with pytest.raises(ValueError) as info:
        models.build_model(name, **kwargs)
    assert word in str(info.value) and name in str(info.value)
