# Chapter 1 of the course as a notebook: built into 01_tensors_and_reductions.ipynb by notebooks/build.py.

# %% [markdown]
# # 1. Tensors and reductions: `axis` and `keepdims`
#
# Every later chapter sums, averages or takes a maximum *along an axis*: softmax divides
# each row by its own sum, a loss averages over the batch, a gradient sums over every
# sample. This notebook makes those reductions, and their gradients, second nature:
#
# 1. shapes, reductions along an axis, and `keepdims` for broadcasting;
# 2. the gradient of a reduction, derived, checked by finite differences and by torch;
# 3. the real thing: Fashion-MNIST as an array, class means by reduction, and a
#    classifier made of nothing but reductions and broadcasting.
#
# Takes about 10 seconds at full size. `NPNET_NOTEBOOK_SIZE=quick` runs a few thousand
# images instead of all 70,000.

# %%
from course import *   # SIZE, pick, progress, show_source, check_gradients, answer, check

import matplotlib.pyplot as plt
import numpy as np

from npnet import nn
from npnet.data import FASHION_MNIST_LABELS, load_fashion_mnist, to_float

plt.rcParams.update({"figure.dpi": 72, "figure.figsize": (8, 3)})
print(f"size: {SIZE}")

# %% [markdown]
# ## Reductions along an axis
#
# A 2-D array `X` of shape $(N, D)$ has rows (axis 0 runs down them) and columns (axis 1
# runs across). `X.sum(axis=0)` adds the rows together: one number per column, shape
# $(D,)$. `X.sum(axis=1)` adds across each row: one number per row, shape $(N,)$. The
# axis you reduce is the axis that disappears.

# %%
X = np.array([[1.0, 2.0, 3.0],
              [4.0, 5.0, 6.0]])
for what, value in [("X", X), ("X.sum(axis=0)", X.sum(axis=0)), ("X.sum(axis=1)", X.sum(axis=1)),
                    ("X.sum(axis=1, keepdims=True)", X.sum(axis=1, keepdims=True)), ("X.sum()", X.sum())]:
    print(f"{what:<30} shape {str(np.shape(value)):<7} {np.asarray(value).tolist()}")

# %% [markdown]
# `keepdims=True` keeps the reduced axis with length 1: shape $(N, 1)$ instead of $(N,)$.
# That is what makes the result **broadcast back** against `X`: NumPy lines shapes up
# from the right, and a length-1 axis stretches to match. So `X / X.sum(axis=1,
# keepdims=True)` divides every row by its own sum. Without `keepdims` the $(N,)$ vector
# lines up with the *columns* instead: for a square `X` that silently divides by the
# wrong numbers, for a single column ($D = 1$) it silently broadcasts to $(N, N)$, and
# for most other shapes it fails.

# %%
S = X.sum(axis=1, keepdims=True)
print("row sums, kept as a column:", S.ravel().tolist(), "shape", S.shape)
print("X / S (each row sums to 1):\n", (X / S).round(3))
try:
    X / X.sum(axis=1)
except ValueError as exc:
    print("X / X.sum(axis=1) fails:", exc)

# %% [markdown]
# The same holds for `mean`, `max`, `argmax` and the rest, and for several axes at once:
# an image batch of shape $(N, 1, 28, 28)$ reduced over `axis=(2, 3)` gives one number
# per image and channel.

# %% [markdown]
# ## The gradient of a reduction
#
# Training needs every operation's gradient. Take the row mean with `keepdims`,
#
# $$Y_{i} = \frac{1}{D}\sum_{j=1}^{D} X_{ij}, \qquad X: (N, D),\quad Y: (N, 1).$$
#
# A scalar loss $L$ depends on `X` only through `Y`. Each $X_{ij}$ enters exactly one
# output, $Y_i$, with weight $1/D$, so by the chain rule
#
# $$\frac{\partial L}{\partial X_{ij}} = \frac{\partial L}{\partial Y_i}\,\frac{\partial Y_i}{\partial X_{ij}}
#   = \frac{1}{D}\,\frac{\partial L}{\partial Y_i},
#   \qquad dX = \tfrac{1}{D}\,\mathrm{broadcast}(dY): (N, 1) \to (N, D).$$
#
# **A reduction's backward is a broadcast**, and (as the next chapters show) a
# broadcast's backward is a reduction: the bias of a layer is added to every row, so its
# gradient is the sum of the rows' gradients. Here it is in NumPy, next to a
# finite-difference check written out by hand: perturb one entry by $\pm\varepsilon$
# and watch $L = \sum_i Y_i\,dY_i$ move.

# %%
def mean_rows(X):
    return X.mean(axis=1, keepdims=True)                    # (N, D) -> (N, 1)


def mean_rows_backward(dY, X):
    return np.broadcast_to(dY / X.shape[1], X.shape).copy()  # (N, 1) -> (N, D)


rng = np.random.default_rng(0)
Xs, dY = rng.standard_normal((3, 4)), rng.standard_normal((3, 1))
numeric, eps = np.zeros_like(Xs), 1e-6
for index in np.ndindex(*Xs.shape):
    up, down = Xs.copy(), Xs.copy()
    up[index] += eps
    down[index] -= eps
    numeric[index] = ((mean_rows(up) - mean_rows(down)) * dY).sum() / (2 * eps)
print("largest difference from finite differences:", np.abs(mean_rows_backward(dY, Xs) - numeric).max())
if torch_available():
    import torch

    t = torch.tensor(Xs, requires_grad=True)
    (t.mean(dim=1, keepdim=True) * torch.tensor(dY)).sum().backward()
    print("largest difference from torch autograd:   ", np.abs(mean_rows_backward(dY, Xs) - t.grad.numpy()).max())
