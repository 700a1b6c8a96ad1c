"""The model zoo: every named model npnet builds, from one MLP builder and one list of inits.

- :func:`mlp` is the general builder: ``Flatten``, then ``Linear -> activation
  [-> Dropout]`` per hidden width, then a last ``Linear``; every Linear
  initialized by a named scheme (:func:`init_linear`).
- :func:`build_model` builds the named Fashion-MNIST models (:data:`MODELS`):
  the course's softmax regression and MLP on top of :func:`mlp`, the course's
  LeNet (:func:`lenet`) and a small modern CNN (:func:`cnn`); the CLI, the
  benchmarks and ``npnet.train`` use it, the studies call the builders directly.
- :func:`collect_rngs` names the generators a model (and its loader) draws
  from, which is what a checkpoint must hold to resume bit-identically.
- :func:`check_run_settings` checks the settings ``npnet train`` saves in a
  checkpoint (:data:`RUN_SETTINGS`), for every reader of a run: ``--resume``,
  ``npnet eval``/``predict`` and :func:`npnet.load_model`.

Randomness is explicit: the initial values come from ``rng``, drawn layer by
layer in order (each ``Linear`` first draws torch's default init, then is
re-initialized by the scheme), so a seed fixes the model.
"""
import re

import numpy as np

from . import _validate as V
from . import nn
from .errors import CheckpointError
from .nn import init as nn_init

__all__ = ["MODELS", "INITS", "MODEL_INITS", "DEFAULT_HIDDEN", "ACTIVATIONS", "OPTIMIZERS", "DTYPES", "RUN_SETTINGS", "build_model", "mlp", "lenet", "cnn",
           "init_linear", "child_rng", "collect_rngs", "check_run_settings"]

MODELS = ("softmax", "mlp", "lenet", "cnn")
INITS = ("normal", "constant", "xavier", "kaiming", "torch-default")
# The inits each named model takes, its default first: the convolutional models redraw
# only their weights (xavier) or keep torch's default init.
MODEL_INITS = {"softmax": INITS, "mlp": INITS, "lenet": ("xavier", "torch-default"),
               "cnn": ("torch-default", "xavier")}
# The width of the hidden layer ``hidden`` sets, by model (None: the model has no such setting).
DEFAULT_HIDDEN = {"softmax": None, "mlp": 256, "lenet": None, "cnn": 128}
ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}
OPTIMIZERS = ("sgd", "adam")   # npnet train --optimizer
DTYPES = ("float32", "float64")


def child_rng(rng):
    """A new Generator seeded by one draw from ``rng``: independent streams from one seed."""
    return np.random.default_rng(rng.integers(2**63))


def init_linear(layer, scheme, *, rng, std=0.01, value=0.01):
    """Re-initialize one ``nn.Linear`` in place by a named scheme (one of :data:`INITS`).

    - ``"normal"``: W ~ N(0, std^2), b = 0 (the course's, std = 0.01).
    - ``"constant"``: W = b = ``value`` (every hidden unit the same: the symmetry study).
    - ``"xavier"``: ``xavier_uniform_`` (gain 1), b = 0.
    - ``"kaiming"``: ``kaiming_normal_`` for ReLU (fan_in, gain sqrt(2)), b = 0.
    - ``"torch-default"``: torch.nn.Linear's own U(-1/sqrt(in), 1/sqrt(in)) for W and b.

    Returns:
        ``layer``.
    """
    V.choice(scheme, "init", INITS)
    W, b = layer.params["weight"], layer.params.get("bias")
    if scheme == "torch-default":
        return layer.reset_parameters(rng=rng)
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


