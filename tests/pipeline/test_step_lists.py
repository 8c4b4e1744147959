"""Distinct step lists reproduce Python's tokenisation exactly, including inherited orders and dropped types;
run ids reach DuckDB exactly, whatever they contain."""

from pathlib import Path

import pytest

from skill_pipeline.lib import step_lists, warehouse
from skill_pipeline.lib.loaders import stage_run_ids
from skill_pipeline.mining.tokens import GRANULARITIES, node_sequences, run_sequences, token_events

COLUMNS = list(warehouse.EVENT_COLUMNS)


def _event(seq: int, run: str, node: str | None, etype: str | None, agent: str | None, order: int | None,
           **extra: object) -> dict:
    row = dict.fromkeys(COLUMNS)
    row.update(seq=seq, id=f"e{seq}", run_id=run, node_id=node, event_type=etype, agent_name=agent,
               execution_order=order, event_subtype=extra.pop("subtype", None), status=extra.pop("status", None),
               payload_truncated=False, **extra)
    return row


def _runs() -> list[dict]:
    """Two runs of the same shape (one list), one with orders missing (inherited) and out of seq order."""
    rows, seq = [], 0
    for run in ("a", "b"):
        for order, (etype, agent, extra) in enumerate([
                ("agent_call", "planner", {}), ("message", "planner", {}), ("llm_call", "planner", {}),
                ("tool_call", "_Group_Tool_Executor", {"tool_name": "record_plan"}),
                ("agent_call", "engineer", {}), ("code_exec", "executor", {"exit_code": "1", "subtype": "error"}),
                ("code_exec", "executor", {"exit_code": "0"}), ("file_gen", "executor", {"file_type": "png"})]):
            seq += 1
            rows.append(_event(seq, run, f"{run}-n{order // 4}", etype, agent, order * 10, **extra))
    for order, etype, agent in [(None, "info", "system"), (30, "agent_call", "control"), (None, "tool_call", "control"),
                                (None, None, None), (10, "agent_call", "researcher"), (None, "mystery", "x")]:
        seq += 1
        rows.append(_event(seq, "c", None if order is None else "c-n", etype, agent, order))
    return rows


@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_step_lists_tokenise_like_python(tmp_path: Path, granularity: str):
    rows = _runs()
    with warehouse.connect(tmp_path / "w.duckdb") as con:
        con.executemany(f"INSERT INTO events VALUES ({', '.join('?' for _ in COLUMNS)})",
                        [[r[c] for c in COLUMNS] for r in rows])
        step_lists.stage_steps(con, ["a", "b", "c"], granularity)
        found: dict[bool, dict] = {False: {}, True: {}}
        shapes = 0
        for per_node, out in found.items():
            for events, owners in step_lists.distinct_step_lists(con, per_node=per_node):
                shapes += not per_node
                out.update((o, [t for t, _ in token_events(events, granularity)]) for o in owners)
    events = [{**r, "meta": {k: r[k] for k in ("tool_name", "exit_code", "file_type") if r[k] is not None}}
              for r in rows]
    expected_runs = run_sequences(events, granularity)
    assert {run: found[False].get((run, None), []) for run in expected_runs} == expected_runs
    assert {key: found[True].get(key, []) for key in node_sequences(events, granularity)} == \
        node_sequences(events, granularity)
    assert shapes == 2  # runs a and b share one list; c is its own
    assert expected_runs["a"]  # the comparison is not between empty sequences


@pytest.mark.parametrize("ids", [[], ["b", "a", "b"], ["with\x1fseparator", "plain"]])
def test_run_ids_are_staged_exactly(tmp_path: Path, ids: list[str]):
    with warehouse.connect(tmp_path / "w.duckdb") as con:
        stage_run_ids(con, ids)
        assert [r[0] for r in con.execute("SELECT id FROM wanted_runs ORDER BY id").fetchall()] == sorted(set(ids))


def test_sql_literals_are_quoted_and_empty_lists_refused():
    assert warehouse.sql_list(["a", "it's"]) == "('a', 'it''s')"
    with pytest.raises(ValueError):
        warehouse.sql_list([])
