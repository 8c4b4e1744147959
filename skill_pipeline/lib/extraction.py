"""Incremental, idempotent extraction of the capture store into the DuckDB warehouse.

The high-water mark (HWM) is ``MAX(seq)`` of the events already in DuckDB, so it is derived from the data and
cannot drift from it. Each extraction re-reads ``seq > HWM - overlap``: a sequence value is taken at insert time
but becomes visible only at commit, so with concurrent writers (PostgreSQL) a slow transaction can commit a seq
below rows that were already extracted; the overlap window picks it up, and ``ON CONFLICT DO NOTHING`` makes the
re-read rows free. Runs, nodes and files are re-synced (upserted) for every run touched by the new events and for
runs still open in the warehouse, because a run's status changes after its events.

The source is read first (streamed in batches into temporary CSV files, so memory stays flat); DuckDB is opened
only for the short write. Only the columns mining needs are kept, with payloads cut to their first
``payload_chars`` characters; payloads that are not valid UTF-8 or not valid JSON are kept as replaced text.
"""

import json
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Text, cast, func, select

from capture.models import CostRecord, DagNode, ExecutionEvent, File, WorkflowRun
from skill_pipeline.lib import warehouse

EVENTS = ExecutionEvent.__table__
RUNS = WorkflowRun.__table__
NODES = DagNode.__table__
FILES = File.__table__
COSTS = CostRecord.__table__

OPEN_RUN_STATUSES = ("executing", "pending", "running", "paused", "waiting_approval", "draft", "planning")
TOOL_NAME_IN_TEXT = re.compile(r'"(?:tool_name|name)"\s*:\s*"([^"]{1,200})"')
MAX_META_CHARS = 65_536  # meta holds the small fields mining reads (tool name, exit code, file type)
IN_CHUNK = 900  # bound parameters per IN (...) list (SQLite allows 999 by default on old builds)


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


def warehouse_hwm(path: str | Path) -> int:
    """The HWM: the highest event seq already in the warehouse (0 when empty or absent)."""
    if not Path(path).exists():
        return 0
    with warehouse.connect(path) as con:
        return int(con.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])


