"""Reading the warehouse back as the plain dicts the mining functions take.

Events are streamed run by run (ordered by run, then seq), so per-run work never holds every event in memory.
Payload columns hold at most the first ``payload_chars`` characters; a cut payload is no longer valid JSON and is
handed on as an empty mapping, which the miners treat as "no arguments".
"""

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import duckdb

from skill_pipeline.lib.warehouse import sql_list

SLIM_EVENT_COLUMNS = ("seq", "run_id", "node_id", "event_type", "event_subtype", "agent_name", "status",
                      "execution_order", "tool_name", "exit_code", "file_type", "duration_ms")
FETCH_ROWS = 50_000


def parse_payload(text: str | None) -> dict[str, Any]:
    """A payload column as a mapping ({} when absent, cut, or not an object)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _event(row: Sequence[Any], payload_row: Sequence[Any] | None = None) -> dict[str, Any]:
    event = dict(zip(SLIM_EVENT_COLUMNS, row, strict=True))
    meta = {k: event.pop(k) for k in ("tool_name", "exit_code", "file_type")}
    event["meta"] = {k: v for k, v in meta.items() if v is not None}
    if payload_row is not None:
        event["inputs"], event["outputs"] = parse_payload(payload_row[0]), parse_payload(payload_row[1])
        event["error_message"] = payload_row[2]
    return event


ID_SEPARATOR = "\x1f"


def stage_run_ids(con: duckdb.DuckDBPyConnection, run_ids: Iterable[str]) -> None:
    """Put run ids in the temp table ``wanted_runs`` (joined instead of a huge IN list). They travel as one
    separated string: DuckDB binds a list parameter at ~5 s per 30,000 strings, a string split in milliseconds."""
    ids = sorted(set(run_ids))
    if any(ID_SEPARATOR in i for i in ids):
        con.execute("CREATE OR REPLACE TEMP TABLE wanted_runs AS SELECT unnest(?::VARCHAR[]) AS id", [ids])
        return
    con.execute("CREATE OR REPLACE TEMP TABLE wanted_runs AS "
                "SELECT unnest(string_split(?, chr(31))) AS id WHERE ? > 0", [ID_SEPARATOR.join(ids), len(ids)])


def events_by_run(con: duckdb.DuckDBPyConnection, run_ids: Iterable[str] | None = None, *,
                  payloads: bool = False, skip_types: Sequence[str] = ()) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """``(run_id, events)`` for each run (all runs, or ``run_ids``), events in seq order, without events of
    ``skip_types``; with ``payloads``, tool-call inputs and error messages are included."""
    columns = ", ".join(f'e."{c}"' for c in SLIM_EVENT_COLUMNS)
    # Only tool calls carry arguments the miners read (slot inference); other payloads stay in the warehouse.
    extra = (", CASE WHEN e.event_type = 'tool_call' THEN e.inputs END, NULL, e.error_message"
             if payloads else "")
    where = f"WHERE e.event_type IS NULL OR e.event_type NOT IN {sql_list(skip_types)}" if skip_types else ""
    if run_ids is None:
        cursor = con.execute(f"SELECT {columns}{extra} FROM events e {where} ORDER BY e.run_id, e.seq")
    else:
        stage_run_ids(con, run_ids)
        cursor = con.execute(f"SELECT {columns}{extra} FROM events e JOIN wanted_runs w ON e.run_id = w.id {where} "
                             "ORDER BY e.run_id, e.seq")
    width = len(SLIM_EVENT_COLUMNS)
    current, bucket = None, []
    while rows := cursor.fetchmany(FETCH_ROWS):
        for row in rows:
            if row[1] != current:
                if bucket:
                    yield current, bucket
                current, bucket = row[1], []
            bucket.append(_event(row[:width], row[width:] if payloads else None))
    if bucket:
        yield current, bucket


def runs(con: duckdb.DuckDBPyConnection, run_ids: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    """Run dicts keyed by id (every run, or ``run_ids``), shaped for the mining statistics (``run_id``,
    ``meta.cost_usd``). Times are naive UTC: DuckDB hands over zone-aware timestamps ~7x slower (2 s per 100,000
    runs)."""
    columns = ("r.id, r.status, r.mode, timezone('UTC', r.started_at), timezone('UTC', r.completed_at), "
               "r.task_description, r.cost_usd")
    if run_ids is None:
        cursor = con.execute(f"SELECT {columns} FROM runs r ORDER BY r.id")
    else:
        stage_run_ids(con, run_ids)
        cursor = con.execute(f"SELECT {columns} FROM runs r JOIN wanted_runs w ON r.id = w.id ORDER BY r.id")
    out = {}
    for rid, status, mode, started, completed, task, cost in cursor.fetchall():
        out[rid] = {"run_id": rid, "status": status, "mode": mode, "started_at": started,
                    "completed_at": completed, "task_description": task or "",
                    "meta": {"cost_usd": cost} if cost else {}}
    return out


def files(con: duckdb.DuckDBPyConnection, run_ids: Iterable[str]) -> list[dict[str, Any]]:
    """File rows of the given runs."""
    stage_run_ids(con, run_ids)
    rows = con.execute("SELECT f.run_id, f.file_path, f.file_type, f.size_bytes, f.generating_agent FROM files f "
                       "JOIN wanted_runs w ON f.run_id = w.id ORDER BY f.run_id, f.file_path").fetchall()
    return [dict(zip(("run_id", "file_path", "file_type", "size_bytes", "generating_agent"), r, strict=True))
            for r in rows]


def outputs(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    """The kinds of files each run wrote (file rows and ``file_gen`` events), lower case without a leading dot."""
    return dict(con.execute("""
        SELECT run_id, list(DISTINCT kind ORDER BY kind) FROM (
            SELECT run_id, lower(ltrim(file_type, '.')) AS kind FROM files WHERE file_type IS NOT NULL
            UNION ALL
            SELECT run_id, lower(ltrim(file_type, '.')) FROM events WHERE event_type = 'file_gen'
                                                                       AND file_type IS NOT NULL)
        WHERE kind <> '' GROUP BY run_id""").fetchall())
