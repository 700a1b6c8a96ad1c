"""Where the four Fashion-MNIST files come from: their names and checksums, the
places searched, and an explicit folder that is used or refused.

Checksums. The table :data:`FASHION_MNIST_SHA256` holds the SHA-256 of each
file's *decompressed* IDX content. Hashing the content rather than the ``.gz``
makes one table serve every packaging of the same data: Debian's
``dataset-fashion-mnist`` recompressed the files (their ``.gz`` MD5s differ from
the ones Zalando publishes) but their content has exactly the decompressed MD5s
that torchvision and others publish (``f4a8712d…``, ``9018921c…``, ``8181f547…``,
``15d48437…``). The SHA-256s below were computed from those verified files.
"""
import errno
import os
import stat

from .. import _validate
from ..errors import DataError

__all__ = [
    "FASHION_MNIST_LABELS",
    "FASHION_MNIST_FILES",
    "FASHION_MNIST_SHA256",
    "DEFAULT_MIRRORS",
    "SYSTEM_DIRS",
    "DataDirError",
    "find_fashion_mnist",
    "fashion_mnist_cache_dir",
]

FASHION_MNIST_LABELS = (
    "t-shirt", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle boot",
)
"""The ten class names, index = label, spelled as the course spells them."""

FASHION_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
"""Base names of the four files; each may also carry a ``.gz`` suffix."""

