"""What every notebook of the course shares: its size, progress bars, a kernel's source,
the two gradient checks (finite differences and torch) and the exercise checks.

Each notebook's first code cell does ``from course import *``. Two environment
variables steer a run; nothing else does:

- ``NPNET_NOTEBOOK_SIZE``: ``full`` (the default: each chapter's full-size setting, all
  of Fashion-MNIST where that takes at most a minute or so, a subset where it would
  take longer) or ``quick`` (a few thousand images and one or two epochs, seconds; the
  size the tests use). ``pick(quick=..., full=...)`` chooses between two values.
- ``NPNET_NOTEBOOK_ANSWERS``: unset, the exercises run the learner's code; ``1`` runs
  the reference answers of ``answers.py`` instead (how the committed outputs were made
  and how the tests run); ``wrong`` runs a typical mistake, which every check must catch.
"""
import inspect
import os
import warnings

import numpy as np

import npnet
import reference

__all__ = ["SIZE", "pick", "progress", "show_source", "check_gradients", "torch_available", "answer", "check",
           "NotWritten"]

SIZES = ("quick", "full")
SIZE = os.environ.get("NPNET_NOTEBOOK_SIZE", "") or "full"
if SIZE not in SIZES:
    raise ValueError(f"NPNET_NOTEBOOK_SIZE must be 'quick' or 'full' (or unset for 'full'), got {SIZE!r}")

ANSWER_MODES = ("", "1", "wrong")
ANSWERS = os.environ.get("NPNET_NOTEBOOK_ANSWERS", "")
if ANSWERS not in ANSWER_MODES:
    raise ValueError(f"NPNET_NOTEBOOK_ANSWERS must be unset, '1' or 'wrong', got {ANSWERS!r}")


def pick(*, quick, full):
    """``quick`` or ``full``, whichever NPNET_NOTEBOOK_SIZE asks for."""
    return quick if SIZE == "quick" else full


def progress(iterable=None, **kwargs):
    """A progress bar that renders in Jupyter (``tqdm.auto``) and disappears when done.

    Without ipywidgets tqdm falls back to a text bar (and says so once); that fallback
    is fine here, so its warning is not shown.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from tqdm.auto import tqdm
    kwargs.setdefault("leave", False)
    kwargs.setdefault("mininterval", 0.5)
    return tqdm(iterable, **kwargs)


def show_source(obj):
    """Show the source of ``obj`` as the library has it now: a kernel's plain body
    (``F.softmax.plain``), a function or a class. Read from the file, never copied."""
    from IPython.display import Markdown, display

    target = getattr(obj, "plain", obj)
    path = inspect.getsourcefile(target)
    where = os.path.relpath(path, os.path.dirname(os.path.dirname(npnet.__file__)))
    display(Markdown(f"`{where}`\n```python\n{inspect.getsource(target).rstrip()}\n```"))


def torch_available():
    """True when PyTorch is installed; the torch checks print a note and skip when it is not."""
    return reference.torch_available()


TORCH_NOTE = ("note: PyTorch is not installed, so this comparison is skipped (the finite-difference check "
              f"above still ran). To see it: {reference.INSTALL}")


def check_gradients(module, x, *, target=None, dtype=np.float64):
    """Check ``module``'s hand-written backward twice: against central finite differences
    (``npnet.gradcheck``, float64) and against torch autograd (``reference.compare``).

    Prints one line per check; raises AssertionError if either disagrees. Without torch
    the second check prints a note instead. Returns ``(gradcheck result, compare result or None)``.
    """
    name = type(module).__name__
    g = npnet.gradcheck(module, x, target=target)
    worst = max(g.max_abs.values())
    print(f"{name}: finite differences agree, largest difference {worst:.1e} "
          f"({', '.join(sorted(g.max_abs))})" if g.ok else f"{name}: finite differences DISAGREE on {g.failed}")
    assert g.ok, f"gradcheck failed for {name}: {g.failed}"
    if not torch_available():
        print(TORCH_NOTE)
        return g, None
    r = reference.compare(module, x, dtype=dtype, target=target)
    worst = max(r.max_rel.values())
    print(f"{name}: torch autograd agrees in {np.dtype(dtype).name}, worst error {worst:.1e} of each "
          f"quantity's scale (allowed {r.tol:.1e}) ({', '.join(sorted(r.max_rel))})" if r.ok
          else f"{name}: torch DISAGREES: {r.failed}")
    assert r.ok, f"torch comparison failed for {name}: {r.failed}"
    return g, r


class NotWritten(Exception):
    """An exercise still holds its stub."""


def answer(name, yours):
    """The function an exercise's check runs: yours, unless NPNET_NOTEBOOK_ANSWERS says
    to run the reference answer (``1``) or a typical mistake (``wrong``) instead."""
    if not ANSWERS:
        return yours
    import answers

    table = answers.ANSWERS if ANSWERS == "1" else answers.WRONG
    return table[name]


def check(name, candidate):
    """Run exercise ``name``'s check (``exercises.CHECKS``) on ``candidate``.

    Prints ✓ and what was compared when it passes; raises AssertionError (the cell
    turns red) when it does not. A stub that still raises NotImplementedError prints
    a reminder instead of failing.
    """
    import exercises

    try:
        message = exercises.CHECKS[name](candidate)
    except NotImplementedError:
        print(f"exercise {name}: not written yet. Replace the `raise NotImplementedError` above, then "
              "run this cell again.")
        return
    source = {"1": " [run with the reference answer from answers.py: NPNET_NOTEBOOK_ANSWERS=1]",
              "wrong": " [run with the typical mistake from answers.py]"}.get(ANSWERS, "")
    print(f"✓ {name}: {message}{source}")
