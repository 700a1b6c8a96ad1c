# Chapter 8 of the course as a notebook: built into 08_batch_normalization.ipynb by notebooks/build.py.

# %% [markdown]
# # 8. Batch normalization
#
# Chapter 7's sigmoid LeNet sat near chance for hundreds of steps before it learned.
# Batch normalization standardizes each channel's values over the batch, at every layer,
# so that every layer sees inputs of a steady scale; the same network at the same
# learning rate then learns from its first steps. This notebook writes the forward,
# derives the backward down to one expression for $dX$, shows npnet's plain kernels,
# checks them, explains the running statistics (why a model in eval mode computes
# something else than in training), and trains LeNet with and without it.
#
# Takes about two minutes at full size (two LeNets, 2 epochs on 20,000 images each).

# %%
from course import *   # SIZE, pick, progress, show_source, check_gradients, answer, check

import matplotlib.pyplot as plt
import numpy as np

import npnet.nn.functional as F
from npnet import models, nn, optim
from npnet.data import DataLoader, load_fashion_mnist
from npnet.train import evaluate_accuracy, train_epoch

plt.rcParams.update({"figure.dpi": 72, "figure.figsize": (8, 3)})
print(f"size: {SIZE}")

# %% [markdown]
# ## The forward
#
# Batch normalization works channel by channel. After a Linear layer the input is
# $X: (N, C)$ and channel $c$ has the $n = N$ values $X_{\cdot c}$; after a convolution it
# is $X: (N, C, H, W)$ and channel $c$ has $n = N H W$ values (every position of every
# image: one kernel made them all). Over those $n$ values $x_1, \dots, x_n$:
#
# $$\mu = \frac{1}{n}\sum_i x_i,\qquad \sigma^2 = \frac{1}{n}\sum_i (x_i - \mu)^2,\qquad
#   s = \sqrt{\sigma^2 + \epsilon},\qquad \hat x_i = \frac{x_i - \mu}{s},\qquad
#   y_i = \gamma\,\hat x_i + \beta.$$
#
# $\mu, \sigma^2, s$ are $(C,)$ (one per channel), $\hat x$ and $y$ are shaped like $X$,
# and the learned scale $\gamma$ (`weight`) and shift $\beta$ (`bias`) are $(C,)$,
# starting at 1 and 0: the layer can undo the standardization if that helps. The
# variance is the biased one (divided by $n$), as torch normalizes. The kernel also
# returns the new running statistics (below):

# %%
show_source(F.batch_norm)

# %% [markdown]
# ## The backward, in one expression
#
# Let $dy_i = \partial L/\partial y_i$ and $g_i = \gamma\, dy_i = \partial L/\partial \hat x_i$.
# The parameters are the easy part (sums over the channel's $n$ values, $(C,)$ each):
#
# $$d\beta = \sum_i dy_i, \qquad d\gamma = \sum_i dy_i\,\hat x_i.$$
#
# The input is not: every $\hat x_i$ depends on every $x_j$ of its channel, through
# $\mu$ and $s$. With $\partial\mu/\partial x_j = 1/n$ and
# $\partial\sigma^2/\partial x_j = \frac{2}{n}(x_j - \mu)$ (the term through $\mu$ vanishes
# because $\sum_i (x_i - \mu) = 0$), $\partial s/\partial x_j = \frac{x_j - \mu}{n s} = \hat x_j / n$, so
#
# $$\frac{\partial \hat x_i}{\partial x_j} = \frac{\delta_{ij} - 1/n}{s} - \frac{x_i - \mu}{s^2}\,\frac{\hat x_j}{n}
#   = \frac{1}{s}\Big(\delta_{ij} - \frac{1}{n} - \frac{\hat x_i \hat x_j}{n}\Big).$$
#
# Summing $g_i$ times that over $i$:
#
# $$dx_j = \frac{1}{s}\Big(g_j - \frac{1}{n}\sum_i g_i - \hat x_j\,\frac{1}{n}\sum_i g_i \hat x_i\Big)
#   \quad\Longrightarrow\quad
#   \boxed{dX = \frac{\gamma}{n\,s}\big(n\,dY - d\beta - \hat X\, d\gamma\big)}$$
#
# with $d\beta, d\gamma, \gamma, s$ broadcast along the channel axis: $dX$ is shaped like
# $X$, and costs two channel sums that the parameter gradients needed anyway. The two
# subtracted terms project out what normalization removes: within a channel, $dX$ sums
# to 0 (shifting a channel's inputs changes nothing) and, but for a term of order
# $\epsilon$, is orthogonal to $\hat X$ (neither does scaling them, when $\epsilon = 0$).
#
# Below, the same gradient three ways on a $(N, C) = (16, 5)$ batch: the chain rule step
# by step through $\mu$ and $\sigma^2$ (as one would derive it first), the boxed
# expression, and npnet's kernel.

