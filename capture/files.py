"""File registration: type classification as the reference does it, sha256 content hashes, provenance.

``register_file`` records a file produced during a run (path relative to the run's work directory when ``root``
is given, size, sha256, generating agent, event and node); ``file_provenance`` answers "which agent, event and
node generated this file?" by path or content hash.
"""

import hashlib
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import or_, select

from capture.queries import EVENTS, FILES, NODES, _in_session, engine_of, plain
from capture.records import BadRecord

# Stable ids: registering the same path of the same run twice updates one row.
FILE_ID_NAMESPACE = uuid.UUID("6f1c1f57-5d1e-4b8e-9a55-2f7c51e0b3a1")
HASH_CHUNK = 1 << 20

DATA_EXTENSIONS = frozenset({"csv", "tsv", "json", "jsonl", "pkl", "pickle", "npy", "npz", "parquet", "h5",
                             "hdf5", "hdf", "fits", "fit", "dat", "xlsx", "xls", "feather", "arrow", "nc",
                             "yaml", "yml", "xml", "mat", "db", "sqlite"})
PLOT_EXTENSIONS = frozenset({"png", "pdf", "svg", "jpg", "jpeg", "gif", "eps", "ps", "tif", "tiff", "bmp",
                             "webp"})
REPORT_EXTENSIONS = frozenset({"txt", "md", "html", "htm", "tex", "rst", "docx", "bib"})
CODE_EXTENSIONS = frozenset({"py", "sh", "bash", "ipynb", "r", "jl", "c", "h", "cpp", "hpp", "f90", "f",
                             "js", "ts", "java", "go", "rs", "sql", "toml", "cfg", "ini"})
LOG_EXTENSIONS = frozenset({"log", "out", "err"})
FILE_TYPES = ("plan", "code", "data", "plot", "report", "chat", "context", "log", "other")


def classify_file(path: str | Path) -> str:
    """The reference's file type: plan, report, code, chat, context by name/folder, else by extension."""
    posix = PurePosixPath(str(path).replace("\\", "/"))
    name = posix.name.lower()
    parts = {p.lower() for p in posix.parts[:-1]}
    if name.endswith("plan.json"):
        return "plan"
    if name.startswith(("cost_report", "timing_report")):
        return "report"
    if "codebase" in parts:
        return "code"
    if "chats" in parts:
        return "chat"
    if "context" in parts:
        return "context"
    ext = name.rsplit(".", 1)[-1] if "." in name else ""
    for kind, extensions in (("data", DATA_EXTENSIONS), ("plot", PLOT_EXTENSIONS), ("report", REPORT_EXTENSIONS),
                             ("code", CODE_EXTENSIONS), ("log", LOG_EXTENSIONS)):
        if ext in extensions:
            return kind
    return "other"


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's content, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def stored_path(path: str | Path, root: str | Path | None) -> str:
    """The path as stored: relative to ``root`` (POSIX separators) when inside it, else as given."""
    target = Path(path)
    if root is not None:
        base = Path(root)
        if not target.is_absolute():
            target = base / target
        try:
            return target.resolve().relative_to(base.resolve()).as_posix()
        except ValueError:
            pass
    return target.as_posix()


def file_id(run_id: str, path: str) -> str:
    """The stable id of a run's file."""
    return str(uuid.uuid5(FILE_ID_NAMESPACE, f"{run_id}:{path}"))


def register_file(store: Any, session_id: str, run_id: str, path: str | Path, *, root: str | Path | None = None,
                  event_id: str | None = None, node_id: str | None = None, agent: str | None = None,
                  step_id: str | None = None, file_type: str | None = None, workflow_phase: str | None = None,
                  is_final_output: bool = False, priority: str | None = None,
                  generating_code_hash: str | None = None, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Hash and record a file of a run; returns the stored row (idempotent per run and path).

    ``path`` may be relative to ``root`` (the run's work directory); the file must exist.
    """
    from capture.store import Batch  # local: store imports nothing from here

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


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def file_provenance(source: Any, session_id: str, *, path: str | None = None, content_hash: str | None = None,
                    run_id: str | None = None) -> list[dict[str, Any]]:
    """Which agent, event and node generated a file, by stored path (or a path ending in it) or sha256.

    One dict per matching file, oldest first: ``file`` (the row), ``agent`` (the file's generating agent, else
    the event's), ``event`` (id, type, subtype, agent, execution_order, timestamp) and ``node`` (id, short id,
    type, agent) — ``None`` when unlinked.
    """
    if not path and not content_hash:
        raise ValueError("file_provenance needs a path or a content hash")
    ev = EVENTS.alias("ev")
    nd = NODES.alias("nd")
    stmt = (select(FILES, ev.c.event_type.label("ev_type"), ev.c.event_subtype.label("ev_subtype"),
                   ev.c.agent_name.label("ev_agent"), ev.c.execution_order.label("ev_order"),
                   ev.c.timestamp.label("ev_timestamp"), ev.c.node_id.label("ev_node_id"),
                   nd.c.node_type.label("nd_type"), nd.c.agent.label("nd_agent"), nd.c.meta.label("nd_meta"),
                   nd.c.id.label("nd_id"))
            .outerjoin(ev, ev.c.id == FILES.c.event_id)
            .outerjoin(nd, nd.c.id == FILES.c.node_id)
            .where(_in_session(FILES, session_id)))
    if path:
        wanted = str(path).replace("\\", "/")
        stmt = stmt.where(or_(FILES.c.file_path == wanted,
                              FILES.c.file_path.like("%/" + _escape_like(wanted.lstrip("/")), escape="\\")))
    if content_hash:
        stmt = stmt.where(FILES.c.content_hash == content_hash.lower())
    if run_id:
        stmt = stmt.where(FILES.c.run_id == run_id)
    stmt = stmt.order_by(FILES.c.created_at, FILES.c.file_path)
    out = []
    with engine_of(source).connect() as conn:
        for row in conn.execute(stmt):
            m = row._mapping
            file_row = {c.name: plain(m[c]) for c in FILES.c}
            event = None if file_row["event_id"] is None else {
                "id": file_row["event_id"], "event_type": m["ev_type"], "event_subtype": m["ev_subtype"],
                "agent_name": m["ev_agent"], "execution_order": m["ev_order"],
                "timestamp": plain(m["ev_timestamp"])}
            node = None if m["nd_id"] is None else {
                "id": m["nd_id"], "short_id": (m["nd_meta"] or {}).get("id") if isinstance(m["nd_meta"], dict)
                else None, "node_type": m["nd_type"], "agent": m["nd_agent"]}
            out.append({"file": file_row, "agent": file_row["generating_agent"] or m["ev_agent"],
                        "event": event, "node": node})
    return out
