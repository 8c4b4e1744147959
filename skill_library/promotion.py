"""Replay verification records: which published skill versions passed replay (``active``) and which stay
``candidate``, with their replay statistics.

A version has no record until it is replayed, and counts as a ``candidate`` until then. Records live beside the
releases, one JSON file per skill (``<library>/replays/<name>.json``, written atomically), so recording a replay
never rewrites an immutable published document. Stdlib only (with ``store``), like the rest of the consumer side.

What consumers serve (:func:`served_check`): a library without any replay record serves every skill (nothing was
verified there, and libraries published before verification keep working); once it has one, verification is in use
and only versions that passed replay are served, candidates only when asked. A bundle carries no replay records.
"""

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import store

ACTIVE, CANDIDATE = "active", "candidate"
FOLDER = "replays"


def _path(library: str | os.PathLike[str], name: str) -> Path:
    return Path(library) / FOLDER / f"{name}.json"


def replay_records(library: str | os.PathLike[str], name: str) -> dict[str, dict[str, Any]]:
    """Version -> its replay record (``status``, ``statistics``, ``replayed_at``) for one skill ({} when none)."""
    path = _path(library, name)
    if not path.is_file():
        return {}
    return dict(json.loads(path.read_text(encoding="utf-8")).get("versions") or {})


def status(library: str | os.PathLike[str], name: str, version: str) -> str:
    """``active`` once the version passed replay, else ``candidate``."""
    return str(replay_records(library, name).get(version, {}).get("status") or CANDIDATE)


def record_replays(library: str | os.PathLike[str], name: str, version: str, statistics: dict[str, Any],
                   new_status: str) -> dict[str, Any]:
    """Store one version's replay statistics and status (replacing an earlier record of that version)."""
    if new_status not in (ACTIVE, CANDIDATE):
        raise ValueError(f"status must be {ACTIVE!r} or {CANDIDATE!r}, got {new_status!r}")
    versions = replay_records(library, name)
    record = {"status": new_status, "statistics": statistics, "replayed_at": datetime.now(UTC).isoformat()}
    versions[version] = record
    data = json.dumps({"name": name, "versions": versions}, indent=1, sort_keys=True).encode("utf-8")
    store.write_atomic(Path(library), f"{FOLDER}/{name}.json", data)
    return record


def verifying(library: str | os.PathLike[str]) -> bool:
    """Whether replay verification is in use in ``library``: it holds at least one replay record."""
    folder = Path(library) / FOLDER
    return folder.is_dir() and any(folder.glob("*.json"))


def served(verifies: bool, replay_status: str) -> bool:
    """The rule in the module docstring, for a version whose replay status is already known."""
    return not verifies or replay_status == ACTIVE


def served_check(library: str | os.PathLike[str]) -> Callable[[str, str], bool]:
    """``(name, version) -> whether consumers serve that version`` by the rule in the module docstring (whether
    the library verifies is read once, each version's record when asked)."""
    verifies = verifying(library)
    if not verifies:
        return lambda name, version: True
    return lambda name, version: served(verifies, status(library, name, version))
