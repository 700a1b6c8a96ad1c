# Chapter 3 of the course as a notebook: built into 03_cross_entropy_stability.ipynb by notebooks/build.py.

# %% [markdown]
# # 3. Cross-entropy and numerical stability
#
# Chapter 2's softmax computes $e^{O}$ directly. In float32, $e^{89}$ is already
# infinite, and $\infty/\infty$ is `nan`; taking $-\log$ of a probability that rounded
# to 0 gives $\infty$ even earlier. This notebook derives the form that never breaks
# (log-sum-exp), shows it in npnet's kernels, measures where each form fails, and then
# breaks the naive form on real Fashion-MNIST logits.
#
# Takes about a minute at full size (the study's 401 logit scales, then a short training run).

# %%
from course import *   # SIZE, pick, progress, show_source, check_gradients, answer, check

import matplotlib.pyplot as plt
import numpy as np

import npnet.nn.functional as F
from npnet import nn, optim
from npnet.data import DataLoader, load_fashion_mnist
from npnet.studies import stability
from npnet.train import evaluate_accuracy, train_epoch

plt.rcParams.update({"figure.dpi": 72, "figure.figsize": (8, 3)})
print(f"size: {SIZE}")

# %% [markdown]
# ## Where the naive softmax breaks

# %%
for dtype in (np.float32, np.float64):
    O = np.array([[1000.0, 0.0, -1000.0], [10.0, 0.0, -10.0]], dtype=dtype)
    with np.errstate(all="ignore"):
        naive = np.exp(O) / np.exp(O).sum(axis=1, keepdims=True)
    print(f"{np.dtype(dtype).name}: exp overflows above {np.log(np.finfo(dtype).max):.2f}")
    print("  naive  :", naive.tolist())
    print("  npnet  :", F.softmax(O, axis=1).tolist())

# %% [markdown]
# ## The stable forms, derived
#
# **Shift invariance.** For any constant $m$ (per row),
# $\frac{e^{o_k}}{\sum_j e^{o_j}} = \frac{e^{o_k - m}}{\sum_j e^{o_j - m}}$. With
# $m = \max_j o_j$ every exponent is $\le 0$, so nothing overflows, and the largest term
# is $e^0 = 1$, so the sum is at least 1 and never 0.
#
# **Log-sum-exp.** Cross-entropy needs $\log P$, not $P$. A probability can be smaller
# than the smallest float (it rounds to 0, and $-\log 0 = \infty$) while its logarithm is
# an ordinary number. So compute the log directly:
#
# $$\log P_{nk} = (o_{nk} - m_n) - \log \sum_j e^{o_{nj} - m_n},\qquad
#   L = -\frac{1}{N}\sum_n \log P_{n t_n}.$$
#
# Every term is finite for finite logits: $o - m \le 0$ and the sum lies in $[1, C]$.
#
# **Its gradient.** Differentiating $\log P_{nk}$ gives
# $\partial \log P_{nt} / \partial o_{nk} = \mathbb{1}[k = t] - P_{nk}$, so
#
# $$\frac{\partial L}{\partial O} = \frac{1}{N}\big(P - \mathrm{onehot}(t)\big): (N, C),$$
#
# bounded entry by entry by $1/N$. The naive route instead goes through
# $\partial L / \partial P_{nt} = -1/(N P_{nt})$, which is infinite once $P_{nt}$ rounds
# to 0, and then through the softmax Jacobian, where $\infty \cdot 0$ gives `nan`. For
# `log_softmax` alone, $Y = \log P$, the backward of an upstream gradient $dY: (N, C)$ is
#
# $$dX = dY - e^{Y} \textstyle\sum_k dY_{\cdot k}\quad(\text{row sums, } (N, 1)).$$
#
# In npnet's plain kernels, read from the library:

# %%
show_source(F.log_softmax)
show_source(F.log_softmax_backward)

# %% [markdown]
# `cross_entropy` takes logits (never probabilities) and starts from that log-softmax:

# %%
show_source(F.cross_entropy)

# %% [markdown]
# Checked by finite differences and against torch, at logits large enough that
# $e^{o}$ would overflow in float32:

# %%
rng = np.random.default_rng(0)
check_gradients(nn.LogSoftmax(axis=1), 100 * rng.standard_normal((4, 5)))
check_gradients(nn.CrossEntropyLoss(), 100 * rng.standard_normal((4, 5)), target=rng.integers(0, 5, 4));

