"""What a simulation wrote, and which runs a store already holds: shared by the fast and the AG2 engine."""

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from capture.store.capture_store import RUNS, CaptureStore
from workloads.ground_truth import GroundTruth


@dataclass
class SimulationSummary:
    """What a simulation wrote."""

    runs: int = 0
    already_stored: int = 0
    events: int = 0
    files: int = 0
    messages: int = 0
    costs: int = 0
    by_mode: Counter = field(default_factory=Counter)
    by_outcome: Counter = field(default_factory=Counter)
    by_mode_outcome: Counter = field(default_factory=Counter)
    ground_truth_path: Path | None = None
    url: str = ""
    engine: str = ""
    seconds: float = 0.0

    def count(self, truth: GroundTruth) -> None:
        """Count one finished run."""
        self.runs += 1
        self.by_mode[truth.mode] += 1
        self.by_outcome[truth.outcome] += 1
        self.by_mode_outcome[(truth.mode, truth.outcome)] += 1


def stored_runs(store: CaptureStore, run_ids: list[str]) -> set[str]:
    """Which of ``run_ids`` the store already holds: a repeated simulation skips them (edges and the recorder's
    event ids are not replay-safe)."""
    with store.engine.connect() as conn:
        return set(conn.execute(select(RUNS.c.id).where(RUNS.c.id.in_(run_ids))).scalars())
