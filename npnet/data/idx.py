"""The IDX reader: one file of MNIST or Fashion-MNIST, gzipped or not, checked byte by byte.

:func:`read_idx` checks the header, the type code, the dimensions and the exact
length. It never allocates more than the file can hold and never decompresses
more than the header justifies plus one byte, so arbitrary bytes give a
``DataError``, never a hang or a crash.
"""
import hashlib
import os
import stat
import struct
import zlib

import numpy as np

from .. import _validate
from ..errors import DataError

__all__ = ["read_idx"]

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
    path = _validate.path(path, "path")
    if max_bytes is not None:
        max_bytes = _validate.integer(max_bytes, "max_bytes", low=0)
    return _read_idx(path, max_bytes=max_bytes)[0]
