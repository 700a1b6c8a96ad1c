"""Writing a file all at once: the one helper behind checkpoints, run files,
plots, downloads and the decoded-data cache.

A reader (or a run stopped half-way, even by SIGKILL) sees either the old file
or the complete new one, never a part.
"""
import os
import tempfile


def atomic_write(path, write, *, suffix=".tmp"):
    """Create or replace ``path`` in one step.

    ``write(fileobj, temp_path)`` fills a temp file in the same directory
    (named ``.<name>.*<suffix>``); it is flushed, fsynced, made readable by
    everyone (0644; mkstemp makes 0600) and renamed over ``path`` with
    ``os.replace``; then the directory is fsynced, where the system allows it,
    so the rename survives a power cut too. An exception or Ctrl-C removes the
    temp file and leaves ``path`` as it was; a SIGKILL may leave the temp file
    behind, never a partial ``path``.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=suffix)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as f:
            write(f, tmp)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