FASHION_MNIST_SHA256 = {
    # SHA-256 of the decompressed IDX bytes (sizes 47040016, 60008, 7840016, 10008).
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
"""SHA-256 of each file's decompressed content; downloads are verified against it."""

# For the record, the .gz files as Zalando serves them (MD5 from the project's
# README, SHA-256 as published by several independent projects). They are not
# used for verification: a recompressed copy of the same data is just as good.
_OFFICIAL_GZ_DIGESTS = {
    "train-images-idx3-ubyte.gz": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                                   "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
    "train-labels-idx1-ubyte.gz": ("25c81989df183df01b3e8a0aad5dffbe",
                                   "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
    "t10k-images-idx3-ubyte.gz": ("bef4ecab320f06d8554ea6380940ec79",
                                  "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
    "t10k-labels-idx1-ubyte.gz": ("bb300cfdad3c16e7a12a480ee83cd310",
                                  "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
}

DEFAULT_MIRRORS = (
    "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",  # plain HTTP; the SHA-256 protects it
)

# Where Debian's ``dataset-fashion-mnist`` puts the files; a module attribute so
# tests (and unusual systems) can point it elsewhere, as npnet.data.SYSTEM_DIRS.
SYSTEM_DIRS = ("/usr/share/datasets/fashion-mnist",)

_MAX_IDX_BYTES = 64 << 20        # no decompressed Fashion-MNIST file is larger than 48 MB


def fashion_mnist_cache_dir():
    """The per-user cache directory: ``$XDG_CACHE_HOME/npnet/fashion-mnist``.

    ``XDG_CACHE_HOME`` defaults to ``~/.cache``. Downloads land here, and so do
    the decoded ``.npz`` copies that make the second load fast.

    Returns:
        str, the directory (it may not exist yet).

    Example:
        >>> fashion_mnist_cache_dir()        # doctest: +SKIP
        '/home/me/.cache/npnet/fashion-mnist'
    """
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # the XDG spec says to ignore relative paths
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "npnet", "fashion-mnist")


def _candidates():
    """The directories searched when no root is given, in order, as (description, path)."""
    out = []
    env = os.environ.get("NPNET_DATA", "")
    if env:
        out.append(("$NPNET_DATA", env))
    out.append(("the per-user cache", fashion_mnist_cache_dir()))
    if env:
        out.append(("torchvision layout under $NPNET_DATA", os.path.join(env, "FashionMNIST", "raw")))
    for d in SYSTEM_DIRS:
        out.append(("the system data directory", d))
    return out


class DataDirError(DataError):
    """An explicit data folder (``root=``, ``--data-dir``) that cannot be used as it is.

    ``folder`` is the folder as given, ``problem`` what is wrong with it (one
    line), ``downloadable`` whether a download into it would fix that (the
    folder is missing, empty or lacks some files, and nothing in it is broken).
    """

    def __init__(self, message, *, folder=None, problem=None, downloadable=False):
        super().__init__(message)
        self.folder, self.problem, self.downloadable = folder, problem, downloadable


def _data_dir_error(folder, problem, downloadable=False):
    note = "; download=True would fetch the missing files into it" if downloadable else ""
    return DataDirError(f"root={folder}: {problem}{note}", folder=folder, problem=problem,
                        downloadable=downloadable)


_FILE_KINDS = ((stat.S_ISDIR, "is a directory"), (stat.S_ISFIFO, "is not a regular file (FIFO)"),
               (stat.S_ISSOCK, "is not a regular file (socket)"),
               (stat.S_ISCHR, "is not a regular file (character device)"),
               (stat.S_ISBLK, "is not a regular file (block device)"))


def _entry_problem(path):
    """None for a regular file (after symlinks), "" when nothing is there, else what is wrong."""
    try:
        st = os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "is a symlink loop"
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return "is a broken symlink" if os.path.lexists(path) else ""
        return f"cannot be read: {e.strerror or e}"
    if stat.S_ISREG(st.st_mode):
        return None
    for test, problem in _FILE_KINDS:
        if test(st.st_mode):
            return problem
    return "is not a regular file"


def _scan_explicit(directory):
    """({base name: path} of the regular files present, [problems]) for one explicit folder."""
    files, problems = {}, []
    for base in FASHION_MNIST_FILES:
        for name in (base, base + ".gz"):
            problem = _entry_problem(os.path.join(directory, name))
            if problem is None:
                files.setdefault(base, os.path.join(directory, name))
            elif problem:
                problems.append(f"{name} {problem}")
    return files, problems


def _missing(files):
    return "missing " + ", ".join(f"{b}(.gz)" for b in FASHION_MNIST_FILES if b not in files)


def _explicit_source(root):
    """Where an explicit ``root`` holds the four files: used or refused, never skipped.

    Returns ``(files, why)``: files is ``{base name: path}`` when ``root`` (or
    ``root/FashionMNIST/raw``, torchvision's layout, when ``root`` itself holds
    none of the files) holds all four as regular files; otherwise None, with
    ``why`` saying what a download into ``root`` would have to fix: the folder
    does not exist, holds none of the files, or lacks some. A folder that can
    never work (not a directory, a symlink loop, a file that is a directory,
    a FIFO, a broken link...) raises :class:`DataDirError` at once.
    """
    problem = _entry_problem(root)
    if problem == "":
        return None, "no such directory"
    if problem == "is a directory":
        pass
    elif problem is None:
        raise _data_dir_error(root, "is a file, not a directory")
    else:
        raise _data_dir_error(root, problem)
    files, problems = _scan_explicit(root)
    if problems:
        raise _data_dir_error(root, "; ".join(problems))
    if len(files) == len(FASHION_MNIST_FILES):
        return files, None
    if files:
        return None, _missing(files)
    raw = os.path.join(root, "FashionMNIST", "raw")
    if _entry_problem(raw) == "is a directory":
        raw_files, problems = _scan_explicit(raw)
        if problems:
            raise _data_dir_error(raw, "; ".join(problems))
        if len(raw_files) == len(FASHION_MNIST_FILES):
            return raw_files, None
        if raw_files:
            raise _data_dir_error(raw, _missing(raw_files))
    names = ", ".join(b + "(.gz)" for b in FASHION_MNIST_FILES)
    return None, f"holds none of the four Fashion-MNIST files ({names})"


def _files_in(directory):
    """{base name: path} for the Fashion-MNIST files present in ``directory``.

    The uncompressed name wins over ``.gz`` when both exist: it loads faster.
    """
    found = {}
    for base in FASHION_MNIST_FILES:
        for candidate in (base, base + ".gz"):
            path = os.path.join(directory, candidate)
            if os.path.isfile(path):
                found[base] = path
                break
    return found


def find_fashion_mnist(root=None):
    """Where :func:`load_fashion_mnist` would read the four files from, without reading them.

    With ``root``, only ``root`` (and ``root/FashionMNIST/raw``) is looked at.

    Returns:
        ``{base name: path}`` for the source that would be used, or None when
        there is none yet (a download would follow).

    Raises:
        DataDirError: ``root`` is given and can never be used as it is: not a
            directory, a symlink loop, or one of the files is a directory, a
            FIFO, a broken link or otherwise not a regular file.
    """
    if root is not None:
        return _explicit_source(_validate.path(root, "root"))[0]
    return _find_source()[0]


def _find_source():
    searched = []
    for label, directory in _candidates():
        if not os.path.isdir(directory):
            searched.append(f"{directory} ({label}): no such directory")
            continue
        files = _files_in(directory)
        if len(files) == len(FASHION_MNIST_FILES):
            return files, searched
        if files:
            missing = [b for b in FASHION_MNIST_FILES if b not in files]
            searched.append(f"{directory} ({label}): incomplete, missing {', '.join(missing)}")
        else:
            searched.append(f"{directory} ({label}): none of the four files")
    return None, searched


def _how_to_provide():
    names = ", ".join(b + ".gz" for b in FASHION_MNIST_FILES)
    return (
        f"Provide the four Fashion-MNIST files ({names}; gzipped or not) in any one of these ways:\n"
        "  - pass root=DIR to load_fashion_mnist() (DIR or DIR/FashionMNIST/raw holds the files)\n"
        "  - set the environment variable NPNET_DATA=DIR\n"
        f"  - copy the files into the cache directory {fashion_mnist_cache_dir()}\n"
        "  - on Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist "
        f"(installs them in /usr/share/datasets/fashion-mnist)\n"
        "  - run `make data` in the npnet repository\n"
        "  - or call with download=True on a machine with network access "
        "(mirror override: NPNET_FASHION_MNIST_URL=BASE_URL)"
    )

