"""pytest configuration: hypothesis profiles and shared fixtures.

Profiles
--------
* ``ci``  -- deterministic (``derandomize=True``, no example database),
  ``max_examples`` from ``RNNRS_HYPOTHESIS_EXAMPLES`` (default 25).
* ``dev`` -- randomised, more examples (``RNNRS_HYPOTHESIS_EXAMPLES`` or 100).

``HYPOTHESIS_PROFILE`` selects a profile explicitly; otherwise ``ci`` is used
when ``CI`` is set and ``dev`` when it is not.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Make the helper modules (reference.py, helpers.py) importable whatever
# pytest's import mode is.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import helpers  # noqa: E402

_examples = os.environ.get("RNNRS_HYPOTHESIS_EXAMPLES")

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    max_examples=int(_examples or 25),
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev",
    max_examples=int(_examples or 100),
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)

_profile = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
settings.load_profile(_profile)


def pytest_report_header(config):
    return f"hypothesis profile: {_profile} (max_examples={settings.default.max_examples})"


# --------------------------------------------------------------------------
# Fixtures. Parametrised fixtures are session-scoped so that they can be
# combined with @given (hypothesis rejects function-scoped fixtures).
# --------------------------------------------------------------------------


@pytest.fixture(scope="session", params=helpers.DTYPES, ids=lambda d: np.dtype(d).name)
def dtype(request):
    """Each supported cell dtype: numpy.float32 and numpy.float64."""
    return request.param


@pytest.fixture(scope="session", params=helpers.ACTIVATIONS)
def activation(request):
    """Each supported BasicRNNCell activation."""
    return request.param


@pytest.fixture
def restore_threads():
    """Restore rnnrs' thread count after a test that changes it."""
    import rnnrs

    before = rnnrs.get_num_threads()
    yield before
    rnnrs.set_num_threads(before)


@pytest.fixture
def parallel_everything(restore_threads):
    """Every call takes the thread pool's parallel paths, however small the problem,
    so that the thread-count determinism tests exercise them (by default small
    problems stay on the calling thread: handing them to the pool costs more than it
    saves). Results never depend on this threshold; restored afterwards."""
    from rnnrs import _rnnrs

    _rnnrs._set_parallel_work(0)
    yield restore_threads
    _rnnrs._set_parallel_work(None)
