"""Every importer fuzzed on damaged real inputs (issue 16 item 5): malformed, truncated, deeply nested, huge and
wrongly typed inputs either import or fail with one :class:`SourceError` line naming the input and the place, never
another exception, and a failure leaves the store exactly as it was (same rows, same hashes; runs completed before
the bad place are the documented exception, counted in the error's report)."""

import gzip
import json
import re
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from capture.importers import (
    SourceError,
    import_ag2_log,
    import_cmbagent_db,
    import_cmbagent_history,
    import_cmbagent_trials,
    import_xes,
)
from capture.store.capture_store import CaptureStore
from tests.fuzz.conftest import FIXTURES, FUZZ
from tests.fuzz.mutations import (
    DEEP_JSON,
    HUGE,
    check_import,
    damaged_bytes,
    damaged_document,
    damaged_jsonl,
    damaged_sqlite,
)

FreshStore = Callable[[], Iterator[CaptureStore]]
CMBAGENT = FIXTURES / "cmbagent"
MARS_DBS = sorted((CMBAGENT / "mars_sqlite").glob("*.db"))
HISTORIES = sorted((CMBAGENT / "upstream_cmbagent_history").glob("*.json"))
SESSION = CMBAGENT / "mars_sessions_2026-02-18" / "8575b7e5-4043-471a-82cf-1e4bab99f82a"
XES = FIXTURES / "external" / "pm4py_logs" / "running-example.xes"
XES_GZ = FIXTURES / "external" / "pm4py_logs" / "08_receipt.xes.gz"
TRIALS = CMBAGENT / "benchmarks_cmbagent_trials.jsonl"


