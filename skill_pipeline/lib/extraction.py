"""Incremental, idempotent extraction of the capture store into the DuckDB warehouse.

The high-water mark (HWM) is ``MAX(seq)`` of the events already in DuckDB, so it is derived from the data and
cannot drift from it. Each extraction reads ``HWM - overlap < seq <= upper``, where ``upper`` is the source's
``MAX(seq)`` when the extraction starts. A sequence value is taken at insert time but becomes visible only at
commit, so with concurrent writers (PostgreSQL) a slow transaction can commit a seq below rows that were already
extracted; the overlap window picks it up, and the anti-join on ``seq`` makes the re-read rows free. ``upper``
keeps one consistent range however the read is split (SQLite commits are serial, so every row up to it is
committed). Runs, nodes and files are re-synced (upserted) for every run touched by the new events and for runs
already in the warehouse whose source row changed since the previous pass: a run's status changes after its events,
and the store stamps every change of a run row with its ``MAX(seq)`` at that time (``workflow_runs.updated_seq``,
set by a trigger), so a change the previous pass could not see has a stamp above its read range's start. Runs that
stay open without changing (an abandoned human-in-the-loop run) are not re-read.

Rows are never handled one by one in Python (``source_reader``): they are staged into DuckDB temp tables, and
DuckDB derives the mined columns (tool name, exit code, file type, truncation and decoding flags) from the raw
text in one vectorised statement. Only the columns mining needs are kept, and payloads only for the event types
mining reads (``PAYLOAD_TYPES``), cut to their first ``payload_chars`` characters; payloads that are not valid
UTF-8 or not valid JSON are kept as replaced text and counted.
"""

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from capture.store.migrate import require_current_schema
from capture.store.models import CostRecord, DagNode, ExecutionEvent, File, WorkflowRun
from skill_pipeline.lib import warehouse
from skill_pipeline.lib.source_reader import source_reader
from skill_pipeline.lib.warehouse import sql_list, sql_literal

EVENTS = ExecutionEvent.__table__
RUNS = WorkflowRun.__table__
NODES = DagNode.__table__
FILES = File.__table__
COSTS = CostRecord.__table__

MAX_META_CHARS = 65_536  # meta holds the small fields mining reads (tool name, exit code, file type)
IN_CHUNK = 10_000  # run ids inlined (as literals) per statement when re-reading changed runs
PLAIN_COLUMNS = ("seq", "id", "run_id", "node_id", "session_id", "parent_event_id", "event_type", "event_subtype",
                 "agent_name", "agent_role", "timestamp", "duration_ms", "execution_order", "depth", "status")
# The events as read from the source: plain columns, then the payload text (cut in SQL) for DuckDB to parse.
RAW_EVENT_COLUMNS: dict[str, str] = {
    **{name: warehouse.EVENT_COLUMNS[name] for name in PLAIN_COLUMNS},
    "error_message": "VARCHAR", "inputs": "VARCHAR", "outputs": "VARCHAR", "meta": "VARCHAR",
}
RUN_SOURCE_COLUMNS = tuple(c for c in warehouse.RUN_COLUMNS if c not in ("cost_usd", "total_tokens"))
TOOL_NAME_IN_TEXT = r'"(?:tool_name|name)"\s*:\s*"([^"]{1,200})"'
# Event types whose inputs and outputs mining reads (tool arguments, execution results, failures, files,
# approvals); the other payloads (messages, LLM and agent call texts) stay in the store, where traces read them.
PAYLOAD_TYPES = ("tool_call", "code_exec", "error", "file_gen", "approval_requested")
# Reading more than this share of the events table scans it with DuckDB's threads instead of SQLite's index.
SCAN_SHARE = 0.5


@dataclass
class ExtractionResult:
    """What one extraction read and wrote."""

    previous_hwm: int
    hwm: int
    overlap: int
    events_read: int = 0
    events_inserted: int = 0
    runs_synced: int = 0
    runs_inserted: int = 0
    nodes_synced: int = 0
    files_synced: int = 0
    truncated_payloads: int = 0
    undecodable_payloads: int = 0
    touched_runs: list[str] = field(default_factory=list)
    warehouse_counts: dict[str, int] = field(default_factory=dict)

    def metadata(self) -> dict[str, int]:
        return {"previous_hwm": self.previous_hwm, "hwm": self.hwm, "overlap": self.overlap,
                "events_read": self.events_read, "rows_inserted": self.events_inserted,
                "runs_synced": self.runs_synced, "runs_inserted": self.runs_inserted,
                "nodes_synced": self.nodes_synced, "files_synced": self.files_synced,
                "truncated_payloads": self.truncated_payloads,
                "undecodable_payloads": self.undecodable_payloads, "touched_runs": len(self.touched_runs)}