# %%
rng = np.random.default_rng(0)
X = 3 + 2 * rng.standard_normal((16, 5))
gamma, beta, eps = rng.standard_normal(5), rng.standard_normal(5), 1e-5
dY = rng.standard_normal(X.shape)
n = len(X)

mu = X.mean(axis=0)                                   # step by step, as a graph of small operations
xc = X - mu
var = (xc ** 2).mean(axis=0)
s = np.sqrt(var + eps)
X_hat = xc / s
d_xhat = gamma * dY
d_var = (d_xhat * xc).sum(axis=0) * -0.5 * (var + eps) ** -1.5
d_mu = -(d_xhat / s).sum(axis=0) + d_var * -2 * xc.mean(axis=0)
dX_steps = d_xhat / s + d_var * 2 * xc / n + d_mu / n

dbeta, dgamma = dY.sum(axis=0), (dY * X_hat).sum(axis=0)     # the boxed expression
dX_compact = gamma / (n * s) * (n * dY - dbeta - X_hat * dgamma)

dX_kernel, dgamma_kernel, dbeta_kernel = F.batch_norm_backward.plain(dY, X, gamma, None, None, training=True, eps=eps)
print(f"max |step by step - compact| = {np.abs(dX_steps - dX_compact).max():.1e}")
print(f"max |compact - npnet's kernel| = {np.abs(dX_compact - dX_kernel).max():.1e}, "
      f"dgamma {np.abs(dgamma - dgamma_kernel).max():.1e}, dbeta {np.abs(dbeta - dbeta_kernel).max():.1e}")
print(f"per channel, sum of dX: {np.abs(dX_compact.sum(axis=0)).max():.1e}, "
      f"sum of dX * X_hat: {np.abs((dX_compact * X_hat).sum(axis=0)).max():.1e} (of the order of eps = {eps:g})")

# %% [markdown]
# npnet's plain backward, with the derivation in its docstring:

# %%
show_source(F.batch_norm_backward)

# %% [markdown]
# And the modules through both checks, in training mode (batch statistics), for a
# $(N, C)$ input and a $(N, C, H, W)$ one; torch's comparison includes the updated
# running statistics:

# %%
rng = np.random.default_rng(1)
check_gradients(nn.BatchNorm1d(5, dtype=np.float64), 3 + 2 * rng.standard_normal((8, 5)))
check_gradients(nn.BatchNorm2d(3, dtype=np.float64), rng.standard_normal((4, 3, 5, 5)));

# %% [markdown]
# ## Running statistics: train mode and eval mode
#
# In training, a sample's output depends on the other samples of its batch (they set
# $\mu$ and $s$). A trained model must not do that: a prediction for one image should
# not depend on what else is in the batch, and a batch of one has no variance at all.
# So every training forward also updates **running statistics**, exponential averages
# over the batches seen (momentum $m = 0.1$, the unbiased variance, as torch):
#
# $$\mu_{\text{run}} \leftarrow (1 - m)\,\mu_{\text{run}} + m\,\mu, \qquad
#   \sigma^2_{\text{run}} \leftarrow (1 - m)\,\sigma^2_{\text{run}} + m\,\sigma^2\,\frac{n}{n - 1},$$
#
# starting from 0 and 1. In eval mode (`model(x)`, or `forward(x, train=False)`) the
# layer normalizes with those instead: a fixed affine map per channel, the same for
# every batch, whose backward is just $\gamma\,dY/s_{\text{run}}$.

# %%
rng = np.random.default_rng(2)
data = 5 + 2 * rng.standard_normal((10000, 3))           # every channel: mean 5, variance 4
bn = nn.BatchNorm1d(3, dtype=np.float64)
for step in range(1, 41):
    bn.forward(data[rng.choice(len(data), 64)])             # a training forward updates the buffers
    if step in (1, 5, 10, 20, 40):
        print(f"after {step:2d} batches: running mean {bn.buffers['running_mean'].round(2)}, "
              f"running var {bn.buffers['running_var'].round(2)}")

x = data[:4]
alone_train, _ = bn.forward(x, train=True)
among_train, _ = bn.forward(np.concatenate([x, data[100:104] + 3]), train=True)
print("sample 0, train mode, in two batches:", alone_train[0].round(3), among_train[0].round(3))
print("sample 0, eval mode, in two batches: ", bn(x)[0].round(3), bn(np.concatenate([x, data[100:104] + 3]))[0].round(3))
try:
    bn.forward(x[:1], train=True)
except ValueError as e:
    print("a batch of one in train mode:", e)

