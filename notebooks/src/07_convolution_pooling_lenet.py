# Chapter 7 of the course as a notebook: built into 07_convolution_pooling_lenet.ipynb by notebooks/build.py.

# %% [markdown]
# # 7. Convolution, pooling and LeNet
#
# A convolution slides a small kernel over the image and takes, at every position, the
# weighted sum of the pixels under it: the same few weights everywhere. This notebook
# writes the convolution two ways (a sum over kernel offsets, then one matrix product
# over unfolded patches), derives its three gradients with their shapes, does the same
# for max and average pooling, shows the plain npnet kernels that transcribe each
# formula, checks them against finite differences and torch, and trains the course's
# LeNet on Fashion-MNIST.
#
# Takes about two minutes at full size (LeNet, 4 epochs on 30,000 images).

# %%
from course import *   # SIZE, pick, progress, show_source, check_gradients, answer, check

import time

import matplotlib.pyplot as plt
import numpy as np

import npnet.nn.functional as F
from npnet import models, nn, optim
from npnet.data import DataLoader, load_fashion_mnist, to_float
from npnet.train import evaluate_accuracy, train_epoch

plt.rcParams.update({"figure.dpi": 72, "figure.figsize": (8, 3)})
print(f"size: {SIZE}")

# %% [markdown]
# ## The convolution as a sum over kernel offsets
#
# An input $X: (N, C, H, W)$ (N images of C channels), a weight $W: (O, C, k_H, k_W)$
# (O kernels, each spanning every input channel) and a bias $b: (O,)$. Pad the input
# with $p$ zeros on each side ($X_p: (N, C, H + 2p, W + 2p)$); with stride 1,
#
# $$Y_{n,o,y,x} = b_o + \sum_{c=0}^{C-1}\sum_{i=0}^{k_H-1}\sum_{j=0}^{k_W-1}
#   W_{o,c,i,j}\, X_{p;\,n,c,\,y+i,\,x+j}, \qquad Y: (N, O, o_H, o_W),$$
#
# with $o_H = H + 2p - k_H + 1$ (and $o_W$ alike): the kernel fits that many times. (It
# is a cross-correlation, the kernel is not flipped; every deep-learning library calls
# it a convolution.) Read the sum the other way round: for one kernel offset $(i, j)$,
# the pixels $X_{p;\,n,c,\,y+i,\,x+j}$ over all $(y, x)$ form the slice
# `Xp[:, :, i:i+oH, j:j+oW]`, shaped like $Y$ but with $C$ channels, and the offset
# adds `W[:, :, i, j]` $(O, C)$ times that slice, summed over $c$:
#
# $$Y = b + \sum_{i,j} \texttt{einsum}(\text{"nchw,oc->nohw"},\ X_p[:, :, i{:}i{+}o_H, j{:}j{+}o_W],\ W[:, :, i, j]).$$
#
# $k_H k_W$ products, each over the whole batch. That is npnet's plain kernel, with
# stride $s$ (offset $(i, j)$ reads rows $s y + i$), dilation and groups added:

# %%
show_source(F.conv2d)

# %% [markdown]
# ## The same convolution as one matrix product (im2col)
#
# Unfold every patch the kernel sees into a column: the patch matrix
#
# $$P_{(c,i,j),\,(n,y,x)} = X_{p;\,n,c,\,y+i,\,x+j}, \qquad P: (C k_H k_W,\ N o_H o_W),$$
#
# and flatten the weight to $W_2: (O, C k_H k_W)$. Then the whole convolution is one
# product, $Y_2 = W_2 P$ $(O, N o_H o_W)$, reshaped to $(O, N, o_H, o_W)$ and
# transposed to $(N, O, o_H, o_W)$ (a reshape alone would scramble it). This is a
# Linear layer (chapter 2) whose "samples" are the $N o_H o_W$ patches: one large
# matrix product instead of $k_H k_W$ small ones, which is what BLAS is fast at.
# npnet's fast twin (`npnet/nn/_fast/conv.py`) does this, in cache-sized chunks.

# %%
def im2col(Xp, kH, kW):
    """P[(c, i, j), (n, y, x)] = Xp[n, c, y + i, x + j] (stride 1): shape (C kH kW, N oH oW)."""
    N, C, Hp, Wp = Xp.shape
    oH, oW = Hp - kH + 1, Wp - kW + 1
    P = np.empty((C, kH, kW, N, oH, oW), Xp.dtype)
    for i in range(kH):
        for j in range(kW):
            P[:, i, j] = Xp[:, :, i:i + oH, j:j + oW].transpose(1, 0, 2, 3)
    return P.reshape(C * kH * kW, N * oH * oW)