def warehouse_hwm(con: Any) -> int:
    """The HWM: the highest event seq already in the warehouse (0 when empty)."""
    return int(con.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])


def _event_sql(start_after: int, upper: int, payload_chars: int) -> str:
    """Events in ``(start_after, upper]`` (ints inlined: COPY and ``sqlite_query`` take no parameters), payloads
    cut in SQL so a huge payload never leaves the database whole (one character more than kept, to tell that it
    was cut). The same text runs in SQLite, PostgreSQL and DuckDB."""
    cut = int(payload_chars) + 1
    plain = ", ".join(f'"{name}"' for name in PLAIN_COLUMNS)
    return (f"SELECT {plain}, substr(error_message, 1, {cut}) AS error_message, "
            f"substr(CAST(inputs AS TEXT), 1, {cut}) AS inputs, substr(CAST(outputs AS TEXT), 1, {cut}) AS outputs, "
            f"substr(CAST(meta AS TEXT), 1, {MAX_META_CHARS}) AS meta "
            f"FROM {EVENTS.name} WHERE seq > {int(start_after)} AND seq <= {int(upper)}")


def _run_filter(start_after: int, upper: int, run_ids: Sequence[str] | None) -> str:
    """The right-hand side of a run-id predicate for the runs to re-sync: those named, else those with an event
    in the range (a semi-join; every run when the range starts at the beginning, where the semi-join would only
    cost a full scan)."""
    if run_ids is not None:
        return f"IN {sql_list(run_ids)}"
    if start_after == 0:
        return "IS NOT NULL"
    return f"IN (SELECT run_id FROM {EVENTS.name} WHERE seq > {int(start_after)} AND seq <= {int(upper)})"


def _run_side_sql(runs: str) -> dict[str, str]:
    """Source SQL per warehouse table (runs with their summed cost and tokens, nodes, files) for the runs whose
    id satisfies ``runs`` (a :func:`_run_filter`)."""
    run_cols = ", ".join(f"r.{c}" for c in RUN_SOURCE_COLUMNS)
    return {
        "runs": (f"SELECT {run_cols}, coalesce(c.cost, 0) AS cost_usd, coalesce(c.tokens, 0) AS total_tokens "
                 f"FROM {RUNS.name} r LEFT JOIN (SELECT run_id, sum(cost_usd) AS cost, sum(total_tokens) AS tokens "
                 f"FROM {COSTS.name} WHERE run_id {runs} GROUP BY run_id) c ON c.run_id = r.id WHERE r.id {runs}"),
        "nodes": f"SELECT {', '.join(warehouse.NODE_COLUMNS)} FROM {NODES.name} WHERE run_id {runs}",
        "files": f"SELECT {', '.join(warehouse.FILE_COLUMNS)} FROM {FILES.name} WHERE run_id {runs}",
    }


def _scalar(doc: str, key: str) -> str:
    """A DuckDB expression: JSON text ``doc``'s top-level ``key`` as text (NULL for objects, arrays, JSON null)."""
    path = f"'$.{key}'"
    return (f"CASE WHEN json_type({doc}, {path}) NOT IN ('OBJECT', 'ARRAY') "
            f"THEN left(json_extract_string({doc}, {path}), 200) END")


def _was_cut(payload_chars: int) -> str:
    """A DuckDB predicate: the staged row's inputs or outputs were cut (here, or by capture's payload limit)."""
    n = int(payload_chars)
    return (f"(length(inputs) > {n} OR length(outputs) > {n} "
            "OR contains(inputs, '__truncated__') OR contains(outputs, '__truncated__'))")


