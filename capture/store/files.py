"""Registering a file produced during a run: path relative to the run's work directory when ``root`` is given,
size, sha256, generating agent, event and node, written through :meth:`CaptureStore.write_batch`."""

from pathlib import Path
from typing import Any

from capture.core.files import classify_file, file_id, sha256_file, stored_path
from capture.store.capture_store import Batch
from capture.store.records import BadRecord


def register_file(store: Any, session_id: str, run_id: str, path: str | Path, *, root: str | Path | None = None,
                  event_id: str | None = None, node_id: str | None = None, agent: str | None = None,
                  step_id: str | None = None, file_type: str | None = None, workflow_phase: str | None = None,
                  is_final_output: bool = False, priority: str | None = None,
                  generating_code_hash: str | None = None, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Hash and record a file of a run; returns the stored row (idempotent per run and path).

    ``path`` may be relative to ``root`` (the run's work directory); the file must exist.
    """
    real = Path(path)
    if root is not None and not real.is_absolute():
        real = Path(root) / real
    if not real.is_file():
        raise BadRecord(f"file {str(path)!r}: not found (root {str(root)!r})" if root else
                        f"file {str(path)!r}: not found")
    rel = stored_path(real, root)
    row = {
        "id": file_id(run_id, rel), "run_id": run_id, "session_id": session_id, "step_id": step_id,
        "event_id": event_id, "node_id": node_id, "file_path": rel,
        "file_type": file_type or classify_file(rel), "size_bytes": real.stat().st_size,
        "workflow_phase": workflow_phase, "is_final_output": is_final_output,
        "content_hash": sha256_file(real), "generating_agent": agent, "priority": priority,
        "generating_code_hash": generating_code_hash, "meta": meta,
    }
    result = store.write_batch(Batch(files=[row]))
    if result.repaired.get("artefact_events_unlinked"):
        row["event_id"] = None
    if result.repaired.get("artefact_nodes_unlinked"):
        row["node_id"] = None
    return row
