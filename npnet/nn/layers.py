"""Layers: each ``forward`` returns the output and a ``backward`` closure.

The contract every module keeps::

    Y, backward = module.forward(X, train=True)   # training call
    dX, grads = backward(dY)                      # grads: {param name: gradient}
    Y = module(X)                                 # inference: no closure, dropout off

A module holds its parameters (``module.params``, torch's ``state_dict`` names and
shapes) and nothing else: what a backward needs lives in its closure, so two
forwards in flight never disturb each other and calling a backward twice returns
the same answer. Nothing modifies its inputs.
"""
import copy
import math
import types

import numpy as np

from .. import _validate as V
from . import init
from ._kernels import K   # the active kernels, unchecked: each module checks its arguments once

__all__ = ["Module", "Linear", "Flatten", "Unflatten", "Dropout", "Sequential"]


class Module:
    """Base class: parameters in ``self.params``, a ``forward`` that returns a closure.

    Subclasses implement ``forward(X, train=True) -> (Y, backward)`` and
    ``__call__(X)`` for inference. ``buffers`` holds what torch registers as
    buffers (BatchNorm's running statistics): saved in ``state_dict`` with the
    parameters, never seen by an optimizer (which takes ``params``), updated in
    place by a training forward. ``backward(dY, *, need_dx=True)`` returns
    ``(dX, grads)``; with ``need_dx=False`` it may skip dX and return None in
    its place (the first layer of a network has no use for it).
    """

    buffers = types.MappingProxyType({})   # for a subclass that skips Module.__init__: no buffers

    def __init__(self):
        self.params = {}
        self.buffers = {}   # state that is not trained (BatchNorm's running statistics), torch's names

    def forward(self, X, train=True):  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def __call__(self, X):
        Y, _ = self.forward(X, train=False)
        return Y

    # -- parameters and buffers, as torch's state_dict ----------------------------
    def state_dict(self):
        """A copy of every parameter and buffer, keyed as torch's ``state_dict``."""
        return {k: v.copy() for d in (self.params, self.buffers) for k, v in d.items()}

    def load_state_dict(self, state_dict):
        """Copy values into the existing parameter and buffer arrays (in place, so
        optimizers holding them see the change). Keys and shapes must match exactly,
        float arrays take real numbers and integer buffers (``num_batches_tracked``)
        integers; nothing is written unless everything matches."""
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict must be a dict of name -> ndarray, got {V.describe(state_dict)}")
        own = {**self.params, **self.buffers}
        missing = sorted(set(own) - set(state_dict))
        extra = sorted(set(state_dict) - set(own))
        if missing or extra:
            raise ValueError(f"state_dict keys do not match {type(self).__name__}: missing {missing}, unexpected {extra}")
        for k, p in own.items():
            v = state_dict[k]
            if not isinstance(v, np.ndarray):
                raise TypeError(f"state_dict[{k!r}] must be a numpy.ndarray, got {V.describe(v)}")
            if v.shape != p.shape:
                raise ValueError(f"state_dict[{k!r}] must have shape {p.shape}, got {v.shape}")
            kinds = "fiu" if p.dtype.kind == "f" else "iu"
            if v.dtype.kind not in kinds:
                what = "real numbers" if p.dtype.kind == "f" else "integers"
                raise TypeError(f"state_dict[{k!r}] must hold {what}, got dtype {v.dtype}")
        for k, p in own.items():
            p[...] = state_dict[k]
        return self

    def to(self, dtype):
        """Cast every parameter and float buffer to ``dtype`` (np.float32 or np.float64);
        returns self. Integer buffers (``num_batches_tracked``) stay int64.

        New arrays replace the old ones, so build optimizers after calling it.
        """
        dtype = V.float_dtype(dtype)
        for name in self.params:
            self.params[name] = self.params[name].astype(dtype)
        for name, b in self.buffers.items():
            if b.dtype.kind == "f":
                self.buffers[name] = b.astype(dtype)
        return self

    @property
    def dtype(self):
        """The dtype of the parameters (None for a module without any)."""
        for v in self.params.values():
            return v.dtype
        return None

    def extra_repr(self):
        return ""

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"


