"""Softmax regression again, with npnet's layers, loss and optimizer.

The same model as 01: ``Flatten -> Linear(784, 10)``, weights N(0, 0.01), SGD
with lr 0.1. Now the layer computes its own gradient (``backward``), the loss
fuses softmax and cross-entropy stably, and the optimizer updates the
parameters in place.

    python examples/02_softmax_npnet.py [--quick]
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

rng = np.random.default_rng(0)
net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10, rng=rng))
nn.init.normal_(net[1].params["weight"], 0.0, 0.01, rng=rng)
nn.init.zeros_(net[1].params["bias"])
loss = nn.CrossEntropyLoss()          # takes logits: log-softmax and NLL in one stable step
trainer = optim.SGD(net.params, lr=0.1)

# One step spelled out: forward returns the output and a closure that computes the gradients.
X, y = next(iter(train_iter))
logits, backward = net.forward(X)
l, dloss = loss.forward(logits, y)
_, grads = backward(dloss(), need_dx=False)   # the images need no gradient (torch skips it too): no dX = dY W
print(f"one batch: loss {float(l):.4f}; gradients for {sorted(grads)}; "
      f"weight gradient shape {grads['1.weight'].shape} (out, in), like torch")

for epoch in range(1, epochs + 1):
    stats = train_epoch(net, loss, trainer, train_iter, epoch=epoch)
    print(f"epoch {epoch}: loss {stats.loss:.4f}, train accuracy {stats.accuracy:.3f}, "
          f"test accuracy {evaluate_accuracy(net, test_iter):.3f}")
print(f"final test accuracy: {evaluate_accuracy(net, test_iter):.4f}")
