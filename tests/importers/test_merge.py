"""One run per real run: the same run from several real sources, imported in any order, is one stored run."""

import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from capture.importers import (
    ImportReport,
    import_cmbagent_db,
    import_cmbagent_history,
    import_cmbagent_trials,
    import_xes,
)
from capture.importers.merge import fingerprint
from capture.store.capture_store import CaptureStore
from capture.store.migrate import upgrade
from capture.store.models import CostRecord, ExecutionEvent, File, WorkflowRun

MOBIUS_TASK = "task_1771405087092_x36p0w44p"


def new_store(tmp_path: Path, name: str) -> CaptureStore:
    url = f"sqlite:///{tmp_path / name}.db"
    upgrade(url)
    return CaptureStore.open(url)


def sources(data: Path) -> dict[str, tuple[Callable[..., ImportReport], Path]]:
    """Every real CMBAgent record shipped with the tests, by name."""
    cmb = data / "cmbagent"
    dbs = {f"db-{p.stem[14:21]}": (import_cmbagent_db, p) for p in sorted((cmb / "mars_sqlite").glob("*.db"))}
    return {**dbs, "sessions": (import_cmbagent_history, cmb / "mars_sessions_2026-02-18"),
            "idea-task": (import_cmbagent_history, cmb / "mars_idea_generation_task"),
            "histories": (import_cmbagent_history, cmb / "upstream_cmbagent_history"),
            "trials": (import_cmbagent_trials, cmb / "benchmarks_cmbagent_trials.jsonl")}


def import_in(store: CaptureStore, order: list[str], available: dict) -> list[ImportReport]:
    return [available[name][0](available[name][1], store) for name in order]


def test_mars_database_and_session_folders_are_one_run_in_either_order(data: Path, tmp_path: Path) -> None:
    available = sources(data)
    first = new_store(tmp_path, "db-first")
    db_report, folder_report = import_in(first, ["db-89797ef", "sessions"], available)
    second = new_store(tmp_path, "folders-first")
    folder_first, db_second = import_in(second, ["sessions", "db-89797ef"], available)
    assert fingerprint(first) == fingerprint(second)
    assert (db_report.runs_new, folder_report.runs_merged, folder_report.runs_new) == (11, 10, 0)
    assert (folder_first.runs_new, db_second.runs_merged, db_second.runs_new) == (10, 10, 1)
    with first.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(WorkflowRun)).scalar_one() == 11
        run = conn.execute(select(WorkflowRun).where(WorkflowRun.meta["task_id"].as_string() == MOBIUS_TASK)).one()
        events = conn.execute(select(ExecutionEvent.event_type).where(ExecutionEvent.run_id == run.id)).scalars()
        costs = conn.execute(select(func.count(), func.sum(CostRecord.total_tokens))
                             .where(CostRecord.run_id == run.id)).one()
        files = conn.execute(select(File.file_path, File.meta).where(File.run_id == run.id)).all()
    labels = sorted(run.meta["sources"])
    assert labels == ["cmbagent-db:cmbagent_mars_89797ef_2026-02-18.db#e115a412-4cf3-4896-8083-fa076afb7c17",
                      f"mars-session:268e84d4-9872-48b2-a93b-aa2dd23413c9/{MOBIUS_TASK}"]
    assert run.meta["events_from"] == labels[1]  # the log's 30-odd events, not the database's 3 node events
    assert "agent_call" in set(events) and run.mode == "one_shot" and run.status == "completed"
    assert tuple(costs) == (5, 12951)  # the database and the cost report describe the same spend: counted once
    assert sorted(path for path, _ in files) == ["codebase/mobius_strip_plot.py", "cost/cost_report_20260218_085825.json",
                                                 "data/mobius_strip_1_20260218_085824.png"]
    assert all(meta.get("source_path", "").endswith(path) for path, meta in files if "source_path" in meta)
    assert any(meta["source_path"].startswith("/srv/projects/") for _, meta in files)


