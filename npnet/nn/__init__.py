"""npnet.nn: layers, losses, initializers and the functional kernels behind them."""
from . import functional, init  # noqa: F401
from .activation import GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh  # noqa: F401
from .conv import Conv2d  # noqa: F401
from .layers import Dropout, Flatten, Linear, Module, Sequential, Unflatten  # noqa: F401
from .losses import CrossEntropyLoss, MSELoss, NLLLoss  # noqa: F401
from .normalization import BatchNorm1d, BatchNorm2d, LayerNorm  # noqa: F401
from .pooling import AvgPool2d, MaxPool2d  # noqa: F401

__all__ = [
    "functional", "init", "Module", "Linear", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax",
    "LogSoftmax", "Flatten", "Unflatten", "Dropout", "Sequential", "CrossEntropyLoss", "NLLLoss", "MSELoss",
    "BatchNorm1d", "BatchNorm2d", "LayerNorm", "MaxPool2d", "AvgPool2d", "GELU", "Conv2d",
]