def _derived_events_sql(staged: str, payload_chars: int) -> str:
    """The warehouse's event columns (``warehouse.EVENT_COLUMNS``) derived from raw staged text. Payloads are kept
    for ``PAYLOAD_TYPES``; JSON is parsed only where mining reads it: the tool of a tool call (meta, else its inputs, else a name found in cut
    inputs), the exit code of a code execution (meta, else its outputs), the file type of a file event."""
    n = int(payload_chars)
    plain = ", ".join(f'"{name}"' for name in PLAIN_COLUMNS)
    kept = sql_list(PAYLOAD_TYPES)
    tool_from_inputs = (f"coalesce(nullif({_scalar('i', 'tool_name')}, ''), nullif({_scalar('i', 'name')}, ''), "
                        f"CASE WHEN i IS NULL THEN nullif(regexp_extract(inputs, {sql_literal(TOOL_NAME_IN_TEXT)}, 1), '') "
                        "END)")
    return f"""
        WITH parsed AS (
            SELECT *, CASE WHEN event_type IN ('tool_call', 'code_exec', 'file_gen') AND json_valid(meta)
                           THEN meta END AS m,
                      CASE WHEN event_type = 'tool_call' AND json_valid(inputs) THEN inputs END AS i,
                      CASE WHEN event_type = 'code_exec' AND json_valid(outputs) THEN outputs END AS o
            FROM {staged})
        SELECT {plain},
               CASE WHEN event_type = 'tool_call' THEN coalesce({_scalar('m', 'tool_name')}, {tool_from_inputs}) END,
               CASE WHEN event_type = 'code_exec'
                    THEN coalesce({_scalar('m', 'exit_code')}, {_scalar('o', 'exit_code')}) END,
               CASE WHEN event_type = 'file_gen' THEN {_scalar('m', 'file_type')} END,
               nullif(left(error_message, {n}), ''),
               CASE WHEN event_type IN {kept} THEN nullif(left(inputs, {n}), '') END,
               CASE WHEN event_type IN {kept} THEN nullif(left(outputs, {n}), '') END,
               coalesce({_was_cut(n)}, false)
        FROM parsed"""


def _insert_events(con: Any, payload_chars: int, result: ExtractionResult) -> None:
    """Count what ``staged_events`` holds (read, cut, undecodable), then insert the events the warehouse does not
    hold yet (anti-join on ``seq``: events are immutable once stored)."""
    replaced = " OR ".join(f"contains({c}, '\ufffd')" for c in ("meta", "inputs", "outputs"))
    read, truncated, undecodable = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE {_was_cut(payload_chars)}), "
        f"count(*) FILTER (WHERE (meta <> '' AND NOT json_valid(meta)) OR {replaced}) FROM staged_events").fetchone()
    result.events_read, result.truncated_payloads = int(read), int(truncated)
    result.undecodable_payloads = int(undecodable)
    fresh = "(SELECT s.* FROM staged_events s ANTI JOIN events e ON s.seq = e.seq)"
    result.events_inserted = int(con.execute(f"INSERT INTO events {_derived_events_sql(fresh, payload_chars)}")
                                 .fetchone()[0])


def _chunks(values: Sequence[str], size: int = IN_CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _changed_runs(reader: Any, start_after: int, touched: set[str]) -> list[str]:
    """Runs already in the warehouse, not touched by the staged events, whose source row changed at or after
    ``start_after`` (its change stamp, ``workflow_runs.updated_seq``, answered by the stamp's index)."""
    reader.stage("staged_changed", f"SELECT id FROM {RUNS.name} WHERE updated_seq >= {int(start_after)}",
                 {"id": "VARCHAR"})
    found = reader.con.execute("SELECT c.id FROM staged_changed c SEMI JOIN runs r ON r.id = c.id").fetchall()
    return sorted({r[0] for r in found} - touched)


def _stage_run_side(reader: Any, start_after: int, upper: int, reopened: Sequence[str]) -> None:
    """Stage ``staged_runs``/``staged_nodes``/``staged_files``: the runs touched by the staged events, plus the
    ``reopened`` (changed) ones; rows of runs without a staged event are dropped when every run was read."""
    filters = [_run_filter(start_after, upper, None)] + [_run_filter(0, 0, c) for c in _chunks(reopened)]
    for table, columns in (("runs", warehouse.RUN_COLUMNS), ("nodes", warehouse.NODE_COLUMNS),
                           ("files", warehouse.FILE_COLUMNS)):
        staged = f"staged_{table}"
        for i, where in enumerate(filters):
            reader.stage(staged if i == 0 else "staged_more", _run_side_sql(where)[table], columns)
            if i:
                reader.con.execute(f"INSERT INTO {staged} SELECT * FROM staged_more")
        if start_after == 0:
            key = "id" if table == "runs" else "run_id"
            reader.con.execute(f"DELETE FROM {staged} WHERE {key} NOT IN "
                               "(SELECT run_id FROM staged_events WHERE run_id IS NOT NULL)")


def extract(source: Engine, warehouse_path: str | Path, *, overlap: int = 1000, payload_chars: int = 2048,
            memory_limit: str = warehouse.DEFAULT_MEMORY_LIMIT) -> ExtractionResult:
    """Bring the warehouse up to date with the capture store (see the module docstring)."""
    if overlap < 0:
        raise ValueError(f"overlap must be >= 0, got {overlap}")
    require_current_schema(source)  # the change stamp of runs came with a migration
    path = Path(warehouse_path)
    upper = source_max_seq(source)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warehouse.connect(path, memory_limit=memory_limit) as con, \
            warehouse.scratch_directory(path) as scratch, source_reader(con, source, scratch) as reader:
        previous = warehouse_hwm(con)
        start_after = max(previous - overlap, 0)
        result = ExtractionResult(previous_hwm=previous, hwm=previous, overlap=overlap)
        scan = (upper - start_after) > SCAN_SHARE * upper
        reader.stage("staged_events", _event_sql(start_after, upper, payload_chars), RAW_EVENT_COLUMNS,
                     scan_table=EVENTS.name if scan else None)
        touched = {r[0] for r in con.execute("SELECT DISTINCT run_id FROM staged_events").fetchall()}
        reopened = _changed_runs(reader, start_after, touched) if start_after else []
        _stage_run_side(reader, start_after, upper, reopened)
        result.touched_runs = sorted(r for r in touched | set(reopened) if r is not None)
        con.execute("BEGIN")
        _insert_events(con, payload_chars, result)
        result.runs_inserted = warehouse.upsert_staged(con, "staged_runs", "runs")
        warehouse.upsert_staged(con, "staged_nodes", "nodes")
        warehouse.upsert_staged(con, "staged_files", "files")
        con.execute("INSERT INTO extractions SELECT now(), ?, ?, ?, (SELECT coalesce(max(seq), 0) FROM events), ?, ?",
                    [previous, start_after, upper, result.events_read, result.events_inserted])
        con.execute("COMMIT")
        result.runs_synced, result.nodes_synced, result.files_synced = (
            int(con.execute(f"SELECT count(*) FROM staged_{t}").fetchone()[0]) for t in ("runs", "nodes", "files"))
        result.hwm = int(con.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])
        result.warehouse_counts = table_counts(con)
    return result