def mlp(hidden=(256,), *, activation="relu", dropout=0.0, init="torch-default", std=0.01, value=0.01,
        rng=None, dropout_rng=None, dtype=np.float32, in_features=784, num_classes=10):
    """``Flatten``, then ``Linear -> activation [-> Dropout]`` per hidden width, then ``Linear``.

    Args:
        hidden: widths of the hidden layers, a tuple of ints >= 1 (``()``: softmax regression).
        activation: "relu", "sigmoid" or "tanh".
        dropout: float in [0, 1), dropout after each hidden activation (0 adds no layer).
        init: one of :data:`INITS`, for every Linear (see :func:`init_linear`).
        std: standard deviation of the "normal" init.
        value: the "constant" init's value.
        rng: numpy Generator for the initial values (default: a fresh one).
        dropout_rng: numpy Generator for the dropout masks, shared by every Dropout;
            default: a :func:`child_rng` of ``rng`` per Dropout, drawn as it is built.
        dtype: np.float32 or np.float64.
        in_features: inputs per sample after Flatten.
        num_classes: outputs (logits) per sample.

    Returns:
        nn.Sequential.

    Example:
        >>> model = mlp((512, 256), init="kaiming", dropout=0.2, rng=np.random.default_rng(0))
    """
    if not isinstance(hidden, (tuple, list)):
        raise TypeError(f"hidden must be a tuple of layer widths, got {V.describe(hidden)}")
    hidden = tuple(V.integer(h, f"hidden[{i}]", low=1) for i, h in enumerate(hidden))
    V.choice(activation, "activation", tuple(ACTIVATIONS))
    dropout = V.real_number(dropout, "dropout", low=0.0, high=1.0, high_open=True)
    V.choice(init, "init", INITS)
    std = V.real_number(std, "std", low=0.0)
    value = V.real_number(value, "value")
    rng = V.generator(rng)
    if dropout and dropout_rng is not None:
        dropout_rng = V.generator(dropout_rng, "dropout_rng")
    dtype = V.float_dtype(dtype)
    in_features = V.integer(in_features, "in_features", low=1)
    num_classes = V.integer(num_classes, "num_classes", low=1)

    layers, width = [nn.Flatten()], in_features
    for h in hidden:
        layers += [init_linear(nn.Linear(width, h, rng=rng, dtype=dtype), init, rng=rng, std=std, value=value),
                   ACTIVATIONS[activation]()]
        if dropout:
            layers.append(nn.Dropout(dropout, rng=child_rng(rng) if dropout_rng is None else dropout_rng))
        width = h
    layers.append(init_linear(nn.Linear(width, num_classes, rng=rng, dtype=dtype), init, rng=rng, std=std, value=value))
    return nn.Sequential(*layers)


