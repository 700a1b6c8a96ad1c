"""Fashion-MNIST for npnet: the IDX reader, where the files come from, batches, k-fold.

The module reads in four layers, each usable alone:

1. :func:`read_idx` reads one IDX file (gzipped or not) and checks every byte
   of it: header, type code, dimensions and exact length. It never allocates
   more than the file can hold and never decompresses more than the header
   justifies plus one byte.
2. :func:`load_fashion_mnist` finds the four Fashion-MNIST files (see its
   docstring for the search order), validates them and keeps a decoded copy in
   the per-user cache so the second load is a plain ``np.load``.
3. :func:`download_fashion_mnist` fetches the files when no source exists,
   verifies each against a SHA-256 and writes it atomically.
4. :class:`DataLoader`, :func:`load_data_fashion_mnist`, :func:`kfold` and
   :func:`get_k_fold_data` turn arrays into batches and folds as the course does.

Checksums. The table :data:`FASHION_MNIST_SHA256` holds the SHA-256 of each
file's *decompressed* IDX content. Hashing the content rather than the ``.gz``
makes one table serve every packaging of the same data: Debian's
``dataset-fashion-mnist`` recompressed the files (their ``.gz`` MD5s differ from
the ones Zalando publishes) but their content has exactly the decompressed MD5s
that torchvision and others publish (``f4a8712d…``, ``9018921c…``, ``8181f547…``,
``15d48437…``). The SHA-256s below were computed from those verified files.
"""
import errno
import hashlib
import numbers
import os
import socket
import stat
import struct
import time
import urllib.error
import urllib.request
import zlib
from http.client import HTTPException

import numpy as np

from . import _io
from . import _validate
from .errors import DataError, DownloadError

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
# tests (and unusual systems) can point it elsewhere.
SYSTEM_DIRS = ("/usr/share/datasets/fashion-mnist",)

