"""The skill document: its typed shape, canonical form, content hash and validation.

A skill document is plain JSON (``dict``); the TypedDicts below describe it for type checkers and
readers, and ``skill.schema.json`` (shipped with the package) is the published contract. The
content hash identifies *what a skill is*: it covers every field except the hash itself and the
volatile fields that change with every mining run without changing the skill (see
``VOLATILE_FIELDS``); the library compares hashes to decide that a re-publish is a no-op.
"""

from __future__ import annotations

import copy
import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, NotRequired, TypedDict

from .errors import SkillValidationError
from .values import placeholders, type_error

SCHEMA_TAG = "skillmine.skill/1"

# Dotted paths left out of ``content_hash``: assigned by the library (version) or different on
# every mining run even when the mined skill is the same (when, by which run, up to which event).
VOLATILE_FIELDS: tuple[str, ...] = (
    "content_hash",
    "version",
    "provenance.extracted_at",
    "provenance.pipeline_run_id",
    "provenance.source_watermark",
)


class ExpectedOutput(TypedDict):
    type: str  # e.g. "plot", "table", "file", "text"
    format: NotRequired[str]  # e.g. "png", "csv"
    description: NotRequired[str]


class Repeat(TypedDict):
    min: int
    max: int
    until: NotRequired[str]  # e.g. "success"


class Step(TypedDict):
    agent: str
    action: str
    tool: NotRequired[str | None]
    description: NotRequired[str]  # may contain {parameter} placeholders
    optional: NotRequired[bool]
    repeat: NotRequired[Repeat]
    expected_outputs: NotRequired[list[ExpectedOutput]]


class Parameter(TypedDict):
    type: Literal["string", "integer", "number", "boolean", "array", "object", "null"]
    required: bool
    description: NotRequired[str]
    default: NotRequired[Any]
    examples: NotRequired[list[Any]]
    enum: NotRequired[list[Any]]


class Statistics(TypedDict, total=False):
    support: int  # required
    success_rate: float  # required
    success_wilson: list[float]  # [low, high] 95% Wilson interval
    repeatability: float
    duration_s: dict[str, float]  # p50 / p90 / p95 / max
    cost_usd: dict[str, float]
    retries: dict[str, float]  # mean / max
    failure_hotspots: list[dict[str, Any]]  # {step, failure_rate, agent?, error?}


class Provenance(TypedDict, total=False):
    source_runs: list[str]  # required
    cluster_id: str | int | None
    pipeline_run_id: str | None
    extracted_at: str | None
    source_watermark: str | int | None
    extraction_method: str


class CandidateSkill(TypedDict):
    """What the miner hands to ``publish``: a skill without library-assigned identity."""

    name: str  # proposed name; the library slugifies and de-duplicates it
    description: str
    task_template: str
    steps: list[Step]
    statistics: Statistics
    provenance: Provenance
    parameters: NotRequired[dict[str, Parameter]]
    title: NotRequired[str]
    category: NotRequired[str]
    tags: NotRequired[list[str]]
    preconditions: NotRequired[list[str]]
    status: NotRequired[Literal["active", "deprecated"]]


class SkillDocument(CandidateSkill):
    """One published, immutable skill version."""

    schema: str
    id: str
    version: str
    content_hash: str


def canonical_bytes(value: Any) -> bytes:
    """Canonical JSON: sorted keys, compact separators, UTF-8; the input to every content hash."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def without_fields(doc: dict[str, Any], dotted_paths: tuple[str, ...]) -> dict[str, Any]:
    """A copy of ``doc`` with the dotted paths removed (only the containers on the paths are copied)."""
    out = dict(doc)
    for path in dotted_paths:
        *parents, leaf = path.split(".")
        node = out
        for key in parents:
            child = node.get(key)
            if not isinstance(child, dict):
                break
            node[key] = node = dict(child)
        else:
            node.pop(leaf, None)
    return out


def content_hash(doc: dict[str, Any]) -> str:
    """sha256 of the canonical form of ``doc`` without the hash and the volatile fields."""
    return sha256_hex(canonical_bytes(without_fields(doc, VOLATILE_FIELDS)))


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The published JSON Schema of a skill document."""
    return json.loads(Path(__file__).with_name("skill.schema.json").read_text("utf-8"))


