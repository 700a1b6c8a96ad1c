"""npnet.nn: layers, losses, initializers and the functional kernels behind them."""
from . import functional, init  # noqa: F401
from .layers import (  # noqa: F401
    Dropout, Flatten, LeakyReLU, Linear, LogSoftmax, Module, ReLU, Sequential, Sigmoid, Softmax, Tanh,
)
from .losses import CrossEntropyLoss, MSELoss, NLLLoss  # noqa: F401

__all__ = [
    "functional", "init", "Module", "Linear", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax",
    "LogSoftmax", "Flatten", "Dropout", "Sequential", "CrossEntropyLoss", "NLLLoss", "MSELoss",
]