def build_model(name="softmax", *, hidden=None, dropout=0.0, init=None, std=0.01, value=0.01, rng=None,
                dropout_rng=None, dtype=np.float32, in_features=784, num_classes=10):
    """The named Fashion-MNIST models (:data:`MODELS`).

    - ``"softmax"``: ``Sequential(Flatten(), Linear(784, 10))``, softmax regression
      (the softmax itself lives in the loss); ``mlp(())``.
    - ``"mlp"``: ``Sequential(Flatten(), Linear(784, hidden), ReLU(), [Dropout(p)],
      Linear(hidden, 10))``; ``mlp((hidden,))``.
    - ``"lenet"``: the course's LeNet, sigmoids and average pooling (:func:`lenet`).
    - ``"cnn"``: two Conv-BatchNorm-ReLU-MaxPool blocks and a ReLU classifier of
      width ``hidden`` (:func:`cnn`).

    Initializations (:data:`INITS`, see :func:`init_linear`): ``"normal"`` (the
    course's: W ~ N(0, std^2) with std = 0.01, b = 0), ``"constant"`` (``value``
    everywhere), ``"xavier"``, ``"kaiming"``, ``"torch-default"``. Each model
    takes the inits :data:`MODEL_INITS` lists; None is its default, the first
    (softmax and mlp: "normal"; lenet: "xavier", as the course; cnn: "torch-default").

    The convolutional models take images (N, 1, 28, 28) (what ``DataLoader``
    yields) and have no setting for ``dropout``, ``std``, ``value`` or
    ``in_features``; the LeNet has none for ``hidden`` either. Such a setting,
    given, is refused by name.

    Args:
        name: one of :data:`MODELS`.
        hidden: int >= 1, width of the MLP's hidden layer (default 256) or the cnn's
            classifier (default 128); None: the model's default.
        dropout: float in [0, 1), dropout after the hidden ReLU (mlp only; 0 adds no layer).
        init: one of :data:`MODEL_INITS` [name], or None for the model's default.
        std: standard deviation of the "normal" init.
        value: the "constant" init's value.
        rng: numpy Generator for the initial values (default: a fresh one).
        dropout_rng: numpy Generator for the dropout masks (default: ``rng.spawn(1)[0]``,
            which draws nothing from ``rng``).
        dtype: np.float32 or np.float64.
        in_features: inputs per sample after Flatten (softmax and mlp).
        num_classes: outputs (logits) per sample.

    Returns:
        nn.Sequential; its params are keyed "1.weight", "1.bias" (and "3.*" or "4.*" for the mlp).

    Example:
        >>> model = build_model("mlp", hidden=256, rng=np.random.default_rng(0))
        >>> sorted(model.params)
        ['1.bias', '1.weight', '3.bias', '3.weight']
    """
    V.choice(name, "name", MODELS)
    init = MODEL_INITS[name][0] if init is None else init
    V.choice(init, "init", INITS)
    if init not in MODEL_INITS[name]:
        raise ValueError(f"init {init!r} does not apply to the {name}: it takes one of "
                         f"{', '.join(repr(i) for i in MODEL_INITS[name])}")
    if hidden is not None:
        hidden = V.integer(hidden, "hidden", low=1)
    dropout = V.real_number(dropout, "dropout", low=0.0, high=1.0, high_open=True)
    std = V.real_number(std, "std", low=0.0)
    value = V.real_number(value, "value")
    rng = V.generator(rng)
    dtype = V.float_dtype(dtype)
    in_features = V.integer(in_features, "in_features", low=1)
    num_classes = V.integer(num_classes, "num_classes", low=1)
    if name == "softmax" and dropout:
        raise ValueError("dropout applies to the mlp only; softmax regression has no hidden layer, "
                         f"got dropout={dropout}")
    if name in ("lenet", "cnn"):
        given = {"dropout": (dropout, 0.0), "std": (std, 0.01), "value": (value, 0.01),
                 "in_features": (in_features, 784), "hidden": (hidden if name == "lenet" else None, None)}
        for key, (v, default) in given.items():
            if v != default:
                raise ValueError(f"{key} does not apply to the {name} (it takes 28x28 images and has no such "
                                 f"setting), got {key}={v!r}")
        if name == "lenet":
            return lenet(init=init, rng=rng, dtype=dtype, num_classes=num_classes)
        return cnn(hidden=DEFAULT_HIDDEN["cnn"] if hidden is None else hidden, init=init, rng=rng, dtype=dtype,
                   num_classes=num_classes)
    if dropout:
        dropout_rng = rng.spawn(1)[0] if dropout_rng is None else V.generator(dropout_rng, "dropout_rng")
    return mlp(() if name == "softmax" else (hidden or DEFAULT_HIDDEN["mlp"],), activation="relu", dropout=dropout,
               init=init, std=std, value=value, rng=rng, dropout_rng=dropout_rng, dtype=dtype,
               in_features=in_features, num_classes=num_classes)


def _modules(model):
    return list(model) if isinstance(model, nn.Sequential) else [model]


def collect_rngs(model, loader=None):
    """The generators a training run draws from, by name: what a checkpoint must hold.

    ``"shuffle"`` is ``loader.rng`` when the loader shuffles; ``"dropout.<i>"``
    is the generator of the Dropout module at index i of a Sequential.
    """
    rngs = {}
    if loader is not None and getattr(loader, "shuffle", False):
        rngs["shuffle"] = loader.rng
    for i, m in enumerate(_modules(model)):
        if isinstance(m, nn.Dropout):
            rngs[f"dropout.{i}"] = m.rng
    return rngs


# --------------------------------------------------------------------------- a run's saved settings

# What ``npnet train`` saves under ``config["settings"]``: name -> (what a value must be, as a
# _validate check; the same words for the message). The CLI's flags accept exactly these values.
RUN_SETTINGS = {
    "model": (lambda v, n: V.choice(v, n, MODELS), f"one of {', '.join(MODELS)}"),
    "lr_schedule": (lambda v, n: V.choice(v, n, ("none", "cosine")), "none or cosine"),
    "hidden": (lambda v, n: V.integer(v, n, low=1), "an integer >= 1"),
    "dropout": (lambda v, n: V.real_number(v, n, low=0.0, high=1.0, high_open=True), "a number in [0, 1)"),
    "init": (lambda v, n: V.choice(v, n, INITS), f"one of {', '.join(INITS)}"),
    "optimizer": (lambda v, n: V.choice(v, n, OPTIMIZERS), f"one of {', '.join(OPTIMIZERS)}"),
    "lr": (lambda v, n: V.real_number(v, n, low=0.0, low_open=True), "a number in (0, inf)"),
    "momentum": (lambda v, n: V.real_number(v, n, low=0.0), "a number in [0, inf)"),
    "weight_decay": (lambda v, n: V.real_number(v, n, low=0.0), "a number in [0, inf)"),
    "batch_size": (lambda v, n: V.integer(v, n, low=1), "an integer >= 1"),
    "epochs": (lambda v, n: V.integer(v, n, low=1), "an integer >= 1"),
    "seed": (lambda v, n: V.integer(v, n, low=0), "an integer >= 0"),
    "dtype": (lambda v, n: V.choice(v, n, DTYPES), f"one of {', '.join(DTYPES)}"),
}
# None where a setting does not apply: no hidden layer in softmax regression, no momentum in Adam
_UNSET_ALLOWED = ("hidden", "dropout", "momentum")