def _text(value: Any) -> str | None:
    """A payload column as text; bytes that are not UTF-8 (dirty SQLite rows) are replaced, never raised."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def _meta_fields(raw: str | None) -> tuple[dict[str, Any], bool]:
    """(meta dict, parsed ok) from the raw JSON text of ``meta``."""
    if not raw:
        return {}, True
    try:
        value = json.loads(raw)
    except ValueError:
        return {}, False
    return (value, True) if isinstance(value, dict) else ({}, True)


def _scalar(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)[:200]


def _timestamp(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


class _Counts:
    def __init__(self) -> None:
        self.truncated = 0
        self.undecodable = 0


def _event_row(row: Any, payload_chars: int, counts: _Counts) -> list[Any]:
    meta_text, inputs, outputs = _text(row.meta), _text(row.inputs), _text(row.outputs)
    meta, ok = _meta_fields(meta_text)
    if not ok or any("\ufffd" in (t or "") for t in (meta_text, inputs, outputs)):
        counts.undecodable += 1
    tool = meta.get("tool_name")
    if tool is None and row.event_type == "tool_call":
        in_obj, whole = _meta_fields(inputs)
        tool = in_obj.get("tool_name") or in_obj.get("name")
        if tool is None and not whole:  # a cut payload: look for the name in the text that is left
            found = TOOL_NAME_IN_TEXT.search(inputs or "")
            tool = found.group(1) if found else None
    exit_code = meta.get("exit_code")
    if exit_code is None and row.event_type == "code_exec":
        exit_code = _meta_fields(outputs)[0].get("exit_code")
    truncated = any(len(t or "") > payload_chars or "__truncated__" in (t or "") for t in (inputs, outputs))
    counts.truncated += truncated
    return [row.seq, row.id, row.run_id, row.node_id, row.session_id, row.parent_event_id, row.event_type,
            row.event_subtype, row.agent_name, row.agent_role, _timestamp(row.timestamp), row.duration_ms,
            row.execution_order, row.depth, row.status, _scalar(tool), _scalar(exit_code),
            _scalar(meta.get("file_type")), (row.error_message or "")[:payload_chars] or None,
            (inputs or "")[:payload_chars] or None, (outputs or "")[:payload_chars] or None, truncated]


def _event_query(start_after: int, payload_chars: int):
    """Events above ``start_after``; payload text is cut in SQL, so a huge payload never reaches Python whole
    (one character more than kept, to tell that it was cut)."""
    cols = [EVENTS.c[name] for name in ("seq", "id", "run_id", "node_id", "session_id", "parent_event_id",
                                          "event_type", "event_subtype", "agent_name", "agent_role",
                                          "timestamp", "duration_ms", "execution_order", "depth", "status")]
    cut = payload_chars + 1
    payloads = [func.substr(EVENTS.c.error_message, 1, cut).label("error_message"),
                func.substr(cast(EVENTS.c.inputs, Text), 1, cut).label("inputs"),
                func.substr(cast(EVENTS.c.outputs, Text), 1, cut).label("outputs"),
                func.substr(cast(EVENTS.c.meta, Text), 1, MAX_META_CHARS).label("meta")]
    return select(*cols, *payloads).where(EVENTS.c.seq > start_after).order_by(EVENTS.c.seq)


def _chunks(values: Sequence[str], size: int = IN_CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _lenient_connection(engine: Engine):
    """A source connection that streams results and, on SQLite, decodes non-UTF-8 text instead of failing."""
    conn = engine.connect()
    if engine.dialect.name == "sqlite":
        conn.connection.driver_connection.text_factory = lambda b: b.decode("utf-8", "replace")
    return conn.execution_options(stream_results=True, yield_per=5000)


def _read_runs(conn: Any, run_ids: Sequence[str], spools: dict[str, warehouse.CsvSpool]) -> None:
    for chunk in _chunks(run_ids):
        costs = {r.run_id: (r.cost, r.tokens) for r in conn.execute(
            select(COSTS.c.run_id, func.sum(COSTS.c.cost_usd).label("cost"),
                   func.sum(COSTS.c.total_tokens).label("tokens"))
            .where(COSTS.c.run_id.in_(chunk)).group_by(COSTS.c.run_id))}
        run_cols = [RUNS.c[n] for n in ("id", "session_id", "mode", "agent", "model", "status", "started_at",
                                         "completed_at", "task_description")]
        spools["runs"].write(
            [*(_timestamp(v) for v in r), float(costs.get(r.id, (0, 0))[0] or 0),
             int(costs.get(r.id, (0, 0))[1] or 0)]
            for r in conn.execute(select(*run_cols).where(RUNS.c.id.in_(chunk))))
        spools["nodes"].write(conn.execute(select(*[NODES.c[n] for n in warehouse.NODE_COLUMNS])
                                           .where(NODES.c.run_id.in_(chunk))))
        spools["files"].write(conn.execute(select(*[FILES.c[n] for n in warehouse.FILE_COLUMNS])
                                           .where(FILES.c.run_id.in_(chunk))))


def _open_runs(path: Path) -> list[str]:
    if not path.exists():
        return []
    with warehouse.connect(path) as con:
        marks = ", ".join("?" for _ in OPEN_RUN_STATUSES)
        return [r[0] for r in con.execute(f"SELECT id FROM runs WHERE status IN ({marks})",
                                          list(OPEN_RUN_STATUSES)).fetchall()]


def extract(source: Engine, warehouse_path: str | Path, *, overlap: int = 1000, payload_chars: int = 2048,
            memory_limit: str = warehouse.DEFAULT_MEMORY_LIMIT) -> ExtractionResult:
    """Bring the warehouse up to date with the capture store (see the module docstring)."""
    if overlap < 0:
        raise ValueError(f"overlap must be >= 0, got {overlap}")
    path = Path(warehouse_path)
    previous = warehouse_hwm(path)
    reopen = _open_runs(path)
    result = ExtractionResult(previous_hwm=previous, hwm=previous, overlap=overlap)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".extract-", dir=path.parent) as tmp:
        spools = {t: warehouse.CsvSpool(Path(tmp), t) for t in warehouse.EXTRACT_TABLES}
        counts = _Counts()
        touched: set[str] = set(reopen)
        with _lenient_connection(source) as conn:
            for partition in conn.execute(_event_query(max(previous - overlap, 0), payload_chars)).partitions():
                rows = [_event_row(r, payload_chars, counts) for r in partition]
                spools["events"].write(rows)
                touched.update(r[2] for r in rows)
            result.touched_runs = sorted(touched)
            _read_runs(conn, result.touched_runs, spools)
        result.events_read = spools["events"].rows
        result.truncated_payloads, result.undecodable_payloads = counts.truncated, counts.undecodable
        with warehouse.connect(path, memory_limit=memory_limit) as con:
            con.execute("BEGIN")
            result.events_inserted = warehouse.load_spool(con, spools["events"], replace=False)
            result.runs_inserted = warehouse.load_spool(con, spools["runs"], replace=True)
            warehouse.load_spool(con, spools["nodes"], replace=True)
            warehouse.load_spool(con, spools["files"], replace=True)
            con.execute("COMMIT")
            result.hwm = int(con.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])
            result.warehouse_counts = table_counts(con)
        result.runs_synced, result.nodes_synced = spools["runs"].rows, spools["nodes"].rows
        result.files_synced = spools["files"].rows
    return result


def table_counts(con: Any, tables: Iterable[str] = tuple(warehouse.EXTRACT_TABLES)) -> dict[str, int]:
    """Row count per warehouse table."""
    return {t: int(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in tables}


def source_count_upto(source: Engine, hwm: int) -> int:
    """How many events the capture store holds with ``seq <= hwm`` (the reconciliation figure)."""
    with source.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(EVENTS).where(EVENTS.c.seq <= hwm)).scalar_one())


def source_max_seq(source: Engine) -> int:
    """The capture store's highest event seq (0 when empty): the sensor's only query."""
    with source.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.max(EVENTS.c.seq), 0))).scalar_one())
