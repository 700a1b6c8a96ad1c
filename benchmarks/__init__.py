"""Benchmarks of npnet against PyTorch on the CPU (``python -m benchmarks``).

Method: both sides run in the same process, interleaved (npnet, torch, npnet,
torch, ...), after a warm-up, with the same number of threads; each side's time
is the median of the repeats, and results are reported as ratios
npnet / torch (below 1: npnet is faster). Before timing, each case checks that
npnet and torch compute the same numbers.
"""
