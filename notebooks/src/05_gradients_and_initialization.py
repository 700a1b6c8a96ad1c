# Chapter 5 of the course as a notebook: built into 05_gradients_and_initialization.ipynb by notebooks/build.py.

# %% [markdown]
# # 5. Vanishing and exploding gradients, and initialization
#
# Chapter 4's backward pass multiplies the gradient by one factor per layer. Stack 20
# layers and those factors compound: the gradient reaching the first layer can be
# $10^{-29}$ of the last layer's, or astronomically large. Where the weights *start*
# decides which. This notebook derives why, then measures it with npnet's studies:
#
# 1. the product of per-layer factors, and the sigmoid's derivative (at most 1/4);
# 2. symmetry: identical initial weights stay identical forever;
# 3. the variance argument behind Xavier and Kaiming initialization, and torch's default;
# 4. what each initialization does to training on Fashion-MNIST.
#
# Takes about two minutes at full size (three studies, the last trains four MLPs for 3 epochs).

# %%
from course import *   # SIZE, pick, progress, show_source, check_gradients, answer, check

import matplotlib.pyplot as plt
import numpy as np

import npnet.nn.functional as F
from npnet import nn
from npnet.data import load_fashion_mnist
from npnet.studies import initialization, symmetry, vanishing

plt.rcParams.update({"figure.dpi": 72, "figure.figsize": (8, 3)})
print(f"size: {SIZE}")

# %% [markdown]
# ## One factor per layer
#
# For a stack $H_l = f(A_l)$, $A_l = H_{l-1} W_l^\top + b_l$, chapter 4's backward gives,
# for every layer,
#
# $$dH_{l-1} = \big(dH_l \odot f'(A_l)\big)\,W_l, \qquad
#   \frac{\partial L}{\partial W_l} = \big(dH_l \odot f'(A_l)\big)^\top H_{l-1}.$$
#
# Unrolled from the output (layer $D$ of a $D$-layer stack) down to layer $l$, the
# gradient is a product of $D - l$ such factors: $\mathrm{diag}(f'(A))$ then $W$, again
# and again. If each shrinks a vector by a typical factor $\rho < 1$, the gradient at
# the input side is $\rho^{D-l}$ times
# smaller (it **vanishes**); if $\rho > 1$ it **explodes**.
#
# The sigmoid makes $\rho$ small by construction: with $\sigma(x) = 1/(1+e^{-x})$,
#
# $$\sigma'(x) = \sigma(x)\,\big(1 - \sigma(x)\big) \le \tfrac14,$$
#
# with equality only at $x = 0$, and nearly 0 once $|x|$ is a few units. That is the
# kernel `sigmoid_backward`, computed from the forward output $Y = \sigma(X)$:

# %%
show_source(F.sigmoid_backward)
show_source(F.tanh_backward)
rng = np.random.default_rng(0)
check_gradients(nn.Sigmoid(), 3 * rng.standard_normal((4, 5)))
check_gradients(nn.Tanh(), 3 * rng.standard_normal((4, 5)));

# %% [markdown]
# ## Measuring it
#
# Three of npnet's studies (also `npnet study vanishing`, `symmetry` and `init`) measure
# what the next sections derive. They run here, one after the other; the rest of the
# notebook reads their results.
#
# - `vanishing`: gradient norms of every layer of a deep MLP, per activation and initialization;
# - `symmetry`: an MLP trained on Fashion-MNIST from a constant start, a random one, and a
#   constant one with dropout;
# - `initialization`: a 784-256-256-10 MLP trained on Fashion-MNIST from four initializations.

# %%
data = load_fashion_mnist()
bar = progress(total=3, desc="studies")
van = vanishing.run(quick=SIZE == "quick")
bar.update()
sym = symmetry.run(quick=SIZE == "quick", steps=pick(quick=50, full=300), data=data)
bar.update()
inits = initialization.run(**pick(quick=dict(quick=True, n_train=2000, n_test=1000, epochs=1), full=dict(epochs=3)))
bar.close()
print(f"vanishing: {van.depth} layers of width {van.width}; symmetry: {sym.steps} SGD steps, {sym.hidden} hidden units; "
      f"init: {inits.setting.epochs} epochs on {inits.n_train} images")

# %% [markdown]
# ## Vanishing and exploding, measured
#
# `npnet.studies.vanishing` measures it: the gradient norm of every weight matrix of a
# 20-layer MLP (float64, so that neither extreme underflows) under three activations and
# four initializations, after one backward pass on a random batch.

# %%
print(vanishing.table(van))

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2))
left.plot(van.x, van.sigmoid, label="σ(x)")
left.plot(van.x, van.sigmoid_grad, label="σ'(x) = σ(1 - σ)")
left.axhline(0.25, color="k", lw=0.6, ls=":")
left.set(xlabel="x", title="the sigmoid's derivative is at most 1/4")
left.legend(fontsize=8)
layers = np.arange(1, van.depth + 1)
for activation, scheme in (("sigmoid", "N(0,0.01)"), ("sigmoid", "Xavier"), ("relu", "N(0,1)"),
                         ("relu", "Kaiming"), ("tanh", "Xavier")):
    right.plot(layers, van.norms(activation, scheme), "o-", ms=3, label=f"{activation}, {scheme}")
right.set(yscale="log", xlabel="layer (1 = input side)", ylabel="|dW|", title=f"{van.depth}-layer MLP")
right.legend(fontsize=7)
plt.tight_layout()
plt.show()

