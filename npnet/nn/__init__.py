"""npnet.nn: layers, losses, initializers and the functional kernels behind them."""
from . import functional, init  # noqa: F401
from .activation import LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh  # noqa: F401
from .conv import Conv2d  # noqa: F401
from .layers import Dropout, Flatten, Linear, Module, Sequential  # noqa: F401
from .losses import CrossEntropyLoss, MSELoss, NLLLoss  # noqa: F401

__all__ = [
    "functional", "init", "Module", "Linear", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax",
    "LogSoftmax", "Flatten", "Dropout", "Sequential", "CrossEntropyLoss", "NLLLoss", "MSELoss",
    "Conv2d",
]
