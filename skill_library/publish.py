"""Publishing mined candidates as a new immutable release.

Under the library's exclusive lock: read the current release, match candidates to existing
skills (``identity``), give each a name, id and version (``versioning``), deprecate existing
skills no candidate matched, write the new skill files, then the manifest, then LATEST. When no
skill changed the publish is a no-op and the current release is returned.
"""

from __future__ import annotations

import copy
import datetime as dt
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import identity, semver, signing, store
from .document import check_skill, seal, sha256_hex, summary, with_defaults
from .errors import SkillValidationError
from .versioning import bump_level

_PLACEHOLDER_ID = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class SkillOutcome:
    """What one publish did to one skill."""

    name: str
    outcome: str  # new | major | minor | patch | unchanged | deprecated
    version: str
    previous_version: str | None = None
    candidate_index: int | None = None  # position in the candidate list; None for deprecations


@dataclass(frozen=True)
class PublishResult:
    """The release a publish produced (or, for a no-op, the release already in force)."""

    release: int
    created: bool
    outcomes: list[SkillOutcome] = field(default_factory=list)

    def outcome(self, name: str) -> SkillOutcome:
        return next(o for o in self.outcomes if o.name == name)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _prepare(index: int, candidate: Any, pipeline_run_id: str | None, watermark: Any) -> dict[str, Any]:
    """Defaults, run provenance and a placeholder identity; validated so errors name the candidate."""
    subject = f"candidate[{index}]"
    if not isinstance(candidate, dict) or not isinstance(candidate.get("name"), str):
        raise SkillValidationError(subject, ["name: a candidate must be an object with a string name"])
    for reserved in ("id", "version", "content_hash"):
        if reserved in candidate:
            raise SkillValidationError(f"{subject} ({candidate['name']!r})",
                                       [f"{reserved}: assigned by the library, must not be given"])
    doc = with_defaults(candidate)
    provenance = doc.get("provenance")
    if isinstance(provenance, dict):
        if pipeline_run_id is not None:
            provenance["pipeline_run_id"] = pipeline_run_id
        if watermark is not None:
            provenance["source_watermark"] = watermark
    check_skill(seal(dict(doc), name=identity.slugify(doc["name"]), skill_id=_PLACEHOLDER_ID, version="0.0.0"),
                f"{subject} ({candidate['name']!r})")
    return doc


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _plan(prepared: list[dict[str, Any]], current: dict[str, dict[str, Any]]) -> tuple[
        list[dict[str, Any]], list[SkillOutcome]]:
    """New documents to store and the outcome for every candidate and existing skill."""
    existing = list(current.values())
    matches = identity.match(prepared, existing)
    taken = set(current)
    new_docs, outcomes = [], []
    for ci, doc in enumerate(prepared):
        if ci in matches:
            old = existing[matches[ci]]
            seal(doc, name=old["name"], skill_id=old["id"], version=old["version"])
            if doc["content_hash"] == old["content_hash"]:
                outcomes.append(SkillOutcome(old["name"], "unchanged", old["version"], old["version"], ci))
                continue
            level = bump_level(old, doc)
            doc["version"] = semver.bump(old["version"], level)
            outcomes.append(SkillOutcome(old["name"], level, doc["version"], old["version"], ci))
        else:
            name = identity.unique_name(doc["name"], taken)
            taken.add(name)
            seal(doc, name=name, skill_id=identity.skill_id(name), version="1.0.0")
            outcomes.append(SkillOutcome(name, "new", "1.0.0", None, ci))
        new_docs.append(doc)
    matched = set(matches.values())
    for ej, old in enumerate(existing):
        if ej not in matched and old["status"] == "active":
            doc = copy.deepcopy(old)
            doc["status"] = "deprecated"
            seal(doc, name=old["name"], skill_id=old["id"], version=semver.bump(old["version"], "patch"))
            new_docs.append(doc)
            outcomes.append(SkillOutcome(old["name"], "deprecated", doc["version"], old["version"]))
    return new_docs, outcomes


def publish(library_path: str | os.PathLike[str], candidate_skills: list[dict[str, Any]], *,
            pipeline_run_id: str | None = None, source_watermark: str | int | None = None,
            signing_key: signing.SigningKey | None = None) -> PublishResult:
    """Publish mined candidates as the next release of the library at ``library_path``.

    The release is signed with ``signing_key``, else with the key ``$SKILLMINE_SIGNING_KEY`` names (if set).

    ``candidate_skills`` are ``CandidateSkill`` dicts (no id/version/hash). Returns the release
    number and one ``SkillOutcome`` per candidate and per newly deprecated skill. Identical
    content is a no-op (``created`` is False, no file is written). Raises
    ``SkillValidationError`` naming the candidate and field before anything is written.
    """
    prepared = [_prepare(i, c, pipeline_run_id, source_watermark) for i, c in enumerate(candidate_skills)]
    key = signing_key or signing.configured_key()
    root = Path(library_path)
    with store.locked(root):
        store.remove_stale_temp_files(root)
        source = store.DirSource(root)
        pointer = store.read_latest(source)
        manifest = store.read_manifest(source, pointer["release"], pointer["manifest_hash"]) if pointer else None
        entries = manifest["skills"] if manifest else {}
        current = {name: store.read_skill(source, e["versions"][-1], name) for name, e in entries.items()}
        new_docs, outcomes = _plan(prepared, current)
        release = pointer["release"] if pointer else 0
        if not new_docs:
            return PublishResult(release, False, outcomes)

        entries = copy.deepcopy(entries)
        for doc in new_docs:
            data = store.skill_file_bytes(doc)
            rel = store.skill_path(doc["name"], doc["version"], doc["content_hash"])
            store.write_atomic(root, rel, data)
            entry = entries.setdefault(doc["name"], {"id": doc["id"], "versions": []})
            entry.update(version=doc["version"], status=doc["status"], summary=summary(doc))
            entry["versions"].append({"version": doc["version"], "hash": doc["content_hash"], "file": rel,
                                      "sha256": sha256_hex(data), "status": doc["status"]})
        new_manifest = {
            "format": store.MANIFEST_FORMAT, "release": release + 1, "created_at": _now(),
            "previous_manifest_hash": pointer["manifest_hash"] if pointer else None,
            "pipeline_run_id": pipeline_run_id, "source_watermark": source_watermark,
            "changes": [{"name": o.name, "outcome": o.outcome, "version": o.version,
                         "previous_version": o.previous_version} for o in outcomes if o.outcome != "unchanged"],
            "skills": entries,
        }
        manifest_hash = store.write_manifest(root, new_manifest)
        if key is not None:
            signing.write_signature(root, key, release + 1, manifest_hash)
        store.write_latest(root, release + 1, manifest_hash)
    return PublishResult(release + 1, True, outcomes)
