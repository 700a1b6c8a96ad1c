# Chapter 2 of the course as a notebook: built into 02_softmax_regression.ipynb by notebooks/build.py.

# %% [markdown]
# # 2. Softmax regression, from scratch and then with `npnet.nn`
#
# The first classifier of the course, twice. First every step in plain NumPy: the
# model, softmax, cross-entropy, the gradient written out by hand, SGD. Then the same
# model from npnet's parts (`nn.Linear`, `nn.CrossEntropyLoss`, `optim.SGD`), whose
# backward passes are the same formulas, read from the library and checked against
# finite differences and torch.
#
# Takes about 30 seconds at full size (all 60,000 training images, 10 epochs, twice).

# %%
from course import *   # SIZE, pick, progress, show_source, check_gradients, answer, check

import matplotlib.pyplot as plt
import numpy as np

import npnet.nn.functional as F
from npnet import nn, optim
from npnet.data import DataLoader, get_fashion_mnist_labels, load_fashion_mnist
from npnet.train import evaluate_accuracy, train_epoch

plt.rcParams.update({"figure.dpi": 72, "figure.figsize": (8, 3)})
X_train, y_train, X_test, y_test = load_fashion_mnist()
n_train, n_test = pick(quick=5000, full=len(y_train)), pick(quick=1000, full=len(y_test))
X_train, y_train, X_test, y_test = X_train[:n_train], y_train[:n_train], X_test[:n_test], y_test[:n_test]
epochs, batch_size, lr = pick(quick=1, full=10), 256, 0.1
print(f"size: {SIZE}: {n_train} training and {n_test} test images; epochs: {epochs}")

# %% [markdown]
# ## The model and its gradient
#
# Each image becomes a row of 784 pixels; a batch is $X: (N, 784)$. One affine map gives
# ten scores (logits) per image, softmax turns them into probabilities, and the loss is
# the mean negative log-probability of the true class $t_n$:
#
# $$O = X W^\top + b,\quad P_{nk} = \frac{e^{O_{nk}}}{\sum_j e^{O_{nj}}},\quad
#   L = -\frac{1}{N}\sum_n \log P_{n t_n},
#   \qquad W: (10, 784),\ b: (10,),\ O, P: (N, 10).$$
#
# (`W` is stored as (out, in), as `torch.nn.Linear` stores it.) Since
# $\log P_{nt} = O_{nt} - \log\sum_j e^{O_{nj}}$, differentiating with respect to $O_{nk}$
# gives $\mathbb{1}[k = t_n] - P_{nk}$ inside the sum, so
#
# $$G = \frac{\partial L}{\partial O} = \frac{1}{N}\,\big(P - \mathrm{onehot}(t)\big): (N, 10).$$
#
# Then the chain rule through $O = XW^\top + b$, entry by entry
# $O_{nk} = \sum_i X_{ni} W_{ki} + b_k$:
#
# $$\frac{\partial L}{\partial W} = G^\top X: (10, 784),\qquad
#   \frac{\partial L}{\partial b} = \sum_n G_{n\cdot}: (10,),\qquad
#   \frac{\partial L}{\partial X} = G\,W: (N, 784).$$
#
# The bias is broadcast to every row, so its gradient is a sum over the rows: a
# broadcast's backward is a reduction (chapter 1).

# %% [markdown]
# ## From scratch
#
# Nothing but NumPy; `DataLoader` only serves shuffled batches of float32 images.

# %%
def softmax(O):
    E = np.exp(O)                                   # overflows for logits above ~88: chapter 3
    return E / E.sum(axis=1, keepdims=True)


rng = np.random.default_rng(0)
W = rng.normal(0, 0.01, size=(10, 784)).astype(np.float32)
b = np.zeros(10, dtype=np.float32)
W_start = W.copy()                                  # npnet's model below starts from the same weights
train_iter = DataLoader(X_train, y_train, batch_size, shuffle=True, rng=np.random.default_rng(1))
test_iter = DataLoader(X_test, y_test, batch_size)


scratch = []
bar = progress(total=epochs * len(train_iter), desc="from scratch")
for epoch in range(1, epochs + 1):
    total_loss = correct = 0.0
    for Xb, yb in train_iter:
        Xb = Xb.reshape(len(Xb), -1)                # (N, 784)
        P = softmax(Xb @ W.T + b)                   # (N, 10)
        total_loss += -np.log(P[np.arange(len(yb)), yb]).sum()
        correct += (P.argmax(axis=1) == yb).sum()
        G = P.copy()
        G[np.arange(len(yb)), yb] -= 1              # P - onehot(t)
        G /= len(yb)                                # ... over N
        W -= lr * (G.T @ Xb)                        # dW = G^T X
        b -= lr * G.sum(axis=0)                     # db = sum over rows
        bar.update()
    test_acc = sum(int(((Xb.reshape(len(Xb), -1) @ W.T + b).argmax(axis=1) == yb).sum())
                   for Xb, yb in test_iter) / n_test
    scratch.append((total_loss / n_train, correct / n_train, test_acc))
    print(f"epoch {epoch:2d}: loss {scratch[-1][0]:.4f}, train accuracy {scratch[-1][1]:.4f}, "
          f"test accuracy {test_acc:.4f}")
bar.close()

# %% [markdown]
# ## The same formulas in npnet
#
# npnet's plain kernels transcribe the derivation above. `linear` and `linear_backward`
# (the lines below are read from the library file as it is now):

