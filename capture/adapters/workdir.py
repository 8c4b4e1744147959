"""Which files a code execution created or changed: (path, mtime_ns, size) snapshots of the work directory, and
which of them are AG2's own scripts rather than products."""

import os
import re
from pathlib import Path

Snapshot = dict[str, tuple[int, int]]
MAX_FILES = 20_000
# The scripts AG2 writes for each code block: Classic's executors ``tmp_code_<md5>.<ext>`` (new and legacy), v1's
# CodeAdapter ``ag2_<uuid4 hex>.<ext>`` (removed again after the run).
SCRIPT_NAME = re.compile(r"(tmp_code_[0-9a-f]{32}|ag2_[0-9a-f]{32})\.\w+")


def scan(root: str | Path | None) -> Snapshot:
    """``{relative path: (mtime_ns, size)}`` of the regular files under ``root`` (empty when it does not exist)."""
    out: Snapshot = {}
    if root is None:
        return out
    stack = [str(root)]
    while stack and len(out) < MAX_FILES:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    info = entry.stat(follow_symlinks=False)
                    out[os.path.relpath(entry.path, root)] = (info.st_mtime_ns, info.st_size)
            except OSError:
                continue
    return out


def changes(before: Snapshot, after: Snapshot) -> list[tuple[str, str]]:
    """``(relative path, "create" | "update" | "delete")`` between two snapshots, sorted by path."""
    out = [(path, "create" if path not in before else "update")
           for path, stamp in after.items() if before.get(path) != stamp]
    out += [(path, "delete") for path in before if path not in after]
    return sorted(out)


def script_files(created: list[tuple[str, str]]) -> list[str]:
    """The changed paths that are AG2's own temporary scripts (:data:`SCRIPT_NAME`): the execution's input, not its
    product. A block whose first line names its file (``# filename: x.py``) is saved on purpose and stays a file."""
    return [path for path, _ in created if SCRIPT_NAME.fullmatch(os.path.basename(path))]
