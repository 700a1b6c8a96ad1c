# Chapter 4 of the course as a notebook: built into 04_mlp_backward.ipynb by notebooks/build.py.

# %% [markdown]
# # 4. The multilayer perceptron and its backward pass
#
# One hidden layer of 256 ReLU units between the pixels and the logits: the course's
# MLP. This notebook derives its backward pass layer by layer, writes it out in NumPy,
# shows that npnet's layers compute exactly the same gradients (each layer's backward
# sits right under its forward), checks them against finite differences and torch, and
# trains the network on Fashion-MNIST.
#
# Takes about a minute at full size (all 60,000 images, 10 epochs).

# %%
from course import *   # SIZE, pick, progress, show_source, check_gradients, answer, check

import matplotlib.pyplot as plt
import numpy as np

import npnet.nn.functional as F
from npnet import nn, optim
from npnet.data import DataLoader, load_fashion_mnist
from npnet.train import evaluate_accuracy, train_epoch

plt.rcParams.update({"figure.dpi": 72, "figure.figsize": (8, 3)})
print(f"size: {SIZE}")

# %% [markdown]
# ## Forward and backward, layer by layer
#
# With $X: (N, 784)$, hidden width $H = 256$ and $C = 10$ classes:
#
# $$A = X W_1^\top + b_1,\quad Z = \max(A, 0),\quad O = Z W_2^\top + b_2,\quad
#   L = \mathrm{CE}(O, t)$$
#
# | quantity | shape | backward |
# |---|---|---|
# | $G = \partial L/\partial O$ | $(N, C)$ | $\frac{1}{N}(\mathrm{softmax}(O) - \mathrm{onehot}(t))$ (chapter 3) |
# | $\partial L/\partial W_2$ | $(C, H)$ | $G^\top Z$ |
# | $\partial L/\partial b_2$ | $(C,)$ | $\sum_n G_{n\cdot}$ |
# | $dZ = \partial L/\partial Z$ | $(N, H)$ | $G\,W_2$ |
# | $dA = \partial L/\partial A$ | $(N, H)$ | $dZ \odot \mathbb{1}[A > 0]$ |
# | $\partial L/\partial W_1$ | $(H, 784)$ | $dA^\top X$ |
# | $\partial L/\partial b_1$ | $(H,)$ | $\sum_n dA_{n\cdot}$ |
#
# Each Linear layer is chapter 2's derivation again; the only new step is ReLU. It acts
# entry by entry, so its Jacobian is diagonal: $\partial Z_{nh}/\partial A_{nh}$ is 1
# where $A_{nh} > 0$ and 0 where $A_{nh} < 0$. At exactly 0 the derivative does not
# exist; torch (and npnet) use 0. The whole backward is the forward read in reverse,
# each layer turning the gradient of its output into the gradient of its input and of
# its parameters.

# %% [markdown]
# ## Written out in NumPy, against npnet's layers
#
# A small batch of real images through both: the hand-written backward above, and
# npnet's `Sequential`, whose `forward` returns a closure that runs each layer's
# backward in reverse. Same weights, same batch.

# %%
X_train, y_train, X_test, y_test = load_fashion_mnist()
rng = np.random.default_rng(0)
net = nn.Sequential(nn.Flatten(), nn.Linear(784, 256, rng=rng), nn.ReLU(), nn.Linear(256, 10, rng=rng))
loss_fn = nn.CrossEntropyLoss()
Xb, yb = next(iter(DataLoader(X_train, y_train, 64)))                 # float32 (64, 1, 28, 28)

W1, b1, W2, b2 = (net.params[k] for k in ("1.weight", "1.bias", "3.weight", "3.bias"))
X = Xb.reshape(len(Xb), -1)
A = X @ W1.T + b1
Z = np.maximum(A, 0)
O = Z @ W2.T + b2
G = F.softmax(O, axis=1)
G[np.arange(len(yb)), yb] -= 1
G /= len(yb)
mine = {"3.weight": G.T @ Z, "3.bias": G.sum(axis=0)}
dA = (G @ W2) * (A > 0)
mine.update({"1.weight": dA.T @ X, "1.bias": dA.sum(axis=0)})

logits, backward = net.forward(Xb)
loss, loss_backward = loss_fn.forward(logits, yb)
_, grads = backward(loss_backward(), need_dx=False)
for name in grads:
    scale = np.abs(grads[name]).max()
    print(f"{name:9} {str(grads[name].shape):11} max |by hand - npnet| = {np.abs(mine[name] - grads[name]).max():.1e}"
          f"  (entries up to {scale:.1e})")

