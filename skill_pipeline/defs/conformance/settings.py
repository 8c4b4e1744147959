"""Thresholds of the conformance assets (unset fields fall back to SKILLMINE_* variables)."""

import dagster as dg
from pydantic import Field

from capture.core import config
from skill_pipeline.verification.runs import DEFAULT_MIN_FITNESS

DEFAULT_MAX_DRIFT = 0.1


def _env_float(name: str, default: float) -> float:
    raw = config.env(name)
    try:
        return float(raw) if raw is not None else default
    except ValueError:
        raise ValueError(f"SKILLMINE_{name}={raw!r} is not a number") from None


class ConformanceSettings(dg.ConfigurableResource):
    """When a run fits a skill, and how far the share of successful runs fitting none may jump."""

    min_fitness: float | None = Field(default=None, description="fitness a run needs to fit a skill "
                                                                 "(SKILLMINE_CONFORMANCE_MIN_FITNESS, default 0.8)")
    max_drift: float | None = Field(default=None, description="largest rise of the share of successful runs "
                                                               "fitting no skill between two materialisations "
                                                               "(SKILLMINE_CONFORMANCE_MAX_DRIFT, default 0.1)")

    def fitness_threshold(self) -> float:
        return (self.min_fitness if self.min_fitness is not None
                else _env_float("CONFORMANCE_MIN_FITNESS", DEFAULT_MIN_FITNESS))

    def drift_threshold(self) -> float:
        return self.max_drift if self.max_drift is not None else _env_float("CONFORMANCE_MAX_DRIFT", DEFAULT_MAX_DRIFT)
