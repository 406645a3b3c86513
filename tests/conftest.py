import os

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
