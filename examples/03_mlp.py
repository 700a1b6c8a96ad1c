"""A multilayer perceptron: one hidden layer of 256 ReLU units.

``Flatten -> Linear(784, 256) -> ReLU -> Linear(256, 10)``, weights N(0, 0.01),
SGD with lr 0.1: the course's MLP. The hidden layer lets the model learn
features that no linear function of the pixels can express; compare its test
accuracy with softmax regression's (02).

    python examples/03_mlp.py [--quick]
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

X_train, y_train, X_test, y_test = load_fashion_mnist()
if args.quick:
    X_train, y_train, X_test, y_test = X_train[:5000], y_train[:5000], X_test[:1000], y_test[:1000]
train_iter = DataLoader(X_train, y_train, 256, shuffle=True, rng=np.random.default_rng(1))
test_iter = DataLoader(X_test, y_test, 256)

num_inputs, num_hiddens, num_outputs = 784, 256, 10
rng = np.random.default_rng(0)
net = nn.Sequential(nn.Flatten(), nn.Linear(num_inputs, num_hiddens, rng=rng), nn.ReLU(),
                    nn.Linear(num_hiddens, num_outputs, rng=rng))
for layer in (net[1], net[3]):
    nn.init.normal_(layer.params["weight"], 0.0, 0.01, rng=rng)
    nn.init.zeros_(layer.params["bias"])
print(net)

loss = nn.CrossEntropyLoss()
trainer = optim.SGD(net.params, lr=0.1)
for epoch in range(1, epochs + 1):
    stats = train_epoch(net, loss, trainer, train_iter, epoch=epoch)
    print(f"epoch {epoch}: loss {stats.loss:.4f}, train accuracy {stats.accuracy:.3f}, "
          f"test accuracy {evaluate_accuracy(net, test_iter):.3f}")
print(f"final test accuracy: {evaluate_accuracy(net, test_iter):.4f}")
