"""reference: every npnet gradient checked against PyTorch autograd.

This package imports torch; npnet never imports it.

- ``twin(module)``: the equivalent ``torch.nn.Module``, holding the same weights.
- ``compare(module, x, dy=None, *, dtype=np.float64, target=None)``: runs both on
  the same data and returns a :class:`CompareResult` (``.ok``, ``.max_abs``,
  ``.max_rel`` per quantity) judged by ``tolerance(dtype, K) = 4 * eps * sqrt(K)``
  relative to each quantity's scale (see ``reference.compare``).
- ``python -m reference``: the table of every module and kernel in float64 and float32.
- ``registry``: one entry per npnet class (twin, error bound, table cases, strategy
  hook) that all of the above read; see CONTRIBUTING.md, "Adding a layer".
"""
from . import registry  # noqa: F401
from . import entries  # noqa: F401  (registers npnet's layers and losses)
from .compare import CompareResult, compare, tolerance  # noqa: F401
from .report import Row, format_table  # noqa: F401
from .twins import ReplayDropout, torch_dtype, twin  # noqa: F401

__all__ = ["registry", "twin", "compare", "CompareResult", "tolerance", "ReplayDropout", "torch_dtype", "Row", "format_table"]
