"""Interleaved timing of two callables, reported as medians and their ratio."""
import statistics
import time


def calibrate(fn, target_seconds):
    """How many calls of ``fn`` take about ``target_seconds`` (at least 1)."""
    fn()
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= target_seconds or number >= 1 << 16:
            return max(1, int(number * target_seconds / max(elapsed, 1e-9)))
        number *= 4


def interleaved(fns, *, repeats=7, warmup=1, target_seconds=0.05, pause=0.0):
    """Time each callable in ``fns`` (a dict name -> fn) ``repeats`` times, interleaved.

    Every repeat runs each callable ``number`` times back to back (``number``
    calibrated per callable so a repeat lasts about ``target_seconds``); the
    order of the callables alternates between repeats so neither always goes
    first. ``pause`` seconds of sleep, untimed, separate one callable's turn from
    the next, so threads a callable leaves spinning (BLAS, OpenMP, a child
    process's) go idle before the next one is timed. Returns {name: median
    seconds per call} and {name: all per-call times}.
    """
    numbers = {name: calibrate(fn, target_seconds) for name, fn in fns.items()}
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples = {name: [] for name in fns}
    names = list(fns)
    for r in range(repeats):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            fn, n = fns[name], numbers[name]
            if pause:
                time.sleep(pause)
            start = time.perf_counter()
            for _ in range(n):
                fn()
            samples[name].append((time.perf_counter() - start) / n)
    return {name: statistics.median(s) for name, s in samples.items()}, samples
