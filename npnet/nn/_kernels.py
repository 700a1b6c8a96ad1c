"""Which implementation of each kernel runs: the plain one or its fast twin.

``npnet/nn/functional/`` holds the plain kernels (the math); ``npnet/nn/_fast/``
holds faster twins of some of them, with the same signatures. Every public kernel
is declared with :func:`kernel`, which checks its arguments once and then calls
the *active* implementation: the fast twin unless the environment says
``NPNET_KERNELS=plain`` (read once, at import).

``K.<name>`` is the active implementation without any check, for modules that
checked their arguments already (``layers.py``, ``losses.py``).
"""
import functools
import os

from . import _fast

_MODES = ("fast", "plain")
MODE = os.environ.get("NPNET_KERNELS", "") or "fast"
if MODE not in _MODES:
    raise ImportError(f"NPNET_KERNELS must be 'fast' or 'plain' (or unset for 'fast'), got {MODE!r}")


class _Active:
    """The active implementation of every kernel, by name; nothing is checked."""

    def __repr__(self):
        return f"<npnet kernels: {MODE}>"


K = _Active()


def _when(fast, plain):
    """A fast twin that covers only some calls says which through ``fast.handles(**kwargs)``;
    the others go to the plain kernel."""
    @functools.wraps(fast)
    def either(*args, **kwargs):
        return (fast if fast.handles(*args, **kwargs) else plain)(*args, **kwargs)
    return either


def kernel(check):
    """Declare a public kernel: ``check`` (the same signature) validates the arguments
    and returns them as a dict; the active implementation then runs on that dict.

    The public function keeps the plain body's name, docstring and signature and
    exposes ``.plain`` (the readable math), ``.fast`` (its twin in ``_fast``, or
    None), ``.active`` (the one that runs) and ``.check``.
    """
    def declare(plain):
        fast = getattr(_fast, plain.__name__, None)
        active = plain
        if fast is not None and MODE == "fast":
            active = fast if not hasattr(fast, "handles") else _when(fast, plain)

        @functools.wraps(plain)
        def public(*args, **kwargs):
            return active(**check(*args, **kwargs))

        public.plain, public.fast, public.active, public.check = plain, fast, active, check
        setattr(K, plain.__name__, active)
        return public
    return declare
