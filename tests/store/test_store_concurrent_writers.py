"""Several processes' writers creating the same new session at the same moment must all succeed."""

import threading
import uuid

from sqlalchemy import func, select

from capture.store.capture_store import Batch, CaptureStore
from capture.store.db import make_engine
from capture.store.models import Session, WorkflowRun


def test_concurrent_writers_share_a_new_session(store: CaptureStore) -> None:
    session_id = f"shared-{uuid.uuid4().hex[:12]}"
    url = store.engine.url.render_as_string(hide_password=False)
    writers = [CaptureStore(make_engine(url)) for _ in range(6)]
    barrier = threading.Barrier(len(writers))
    errors: list[BaseException] = []
    run_ids = [str(uuid.uuid4()) for _ in writers]

    def write(writer: CaptureStore, run_id: str) -> None:
        try:
            barrier.wait(timeout=30)
            writer.write_batch(Batch(events=[{"run_id": run_id, "session_id": session_id,
                                              "event_type": "agent_call", "agent_name": "engineer"}]))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=pair) for pair in zip(writers, run_ids, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    with store.engine.connect() as conn:
        sessions = conn.execute(select(func.count()).select_from(Session.__table__)
                                .where(Session.__table__.c.id == session_id)).scalar_one()
        runs = conn.execute(select(func.count()).select_from(WorkflowRun.__table__)
                            .where(WorkflowRun.__table__.c.session_id == session_id)).scalar_one()
    assert (sessions, runs) == (1, len(writers))
