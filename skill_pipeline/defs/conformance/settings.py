"""Settings of the conformance and replay assets (unset fields fall back to SKILLMINE_* variables)."""

from pathlib import Path

import dagster as dg
from pydantic import Field

from capture.core import config
from skill_pipeline.resources import _env_float  # the one parser of numeric SKILLMINE_* settings
from skill_pipeline.verification.replay import ReplaySettings
from skill_pipeline.verification.runs import DEFAULT_MIN_FITNESS

DEFAULT_MAX_DRIFT = 0.1


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


class ReplayResource(dg.ConfigurableResource):
    """Replay verification of new skill versions (unset fields fall back to SKILLMINE_* variables)."""

    store_url: str | None = Field(default=None, description="capture store replays are recorded in "
                                                             "(SKILLMINE_REPLAY_DATABASE_URL, default "
                                                             "sqlite:///$SKILLMINE_HOME/replays.db)")
    work_dir: str | None = Field(default=None, description="where replays run their code (default "
                                                           "$SKILLMINE_HOME/replays)")
    tasks: int = Field(default=10, description="tasks replayed per skill version")
    threshold: float | None = Field(default=None, description="Wilson lower bound of the replay pass rate that "
                                                               "promotes a candidate (SKILLMINE_PROMOTION_THRESHOLD, "
                                                               "default 0.4)")
    max_round: int = Field(default=60, description="group chat rounds before a replay counts as looping")
    timeout_s: float = Field(default=120.0, description="wall-clock seconds one replay may take")

    def settings(self, min_fitness: float) -> ReplaySettings:
        """The replay settings the driver takes."""
        home = config.home()
        url = self.store_url or config.env("REPLAY_DATABASE_URL") or f"sqlite:///{home / 'replays.db'}"
        threshold = self.threshold if self.threshold is not None else _env_float("PROMOTION_THRESHOLD", 0.4)
        work = Path(self.work_dir).expanduser() if self.work_dir else home / "replays"
        return ReplaySettings(url, work, tasks=self.tasks, threshold=threshold,
                              max_round=self.max_round, timeout_s=self.timeout_s, min_fitness=min_fitness)
