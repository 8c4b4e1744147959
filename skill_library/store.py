"""The on-disk layout of a library and the low-level, integrity-checked I/O on it.

Layout (everything below the library directory)::

    skills/<name>/<version>-<hash12>.json   one immutable file per published skill version
    releases/<NNNN>.json                    release manifest N (self-hashed, immutable)
    releases/<NNNN>.sig                     optional ed25519 signature of manifest N (see ``signing``)
    LATEST                                  {"release": N, "manifest_hash": ...}; swapped atomically
    .lock                                   flock target serialising publishers

A release manifest is a complete catalogue: for every skill ever published (active or
deprecated) it records the current version, a search summary, and every version so far with its
content hash, file and the sha256 of the file's bytes. Files are written to a temporary name in
the same directory, fsynced and renamed into place, so a reader sees either the old or the new
file; LATEST is written last, so a crash mid-publish leaves the previous release in force.
Readers go through a ``Source`` so that a directory and an exported bundle read the same way.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from .document import canonical_bytes, sha256_hex
from .errors import BundleError, IntegrityError, LibraryNotFoundError

LATEST = "LATEST"
LOCK = ".lock"
TEMP_SUFFIX = ".tmp"
MANIFEST_FORMAT = "skillmine.release/1"


def manifest_path(release: int) -> str:
    return f"releases/{release:04d}.json"


def signature_path(release: int) -> str:
    """Where release ``release``'s signature lives (see ``signing``); optional."""
    return f"releases/{release:04d}.sig"


def skill_path(name: str, version: str, content_hash: str) -> str:
    return f"skills/{name}/{version}-{content_hash[:12]}.json"


def skill_file_bytes(doc: dict[str, Any]) -> bytes:
    """How the library writes a JSON file (a skill version; an export's evals and manifest): indented sorted JSON,
    readable in a pager."""
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


class Source(Protocol):
    """Read access to a library's files, by path relative to the library root."""

    def read(self, rel: str) -> bytes:
        """The file's bytes; ``IntegrityError`` naming it when it is missing."""

    def exists(self, rel: str) -> bool:
        """Whether the file exists."""

    def files(self, prefix: str) -> list[str]:
        """Relative paths of the files under ``prefix``."""

    def display(self, rel: str) -> str:
        """The file's name for messages."""


class DirSource:
    """A library directory."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def read(self, rel: str) -> bytes:
        try:
            return (self.root / rel).read_bytes()
        except FileNotFoundError:
            raise IntegrityError(self.display(rel), "file is missing") from None

    def exists(self, rel: str) -> bool:
        return (self.root / rel).is_file()

    def files(self, prefix: str) -> list[str]:
        base = self.root / prefix
        return sorted(p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file())

    def display(self, rel: str) -> str:
        return str(self.root / rel)


# What a library holds, and nothing else: a bundle member outside this layout is refused, as is a path that
# would leave the library directory.
LAYOUT = re.compile(r"^(LATEST|releases/[0-9]{4,}\.(json|sig)|skills/[a-z][a-z0-9_]{0,79}/"
                    r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)-[0-9a-f]{12}\.json)$")
MAX_MEMBERS = 200_000  # 100,000 skill versions with their manifests
MAX_MEMBER_BYTES = 64 * 1024 * 1024  # a 1,000-skill manifest is ~0.8 MiB
MAX_TOTAL_BYTES = 2 * 1024 * 1024 * 1024
_SYMLINK = 0o120000
# What zipfile raises on a damaged archive besides OSError: bad headers and CRCs, corrupt deflate streams, members
# cut short, unsupported compression or encryption, inconsistent sizes.
ZIP_ERRORS: tuple[type[Exception], ...] = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError,
                                           RuntimeError, ValueError, struct.error)


def _refusal(info: zipfile.ZipInfo) -> str | None:
    """Why a bundle member cannot be part of a library (``None`` when it can)."""
    if (info.external_attr >> 16) & 0o170000 == _SYMLINK:
        return "is a symbolic link"
    if not LAYOUT.match(info.filename):
        parts = info.filename.replace("\\", "/").split("/")
        if info.filename.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
            return "would be written outside the library (absolute path or '..')"
        return "is not a file of a skill library's layout"
    if info.file_size > MAX_MEMBER_BYTES:
        return f"inflates to {info.file_size:,} bytes, more than the {MAX_MEMBER_BYTES:,} allowed per member"
    return None


class ZipSource:
    """An exported ``.zip`` bundle (see ``bundle``): members are read one by one, never all unpacked.

    Opening checks the central directory before anything is inflated: at most ``MAX_MEMBERS`` members of at most
    ``MAX_MEMBER_BYTES`` each (``MAX_TOTAL_BYTES`` together), every one a file of the library layout (no symbolic
    link, no absolute or ``..`` path); a ``BundleError`` names every member refused. Reads are bounded by the
    declared size (a member that inflates beyond it fails its CRC check).
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (*ZIP_ERRORS, OSError) as exc:
            raise BundleError(f"{self.path}: not a readable .zip bundle ({exc})") from None
        self._infos = {i.filename: i for i in self._zip.infolist() if not i.is_dir()}
        self._check_members()
        self._names = set(self._infos)

    def _check_members(self) -> None:
        infos = list(self._infos.values())
        if len(infos) > MAX_MEMBERS:
            raise BundleError(f"{self.path}: {len(infos):,} members, more than the {MAX_MEMBERS:,} a bundle may hold")
        refused = [f"{i.filename!r} {why}" for i in infos if (why := _refusal(i))]
        total = sum(i.file_size for i in infos)
        if total > MAX_TOTAL_BYTES:
            refused.append(f"all members together inflate to {total:,} bytes, more than {MAX_TOTAL_BYTES:,}")
        if refused:
            raise BundleError(f"{self.path}: refused {len(refused)} member(s): " + "; ".join(refused))

    def read(self, rel: str) -> bytes:
        if rel not in self._names:
            raise IntegrityError(self.display(rel), "file is missing from the bundle")
        try:
            with self._zip.open(self._infos[rel]) as member:
                return member.read(MAX_MEMBER_BYTES + 1)
        except (*ZIP_ERRORS, OSError) as exc:  # CRC mismatch, truncated or undecodable member
            raise IntegrityError(self.display(rel), f"cannot be read from the bundle: {exc}") from None

    def exists(self, rel: str) -> bool:
        return rel in self._names

    def files(self, prefix: str) -> list[str]:
        return sorted(n for n in self._names if n.startswith(prefix.rstrip("/") + "/"))

    def display(self, rel: str) -> str:
        return f"{self.path}!{rel}" if rel else str(self.path)


