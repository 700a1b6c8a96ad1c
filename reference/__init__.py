"""reference: every npnet gradient checked against PyTorch autograd.

This package imports torch; npnet never imports it. Install torch with
``pip install -e '.[reference]'`` in the npnet repository (:data:`INSTALL`).

- ``twin(module)``: the equivalent ``torch.nn.Module``, holding the same weights.
- ``compare(module, x, dy=None, *, dtype=np.float64, target=None)``: runs both on
  the same data and returns a :class:`CompareResult` (``.ok``, ``.max_abs``,
  ``.max_rel`` per quantity) judged by ``tolerance(dtype, K) = 4 * eps * sqrt(K)``
  relative to each quantity's scale (see ``reference.compare``).
- ``python -m reference``: the table of every module and kernel in float64 and float32.
- ``registry``: one entry per npnet class (twin, error bound, table cases, strategy
  hook) that all of the above read; see CONTRIBUTING.md, "Adding a layer".

Without torch, ``import reference`` still works, but using any of its names
(``reference.compare``, ``from reference import lockstep``, ...) raises
:class:`TorchMissingError`, an ``ImportError`` whose message is one line naming
the install command.
"""
INSTALL = "pip install -e '.[reference]'"


class TorchMissingError(ImportError):
    """PyTorch is not installed; the message is one line naming :data:`INSTALL`."""


def torch_missing_message(what="the reference package"):
    """One line: ``what`` needs PyTorch, and the command that installs it."""
    return f"{what} needs PyTorch, which is not installed: run `{INSTALL}` in the npnet repository"


def torch_available():
    """True when ``import torch`` works; False when torch is not installed."""
    try:
        import torch  # noqa: F401
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] != "torch":
            raise
        return False
    return True


if torch_available():
    from . import registry  # noqa: F401
    from . import entries  # noqa: F401  (registers npnet's layers and losses)
    from .compare import CompareResult, compare, tolerance  # noqa: F401
    from .report import Row, format_table  # noqa: F401
    from .twins import ReplayDropout, torch_dtype, twin  # noqa: F401
else:
    from .report import Row, format_table  # noqa: F401  (plain Python, no torch)

    def __getattr__(name):
        # Names and submodules that need torch: one clear error instead of a traceback
        # ending in `No module named 'torch'`.
        if name.startswith("__"):
            raise AttributeError(name)
        raise TorchMissingError(torch_missing_message(f"reference.{name}"), name="torch")

__all__ = ["registry", "twin", "compare", "CompareResult", "tolerance", "ReplayDropout", "torch_dtype", "Row", "format_table",
           "INSTALL", "TorchMissingError", "torch_missing_message", "torch_available"]
