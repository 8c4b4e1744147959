"""The warehouse's events as *distinct step lists*, so each distinct run (or node) shape is tokenised once.

Tokenising every event of every run in Python would cost seconds per million events; but runs that follow the
same skill record the same steps, so DuckDB filters, numbers and sorts the steps, and Python tokenises each
distinct list once. Only what tokenising reads is kept: event types that never become a token at the granularity are dropped
(after the ordering, which they can take part in), and each step keeps the fields ``mining.tokens`` reads.

Ordering reproduces ``mining.tokens.order_events``: by ``execution_order``, an event without one inheriting the
order of the event stored just before it (by ``seq``) in the same run (or node).
"""

from collections.abc import Iterable, Iterator
from typing import Any

import duckdb

from capture.core.vocabulary import EVENT_TYPES
from skill_pipeline.lib.loaders import stage_run_ids
from skill_pipeline.lib.warehouse import sql_list
from skill_pipeline.mining.tokens import event_token

STEP_FIELDS = ("event_type", "event_subtype", "agent_name", "status", "tool_name", "exit_code", "file_type")
META_FIELDS = ("tool_name", "exit_code", "file_type")
FETCH_ROWS = 100_000


def dropped_types(granularity: str) -> list[str]:
    """Vocabulary event types that never yield a token at ``granularity`` (safe to drop before tokenising)."""
    return sorted(t for t in EVENT_TYPES if event_token({"event_type": t, "agent_name": "a"}, granularity) is None)


def stage_steps(con: duckdb.DuckDBPyConnection, run_ids: Iterable[str], granularity: str) -> None:
    """Temp table ``steps``: the events of ``run_ids`` that can yield a token, with their inherited order within
    the run (``run_order``) and within the node (``node_order``). The window that inherits an order runs only
    over runs that have an event without ``execution_order`` (rare: foreign imports, dirty rows)."""
    stage_run_ids(con, run_ids)
    dropped = sql_list(dropped_types(granularity))
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
        WHERE event_type IS NULL OR event_type NOT IN {dropped}""")


def distinct_step_lists(con: duckdb.DuckDBPyConnection, *, per_node: bool
                        ) -> Iterator[tuple[list[dict[str, Any]], list[tuple[str, str | None]]]]:
    """``(step list, [(run_id, node_id), ...])`` for each distinct ordered step list in ``steps``, per run
    (node_id None) or per (run, node). Steps are event dicts as ``mining.tokens`` reads them.

    Each distinct step is numbered in DuckDB, which then sorts (spilling to disk if it must) the small
    ``(owner, number)`` rows; Python cuts the sorted stream into lists and keeps one per distinct shape. (An
    ordered ``list()`` aggregate would do it in SQL, but holds every group's rows in memory.)"""
    fields = ", ".join(STEP_FIELDS)
    same = " AND ".join(f"s.{f} IS NOT DISTINCT FROM k.{f}" for f in STEP_FIELDS)
    con.execute(f"CREATE OR REPLACE TEMP TABLE step_kinds AS "
                f"SELECT row_number() OVER () AS kind, * FROM (SELECT DISTINCT {fields} FROM steps)")
    kinds = {row[0]: row[1:] for row in con.execute(f"SELECT kind, {fields} FROM step_kinds").fetchall()}
    node, order = ("s.node_id", "s.node_id, s.node_order") if per_node else ("NULL", "s.run_order")
    cursor = con.execute(f"SELECT s.run_id, {node}, k.kind FROM steps s JOIN step_kinds k ON {same} "
                         f"ORDER BY s.run_id, {order} NULLS FIRST, s.seq")
    owners: dict[tuple[int, ...], list[tuple[str, str | None]]] = {}
    current, numbers = None, []
    while rows := cursor.fetchmany(FETCH_ROWS):
        for run_id, node_id, kind in rows:
            if (run_id, node_id) != current:
                if numbers:
                    owners.setdefault(tuple(numbers), []).append(current)
                current, numbers = (run_id, node_id), []
            numbers.append(kind)
    if numbers:
        owners.setdefault(tuple(numbers), []).append(current)
    for shape, found in owners.items():
        yield _events([kinds[n] for n in shape]), found


def _events(steps: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Step rows (``STEP_FIELDS``) as ordered event dicts (seq and execution_order are the position)."""
    out = []
    for i, step in enumerate(steps):
        values = dict(zip(STEP_FIELDS, step, strict=True))
        event = {f: values[f] for f in STEP_FIELDS if f not in META_FIELDS}
        event["meta"] = {f: values[f] for f in META_FIELDS if values[f] is not None}
        event["seq"] = event["execution_order"] = i
        out.append(event)
    return out
