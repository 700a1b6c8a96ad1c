"""A convolution layer from scratch: loops, im2col, nn.Conv2d, the backward by hand, torch.

A 2x2 kernel slides over a 1x1x4x4 image. The output is computed three ways
(the definition as loops, im2col: every patch unfolded into a row so that the
whole layer is one matrix product, and ``nn.Conv2d`` with the same weights);
then its gradients by hand (dW = patches^T dY, db = sum dY, dX = dY W folded
back onto the image: col2im) against ``nn.Conv2d``'s backward; then the same
for several channels, a stride and padding; then torch's autograd, when torch
is installed. No data set needed.

    python examples/10_conv_from_scratch.py
"""
import argparse

import numpy as np

from npnet import gradcheck, nn

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="the same (nothing to shorten): the tests pass it")
parser.parse_args()
np.set_printoptions(precision=4, suppress=True)
rng = np.random.default_rng(0)

# --- The definition. torch's "convolution" is a cross-correlation: the kernel is not flipped.
#     Y[y, x] = b + sum_{i, j} W[i, j] X[y + i, x + j]
X = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)    # (N, C, H, W) = (1, 1, 4, 4)
W = np.array([[[[0.0, 1.0], [2.0, 3.0]]]])                 # (O, C, kH, kW) = (1, 1, 2, 2)
b = np.array([0.5])
kH, kW = W.shape[2:]
oH, oW = X.shape[2] - kH + 1, X.shape[3] - kW + 1          # 3 x 3: every place the kernel fits
Y_loops = np.zeros((1, 1, oH, oW))
for y in range(oH):
    for x in range(oW):
        Y_loops[0, 0, y, x] = b[0] + (W[0, 0] * X[0, 0, y:y + kH, x:x + kW]).sum()
print("input X (4x4):\n", X[0, 0])
print("kernel W (2x2):\n", W[0, 0])
print("Y by the definition (3x3, bias 0.5):\n", Y_loops[0, 0])

# --- im2col: one row per output position holding the patch it sees; the layer is then one product.
patches = np.stack([X[0, 0, y:y + kH, x:x + kW].ravel() for y in range(oH) for x in range(oW)])   # (9, 4)
print("patches (9 output positions x 4 kernel entries):\n", patches)
Y_im2col = (patches @ W.reshape(-1) + b).reshape(1, 1, oH, oW)
print("patches @ W.ravel() + b == the definition:", np.array_equal(Y_im2col, Y_loops))

# --- nn.Conv2d with the same weights.
conv = nn.Conv2d(1, 1, 2, dtype=np.float64)
conv.params["weight"][...] = W
conv.params["bias"][...] = b
Y, backward = conv.forward(X)
print("nn.Conv2d(1, 1, 2) == im2col:", np.array_equal(Y, Y_im2col))

# --- Backward by hand, with a random upstream gradient dY (all ones would hide mistakes).
# Each output is a dot product of its patch with W, so (chain rule, row by row):
#   dW = patches^T dY      (each kernel entry collects dY times the pixel it met)
#   db = sum dY
#   dpatches = dY W^T      (each patch's share), then col2im: add every patch's share back
#                          onto the pixels it came from (a pixel in several patches gets the sum)
dY = rng.standard_normal(Y.shape)
g = dY.reshape(-1)                                         # (9,), one per output position
dW = (patches.T @ g).reshape(W.shape)
db = np.array([g.sum()])
dpatches = np.outer(g, W.reshape(-1))                      # (9, 4)
dX = np.zeros_like(X)
for row, (y, x) in enumerate((y, x) for y in range(oH) for x in range(oW)):
    dX[0, 0, y:y + kH, x:x + kW] += dpatches[row].reshape(kH, kW)
dX_conv, grads = backward(dY)
print("dW by hand:\n", dW[0, 0])
print("dW, db, dX by hand == nn.Conv2d's backward:",
      np.allclose(dW, grads["weight"], rtol=1e-12, atol=1e-12) and np.allclose(db, grads["bias"], rtol=1e-12)
      and np.allclose(dX, dX_conv, rtol=1e-12, atol=1e-12))
# col2im is a "full" convolution of dY with the kernel turned by 180 degrees: the transposed convolution.
dY_padded = np.pad(dY[0, 0], ((kH - 1, kH - 1), (kW - 1, kW - 1)))
W_flipped = W[0, 0, ::-1, ::-1]
dX_full = np.array([[(W_flipped * dY_padded[y:y + kH, x:x + kW]).sum() for x in range(X.shape[3])]
                    for y in range(X.shape[2])])