_SPLITS = (
    # split, images file, labels file
    ("train", "train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    ("test", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
)
_COUNTS = {"train": 60000, "test": 10000}   # module attribute so tests can use small files
_IMAGE_SHAPE = (28, 28)
_NUM_CLASSES = 10

_RETRY_BACKOFF = 0.5             # seconds before the first retry, doubled after each
_MAX_DOWNLOAD_BYTES = 64 << 20   # no Fashion-MNIST .gz is larger than 27 MB
_MAX_IDX_BYTES = 64 << 20        # nor is any decompressed file larger than 48 MB
_CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_DEFLATE_MAX_RATIO = 1032        # deflate cannot expand one input byte into more output bytes

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


# --------------------------------------------------------------------------- #
# 1. The IDX reader
# --------------------------------------------------------------------------- #

class _Truncated(DataError):
    """A gzip stream that ends early: a download worth retrying."""


class _RawStream:
    def __init__(self, f, name, size):
        self.f, self.name, self.size = f, name, size

    def read(self, n):
        return self.f.read(n)

    def readinto(self, view):
        pos = 0
        while pos < len(view):
            got = self.f.readinto(view[pos:])
            if not got:
                break
            pos += got
        return pos

    def check_claim(self, total, what):
        # The whole file is on disk: its size must be exactly what the header says.
        if self.size < total:
            raise DataError(f"{self.name}: truncated: the header ({what}) needs {total} bytes "
                            f"but the file has only {self.size}")
        if self.size > total:
            raise DataError(f"{self.name}: {self.size - total} unexpected bytes after the data "
                            f"(the header ({what}) accounts for {total} of {self.size} bytes)")

    def check_end(self):
        pass  # check_claim already compared the exact size


class _GzipStream:
    """Decompress a (possibly multi-member) gzip file, never more than asked for."""

    def __init__(self, f, name, size):
        self.f, self.name, self.size = f, name, size
        f.seek(0)
        self.d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.pending = b""

    def read(self, n):
        buf = bytearray(n)
        return bytes(buf[:self.readinto(memoryview(buf))])

    def readinto(self, view):
        n, pos = len(view), 0
        while pos < n:
            if self.d.eof:
                data, self.pending = self.d.unused_data + self.pending, b""
                while len(data) < 2:
                    more = self.f.read(_CHUNK)
                    if not more:
                        break
                    data += more
                if not data:
                    return pos  # the last member ended cleanly
                if data[:2] != _GZIP_MAGIC:
                    raise DataError(f"{self.name}: {len(data)}+ bytes of non-gzip data after the end "
                                    "of the gzip stream")
                self.d, self.pending = zlib.decompressobj(16 + zlib.MAX_WBITS), data
                continue
            data = self.d.unconsumed_tail or self.pending or self.f.read(_CHUNK)
            self.pending = b""
            try:
                out = self.d.decompress(data, n - pos)
            except zlib.error as e:
                raise DataError(f"{self.name}: corrupt gzip data ({e})") from None
            if out:
                view[pos:pos + len(out)] = out
                pos += len(out)
            elif not data and not self.d.eof:
                raise _Truncated(f"{self.name}: truncated: the gzip stream ends before its end marker")
            elif data and not self.d.eof and self.d.unconsumed_tail == data:
                raise DataError(f"{self.name}: corrupt gzip data (the decompressor makes no progress)")
        return pos

    def check_claim(self, total, what):
        if total > self.size * _DEFLATE_MAX_RATIO:
            raise DataError(f"{self.name}: the header ({what}) claims {total} bytes, more than a "
                            f"{self.size}-byte gzip file can hold; the file is corrupt or truncated")
        # The gzip trailer stores the length mod 2**32. When it agrees, allocate and
        # fill in one pass; otherwise (corrupt, truncated or multi-member) count the
        # decompressed bytes first so nothing is allocated on a header's word alone.
        pos = self.f.tell()
        if self.size >= 18:  # the smallest gzip member: 10-byte header, 8-byte trailer
            self.f.seek(self.size - 4)
            trailer = self.f.read(4)
            self.f.seek(pos)
            if int.from_bytes(trailer, "little") == total % (1 << 32):
                return
        counter = _GzipStream(self.f, self.name, self.size)
        scratch = memoryview(bytearray(_CHUNK))
        count = 0
        while count <= total:
            want = min(_CHUNK, total + 1 - count)
            got = counter.readinto(scratch[:want])
            count += got
            if got < want:
                break
        self.f.seek(pos)
        if count < total:
            raise DataError(f"{self.name}: truncated: the header ({what}) needs {total} bytes "
                            f"but the file decompresses to only {count}")
        if count > total:
            raise DataError(f"{self.name}: unexpected bytes after the data (the header ({what}) "
                            f"accounts for {total} bytes, the file decompresses to more)")

    def check_end(self):
        if self.readinto(memoryview(bytearray(1))):
            raise DataError(f"{self.name}: unexpected bytes after the data the header accounts for")


def _read_idx(path, *, max_bytes=None, digest=False):
    """read_idx without argument checks; optionally bounded and hashed.

    Returns ``(array, sha256 hex of the decompressed bytes or None)``.
    """
    name = os.fspath(path)
    try:
        st = os.stat(path)
    except OSError as e:
        raise DataError(f"{name}: cannot read IDX file: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        raise DataError(f"{name}: not a regular file")
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            gz = f.read(2) == _GZIP_MAGIC
            f.seek(0)
            stream = (_GzipStream if gz else _RawStream)(f, name, size)
            return _parse_idx(stream, name, max_bytes, digest)
    except OSError as e:
        raise DataError(f"{name}: cannot read IDX file: {e.strerror or e}") from None


def _parse_idx(stream, name, max_bytes, digest):
    head = stream.read(4)
    if len(head) < 4:
        raise DataError(f"{name}: truncated: {len(head)} bytes, too short for the 4-byte IDX magic number")
    if head[0] or head[1]:
        raise DataError(f"{name}: bad magic number 0x{head.hex()}: an IDX file starts with two zero "
                        "bytes, a type code and the number of dimensions")
    dtype = _IDX_DTYPES.get(head[2])
    if dtype is None:
        known = ", ".join(f"0x{code:02x} ({dt.name})" for code, dt in _IDX_DTYPES.items())
        raise DataError(f"{name}: unknown IDX type code 0x{head[2]:02x}; expected one of {known}")
    ndim = head[3]
    if ndim == 0:
        raise DataError(f"{name}: the IDX header declares 0 dimensions")
    raw_dims = stream.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DataError(f"{name}: truncated header: {ndim} dimensions need {4 * ndim} bytes of sizes, "
                        f"found {len(raw_dims)}")
    dims = struct.unpack(f">{ndim}I", raw_dims)
    count = 1
    for d in dims:
        count *= d  # Python ints: no overflow, however absurd the header
    nbytes = count * dtype.itemsize
    total = 4 + 4 * ndim + nbytes
    what = f"shape {dims}, {dtype.name}"
    if max_bytes is not None and total > max_bytes:
        raise DataError(f"{name}: the header ({what}) claims {total} bytes, more than the {max_bytes} allowed")
    stream.check_claim(total, what)
    try:
        buf = np.empty(nbytes, dtype=np.uint8)
    except MemoryError:
        raise DataError(f"{name}: not enough memory for the {nbytes} bytes the header ({what}) claims") from None
    got = stream.readinto(memoryview(buf))
    if got < nbytes:
        raise DataError(f"{name}: truncated: the data ends after {got} of the {nbytes} bytes the header ({what}) needs")
    stream.check_end()
    hexdigest = None
    if digest:
        h = hashlib.sha256(head)
        h.update(raw_dims)
        h.update(memoryview(buf))
        hexdigest = h.hexdigest()
    array = buf.view(dtype).reshape(dims)
    if dtype.itemsize > 1:
        array = array.astype(dtype.newbyteorder("="))
    return array, hexdigest


def read_idx(path, *, max_bytes=None):
    """Read one IDX file (the format of MNIST and Fashion-MNIST), gzipped or not.

    Gzip is recognised by its magic bytes, not by the file name. The header is
    two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions and one big-endian
    uint32 per dimension; the data must fill the rest of the file exactly.
    A header's claimed size is checked against the file before anything is
    allocated, and a gzip file is never decompressed past the claimed size plus
    one byte, so arbitrary bytes give a ``DataError``, never a hang or a crash.

    Args:
        path: str or os.PathLike, the file to read.
        max_bytes: int or None, refuse files whose header claims more bytes
            than this (header included), before reading the data. It also
            bounds the work a gzip bomb can cause.

    Returns:
        ndarray with the header's shape and dtype, in native byte order.

    Raises:
        DataError: the file is missing, unreadable, truncated, has extra bytes,
            bad gzip data, a bad header or is larger than ``max_bytes``; the
            message names the file.

    Example:
        >>> X = read_idx("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
        >>> X.shape, X.dtype
        ((10000, 28, 28), dtype('uint8'))
    """
    path = _path_arg(path, "path")
    if max_bytes is not None:
        max_bytes = _validate.integer(max_bytes, "max_bytes", low=0)
    return _read_idx(path, max_bytes=max_bytes)[0]


def _path_arg(value, name):
    if isinstance(value, (str, os.PathLike)) and not isinstance(value, bytes):
        path = os.fspath(value)
        if isinstance(path, str) and path:
            return path
    raise TypeError(f"{name} must be a non-empty str or os.PathLike, got {_validate.describe(value)}")


# --------------------------------------------------------------------------- #
# 2. Finding and loading Fashion-MNIST
# --------------------------------------------------------------------------- #

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
        return _explicit_source(_path_arg(root, "root"))[0]
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


def _check_split(split, images, labels, image_name, label_name):
    n = _COUNTS[split]
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != _IMAGE_SHAPE:
        raise DataError(f"{image_name}: expected uint8 images of shape (N, 28, 28), "
                        f"got {images.dtype} of shape {images.shape}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataError(f"{label_name}: expected uint8 labels of shape (N,), "
                        f"got {labels.dtype} of shape {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{image_name} holds {images.shape[0]} images but {label_name} holds "
                        f"{labels.shape[0]} labels; the files do not belong together")
    if images.shape[0] != n:
        raise DataError(f"{image_name}: the Fashion-MNIST {split} set has {n} images, this file has "
                        f"{images.shape[0]}; is it another dataset?")
    if labels.size and int(labels.max()) >= _NUM_CLASSES:
        raise DataError(f"{label_name}: labels must be in 0..{_NUM_CLASSES - 1}, found {int(labels.max())}")


_KEYS = ("X_train", "y_train", "X_test", "y_test")


def _cache_path(files):
    """The decoded-cache file for this source, keyed by where it is and what it holds."""
    where = hashlib.sha256()
    what = hashlib.sha256()
    for base in FASHION_MNIST_FILES:
        path = os.path.realpath(files[base])
        st = os.stat(path)
        where.update(path.encode("utf-8", "surrogatepass") + b"\0")
        what.update(f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino};".encode())
    what.update(repr(sorted(_COUNTS.items())).encode())
    prefix = f"decoded-{where.hexdigest()[:16]}-"
    return os.path.join(fashion_mnist_cache_dir(), prefix + what.hexdigest()[:16] + ".npz"), prefix


def _load_cache(path):
    """The four arrays from our own decoded cache, or None (a bad one is deleted)."""
    if not os.path.isfile(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if sorted(z.files) != sorted(_KEYS):
                raise DataError("unexpected arrays")
            arrays = {k: z[k] for k in _KEYS}
        _check_split("train", arrays["X_train"], arrays["y_train"], path, path)
        _check_split("test", arrays["X_test"], arrays["y_test"], path, path)
        return arrays
    except Exception:  # noqa: BLE001 - any failure of our derived cache means: rebuild it
        try:
            os.unlink(path)
        except OSError:
            pass
        return None


def _save_cache(path, prefix, arrays):
    """Best effort: an unwritable cache directory just means no cache."""
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, exist_ok=True)
        _io.atomic_write(path, lambda f, _: np.savez(f, **arrays), suffix=".part")
    except OSError:
        return
    for entry in os.listdir(directory):  # drop copies of older versions of this source
        if entry.startswith(prefix) and entry.endswith(".npz") and entry != os.path.basename(path):
            try:
                os.unlink(os.path.join(directory, entry))
            except OSError:
                pass


def _is_gzip(path):
    try:
        with open(path, "rb") as f:
            return f.read(2) == _GZIP_MAGIC
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from None


def _load_files(files, cache):
    gz = any([_is_gzip(path) for path in files.values()])
    use_cache = cache and gz  # uncompressed files already load at disk speed
    arrays = None
    if use_cache:
        try:
            cache_path, prefix = _cache_path(files)
        except OSError:
            use_cache = False
        else:
            arrays = _load_cache(cache_path)
    if arrays is None:
        read = {base: read_idx(files[base], max_bytes=_MAX_IDX_BYTES) for base in FASHION_MNIST_FILES}
        for split, image_base, label_base in _SPLITS:
            _check_split(split, read[image_base], read[label_base], files[image_base], files[label_base])
        arrays = dict(zip(_KEYS, (read[b] for b in FASHION_MNIST_FILES)))
        if use_cache:
            _save_cache(cache_path, prefix, arrays)
    return (arrays["X_train"], arrays["y_train"].astype(np.int64),
            arrays["X_test"], arrays["y_test"].astype(np.int64))


def load_fashion_mnist(root=None, *, download=True, mirrors=None, timeout=30.0, retries=2,
                       checksums=None, cache=True):
    """Load Fashion-MNIST as four arrays, finding (or downloading) the files.

    An explicit ``root`` is the only place looked at: it is used or refused,
    never skipped for another copy. It must hold the four files as regular
    files (gzipped or not), or hold none of them and have torchvision's
    ``root/FashionMNIST/raw`` hold them. Otherwise, with ``download`` true and
    nothing wrong but absent files, the missing files are downloaded into
    ``root`` (created if needed; files already there are verified against
    ``checksums``), as ``torchvision.datasets.FashionMNIST(root, download=True)``
    does; in every other case :class:`DataDirError` names the folder and what
    is wrong: no such directory, not a directory, a symlink loop, missing files
    by name, or a file that is a directory, a FIFO or a broken link.

    Without ``root``, the directories searched, in order; the first holding all
    four files wins:

    1. ``$NPNET_DATA``
    2. the per-user cache, :func:`fashion_mnist_cache_dir`
    3. ``$NPNET_DATA/FashionMNIST/raw`` (torchvision's layout)
    4. :data:`SYSTEM_DIRS`, Debian's ``/usr/share/datasets/fashion-mnist``

    A source whose files are found but corrupt raises ``DataError``; it is never
    silently replaced by the next source. When nothing is found and ``download``
    is true, :func:`download_fashion_mnist` fetches the files into the cache
    directory.

    The first load of gzipped files keeps a decoded ``.npz`` copy in the cache
    directory, keyed by the source's path, sizes and mtimes; later loads read it
    (about 0.05 s instead of 0.4 s). A damaged copy is deleted and rebuilt; an
    unwritable cache directory just means no copy.

    Args:
        root: str or os.PathLike or None, the one directory to read from
            (and to download into); None searches the places listed above.
        download: bool, fetch the files when no source has them.
        mirrors, timeout, retries, checksums: passed to :func:`download_fashion_mnist`.
        cache: bool, read and write the decoded copy.

    Returns:
        ``(X_train, y_train, X_test, y_test)``:
        X_train (60000, 28, 28) uint8, y_train (60000,) int64,
        X_test (10000, 28, 28) uint8, y_test (10000,) int64; labels in 0..9.

    Raises:
        DataDirError: ``root`` is given and is not a complete, valid source
            (and cannot be completed by a download); the message names it.
        DataError: files found but corrupt, or none found and ``download=False``;
            the message lists every way to provide the data.
        DownloadError: none found and the download failed; its ``reason``
            attribute says why in one line.

    Example:
        >>> X_train, y_train, X_test, y_test = load_fashion_mnist()
        >>> X_train.shape, y_train[:3]
        ((60000, 28, 28), array([9, 0, 0]))
    """
    if root is not None:
        root = _path_arg(root, "root")
    if not isinstance(download, (bool, np.bool_)):
        raise TypeError(f"download must be a bool, got {_validate.describe(download)}")
    if not isinstance(cache, (bool, np.bool_)):
        raise TypeError(f"cache must be a bool, got {_validate.describe(cache)}")
    _download_args(mirrors, timeout, retries, checksums)  # bad arguments fail now, not after a search
    if root is not None:
        files, why = _explicit_source(root)
        if files is None:
            if not download:
                raise _data_dir_error(root, why, downloadable=True)
            dest = download_fashion_mnist(root, mirrors=mirrors, timeout=timeout, retries=retries,
                                          checksums=checksums, _context=f"root={root}: {why}; ")
            files = _files_in(dest)
        return _load_files(files, bool(cache))
    files, searched = _find_source()
    if files is None:
        where = "Fashion-MNIST not found. Searched:\n" + "".join(f"  - {s}\n" for s in searched)
        if not download:
            raise DataError(where + "and download=False.\n" + _how_to_provide())
        dest = download_fashion_mnist(root, mirrors=mirrors, timeout=timeout, retries=retries,
                                      checksums=checksums, _context=where)
        files = _files_in(dest)
    return _load_files(files, bool(cache))


def fingerprint(X_train, y_train, X_test, y_test):
    """A SHA-256 that identifies a data set by its decoded content.

    Hashes, in argument order, each array's dtype (``dtype.str``, byte order
    included), shape and C-order bytes. The same four arrays give the same value
    wherever the files came from (gzipped or not, any folder, the decoded cache);
    one changed pixel or label, another shape or dtype, or the arrays in another
    order give another value. Checkpoints record it so that a run is resumed only
    on the data it started on.

    It reads every byte: about 0.06 s for the full Fashion-MNIST (55 MB) on a
    2-core machine, against 0.13 s for a warm :func:`load_fashion_mnist`.

    Args:
        X_train, y_train, X_test, y_test: ndarrays, as :func:`load_fashion_mnist`
            returns them (any dtype and shape; no copy unless non-contiguous).

    Returns:
        str, 64 lowercase hex digits.

    Example:
        >>> fingerprint(*load_fashion_mnist())        # doctest: +SKIP
        '4c1b...'
    """
    h = hashlib.sha256(b"npnet-data-fingerprint-v1\0")
    for name, a in (("X_train", X_train), ("y_train", y_train), ("X_test", X_test), ("y_test", y_test)):
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{name} must be a numpy.ndarray, got {_validate.describe(a)}")
        if a.dtype.hasobject:
            raise TypeError(f"{name} must hold numbers, got dtype {a.dtype}")
        h.update(f"{a.dtype.str}{a.shape};".encode())
        h.update(np.ascontiguousarray(a).reshape(-1).view(np.uint8))
    return h.hexdigest()


def get_fashion_mnist_labels(labels):
    """Map label indices to the course's text labels.

    Args:
        labels: integer ndarray or iterable of ints, each in 0..9.

    Returns:
        list of str, one per label, from :data:`FASHION_MNIST_LABELS`.

    Example:
        >>> get_fashion_mnist_labels(np.array([0, 9]))
        ['t-shirt', 'ankle boot']
    """
    if isinstance(labels, np.ndarray):
        if labels.dtype == np.bool_ or not np.issubdtype(labels.dtype, np.integer):
            raise TypeError(f"labels must hold integers, got {_validate.describe(labels)}")
        values = labels.ravel().tolist()
    elif isinstance(labels, (str, bytes)) or not hasattr(labels, "__iter__"):
        raise TypeError(f"labels must be an integer ndarray or an iterable of ints, got {_validate.describe(labels)}")
    else:
        values = list(labels)
        for v in values:
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
                raise TypeError(f"labels must hold integers, got {_validate.describe(v)} among them")
    out = []
    for v in values:
        v = int(v)
        if not 0 <= v < _NUM_CLASSES:
            raise ValueError(f"labels must be in 0..{_NUM_CLASSES - 1}, got {v}")
        out.append(FASHION_MNIST_LABELS[v])
    return out


# --------------------------------------------------------------------------- #
# 3. Downloading
# --------------------------------------------------------------------------- #

class _Transient(Exception):
    """Worth retrying: no connection, a stall, a 5xx, a truncated body."""


class _Permanent(Exception):
    """Not worth retrying from this mirror: 4xx, an HTML page, a checksum mismatch."""


def _mirror_list(mirrors):
    if mirrors is None:
        env = os.environ.get("NPNET_FASHION_MNIST_URL", "").replace(",", " ").split()
        mirrors = env or DEFAULT_MIRRORS
        name = "NPNET_FASHION_MNIST_URL" if env else "mirrors"
    else:
        name = "mirrors"
        if isinstance(mirrors, str):
            mirrors = [mirrors]
        if not isinstance(mirrors, (list, tuple)):
            raise TypeError(f"mirrors must be a list of base URLs or None, got {_validate.describe(mirrors)}")
    out = []
    for m in mirrors:
        if not isinstance(m, str) or not m.lower().startswith(("http://", "https://")):
            raise ValueError(f"{name} must hold http:// or https:// base URLs, got {m!r}")
        out.append(m if m.endswith("/") else m + "/")
    if not out:
        raise ValueError(f"{name} must hold at least one base URL, got none")
    return out


def _download_args(mirrors, timeout, retries, checksums):
    urls = _mirror_list(mirrors)
    timeout = _validate.real_number(timeout, "timeout", low=0, low_open=True)
    retries = _validate.integer(retries, "retries", low=0, high=10)
    if checksums is None:
        checksums = FASHION_MNIST_SHA256
    if not isinstance(checksums, dict):
        raise TypeError(f"checksums must be a dict {{file base name: sha256 hex}} or None, "
                        f"got {_validate.describe(checksums)}")
    if set(checksums) != set(FASHION_MNIST_FILES):
        raise ValueError(f"checksums must have exactly the keys {list(FASHION_MNIST_FILES)}, "
                         f"got {sorted(checksums)}")
    return urls, timeout, retries, checksums


def _fetch(url, final, expected, timeout):
    """Download ``url`` into ``final`` via a temp file, verified, or raise."""

    def write(out, tmp):
        request = urllib.request.Request(url, headers={"User-Agent": "npnet-data"})
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as e:
            e.close()
            msg = f"HTTP {e.code} {e.reason}"
            raise (_Transient if e.code >= 500 or e.code == 429 else _Permanent)(msg) from None
        except urllib.error.URLError as e:
            reason = e.reason
            if isinstance(reason, (socket.timeout, TimeoutError)):
                raise _Transient(f"no response within {timeout} s") from None
            raise _Transient(f"cannot connect: {reason}") from None
        except (socket.timeout, TimeoutError):
            raise _Transient(f"no response within {timeout} s") from None
        except (HTTPException, OSError) as e:
            raise _Transient(f"connection failed: {e!r}") from None
        with response:
            ctype = response.headers.get("Content-Type", "") or ""
            if ctype.lower().startswith(("text/html", "text/plain")):
                raise _Permanent(f"the server sent a web page (Content-Type {ctype}), not the gzip file")
            length = response.headers.get("Content-Length")
            try:
                length = int(length) if length is not None else None
            except ValueError:
                length = None
            if length is not None and length > _MAX_DOWNLOAD_BYTES:
                raise _Permanent(f"the server announces {length} bytes; no Fashion-MNIST file is that large")
            total, start = 0, b""
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except (socket.timeout, TimeoutError):
                    raise _Transient(f"the transfer stalled for {timeout} s after {total} bytes") from None
                except (HTTPException, OSError) as e:
                    raise _Transient(f"truncated body: the connection broke after {total} bytes "
                                     f"({type(e).__name__})") from None
                if not chunk:
                    break
                if len(start) < 2:
                    start += chunk[:2]
                    if len(start) >= 2 and start[:2] != _GZIP_MAGIC:
                        raise _Permanent(f"the body is not gzip data; it starts with {chunk[:40]!r} "
                                         "(an error page?)")
                total += len(chunk)
                if total > _MAX_DOWNLOAD_BYTES:
                    raise _Permanent(f"the body exceeds {_MAX_DOWNLOAD_BYTES} bytes; "
                                     "no Fashion-MNIST file is that large")
                out.write(chunk)
            if length is not None and total < length:
                raise _Transient(f"truncated body: {total} of {length} bytes")
            if total < 2:
                raise _Permanent(f"the body is {total} bytes, not a gzip file")
        out.flush()
        try:
            _, digest = _read_idx(tmp, max_bytes=_MAX_IDX_BYTES, digest=True)
        except _Truncated as e:
            raise _Transient(f"truncated body ({e})") from None
        except DataError as e:
            raise _Permanent(f"the file is not a valid IDX file: {e}") from None
        if digest != expected:
            raise _Permanent(f"checksum mismatch: the SHA-256 of the decompressed content is {digest}, "
                             f"expected {expected}")

    _io.atomic_write(final, write, suffix=".part")


def download_fashion_mnist(root=None, *, mirrors=None, timeout=30.0, retries=2, checksums=None,
                           _context=""):
    """Download the four Fashion-MNIST ``.gz`` files, verified, into a directory.

    Files already in the directory are verified, not fetched again. Each file is
    streamed into a temp file in the target directory, checked (gzip magic, a
    valid IDX, the SHA-256 of its decompressed content from ``checksums``),
    fsynced and renamed into place: a failed or interrupted download leaves no
    partial or temp file behind.

    Each mirror is tried in order. Connection errors, timeouts, HTTP 5xx/429 and
    truncated bodies are retried ``retries`` times with a short backoff (0.5 s,
    1 s, ...). A 4xx, a web page instead of gzip data, or a checksum mismatch of
    a complete response is not retried from the same mirror; the next mirror is
    tried instead.

    Args:
        root: str or os.PathLike or None, the target directory (created if
            needed); None means :func:`fashion_mnist_cache_dir`.
        mirrors: list of http(s) base URLs or None. None means
            ``$NPNET_FASHION_MNIST_URL`` (space- or comma-separated) if set,
            else :data:`DEFAULT_MIRRORS` (Zalando's GitHub repository over
            HTTPS, then its S3 mirror).
        timeout: positive float, seconds allowed for connecting and for each
            stall while reading.
        retries: int >= 0, extra attempts per mirror after a transient failure.
        checksums: dict {base name: SHA-256 hex of the decompressed content} or
            None for :data:`FASHION_MNIST_SHA256`.

    Returns:
        str, the directory now holding all four files.

    Raises:
        DownloadError: every mirror failed for some file; the message lists each
            attempt and every other way to provide the data.
        DataError: a file already in the directory fails verification.

    Example:
        >>> download_fashion_mnist("data/")           # doctest: +SKIP
        'data/'
    """
    directory = fashion_mnist_cache_dir() if root is None else _path_arg(root, "root")
    urls, timeout, retries, checksums = _download_args(mirrors, timeout, retries, checksums)
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as e:
        raise DownloadError(f"{_context}cannot create the download directory {directory}: "
                            f"{e.strerror or e}\n{_how_to_provide()}") from None

    present = _files_in(directory)
    for base in FASHION_MNIST_FILES:
        if base in present:
            _, digest = _read_idx(present[base], max_bytes=_MAX_IDX_BYTES, digest=True)
            if digest != checksums[base]:
                raise DataError(f"{present[base]} is already there but its content has SHA-256 {digest}, "
                                f"expected {checksums[base]}; delete it to download it again")
            continue
        final = os.path.join(directory, base + ".gz")
        failures = []
        for mirror in urls:
            url = mirror + base + ".gz"
            for attempt in range(retries + 1):
                try:
                    _fetch(url, final, checksums[base], timeout)
                    break
                except _Transient as e:
                    failures.append(f"{url} (attempt {attempt + 1}): {e}")
                    if attempt < retries:
                        time.sleep(_RETRY_BACKOFF * 2 ** attempt)
                except _Permanent as e:
                    failures.append(f"{url} (attempt {attempt + 1}, not retried): {e}")
                    break
                except OSError as e:  # the disk, not the network: no mirror can help
                    raise DownloadError(f"cannot write {final}: {e.strerror or e}") from None
            if os.path.isfile(final):
                break
        else:
            error = DownloadError(
                f"{_context}Could not download {base}.gz:\n"
                + "".join(f"  - {f}\n" for f in failures)
                + _how_to_provide()
            )
            error.reason = f"could not download {base}.gz; last attempt: {failures[-1]}"
            raise error
    return directory


# --------------------------------------------------------------------------- #
# 4. Batches
# --------------------------------------------------------------------------- #

class DataLoader:
    """Iterate over ``(X, y)`` in mini-batches, one epoch per ``iter()``.

    uint8 images stay uint8 in memory and are converted per batch to float32
    in [0, 1], ``x / 255`` exactly as torchvision's ``ToTensor``; an
    ``(N, H, W)`` uint8 array gains a channel axis. float32/float64 ``X`` is
    batched as is. Integer labels come out as int64; float targets as they are.
    Every batch is a fresh array that the caller may keep or modify; the loader
    never writes to ``X`` or ``y`` (but sees later changes the caller makes).

    With ``shuffle``, each ``iter()`` draws a new permutation from ``rng``, so
    every sample appears exactly once per epoch, in a new order each epoch, and
    the same seed gives the same sequence of epochs.

    Args:
        X: ndarray (N, ...) of uint8, float32 or float64.
        y: ndarray (N, ...) of integers or floats.
        batch_size: positive int.
        shuffle: bool, a new order each epoch.
        rng: numpy.random.Generator or None (a fresh unseeded one when shuffling).
        drop_last: bool, skip the last batch when it is smaller than batch_size.

    Shape:
        uint8 X (N, H, W) -> (B, 1, H, W) float32; other uint8 X (N, ...) -> (B, ...) float32;
        float X (N, ...) -> (B, ...) same dtype; integer y (N,) -> (B,) int64.

    Example:
        >>> loader = DataLoader(X_train, y_train, 256, shuffle=True, rng=np.random.default_rng(0))
        >>> Xb, yb = next(iter(loader))
        >>> Xb.shape, Xb.dtype, yb.dtype, len(loader)
        ((256, 1, 28, 28), dtype('float32'), dtype('int64'), 235)
    """

    def __init__(self, X, y, batch_size, *, shuffle=False, rng=None, drop_last=False):
        if not isinstance(X, np.ndarray):
            raise TypeError(f"X must be a numpy.ndarray, got {_validate.describe(X)}")
        if X.dtype != np.uint8 and X.dtype not in _validate.FLOAT_DTYPES:
            raise TypeError(f"X must have dtype uint8 (images) or float32/float64, got {X.dtype}")
        if X.ndim < 1:
            raise ValueError(f"X must have a sample axis, got shape {X.shape}")
        if not isinstance(y, np.ndarray):
            raise TypeError(f"y must be a numpy.ndarray, got {_validate.describe(y)}")
        if y.dtype == np.bool_ or not (np.issubdtype(y.dtype, np.integer) or y.dtype in _validate.FLOAT_DTYPES):
            raise TypeError(f"y must hold integer labels or float32/float64 targets, got dtype {y.dtype}")
        if y.ndim < 1 or y.shape[0] != X.shape[0]:
            raise ValueError(f"y must have one entry per sample of X ({X.shape[0]}), got shape {y.shape}")
        self.batch_size = _validate.integer(batch_size, "batch_size", low=1)
        for name, value in (("shuffle", shuffle), ("drop_last", drop_last)):
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool, got {_validate.describe(value)}")
        if rng is not None and not shuffle:
            _validate.generator(rng)  # still reject a wrong type early
        self.rng = _validate.generator(rng) if shuffle else rng
        self.X, self.y = X, y
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)

    @property
    def dataset_size(self):
        """Number of samples N."""
        return self.X.shape[0]

    def __len__(self):
        n, b = self.dataset_size, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self):
        # Draw the permutation now, not at the first next(): iter() is the epoch.
        order = self.rng.permutation(self.dataset_size) if self.shuffle else None
        return self._batches(order)

    def _batches(self, order):
        X, y, b = self.X, self.y, self.batch_size
        images = X.dtype == np.uint8
        x_shape = (1,) + X.shape[1:] if images and X.ndim == 3 else X.shape[1:]
        y_dtype = np.int64 if np.issubdtype(y.dtype, np.integer) else y.dtype
        # sized by what a batch can hold: batch_size may be far larger than the data set
        staging = (np.empty((min(b, X.shape[0]),) + X.shape[1:], dtype=np.uint8)
                   if images and order is not None else None)
        for start in range(0, len(self) * b, b):
            stop = min(start + b, self.dataset_size)
            m = stop - start
            if order is None:
                idx = None
                xb = X[start:stop]  # a view; the conversion below copies
                yb = y[start:stop].astype(y_dtype, copy=True)
            else:
                idx = order[start:stop]
                yb = np.take(y, idx, axis=0).astype(y_dtype, copy=False)
            if images:
                if idx is not None:
                    xb = np.take(X, idx, axis=0, out=staging[:m])
                out = np.empty((m,) + x_shape, dtype=np.float32)
                # a float32 division, correctly rounded: the values of torchvision's ToTensor
                np.divide(xb.reshape((m,) + x_shape), np.float32(255), out=out, dtype=np.float32)
            else:
                out = X[start:stop].copy() if idx is None else np.take(X, idx, axis=0)
            yield out, yb


