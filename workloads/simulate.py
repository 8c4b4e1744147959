"""Run a simulation: N scripted runs played by an engine into a capture store, with ground truth kept apart.

``simulate(runs=..., seed=..., engine="fast"|"ag2", url=...)`` is the programmatic entry point; the
``skillmine simulate`` command is a thin wrapper around it.
"""

import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

from capture.core import config
from capture.core.garbage import fewer_collections
from capture.store.capture_store import Batch, CaptureStore
from capture.store.migrate import upgrade
from skillmine.console import RunProgress
from workloads import fast_engine
from workloads.families import FAMILIES, MODES, usable_modes
from workloads.ground_truth import GroundTruth, GroundTruthWriter, default_path
from workloads.script import RunScript, build_run_script
from workloads.summary import SimulationSummary, stored_runs

ENGINES = ("fast", "ag2")
FAST_BATCH_RUNS = 200


def _check_choice(kind: str, values: tuple[str, ...], allowed: tuple[str, ...]) -> None:
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise ValueError(f"unknown {kind} {unknown}; choose from {list(allowed)}")


def simulate(*, runs: int, seed: int = 0, engine: str = "fast", modes: tuple[str, ...] = MODES,
             families: tuple[str, ...] = tuple(FAMILIES), url: str | None = None,
             ground_truth: str | Path | None = None, work_dir: str | Path | None = None,
             quiet: bool = True, migrate: bool = True) -> SimulationSummary:
    """Simulate ``runs`` runs into the store at ``url`` (default: configured) and write their ground truth.

    ``work_dir`` is where the AG2 engine's runs execute code (default ``$SKILLMINE_HOME/simulation/<seed>``).
    """
    if runs < 0:
        raise ValueError(f"runs must be >= 0, got {runs}")
    _check_choice("engine", (engine,), ENGINES)
    _check_choice("mode(s)", tuple(modes), MODES)
    _check_choice("family(ies)", tuple(families), tuple(FAMILIES))
    usable_modes(tuple(modes), tuple(families))
    url = url or config.database_url()
    if migrate:
        upgrade(url)
    store = CaptureStore.open(url)
    summary = SimulationSummary(url=store.engine.url.render_as_string(hide_password=True), engine=engine,
                                ground_truth_path=Path(ground_truth) if ground_truth else default_path(seed))
    writer = GroundTruthWriter(summary.ground_truth_path)
    progress = RunProgress(runs, quiet=quiet)
    started = time.perf_counter()
    completed = False
    try:
        scripts = (build_run_script(seed, i, modes=tuple(modes), families=tuple(families)) for i in range(runs))
        if engine == "fast":
            with fewer_collections():  # millions of short-lived rows, none cyclic
                _run_fast(store, scripts, writer, summary, progress)
        else:
            from workloads.ag2_engine import Ag2Engine

            root = Path(work_dir) if work_dir else config.home() / "simulation" / str(seed)
            Ag2Engine(url, root).run_all(scripts, writer, summary, progress)
        completed = True
    finally:
        summary.seconds = time.perf_counter() - started
        progress.update(summary.runs, summary.events)
        progress.close()
        writer.close(complete=completed)
        store.close()
    return summary


def _run_fast(store: CaptureStore, scripts: Iterator[RunScript], writer: GroundTruthWriter,
              summary: SimulationSummary, progress: RunProgress) -> None:
    while chunk := list(islice(scripts, FAST_BATCH_RUNS)):
        stored = stored_runs(store, [s.run_id for s in chunk])
        batch = Batch()
        for script in chunk:
            if script.run_id not in stored:
                fast_engine.add_run(script, batch)
        summary.already_stored += len(stored)
        _flush(store, batch, [GroundTruth.from_script(s, "fast") for s in chunk], writer, summary, progress)


def _flush(store: CaptureStore, batch: Batch, pending: list[GroundTruth], writer: GroundTruthWriter,
           summary: SimulationSummary, progress: RunProgress) -> None:
    result = store.write_batch(batch)
    summary.events += result.events_inserted
    summary.files += result.files_written
    summary.messages += result.messages_written
    summary.costs += result.costs_written
    for truth in pending:
        writer.write(truth)
        summary.count(truth)
    progress.update(summary.runs, summary.events)
