"""Write N external-workload runs into a capture store through its public batch API, and their ground truth to a
JSON-lines file the miner never reads."""

import json
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from capture.store.capture_store import Batch, CaptureStore
from capture.store.migrate import upgrade

from .catalogue import BEHAVIOURS, Behaviour
from .runs import build_script, render

SESSION_NAMESPACE = uuid.UUID("6f1c2a4e-8b1d-4c55-9d2e-3a7e0b5c9f10")
RUNS_PER_SESSION = 20


@dataclass
class GenerationSummary:
    """What was written: counts per skill and outcome, rows, and where the truth is."""

    runs: int
    events: int
    truth_path: Path
    by_skill: Counter = field(default_factory=Counter)
    by_outcome: Counter = field(default_factory=Counter)


def pick_behaviour(seed: int, index: int, behaviours: tuple[Behaviour, ...] = BEHAVIOURS) -> Behaviour:
    """The behaviour of run ``index`` (uniform over the catalogue, deterministic by seed)."""
    return behaviours[random.Random(f"external-pick:{seed}:{index}").randrange(len(behaviours))]


def _merged(batches: list[Batch]) -> Batch:
    merged = Batch()
    for batch in batches:
        for name in ("runs", "nodes", "edges", "events", "files", "messages", "costs"):
            getattr(merged, name).extend(getattr(batch, name))
    return merged


def generate(*, runs: int, seed: int, url: str, truth_path: str | Path, migrate: bool = True,
             runs_per_batch: int = 50, behaviours: tuple[Behaviour, ...] = BEHAVIOURS) -> GenerationSummary:
    """Generate ``runs`` runs into the store at ``url`` (migrated first unless ``migrate`` is false)."""
    if runs < 0:
        raise ValueError(f"runs must be >= 0, got {runs}")
    if migrate:
        upgrade(url)
    truth_path = Path(truth_path)
    truth_path.parent.mkdir(parents=True, exist_ok=True)
    summary = GenerationSummary(runs=runs, events=0, truth_path=truth_path)
    store = CaptureStore.open(url)
    try:
        with truth_path.open("w", encoding="utf-8") as truth:
            pending: list[Batch] = []
            for index in range(runs):
                script = build_script(pick_behaviour(seed, index, behaviours), seed, index)
                session = str(uuid.uuid5(SESSION_NAMESPACE, f"{seed}:{index // RUNS_PER_SESSION}"))
                pending.append(render(script, session))
                truth.write(json.dumps(script.truth(), sort_keys=True) + "\n")
                summary.by_skill[script.behaviour.skill_id] += 1
                summary.by_outcome[script.outcome] += 1
                if len(pending) >= runs_per_batch or index == runs - 1:
                    summary.events += store.write_batch(_merged(pending)).events_inserted
                    pending = []
    finally:
        store.close()
    return summary


def read_truth(path: str | Path) -> list[dict[str, Any]]:
    """The ground-truth records of a generated workload, in run order."""
    with Path(path).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