def test_a_stage_folder_merges_into_the_database_stage_run(data: Path, tmp_path: Path) -> None:
    available = sources(data)
    stores = []
    for order in (["db-474d7ff", "idea-task"], ["idea-task", "db-474d7ff"]):
        store = new_store(tmp_path, "-".join(order))
        import_in(store, order, available)
        stores.append(store)
    assert fingerprint(stores[0]) == fingerprint(stores[1])
    with stores[0].engine.connect() as conn:
        stage = conn.execute(select(WorkflowRun).where(WorkflowRun.stage_name == "idea_generation",
                                                       WorkflowRun.status == "completed")).one()
        parent = conn.execute(select(WorkflowRun).where(WorkflowRun.id == stage.parent_run_id)).one()
        assert conn.execute(select(func.count()).select_from(WorkflowRun)).scalar_one() == 6 + 20
        tools = conn.execute(select(func.count()).where(ExecutionEvent.run_id == stage.id,
                                                        ExecutionEvent.event_type == "tool_call")).scalar_one()
    assert parent.meta["work_dir"].endswith("a65e0e35-855e-4b01-a2fa-34e932716ec4") and stage.stage_number == 1
    assert len(stage.meta["sources"]) == 2 and tools > 0


def test_every_real_record_in_any_order_gives_the_same_store(data: Path, tmp_path: Path) -> None:
    available = sources(data)
    names = sorted(available)
    orders = [names, names[::-1], names[1::2] + names[::2]]
    prints = []
    for index, order in enumerate(orders):
        store = new_store(tmp_path, f"order-{index}")
        import_in(store, order, available)
        prints.append(fingerprint(store))
        if index == 0:
            again = import_in(store, order, available)
            assert sum(r.runs_written for r in again) == 0 and fingerprint(store) == prints[0]
            with store.engine.connect() as conn:
                metas = conn.execute(select(WorkflowRun.meta)).scalars().all()
    assert prints[1] == prints[0] and prints[2] == prints[0]
    # 11 + 8 + 6 database runs, 20 stages, 26 history turns, 7 trials; the 10 session-folder runs and the
    # idea-generation stage folder are merged into their database runs, not counted again
    assert prints[0]["workflow_runs"][0] == 11 + 8 + 6 + 20 + 26 + 7
    assert sum(1 for meta in metas if len(meta["sources"]) > 1) == 10 + 1
    task_ids = [meta["task_id"] for meta in metas if meta.get("task_id")]
    assert len(task_ids) == len(set(task_ids))


def test_a_changed_file_of_the_same_name_is_an_update(data: Path, tmp_path: Path,
                                                     sqlite_store: CaptureStore) -> None:
    log = tmp_path / "running-example.xes"
    shutil.copy(data / "external" / "pm4py_logs" / "running-example.xes", log)
    assert import_xes(log, sqlite_store).runs_new == 6
    text = log.read_text()
    log.write_text(text.replace('value="check ticket"', 'value="check ticket twice"', 1))
    changed = import_xes(log, sqlite_store)
    assert (changed.runs_new, changed.runs_updated, changed.runs_skipped) == (0, 1, 5)
    assert "1 runs written, 5 already imported (0 new, 0 merged into a run from another source, 1 updated" \
        in changed.summary()
    with sqlite_store.engine.connect() as conn:
        activities = [m["activity"] for m in conn.execute(select(ExecutionEvent.meta)).scalars()]
    assert activities.count("check ticket twice") == 1 and len(activities) == 42


@pytest.mark.parametrize("name", ["db-89797ef", "sessions", "trials"])
def test_reimporting_unchanged_records_writes_nothing(data: Path, sqlite_store: CaptureStore, name: str) -> None:
    available = sources(data)
    first = import_in(sqlite_store, [name], available)[0]
    before = fingerprint(sqlite_store)
    again = import_in(sqlite_store, [name], available)[0]
    assert (again.runs_written, again.runs_skipped) == (0, first.runs_written)
    assert fingerprint(sqlite_store) == before


def run_digest(store: CaptureStore) -> dict[str, tuple]:
    """Per run, what a merge decides (sources, owners, row counts, tokens, file paths), in backend-neutral form."""
    with store.engine.connect() as conn:
        runs = conn.execute(select(WorkflowRun.id, WorkflowRun.meta, WorkflowRun.status, WorkflowRun.mode)).all()
        events = dict(conn.execute(select(ExecutionEvent.run_id, func.count()).group_by(ExecutionEvent.run_id)).all())
        tokens = {r: (n, int(t or 0)) for r, n, t in conn.execute(
            select(CostRecord.run_id, func.count(), func.sum(CostRecord.total_tokens)).group_by(CostRecord.run_id))}
        paths: dict[str, list[str]] = {}
        for run_id, path in conn.execute(select(File.run_id, File.file_path)):
            paths.setdefault(run_id, []).append(path)
    return {run.id: (sorted(run.meta["sources"]), run.meta["events_from"], run.meta["costs_from"], run.status,
                     run.mode, events.get(run.id, 0), tokens.get(run.id), sorted(paths.get(run.id, [])))
            for run in runs}


