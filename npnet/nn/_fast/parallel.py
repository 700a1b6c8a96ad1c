"""More than one core for the fast kernels' elementwise work.

NumPy runs an elementwise loop (a ReLU, a batch norm's centring, a pool's running
maximum) on one core, where torch splits the same loop over its threads. Most fast
kernels already walk their arrays in blocks (of samples, of image planes, of output
rows) that are independent of each other; :func:`run` hands those blocks to a small
pool of threads. NumPy releases the GIL inside its loops on large arrays, so the
threads run at the same time.

The results do not depend on the number of threads, to the bit: a kernel splits its
work into the same blocks whatever the thread count, each block is computed by the
same code wherever it runs, and per-block partial results (sums) come back in block
order, to be combined in that order.

``npnet.set_num_threads(n)`` sets how many threads the kernels use (``n = 1``: no
thread is started, every block runs in the caller's thread);
``npnet.get_num_threads()`` tells. The default is ``NPNET_NUM_THREADS`` from the
environment if set, else the number of CPUs this process may run on. The plain
kernels (``NPNET_KERNELS=plain``) never use threads. BLAS, under NumPy's matrix
products, has threads of its own, set as usual (``OMP_NUM_THREADS``,
``OPENBLAS_NUM_THREADS`` or threadpoolctl).
"""
import contextvars
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from ... import _validate as V

__all__ = ["get_num_threads", "set_num_threads", "run"]


def _default_threads():
    value = os.environ.get("NPNET_NUM_THREADS", "")
    if value:
        try:
            threads = int(value)
        except ValueError:
            threads = 0
        if threads < 1:
            raise ImportError(f"NPNET_NUM_THREADS must be a positive integer (or unset), got {value!r}")
        return threads
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:   # no sched_getaffinity (macOS, Windows)
        return max(1, os.cpu_count() or 1)


_threads = _default_threads()
_pool = None          # the ThreadPoolExecutor, started on first use
_pool_pid = None      # the process that started it: a forked child starts its own
_lock = threading.Lock()
_PREFIX = "npnet-kernels"   # the pool's thread names


def get_num_threads():
    """How many threads npnet's fast kernels use, as ``torch.get_num_threads``.

    Example:
        >>> import npnet
        >>> npnet.get_num_threads() >= 1
        True
    """
    return _threads


def set_num_threads(num_threads):
    """Set how many threads npnet's fast kernels use, as ``torch.set_num_threads``.

    Results are the same, to the bit, for every number of threads; only the time
    changes. ``1`` runs everything in the calling thread. BLAS (NumPy's matrix
    products) keeps its own setting.

    Args:
        num_threads: int >= 1.

    Example:
        >>> import npnet
        >>> before = npnet.get_num_threads()
        >>> npnet.set_num_threads(1); npnet.get_num_threads()
        1
        >>> npnet.set_num_threads(before)
    """
    global _threads, _pool, _pool_pid
    num_threads = V.integer(num_threads, "num_threads", low=1)
    with _lock:
        if num_threads != _threads and _pool is not None:
            if _pool_pid == os.getpid():
                _pool.shutdown(wait=False)
            _pool, _pool_pid = None, None
        _threads = num_threads


def _executor():
    global _pool, _pool_pid
    with _lock:
        if _pool is None or _pool_pid != os.getpid():   # a forked child has no threads of its parent's pool
            _pool = ThreadPoolExecutor(max_workers=_threads - 1, thread_name_prefix=_PREFIX)
            _pool_pid = os.getpid()
        return _pool


def run(fn, blocks):
    """``[fn(block) for block in blocks]``, the blocks shared among the threads.

    Each thread takes one run of consecutive blocks (consecutive, so that each
    thread walks its own stretch of memory) and the caller's thread takes the first;
    the results come back in the order of ``blocks``. With one thread, or one block,
    no thread is involved. ``fn`` must write only where its block says, so that the
    blocks can run in any order.
    """
    blocks = list(blocks)
    threads = min(_threads, len(blocks))
    if threads <= 1 or threading.current_thread().name.startswith(_PREFIX):
        # one thread, or one block; or called from a block already running on the pool, whose
        # threads may all be busy waiting for this call: the blocks run here, in order
        return [fn(b) for b in blocks]
    # an uneven share leaves the extra block to the caller's thread, which starts at once
    bounds = [-(-len(blocks) * t // threads) for t in range(threads + 1)]

    def stretch(t):
        return [fn(b) for b in blocks[bounds[t]:bounds[t + 1]]]

    pool = _executor()
    # each thread runs in a copy of the caller's context, where NumPy keeps np.errstate
    futures = [pool.submit(contextvars.copy_context().run, stretch, t) for t in range(1, threads)]
    try:
        results = stretch(0)
    finally:
        others = [f.result() for f in futures]   # wait for every stretch, even when this one raised
    for part in others:
        results.extend(part)
    return results
