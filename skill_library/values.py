"""Parameter values and template tokens: the vocabulary that validation and instantiation share.

A leaf module (imports nothing from the package) so that ``document`` (which validates defaults and
placeholders) and ``instantiate`` (which checks and fills them) both depend on it, not on each other.
In templates ``{name}`` is a placeholder and ``{{`` / ``}}`` stand for literal braces.
"""

from __future__ import annotations

import re
from typing import Any

TEMPLATE_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")

_PYTHON_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str, "integer": int, "number": (int, float), "boolean": bool,
    "array": list, "object": dict, "null": type(None),
}


def placeholders(template: str) -> list[str]:
    """Placeholder names in a task template, in order of first appearance."""
    return list(dict.fromkeys(m[1] for m in TEMPLATE_TOKEN.finditer(template) if m[1]))


def json_type(value: Any) -> str:
    """The JSON Schema type name of a Python value (``bool`` is not a number)."""
    if isinstance(value, bool):
        return "boolean"
    for name in ("null", "string", "integer", "number", "array", "object"):
        if isinstance(value, _PYTHON_TYPES[name]):
            return name
    return type(value).__name__


def type_error(value: Any, expected: str) -> str | None:
    """``None`` when ``value`` has JSON type ``expected``, else a message saying what it is."""
    actual = json_type(value)
    if actual == expected or (expected == "number" and actual == "integer"):
        return None
    return f"expected {expected}, got {actual} {value!r}"
