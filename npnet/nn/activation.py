"""Activations: parameter-free layers ``Y = f(X)``, each backward one line of calculus.

Each keeps the contract of :mod:`npnet.nn.layers`: ``forward(X, train=True)``
returns ``(Y, backward)`` and ``backward(dY, *, need_dx=True)`` returns
``(dX, {})``; the comment beside each backward says the formula it computes.
"""
from .. import _validate as V
from . import functional as F
from ._kernels import K   # the active kernels, unchecked: each module checks its arguments once
from .layers import Module, _check_dy

__all__ = ["ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "Softmax", "LogSoftmax"]


class _Elementwise(Module):
    """An activation with no parameters: ``Y = f(X)``, backward from X or Y."""

    def _check(self, X):
        V.float_array(X, "input")


class ReLU(_Elementwise):
    """``max(x, 0)`` elementwise; its gradient at exactly 0 is 0, as torch's."""

    def forward(self, X, train=True):
        self._check(X)
        Y = K.relu(X)

        # Y > 0 exactly where X > 0 (a NaN input stays NaN, and NaN > 0 is False), so
        # backward keeps the output, which the next layer holds anyway, and not X.
        def backward(dY, *, need_dx=True):
            return K.relu_backward(_check_dy(dY, Y, "ReLU"), Y), {}   # dX = dY * [X > 0]

        return Y, backward

    def __call__(self, X):
        self._check(X)
        return K.relu(X)


class LeakyReLU(_Elementwise):
    """``x`` where x > 0, else ``negative_slope * x``, as ``torch.nn.LeakyReLU``."""

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = V.real_number(negative_slope, "negative_slope")

    def forward(self, X, train=True):
        self._check(X)
        Y = K.leaky_relu(X, self.negative_slope)

        def backward(dY, *, need_dx=True):
            _check_dy(dY, Y, "LeakyReLU")
            return K.leaky_relu_backward(dY, X, self.negative_slope), {}  # dX = dY * (1 or slope)

        return Y, backward

    def __call__(self, X):
        self._check(X)
        return K.leaky_relu(X, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Sigmoid(_Elementwise):
    """``1 / (1 + exp(-x))``, stable for any finite x."""

    def forward(self, X, train=True):
        self._check(X)
        Y = K.sigmoid(X)

        def backward(dY, *, need_dx=True):
            return K.sigmoid_backward(_check_dy(dY, Y, "Sigmoid"), Y), {}   # dX = dY * Y (1 - Y)

        return Y, backward

    def __call__(self, X):
        self._check(X)
        return K.sigmoid(X)


class Tanh(_Elementwise):
    """Hyperbolic tangent."""

    def forward(self, X, train=True):
        self._check(X)
        Y = K.tanh(X)

        def backward(dY, *, need_dx=True):
            return K.tanh_backward(_check_dy(dY, Y, "Tanh"), Y), {}   # dX = dY * (1 - Y^2)

        return Y, backward

    def __call__(self, X):
        self._check(X)
        return K.tanh(X)


class GELU(_Elementwise):
    """``x * Phi(x)``, Phi the standard normal CDF, as ``torch.nn.GELU``; ``approximate="tanh"``
    uses torch's tanh form ``x / 2 * (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``."""

    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = V.choice(approximate, "approximate", ("none", "tanh"))

    def forward(self, X, train=True):
        self._check(X)
        Y = K.gelu(X, self.approximate)

        def backward(dY, *, need_dx=True):
            _check_dy(dY, Y, "GELU")
            return K.gelu_backward(dY, X, self.approximate), {}   # dX = dY (Phi(X) + X phi(X))

        return Y, backward

    def __call__(self, X):
        self._check(X)
        return K.gelu(X, self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class Softmax(_Elementwise):
    """Softmax along ``axis`` (torch's ``dim``), computed with the max shift."""

    def __init__(self, axis=-1):
        super().__init__()
        self.axis = V.integer(axis, "axis")

    def forward(self, X, train=True):
        Y = F.softmax(X, self.axis)   # checks X and the axis

        def backward(dY, *, need_dx=True):
            _check_dy(dY, Y, "Softmax")
            return K.softmax_backward(dY, Y, self.axis), {}   # dX = Y (dY - sum(dY Y))

        return Y, backward

    def __call__(self, X):
        return F.softmax(X, self.axis)

    def extra_repr(self):
        return f"axis={self.axis}"


class LogSoftmax(_Elementwise):
    """log(softmax(x)) along ``axis``, computed as x - logsumexp(x)."""

    def __init__(self, axis=-1):
        super().__init__()
        self.axis = V.integer(axis, "axis")

    def forward(self, X, train=True):
        Y = F.log_softmax(X, self.axis)   # checks X and the axis

        def backward(dY, *, need_dx=True):
            _check_dy(dY, Y, "LogSoftmax")
            return K.log_softmax_backward(dY, Y, self.axis), {}   # dX = dY - exp(Y) sum(dY)

        return Y, backward

    def __call__(self, X):
        return F.log_softmax(X, self.axis)

    def extra_repr(self):
        return f"axis={self.axis}"
