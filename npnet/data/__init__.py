"""Fashion-MNIST for npnet: the IDX reader, where the files come from, batches, k-fold.

The package reads in layers, each usable alone:

1. :mod:`~npnet.data.idx`: :func:`read_idx` reads one IDX file (gzipped or
   not) and checks every byte of it.
2. :mod:`~npnet.data.sources`: where the four files are looked for, and an
   explicit folder that is used or refused (:func:`find_fashion_mnist`).
3. :mod:`~npnet.data.download`: :func:`download_fashion_mnist` fetches the
   files when no source exists, verifies each against a SHA-256 and writes it
   atomically.
4. :mod:`~npnet.data.fashion_mnist`: :func:`load_fashion_mnist` validates the
   four files as a set and keeps a decoded copy in the per-user cache, so the
   second load is a plain ``np.load``; :func:`fingerprint` names the content.
5. :mod:`~npnet.data.loader`: :func:`to_float` (the one uint8 -> float32
   conversion), :class:`DataLoader`, :func:`load_data_fashion_mnist`,
   :func:`kfold` and :func:`get_k_fold_data` turn arrays into batches and folds
   as the course does.

Every public name is importable from ``npnet.data`` itself.
"""
import sys
import types

from . import download, fashion_mnist, idx, loader, sources
from .download import download_fashion_mnist
from .fashion_mnist import fingerprint, get_fashion_mnist_labels, load_fashion_mnist
from .idx import read_idx
from .loader import DataLoader, get_k_fold_data, kfold, load_data_fashion_mnist, to_float
from .sources import (FASHION_MNIST_FILES, FASHION_MNIST_LABELS, DataDirError, fashion_mnist_cache_dir,
                      find_fashion_mnist)

# FASHION_MNIST_SHA256, DEFAULT_MIRRORS and SYSTEM_DIRS are settings: _Package below
# reads and writes them in npnet.data.sources.

__all__ = [
    "FASHION_MNIST_LABELS",
    "FASHION_MNIST_FILES",
    "FASHION_MNIST_SHA256",
    "DEFAULT_MIRRORS",
    "read_idx",
    "DataDirError",
    "load_fashion_mnist",
    "find_fashion_mnist",
    "download_fashion_mnist",
    "fashion_mnist_cache_dir",
    "get_fashion_mnist_labels",
    "DataLoader",
    "load_data_fashion_mnist",
    "kfold",
    "get_k_fold_data",
    "fingerprint",
    "to_float",
]

_PARTS = (idx, sources, download, fashion_mnist, loader)


def _setting(part, name):
    """``npnet.data.NAME`` reads and writes ``part.NAME``, where the code reads it."""
    return property(lambda self: getattr(part, name), lambda self, value: setattr(part, name, value),
                    doc=f"{part.__name__}.{name}")


class _Package(types.ModuleType):
    """``npnet.data`` keeps behaving as one module for its settings.

    ``npnet.data.SYSTEM_DIRS = (...)`` (for unusual systems and tests), a
    replaced ``FASHION_MNIST_SHA256`` or ``DEFAULT_MIRRORS``, and the tests'
    small ``_COUNTS`` and zero ``_RETRY_BACKOFF`` reach the part that reads
    them. Other names of the parts can still be read here.
    """

    SYSTEM_DIRS = _setting(sources, "SYSTEM_DIRS")
    FASHION_MNIST_SHA256 = _setting(sources, "FASHION_MNIST_SHA256")
    DEFAULT_MIRRORS = _setting(sources, "DEFAULT_MIRRORS")
    _COUNTS = _setting(fashion_mnist, "_COUNTS")
    _RETRY_BACKOFF = _setting(download, "_RETRY_BACKOFF")

    def __getattr__(self, name):
        for part in _PARTS:
            if name in vars(part):
                return vars(part)[name]
        raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")


sys.modules[__name__].__class__ = _Package