def open_source(path: str | os.PathLike[str]) -> Source:
    """The library directory or ``.zip`` bundle at ``path``; ``LibraryNotFoundError`` when neither."""
    location = Path(path)
    if location.is_dir():
        return DirSource(location)
    if location.is_file():
        return ZipSource(location)
    raise LibraryNotFoundError(f"{location}: no skill library here (not a directory or .zip bundle)")


class Release(Protocol):
    """One opened release, as exporters read it: its source, where it is, its number and manifest."""

    source: Source
    location: str
    release: int
    manifest: dict[str, Any]


def release_files(source: Source, release: int, manifest: dict[str, Any]) -> list[str]:
    """Every manifest, signature and skill file of releases 1..``release`` (``manifest`` is the last)."""
    files: dict[str, None] = {}
    for number in range(1, release + 1):
        files[manifest_path(number)] = None
        if source.exists(signature_path(number)):
            files[signature_path(number)] = None
        current = manifest if number == release else read_manifest(source, number)
        for entry in current["skills"].values():
            files.update(dict.fromkeys(v["file"] for v in entry["versions"]))
    return list(files)


def _parse(source: Source, rel: str, data: bytes) -> Any:
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise IntegrityError(source.display(rel), f"not valid JSON (truncated or corrupted): {exc}") from None


def manifest_hash(manifest: dict[str, Any]) -> str:
    return sha256_hex(canonical_bytes({k: v for k, v in manifest.items() if k != "manifest_hash"}))


def read_latest(source: Source) -> dict[str, Any] | None:
    """The LATEST pointer, or ``None`` for a library with no release yet."""
    if not source.exists(LATEST):
        return None
    pointer = _parse(source, LATEST, source.read(LATEST))
    if not (isinstance(pointer, dict) and isinstance(pointer.get("release"), int)
            and isinstance(pointer.get("manifest_hash"), str)):
        raise IntegrityError(source.display(LATEST), "not a release pointer")
    return pointer


def read_manifest(source: Source, release: int, expected_hash: str | None = None) -> dict[str, Any]:
    """Release manifest ``release``, checked against its own hash (and ``expected_hash`` if given)."""
    rel = manifest_path(release)
    manifest = _parse(source, rel, source.read(rel))
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise IntegrityError(source.display(rel), "not a release manifest")
    actual = manifest_hash(manifest)
    if actual != manifest.get("manifest_hash"):
        raise IntegrityError(source.display(rel), "content does not match its manifest_hash (tampered?)")
    if expected_hash is not None and actual != expected_hash:
        raise IntegrityError(source.display(rel), f"hash {actual[:12]} differs from {expected_hash[:12]} "
                                                  "recorded by the release that points at it")
    if manifest.get("release") != release:
        raise IntegrityError(source.display(rel), f"claims release {manifest.get('release')}, expected {release}")
    return manifest


def read_skill(source: Source, entry: dict[str, Any], name: str) -> dict[str, Any]:
    """The skill version described by manifest ``entry`` (one of a skill's ``versions``), verified."""
    rel = entry["file"]
    data = source.read(rel)
    if sha256_hex(data) != entry["sha256"]:
        raise IntegrityError(source.display(rel), "file bytes do not match the sha256 in the release manifest")
    doc = _parse(source, rel, data)
    if doc.get("name") != name or doc.get("version") != entry["version"] or doc.get("content_hash") != entry["hash"]:
        raise IntegrityError(source.display(rel), f"does not hold {name} {entry['version']}")
    return doc


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(root: Path, rel: str, data: bytes) -> None:
    """Write ``root/rel`` so that it is either absent/old or complete: temp file, fsync, rename."""
    target = root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)


def write_manifest(root: Path, manifest: dict[str, Any]) -> str:
    """Seal ``manifest`` with its hash and write it; return the hash."""
    manifest["manifest_hash"] = manifest_hash(manifest)
    write_atomic(root, manifest_path(manifest["release"]), canonical_bytes(manifest))
    return manifest["manifest_hash"]


def write_latest(root: Path, release: int, hash_: str) -> None:
    """Point LATEST at a release: the single step that commits a publish."""
    write_atomic(root, LATEST, canonical_bytes({"release": release, "manifest_hash": hash_}))


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    """Hold the library's exclusive publish lock (blocks until other publishers are done)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def remove_stale_temp_files(root: Path) -> None:
    """Delete temp files left by a crashed publisher; call only while holding the lock."""
    for tmp in root.rglob(f".*{TEMP_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
