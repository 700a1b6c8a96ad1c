"""Argument checks shared by every public entry point: one vocabulary, one message each.

Each helper raises ``TypeError`` or ``ValueError`` with a message that names the
argument, says what was expected and what arrived. ``core`` checks values and
arrays; ``run`` checks the objects a training loop is handed. Everything is used
as ``V.<check>`` after ``from npnet import _validate as V``.
"""
from .core import *  # noqa: F401,F403
from .run import *  # noqa: F401,F403
