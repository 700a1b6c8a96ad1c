"""Fetching the four Fashion-MNIST files: mirrors, retries, and a SHA-256 check
of each file's decompressed content before it is renamed into place."""
import os
import socket
import time
import urllib.error
import urllib.request
from http.client import HTTPException

from .. import _io
from .. import _validate
from ..errors import DataError, DownloadError
from . import sources
from .idx import _CHUNK, _GZIP_MAGIC, _read_idx, _Truncated
from .sources import _MAX_IDX_BYTES, FASHION_MNIST_FILES, _files_in, _how_to_provide, fashion_mnist_cache_dir

__all__ = ["download_fashion_mnist"]

_RETRY_BACKOFF = 0.5             # seconds before the first retry, doubled after each
_MAX_DOWNLOAD_BYTES = 64 << 20   # no Fashion-MNIST .gz is larger than 27 MB


class _Transient(Exception):
    """Worth retrying: no connection, a stall, a 5xx, a truncated body."""


class _Permanent(Exception):
    """Not worth retrying from this mirror: 4xx, an HTML page, a checksum mismatch."""


def _mirror_list(mirrors):
    if mirrors is None:
        env = os.environ.get("NPNET_FASHION_MNIST_URL", "").replace(",", " ").split()
        mirrors = env or sources.DEFAULT_MIRRORS
        name = "NPNET_FASHION_MNIST_URL" if env else "mirrors"
    else:
        name = "mirrors"
        mirrors = [mirrors] if isinstance(mirrors, str) else _validate.sequence(mirrors, name, "base URLs or None")
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
        checksums = sources.FASHION_MNIST_SHA256
    _validate.mapping(checksums, "checksums", "{file base name: sha256 hex} or None", keys=FASHION_MNIST_FILES)
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
    directory = fashion_mnist_cache_dir() if root is None else _validate.path(root, "root")
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