# %%
show_source(F.linear)
show_source(F.linear_backward)

# %% [markdown]
# and the gradient of the loss with respect to the logits, $P - \mathrm{onehot}(t)$
# scaled by the reduction, with class weights, `ignore_index` and label smoothing each
# one visible step on top:

# %%
show_source(F.cross_entropy_backward)

# %% [markdown]
# Both checks, on small random inputs: `npnet.gradcheck` perturbs every input and
# parameter entry by $\pm\varepsilon$ in float64; `reference.compare` runs the torch twin
# (`torch.nn.Linear`, `torch.nn.CrossEntropyLoss`) on the same numbers and judges the
# difference against a bound derived from the dtype and the length of each sum.

# %%
rng = np.random.default_rng(2)
check_gradients(nn.Linear(5, 3, rng=rng), rng.standard_normal((4, 5)))
check_gradients(nn.CrossEntropyLoss(), rng.standard_normal((4, 3)), target=rng.integers(0, 3, 4));

# %% [markdown]
# ## The same model with `npnet.nn`
#
# `Flatten` then `Linear(784, 10)`, started from the very weights the scratch model
# started from ($W \sim N(0, 0.01^2)$, $b = 0$), the
# fused `CrossEntropyLoss` (it takes logits) and `SGD`. One step spelled out first:
# `forward` returns the output and a closure; calling the closure returns the gradients,
# keyed like `net.params`. The images need no gradient, so `need_dx=False` skips $G W$.

# %%
net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
net[1].params["weight"][...] = W_start              # what nn.init.normal_(weight, 0, 0.01, rng=...) draws
nn.init.zeros_(net[1].params["bias"])
loss_fn = nn.CrossEntropyLoss()
opt = optim.SGD(net.params, lr=lr)
train_iter = DataLoader(X_train, y_train, batch_size, shuffle=True, rng=np.random.default_rng(1))

# The first batch in file order, not one from train_iter: each pass over train_iter draws
# the next shuffle, and the training below must see the scratch model's batches.
Xb, yb = next(iter(DataLoader(X_train, y_train, batch_size)))
logits, backward = net.forward(Xb)
loss, loss_backward = loss_fn.forward(logits, yb)
_, grads = backward(loss_backward(), need_dx=False)
print(f"one batch: X {Xb.shape}, logits {logits.shape}, loss {float(loss):.4f}")
print({name: g.shape for name, g in grads.items()})

# %% [markdown]
# `train_epoch` runs exactly that step over every batch and applies `opt.step(grads)`;
# its `callback` drives the progress bar.

# %%
layers = []
bar = progress(total=epochs * len(train_iter), desc="npnet.nn")
for epoch in range(1, epochs + 1):
    stats = train_epoch(net, loss_fn, opt, train_iter, epoch=epoch, callback=lambda step: bar.update())
    layers.append((stats.loss, stats.accuracy, evaluate_accuracy(net, test_iter)))
    print(f"epoch {epoch:2d}: loss {stats.loss:.4f}, train accuracy {stats.accuracy:.4f}, "
          f"test accuracy {layers[-1][2]:.4f}")
bar.close()

# %%
fig, (left, right) = plt.subplots(1, 2)
for name, rows in (("from scratch", scratch), ("npnet.nn", layers)):
    e = np.arange(1, len(rows) + 1)
    left.plot(e, [r[0] for r in rows], "o-", label=name)
    right.plot(e, [r[2] for r in rows], "o-", label=name)
left.set(xlabel="epoch", ylabel="training loss")
right.set(xlabel="epoch", ylabel="test accuracy")
right.legend()
plt.tight_layout()
plt.show()
print(f"final test accuracy: from scratch {scratch[-1][2]:.4f}, npnet.nn {layers[-1][2]:.4f}")
print(f"largest difference between the two runs' epoch losses: "
      f"{max(abs(a[0] - b[0]) for a, b in zip(scratch, layers)):.1e}")

# %% [markdown]
# The two curves coincide: the same model, the same start and the same batches. They
# differ only in rounding, since the fused loss computes $\log P$ by log-sum-exp.
# Some test predictions:

# %%
Xb, yb = next(iter(test_iter))
predicted = net(Xb[:8]).argmax(axis=1)
fig, axes = plt.subplots(1, 8, figsize=(10, 1.9))
for ax, image, true, guess in zip(axes, Xb[:8, 0], get_fashion_mnist_labels(yb[:8]),
                                  get_fashion_mnist_labels(predicted)):
    ax.imshow(image, cmap="gray")
    ax.set_title(f"{true}\n→ {guess}", fontsize=8, color="black" if true == guess else "red")
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Exercises
#
# **Exercise 1.** `softmax(X)`: the softmax of each row of `X` (shape $(N, C)$), as
# probabilities that sum to 1 along axis 1.

# %%
def softmax(X):
    raise NotImplementedError


# %%
check("softmax", answer("softmax", softmax))

# %% [markdown]
# **Exercise 2.** `linear_backward(dY, X, W)`: return `(dX, dW, db)` for
# $Y = XW^\top + b$, with `X` $(N, D_\text{in})$, `W` $(D_\text{out}, D_\text{in})$ and the
# upstream gradient `dY` $(N, D_\text{out})$. Mind the layout of `dW`.

# %%
def linear_backward(dY, X, W):
    raise NotImplementedError


# %%
check("linear_backward", answer("linear_backward", linear_backward))
