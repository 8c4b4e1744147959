"""Whether the tests run under CI (``CI=true``, as `.ci/run` sets it): there, a missing service fails a test
instead of skipping it, and property tests use their derandomised profile."""

import os


def in_ci() -> bool:
    """True when the environment variable CI is ``true`` (any case, surrounding blanks ignored)."""
    return os.environ.get("CI", "").strip().lower() == "true"
