import os

import pytest
from browser_check import find_chromium
from hypothesis import HealthCheck, settings

# A deadline is a timing inside a test: on a loaded two-core machine it flakes. Example counts are
# set per test, small enough to keep the unit suite to a few minutes.
settings.register_profile(
    "lmmbook", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
# CI checks a fixed set of examples (the same on every run), so that a submission is judged on
# its own change; local runs keep exploring new examples and find what CI would not.
settings.register_profile("ci", parent=settings.get_profile("lmmbook"), derandomize=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else
                                     "lmmbook"))


@pytest.fixture(scope="session")
def chromium():
    """The Chromium of the browser checks (the book's pages and the slide decks): skipped locally
    without it, a failure in CI, which installs it."""
    path = find_chromium()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is not installed; .ci/run installs it (apt-get install chromium)")
        pytest.skip("Chromium is not installed (apt-get install chromium); CI runs this check")
    return path
