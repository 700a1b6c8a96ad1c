"""npnet: a deep-learning layer library in pure NumPy with hand-written backward passes.

Every layer's ``forward(x, train=True)`` returns ``(y, backward)``; ``backward(dy)``
returns ``(dx, grads)``. The sibling package ``reference`` checks each gradient
against PyTorch. npnet itself needs NumPy alone.
"""
__version__ = "0.1.0"

import os as _os
import sys as _sys

# OpenBLAS (NumPy's BLAS) keeps its idle threads spinning for about 2**28 cycles after
# each matrix product. Between products they hold the cores that npnet's kernel threads
# (npnet.set_num_threads) need for the elementwise work: the cnn's epoch took 2.9 s with
# them spinning and 2.0 s with OPENBLAS_THREAD_TIMEOUT=4 (sleep after 2**4 cycles), the
# products' own time unchanged (2 cores, benchmarks' interleaved epochs). OpenBLAS reads the
# variable when NumPy loads it: this helps only if npnet is imported before NumPy, and a
# value already set is kept.
if "numpy" not in _sys.modules:
    _os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from . import errors, nn  # noqa: E402,F401
from .gradcheck import gradcheck  # noqa: E402,F401
from .inference import load_model  # noqa: E402,F401
from .nn._fast.parallel import get_num_threads, set_num_threads  # noqa: E402,F401

__all__ = ["nn", "errors", "gradcheck", "load_model", "get_num_threads", "set_num_threads", "__version__"]