@pytest.fixture(scope="module")
def ag2_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real AG2 runtime-logging database: two tool chats of real AG2 agents with scripted offline models."""
    from tests.importers.test_ag2_log import logged_chat

    path = tmp_path_factory.mktemp("ag2") / "runtime.db"
    logged_chat(path, "What is 2 + 3?", 2, 3)
    logged_chat(path, "What is 4 + 5?", 4, 5)
    return path


# -- SQLite sources --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("importer", [import_cmbagent_db, import_ag2_log], ids=["cmbagent-db", "ag2-log"])
@FUZZ
@given(data=st.data())
def test_sqlite_source_fuzzed(importer: Callable, data: st.DataObject, request: pytest.FixtureRequest,
                              tmp_path: Path, fresh_store: FreshStore) -> None:
    sources = MARS_DBS if importer is import_cmbagent_db else [request.getfixturevalue("ag2_log")]
    target = tmp_path / "damaged.db"
    data.draw(damaged_sqlite(data.draw(st.sampled_from(sources), label="source"), target), label="damage")
    with fresh_store() as store:
        check_import(importer, target, store)


# -- JSON sources ------------------------------------------------------------------------------------------------


@FUZZ
@given(data=st.data(), source=st.sampled_from(HISTORIES), structural=st.booleans())
def test_cmbagent_history_fuzzed(data: st.DataObject, source: Path, structural: bool, tmp_path: Path,
                                 fresh_store: FreshStore) -> None:
    target = tmp_path / "damaged_chat_history.json"
    target.write_bytes(data.draw(damaged_document(source.read_bytes(), structural), label="input"))
    with fresh_store() as store:
        check_import(import_cmbagent_history, target, store)


@FUZZ
@given(data=st.data(), structural=st.booleans())
def test_mars_session_folder_fuzzed(data: st.DataObject, structural: bool, tmp_path: Path,
                                    fresh_store: FreshStore) -> None:
    folder = tmp_path / "session"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(SESSION, folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    victim = data.draw(st.sampled_from(files), label="file")
    damaged = damaged_document(victim.read_bytes(), structural and victim.suffix == ".json")
    victim.write_bytes(data.draw(damaged, label="input"))
    with fresh_store() as store:
        check_import(import_cmbagent_history, folder, store)


@FUZZ
@given(data=st.data(), structural=st.booleans())
def test_cmbagent_trials_fuzzed(data: st.DataObject, structural: bool, tmp_path: Path,
                                fresh_store: FreshStore) -> None:
    target = tmp_path / "damaged_trials.jsonl"
    target.write_bytes(data.draw(damaged_jsonl(TRIALS.read_bytes(), structural), label="input"))
    with fresh_store() as store:
        check_import(import_cmbagent_trials, target, store)


@pytest.fixture(scope="module")
def otlp_lines(template_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """OTLP/JSON trace lines (one ExportTraceServiceRequest per line, as the Collector's file exporter writes them)
    exported from the template store's runs, some of them with nested steps, costs and files."""
    from sqlalchemy import create_engine

    from capture.read.otlp_export import SpanBuilder, load_runs, to_otlp_json

    path = tmp_path_factory.mktemp("otlp") / "runs.otlp.jsonl"
    engine = create_engine(f"sqlite:///{template_store}")
    try:
        runs = list(load_runs(engine, since_seq=0))[:6]
        path.write_text("".join(json.dumps(to_otlp_json(SpanBuilder().spans(rows))) + "\n" for rows in runs))
    finally:
        engine.dispose()
    return path


@FUZZ
@given(data=st.data(), structural=st.booleans())
def test_otlp_fuzzed(data: st.DataObject, structural: bool, otlp_lines: Path, tmp_path: Path,
                     fresh_store: FreshStore) -> None:
    from capture.importers.otlp import import_otlp

    target = tmp_path / "damaged.otlp.jsonl"
    target.write_bytes(data.draw(damaged_jsonl(otlp_lines.read_bytes(), structural), label="input"))
    with fresh_store() as store:
        check_import(import_otlp, target, store)


# -- XES ------------------------------------------------------------------------------------------------------

ATTRIBUTE_VALUE = re.compile(rb'value="[^"]*"')
XML_VALUES = st.one_of(st.text(max_size=20), st.sampled_from(
    ["", "2026-13-45T99:99:99", "not a number", "NaN", "1e400", "-1", "&amp;", "&bogus;", HUGE]))


@st.composite
def damaged_xes(draw: st.DrawFn, data: bytes) -> bytes:
    """An XES log with attribute values of the wrong kind, deeply nested elements, or a huge value."""
    kind = draw(st.sampled_from(["values", "nesting", "key"]))
    if kind == "nesting":
        depth = draw(st.sampled_from([50, 5_000, 100_000]))
        element = draw(st.sampled_from([b"list", b"trace", b"event", b"string"]))
        nest = b"<%s key=\"k\" value=\"v\">" % element * depth + b"</%s>" % element * depth
        at = data.index(b"<trace>")
        return data[:at] + nest + data[at:]
    matches = list((ATTRIBUTE_VALUE if kind == "values" else re.compile(rb'key="[^"]*"')).finditer(data))
    for _ in range(draw(st.integers(1, 3))):
        found = draw(st.sampled_from(matches))
        value = draw(XML_VALUES).replace('"', "&quot;").replace("<", "&lt;").encode()
        replacement = (b'value="%s"' if kind == "values" else b'key="%s"') % value
        data = data[:found.start()] + replacement.ljust(found.end() - found.start()) + data[found.end():] \
            if len(replacement) <= found.end() - found.start() else data.replace(found.group(0), replacement, 1)
    return data


@FUZZ
@given(data=st.data(), structural=st.booleans())
def test_xes_fuzzed(data: st.DataObject, structural: bool, tmp_path: Path, fresh_store: FreshStore) -> None:
    original = XES.read_bytes()
    damaged = data.draw(damaged_xes(original) if structural else damaged_bytes(original), label="input")
    target = tmp_path / "damaged.xes"
    target.write_bytes(damaged)
    with fresh_store() as store:
        check_import(import_xes, target, store)


@FUZZ
@given(data=st.data())
def test_xes_gz_fuzzed(data: st.DataObject, tmp_path: Path, fresh_store: FreshStore) -> None:
    small = gzip.compress(XES.read_bytes())
    damaged = data.draw(damaged_bytes(small), label="input")
    target = tmp_path / "damaged.xes.gz"
    target.write_bytes(damaged)
    with fresh_store() as store:
        check_import(import_xes, target, store)


# -- fixed hostile inputs every importer meets once ---------------------------------------------------------------

HOSTILE = {
    "deeply nested JSON": DEEP_JSON.encode(),
    "a huge JSON string": json.dumps({"messages": [{"role": "user", "content": HUGE}]}).encode(),
    "JSON of the wrong shape": b'[{"role": 1}, null, "x"]',
    "binary noise": bytes(range(256)) * 8,
    "empty": b"",
    "not UTF-8": b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}',
}