# %% [markdown]
# ## Measured: where each form fails
#
# `npnet.studies.stability` (also `npnet study softmax-stability`) evaluates five forms
# on 64 rows of logits scaled from 1 to $10^4$, in float32 and float64, and locates the
# first failing scale of each by bisection. The targets are the *least* likely classes,
# so the probabilities involved are the smallest ones.

# %%
result = stability.run(quick=SIZE == "quick")
print(stability.table(result))

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), sharey=True)
for ax, dtype in zip(axes, stability.DTYPES):
    for form, curve in result.loss[dtype].items():
        finite = np.isfinite(curve)
        ax.plot(result.scales[finite], curve[finite], label=form, lw=4 if form != "CE stable" else 1.5,
                alpha=0.5 if form != "CE stable" else 1)
    ax.axvline(result.overflow_limit[dtype], color="k", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="logit scale", title=f"{dtype}: the loss while finite")
axes[0].set_ylabel("cross-entropy")
axes[1].legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# The naive curves stop where they become `inf`/`nan` (the vertical line is where `exp`
# overflows); the log-sum-exp loss goes on to the end of the grid, in both dtypes.

# %% [markdown]
# ## On real logits
#
# Train softmax regression briefly with npnet, then sharpen its logits by a temperature
# factor: the same predictions, more confident. Where the naive
# $-\log(\text{softmax})$ of the true class becomes infinite, the log-sum-exp loss is
# still a number.

# %%
X_train, y_train, X_test, y_test = load_fashion_mnist()
n_train, n_test = pick(quick=5000, full=len(y_train)), pick(quick=1000, full=len(y_test))
train_iter = DataLoader(X_train[:n_train], y_train[:n_train], 256, shuffle=True, rng=np.random.default_rng(1))
test_iter = DataLoader(X_test[:n_test], y_test[:n_test], 1000)
rng = np.random.default_rng(0)
net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10, rng=rng))
opt = optim.SGD(net.params, lr=0.1)
epochs = pick(quick=1, full=3)
bar = progress(total=epochs * len(train_iter), desc="training")
for epoch in range(1, epochs + 1):
    train_epoch(net, nn.CrossEntropyLoss(), opt, train_iter, epoch=epoch, callback=lambda step: bar.update())
bar.close()
print(f"test accuracy after training: {evaluate_accuracy(net, test_iter):.4f} (epochs: {epochs})")

logits = np.concatenate([net(Xb) for Xb, _ in test_iter])            # float32 (n_test, 10)
target = y_test[:n_test]
wrong = logits.argmax(axis=1) != target
print(f"{wrong.sum()} of {len(target)} test images are misclassified")
print(f"{'temperature':>11} {'largest logit':>14} {'naive: inf':>11} {'(misclassified)':>16} {'nan':>5} "
      f"{'stable: inf/nan':>16} {'stable mean':>12}")
for factor in (1, 10, 30, 100, 300):
    z = logits * np.float32(factor)
    with np.errstate(all="ignore"):
        naive = -np.log(stability.naive_softmax(z)[np.arange(len(target)), target])
    stable = F.cross_entropy(z, target, reduction="none")
    inf = np.isinf(naive)
    print(f"{factor:>11} {z.max():>14.1f} {inf.sum():>11} {(inf & wrong).sum():>16} {np.isnan(naive).sum():>5} "
          f"{(~np.isfinite(stable)).sum():>16} {stable.mean():>12.4g}")

# %% [markdown]
# Two failures, independent of each other. A misclassified image's true-class
# probability can round to 0, and $-\log 0 = \infty$: only misclassified images give
# `inf` (the two inf columns are equal). And once the largest logit of a row passes
# 88.7, `exp` overflows to `inf`, $\infty/\infty$ is `nan`, and the row is lost, right
# or wrong (the nan column); as more rows overflow, fewer are left to give `inf`. The
# log-sum-exp loss stays finite throughout.

# %% [markdown]
# ## Exercises
#
# **Exercise 1.** `log_softmax(X)`: the log of the softmax of each row of `X`, finite
# for any finite logits. The check feeds logits of size 1000.

# %%
def log_softmax(X):
    raise NotImplementedError


# %%
check("log_softmax", answer("log_softmax", log_softmax))

# %% [markdown]
# **Exercise 2.** `cross_entropy_backward(logits, target)`: the gradient of the *mean*
# cross-entropy with respect to the logits $(N, C)$, for class indices `target` $(N,)$.

# %%
def cross_entropy_backward(logits, target):
    raise NotImplementedError


# %%
check("cross_entropy_backward", answer("cross_entropy_backward", cross_entropy_backward))
