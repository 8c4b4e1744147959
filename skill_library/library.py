"""The read side: open a library (directory or exported bundle) at a release and query it.

Opening reads only LATEST and one manifest (both hash-checked); skill files are read, verified
against the manifest's sha256 and cached on first use; the search index is built on first search.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from . import promotion, semver, store
from .agent_skills import AgentSkillsExport, export_agent_skills
from .bundle import export_bundle
from .document import validate_skill
from .errors import LibraryNotFoundError, SkillNotFoundError
from .instantiate import instantiate
from .query import SearchHit, SearchIndex
from .verify import VerifyReport, verify_source
from .versioning import diff_documents


class Library:
    """One release of a skill library; obtain it with ``open_library``."""

    def __init__(self, source: store.Source, location: str, release: int | None = None):
        self.source = source
        self.location = location
        pointer = store.read_latest(source)
        if pointer is None:
            raise LibraryNotFoundError(f"{location}: no release has been published (LATEST is missing)")
        self.latest_release: int = pointer["release"]
        if release is None or release == self.latest_release:
            self.manifest = store.read_manifest(source, self.latest_release, pointer["manifest_hash"])
        elif 1 <= release < self.latest_release:
            self.manifest = store.read_manifest(source, release)
        else:
            raise LibraryNotFoundError(f"{location}: no release {release} (latest is {self.latest_release})")
        self.release: int = self.manifest["release"]
        self._docs: dict[tuple[str, str], dict[str, Any]] = {}
        self._index: SearchIndex | None = None

    def __repr__(self) -> str:
        return f"Library({self.location!r}, release={self.release})"

    # -- catalogue ---------------------------------------------------------------------------
    def releases(self) -> list[dict[str, Any]]:
        """Every release up to this one: number, time, pipeline run, watermark, size and changes."""
        out = []
        for number in range(1, self.release + 1):
            m = self.manifest if number == self.release else store.read_manifest(self.source, number)
            out.append({"release": number, "created_at": m["created_at"], "pipeline_run_id": m["pipeline_run_id"],
                        "source_watermark": m["source_watermark"], "skills": len(m["skills"]),
                        "changes": m["changes"], "manifest_hash": m["manifest_hash"]})
        return out

    def skills(self, *, include_deprecated: bool = True) -> list[dict[str, Any]]:
        """One row per skill: name, id, current version, status and its summary fields."""
        return [{"name": name, "id": e["id"], "version": e["version"], "status": e["status"], **e["summary"]}
                for name, e in sorted(self.manifest["skills"].items())
                if include_deprecated or e["status"] == "active"]

    def _entry(self, name: str) -> dict[str, Any]:
        try:
            return self.manifest["skills"][name]
        except KeyError:
            raise SkillNotFoundError(f"no skill named {name!r} in {self.location} release {self.release}") from None

    def versions(self, name: str) -> list[str]:
        """Published versions of a skill, oldest first."""
        return [v["version"] for v in self._entry(name)["versions"]]

    def get(self, name: str, version: str = "latest") -> dict[str, Any]:
        """The skill document for the highest version matching ``version`` (see ``semver``).

        Returns a copy: callers may change it without affecting the library's cache.
        """
        return copy.deepcopy(self._document(name, version))

    def _document(self, name: str, version: str) -> dict[str, Any]:
        """The cached, verified document (shared: never hand it out)."""
        entry = self._entry(name)
        chosen = semver.best_match(self.versions(name), version)
        if chosen is None:
            raise SkillNotFoundError(f"skill {name!r} has no version matching {version!r} "
                                     f"(published: {', '.join(self.versions(name))})")
        key = (name, chosen)
        if key not in self._docs:
            version_entry = next(v for v in entry["versions"] if v["version"] == chosen)
            self._docs[key] = store.read_skill(self.source, version_entry, name)
        return self._docs[key]

    # -- queries -----------------------------------------------------------------------------
    def search(self, query: str, *, limit: int = 10, include_deprecated: bool = False,
               include_candidates: bool = False) -> list[SearchHit]:
        """Skills matching the words of ``query`` (stemmed, with synonyms), best first: only skills whose current
        version is served (``promotion.served_check``: passed replay, or the library verifies none) unless
        ``include_candidates``."""
        if self._index is None:
            self._index = SearchIndex(self.manifest["skills"])
        keep = None if include_candidates else promotion.served_check(self.location)
        return self._index.search(query, limit=limit, include_deprecated=include_deprecated, keep=keep)

    def serves(self, name: str, *, include_candidates: bool = False) -> bool:
        """Whether consumers are given this skill's current version by the replay rule (it passed replay, or the
        library verifies none, see ``promotion``), or at all when ``include_candidates``."""
        entry = self._entry(name)
        return include_candidates or promotion.served_check(self.location)(name, entry["version"])

    def diff(self, name: str, v1: str, v2: str = "latest") -> dict[str, Any]:
        """Structured differences between two versions (each may be a range) of a skill."""
        return {"name": name, **diff_documents(self._document(name, v1), self._document(name, v2))}

    def instantiate(self, name: str, params: dict[str, Any], *, version: str = "latest") -> dict[str, Any]:
        """A concrete plan for a skill with ``params`` (raises ``ParameterError`` on bad input)."""
        return instantiate(self._document(name, version), params)

    def validate(self, name: str, version: str = "latest") -> list[str]:
        """Schema and content-hash problems of one stored skill version (empty when valid)."""
        return validate_skill(self._document(name, version))

    def verify(self) -> VerifyReport:
        """Check every file of the library up to this release; returns a ``VerifyReport``."""
        return verify_source(self.source, self.release)

    def export(self, destination: str | os.PathLike[str]) -> Path:
        """Write this release (and its history) as a single ``.zip`` bundle."""
        return export_bundle(self, destination)

    def export_agent_skills(self, destination: str | os.PathLike[str], *,
                            include_candidates: bool = False) -> AgentSkillsExport:
        """Write this release's served skills (candidates too when asked) as Agent Skills folders (``SKILL.md``,
        references, evals)."""
        return export_agent_skills(self, destination, include_candidates=include_candidates)


def open_library(path: str | os.PathLike[str], *, release: int | None = None) -> Library:
    """Open a library directory or an exported ``.zip`` bundle, at its latest or a given release."""
    return Library(store.open_source(path), str(Path(path)), release)
