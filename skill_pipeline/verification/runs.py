"""Conformance of captured runs to the library's skills: one run on demand, or every new run incrementally.

A run is compared with the latest version of every active skill and reported against the one it fits best.
Runs that take the same steps share one alignment (``Assessor`` caches by step labels), so a warehouse of
thousands of runs costs a few hundred alignments.
"""

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from capture.store.capture_store import EVENTS, RUNS
from skill_library import open_library
from skill_library.errors import LibraryNotFoundError
from skill_pipeline.lib.step_lists import dropped_types
from skill_pipeline.lib.warehouse import column_definitions, insert_rows, sql_list
from skill_pipeline.mining.conformance import Conformance, RunStep, SkillModel, conform, for_run, run_steps
from skill_pipeline.mining.tokens import order_events
from skill_pipeline.mining.vocabulary import SUCCESS_STATUSES

DEFAULT_MIN_FITNESS = 0.8
TOP_ALTERNATIVES = 3
RUN_BATCH = 5_000  # runs whose events are held in memory at once
# Columns of the warehouse table ``run_conformance`` (one row per run, replaced when the run changes).
CONFORMANCE_COLUMNS: dict[str, str] = {
    "run_id": "VARCHAR", "status": "VARCHAR", "successful": "BOOLEAN", "skill": "VARCHAR", "version": "VARCHAR",
    "fitness": "DOUBLE", "cost": "INTEGER", "n_steps": "INTEGER", "deviations": "VARCHAR", "last_seq": "BIGINT",
    "assessed_at": "TIMESTAMPTZ"}
# One row per materialisation: the seq range assessed and the share of successful runs fitting no skill.
CONFORMANCE_LOG_COLUMNS: dict[str, str] = {
    "assessed_at": "TIMESTAMPTZ", "hwm": "BIGINT", "runs": "INTEGER", "successful": "INTEGER",
    "successful_unfit": "INTEGER", "unfit_share": "DOUBLE", "min_fitness": "DOUBLE", "skills": "INTEGER"}
_EVENT_FIELDS = ("id", "seq", "run_id", "execution_order", "event_type", "event_subtype", "agent_name", "status")
_META_FIELDS = ("tool_name", "exit_code", "file_type")


def library_models(library: str | Path, *, include_candidates: bool = False) -> list[SkillModel]:
    """The latest version of each active skill (and candidates when asked) as models; [] without a release."""
    try:
        lib = open_library(library)
    except LibraryNotFoundError:
        return []
    wanted = {"active", "candidate"} if include_candidates else {"active"}
    return [SkillModel.from_skill(lib.get(row["name"])) for row in lib.skills() if row["status"] in wanted]


class Assessor:
    """Best-fitting skill of runs, with alignments cached per distinct step-label sequence."""

    def __init__(self, models: Sequence[SkillModel]) -> None:
        self.models = list(models)
        self._vocabulary = [set(m.labels) for m in self.models]
        self._ranked: dict[tuple[str, ...], list[Conformance]] = {}
        self._best: dict[tuple[str, ...], Conformance | None] = {}

    def ranked(self, steps: Sequence[RunStep]) -> list[Conformance]:
        """Every skill's conformance of the run, best first (fitness, then fewer deviations, then name), with
        the run's event ids."""
        labels = tuple(s.label for s in steps)
        if labels not in self._ranked:
            self._ranked[labels] = sorted((conform(m, steps) for m in self.models), key=_rank)
        return [for_run(c, steps) for c in self._ranked[labels]]

    def best(self, steps: Sequence[RunStep]) -> Conformance | None:
        """The best-fitting skill's conformance with this run's event ids, or None without skills. Skills are
        aligned in order of an upper bound of their fitness (each run step no skill step has costs at least 1),
        and the search stops at a bound below the best fitness found."""
        labels = tuple(s.label for s in steps)
        if labels not in self._best:
            bounds = sorted(((1.0 - sum(x not in vocabulary for x in labels) / (len(labels) + m.min_cost or 1), i)
                             for i, (m, vocabulary) in enumerate(zip(self.models, self._vocabulary, strict=True))),
                            key=lambda b: (-b[0], b[1]))
            found: list[Conformance] = []
            for bound, i in bounds:
                if found and bound < found[0].fitness:
                    break
                found = sorted([*found, conform(self.models[i], steps)], key=_rank)[:1]
            self._best[labels] = found[0] if found else None
        best = self._best[labels]
        return for_run(best, steps) if best else None


