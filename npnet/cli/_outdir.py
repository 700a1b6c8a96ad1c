"""``npnet train``'s output folder and memory: the lock on ``--out``, creating it and
clearing an earlier run's files, and refusing a run too large for memory before
any data is loaded."""
import os

import numpy as np

from ._common import LOCK, RUN_FILES, RunFailed, UsageError


class _OutLock:
    """An exclusive ``flock`` on ``<out>/.lock`` (holding the pid) for the whole run.

    The kernel drops the lock when its process ends however it ends, so a lock
    file left by a killed run never blocks the next one. The file is removed
    while still locked; a run that locked a file someone has just removed tries
    again on the new one, so two runs never both hold "the" lock.
    """

    def __init__(self, out):
        self.path = os.path.join(out, LOCK)
        self.fd = None

    def acquire(self, out):
        try:
            import fcntl
        except ImportError:   # no flock on this system: run unlocked
            return self
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise UsageError(f"cannot write into --out {out}: {e.strerror or e}") from e
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 32).decode("ascii", "replace").strip()
                os.close(fd)
                who = f"pid {holder}" if holder.isdigit() else "another process"
                raise UsageError(f"--out {out} is in use by another npnet train ({who}); wait for it to finish, "
                                 "or choose another --out") from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self.fd = fd
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        return self

    def release(self):
        if self.fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self.fd)   # closing drops the flock
        self.fd = None


def _make_out(out):
    """Create --out (and missing parents); returns the directories created, deepest last."""
    missing, d = [], os.path.abspath(out)
    while d and not os.path.isdir(d):
        missing.append(d)
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create --out {out}: {e.strerror or e}") from e
    return missing[::-1]


def _remove_run_files(out):
    """Remove the files an earlier run wrote into ``out`` (RUN_FILES only: nothing of the user's)."""
    for name in RUN_FILES:
        try:
            os.unlink(os.path.join(out, name))
        except FileNotFoundError:
            pass
        except OSError as e:
            raise RunFailed(f"cannot remove the earlier run's {os.path.join(out, name)}: {e.strerror or e}") from e


def _remove_empty_dirs(created):
    for d in reversed(created):
        try:
            os.rmdir(d)
        except OSError:   # not empty (someone else's files) or already gone: leave it
            return


# --------------------------------------------------------------------------- memory

# Fashion-MNIST held in memory as uint8: 70,000 images of 784 pixels and their labels.
_DATA_BYTES = 70_000 * 785


def _memory_needed(s):
    """Bytes a run with settings ``s`` needs, roughly: the parameters with their gradients, optimizer
    state and the copies a checkpoint makes, one batch of activations and gradients, and the data."""
    itemsize = np.dtype(s["dtype"]).itemsize
    hidden = s["hidden"] if s["model"] in ("mlp", "cnn") else 0
    if s["model"] == "lenet":
        params = 61_706
        per_sample = 2 * 784 + 6 * (6 * 784 + 16 * 100) + 5 * (120 + 84) + 4 * 10   # each conv's map, ~6 copies
    elif s["model"] == "cnn":
        params = 16 * 9 + 16 * 32 * 9 + 32 * 49 * hidden + hidden * 10 + 6 * 48 + hidden + 10
        per_sample = 2 * 784 + 7 * (16 * 784 + 32 * 196) + 5 * hidden + 4 * 10   # BatchNorm keeps more copies
    else:
        params = (784 * hidden + hidden + hidden * 10 + 10) if hidden else 784 * 10 + 10
        per_sample = 2 * 784 + 5 * hidden + 4 * 10   # input and its gradient, hidden layer(s), logits
    state = 2 if s["optimizer"] == "adam" else (1 if s["momentum"] else 0)
    copies = 1 + 1 + state + 2   # weights, gradients, optimizer state, checkpoint copy and its checksum
    batch = min(s["batch_size"], 60_000)
    return params * copies * itemsize + batch * per_sample * itemsize + _DATA_BYTES


def _available_memory():
    """Bytes of memory available to a new allocation (MemAvailable), else the physical memory, else None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _gb(n):
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.0f} MB"


def _check_memory(s):
    """Refuse, before any data is loaded, a run that cannot fit in memory."""
    needed, available = _memory_needed(s), _available_memory()
    if available is None or needed <= available:
        return
    flag = f"--hidden {s['hidden']}" if s["model"] == "mlp" else f"--batch-size {s['batch_size']}"
    raise UsageError(f"{flag} needs about {_gb(needed)} of memory ({s['dtype']} weights, gradients, "
                     f"{s['optimizer']} state and a batch), more than the {_gb(available)} available; choose a "
                     f"smaller {flag.split()[0]}" + (" or --dtype float32" if s["dtype"] == "float64" else ""))
