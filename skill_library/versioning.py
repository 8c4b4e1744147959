"""Structured differences between two skill versions and the semantic-version bump they imply.

Rules (highest wins):

* **major** – the steps (agent, action, tool, optional/repeat markers; adding or removing a step),
  the task template, or the parameter contract in a breaking way: a parameter removed, a required
  parameter added, an optional parameter made required, a type changed, enum values removed or an
  enum imposed.
* **minor** – additive or descriptive changes: optional parameter added, a required parameter made
  optional, parameter default/description/examples, enum widened or dropped, title, description,
  category, tags, preconditions, step descriptions and expected outputs.
* **patch** – statistics, provenance and status (deprecation) only.

Volatile fields (``document.VOLATILE_FIELDS``) never count as changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .document import VOLATILE_FIELDS, without_fields

LEVELS = ("unchanged", "patch", "minor", "major")
_MINOR_TOP = {"title", "description", "category", "tags", "preconditions"}
_PATCH_TOP = {"statistics", "provenance", "status"}
_MISSING = object()


def _walk(old: Any, new: Any, path: tuple) -> Iterator[tuple[tuple, Any, Any]]:
    """Yield ``(path, old, new)`` for each differing leaf; missing sides are ``_MISSING``."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(old.keys() | new.keys()):
            yield from _walk(old.get(key, _MISSING), new.get(key, _MISSING), path + (key,))
    elif (isinstance(old, list) and isinstance(new, list) and old != new
          and all(isinstance(x, dict) for x in old + new)):
        for i in range(max(len(old), len(new))):
            yield from _walk(old[i] if i < len(old) else _MISSING, new[i] if i < len(new) else _MISSING,
                             path + (i,))
    elif old != new:
        yield path, old, new


def _parameter_level(path: tuple, old: Any, new: Any) -> str:
    if len(path) == 2:  # a whole parameter added or removed
        if new is _MISSING:
            return "major"
        return "major" if old is _MISSING and new.get("required") else "minor"
    field = path[2]
    if field == "type":
        return "major"
    if field == "required":
        return "major" if new is True else "minor"
    if field == "enum":
        if new is _MISSING:
            return "minor"
        if old is _MISSING:
            return "major"
        return "major" if any(v not in new for v in old) else "minor"
    return "minor"


def level_of(path: tuple, old: Any, new: Any) -> str:
    """The bump level one leaf change implies."""
    top = path[0]
    if top in _PATCH_TOP:
        return "patch"
    if top in _MINOR_TOP:
        return "minor"
    if top == "parameters":
        return _parameter_level(path, old, new)
    if top == "steps" and len(path) >= 3 and path[2] in ("description", "expected_outputs"):
        return "minor"
    return "major"


def _path_text(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def diff_documents(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Structured diff: ``{"from", "to", "bump", "changes": [{path, change, old?, new?, bump}]}``."""
    changes = []
    for path, before, after in _walk(without_fields(old, VOLATILE_FIELDS), without_fields(new, VOLATILE_FIELDS), ()):
        change: dict[str, Any] = {"path": _path_text(path)}
        if before is _MISSING:
            change.update(change="added", new=after)
        elif after is _MISSING:
            change.update(change="removed", old=before)
        else:
            change.update(change="changed", old=before, new=after)
        change["bump"] = level_of(path, before, after)
        changes.append(change)
    bump = max((c["bump"] for c in changes), key=LEVELS.index, default="unchanged")
    return {"from": old.get("version"), "to": new.get("version"), "bump": bump, "changes": changes}


def bump_level(old: dict[str, Any], new: dict[str, Any]) -> str:
    """``unchanged``, ``patch``, ``minor`` or ``major`` for moving from ``old`` to ``new``."""
    return diff_documents(old, new)["bump"]
