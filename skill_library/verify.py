"""Whole-library integrity check: LATEST, every manifest up to it, every skill version file, and the release's
signature (who signed, and whether the key is trusted: see ``signing``)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from . import signing, store
from .document import sha256_hex, validate_skill
from .errors import IntegrityError


@dataclass
class VerifyReport:
    """Errors make the library unusable or untrustworthy; warnings are leftovers of crashed publishes."""

    location: str
    release: int | None = None
    manifests_checked: int = 0
    skill_files_checked: int = 0
    signature: str | None = None  # "signed by ... (key ...), a trusted key", "not signed", ...
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def _check_skill_file(source: store.Source, name: str, version_entry: dict[str, Any]) -> list[str]:
    rel = version_entry["file"]
    try:
        doc = store.read_skill(source, version_entry, name)
    except IntegrityError as exc:
        return [str(exc)]
    problems = [f"{source.display(rel)}: {p}" for p in validate_skill(doc)]
    if rel != store.skill_path(name, doc["version"], doc["content_hash"]):
        problems.append(f"{source.display(rel)}: file name does not match version and content hash")
    return problems


def check_release_signature(report: VerifyReport, source: store.Source, release: int, manifest_hash: str,
                            trusted: str | None) -> None:
    """Add the release signature's description to ``report``, and an error when it is invalid, or missing or not
    trusted while trusted keys are configured (``trusted``, default ``$SKILLMINE_TRUSTED_KEYS``)."""
    try:
        keys = signing.trusted_keys(trusted)
        check = signing.check_signature(source, release, manifest_hash, keys)
    except signing.SigningError as exc:
        report.errors.append(str(exc))
        return
    except ImportError:  # only reached when there is a signature to check
        report.errors.append("cannot check the release signature: the cryptography package is not installed")
        return
    report.signature = check.describe()
    where = source.display(store.signature_path(release))
    if check.signed and not check.valid:
        report.errors.append(f"release {release} {check.describe()}")
    elif keys and not check.signed:
        report.errors.append(f"{where}: missing; release {release} is not signed and trusted keys are configured")
    elif check.trusted is False:
        report.errors.append(f"{where}: {check.describe()}")


def verify_source(source: store.Source, release: int | None = None, location: str | None = None,
                  trusted: str | None = None) -> VerifyReport:
    """Verify ``source`` up to ``release`` (default: the one LATEST points at); ``trusted`` lists trusted public
    keys (default ``$SKILLMINE_TRUSTED_KEYS``)."""
    report = VerifyReport(location or source.display(""))
    try:
        pointer = store.read_latest(source)
    except IntegrityError as exc:
        report.errors.append(str(exc))
        return report
    if pointer is None:
        report.errors.append(f"{source.display(store.LATEST)}: missing; the library has no release")
        return report
    report.release = last = release or pointer["release"]
    referenced = {store.LATEST}
    previous_hash = None
    for number in range(1, last + 1):
        referenced.update((store.manifest_path(number), store.signature_path(number)))
        expected = pointer["manifest_hash"] if number == pointer["release"] else None
        try:
            manifest = store.read_manifest(source, number, expected)
        except IntegrityError as exc:
            report.errors.append(str(exc))
            previous_hash = None
            continue
        report.manifests_checked += 1
        if previous_hash is not None and manifest["previous_manifest_hash"] != previous_hash:
            report.errors.append(f"{source.display(store.manifest_path(number))}: previous_manifest_hash does not "
                                 f"match release {number - 1}")
        previous_hash = manifest["manifest_hash"]
        for name, entry in manifest["skills"].items():
            if not entry["versions"] or entry["version"] != entry["versions"][-1]["version"]:
                report.errors.append(f"{source.display(store.manifest_path(number))}: skill {name} current "
                                     "version is not its last published version")
            for version_entry in entry["versions"]:
                if version_entry["file"] not in referenced:
                    referenced.add(version_entry["file"])
                    report.skill_files_checked += 1
                    report.errors += _check_skill_file(source, name, version_entry)
    if previous_hash is not None:
        check_release_signature(report, source, last, previous_hash, trusted)
    if last == pointer["release"]:
        for rel in source.files("skills") + source.files("releases"):
            if rel.endswith(store.TEMP_SUFFIX):
                report.warnings.append(f"{source.display(rel)}: temporary file left by an interrupted publish")
            elif rel not in referenced:
                report.warnings.append(f"{source.display(rel)}: not part of any release (interrupted publish)")
    return report


def quick_check(source: store.Source, release: int, manifest: dict[str, Any]) -> list[str]:
    """The cheap part of ``verify`` for listing and searching: the current version file of every skill matches
    the sha256 its manifest records, and the release's signature holds (and is trusted, when keys are configured).
    LATEST and the manifest were already checked when the library was opened."""
    problems = []
    for name, entry in manifest["skills"].items():
        version = entry["versions"][-1]
        try:
            data = source.read(version["file"])
        except IntegrityError as exc:
            problems.append(str(exc))
            continue
        if sha256_hex(data) != version["sha256"]:
            problems.append(f"{source.display(version['file'])}: skill {name} does not match the sha256 in the "
                            "release manifest")
    report = VerifyReport(source.display(""))
    check_release_signature(report, source, release, manifest["manifest_hash"], None)
    return problems + report.errors


def verify(path: str | os.PathLike[str], *, trusted: str | None = None) -> VerifyReport:
    """Verify the library directory or bundle at ``path`` (``trusted``: see ``verify_source``)."""
    return verify_source(store.open_source(path), location=str(path), trusted=trusted)
