"""npnet.set_num_threads / get_num_threads and the block runner behind the fast kernels
(npnet/nn/_fast/parallel.py). That a kernel gives the same bits for every thread count
is tested with each kernel (tests/test_pooling.py, test_normalization.py, test_conv.py,
test_fast.py)."""
import multiprocessing
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import npnet
from npnet.nn._fast import parallel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_set_num_threads_is_what_get_num_threads_tells(num_threads):
    for n in (1, 3, 2):
        npnet.set_num_threads(n)
        assert npnet.get_num_threads() == n
    npnet.set_num_threads(np.int64(4))
    assert npnet.get_num_threads() == 4 and type(npnet.get_num_threads()) is int


@pytest.mark.parametrize("bad, kind", [(0, ValueError), (-2, ValueError), (1.5, TypeError), (True, TypeError),
                                       ("2", TypeError), (None, TypeError)])
def test_set_num_threads_refuses_what_is_not_a_positive_int(num_threads, bad, kind):
    before = npnet.get_num_threads()
    with pytest.raises(kind, match="num_threads"):
        npnet.set_num_threads(bad)
    assert npnet.get_num_threads() == before


def _run_python(code, **env):
    full = {**os.environ, "PYTHONPATH": ROOT, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=120)


def test_the_default_comes_from_NPNET_NUM_THREADS_else_the_cpus_this_process_may_use():
    out = _run_python("import npnet; print(npnet.get_num_threads())", NPNET_NUM_THREADS="3")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["3"]
    env = {k: v for k, v in os.environ.items() if k != "NPNET_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", "import npnet; print(npnet.get_num_threads())"], capture_output=True,
                         text=True, env={**env, "PYTHONPATH": ROOT}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_bad_NPNET_NUM_THREADS_stops_the_import_naming_it(value):
    out = _run_python("import npnet", NPNET_NUM_THREADS=value)
    assert out.returncode != 0
    assert "NPNET_NUM_THREADS" in out.stderr and repr(value) in out.stderr


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
@pytest.mark.parametrize("blocks", [0, 1, 2, 5, 17])
def test_run_returns_every_block_s_result_in_block_order(num_threads, threads, blocks):
    npnet.set_num_threads(threads)
    assert parallel.run(lambda b: b * b, range(blocks)) == [b * b for b in range(blocks)]


def test_run_shares_the_blocks_among_threads_and_the_caller_takes_the_first(num_threads):
    npnet.set_num_threads(2)
    seen = parallel.run(lambda b: threading.get_ident(), range(6))
    assert seen[0] == threading.get_ident()          # the first stretch runs in the caller's thread
    assert len(set(seen)) == 2                        # and the second stretch in another one
    assert seen[:3] == [seen[0]] * 3 and seen[3:] == [seen[3]] * 3   # consecutive blocks per thread
    seen = parallel.run(lambda b: threading.get_ident(), range(5))
    assert seen[:3] == [threading.get_ident()] * 3 and seen[3] == seen[4] != seen[0]   # the odd block: the caller's
    npnet.set_num_threads(1)
    assert set(parallel.run(lambda b: threading.get_ident(), range(6))) == {threading.get_ident()}


def test_run_raises_what_a_block_raises_after_every_block_has_finished(num_threads):
    npnet.set_num_threads(2)
    done = []

    def fn(b):
        if b == 0:
            raise ValueError("block 0 fails")
        done.append(b)
        return b

    with pytest.raises(ValueError, match="block 0 fails"):
        parallel.run(fn, range(4))
    assert sorted(done) == [2, 3]   # the other thread's stretch ran to its end before run returned
    with pytest.raises(ZeroDivisionError):
        parallel.run(lambda b: 1 // (b - 3), range(4))   # the failing block is the other thread's


def _pool_in_child(queue):
    queue.put(parallel.run(lambda b: b + 1, range(4)))


def test_a_forked_child_starts_a_pool_of_its_own(num_threads):
    npnet.set_num_threads(2)
    parallel.run(lambda b: b, range(4))   # the parent's pool has threads now; a fork copies none of them
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_pool_in_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0, "the forked child hung or failed in parallel.run"
    assert queue.get(timeout=5) == [1, 2, 3, 4]


def test_every_thread_runs_under_the_caller_s_errstate(num_threads):
    npnet.set_num_threads(2)
    x = np.array([np.inf], np.float32)

    def fn(b):
        return np.subtract(x, x)   # inf - inf: "invalid"

    with np.errstate(invalid="raise"):
        with pytest.raises(FloatingPointError):
            parallel.run(fn, [0, 1])
        # the second block alone on the worker thread raises too
        with pytest.raises(FloatingPointError):
            parallel.run(lambda b: fn(b) if b == 1 else None, [0, 1])
    with np.errstate(invalid="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert all(np.isnan(r).all() for r in parallel.run(fn, [0, 1]))


def _timeout_seen(code, **env):
    base = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    out = subprocess.run([sys.executable, "-c", code + "; import os; print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))"],
                         capture_output=True, text=True, env={**base, "PYTHONPATH": ROOT, **env}, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[-1]


def test_npnet_imported_first_asks_openblas_s_idle_threads_to_sleep_at_once():
    assert _timeout_seen("import npnet") == "4"
    assert _timeout_seen("import npnet", OPENBLAS_THREAD_TIMEOUT="10") == "10"   # the user's value is kept
    assert _timeout_seen("import numpy, npnet") == "None"   # too late: OpenBLAS read it with NumPy


def test_a_block_that_calls_run_again_runs_its_inner_blocks_in_its_own_thread(num_threads):
    npnet.set_num_threads(2)   # a pool of one worker: a nested call waiting on it would never return

    def outer(b):
        inner = parallel.run(lambda c: (c, threading.get_ident()), range(3))
        return b, [c for c, _ in inner], {t for _, t in inner} == {threading.get_ident()}

    results = parallel.run(outer, range(4))
    assert [b for b, _, _ in results] == [0, 1, 2, 3]
    assert all(inner == [0, 1, 2] for _, inner, _ in results)
    assert all(here for _, _, here in results[2:])   # the worker's blocks ran their inner blocks themselves