def _torch_default_init(module, rng):
    """torch's default for Linear and Conv2d: weight kaiming_uniform_(a=sqrt(5)), i.e.
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    rng = V.generator(rng)
    init.kaiming_uniform_(module.params["weight"], a=math.sqrt(5), rng=rng)
    if "bias" in module.params:
        fan_in, _ = init.calculate_fan_in_and_fan_out(module.params["weight"])
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        init.uniform_(module.params["bias"], -bound, bound, rng=rng)
    return module


_Like = V.Like   # what a backward keeps of an output it need not hold on to: its shape and dtype


def _check_dy(dY, Y, name):
    """The upstream gradient of ``name``'s backward must be shaped and typed like its output ``Y``."""
    return V.like(dY, "dy", Y, f"{name}'s output")


# ------------------------------------------------------------------------------ Linear

class Linear(Module):
    """Affine layer ``y = x W^T + b``, as ``torch.nn.Linear``.

    ``weight`` has shape (out_features, in_features) and ``bias`` (out_features,),
    so a torch ``state_dict`` loads with no renaming or transposing. Initialized as
    torch initializes it: W ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform_ with
    a = sqrt(5)) and b ~ U(-1/sqrt(in), 1/sqrt(in)).

    Args:
        in_features: size of each input sample.
        out_features: size of each output sample.
        bias: learn an additive bias.
        rng: numpy Generator for the initial values (default: a fresh one).
        dtype: np.float32 (default) or np.float64.

    Shape:
        input (*, in_features) -> output (*, out_features).

    Example::

        >>> layer = Linear(784, 10, rng=np.random.default_rng(0))
        >>> y, backward = layer.forward(np.ones((2, 784), np.float32))
        >>> dx, grads = backward(np.ones_like(y))
        >>> sorted(grads), grads["weight"].shape
        (['bias', 'weight'], (10, 784))
    """

    def __init__(self, in_features, out_features, bias=True, *, rng=None, dtype=np.float32):
        super().__init__()
        self.in_features = V.integer(in_features, "in_features", low=0)
        self.out_features = V.integer(out_features, "out_features", low=0)
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"bias must be True or False, got {V.describe(bias)}")
        dtype = V.float_dtype(dtype)
        self.params["weight"] = np.empty((self.out_features, self.in_features), dtype)
        if bias:
            self.params["bias"] = np.empty((self.out_features,), dtype)
        self.reset_parameters(rng=rng)

    def reset_parameters(self, rng=None):
        """Draw fresh initial values exactly as ``torch.nn.Linear.reset_parameters``."""
        return _torch_default_init(self, rng)

    def _check(self, X):
        W = self.params["weight"]
        V.float_array(X, "input")
        if X.ndim == 0 or X.shape[-1] != self.in_features:
            hint = "; add nn.Flatten() first?" if X.ndim > 2 and math.prod(X.shape[1:]) == self.in_features else ""
            raise ValueError(
                f"{self!r} expected input (..., {self.in_features}), got {X.shape}{hint}"
            )
        if X.dtype != W.dtype:
            raise TypeError(
                f"{self!r} holds {W.dtype} parameters but got {X.dtype} input; "
                f"cast the input (x.astype(np.{W.dtype})) or the layer (layer.to(np.{X.dtype}))"
            )

    def forward(self, X, train=True):
        self._check(X)
        W, b = self.params["weight"], self.params.get("bias")
        Y = K.linear(X, W, b)   # Y = X W^T + b
        out = _Like(Y.shape, Y.dtype)   # not Y itself: backward needs only its shape, and Y can be freed

        def backward(dY, *, need_dx=True):
            _check_dy(dY, out, "Linear")
            dX, dW, db = K.linear_backward(dY, X, W, need_dX=V.flag(need_dx, "need_dx"), need_db=b is not None)
            grads = {"weight": dW}            # dW = dY^T X
            if b is not None:
                grads["bias"] = db            # db = sum of dY over the batch
            return dX, grads                  # dX = dY W

        return Y, backward

    def __call__(self, X):
        self._check(X)
        return K.linear(X, self.params["weight"], self.params.get("bias"))

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={'bias' in self.params}"


