"""Shared test set-up: hypothesis profiles and the torch_one_thread fixture.

Profiles: "ci" (bounded, used by .ci/run and whenever CI is set), "dev" (the
default, a little more), "thorough" (for a long local run:
HYPOTHESIS_PROFILE=thorough make test).
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
