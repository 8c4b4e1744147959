"""The MARS database importer on the three real databases (SQLite store; one case on PostgreSQL too)."""

import shutil
import sqlite3
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from capture.importers import SourceError, import_cmbagent_db
from capture.store.capture_store import CaptureStore
from capture.store.migrate import upgrade
from capture.store.models import CostRecord, DagNode, ExecutionEvent, File, WorkflowRun

DBS = ("cmbagent_mars_89797ef_2026-02-18.db", "cmbagent_mars_bdf6c3e_2026-02-17.db",
       "cmbagent_mars_474d7ff_2026-03-01.db")
MOBIUS = "Plot a 3D Möbius strip using matplotlib."


def db_path(data: Path, name: str) -> Path:
    return data / "cmbagent" / "mars_sqlite" / name


def source_cost_total(path: Path) -> Decimal:
    with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True) as conn:
        values = [row[0] for row in conn.execute("SELECT cost_usd FROM cost_records")]
    return sum((Decimal(str(v)).quantize(Decimal("0.000001")) for v in values), Decimal(0))


def stored_cost_total(store: CaptureStore, source: str) -> Decimal:
    with store.engine.connect() as conn:
        runs = [r.id for r in conn.execute(select(WorkflowRun.id, WorkflowRun.meta))
                if (r.meta or {}).get("source") == source]
        return conn.execute(select(func.sum(CostRecord.cost_usd)).where(CostRecord.run_id.in_(runs))).scalar_one()


def test_89797ef_keeps_every_run_node_edge_event_file_and_cost(sqlite_store: CaptureStore, data: Path) -> None:
    path = db_path(data, DBS[0])
    report = import_cmbagent_db(path, sqlite_store)
    assert (report.runs_written, report.nodes, report.edges, report.events, report.files, report.costs) == \
        (11, 40, 29, 33, 49, 101)
    assert dict(report.unmapped) == {}
    with sqlite_store.engine.connect() as conn:
        shape = conn.execute(select(WorkflowRun.mode, WorkflowRun.status, func.count())
                             .group_by(WorkflowRun.mode, WorkflowRun.status)).all()
        assert sorted(tuple(r) for r in shape) == [
            ("human_in_the_loop", "executing", 2), ("idea_generation", "failed", 1), ("one_shot", "completed", 3),
            ("planning_and_control", "completed", 5)]
        kinds = conn.execute(select(ExecutionEvent.event_type, ExecutionEvent.event_subtype, func.count())
                             .group_by(ExecutionEvent.event_type, ExecutionEvent.event_subtype)).all()
        assert [tuple(k) for k in kinds] == [("state_transition", "node", 33)]
        metas = conn.execute(select(ExecutionEvent.meta)).scalars().all()
        assert {m["source_type"] for m in metas} == {"agent_call/execution"}
        assert sorted(Counter((m["old_status"], m["new_status"]) for m in metas).items()) == [
            (("pending", "completed"), 8), (("pending", "running"), 22), (("running", "running"), 3)]
        linked = conn.execute(select(func.count()).select_from(File)
                              .where(File.event_id.is_not(None), File.node_id.is_not(None))).scalar_one()
        assert linked == 49
        short_ids = {m["id"] for m in conn.execute(select(DagNode.meta)).scalars()}
        assert {"init", "execute", "planning", "step_1", "terminator"} <= short_ids
    assert stored_cost_total(sqlite_store, path.name) == source_cost_total(path) == Decimal("6.068800")


def test_cost_totals_survive_for_every_db_and_null_agents_become_unattributed(
        sqlite_store: CaptureStore, data: Path) -> None:
    for name in DBS:
        import_cmbagent_db(db_path(data, name), sqlite_store)
        assert stored_cost_total(sqlite_store, name) == source_cost_total(db_path(data, name))
    with sqlite_store.engine.connect() as conn:
        assert conn.execute(select(func.count()).where(CostRecord.agent_name == "unattributed")).scalar_one() == 51
        assert conn.execute(select(func.count()).where(CostRecord.agent_name.is_(None))).scalar_one() == 0
        one_shot = conn.execute(select(WorkflowRun.id).where(WorkflowRun.mode == "one_shot",
                                                             WorkflowRun.task_description == MOBIUS)).scalars().all()
        assert len(one_shot) == 3 + 5 + 1  # 89797ef, bdf6c3e, 474d7ff
        for run_id in one_shot:
            rows = conn.execute(select(func.count(), func.sum(CostRecord.cost_usd), func.sum(CostRecord.total_tokens))
                                .where(CostRecord.run_id == run_id)).one()
            assert tuple(rows) == (5, Decimal("0.314540"), 12951)  # the README's $0.3145, to the cent fraction