def conv2d_im2col(X, W, b, padding):
    Xp = np.pad(X, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    O, C, kH, kW = W.shape
    N, oH, oW = len(X), Xp.shape[2] - kH + 1, Xp.shape[3] - kW + 1
    Y2 = W.reshape(O, -1) @ im2col(Xp, kH, kW) + b[:, None]               # (O, N oH oW)
    return Y2.reshape(O, N, oH, oW).transpose(1, 0, 2, 3)


def plain(kernel, *args, **kwargs):
    """Run a kernel's plain body whatever NPNET_KERNELS says (after its argument check)."""
    return kernel.plain(**kernel.check(*args, **kwargs))


X_train, y_train, X_test, y_test = load_fashion_mnist()
rng = np.random.default_rng(0)
X = to_float(X_train[:256])                                               # (256, 1, 28, 28)
conv1 = nn.Conv2d(1, 6, 5, padding=2, rng=rng)                            # LeNet's first convolution
X2 = rng.standard_normal((256, 6, 14, 14)).astype(np.float32)
conv2 = nn.Conv2d(6, 16, 5, rng=rng)                                      # and its second
for name, conv, x, pad in (("conv 1 (1 -> 6 channels, 5x5, pad 2, 28x28)", conv1, X, 2),
                             ("conv 2 (6 -> 16 channels, 5x5, 14x14)", conv2, X2, 0)):
    W, b = conv.params["weight"], conv.params["bias"]
    timings = {}
    for label, f in (("offsets (plain kernel)", lambda: plain(F.conv2d, x, W, b, padding=pad)),
                     ("im2col (above)", lambda: conv2d_im2col(x, W, b, pad)),
                     ("npnet's fast twin", lambda: F.conv2d(x, W, b, padding=pad))):
        start = time.perf_counter()
        timings[label] = (f(), time.perf_counter() - start)
    base = timings["offsets (plain kernel)"][0]
    print(f"{name}, batch 256: " + ", ".join(
        f"{label} {t * 1e3:.0f} ms (max difference {np.abs(y - base).max():.1e})" for label, (y, t) in timings.items()))

# %% [markdown]
# Same numbers up to float32 rounding (the sums run in another order). The times are
# single runs on a shared machine: read them as rough ratios.
#
# ## Three gradients, derived with their shapes
#
# Given $dY = \partial L/\partial Y$ $(N, O, o_H, o_W)$, each parameter and input entry
# collects the gradient of every output it touched.
#
# **Bias**, $(O,)$: $b_o$ is added to every output of channel $o$, so
# $$db_o = \sum_{n,y,x} dY_{n,o,y,x}.$$
#
# **Weight**, $(O, C, k_H, k_W)$: $W_{o,c,i,j}$ multiplies $X_{p;\,n,c,\,y+i,\,x+j}$ in
# output $(n, o, y, x)$, so
# $$dW_{o,c,i,j} = \sum_{n,y,x} dY_{n,o,y,x}\, X_{p;\,n,c,\,y+i,\,x+j},$$
# for each offset the einsum "nohw,nchw->oc" of $dY$ with the same slice the forward
# read. In im2col form: $dW_2 = dY_2\, P^\top$, Linear's $dW = dY^\top X$ again.
#
# **Input**, $(N, C, H, W)$: the padded pixel $X_{p;\,n,c,\,u,\,v}$ was read by every
# output $(y, x) = (u - i, v - j)$ that a kernel offset placed on it, so
# $$dX_{p;\,n,c,\,u,\,v} = \sum_{o}\sum_{i,j} dY_{n,o,\,u-i,\,v-j}\, W_{o,c,i,j}$$
# (terms with $u - i$ or $v - j$ outside the output dropped), then the padding is cut
# off. Offset by offset, each slice the forward read receives the einsum
# "nohw,oc->nchw" of $dY$ with `W[:, :, i, j]`; as a whole, it is a convolution of
# the zero-padded $dY$ with the kernel flipped, which is why the backward of a
# convolution is a (transposed) convolution. In im2col form: $dP = W_2^\top dY_2$,
# then "col2im" adds each column back onto the pixels it was copied from.
#
# npnet's plain backward transcribes these three sums, offset by offset:

# %%
show_source(F.conv2d_backward)

# %% [markdown]
# The im2col form of the same three gradients, against the plain kernel, on LeNet's
# second convolution:

# %%
x, W = X2[:32].astype(np.float64), conv2.params["weight"].astype(np.float64)
dY = rng.standard_normal((32, 16, 10, 10))
O, C, kH, kW = W.shape
P = im2col(x, kH, kW)                                                     # no padding here
dY2 = dY.transpose(1, 0, 2, 3).reshape(O, -1)                             # (O, N oH oW)
dW = (dY2 @ P.T).reshape(W.shape)
db = dY2.sum(axis=1)
dP = (W.reshape(O, -1).T @ dY2).reshape(C, kH, kW, 32, 10, 10)           # col2im: add each tap back
dX = np.zeros_like(x)
for i in range(kH):
    for j in range(kW):
        dX[:, :, i:i + 10, j:j + 10] += dP[:, i, j].transpose(1, 0, 2, 3)
for name, mine, theirs in zip(("dX", "dW", "db"), (dX, dW, db), plain(F.conv2d_backward, dY, x, W)):
    print(f"{name} {str(mine.shape):16} max |im2col - plain| = {np.abs(mine - theirs).max():.1e}")

# %% [markdown]
# And `nn.Conv2d` (which calls the kernel pair) through both checks, in float64 on
# small sizes: with padding and stride 2, then with groups and dilation.

# %%
rng = np.random.default_rng(1)
check_gradients(nn.Conv2d(2, 3, 3, stride=2, padding=1, rng=rng, dtype=np.float64), rng.standard_normal((2, 2, 7, 6)))
check_gradients(nn.Conv2d(4, 2, (3, 2), groups=2, dilation=2, rng=rng, dtype=np.float64),
                rng.standard_normal((2, 4, 7, 7)));

# %% [markdown]
# ## Pooling
#
# A pooling layer summarizes each $k \times k$ window of each channel (stride $s$,
# usually $s = k$) with no parameters: $Y: (N, C, o_H, o_W)$.
#
# **Max pooling**, $Y_{n,c,y,x} = \max_{i,j} X_{n,c,\,s y+i,\,s x+j}$. Locally the
# maximum is just the one input it picked: $\partial Y_{n,c,y,x}/\partial X$ is 1 at
# the window's argmax $(i^*, j^*)$ and 0 elsewhere. So the gradient goes to the argmax:
# $$dX_{n,c,\,s y+i^*,\,s x+j^*} \mathrel{+}= dY_{n,c,y,x},$$
# and every other pixel of the window gets nothing (with overlapping windows, a pixel
# that is the maximum of several collects from each; of tied maxima, torch and npnet
# pick the first).
#
# **Average pooling**, $Y_{n,c,y,x} = \frac{1}{k_H k_W}\sum_{i,j} X_{n,c,\,s y+i,\,s x+j}$:
# every pixel of the window counts equally, so each receives an equal share,
# $$dX_{n,c,\,s y+i,\,s x+j} \mathrel{+}= \frac{dY_{n,c,y,x}}{k_H k_W}.$$

# %%
show_source(F.max_pool2d_backward)
show_source(F.avg_pool2d)
show_source(F.avg_pool2d_backward)

# %% [markdown]
# (`max_pool2d_backward` finds each window's argmax with the helper `_argmax`, offset
# by offset, exactly as `max_pool2d` does; `max_pool2d` returns its first result.) Both
# checks, with non-overlapping and overlapping windows and padding:

# %%
x = rng.standard_normal((2, 3, 6, 6))                                       # no ties, almost surely
check_gradients(nn.MaxPool2d(2), x)
check_gradients(nn.MaxPool2d(3, stride=2, padding=1), x)
check_gradients(nn.AvgPool2d(2), x)
check_gradients(nn.AvgPool2d(3, stride=2, padding=1), x);

# %% [markdown]
# ## LeNet
#
# The course's LeNet: two convolution blocks (convolution, sigmoid, 2 × 2 average
# pooling), then three fully connected layers with sigmoids, built by
# `npnet.models.lenet()` with Xavier-uniform weights. Here is what each layer makes of
# a batch:

# %%
def lenet(batch_norm=False):
    """``models.lenet`` (seed 0): it takes (N, 1, 28, 28) images, as DataLoader yields them."""
    return models.lenet(batch_norm=batch_norm, rng=np.random.default_rng(0))


net = lenet()
x = to_float(X_train[:256])                                               # (256, 1, 28, 28)
print(f"{'input':12} {x.shape}")
for layer in net:
    x = layer(x)
    params = sum(p.size for p in layer.params.values())
    print(f"{type(layer).__name__:12} {str(x.shape):18} {params:6d} parameters" if params else
          f"{type(layer).__name__:12} {x.shape}")
print(f"in all: {sum(p.size for p in net.params.values())} parameters")

# %% [markdown]
# Trained with the course's settings (Xavier-uniform weights, SGD with learning rate
# 0.9, batches of 256) on a subset. This sigmoid LeNet sits near chance (loss 2.30,
# accuracy 0.10) for a few hundred steps before it starts to learn, as torch's twin
# does: the sigmoids' gradients are small and the signal takes a while to reach the
# first convolution (chapter 8 fixes that).

# %%
n_train, n_test = pick(quick=2000, full=30000), pick(quick=1000, full=10000)
train_iter = DataLoader(X_train[:n_train], y_train[:n_train], 256, shuffle=True, rng=np.random.default_rng(1))
test_iter = DataLoader(X_test[:n_test], y_test[:n_test], 1000)
net = lenet()
loss_fn = nn.CrossEntropyLoss()
opt = optim.SGD(net.params, lr=0.9)
epochs = pick(quick=1, full=4)
steps, history = [], []
bar = progress(total=epochs * len(train_iter), desc="LeNet")


def on_step(info):
    steps.append(info.loss)
    bar.update()


for epoch in range(1, epochs + 1):
    stats = train_epoch(net, loss_fn, opt, train_iter, epoch=epoch, callback=on_step)
    history.append((stats.loss, stats.accuracy, evaluate_accuracy(net, test_iter)))
    print(f"epoch {epoch}: loss {stats.loss:.4f}, train accuracy {stats.accuracy:.4f}, "
          f"test accuracy {history[-1][2]:.4f} ({stats.seconds:.0f} s)")
bar.close()

# %%
fig, (left, right) = plt.subplots(1, 2)
left.plot(np.arange(1, len(steps) + 1), steps, lw=0.8)
left.set(xlabel="step", ylabel="training loss (per batch)")
right.plot(np.arange(1, epochs + 1), [h[2] for h in history], "o-")
right.set(xlabel="epoch", ylabel="test accuracy", ylim=(0, 1))
plt.tight_layout()
plt.show()

# %% [markdown]
# What the first convolution learned: its six 5 × 5 kernels, and the six feature maps
# they make of one test image (after the sigmoid).

# %%
image = to_float(X_test[:1])                                              # (1, 1, 28, 28)
kernels = net.params["0.weight"][:, 0]                                    # (6, 5, 5)
maps = net[1](net[0](image))[0]                                           # Conv2d, then Sigmoid: (6, 28, 28)
fig, axes = plt.subplots(2, 7, figsize=(8, 2.4))
axes[0, 0].imshow(image[0, 0], cmap="gray_r")
axes[1, 0].axis("off")
for k in range(6):
    axes[0, k + 1].imshow(kernels[k], cmap="RdBu_r")
    axes[1, k + 1].imshow(maps[k], cmap="gray_r")
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
plt.show()

# %% [markdown]
# ## Exercises
#
# **Exercise 1.** `conv_output_size(n, k, padding, stride)`: the output length of a
# convolution (no dilation) along an axis of length `n`, with a kernel of length `k`.
# The check tries many combinations against torch.

# %%
def conv_output_size(n, k, padding, stride):
    raise NotImplementedError


# %%
check("conv_output_size", answer("conv_output_size", conv_output_size))

# %% [markdown]
# **Exercise 2.** `avg_pool2d_backward(dY, k)`: the backward of average pooling over
# non-overlapping `k` × `k` windows (stride `k`, no padding). `dY` is $(N, C, o_H, o_W)$;
# return `dX`, $(N, C, k\,o_H, k\,o_W)$. (Hint: `np.repeat`.)

# %%
def avg_pool2d_backward(dY, k):
    raise NotImplementedError


# %%
check("avg_pool2d_backward", answer("avg_pool2d_backward", avg_pool2d_backward))

# %% [markdown]
# **Exercise 3.** `conv_weight_grad(dY, X)`: $dW$ by hand for a convolution of one
# channel with one kernel, stride 1, no padding. `X` is $(H, W)$, `dY` is
# $(o_H, o_W)$; return `dW`, $(H - o_H + 1,\ W - o_W + 1)$.

# %%
def conv_weight_grad(dY, X):
    raise NotImplementedError


# %%
check("conv_weight_grad", answer("conv_weight_grad", conv_weight_grad))