@pytest.mark.postgres
def test_postgresql_merges_like_sqlite_in_the_other_order(pg_url: str, data: Path, tmp_path: Path) -> None:
    available = sources(data)
    upgrade(pg_url)
    postgres = CaptureStore.open(pg_url)
    import_in(postgres, ["db-89797ef", "sessions", "db-474d7ff", "idea-task"], available)
    sqlite = new_store(tmp_path, "reverse")
    import_in(sqlite, ["idea-task", "db-474d7ff", "sessions", "db-89797ef"], available)
    assert run_digest(postgres) == run_digest(sqlite)
    assert {k: v[0] for k, v in fingerprint(postgres).items()} == {k: v[0] for k, v in fingerprint(sqlite).items()}
    again = import_in(postgres, ["sessions", "db-89797ef"], available)
    assert [r.runs_written for r in again] == [0, 0]
    postgres.close()


def test_an_older_database_run_is_recognised_by_the_task_folder_of_its_files(data: Path, tmp_path: Path,
                                                                            sqlite_store: CaptureStore) -> None:
    """bdf6c3e's runs record no task id, but their files sit in ``sessions/<session>/tasks/<task id>/``. A session
    folder for one of them (built here from a real log of the same one-shot task, renamed to that run's session
    and task) merges into the database's run."""
    session, task = "caaa8693-4f1b-4c89-a0c3-26137fa3d112", "task_1771362636842_gv022znhr"
    real = data / "cmbagent" / "mars_sessions_2026-02-18" / "268e84d4-9872-48b2-a93b-aa2dd23413c9"
    folder = tmp_path / session
    folder.mkdir()
    log = (real / "session.log").read_text().replace(MOBIUS_TASK, task).replace(real.name, session)
    (folder / "session.log").write_text(log)
    import_cmbagent_history(folder, sqlite_store)
    report = import_cmbagent_db(data / "cmbagent" / "mars_sqlite" / "cmbagent_mars_bdf6c3e_2026-02-17.db",
                                sqlite_store)
    assert (report.runs_new, report.runs_merged) == (7, 1)
    with sqlite_store.engine.connect() as conn:
        run = conn.execute(select(WorkflowRun).where(WorkflowRun.session_id == session)).one()
        paths = conn.execute(select(File.file_path).where(File.run_id == run.id)).scalars().all()
    assert len(run.meta["sources"]) == 2 and run.meta["events_from"].startswith("mars-session:")
    assert paths and not any(p.startswith("/") for p in paths)


def test_a_stage_child_run_is_the_stage_run(data: Path, tmp_path: Path, sqlite_store: CaptureStore) -> None:
    """A ``task_stages`` row naming its own child run (a copy of 474d7ff given one for a65e0e35's first stage)
    yields one run for the stage, not two."""
    copy = tmp_path / "with_child.db"
    shutil.copy(data / "cmbagent" / "mars_sqlite" / "cmbagent_mars_474d7ff_2026-03-01.db", copy)
    parent = "a65e0e35-855e-4b01-a2fa-34e932716ec4"
    with sqlite3.connect(copy) as conn:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(workflow_runs)") if r[1] != "id"]
        conn.execute(f"INSERT INTO workflow_runs (id, {', '.join(columns)}) SELECT 'child-of-stage-1', "
                     f"{', '.join(columns)} FROM workflow_runs WHERE id = ?", (parent,))
        conn.execute("UPDATE workflow_runs SET parent_run_id = ?, stage_number = 1, stage_name = 'idea_generation' "
                     "WHERE id = 'child-of-stage-1'", (parent,))
        conn.execute("UPDATE task_stages SET child_run_id = 'child-of-stage-1' WHERE parent_run_id = ? "
                     "AND stage_number = 1", (parent,))
    report = import_cmbagent_db(copy, sqlite_store)
    assert (report.runs_new, report.runs_merged) == (6 + 20, 1)
    with sqlite_store.engine.connect() as conn:
        stages = conn.execute(select(WorkflowRun.meta).where(WorkflowRun.stage_name == "idea_generation")).scalars()
    assert sorted(len(meta["sources"]) for meta in stages) == [1, 1, 1, 1, 2]