def _rank(c: Conformance) -> tuple[float, int, str]:
    return -c.fitness, len(c.deviations), c.skill


class StepShapes:
    """``run_steps`` once per distinct run shape: runs that follow one skill record the same events but for their
    ids, so the steps (labels and positions of their events in execution order) of one run serve all of them.
    For events as the warehouse gives them (what tokenising reads is in the shape: type, subtype, agent, status,
    ``meta``)."""

    def __init__(self) -> None:
        self._shapes: dict[tuple[Any, ...], list[tuple[str, int]] | None] = {}

    def steps(self, events: Sequence[Mapping[str, Any]]) -> list[RunStep]:
        ordered = order_events(events)
        key = tuple((e.get("event_type"), e.get("event_subtype"), e.get("agent_name"), e.get("status"),
                     tuple(sorted((e.get("meta") or {}).items()))) for e in ordered)
        if key not in self._shapes:
            position = {e.get("id"): i for i, e in enumerate(ordered)}
            found = run_steps(ordered)
            usable = len(position) == len(ordered) and all(s.event_id in position for s in found)
            self._shapes[key] = [(s.label, position[s.event_id]) for s in found] if usable else None
        shape = self._shapes[key]
        if shape is None:  # ids missing or repeated: no positions to reuse
            return run_steps(ordered)
        return [RunStep(label, None if ordered[i].get("id") is None else str(ordered[i]["id"])) for label, i in shape]


def report(events: Sequence[Mapping[str, Any]], assessor: Assessor, *, run_id: str, status: str | None,
           min_fitness: float = DEFAULT_MIN_FITNESS) -> dict[str, Any]:
    """One run's conformance: best skill, fitness, deviations, whether it fits (``fitness >= min_fitness``) and
    the runners-up."""
    steps = run_steps(events)
    ranked = assessor.ranked(steps) if steps else []  # a run without steps fits no skill, and none best
    best = ranked[0] if ranked else None
    return {"run_id": run_id, "status": status, "steps": len(steps), "min_fitness": min_fitness,
            "skills_compared": len(assessor.models),
            "fits": best is not None and best.fitness >= min_fitness,
            "best": best.as_dict() if best else None,
            "alternatives": [{"skill": c.skill, "version": c.version, "fitness": round(c.fitness, 6)}
                             for c in ranked[1:1 + TOP_ALTERNATIVES]]}


def store_report(engine: Engine, run_id: str, library: str | Path, *,
                 min_fitness: float = DEFAULT_MIN_FITNESS) -> dict[str, Any]:
    """:func:`report` for a run of the capture store (what ``skillmine conform`` and the trace API answer);
    ``KeyError`` when the run is unknown."""
    with engine.connect() as conn:
        run = conn.execute(select(RUNS.c.id, RUNS.c.status).where(RUNS.c.id == run_id)).first()
        if run is None:
            raise KeyError(run_id)
        rows = conn.execute(select(EVENTS).where(EVENTS.c.run_id == run_id).order_by(EVENTS.c.seq)).mappings()
        events = [dict(r) for r in rows]
    return report(events, Assessor(library_models(library)), run_id=run_id, status=run.status,
                  min_fitness=min_fitness)


# --- the warehouse table of the run_conformance asset -----------------------------------------------------

def _create(con: Any) -> None:
    for table, columns in (("run_conformance", CONFORMANCE_COLUMNS), ("conformance_log", CONFORMANCE_LOG_COLUMNS)):
        con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({column_definitions(columns)})")


def _warehouse_events(con: Any, first: int, last: int) -> dict[str, list[dict[str, Any]]]:
    """The extracted events of the runs numbered ``first < n <= last`` in ``conformance_runs`` that can become a
    step, as ``mining.tokens`` reads them (tool, exit code and file type under ``meta``); messages and LLM calls
    never do, and are half of all events."""
    fields = ", ".join(f"e.{f}" for f in _EVENT_FIELDS + _META_FIELDS)
    cursor = con.execute(f"SELECT {fields} FROM events e JOIN conformance_runs w ON e.run_id = w.id "
                         f"WHERE w.n > ? AND w.n <= ? AND (e.event_type IS NULL OR e.event_type NOT IN "
                         f"{sql_list(dropped_types('standard'))}) ORDER BY e.run_id, e.seq", [first, last])
    events: dict[str, list[dict[str, Any]]] = defaultdict(list)
    width = len(_EVENT_FIELDS)
    while rows := cursor.fetchmany(50_000):
        for row in rows:
            event = dict(zip(_EVENT_FIELDS, row[:width], strict=True))
            event["meta"] = {k: v for k, v in zip(_META_FIELDS, row[width:], strict=True) if v is not None}
            events[event["run_id"]].append(event)
    return events