def table_counts(con: Any, tables: Iterable[str] = tuple(warehouse.EXTRACT_TABLES)) -> dict[str, int]:
    """Row count per warehouse table."""
    return {t: int(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in tables}


def last_range_start(con: Any) -> int:
    """Where the latest extraction's read range started (0 before any): events above it are its hand-off."""
    row = con.execute("SELECT start_after FROM extractions ORDER BY extracted_at DESC LIMIT 1").fetchone()
    return int(row[0]) if row else 0


def orphan_events(con: Any, start_after: int) -> tuple[int, list[str]]:
    """Events above ``start_after`` whose parent is not in the warehouse: their count and the first five ids.
    Parents are looked up in the hand-off first (a new run's events arrive together); only the rest are looked
    up in the whole table, whose id column is scanned only when such a rest exists."""
    con.execute("CREATE OR REPLACE TEMP TABLE unmatched AS "
                "WITH fresh AS (SELECT seq, id, parent_event_id FROM events WHERE seq > ?) "
                "SELECT f.seq, f.id, f.parent_event_id FROM fresh f ANTI JOIN fresh g ON f.parent_event_id = g.id "
                "WHERE f.parent_event_id IS NOT NULL",
                [start_after])
    if not con.execute("SELECT count(*) FROM unmatched").fetchone()[0]:
        return 0, []
    count, sample = con.execute(
        "WITH found AS (SELECT DISTINCT p.id FROM events p SEMI JOIN unmatched u ON p.id = u.parent_event_id) "
        "SELECT count(*), list(u.id ORDER BY u.seq)[1:5] FROM unmatched u ANTI JOIN found ON u.parent_event_id = found.id"
    ).fetchone()
    return int(count), list(sample or [])


def source_count(source: Engine, hwm: int, after: int = 0) -> int:
    """How many events the capture store holds with ``after < seq <= hwm`` (the reconciliation figure). From the
    start, as all events minus those above ``hwm``: the databases count all rows from their smallest index, while
    a ``seq`` range walks the primary key, i.e. the table with its payloads (cheap only for a short range)."""
    with source.connect() as conn:
        if after <= 0:
            total = conn.execute(select(func.count()).select_from(EVENTS)).scalar_one()
            above = conn.execute(select(func.count()).select_from(EVENTS).where(EVENTS.c.seq > hwm)).scalar_one()
            return int(total) - int(above)
        return int(conn.execute(select(func.count()).select_from(EVENTS)
                                .where(EVENTS.c.seq > after, EVENTS.c.seq <= hwm)).scalar_one())


def source_max_seq(source: Engine) -> int:
    """The capture store's highest event seq (0 when empty): the sensor's only query."""
    with source.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.max(EVENTS.c.seq), 0))).scalar_one())
