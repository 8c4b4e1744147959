"""Export to a .zip bundle, open it directly, import it into another library."""

from __future__ import annotations

import zipfile

import pytest
from conftest import plot_candidate, search_candidate, table_candidate

from skill_library import BundleError, IntegrityError, import_bundle, open_library, publish, verify


@pytest.fixture
def source(tmp_path):
    root = tmp_path / "source"
    publish(root, [plot_candidate(), table_candidate()], pipeline_run_id="p1")
    publish(root, [plot_candidate(), table_candidate(), search_candidate()], pipeline_run_id="p2")
    return root


def test_export_import_round_trip(source, tmp_path):
    bundle = open_library(source).export(tmp_path / "out" / "skills.zip")
    assert zipfile.is_zipfile(bundle)
    from_bundle = open_library(bundle)
    assert from_bundle.release == 2 and verify(bundle).ok
    assert from_bundle.get("literature_search") == open_library(source).get("literature_search")
    assert [h.name for h in from_bundle.search("plotting")] == ["plot_function"]

    target = tmp_path / "target"
    assert import_bundle(bundle, target) == 2
    imported, original = open_library(target), open_library(source)
    assert imported.manifest == original.manifest
    assert [r["manifest_hash"] for r in imported.releases()] == [r["manifest_hash"] for r in original.releases()]
    assert verify(target).ok and verify(target).warnings == []
    assert import_bundle(bundle, target) == 2  # importing again changes nothing
    # the imported library keeps evolving like the original
    assert publish(target, [plot_candidate()]).release == 3


def test_export_of_an_older_release(source, tmp_path):
    bundle = open_library(source, release=1).export(tmp_path / "r1.zip")
    assert open_library(bundle).release == 1
    target = tmp_path / "target"
    import_bundle(bundle, target)
    assert [s["name"] for s in open_library(target).skills()] == ["plot_function", "summarise_dataset"]
    # fast-forward to release 2 from a newer bundle
    assert import_bundle(open_library(source).export(tmp_path / "r2.zip"), target) == 2


def test_import_refuses_diverged_history(source, tmp_path):
    bundle = open_library(source).export(tmp_path / "b.zip")
    other = tmp_path / "other"
    publish(other, [search_candidate()])
    with pytest.raises(BundleError, match="release 1 differs from the bundle's: histories diverged"):
        import_bundle(bundle, other)
    assert open_library(other).release == 1


def test_tampered_bundle_is_rejected(source, tmp_path):
    bundle = open_library(source).export(tmp_path / "b.zip")
    tampered = tmp_path / "t.zip"
    with zipfile.ZipFile(bundle) as zin, zipfile.ZipFile(tampered, "w") as zout:
        for item in zin.namelist():
            data = zin.read(item)
            if item.startswith("skills/plot_function/"):
                data = data.replace(b"Plot a function", b"Plot a functioN")
            zout.writestr(item, data)
    with pytest.raises(IntegrityError, match=r"t\.zip!skills/plot_function/1\.0\.0-"):
        open_library(tampered).get("plot_function")
    with pytest.raises(BundleError, match="does not verify"):
        import_bundle(tampered, tmp_path / "target")


def test_bundle_must_be_a_zip(source, tmp_path):
    with pytest.raises(BundleError, match="must end in .zip"):
        open_library(source).export(tmp_path / "b.tar.gz")
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    with pytest.raises(BundleError, match=f"{junk}: not a readable .zip bundle"):
        open_library(junk)
