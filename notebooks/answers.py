"""Reference answers to the notebooks' exercises, and a typical mistake for each.

Try the exercise first. ``NPNET_NOTEBOOK_ANSWERS=1`` makes the notebooks run
``ANSWERS`` (the committed outputs were made that way); ``NPNET_NOTEBOOK_ANSWERS=wrong``
runs ``WRONG``, a plausible mistake per exercise that its check must catch.
"""
import math

import numpy as np


# ---------------------------------------------------------------- 01
def row_fractions(X):
    return X / X.sum(axis=1, keepdims=True)


def row_fractions_wrong(X):
    return X / X.sum(axis=1)               # (n,) broadcasts along rows: divides column j by row j's sum


def sum_backward(dY, X):
    return np.broadcast_to(dY, X.shape).copy()    # each X[i, j] adds once to Y[i, 0]


def sum_backward_wrong(dY, X):
    return np.ones_like(X)                 # the local derivative alone, without the upstream dY


# ---------------------------------------------------------------- 02
def softmax(X):
    E = np.exp(X - X.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def softmax_wrong(X):
    E = np.exp(X)
    return E / E.sum(axis=0, keepdims=True)   # normalizes each column (over the batch), not each row


def linear_backward(dY, X, W):
    return dY @ W, dY.T @ X, dY.sum(axis=0)


def linear_backward_wrong(dY, X, W):
    return dY @ W, X.T @ dY, dY.sum(axis=0)   # dW transposed: (in, out) instead of torch's (out, in)


# ---------------------------------------------------------------- 03
def log_softmax(X):
    Z = X - X.max(axis=1, keepdims=True)
    return Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))


def log_softmax_wrong(X):
    return np.log(softmax(X))              # stable softmax, but log(0) = -inf for a tiny probability


def cross_entropy_backward(logits, target):
    G = softmax(logits)
    G[np.arange(len(target)), target] -= 1
    return G / len(target)


def cross_entropy_backward_wrong(logits, target):
    G = softmax(logits)
    G[np.arange(len(target)), target] -= 1
    return G                               # the gradient of the summed loss, not of the mean


# ---------------------------------------------------------------- 04
def relu_backward(dY, X):
    return np.where(X > 0, dY, 0.0)


def relu_backward_wrong(dY, X):
    return np.where(X >= 0, dY, 0.0)       # passes the gradient at exactly 0, where torch gives 0


def sigmoid_backward(dY, Y):
    return dY * Y * (1 - Y)


def sigmoid_backward_wrong(dY, Y):
    return Y * (1 - Y)                     # forgets the upstream gradient


# ---------------------------------------------------------------- 05
def xavier_bound(fan_in, fan_out):
    return math.sqrt(6 / (fan_in + fan_out))


def xavier_bound_wrong(fan_in, fan_out):
    return math.sqrt(2 / (fan_in + fan_out))   # the normal's std, not the uniform's bound (sqrt(3) too small)


def kaiming_std(fan_in):
    return math.sqrt(2 / fan_in)


def kaiming_std_wrong(fan_in):
    return math.sqrt(1 / fan_in)           # LeCun's std: forgets ReLU's gain sqrt(2)


# ---------------------------------------------------------------- 06
def kfold_folds(n, k):
    sizes = [n // k + (1 if j < n % k else 0) for j in range(k)]
    starts = np.concatenate(([0], np.cumsum(sizes)))
    return [np.arange(starts[j], starts[j + 1]) for j in range(k)]


def kfold_folds_wrong(n, k):
    size = n // k                           # the course's get_k_fold_data: the last n % k samples are dropped
    return [np.arange(j * size, (j + 1) * size) for j in range(k)]


def sgd_step(w, g, lr, weight_decay):
    return w - lr * (g + weight_decay * w)    # the penalty (weight_decay / 2) |w|^2 adds weight_decay * w to g


def sgd_step_wrong(w, g, lr, weight_decay):
    return w - lr * g - weight_decay * w       # decays by weight_decay, not lr * weight_decay


# ---------------------------------------------------------------- 07
def conv_output_size(n, k, padding, stride):
    return (n + 2 * padding - k) // stride + 1


def conv_output_size_wrong(n, k, padding, stride):
    return (n + 2 * padding - k + 1) // stride    # the + 1 inside the floor: right only for stride 1


def avg_pool2d_backward(dY, k):
    return np.repeat(np.repeat(dY, k, axis=2), k, axis=3) / k**2


def avg_pool2d_backward_wrong(dY, k):
    return np.repeat(np.repeat(dY, k, axis=2), k, axis=3)   # forgets the 1 / k^2 of the mean


def conv_weight_grad(dY, X):
    oH, oW = dY.shape
    kH, kW = X.shape[0] - oH + 1, X.shape[1] - oW + 1
    return np.array([[np.sum(dY * X[i:i + oH, j:j + oW]) for j in range(kW)] for i in range(kH)])


def conv_weight_grad_wrong(dY, X):
    return conv_weight_grad(dY[::-1, ::-1], X)      # flips dY: a true convolution where the forward correlates


# ---------------------------------------------------------------- 08
def batch_norm_dx(dY, X, gamma, eps):
    n = len(X)
    s = np.sqrt(X.var(axis=0) + eps)
    X_hat = (X - X.mean(axis=0)) / s
    return gamma / (n * s) * (n * dY - dY.sum(axis=0) - X_hat * (dY * X_hat).sum(axis=0))


def batch_norm_dx_wrong(dY, X, gamma, eps):
    return gamma * dY / np.sqrt(X.var(axis=0) + eps)   # treats mean and variance as constants (eval mode's dX)


def running_stats(batches, momentum):
    mean, var = np.zeros(batches[0].shape[1]), np.ones(batches[0].shape[1])
    for B in batches:
        mean = (1 - momentum) * mean + momentum * B.mean(axis=0)
        var = (1 - momentum) * var + momentum * B.var(axis=0, ddof=1)    # the unbiased variance
    return mean, var


def running_stats_wrong(batches, momentum):
    mean, var = np.zeros(batches[0].shape[1]), np.ones(batches[0].shape[1])
    for B in batches:
        mean = (1 - momentum) * mean + momentum * B.mean(axis=0)
        var = (1 - momentum) * var + momentum * B.var(axis=0)            # biased: what the batch is normalized with
    return mean, var


ANSWERS = {name: f for name, f in globals().items() if callable(f) and not name.endswith("_wrong")
           and getattr(f, "__module__", None) == __name__}
WRONG = {name[:-len("_wrong")]: f for name, f in globals().items() if name.endswith("_wrong")}