print("dX == dY convolved with the flipped kernel (full padding):", np.allclose(dX_full, dX[0, 0], atol=1e-12))


# --- The general layer: C input channels, O output channels, stride and padding; a batch.
def im2col(X, kH, kW, stride, padding):
    """(N, C, H, W) -> (N * oH * oW, C * kH * kW): a row per (image, output position)."""
    N, C, H, W_ = X.shape
    Xp = np.pad(X, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oH, oW = (H + 2 * padding - kH) // stride + 1, (W_ + 2 * padding - kW) // stride + 1
    cols = np.empty((N, oH, oW, C, kH, kW), X.dtype)
    for i in range(kH):                  # one slice per kernel offset, not one per output position
        for j in range(kW):
            cols[:, :, :, :, i, j] = Xp[:, :, i:i + stride * oH:stride, j:j + stride * oW:stride].transpose(0, 2, 3, 1)
    return cols.reshape(N * oH * oW, C * kH * kW), (oH, oW)


def col2im(dcols, shape, kH, kW, stride, padding, out_hw):
    """The adjoint of im2col: add every row's entries back onto the pixels they were read from."""
    N, C, H, W_ = shape
    oH, oW = out_hw
    dXp = np.zeros((N, C, H + 2 * padding, W_ + 2 * padding), dcols.dtype)
    dcols = dcols.reshape(N, oH, oW, C, kH, kW)
    for i in range(kH):
        for j in range(kW):
            dXp[:, :, i:i + stride * oH:stride, j:j + stride * oW:stride] += dcols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return dXp[:, :, padding:padding + H, padding:padding + W_]


N, C, O, k, stride, padding = 2, 3, 4, 3, 2, 1
conv = nn.Conv2d(C, O, k, stride=stride, padding=padding, rng=rng, dtype=np.float64)
X = rng.standard_normal((N, C, 7, 7))
Wm, b = conv.params["weight"].reshape(O, -1), conv.params["bias"]     # (O, C * k * k), (O,)
cols, (oH, oW) = im2col(X, k, k, stride, padding)
Y_hand = (cols @ Wm.T + b).reshape(N, oH, oW, O).transpose(0, 3, 1, 2)
Y, backward = conv.forward(X)
dY = rng.standard_normal(Y.shape)
dYm = dY.transpose(0, 2, 3, 1).reshape(-1, O)                        # (N * oH * oW, O), rows as cols'
dW, db = (dYm.T @ cols).reshape(conv.params["weight"].shape), dYm.sum(axis=0)
dX = col2im(dYm @ Wm, X.shape, k, k, stride, padding, (oH, oW))
dX_conv, grads = backward(dY)
errors = {"Y": np.abs(Y_hand - Y).max(), "dX": np.abs(dX - dX_conv).max(),
          "dW": np.abs(dW - grads["weight"]).max(), "db": np.abs(db - grads["bias"]).max()}
print(f"Conv2d({C}, {O}, {k}, stride={stride}, padding={padding}) on {X.shape}: output {Y.shape}; "
      f"im2col by hand vs nn.Conv2d, largest difference: "
      + ", ".join(f"{name} {e:.1e}" for name, e in errors.items()))
assert max(errors.values()) < 1e-12
check = gradcheck(conv, X[:1])     # central differences in float64
print(f"finite differences agree with nn.Conv2d's backward: {check.ok} "
      f"(largest gap {max(check.max_abs.values()):.1e})")

# --- torch: the same weights in torch.nn.functional.conv2d, gradients from autograd.
try:
    import torch
except ImportError:
    print("torch is not installed: the torch check is skipped (pip install -e '.[reference]')")
else:
    Xt = torch.tensor(X, requires_grad=True)
    Wt = torch.tensor(conv.params["weight"], requires_grad=True)
    bt = torch.tensor(conv.params["bias"], requires_grad=True)
    Yt = torch.nn.functional.conv2d(Xt, Wt, bt, stride=stride, padding=padding)
    Yt.backward(torch.tensor(dY))
    gaps = {"Y": Y - Yt.detach().numpy(), "dX": dX_conv - Xt.grad.numpy(),
            "dW": grads["weight"] - Wt.grad.numpy(), "db": grads["bias"] - bt.grad.numpy()}
    print("nn.Conv2d vs torch (float64), largest difference: "
          + ", ".join(f"{name} {np.abs(d).max():.1e}" for name, d in gaps.items()))