# %% [markdown]
# Sigmoid with small weights vanishes by dozens of orders of magnitude; ReLU with
# $N(0, 1)$ weights explodes; Kaiming initialization with ReLU keeps every layer's
# gradient within a small factor of the others.

# %% [markdown]
# ## Symmetry: why the start must be random
#
# Suppose every weight starts at the same constant. Then every hidden unit computes the
# same value $Z_{nh}$ for every image, receives the same gradient
# $dA_{\cdot h} = (G W_2)_{\cdot h} \odot \mathbb{1}[A_{\cdot h} > 0]$ (the columns of $W_2$
# are equal too), and gets the same update. By induction the units are identical after
# *any* number of steps: 64 hidden units behave as one. A random start breaks the tie;
# so does dropout, which drops each unit at random on its own.
#
# `npnet.studies.symmetry` trains the same MLP from a constant start, from
# $N(0, 0.01^2)$, and from a constant start with dropout, on the same Fashion-MNIST
# batches, and tracks the largest difference between any two hidden units.

# %%
print(symmetry.table(sym))

# %%
plt.figure(figsize=(8, 2.8))
for name in sym.settings:
    plt.plot(np.maximum(sym.spread[name], 1e-12), label=name)
plt.yscale("log")
plt.xlabel("SGD step")
plt.ylabel("max |unit j - unit 0|")
plt.title("constant init: the spread stays exactly 0 (drawn at 1e-12)")
plt.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## The variance argument: Xavier, Kaiming and torch's default
#
# Take one layer, $a_j = \sum_{i=1}^{n_\text{in}} W_{ji} x_i$, with independent zero-mean
# weights of variance $\mathrm{Var}(w)$ and inputs of second moment $E[x^2]$. Then
#
# $$\mathrm{Var}(a_j) = n_\text{in}\,\mathrm{Var}(w)\,E[x^2].$$
#
# To keep the signal's size from layer to layer (forward), we need
# $n_\text{in}\mathrm{Var}(w) \approx 1$; the backward pass multiplies by $W^\top$ and
# asks for $n_\text{out}\mathrm{Var}(w) \approx 1$.
#
# - **Xavier (Glorot)** compromises for a linear or tanh-like layer:
#   $\mathrm{Var}(w) = \frac{2}{n_\text{in} + n_\text{out}}$. A uniform $U(-a, a)$ has
#   variance $a^2/3$, so $a = \sqrt{6 / (n_\text{in} + n_\text{out})}$.
# - **Kaiming (He)**: ReLU zeroes half of its inputs, so $E[x^2]$ is half the previous
#   layer's variance; to compensate, $\mathrm{Var}(w) = \frac{2}{n_\text{in}}$, a gain of
#   $\sqrt 2$ on the standard deviation $1/\sqrt{n_\text{in}}$.
# - **torch's default** for `nn.Linear` is $U(-1/\sqrt{n_\text{in}}, 1/\sqrt{n_\text{in}})$
#   (`kaiming_uniform_` with $a = \sqrt 5$), i.e. $\mathrm{Var}(w) = \frac{1}{3n_\text{in}}$:
#   a third of the "keep the size" variance; the signal shrinks, but slowly.
# - **The course's $N(0, 0.01^2)$**: in a hidden layer with $n_\text{in} = 256$,
#   $256 \cdot 10^{-4} \approx 0.026$, so each layer multiplies the signal's standard
#   deviation by about $\sqrt{0.026} \approx 0.16$, and ReLU's halving of $E[x^2]$ by
#   another $1/\sqrt 2$: about a ninth per layer.
#
# npnet's initializers are torch's, in NumPy:

# %%
show_source(nn.init.xavier_uniform_)
show_source(nn.init.kaiming_normal_)
show_source(nn.Linear.reset_parameters)

# %% [markdown]
# `npnet.studies.initialization` trains a 784-256-256-10 ReLU MLP from each of the four
# starts on the same batches; before any step it records the standard deviation of
# each Linear layer's output on 1,000 training images.

# %%
print(initialization.table(inits))

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2))
for name in inits.inits:
    stds = inits.activation_std[name]
    left.plot(np.arange(1, len(stds) + 1), stds, "o-", label=name)
    acc = inits.test_accuracy[name]
    right.plot(np.arange(1, len(acc) + 1), acc, "o-", label=name)
left.set(yscale="log", xlabel="Linear layer", ylabel="output std at step 0", xticks=[1, 2, 3])
right.set(xlabel="epoch", ylabel="test accuracy")
right.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# Under $N(0, 0.01^2)$ the signal shrinks about tenfold per layer before training, and
# the first epoch pays for it; Kaiming keeps it of order 1 and learns fastest; torch's
# default sits in between.

# %% [markdown]
# ## Exercises
#
# **Exercise 1.** `xavier_bound(fan_in, fan_out)`: the bound $a$ of Xavier's uniform
# initialization $U(-a, a)$ (gain 1). The check draws a large weight with torch's
# `xavier_uniform_` and compares its extent with your bound.

# %%
def xavier_bound(fan_in, fan_out):
    raise NotImplementedError


# %%
check("xavier_bound", answer("xavier_bound", xavier_bound))

# %% [markdown]
# **Exercise 2.** `kaiming_std(fan_in)`: the standard deviation of Kaiming's normal
# initialization for a ReLU layer (`mode="fan_in"`). The check measures the standard
# deviation of 800,000 weights drawn by torch's `kaiming_normal_`.

# %%
def kaiming_std(fan_in):
    raise NotImplementedError


# %%
check("kaiming_std", answer("kaiming_std", kaiming_std))
