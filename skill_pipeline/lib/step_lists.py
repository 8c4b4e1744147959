"""The warehouse's events as *distinct step lists*, so each distinct run (or node) shape is tokenised once.

Tokenising every event of every run in Python would cost seconds per million events; but runs that follow the
same skill record the same steps, so DuckDB orders and groups the events and Python tokenises each distinct list
once. Only what tokenising reads is kept: event types that never become a token at the granularity are dropped
(after the ordering, which they can take part in), and each step keeps the fields ``mining.tokens`` reads.

Ordering reproduces ``mining.tokens.order_events``: by ``execution_order``, an event without one inheriting the
order of the event stored just before it (by ``seq``) in the same run (or node).
"""

from collections.abc import Iterable, Iterator
from typing import Any

import duckdb

from capture.vocabulary import EVENT_TYPES
from skill_pipeline.lib.loaders import stage_run_ids
from skill_pipeline.mining.tokens import event_token

STEP_FIELDS = ("event_type", "event_subtype", "agent_name", "status", "tool_name", "exit_code", "file_type")
META_FIELDS = ("tool_name", "exit_code", "file_type")
FIELD_SEP, STEP_SEP, NULL_MARK = "\x1f", "\x1e", "\x15"


def dropped_types(granularity: str) -> list[str]:
    """Vocabulary event types that never yield a token at ``granularity`` (safe to drop before tokenising)."""
    return sorted(t for t in EVENT_TYPES if event_token({"event_type": t, "agent_name": "a"}, granularity) is None)


def stage_steps(con: duckdb.DuckDBPyConnection, run_ids: Iterable[str], granularity: str) -> None:
    """Temp table ``steps``: the events of ``run_ids`` that can yield a token, with their inherited order within
    the run (``run_order``) and within the node (``node_order``). The window that inherits an order runs only
    over runs that have an event without ``execution_order`` (rare: foreign imports, dirty rows)."""
    stage_run_ids(con, run_ids)
    dropped = ", ".join("'" + t.replace("'", "''") + "'" for t in dropped_types(granularity)) or "NULL"
    fields = ", ".join(f"e.{f}" for f in STEP_FIELDS)
    inherit = ("last_value(e.execution_order IGNORE NULLS) OVER (PARTITION BY {} ORDER BY e.seq "
               "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)")
    con.execute("CREATE OR REPLACE TEMP TABLE unordered_runs AS SELECT DISTINCT e.run_id AS id FROM events e "
                "JOIN wanted_runs w ON e.run_id = w.id WHERE e.execution_order IS NULL")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE steps AS
        SELECT * FROM (
            SELECT e.run_id, e.node_id, e.seq, {fields}, e.execution_order AS run_order,
                   e.execution_order AS node_order
            FROM events e JOIN wanted_runs w ON e.run_id = w.id ANTI JOIN unordered_runs u ON e.run_id = u.id
            UNION ALL
            SELECT e.run_id, e.node_id, e.seq, {fields}, {inherit.format("e.run_id")},
                   {inherit.format("e.run_id, e.node_id")}
            FROM events e JOIN unordered_runs u ON e.run_id = u.id)
        WHERE event_type IS NULL OR event_type NOT IN ({dropped})""")


def distinct_step_lists(con: duckdb.DuckDBPyConnection, *, per_node: bool
                        ) -> Iterator[tuple[list[dict[str, Any]], list[tuple[str, str | None]]]]:
    """``(step list, [(run_id, node_id), ...])`` for each distinct ordered step list in ``steps``, per run
    (node_id None) or per (run, node). Steps are event dicts as ``mining.tokens`` reads them. A list travels as
    one string (fields and steps joined by control characters, NULL as its own mark): DuckDB groups strings
    several times faster than lists of structs."""
    order, keys = ("node_order", "run_id, node_id") if per_node else ("run_order", "run_id")
    step = f" || '{FIELD_SEP}' || ".join(f"coalesce({f}, '{NULL_MARK}')" for f in STEP_FIELDS)
    node = "node_id" if per_node else "NULL::VARCHAR"
    cursor = con.execute(f"""
        SELECT steps, list(run_id), list({node}) FROM (
            SELECT run_id, {node} AS node_id, string_agg({step}, '{STEP_SEP}' ORDER BY {order} NULLS FIRST, seq) AS steps
            FROM steps GROUP BY {keys})
        GROUP BY steps""")
    while rows := cursor.fetchmany(1000):
        for steps, run_ids, node_ids in rows:
            yield _events(steps), list(zip(run_ids, node_ids, strict=True))


def _events(steps: str) -> list[dict[str, Any]]:
    """A step-list string as ordered event dicts (seq and execution_order are the position)."""
    out = []
    for i, step in enumerate(steps.split(STEP_SEP)):
        values = dict(zip(STEP_FIELDS, (None if v == NULL_MARK else v for v in step.split(FIELD_SEP)), strict=True))
        event = {f: values[f] for f in STEP_FIELDS if f not in META_FIELDS}
        event["meta"] = {f: values[f] for f in META_FIELDS if values[f] is not None}
        event["seq"] = event["execution_order"] = i
        out.append(event)
    return out