# %% [markdown]
# Equal up to float32 rounding. In the library, each step lives where a learner
# would look for it: `nn.ReLU`'s backward right under its forward, the kernel it calls,
# and `Sequential`, which chains the closures.

# %%
show_source(nn.ReLU.forward)
show_source(F.relu_backward)
show_source(nn.Sequential.forward)

# %% [markdown]
# Every piece, and the whole network, through both checks (float64, small sizes so
# that finite differences stay cheap): ReLU and Sigmoid alone, then a
# Flatten–Linear–ReLU–Linear stack with its loss.

# %%
rng = np.random.default_rng(1)
x = rng.standard_normal((4, 6))
check_gradients(nn.ReLU(), x)
check_gradients(nn.Sigmoid(), x)
small = nn.Sequential(nn.Flatten(), nn.Linear(6, 5, rng=rng), nn.ReLU(), nn.Linear(5, 3, rng=rng))
check_gradients(small, rng.standard_normal((4, 2, 3)));

# %% [markdown]
# ## Training the MLP on Fashion-MNIST
#
# The course's setting: weights $N(0, 0.01^2)$, biases 0, SGD with learning rate 0.1,
# batches of 256.

# %%
n_train, n_test = pick(quick=5000, full=len(y_train)), pick(quick=1000, full=len(y_test))
train_iter = DataLoader(X_train[:n_train], y_train[:n_train], 256, shuffle=True, rng=np.random.default_rng(1))
test_iter = DataLoader(X_test[:n_test], y_test[:n_test], 1000)
rng = np.random.default_rng(0)
net = nn.Sequential(nn.Flatten(), nn.Linear(784, 256, rng=rng), nn.ReLU(), nn.Linear(256, 10, rng=rng))
for layer in (net[1], net[3]):
    nn.init.normal_(layer.params["weight"], 0.0, 0.01, rng=rng)
    nn.init.zeros_(layer.params["bias"])
opt = optim.SGD(net.params, lr=0.1)
epochs = pick(quick=1, full=10)
history = []
bar = progress(total=epochs * len(train_iter), desc="MLP")
for epoch in range(1, epochs + 1):
    stats = train_epoch(net, loss_fn, opt, train_iter, epoch=epoch, callback=lambda step: bar.update())
    history.append((stats.loss, stats.accuracy, evaluate_accuracy(net, test_iter)))
    print(f"epoch {epoch:2d}: loss {stats.loss:.4f}, train accuracy {stats.accuracy:.4f}, "
          f"test accuracy {history[-1][2]:.4f}")
bar.close()

# %%
e = np.arange(1, epochs + 1)
fig, (left, right) = plt.subplots(1, 2)
left.plot(e, [h[0] for h in history], "o-")
left.set(xlabel="epoch", ylabel="training loss")
right.plot(e, [h[1] for h in history], "o-", label="train (as it trained)")
right.plot(e, [h[2] for h in history], "o-", label="test")
right.set(xlabel="epoch", ylabel="accuracy")
right.legend()
plt.tight_layout()
plt.show()
print(f"final test accuracy: {history[-1][2]:.4f} (softmax regression, chapter 2: about 0.83)")

# %% [markdown]
# What did the hidden units learn? Each row of $W_1$ is a 28 × 28 template that a unit
# matches against the image; some look like parts of garments.

# %%
W1 = net.params["1.weight"]
fig, axes = plt.subplots(1, 8, figsize=(8, 1.2))
for ax, row in zip(axes, W1[:8]):
    ax.imshow(row.reshape(28, 28), cmap="RdBu_r", interpolation="nearest")
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Exercises
#
# **Exercise 1.** `relu_backward(dY, X)`: the gradient of $\max(X, 0)$, given the
# upstream gradient `dY`. The check's `X` holds some exact zeros.

# %%
def relu_backward(dY, X):
    raise NotImplementedError


# %%
check("relu_backward", answer("relu_backward", relu_backward))

# %% [markdown]
# **Exercise 2.** `sigmoid_backward(dY, Y)`: the gradient of
# $\sigma(x) = 1/(1 + e^{-x})$, computed from the forward *output* $Y = \sigma(X)$
# (hint: $\sigma' = \sigma(1 - \sigma)$). The check compares it with torch's autograd.

# %%
def sigmoid_backward(dY, Y):
    raise NotImplementedError


# %%
check("sigmoid_backward", answer("sigmoid_backward", sigmoid_backward))
