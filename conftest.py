"""Root conftest: shared by the unit tests, the doctests and nbval."""

from pathlib import Path

ROOT = Path(__file__).parent


def pytest_configure(config):
    # --nbval-sanitize-with is resolved from the current folder; make it independent of where
    # pytest is started.
    if getattr(config.option, "nbval_sanitize_with", None):
        config.option.nbval_sanitize_with = str(ROOT / "nbval_sanitize.cfg")
