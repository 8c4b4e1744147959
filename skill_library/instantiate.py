"""Turn a skill plus caller parameters into a concrete plan, safely.

Parameters are type-checked against their JSON Schema type (and enum). Placeholders are filled by
one pass of a regular expression over the *template*: a value is inserted as literal text and is
never parsed, formatted or evaluated, so values such as ``{__import__('os')}``, ``${x}`` or
``{{x}}`` come out exactly as given. In templates ``{{`` and ``}}`` stand for literal braces.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .errors import ParameterError
from .values import TEMPLATE_TOKEN, json_type, placeholders, type_error


def as_text(value: Any) -> str:
    """How a parameter value appears in task text: strings verbatim, everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def render(template: str, values: Mapping[str, Any]) -> str:
    """Fill ``{name}`` placeholders in one pass; the inserted text is never re-scanned."""
    def substitute(match: Any) -> str:
        token = match[0]
        if token in ("{{", "}}"):
            return token[0]
        return as_text(values[match[1]])

    return TEMPLATE_TOKEN.sub(substitute, template)


def resolve(doc: dict[str, Any], params: Any) -> dict[str, Any]:
    """Check ``params`` against the skill's parameters and fill defaults; raise ``ParameterError``."""
    name = f"{doc['name']} {doc['version']}"
    if not isinstance(params, Mapping):
        raise ParameterError(f"parameters for skill {name} must be an object, got {json_type(params)}")
    spec = doc["parameters"]
    problems = [f"unknown parameter {key!r}" for key in params if key not in spec]
    values: dict[str, Any] = {}
    for pname, pspec in spec.items():
        if pname in params:
            value = params[pname]
            if problem := type_error(value, pspec["type"]):
                problems.append(f"parameter {pname!r}: {problem}")
            elif "enum" in pspec and value not in pspec["enum"]:
                problems.append(f"parameter {pname!r}: {value!r} is not one of {pspec['enum']!r}")
            else:
                values[pname] = value
        elif "default" in pspec:
            values[pname] = pspec["default"]
        elif pspec["required"]:
            problems.append(f"missing required parameter {pname!r} ({pspec['type']})")
    texts = [doc["task_template"]] + [s.get("description", "") for s in doc["steps"]]
    problems += [f"parameter {p!r} has no default and is needed by the task text" for p in
                 dict.fromkeys(p for text in texts for p in placeholders(text))
                 if p not in values and p not in params and not spec[p]["required"]]
    if problems:
        known = ", ".join(spec) or "none"
        raise ParameterError(f"skill {name}: " + "; ".join(problems) + f" (parameters: {known})")
    return values


def instantiate(doc: dict[str, Any], params: Any) -> dict[str, Any]:
    """A concrete plan: the filled task text and the ordered steps with their markers and outputs."""
    values = resolve(doc, params)
    steps = []
    for index, step in enumerate(doc["steps"]):
        planned = {"index": index, "agent": step["agent"], "action": step["action"],
                   "tool": step.get("tool"), "optional": step.get("optional", False)}
        if "repeat" in step:
            planned["repeat"] = step["repeat"]
        if "description" in step:
            planned["task"] = render(step["description"], values)
        planned["expected_outputs"] = step.get("expected_outputs", [])
        steps.append(planned)
    return {"skill": doc["name"], "id": doc["id"], "version": doc["version"], "content_hash": doc["content_hash"],
            "task": render(doc["task_template"], values), "parameters": values, "steps": steps}
