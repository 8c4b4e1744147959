"""The XES importer on the pm4py logs: counts and variant numbers equal pm4py's, re-import is a no-op,
damaged files are named with the place and keep every complete case, read in this process or by a read-ahead
process."""

import gzip
from collections import defaultdict
from pathlib import Path

import pytest
from sqlalchemy import func, select

from capture.importers import SourceError, import_xes
from capture.store.capture_store import CaptureStore
from capture.store.models import ExecutionEvent, WorkflowRun


def logs(data: Path) -> Path:
    return data / "external" / "pm4py_logs"


def variants(store: CaptureStore, session_id: str) -> int:
    """Distinct activity sequences over the runs of a session (pm4py's variant definition)."""
    sequences: dict[str, list[str]] = defaultdict(list)
    with store.engine.connect() as conn:
        rows = conn.execute(select(ExecutionEvent.run_id, ExecutionEvent.meta)
                            .where(ExecutionEvent.session_id == session_id)
                            .order_by(ExecutionEvent.run_id, ExecutionEvent.execution_order))
        for run_id, meta in rows:
            sequences[run_id].append(meta["activity"])
    return len({tuple(s) for s in sequences.values()})


@pytest.mark.parametrize(("name", "cases", "events", "n_variants"), [
    ("running-example.xes", 6, 42, 6),
    ("roadtraffic100traces.xes", 100, 390, 10),
    ("08_receipt.xes.gz", 1434, 8577, 116),
])
def test_counts_and_variants_match_pm4py(sqlite_store: CaptureStore, data: Path, name: str, cases: int,
                                         events: int, n_variants: int) -> None:
    report = import_xes(logs(data) / name, sqlite_store, session=f"xes-{name}")
    assert (report.runs_written, report.events, dict(report.unmapped)) == (cases, events, {})
    assert variants(sqlite_store, f"xes-{name}") == n_variants


def test_running_example_mapping(sqlite_store: CaptureStore, data: Path) -> None:
    import_xes(logs(data) / "running-example.xes", sqlite_store, session="re")
    with sqlite_store.engine.connect() as conn:
        run = conn.execute(select(WorkflowRun).where(WorkflowRun.task_description == "case 3")).one()
        first = conn.execute(select(ExecutionEvent).where(ExecutionEvent.run_id == run.id)
                             .order_by(ExecutionEvent.execution_order)).first()
        activities = conn.execute(select(func.count(func.distinct(ExecutionEvent.agent_name)))).scalar_one()
    assert (run.mode, run.status, run.session_id) == ("xes", "completed", "re")
    assert (first.event_type, first.event_subtype, first.agent_name) == ("agent_call", "complete", "Pete")
    assert first.meta["activity"] == "register request" and first.meta["attributes"]["Costs"] == "50"
    assert first.timestamp.replace(tzinfo=None).isoformat() == "2010-12-30T13:32:00"
    assert activities == 6  # six resources: Pete, Mike, Ellen, Sara, Sean, Sue


def test_importing_twice_changes_nothing(sqlite_store: CaptureStore, data: Path, row_counts) -> None:
    path = logs(data) / "roadtraffic100traces.xes"
    import_xes(path, sqlite_store)
    before = row_counts(sqlite_store)
    again = import_xes(path, sqlite_store)
    assert (again.runs_written, again.runs_skipped, again.events) == (0, 100, 0)
    assert row_counts(sqlite_store) == before


@pytest.mark.parametrize("read_ahead", [False, True], ids=["one-process", "read-ahead"])
def test_truncated_gzip_is_named_and_complete_cases_stay(sqlite_store: CaptureStore, data: Path,
                                                         tmp_path: Path, row_counts, read_ahead: bool) -> None:
    source = logs(data) / "08_receipt.xes.gz"
    damaged = tmp_path / "receipt-cut.xes.gz"
    damaged.write_bytes(source.read_bytes()[:60_000])
    with pytest.raises(SourceError, match=r"receipt-cut\.xes\.gz: damaged or truncated compressed data after "
                                          r"byte \d+ of the XML") as caught:
        import_xes(damaged, sqlite_store, session="receipt", read_ahead=read_ahead)
    kept = caught.value.report.runs_written
    assert 0 < kept < 1434 and row_counts(sqlite_store)["workflow_runs"] == kept
    damaged.write_bytes(source.read_bytes())
    rest = import_xes(damaged, sqlite_store, session="receipt")
    assert (rest.runs_skipped, rest.runs_written) == (kept, 1434 - kept)
    assert variants(sqlite_store, "receipt") == 116


@pytest.mark.parametrize("read_ahead", [False, True], ids=["one-process", "read-ahead"])
def test_malformed_xml_names_line_and_column(sqlite_store: CaptureStore, data: Path, tmp_path: Path,
                                             row_counts, read_ahead: bool) -> None:
    text = (logs(data) / "running-example.xes").read_text().splitlines(keepends=True)
    broken = tmp_path / "broken.xes"
    broken.write_text("".join(text[:100]) + "    <event><string key=\"concept:name\" value=\"x\">\n</log>\n")
    with pytest.raises(SourceError, match=r"broken\.xes: malformed XML at line 102, column \d+"):
        import_xes(broken, sqlite_store, read_ahead=read_ahead)
    assert row_counts(sqlite_store)["workflow_runs"] == 1  # case 3 closed before the damage
    with pytest.raises(SourceError, match=r"nothing\.xes\.gz: no such file"):
        import_xes(tmp_path / "nothing.xes.gz", sqlite_store, read_ahead=read_ahead)


def test_gzip_and_plain_give_the_same_runs(sqlite_store: CaptureStore, data: Path, tmp_path: Path) -> None:
    packed = tmp_path / "running-example.xes.gz"
    packed.write_bytes(gzip.compress((logs(data) / "running-example.xes").read_bytes()))
    report = import_xes(packed, sqlite_store, session="packed")
    assert (report.runs_written, report.events) == (6, 42) and variants(sqlite_store, "packed") == 6