def assess_new_runs(con: Any, models: Sequence[SkillModel], scratch: Path, *,
                    min_fitness: float = DEFAULT_MIN_FITNESS) -> dict[str, Any]:
    """Assess every run with events extracted since the last call (by ``seq``), replace their rows in
    ``run_conformance`` (bulk-loaded through a CSV file in ``scratch``) and log the batch; returns the batch's
    summary (counts, unfit share, fitness values, top deviations per skill)."""
    _create(con)
    hwm = con.execute("SELECT coalesce(max(hwm), 0) FROM conformance_log").fetchone()[0]
    top = con.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
    con.execute("CREATE OR REPLACE TEMP TABLE conformance_runs AS SELECT run_id AS id, row_number() OVER "
                "(ORDER BY run_id) AS n FROM (SELECT DISTINCT run_id FROM events WHERE seq > ? AND seq <= ?)",
                [hwm, top])
    count = con.execute("SELECT count(*) FROM conformance_runs").fetchone()[0]
    statuses = dict(con.execute("SELECT r.id, r.status FROM runs r JOIN conformance_runs w ON r.id = w.id")
                    .fetchall())
    assessor, shapes = Assessor(models), StepShapes()
    now = datetime.now(UTC)
    rows, fitness, deviations = [], [], defaultdict(Counter)
    batches = (_warehouse_events(con, first, first + RUN_BATCH) for first in range(0, count, RUN_BATCH))
    for run_id, events in ((r, e) for batch in batches for r, e in batch.items()):
        steps = shapes.steps(events)
        best = assessor.best(steps) if steps else None
        status = statuses.get(run_id)
        successful = str(status or "").lower() in SUCCESS_STATUSES
        value = best.fitness if best else 0.0
        fitness.append(value)
        if best:
            for d in best.deviations:
                deviations[best.skill][(d.kind, d.label)] += 1
        rows.append((run_id, status, successful, best.skill if best else None, best.version if best else None,
                     value, best.cost if best else None, best.steps if best else None,
                     json.dumps([d.as_dict() for d in best.deviations]) if best else "[]",
                     max(int(e["seq"]) for e in events), now.isoformat()))
    successful = [r for r in rows if r[2]]
    unfit = sum(r[5] < min_fitness for r in successful)
    share = unfit / len(successful) if successful else 0.0
    con.execute("BEGIN")
    con.execute("CREATE OR REPLACE TEMP TABLE conformance_batch AS SELECT * FROM run_conformance LIMIT 0")
    insert_rows(con, "conformance_batch", CONFORMANCE_COLUMNS, rows, scratch)
    con.execute("DELETE FROM run_conformance WHERE run_id IN (SELECT run_id FROM conformance_batch)")
    con.execute("INSERT INTO run_conformance SELECT * FROM conformance_batch")
    con.execute("INSERT INTO conformance_log VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [now, top, len(rows), len(successful), unfit, share, min_fitness, len(models)])
    con.execute("COMMIT")
    return {"runs": len(rows), "successful": len(successful), "successful_unfit": unfit, "unfit_share": share,
            "hwm": top, "previous_hwm": hwm, "skills": len(models), "fitness": fitness,
            "top_deviations": {skill: counts.most_common(5) for skill, counts in sorted(deviations.items())}}


def drift(con: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The last two logged batches that had successful runs (latest first), as dicts; None where missing."""
    _create(con)
    cursor = con.execute("SELECT * FROM conformance_log WHERE successful > 0 ORDER BY assessed_at DESC LIMIT 2")
    names = [d[0] for d in cursor.description]
    found: list[dict[str, Any] | None] = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
    found += [None] * (2 - len(found))
    return found[0], found[1]


def histogram(values: Iterable[float], bins: int = 10) -> list[int]:
    """Counts of fitness values in ``bins`` equal bins over [0, 1] (1.0 in the last)."""
    counts = [0] * bins
    for v in values:
        counts[min(int(v * bins), bins - 1)] += 1
    return counts