else:
    print("note: PyTorch is not installed, so the torch comparison is skipped")

# %% [markdown]
# npnet's layers follow the same pattern. `nn.Flatten`, which turns each image of shape
# $(1, 28, 28)$ into a row of 784 numbers, moves no number at all: its backward reshapes
# the gradient back, $dX = \mathrm{reshape}(dY, \text{shape of } X)$. Here is its code,
# read from the library file, with the backward right under the forward:

# %%
show_source(nn.Flatten.forward)

# %% [markdown]
# `check_gradients` runs both checks every chapter uses: `npnet.gradcheck` (central
# finite differences in float64) and `reference.compare` (the same numbers through the
# torch twin, `torch.nn.Flatten`, and its autograd).

# %%
check_gradients(nn.Flatten(), np.random.default_rng(1).standard_normal((2, 1, 3, 3)));

# %% [markdown]
# ## The real thing: Fashion-MNIST as arrays
#
# `load_fashion_mnist` returns four NumPy arrays: 60,000 training and 10,000 test images
# of 28 × 28 `uint8` pixels, and their labels 0–9. `to_float` turns pixels into float32
# in $[0, 1]$ and adds the channel axis, as torchvision's `ToTensor` does.

# %%
X_train, y_train, X_test, y_test = load_fashion_mnist()
n_train, n_test = pick(quick=5000, full=len(y_train)), pick(quick=1000, full=len(y_test))
X_train, y_train, X_test, y_test = X_train[:n_train], y_train[:n_train], X_test[:n_test], y_test[:n_test]
images = to_float(X_train)
print(f"raw: {X_train.shape} {X_train.dtype}; as floats: {images.shape} {images.dtype}; labels: {y_train.shape}")
print(f"mean pixel over everything: {images.mean():.4f}")
print(f"mean image, axis=0:         shape {images.mean(axis=0).shape}")
print(f"brightness of each image, axis=(1, 2, 3): shape {images.mean(axis=(1, 2, 3)).shape}")
print(f"images per class (np.bincount): {np.bincount(y_train).tolist()}")

# %% [markdown]
# A reduction over the images *of one class* gives that class's mean image: the average
# over axis 0 of the rows whose label is $c$. Stacked, the ten means have shape
# $(10, 1, 28, 28)$.

# %%
means = np.stack([images[y_train == c].mean(axis=0) for c in range(10)])
fig, axes = plt.subplots(1, 10, figsize=(10, 1.6))
for c, ax in enumerate(axes):
    ax.imshow(means[c, 0], cmap="gray")
    ax.set_title(FASHION_MNIST_LABELS[c], fontsize=8)
    ax.axis("off")
plt.show()
print("means:", means.shape)

# %% [markdown]
# ## A classifier made of reductions: the nearest class mean
#
# Give each test image the class whose mean image is closest. With every image flattened
# to a row $x \in \mathbb{R}^{784}$ and the means as rows $m_c$, the squared distance
#
# $$\lVert x - m_c\rVert^2 = \lVert x\rVert^2 - 2\,x \cdot m_c + \lVert m_c\rVert^2$$
#
# is three reductions and a broadcast: $(B, 1)$ from `keepdims`, $(B, 10)$ from a matrix
# product, $(10,)$ from the means, added up into a $(B, 10)$ table whose `argmin` along
# axis 1 is the prediction. The test set goes through in batches, with a progress bar.

# %%
M = means.reshape(10, -1)                                      # (10, 784)
M_sq = (M * M).sum(axis=1)                                     # (10,)
test_images = to_float(X_test).reshape(len(y_test), -1)        # (N, 784)
predictions = np.empty(len(y_test), dtype=np.int64)
for start in progress(range(0, len(y_test), 500), desc="classifying"):
    B = test_images[start:start + 500]
    distances = (B * B).sum(axis=1, keepdims=True) - 2 * B @ M.T + M_sq    # (B, 1) + (B, 10) + (10,)
    predictions[start:start + 500] = distances.argmin(axis=1)
accuracy = (predictions == y_test).mean()
print(f"nearest class mean: test accuracy {accuracy:.4f} on {len(y_test)} images (chance: 0.1)")

# %%
per_class = np.array([(predictions[y_test == c] == c).mean() for c in range(10)])
plt.figure(figsize=(8, 2.6))
plt.bar(FASHION_MNIST_LABELS, per_class)
plt.ylabel("accuracy")
plt.title("nearest class mean, per class")
plt.xticks(rotation=30, fontsize=8)
plt.show()

# %% [markdown]
# Already far above chance, and with no training at all. Shirts, pullovers and coats
# share a silhouette, and their mean images look alike: the next chapter learns weights
# that separate them (softmax regression reaches about 0.83).

# %% [markdown]
# ## Exercises
#
# Write each function in place of `raise NotImplementedError`, then run the check cell
# under it; it compares your function with torch (with npnet where torch is not
# installed). Reference answers are in `answers.py`; try first.
#
# **Exercise 1.** `row_fractions(X)`: divide each row of `X` (shape $(N, D)$) by its own
# sum, so that every row sums to 1. (The check uses a *square* `X`, where a missing
# `keepdims` does not raise.)

# %%
def row_fractions(X):
    raise NotImplementedError


# %%
check("row_fractions", answer("row_fractions", row_fractions))

# %% [markdown]
# **Exercise 2.** `sum_backward(dY, X)`: the gradient with respect to `X` of
# `Y = X.sum(axis=1, keepdims=True)`, given the upstream gradient `dY` of shape $(N, 1)$.
# It has the shape of `X`.

# %%
def sum_backward(dY, X):
    raise NotImplementedError


# %%
check("sum_backward", answer("sum_backward", sum_backward))
