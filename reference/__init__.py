"""reference: every npnet gradient checked against PyTorch autograd.

This package imports torch; npnet never imports it.

- ``twin(module)``: the equivalent ``torch.nn.Module``, holding the same weights.
- ``compare(module, x, dy=None, *, dtype=np.float64, target=None)``: runs both on
  the same data and returns a :class:`CompareResult` (``.ok``, ``.max_abs``,
  ``.max_rel`` per quantity) judged by ``tolerance(dtype, K) = 4 * eps * sqrt(K)``
  relative to each quantity's scale (see ``reference.compare``).
- ``python -m reference``: the table of every module and kernel in float64 and float32.
"""
from .compare import CompareResult, compare, tolerance  # noqa: F401
from .report import Row, format_table  # noqa: F401
from .twins import ReplayDropout, torch_dtype, twin  # noqa: F401

__all__ = ["twin", "compare", "CompareResult", "tolerance", "ReplayDropout", "torch_dtype", "Row", "format_table"]
