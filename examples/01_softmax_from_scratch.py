"""Softmax regression from scratch: only NumPy and npnet.data.

The course's first classifier, every step written out: reductions along an
axis, softmax, the model, cross-entropy, accuracy, a training loop with a
hand-written gradient and SGD, and prediction.

    python examples/01_softmax_from_scratch.py            # 10 epochs on all of Fashion-MNIST
    python examples/01_softmax_from_scratch.py --quick    # a subset, 2 epochs
"""
import argparse

import numpy as np

from npnet.data import DataLoader, get_fashion_mnist_labels, load_fashion_mnist

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="5,000 training images, 2 epochs")
parser.add_argument("--epochs", type=int, default=None)
args = parser.parse_args()
epochs = args.epochs or (2 if args.quick else 10)

# --- Reductions along an axis: sum over rows (axis 0) or columns (axis 1), keeping the axis or not.
X = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
print("X.sum(axis=0):", X.sum(axis=0).tolist(), "shape", X.sum(axis=0).shape)
print("X.sum(axis=1):", X.sum(axis=1).tolist(), "shape", X.sum(axis=1).shape)
S = X.sum(axis=1, keepdims=True)  # keeps the summed axis with length 1: shape (2, 1), ready to broadcast
print("X.sum(axis=1, keepdims=True):", S.tolist(), "shape", S.shape)


# --- Softmax: exponentiate, then divide each row by its sum (keepdims lets the division broadcast).
def softmax(X):
    X_exp = np.exp(X)      # overflows for logits above ~88 in float32: see 05_study_stability.py
    partition = X_exp.sum(axis=1, keepdims=True)
    return X_exp / partition


P = softmax(np.random.default_rng(0).normal(size=(2, 5)))
print("softmax rows sum to", P.sum(axis=1))

# --- The model: flatten each 28x28 image to 784 numbers, then one affine map to 10 logits.
num_inputs, num_outputs = 784, 10
rng = np.random.default_rng(0)
W = rng.normal(0, 0.01, size=(num_inputs, num_outputs)).astype(np.float32)
b = np.zeros(num_outputs, dtype=np.float32)


def net(X):
    return softmax(X.reshape(-1, num_inputs) @ W + b)


# --- Cross-entropy: minus the log of the probability given to the true class.
def cross_entropy(y_hat, y):
    return -np.log(y_hat[np.arange(len(y_hat)), y])


y_hat = np.array([[0.1, 0.3, 0.6], [0.3, 0.2, 0.5]])
print("cross-entropy of two toy predictions:", cross_entropy(y_hat, np.array([0, 2])))


# --- Accuracy: the fraction of rows whose largest entry is the label.
def accuracy(y_hat, y):
    return float((y_hat.argmax(axis=1) == y).sum())


def evaluate_accuracy(net, loader):
    correct = total = 0
    for X, y in loader:
        correct += accuracy(net(X), y)
        total += len(y)
    return correct / total


# --- Data: uint8 images become float32 in [0, 1], shape (B, 1, 28, 28).
X_train, y_train, X_test, y_test = load_fashion_mnist()
if args.quick:
    X_train, y_train, X_test, y_test = X_train[:5000], y_train[:5000], X_test[:1000], y_test[:1000]
batch_size, lr = 256, 0.1
train_iter = DataLoader(X_train, y_train, batch_size, shuffle=True, rng=np.random.default_rng(1))
test_iter = DataLoader(X_test, y_test, batch_size)
print(f"before training: test accuracy {evaluate_accuracy(net, test_iter):.3f} (chance is 0.1)")

# --- Training: for softmax + cross-entropy the gradient of the mean loss with respect
# to the logits is (y_hat - onehot(y)) / N; the chain rule through X W + b gives
# dW = X^T G and db = sum of G over the batch. SGD: parameter -= lr * gradient.
for epoch in range(epochs):
    total_loss = total_correct = n = 0.0
    for X, y in train_iter:
        X = X.reshape(-1, num_inputs)
        y_hat = net(X)
        loss = cross_entropy(y_hat, y)
        G = y_hat.copy()
        G[np.arange(len(y)), y] -= 1
        G /= len(y)
        W -= lr * (X.T @ G)
        b -= lr * G.sum(axis=0)
        total_loss += float(loss.sum())
        total_correct += accuracy(y_hat, y)
        n += len(y)
    print(f"epoch {epoch + 1}: loss {total_loss / n:.4f}, train accuracy {total_correct / n:.3f}, "
          f"test accuracy {evaluate_accuracy(net, test_iter):.3f}")

# --- Prediction: the first few test images, true label against predicted.
X, y = next(iter(test_iter))
predicted = net(X[:6]).argmax(axis=1)
for true, pred in zip(get_fashion_mnist_labels(y[:6]), get_fashion_mnist_labels(predicted)):
    print(f"  true {true:<12} predicted {pred}")
print(f"final test accuracy: {evaluate_accuracy(net, test_iter):.4f}")