# ------------------------------------------------------------------ Flatten and Dropout

class Flatten(Module):
    """Merge axes ``start_axis`` through ``end_axis`` into one, as ``torch.nn.Flatten``
    (torch calls them start_dim and end_dim). Returns a view where NumPy can."""

    def __init__(self, start_axis=1, end_axis=-1):
        super().__init__()
        self.start_axis = V.integer(start_axis, "start_axis")
        self.end_axis = V.integer(end_axis, "end_axis")

    def _shape(self, X):
        if not isinstance(X, np.ndarray):
            raise TypeError(f"input must be a numpy.ndarray, got {V.describe(X)}")
        nd = max(X.ndim, 1)
        s, e = self.start_axis, self.end_axis
        if not (-nd <= s < nd and -nd <= e < nd):
            raise ValueError(f"Flatten(start_axis={s}, end_axis={e}) does not fit an input of shape {X.shape}")
        s, e = s % nd, e % nd
        if s > e:
            raise ValueError(f"Flatten: start_axis ({self.start_axis}) must not come after end_axis ({self.end_axis})")
        if X.ndim == 0:
            return (1,)
        return X.shape[:s] + (math.prod(X.shape[s:e + 1]),) + X.shape[e + 1:]

    def forward(self, X, train=True):
        out_shape = self._shape(X)   # checks X first: a list has no reshape to fail on
        Y = X.reshape(out_shape)
        shape = X.shape

        def backward(dY, *, need_dx=True):
            return _check_dy(dY, Y, "Flatten").reshape(shape), {}

        return Y, backward

    def __call__(self, X):
        shape = self._shape(X)
        return X.reshape(shape)

    def extra_repr(self):
        return f"start_axis={self.start_axis}, end_axis={self.end_axis}"


