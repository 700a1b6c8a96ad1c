"""Dropout: zero each hidden unit with probability p during training, scale the rest by 1 / (1 - p).

First the operation from scratch on a small matrix, then the course's network:
``784 -> 256 -> 256 -> 10`` with dropout 0.2 after the first hidden layer and
0.5 after the second, SGD with lr 0.5. At test time dropout is the identity
(``net(X)`` runs in inference mode).

    python examples/04_dropout.py [--quick]
"""
import argparse

import numpy as np

from npnet import nn, optim
from npnet.data import DataLoader, load_fashion_mnist
from npnet.train import evaluate_accuracy, train_epoch

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="5,000 training images, 2 epochs")
parser.add_argument("--epochs", type=int, default=None)
args = parser.parse_args()
epochs = args.epochs or (2 if args.quick else 10)


def dropout_layer(X, p, rng):
    """Inverted dropout from scratch: keep each entry with probability 1 - p, divided by 1 - p,
    so that the expected value of every entry is unchanged."""
    if p == 1:
        return np.zeros_like(X)
    mask = (rng.random(X.shape) > p).astype(X.dtype)
    return mask * X / (1.0 - p)


rng = np.random.default_rng(0)
X = np.arange(16, dtype=np.float32).reshape(2, 8)
for p in (0.0, 0.5, 1.0):
    print(f"dropout p={p}:\n{dropout_layer(X, p, rng)}")

X_train, y_train, X_test, y_test = load_fashion_mnist()
if args.quick:
    X_train, y_train, X_test, y_test = X_train[:5000], y_train[:5000], X_test[:1000], y_test[:1000]
train_iter = DataLoader(X_train, y_train, 256, shuffle=True, rng=np.random.default_rng(1))
test_iter = DataLoader(X_test, y_test, 256)

dropout1, dropout2 = 0.2, 0.5
net = nn.Sequential(nn.Flatten(),
                    nn.Linear(784, 256, rng=rng), nn.ReLU(), nn.Dropout(dropout1, rng=np.random.default_rng(2)),
                    nn.Linear(256, 256, rng=rng), nn.ReLU(), nn.Dropout(dropout2, rng=np.random.default_rng(3)),
                    nn.Linear(256, 10, rng=rng))
for layer in (net[1], net[4], net[7]):
    nn.init.normal_(layer.params["weight"], 0.0, 0.01, rng=rng)
    nn.init.zeros_(layer.params["bias"])

loss = nn.CrossEntropyLoss()
trainer = optim.SGD(net.params, lr=0.5)
for epoch in range(1, epochs + 1):
    stats = train_epoch(net, loss, trainer, train_iter, epoch=epoch)
    print(f"epoch {epoch}: loss {stats.loss:.4f}, train accuracy {stats.accuracy:.3f} (with dropout), "
          f"test accuracy {evaluate_accuracy(net, test_iter):.3f} (without)")
print(f"final test accuracy: {evaluate_accuracy(net, test_iter):.4f}")