def _data_dir(value, name):
    if value is not None and "\0" in V.path(value, name):
        raise ValueError(f"{name} holds a NUL character")


def _fingerprint(value, name):
    if value is not None and not (isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value)):
        raise ValueError(f"{name} must be a SHA-256 hex digest or None")


_RUN_DATA = {
    "data_dir": (_data_dir, "a directory path or null"),
    "data_fingerprint": (_fingerprint, "a SHA-256 hex digest or null"),
}


def check_run_settings(config, path):
    """Check the run settings a checkpoint's ``config`` holds, as ``npnet train``'s flags check them.

    A consistent but tampered (or foreign) checkpoint is refused here, by the
    setting's name, rather than deep in :func:`build_model` or the optimizer.
    Each setting of :data:`RUN_SETTINGS` found in ``config["settings"]`` is
    checked, and ``config["data_dir"]`` and ``config["data_fingerprint"]``; a
    missing one is left to the caller (``--resume`` needs them all, and
    :func:`npnet.load_model` reads a model off the parameters without them).

    Args:
        config: a checkpoint's config (``Checkpoint.config``): a dict or None.
        path: the checkpoint's path, for the message.

    Returns:
        ``config["settings"]``, or an empty dict when it is not a dict (no ``npnet train`` settings).

    Raises:
        CheckpointError: ``checkpoint PATH holds an unknown setting: NAME=VALUE (expected ...)``.
    """
    config = config if isinstance(config, dict) else {}
    settings = config.get("settings")
    settings = settings if isinstance(settings, dict) else {}
    found = [(k, settings[k], RUN_SETTINGS[k]) for k in RUN_SETTINGS if k in settings]
    found += [(k, config[k], _RUN_DATA[k]) for k in _RUN_DATA if k in config]
    for key, value, (check, expected) in found:
        if value is None and (key in _UNSET_ALLOWED or key in _RUN_DATA):
            continue
        try:
            check(value, key)
        except (TypeError, ValueError):
            raise CheckpointError(f"checkpoint {path} holds an unknown setting: {key}={value!r} "
                                  f"(expected {expected})") from None
    model, init = settings.get("model"), settings.get("init")
    if model in MODEL_INITS and init is not None and init not in MODEL_INITS[model]:
        raise CheckpointError(f"checkpoint {path} holds an unknown setting: init={init!r} "
                              f"(expected one of {', '.join(MODEL_INITS[model])} for the {model})")
    return settings


# --------------------------------------------------------------------------- convolutional models

def _init_weights(model, init, rng):
    """Each Conv2d and Linear has drawn torch's default init (weights and biases) from
    ``rng`` when it was built; ``"xavier"`` then redraws its weights with
    ``xavier_uniform_`` and keeps the biases, as the course's ``init_weights`` does."""
    if init == "xavier":
        for m in model:
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn_init.xavier_uniform_(m.params["weight"], rng=rng)
    return model


