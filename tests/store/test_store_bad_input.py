"""Bad input gets a clear error naming it, and nothing already stored is lost."""

import pytest
from sqlalchemy import text

from capture.read import queries
from capture.store.capture_store import Batch, CaptureStore
from capture.store.db import SchemaOutOfDate, StoreUnreachable
from capture.store.migrate import downgrade, head_revision, upgrade
from capture.store.records import BadRecord
from skillmine.cli import main


class Live:
    """Stands for a live agent object: not JSON-serialisable."""

    def __repr__(self) -> str:
        return "<Live agent engineer>"


def test_unknown_event_type_is_a_clear_bad_record(store):
    store.create_event(id="kept", run_id="r", session_id="s", event_type="info")
    with pytest.raises(BadRecord, match=r"event e-1: unknown event type 'teleport'"):
        store.write_batch(Batch(events=[{"id": "e-1", "run_id": "r", "session_id": "s",
                                         "event_type": "teleport"}]))
    with pytest.raises(BadRecord, match=r"unknown field\(s\) \['colour'\]"):
        store.create_event(run_id="r", session_id="s", event_type="info", colour="red")
    with pytest.raises(BadRecord, match="status 'exploded'"):
        store.create_event(run_id="r", session_id="s", event_type="info", status="exploded")
    assert [e["id"] for e in queries.list_events_for_run(store, "s", "r")] == ["kept"]


def test_alias_types_are_normalised_with_source_kept(store):
    eid = store.create_event(run_id="r", session_id="s", event_type="agent_call", event_subtype="execution")
    got = queries.get_event(store, "s", eid)
    assert (got["event_type"], got["event_subtype"]) == ("state_transition", "node")
    assert got["meta"] == {"source_type": "agent_call/execution"}


def test_unserialisable_payload_is_encoded_and_marked(store):
    eid = store.create_event(run_id="r", session_id="s", event_type="tool_call",
                             inputs={"agent": Live(), "blob": b"\x00\x01abc", "nan": float("nan"), "ok": [1, "x"],
                                     "set": {3, 1}},
                             outputs={"result": Live()}, meta={"model": "gpt-4o", "tokens": 12})
    got = queries.get_event(store, "s", eid)
    assert got["inputs"]["agent"] == {"__unserialisable__": "Live", "repr": "<Live agent engineer>"}
    assert got["inputs"]["blob"] == {"__bytes__": 5, "preview": "\x00\x01abc"}
    assert got["inputs"]["nan"] == "nan"
    assert got["inputs"]["ok"] == [1, "x"] and got["inputs"]["set"] == [1, 3]
    assert got["outputs"]["result"]["__unserialisable__"] == "Live"
    assert got["meta"] == {"model": "gpt-4o", "tokens": 12}


def test_oversized_payload_is_truncated_and_marked(store):
    small = CaptureStore(store.engine, max_payload_bytes=4096)
    eid = small.create_event(run_id="r", session_id="s", event_type="code_exec",
                             inputs={"code": "x = 1\n" * 50_000, "language": "python"},
                             outputs=["y" * 100_000], error_message="E" * 400_000)
    got = queries.get_event(store, "s", eid)
    assert got["inputs"]["language"] == "python"
    assert got["inputs"]["code"]["__truncated__"] is True
    assert got["inputs"]["code"]["original_bytes"] == 300_000
    assert got["outputs"]["__truncated__"] is True and got["outputs"]["original_bytes"] > 100_000
    assert len(got["outputs"]["preview"]) <= 4096
    assert got["error_message"].endswith("[truncated, 400000 bytes]")


def test_unreachable_url_names_it_without_password():
    url = "postgresql+psycopg://skill:s3cr3t-pw@127.0.0.1:1/nowhere"
    with pytest.raises(StoreUnreachable) as info:
        CaptureStore.open(url)
    message = str(info.value)
    assert "127.0.0.1:1/nowhere" in message and "s3cr3t-pw" not in message and "***" in message
    with pytest.raises(StoreUnreachable):
        upgrade(url)


def test_cli_unreachable_store(capsys):
    code = main(["db", "--url", "postgresql+psycopg://skill:s3cr3t-pw@127.0.0.1:1/nowhere", "upgrade"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot reach the capture store" in err and "s3cr3t-pw" not in err


def test_store_at_older_revision_says_run_upgrade(store_url):
    upgrade(store_url)
    downgrade("base", store_url)
    with pytest.raises(SchemaOutOfDate, match="has no skillmine schema.*run `skillmine db upgrade`"):
        CaptureStore.open(store_url)
    upgrade(store_url)
    store = CaptureStore.open(store_url)
    with store.engine.begin() as conn:  # an older (unknown to this code) revision
        conn.execute(text("UPDATE alembic_version SET version_num = '0000_old'"))
    with pytest.raises(SchemaOutOfDate, match="is at schema revision 0000_old.*skillmine db upgrade"):
        CaptureStore.open(store_url)
    store.close()


def test_cli_upgrade_current_status_downgrade(store_url, capsys):
    assert main(["db", "--url", store_url, "upgrade"]) == 0
    assert f"is at revision {head_revision()}" in capsys.readouterr().out
    assert main(["db", "--url", store_url, "current"]) == 0
    assert capsys.readouterr().out.strip() == head_revision()
    store = CaptureStore.open(store_url)
    store.write_batch(Batch(runs=[{"id": "r", "session_id": "s", "mode": "one-shot"}],
                            events=[{"run_id": "r", "session_id": "s", "event_type": "info"}]))
    store.close()
    assert main(["db", "--url", store_url, "status"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["execution_events", "1"] in rows and ["workflow_runs", "1"] in rows
    assert ["one_shot", "1"] in rows[rows.index(["runs", "by", "mode"]):]
    assert main(["db", "--url", store_url, "downgrade", "base"]) == 0
    capsys.readouterr()
    assert main(["db", "--url", store_url, "status"]) == 2
    assert "skillmine db upgrade" in capsys.readouterr().err
