"""Exported bundles: a whole library (every release up to the exported one) as one ``.zip`` file.

A zip is used rather than a tarball because members can be read individually without
decompressing the rest, so ``open_library`` on a bundle is as cheap as on a directory. The
bundle has the directory layout of ``store`` inside, with LATEST pointing at the exported
release. Importing fast-forwards a library: the target must be empty or hold a prefix of the
bundle's history (identical manifests); missing files are copied and LATEST is swapped last.
A bundle is untrusted input: ``store.ZipSource`` refuses, naming each, members that are symbolic links, leave the
library (absolute or ``..`` paths), lie outside the library layout or inflate beyond the size caps, before any
member is inflated; the bundle must then verify (hashes, and the signature when keys are trusted).
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

from . import store
from .document import canonical_bytes
from .errors import BundleError
from .verify import verify_source


def export_bundle(library: store.Release, destination: str | os.PathLike[str]) -> Path:
    """Write ``library`` (verified first) as a ``.zip`` bundle at ``destination``, atomically."""
    target = Path(destination)
    if target.suffix != ".zip":
        raise BundleError(f"{target}: bundle file name must end in .zip")
    report = verify_source(library.source, library.release, library.location)
    if not report.ok:
        raise BundleError(f"{library.location} does not verify, not exporting: {report.errors[0]}")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=store.TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as bundle:
            for rel in store.release_files(library.source, library.release, library.manifest):
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
    source = store.open_source(bundle_path)
    report = verify_source(source, location=str(bundle_path))
    if not report.ok:
        raise BundleError(f"{bundle_path} does not verify, not importing: {report.errors[0]}")
    latest = store.read_latest(source)
    assert latest is not None  # a library without LATEST does not verify
    release = latest["release"]
    manifest = store.read_manifest(source, release, latest["manifest_hash"])
    root = Path(library_path)
    with store.locked(root):
        target = store.DirSource(root)
        pointer = store.read_latest(target)
        have = pointer["release"] if pointer else 0
        if have > release:
            raise BundleError(f"{root} is at release {have}, newer than the bundle's {release}")
        for number in range(1, have + 1):
            ours = store.read_manifest(target, number)["manifest_hash"]
            if ours != store.read_manifest(source, number)["manifest_hash"]:
                raise BundleError(f"{root} release {number} differs from the bundle's: histories diverged")
        for rel in store.release_files(source, release, manifest):
            if not store.LAYOUT.match(rel):  # verify refuses such a manifest already; never write outside root
                raise BundleError(f"{bundle_path}: refers to {rel!r}, which is not a file of a skill library")
            data = source.read(rel)
            if not target.exists(rel) or target.read(rel) != data:  # absent, or debris of a crashed publish
                store.write_atomic(root, rel, data)
        if release > have:
            store.write_latest(root, release, manifest["manifest_hash"])
    return release