class Unflatten(Module):
    """Split axis ``axis`` into ``unflattened_size``, as ``torch.nn.Unflatten`` (torch's
    dim); one size may be -1 (inferred). The inverse of :class:`Flatten`, e.g. from
    (N, 28, 28) images to (N, 1, 28, 28) for a convolution: ``Unflatten(1, (1, 28))``.
    Returns a view where NumPy can; backward reshapes dY back."""

    def __init__(self, axis, unflattened_size):
        super().__init__()
        self.axis = V.integer(axis, "axis")
        sizes = V.sequence(unflattened_size, "unflattened_size", "ints")
        if not sizes:
            raise ValueError("unflattened_size must be a non-empty tuple of ints, got ()")
        sizes = tuple(V.integer(v, f"unflattened_size[{i}]", low=-1) for i, v in enumerate(sizes))
        if sizes.count(-1) > 1:
            raise ValueError(f"unflattened_size may infer one size (-1) only, got {sizes}")
        self.unflattened_size = sizes

    def _shape(self, X):
        if not isinstance(X, np.ndarray):
            raise TypeError(f"input must be a numpy.ndarray, got {V.describe(X)}")
        if not -X.ndim <= self.axis < X.ndim:
            raise ValueError(f"Unflatten(axis={self.axis}) does not fit an input of shape {X.shape}")
        a, sizes = self.axis % X.ndim, self.unflattened_size
        known = math.prod(v for v in sizes if v != -1)
        n = X.shape[a]
        if (-1 in sizes and (known == 0 or n % known)) or (-1 not in sizes and known != n):
            raise ValueError(f"unflattened_size {sizes} must multiply to the size of axis {self.axis} "
                             f"of the input, {n}; got an input of shape {X.shape}")
        sizes = tuple(n // known if v == -1 else v for v in sizes)
        return X.shape[:a] + sizes + X.shape[a + 1:]

    def forward(self, X, train=True):
        out_shape = self._shape(X)   # checks X first: a list has no reshape to fail on
        Y = X.reshape(out_shape)
        shape = X.shape

        def backward(dY, *, need_dx=True):
            return _check_dy(dY, Y, "Unflatten").reshape(shape), {}

        return Y, backward

    def __call__(self, X):
        out_shape = self._shape(X)
        return X.reshape(out_shape)

    def extra_repr(self):
        return f"axis={self.axis}, unflattened_size={self.unflattened_size}"


class Dropout(Module):
    """Inverted dropout: in training, zero each element with probability ``p`` and
    scale the rest by 1 / (1 - p); at inference (``train=False`` or ``module(x)``)
    the identity.

    Args:
        p: probability of dropping an element, in [0, 1].
        rng: numpy Generator that draws the masks (default: a fresh one).
    """

    def __init__(self, p=0.5, *, rng=None):
        super().__init__()
        self.p = V.real_number(p, "p", low=0.0, high=1.0)
        self.rng = V.generator(rng)

    def forward(self, X, train=True):
        V.float_array(X, "input")
        V.flag(train, "train")
        if not train or self.p == 0:
            def identity_backward(dY, *, need_dx=True):
                return _check_dy(dY, X, "Dropout"), {}
            return X, identity_backward
        mask = K.dropout_mask(X.shape, self.p, self.rng, X.dtype)
        Y = K.dropout(X, mask)

        def backward(dY, *, need_dx=True):
            return K.dropout_backward(_check_dy(dY, Y, "Dropout"), mask), {}   # dX = dY * mask

        backward.mask = mask  # exposed so a reference can replay the same mask
        return Y, backward

    def __call__(self, X):
        V.float_array(X, "input")
        return X

    def extra_repr(self):
        return f"p={self.p}"


# --------------------------------------------------------------------------- Sequential

class Sequential(Module):
    """A chain of modules; forward runs them in order, backward in reverse.

    ``params`` (and ``buffers``) are keyed as torch's ``nn.Sequential`` state_dict
    (``"0.weight"``, ``"2.bias"``, ``"1.running_mean"``) and hold the very arrays of the children, so an optimizer that
    updates it in place updates the children. Assigning a new array to a key
    does not reach the child: use :meth:`load_state_dict`.

    Example::

        >>> net = Sequential(Flatten(), Linear(784, 256), ReLU(), Linear(256, 10))
        >>> sorted(net.params)
        ['1.bias', '1.weight', '3.bias', '3.weight']
    """

    def __init__(self, *modules):
        # No super().__init__(): ``params`` is derived from the children, never stored.
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential argument {i} must be an npnet Module, got {V.describe(m)}")
        self.modules = list(modules)

    @property
    def params(self):
        return {f"{i}.{k}": v for i, m in enumerate(self.modules) for k, v in m.params.items()}

    @property
    def buffers(self):
        """The children's buffers, keyed as params are (``"1.running_mean"``), the very arrays."""
        return {f"{i}.{k}": v for i, m in enumerate(self.modules) for k, v in m.buffers.items()}

    def to(self, dtype):
        for m in self.modules:
            m.to(dtype)
        return self

    def forward(self, X, train=True):
        backwards = []
        for m in self.modules:
            X, bw = m.forward(X, train=train)
            backwards.append(bw)
        Y = X

        def backward(dY, *, need_dx=True):
            _check_dy(dY, Y, "Sequential")
            grads = {}
            for i in range(len(backwards) - 1, -1, -1):
                # Below the first module that has parameters nothing needs dX.
                needed = need_dx or any(self.modules[j].params for j in range(i))
                dY, g = backwards[i](dY, need_dx=needed)
                for k, v in g.items():
                    grads[f"{i}.{k}"] = v
                if dY is None:
                    break
            return dY, grads

        backward.children = tuple(backwards)  # each child's closure (a Dropout's has .mask), for the reference
        return Y, backward

    def __call__(self, X):
        for m in self.modules:
            X = m(X)
        return X

    def __getitem__(self, i):
        return self.modules[i]

    def __len__(self):
        return len(self.modules)

    def __iter__(self):
        return iter(self.modules)

    def __repr__(self):
        inner = "".join(f"\n  ({i}): {m!r}" for i, m in enumerate(self.modules))
        return f"Sequential({inner}\n)"


def clone(module):
    """A deep copy of a module: parameters, random generators and all."""
    return copy.deepcopy(module)