@pytest.mark.parametrize("content", HOSTILE.values(), ids=HOSTILE.keys())
@pytest.mark.parametrize("importer,name", [
    (import_cmbagent_db, "input.db"), (import_ag2_log, "input.db"), (import_cmbagent_history, "x_chat_history.json"),
    (import_cmbagent_trials, "trials.jsonl"), (import_xes, "input.xes"), (import_xes, "input.xes.gz")],
    ids=["cmbagent-db", "ag2-log", "cmbagent-history", "cmbagent-trials", "xes", "xes.gz"])
def test_hostile_input_is_refused_by_name(importer: Callable, name: str, content: bytes, tmp_path: Path,
                                          fresh_store: FreshStore) -> None:
    target = tmp_path / name
    target.write_bytes(content)
    with fresh_store() as store:
        outcome = check_import(importer, target, store)
    if content in (DEEP_JSON.encode(), b"", bytes(range(256)) * 8):
        assert outcome == "refused"


# -- what the fuzzing found, pinned ------------------------------------------------------------------------------


@pytest.mark.parametrize("sql,expected", [
    ("UPDATE events SET json_state = '1'", r"AG2 session .*unexpected type or shape \(AttributeError"),
    (f"UPDATE chat_completions SET request = '{DEEP_JSON}'", r"AG2 session .*nested too deeply"),
], ids=["state-not-an-object", "deeply-nested-request"])
def test_ag2_log_found_by_fuzzing(sql: str, expected: str, ag2_log: Path, tmp_path: Path,
                                  fresh_store: FreshStore) -> None:
    target = tmp_path / "found.db"
    shutil.copyfile(ag2_log, target)
    with sqlite3.connect(target) as conn:
        conn.execute(sql)
    with fresh_store() as store, pytest.raises(SourceError, match=re.escape(str(target)) + ": " + expected):
        import_ag2_log(target, store)


def test_a_trace_inside_a_trace_is_refused_not_imported_as_many_runs(tmp_path: Path,
                                                                     fresh_store: FreshStore) -> None:
    data = XES.read_bytes()
    at = data.index(b"<trace>")
    target = tmp_path / "nested.xes"
    target.write_bytes(data[:at] + b"<trace>" * 5000 + b"</trace>" * 5000 + data[at:])
    with fresh_store() as store, pytest.raises(SourceError, match=r"nested\.xes: a trace inside a trace"):
        import_xes(target, store)


@pytest.mark.parametrize("column", ["created_at", "status"])
def test_a_mars_session_without_a_value_the_store_requires_takes_the_store_default(
        column: str, tmp_path: Path, fresh_store: FreshStore) -> None:
    target = tmp_path / "no_session_value.db"
    shutil.copyfile(MARS_DBS[0], target)
    with sqlite3.connect(target) as conn:
        conn.executescript(f"CREATE TABLE loose AS SELECT * FROM sessions; UPDATE loose SET {column} = NULL; "
                           "DROP TABLE sessions; ALTER TABLE loose RENAME TO sessions")  # without its NOT NULLs
    with fresh_store() as store:
        assert import_cmbagent_db(target, store).runs_written > 0


def test_an_ag2_cost_that_is_not_a_number_is_named_not_passed_to_the_store(ag2_log: Path, tmp_path: Path,
                                                                           fresh_store: FreshStore) -> None:
    target = tmp_path / "odd_cost.db"
    shutil.copyfile(ag2_log, target)
    with sqlite3.connect(target) as conn:
        conn.execute("UPDATE chat_completions SET cost = ':'")
    with fresh_store() as store, pytest.raises(SourceError, match=r"odd_cost\.db: table chat_completions, row \d+: "
                                                                  r"cost ':' is not a number"):
        import_ag2_log(target, store)
