"""npnet: a deep-learning layer library in pure NumPy with hand-written backward passes.

Every layer's ``forward(x, train=True)`` returns ``(y, backward)``; ``backward(dy)``
returns ``(dx, grads)``. The sibling package ``reference`` checks each gradient
against PyTorch. npnet itself needs NumPy alone.
"""
__version__ = "0.1.0"

from . import errors, nn  # noqa: E402,F401
from .gradcheck import gradcheck  # noqa: E402,F401
from .inference import load_model  # noqa: E402,F401
from .nn._fast.parallel import get_num_threads, set_num_threads  # noqa: E402,F401

__all__ = ["nn", "errors", "gradcheck", "load_model", "get_num_threads", "set_num_threads", "__version__"]
