"""Ground truth of a simulation: what each run really was, kept APART from the capture store.

One JSON line per run (task family, template id and text, the template's slot values (``params``) and the
other drawn values (``hidden_params``, e.g. a data seed), outcome, attempts, mode, engine,
seed). Benchmarks and tests read it to score mining; the miner must never read it, and nothing here is ever
written to a capture-store table.
"""

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from capture.core import config
from workloads.script import RunScript


@dataclass(frozen=True)
class GroundTruth:
    """The truth about one simulated run."""

    run_id: str
    index: int
    seed: int
    engine: str
    mode: str
    family: str
    template_id: str
    template: str
    task: str
    params: dict
    hidden_params: dict
    outcome: str
    n_attempts: int
    status: str
    plan: list[str]

    @classmethod
    def from_script(cls, script: RunScript, engine: str) -> "GroundTruth":
        """The record of a run script played by ``engine``."""
        slots = script.family.slots
        return cls(script.run_id, script.index, script.seed, engine, script.mode, script.family.name,
                   script.family.template_id, script.family.template, script.task,
                   {k: v for k, v in script.params.items() if k in slots},
                   {k: v for k, v in script.params.items() if k not in slots}, script.outcome, script.n_attempts, script.status, [n.name for n in script.nodes])


def default_path(seed: int) -> Path:
    """``$SKILLMINE_HOME/ground_truth/simulation-<seed>.jsonl``."""
    return config.home() / "ground_truth" / f"simulation-{seed}.jsonl"


class GroundTruthWriter:
    """Writes records to ``<path>.partial``; a complete simulation replaces ``path`` with it (an interrupted one
    leaves the partial file and any previous ``path`` untouched)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self._handle: IO[str] = self.partial.open("w", encoding="utf-8")

    def write(self, record: GroundTruth) -> None:
        """Write one record."""
        self._handle.write(json.dumps(asdict(record), sort_keys=True) + "\n")

    def close(self, *, complete: bool = True) -> None:
        """Close the file; when ``complete``, move it into place."""
        self._handle.close()
        if complete:
            os.replace(self.partial, self.path)


def read_ground_truth(path: str | Path) -> list[GroundTruth]:
    """All records of a ground-truth file, in run order; a bad line is reported with its line number."""
    return list(iter_ground_truth(path))


def iter_ground_truth(path: str | Path) -> Iterator[GroundTruth]:
    """Stream the records of a ground-truth file."""
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"ground-truth file {str(source)!r} does not exist")
    with source.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield GroundTruth(**json.loads(line))
            except (json.JSONDecodeError, TypeError) as exc:
                raise ValueError(f"ground-truth file {str(source)!r}, line {number}: {exc}") from None