@lru_cache(maxsize=1)
def _validator() -> Any:
    import jsonschema  # imported lazily: consumers that only read a library never pay for it

    return jsonschema.Draft202012Validator(schema())


def _field(path: Any) -> str:
    """Render a jsonschema path deque as ``steps[0].agent``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"


def validate_skill(doc: Any) -> list[str]:
    """Problems with ``doc`` as ``field: message`` strings; an empty list means valid.

    Beyond the schema: placeholders of the task template and of step descriptions must be declared
    parameters, defaults and enum members must have the parameter's type, and ``content_hash``
    must match the content.
    """
    if not isinstance(doc, dict):
        return [f"(document): expected a JSON object, got {type(doc).__name__}"]
    errors = sorted(
        (f"{_field(e.absolute_path)}: {e.message}" for e in _validator().iter_errors(doc)),
    )
    if errors:
        return errors
    params = doc["parameters"]
    texts = [("task_template", doc["task_template"])]
    texts += [(f"steps[{i}].description", s["description"]) for i, s in enumerate(doc["steps"]) if "description" in s]
    for field, text in texts:
        errors += [f"{field}: placeholder {{{p}}} is not a declared parameter" for p in placeholders(text)
                   if p not in params]
    for pname, spec in params.items():
        if "default" in spec and (problem := type_error(spec["default"], spec["type"])):
            errors.append(f"parameters.{pname}.default: {problem}")
        for i, member in enumerate(spec.get("enum", [])):
            if problem := type_error(member, spec["type"]):
                errors.append(f"parameters.{pname}.enum[{i}]: {problem}")
    for i, step in enumerate(doc["steps"]):
        if "repeat" in step and step["repeat"]["min"] > step["repeat"]["max"]:
            errors.append(f"steps[{i}].repeat: min is greater than max")
    if doc["content_hash"] != content_hash(doc):
        errors.append("content_hash: does not match the document content")
    return errors


def check_skill(doc: Any, subject: str) -> None:
    """Raise ``SkillValidationError`` naming ``subject`` and each bad field when ``doc`` is invalid."""
    if errors := validate_skill(doc):
        raise SkillValidationError(subject, errors)


def with_defaults(candidate: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of a miner candidate with optional fields filled in (no identity yet)."""
    doc = copy.deepcopy(candidate)
    doc.setdefault("category", "general")
    doc.setdefault("tags", [])
    doc.setdefault("parameters", {})
    doc.setdefault("preconditions", [])
    doc.setdefault("status", "active")
    doc["schema"] = SCHEMA_TAG
    return doc


def seal(doc: dict[str, Any], *, name: str, skill_id: str, version: str) -> dict[str, Any]:
    """Give ``doc`` its identity and version and (re)compute its content hash, in place.

    A missing title defaults to the humanised final name, so it stays stable across re-mining.
    """
    doc.update(name=name, id=skill_id, version=version)
    doc.setdefault("title", name.replace("_", " ").capitalize())
    doc["content_hash"] = content_hash(doc)
    return doc


def output_types(doc: dict[str, Any]) -> list[str]:
    """Distinct output types and formats the skill's steps produce (e.g. ``plot``, ``png``)."""
    seen: dict[str, None] = {}
    for step in doc["steps"]:
        for out in step.get("expected_outputs", []):
            seen[out["type"]] = None
            if out.get("format"):
                seen[out["format"]] = None
    return list(seen)


def summary(doc: dict[str, Any]) -> dict[str, Any]:
    """The fields a release manifest keeps per skill so listing and search never open skill files."""
    return {
        "title": doc["title"],
        "description": doc["description"],
        "category": doc["category"],
        "tags": doc["tags"],
        "task_template": doc["task_template"],
        "agents": list(dict.fromkeys(s["agent"] for s in doc["steps"])),
        "tools": list(dict.fromkeys(s["tool"] for s in doc["steps"] if s.get("tool"))),
        "outputs": output_types(doc),
        "support": doc["statistics"]["support"],
        "success_rate": doc["statistics"]["success_rate"],
    }