# %% [markdown]
# (The two training forwards just above moved the running statistics too: in npnet, as
# in torch, every training forward does.)
#
# ## LeNet with and without batch normalization
#
# Chapter 7's LeNet, and the same network with a `BatchNorm2d` after each convolution
# and a `BatchNorm1d` after each hidden Linear, before the sigmoid
# (`models.lenet(batch_norm=True)`, the course's batch-normalized LeNet). Same data, same
# initialization scheme, same learning rate (0.9), same number of steps.

# %%
def lenet(batch_norm=False):
    """``models.lenet`` (seed 0): it takes (N, 1, 28, 28) images, as DataLoader yields them."""
    return models.lenet(batch_norm=batch_norm, rng=np.random.default_rng(0))


X_train, y_train, X_test, y_test = load_fashion_mnist()
n_train, n_test = pick(quick=2000, full=20000), pick(quick=1000, full=10000)
test_iter = DataLoader(X_test[:n_test], y_test[:n_test], 1000)
epochs = pick(quick=1, full=2)
runs = {}
for batch_norm in (False, True):
    name = "LeNet + BatchNorm" if batch_norm else "LeNet"
    net = lenet(batch_norm)
    train_iter = DataLoader(X_train[:n_train], y_train[:n_train], 256, shuffle=True, rng=np.random.default_rng(1))
    opt = optim.SGD(net.params, lr=0.9)
    steps, accuracy = [], []
    bar = progress(total=epochs * len(train_iter), desc=name)
    for epoch in range(1, epochs + 1):
        stats = train_epoch(net, nn.CrossEntropyLoss(), opt, train_iter, epoch=epoch,
                            callback=lambda info: (steps.append(info.loss), bar.update()))
        accuracy.append(evaluate_accuracy(net, test_iter))
        print(f"{name}, epoch {epoch}: loss {stats.loss:.4f}, train accuracy {stats.accuracy:.4f}, "
              f"test accuracy {accuracy[-1]:.4f} ({stats.seconds:.0f} s)")
    bar.close()
    runs[name] = net, steps, accuracy

# %%
fig, (left, right) = plt.subplots(1, 2)
for name, (_, steps, accuracy) in runs.items():
    left.plot(np.arange(1, len(steps) + 1), steps, lw=0.8, label=name)
    right.plot(np.arange(1, epochs + 1), accuracy, "o-", label=name)
left.set(xlabel="step", ylabel="training loss (per batch)")
right.set(xlabel="epoch", ylabel="test accuracy (eval mode)", ylim=(0, 1))
left.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# Without normalization the loss stays near $\log 10 \approx 2.30$ for every step of this
# run (chapter 7's LeNet needed a few hundred steps before it began to learn); with it,
# the network learns from the start.
#
# The batch-normalized network's test accuracy is measured in eval mode, with running
# statistics that average the last few dozen batches, computed by **older weights**.
# At a learning rate as large as 0.9 the weights move fast, so those averages lag what
# the current weights produce. Re-estimating them with the final weights (a pass over
# training batches in train mode, no updates, with `momentum=None`: torch's cumulative
# average) shows how much that lag costs:

# %%
net = runs["LeNet + BatchNorm"][0]
norms = [m for m in net if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
print(f"eval mode, running statistics from training: test accuracy {evaluate_accuracy(net, test_iter):.4f}")
for m in norms:
    m.reset_running_stats()
    m.momentum = None
for Xb, _ in DataLoader(X_train[:n_train], y_train[:n_train], 256):
    net.forward(Xb)                                         # no backward, no update: only the statistics move
print(f"eval mode, statistics re-estimated with the final weights: test accuracy {evaluate_accuracy(net, test_iter):.4f}")

# %% [markdown]
# ## Exercises
#
# **Exercise 1.** `batch_norm_dx(dY, X, gamma, eps)`: $dX$ of batch normalization in
# training mode for an $(N, C)$ input (the boxed expression above). The check compares
# it with torch's autograd.

# %%
def batch_norm_dx(dY, X, gamma, eps):
    raise NotImplementedError


# %%
check("batch_norm_dx", answer("batch_norm_dx", batch_norm_dx))

# %% [markdown]
# **Exercise 2.** `running_stats(batches, momentum)`: the running mean and variance of
# a fresh `BatchNorm1d` (they start at 0 and 1) after training forwards on each
# $(N, C)$ batch of `batches` in turn. Return `(running_mean, running_var)`; eval mode
# normalizes with exactly these. The check compares them with torch's `BatchNorm1d`.

# %%
def running_stats(batches, momentum):
    raise NotImplementedError


# %%
check("running_stats", answer("running_stats", running_stats))
