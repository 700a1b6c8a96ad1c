"""Shared test set-up: hypothesis profiles, the one guard of the real-data tests, and the
torch_one_thread fixture.

Profiles: "ci" (bounded, used by .ci/run and whenever CI is set), "dev" (the
default, a little more), "thorough" (for a long local run:
HYPOTHESIS_PROFILE=thorough make test).

Tests marked ``realdata`` need the Fashion-MNIST files. ``make test`` obtains
them first, as ``make train`` does; where they cannot be had, every real-data
test skips here, before its fixtures run, with one and the same reason, so the
summary shows a single line. Under CI (env CI set) a missing data set fails
those tests instead: CI must prove that ``make test`` obtains it.
"""
import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=50, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=1000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

_NOT_LOOKED = object()
_missing_reason = _NOT_LOOKED


def real_data_missing():
    """None when Fashion-MNIST is on this machine, else the one-line reason real-data tests skip.

    Looked up once per session, without reading or downloading anything.
    """
    global _missing_reason
    if _missing_reason is _NOT_LOOKED:
        from npnet.data import find_fashion_mnist
        _missing_reason = None if find_fashion_mnist() is not None else (
            "Fashion-MNIST is not on this machine: `make test` obtains it (or run `npnet data`, "
            "or set NPNET_DATA=DIR); real-data tests skipped")
    return _missing_reason


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if item.get_closest_marker("realdata") is None:
        return
    reason = real_data_missing()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI is set but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def torch_one_thread():
    """Run torch on one thread for the module's tests, then restore the setting.

    These tensors are tiny; on a busy 2-core machine waking torch's thread pool
    costs about 10 ms per op against 4 us of arithmetic.
    """
    import torch     # here, not at the top: most test files never need torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def num_threads():
    """``npnet.set_num_threads``, for a test that runs a kernel at several thread counts;
    the count from before the test comes back after it, whatever the test did."""
    import npnet

    before = npnet.get_num_threads()
    try:
        yield npnet.set_num_threads
    finally:
        npnet.set_num_threads(before)