def load_data_fashion_mnist(batch_size, root=None, *, rng=None, download=True):
    """Fashion-MNIST as the course's pair of iterators.

    Args:
        batch_size: positive int.
        root: passed to :func:`load_fashion_mnist`.
        rng: numpy.random.Generator or None, shuffles the training set.
        download: passed to :func:`load_fashion_mnist`.

    Returns:
        ``(train_iter, test_iter)``: :class:`DataLoader` s yielding
        (B, 1, 28, 28) float32 in [0, 1] and (B,) int64; train shuffled each
        epoch, test in file order.

    Example:
        >>> train_iter, test_iter = load_data_fashion_mnist(256, rng=np.random.default_rng(0))
        >>> len(train_iter), len(test_iter)
        (235, 40)
    """
    batch_size = _validate.integer(batch_size, "batch_size", low=1)
    rng = _validate.generator(rng)
    X_train, y_train, X_test, y_test = load_fashion_mnist(root, download=download)
    return (DataLoader(X_train, y_train, batch_size, shuffle=True, rng=rng),
            DataLoader(X_test, y_test, batch_size, shuffle=False))


# --------------------------------------------------------------------------- #
# 5. K-fold cross-validation
# --------------------------------------------------------------------------- #

def kfold(n, k, *, shuffle=False, rng=None):
    """Split ``range(n)`` into k folds; yield ``(train_idx, val_idx)`` for each.

    Like scikit-learn's ``KFold``: the folds partition ``range(n)``, the first
    ``n % k`` folds hold one sample more than the others, ``val_idx`` is the fold
    and ``train_idx`` everything else in ascending order. With ``shuffle`` the
    samples are permuted once (drawn when ``kfold`` is called) before splitting.

    Args:
        n: int, number of samples, n >= k.
        k: int >= 2, number of folds.
        shuffle: bool.
        rng: numpy.random.Generator or None (fresh one when shuffling).

    Returns:
        iterator of k pairs of int64 index arrays.

    Example:
        >>> [v.tolist() for _, v in kfold(5, 2)]
        [[0, 1, 2], [3, 4]]
    """
    k = _validate.integer(k, "k", low=2)
    n = _validate.integer(n, "n", low=0)
    if n < k:
        raise ValueError(f"n must be at least k={k} so that no fold is empty, got n={n}")
    if not isinstance(shuffle, (bool, np.bool_)):
        raise TypeError(f"shuffle must be a bool, got {_validate.describe(shuffle)}")
    if shuffle:
        indices = _validate.generator(rng).permutation(n).astype(np.int64)
    else:
        if rng is not None:
            _validate.generator(rng)
        indices = np.arange(n, dtype=np.int64)
    sizes = np.full(k, n // k, dtype=np.int64)
    sizes[: n % k] += 1
    bounds = np.concatenate(([0], np.cumsum(sizes)))

    def folds():
        for j in range(k):
            val = indices[bounds[j]:bounds[j + 1]].copy()
            mask = np.ones(n, dtype=bool)
            mask[val] = False
            yield np.flatnonzero(mask).astype(np.int64), val

    return folds()


def get_k_fold_data(k, i, X, y):
    """The i-th of k folds, exactly as the course (d2l) defines it.

    ``fold_size = n // k``; fold j is ``X[j*fold_size:(j+1)*fold_size]``; fold i
    is the validation set and the others, concatenated in order, the training
    set. The last ``n % k`` samples belong to no fold and are dropped. Use
    :func:`kfold` for folds that cover every sample.

    Args:
        k: int >= 2, number of folds.
        i: int in [0, k), the validation fold.
        X: ndarray (n, ...), n >= k.
        y: ndarray (n, ...).

    Returns:
        ``(X_train, y_train, X_valid, y_valid)``, fresh arrays:
        X_train ((k-1)*fold_size, ...), X_valid (fold_size, ...).

    Example:
        >>> X = np.arange(10.0).reshape(5, 2); y = np.arange(5.0)
        >>> get_k_fold_data(2, 0, X, y)[3]
        array([0., 1.])
    """
    k = _validate.integer(k, "k", low=2)
    i = _validate.integer(i, "i", low=0, high=k - 1)
    for name, a in (("X", X), ("y", y)):
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{name} must be a numpy.ndarray, got {_validate.describe(a)}")
        if a.ndim < 1:
            raise ValueError(f"{name} must have a sample axis, got shape {a.shape}")
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"y must have one entry per sample of X ({X.shape[0]}), got shape {y.shape}")
    n = X.shape[0]
    if n < k:
        raise ValueError(f"X must have at least k={k} samples so that no fold is empty, got {n}")
    fold_size = n // k
    parts = [slice(j * fold_size, (j + 1) * fold_size) for j in range(k) if j != i]
    X_train = np.concatenate([X[s] for s in parts], axis=0)
    y_train = np.concatenate([y[s] for s in parts], axis=0)
    valid = slice(i * fold_size, (i + 1) * fold_size)
    return X_train, y_train, X[valid].copy(), y[valid].copy()