def test_bare_and_hashed_node_ids_and_task_stages(sqlite_store: CaptureStore, data: Path) -> None:
    bdf = import_cmbagent_db(db_path(data, DBS[1]), sqlite_store)
    assert (bdf.runs_written, bdf.nodes, bdf.edges, bdf.events, bdf.files, bdf.costs) == (8, 15, 10, 29, 36, 64)
    with sqlite_store.engine.connect() as conn:
        sources = {m["source_id"]: m["id"] for m in conn.execute(select(DagNode.meta)).scalars()}
    assert {"init", "execute", "terminator"} <= set(sources)
    assert all(sources[k] == k for k in ("init", "execute", "terminator"))
    stages = import_cmbagent_db(db_path(data, DBS[2]), sqlite_store)
    assert stages.runs_written == 6 + 20
    with sqlite_store.engine.connect() as conn:
        children = conn.execute(select(WorkflowRun.parent_run_id, WorkflowRun.stage_number, WorkflowRun.stage_name)
                                .where(WorkflowRun.parent_run_id.is_not(None))).all()
        parents = conn.execute(select(WorkflowRun.id).where(WorkflowRun.mode == "denario_research",
                                                            WorkflowRun.parent_run_id.is_(None))).scalars().all()
    assert len(children) == 20 and {c.parent_run_id for c in children} == set(parents) and len(parents) == 5
    assert sorted({(c.stage_number, c.stage_name) for c in children}) == [
        (1, "idea_generation"), (2, "method_development"), (3, "experiment_execution"), (4, "paper_generation")]


def test_importing_twice_changes_nothing(sqlite_store: CaptureStore, data: Path, row_counts) -> None:
    for name in DBS:
        import_cmbagent_db(db_path(data, name), sqlite_store)
    first = row_counts(sqlite_store)
    again = [import_cmbagent_db(db_path(data, name), sqlite_store) for name in DBS]
    assert row_counts(sqlite_store) == first
    assert [r.runs_written for r in again] == [0, 0, 0] and [r.runs_skipped for r in again] == [11, 8, 26]
    assert first["workflow_runs"] == 11 + 8 + 26 and first["cost_records"] == 101 + 64 + 5


def test_bad_databases_are_named_and_lose_nothing(sqlite_store: CaptureStore, data: Path, tmp_path: Path,
                                                 row_counts) -> None:
    import_cmbagent_db(db_path(data, DBS[2]), sqlite_store)
    before = row_counts(sqlite_store)
    not_sqlite = tmp_path / "notes.db"
    not_sqlite.write_text("this is not a database\n" * 50)
    with pytest.raises(SourceError, match=r"notes\.db: not a readable SQLite database"):
        import_cmbagent_db(not_sqlite, sqlite_store)
    partial = tmp_path / "partial.db"
    shutil.copy(db_path(data, DBS[0]), partial)
    with sqlite3.connect(partial) as conn:
        conn.execute("DROP TABLE cost_records")
        conn.execute("DROP TABLE dag_edges")
    with pytest.raises(SourceError, match=r"partial\.db: not a CMBAgent database, missing table\(s\) "
                                          r"dag_edges, cost_records"):
        import_cmbagent_db(partial, sqlite_store)
    with pytest.raises(SourceError, match=r"missing\.db: no such file"):
        import_cmbagent_db(tmp_path / "missing.db", sqlite_store)
    assert row_counts(sqlite_store) == before


def test_source_is_opened_read_only(sqlite_store: CaptureStore, data: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.db"
    shutil.copy(db_path(data, DBS[0]), copy)
    copy.chmod(0o444)
    before = copy.read_bytes()
    import_cmbagent_db(copy, sqlite_store)
    assert copy.read_bytes() == before
    assert not (tmp_path / "copy.db-wal").exists() and not (tmp_path / "copy.db-journal").exists()


@pytest.mark.postgres
def test_89797ef_on_postgresql(pg_url: str, data: Path, row_counts) -> None:
    upgrade(pg_url)
    store = CaptureStore.open(pg_url)
    path = db_path(data, DBS[0])
    report = import_cmbagent_db(path, store)
    assert (report.runs_written, report.nodes, report.edges, report.events, report.files, report.costs) == \
        (11, 40, 29, 33, 49, 101)
    counts = row_counts(store)
    assert import_cmbagent_db(path, store).runs_skipped == 11
    assert row_counts(store) == counts
    assert stored_cost_total(store, path.name) == source_cost_total(path)
    store.close()