def lenet(*, batch_norm=False, init="xavier", rng=None, dtype=np.float32, num_classes=10):
    """The course's LeNet for 28 x 28 images (N, 1, 28, 28), with sigmoids and average pooling::

        Conv2d(1, 6, 5, padding=2), Sigmoid(), AvgPool2d(2)       -> (N, 6, 14, 14)
        Conv2d(6, 16, 5), Sigmoid(), AvgPool2d(2)                 -> (N, 16, 5, 5)
        Flatten(), Linear(400, 120), Sigmoid(), Linear(120, 84), Sigmoid(), Linear(84, num_classes)

    With ``batch_norm=True``, the course's batch-normalized LeNet: a ``BatchNorm2d``
    after each convolution and a ``BatchNorm1d`` after each hidden Linear, before
    the sigmoid.

    Args:
        batch_norm: bool.
        init: ``"xavier"`` (the course's: ``xavier_uniform_`` weights, torch's default
            biases) or ``"torch-default"``.
        rng: numpy Generator for the initial values (default: a fresh one).
        dtype: np.float32 or np.float64.
        num_classes: outputs (logits) per sample.

    Example:
        >>> model = lenet(rng=np.random.default_rng(0))
        >>> model(np.zeros((2, 1, 28, 28), np.float32)).shape
        (2, 10)
    """
    batch_norm = V.flag(batch_norm, "batch_norm")
    V.choice(init, "init", ("xavier", "torch-default"))
    rng, dtype = V.generator(rng), V.float_dtype(dtype)
    num_classes = V.integer(num_classes, "num_classes", low=1)

    def bn(cls, n):
        return [cls(n, dtype=dtype)] if batch_norm else []

    layers = [nn.Conv2d(1, 6, 5, padding=2, rng=rng, dtype=dtype), *bn(nn.BatchNorm2d, 6), nn.Sigmoid(),
              nn.AvgPool2d(2),
              nn.Conv2d(6, 16, 5, rng=rng, dtype=dtype), *bn(nn.BatchNorm2d, 16), nn.Sigmoid(), nn.AvgPool2d(2),
              nn.Flatten(),
              nn.Linear(16 * 5 * 5, 120, rng=rng, dtype=dtype), *bn(nn.BatchNorm1d, 120), nn.Sigmoid(),
              nn.Linear(120, 84, rng=rng, dtype=dtype), *bn(nn.BatchNorm1d, 84), nn.Sigmoid(),
              nn.Linear(84, num_classes, rng=rng, dtype=dtype)]
    return _init_weights(nn.Sequential(*layers), init, rng)


def cnn(channels=(16, 32), hidden=128, *, init="torch-default", rng=None, dtype=np.float32, num_classes=10):
    """A small modern network for 28 x 28 images (N, 1, 28, 28): two Conv-BatchNorm-ReLU-MaxPool
    blocks, then a ReLU classifier::

        Conv2d(1, c1, 3, padding=1, bias=False), BatchNorm2d(c1), ReLU(), MaxPool2d(2)    -> (N, c1, 14, 14)
        Conv2d(c1, c2, 3, padding=1, bias=False), BatchNorm2d(c2), ReLU(), MaxPool2d(2)   -> (N, c2, 7, 7)
        Flatten(), Linear(c2 * 49, hidden), ReLU(), Linear(hidden, num_classes)

    The convolutions have no bias: the BatchNorm after each subtracts the channel's
    mean, so a bias there would have a gradient of zero, up to rounding, which Adam's
    normalization blows up into steps (and the BatchNorm's own bias does its job).

    Every layer starts from torch's default initialization, drawn from ``rng``
    (``init="xavier"`` then redraws the weights of the convolutions and Linears).

    Args:
        channels: (c1, c2), the two convolutions' output channels, ints >= 1.
        hidden: int >= 1, the classifier's hidden width.
        init, rng, dtype, num_classes: as :func:`lenet` (init default: "torch-default").
    """
    channels = V.sequence(channels, "channels", "two ints")
    if len(channels) != 2:
        raise ValueError(f"channels must hold two ints (c1, c2), got {len(channels)}: {channels}")
    c1, c2 = (V.integer(c, f"channels[{i}]", low=1) for i, c in enumerate(channels))
    hidden = V.integer(hidden, "hidden", low=1)
    V.choice(init, "init", ("torch-default", "xavier"))
    rng, dtype = V.generator(rng), V.float_dtype(dtype)
    num_classes = V.integer(num_classes, "num_classes", low=1)
    return _init_weights(nn.Sequential(
        nn.Conv2d(1, c1, 3, padding=1, bias=False, rng=rng, dtype=dtype), nn.BatchNorm2d(c1, dtype=dtype),
        nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1, bias=False, rng=rng, dtype=dtype), nn.BatchNorm2d(c2, dtype=dtype),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(c2 * 7 * 7, hidden, rng=rng, dtype=dtype), nn.ReLU(),
        nn.Linear(hidden, num_classes, rng=rng, dtype=dtype)), init, rng)
