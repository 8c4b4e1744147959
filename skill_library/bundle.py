"""Exported bundles: a whole library (every release up to the exported one) as one ``.zip`` file.

A zip is used rather than a tarball because members can be read individually without
decompressing the rest, so ``open_library`` on a bundle is as cheap as on a directory. The
bundle has the directory layout of ``store`` inside, with LATEST pointing at the exported
release. Importing fast-forwards a library: the target must be empty or hold a prefix of the
bundle's history (identical manifests); missing files are copied and LATEST is swapped last.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from . import store
from .document import canonical_bytes
from .errors import BundleError, IntegrityError

if TYPE_CHECKING:
    from .library import Library


class ZipSource:
    """Read access to a ``.zip`` bundle."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise BundleError(f"{self.path}: not a readable .zip bundle ({exc})") from None
        self._names = set(self._zip.namelist())

    def read(self, rel: str) -> bytes:
        if rel not in self._names:
            raise IntegrityError(self.display(rel), "file is missing from the bundle")
        try:
            return self._zip.read(rel)
        except (zipfile.BadZipFile, OSError) as exc:  # CRC mismatch, truncated member
            raise IntegrityError(self.display(rel), f"cannot be read from the bundle: {exc}") from None

    def exists(self, rel: str) -> bool:
        return rel in self._names

    def files(self, prefix: str) -> list[str]:
        return sorted(n for n in self._names if n.startswith(prefix.rstrip("/") + "/") and not n.endswith("/"))

    def display(self, rel: str) -> str:
        return f"{self.path}!{rel}" if rel else str(self.path)


def _release_files(library: Library) -> list[str]:
    """Every manifest and skill file the library's releases up to the open one refer to."""
    files: dict[str, None] = {}
    for number in range(1, library.release + 1):
        files[store.manifest_path(number)] = None
        manifest = library.manifest if number == library.release else store.read_manifest(library.source, number)
        for entry in manifest["skills"].values():
            files.update(dict.fromkeys(v["file"] for v in entry["versions"]))
    return list(files)


def export_bundle(library: Library, destination: str | os.PathLike[str]) -> Path:
    """Write ``library`` (verified first) as a ``.zip`` bundle at ``destination``, atomically."""
    target = Path(destination)
    if target.suffix != ".zip":
        raise BundleError(f"{target}: bundle file name must end in .zip")
    report = library.verify()
    if not report.ok:
        raise BundleError(f"{library.location} does not verify, not exporting: {report.errors[0]}")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=store.TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as bundle:
            for rel in _release_files(library):
                bundle.writestr(rel, library.source.read(rel))
            pointer = {"release": library.release, "manifest_hash": library.manifest["manifest_hash"]}
            bundle.writestr(store.LATEST, canonical_bytes(pointer))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def import_bundle(bundle_path: str | os.PathLike[str], library_path: str | os.PathLike[str]) -> int:
    """Fast-forward the library at ``library_path`` to the bundle's release; return that release."""
    from .library import open_library

    bundle = open_library(bundle_path)
    report = bundle.verify()
    if not report.ok:
        raise BundleError(f"{bundle_path} does not verify, not importing: {report.errors[0]}")
    root = Path(library_path)
    with store.locked(root):
        target = store.DirSource(root)
        pointer = store.read_latest(target)
        have = pointer["release"] if pointer else 0
        if have > bundle.release:
            raise BundleError(f"{root} is at release {have}, newer than the bundle's {bundle.release}")
        for number in range(1, have + 1):
            ours = store.read_manifest(target, number)["manifest_hash"]
            if ours != store.read_manifest(bundle.source, number)["manifest_hash"]:
                raise BundleError(f"{root} release {number} differs from the bundle's: histories diverged")
        for rel in _release_files(bundle):
            data = bundle.source.read(rel)
            if not target.exists(rel) or target.read(rel) != data:  # absent, or debris of a crashed publish
                store.write_atomic(root, rel, data)
        if bundle.release > have:
            store.write_latest(root, bundle.release, bundle.manifest["manifest_hash"])
    return bundle.release
