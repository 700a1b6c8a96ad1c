"""Plain forward and backward kernels: the math of every npnet layer and loss.

One file per family: ``linear.py``, ``activations.py`` (softmax and log-softmax
included), ``dropout.py``, ``losses.py``, ``normalization.py``, ``pooling.py`` and ``conv.py``; every kernel is importable from here.

Each forward kernel ``f(X, ...)`` has its backward ``f_backward(dY, ...)`` right
below it, each a direct transcription of the formula in its docstring. They are
the source of truth: faster twins of some live in ``_fast/``, with the same
signatures, proven equal to these by ``tests/test_fast.py``; the public function
runs the fast twin unless ``NPNET_KERNELS=plain`` is set (see ``_kernels.py``), and
``F.softmax.plain`` is always the plain body.

Each kernel's arguments are checked once, by the ``_check_*`` function named in its
``@kernel(...)`` line; the body then trusts them. Kernels never modify their
inputs, keep the input's float dtype (float32 in, float32 out) and touch no
global state. Shapes use torch's conventions: a batch axis first, classes on
axis 1 for losses.

Names: ``X`` is an input, ``Y`` an output, ``dY`` the gradient of a scalar
objective with respect to ``Y`` (the upstream gradient) and ``dX`` the gradient
with respect to ``X``.

Example::

    >>> import numpy as np, npnet.nn.functional as F
    >>> X = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    >>> F.softmax(X).round(4)
    array([[0.09  , 0.2447, 0.6652]], dtype=float32)
"""
from .activations import (  # noqa: F401
    gelu, gelu_backward, leaky_relu, leaky_relu_backward, log_softmax, log_softmax_backward, relu, relu_backward,
    sigmoid, sigmoid_backward, softmax, softmax_backward, tanh, tanh_backward)
from .conv import conv2d, conv2d_backward, conv2d_with_backward  # noqa: F401
from .dropout import dropout, dropout_backward, dropout_mask  # noqa: F401
from .linear import linear, linear_backward  # noqa: F401
from .pooling import (  # noqa: F401
    avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward, max_pool2d_with_backward)
from .losses import (  # noqa: F401
    cross_entropy, cross_entropy_backward, cross_entropy_with_backward, mse_loss, mse_loss_backward,
    nll_loss, nll_loss_backward)
from .normalization import (  # noqa: F401
    batch_norm, batch_norm_backward, batch_norm_with_backward, layer_norm, layer_norm_backward)

__all__ = [
    "linear", "linear_backward",
    "relu", "relu_backward", "leaky_relu", "leaky_relu_backward",
    "sigmoid", "sigmoid_backward", "tanh", "tanh_backward", "gelu", "gelu_backward",
    "softmax", "softmax_backward", "log_softmax", "log_softmax_backward",
    "dropout_mask", "dropout", "dropout_backward",
    "cross_entropy", "cross_entropy_backward", "cross_entropy_with_backward",
    "nll_loss", "nll_loss_backward", "mse_loss", "mse_loss_backward",
    "batch_norm", "batch_norm_backward", "batch_norm_with_backward", "layer_norm", "layer_norm_backward",
    "max_pool2d", "max_pool2d_backward", "max_pool2d_with_backward", "avg_pool2d", "avg_pool2d_backward",
    "conv2d", "conv2d_backward", "conv2d_with_backward",
]
