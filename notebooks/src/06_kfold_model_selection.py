# Chapter 6 of the course as a notebook: built into 06_kfold_model_selection.ipynb by notebooks/build.py.

# %% [markdown]
# # 6. Model selection with k-fold cross-validation
#
# Which setting is better: no weight decay, or a little? A single validation split
# answers with noise: a few hundred images more or less of one class move the accuracy
# by a point. k-fold cross-validation trains each candidate $k$ times, each time
# holding out a different fold, and reports the mean and the spread; the winner is then
# retrained on all training data and tested **once**, on a test set no decision has
# looked at.
#
# The gradient that changes between the candidates here is weight decay's, derived and
# checked first.
#
# Takes about two minutes at full size (3 settings × 5 folds × 5 epochs on 20,000
# images, then one retraining).

# %%
from course import *   # SIZE, pick, progress, show_source, check_gradients, answer, check

import matplotlib.pyplot as plt
import numpy as np

from npnet import optim
from npnet.data import get_k_fold_data, kfold
from npnet.studies import kfold as kfold_study

plt.rcParams.update({"figure.dpi": 72, "figure.figsize": (8, 3)})
print(f"size: {SIZE}")

# %% [markdown]
# ## Weight decay's gradient
#
# Weight decay adds an L2 penalty to the loss, $\tilde L = L + \frac{\lambda}{2}\lVert w\rVert^2$.
# Its gradient is $\nabla_w \tilde L = \nabla_w L + \lambda w$ (same shape as $w$), so
# one SGD step with learning rate $\eta$ is
#
# $$w \leftarrow w - \eta\,(g + \lambda w) = (1 - \eta\lambda)\,w - \eta g:$$
#
# every step first shrinks the weights by the factor $1 - \eta\lambda$, hence the name.
# npnet's `SGD` (torch's `SGD`, in NumPy) adds $\lambda w$ to the gradient before
# momentum, exactly as torch does:

# %%
show_source(optim.SGD._update)

# %% [markdown]
# Checked three ways: the penalty's gradient $\lambda w$ against central finite
# differences, the step against the closed form above, and the step against
# `torch.optim.SGD` on the same numbers.

# %%
rng = np.random.default_rng(0)
w0, g = rng.standard_normal(5), rng.standard_normal(5)
lr, weight_decay, eps = 0.1, 1e-2, 1e-6


def penalty(v):
    return weight_decay / 2 * (v @ v)


numeric = np.array([(penalty(w0 + eps * e) - penalty(w0 - eps * e)) / (2 * eps) for e in np.eye(len(w0))])
print(f"lambda w against finite differences:  largest difference {np.abs(numeric - weight_decay * w0).max():.1e}")
assert np.allclose(numeric, weight_decay * w0, rtol=1e-6, atol=1e-12)

w = w0.copy()
optim.SGD({"w": w}, lr=lr, weight_decay=weight_decay).step({"w": g})
closed_form = (1 - lr * weight_decay) * w0 - lr * g
print(f"npnet against (1 - lr wd) w - lr g:   largest difference {np.abs(w - closed_form).max():.1e}")
assert np.allclose(w, closed_form, rtol=1e-14, atol=1e-15)
if torch_available():
    import torch

    p = torch.tensor(w0, requires_grad=True)
    p.grad = torch.tensor(g)
    torch.optim.SGD([p], lr=lr, weight_decay=weight_decay).step()
    print(f"npnet against torch.optim.SGD:        largest difference {np.abs(w - p.detach().numpy()).max():.1e}")
    assert np.allclose(w, p.detach().numpy(), rtol=1e-14, atol=1e-15)
else:
    print("note: PyTorch is not installed, so the comparison with torch.optim.SGD is skipped")

# %% [markdown]
# ## Folds
#
# `npnet.data.kfold(n, k)` splits `range(n)` as scikit-learn's `KFold` does: the folds
# partition the samples, the first $n \bmod k$ folds hold one more. The course's
# `get_k_fold_data` instead cuts $k$ slices of $\lfloor n/k \rfloor$ and drops the
# remainder; npnet has it too, for comparison.

# %%
for j, (train_idx, val_idx) in enumerate(kfold(11, 3)):
    print(f"kfold(11, 3) fold {j}: validate on {val_idx.tolist()}, train on {len(train_idx)} others")
X_small, y_small = np.arange(11).reshape(11, 1), np.arange(11)
for i in range(3):
    _, _, X_valid, _ = get_k_fold_data(3, i, X_small, y_small)
    print(f"get_k_fold_data(3, {i}, ...) validates on {X_valid.ravel().tolist()}")
print("(sample 10 is in no fold of get_k_fold_data)")

# %% [markdown]
# ## Cross-validating on Fashion-MNIST
#
# `npnet.studies.kfold` (also `npnet study kfold`) trains every setting of a grid on the
# *same* folds, with the same seed per fold, so that two settings differ by the setting
# and not by the split. The default grid is the course's MLP (784-256-10, ReLU, SGD lr
# 0.1) with three weight decays. The progress bar counts folds.

# %%
sizes = pick(quick=dict(quick=True), full=dict(n_train=20000, k=5, epochs=5))
n_settings = 2 if SIZE == "quick" else 3
bar = progress(total=n_settings * sizes.get("k", 3) + 1, desc="folds")
log = []


def on_fold(message):
    log.append(message)
    bar.update()


result = kfold_study.run(progress=on_fold, **sizes)
bar.close()
print("\n".join(log))
print()
print(kfold_study.table(result))

# %%
x = np.arange(len(result.settings))
plt.figure(figsize=(8, 3))
plt.errorbar(x, result.mean, yerr=result.std, fmt="s", color="k", capsize=6, label="mean ± std over folds")
for f in range(result.k):
    plt.plot(x + (f - (result.k - 1) / 2) * 0.06, result.val_accuracy[:, f], "o", ms=4, alpha=0.6)
plt.plot([result.chosen + 0.3], [result.test_accuracy], "*", color="tab:red", ms=14,
         label=f"chosen, retrained: test {result.test_accuracy:.4f}")
plt.xticks(x, [s.name for s in result.settings], fontsize=8)
plt.ylabel("validation accuracy")
plt.legend(fontsize=8)
plt.show()
print(f"final test accuracy: {result.test_accuracy:.4f} ({result.chosen_setting.name})")

# %% [markdown]
# Read the spread before the means: when the difference between two settings' means is
# smaller than their fold-to-fold standard deviation, the folds cannot tell them apart,
# and the choice between them is close to a coin toss. The test accuracy is measured
# once, after the choice; using it to choose would make it one more validation score.

# %% [markdown]
# ## Exercises
#
# **Exercise 1.** `kfold_folds(n, k)`: return the list of $k$ validation folds (arrays of
# indices) that `npnet.data.kfold(n, k)` gives, without calling it: every index in
# exactly one fold, in order, the first $n \bmod k$ folds one larger.

# %%
def kfold_folds(n, k):
    raise NotImplementedError


# %%
check("kfold_folds", answer("kfold_folds", kfold_folds))

# %% [markdown]
# **Exercise 2.** `sgd_step(w, g, lr, weight_decay)`: the parameters after one SGD step
# with weight decay (no momentum). The check compares it with `torch.optim.SGD`.

# %%
def sgd_step(w, g, lr, weight_decay):
    raise NotImplementedError


# %%
check("sgd_step", answer("sgd_step", sgd_step))
