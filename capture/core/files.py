"""Files as the reference sees them: type classification, sha256 content hashes, stored paths and stable ids.

Pure functions of a path (stdlib only), shared by the recorder, the store's :func:`register_file` and the
simulator; :mod:`capture.read.files` answers provenance questions.
"""

import hashlib
import uuid
from pathlib import Path, PurePosixPath

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
