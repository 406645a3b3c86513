import os

from hypothesis import HealthCheck, settings

# A deadline is a timing inside a test: on a loaded two-core machine it flakes. Example counts are
# set per test, small enough to keep the unit suite to a few minutes.
settings.register_profile(
    "lmmbook", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "lmmbook"))
