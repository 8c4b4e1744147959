"""Export to a .zip bundle, open it directly, import it into another library."""

from __future__ import annotations

import tracemalloc
import zipfile

import pytest
from conftest import plot_candidate, search_candidate, table_candidate

from skill_library import BundleError, IntegrityError, import_bundle, open_library, publish, store, verify


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


def _copy_with(bundle, target, extra):
    """``bundle``'s members plus ``extra`` (ZipInfo or name -> bytes) written to ``target``."""
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            out.writestr(info, src.read(info))
        for member, data in extra:
            out.writestr(member, data)
    return target


def test_hostile_members_are_refused_and_named_before_anything_is_inflated(source, tmp_path):
    bundle = open_library(source).export(tmp_path / "b.zip")
    link = zipfile.ZipInfo("skills/plot_function/9.9.9-aaaaaaaaaaaa.json")
    link.external_attr = (0o120777 << 16)
    hostile = _copy_with(bundle, tmp_path / "hostile.zip", [
        ("../escape.json", b"{}"), ("/etc/skill.json", b"{}"), ("skills/../../up.json", b"{}"),
        (link, b"/etc/passwd"), ("notes.txt", b"hello")])
    target = tmp_path / "target"
    with pytest.raises(BundleError) as refused:
        import_bundle(hostile, target)
    message = str(refused.value)
    assert message.startswith(f"{hostile}: refused 5 member(s): ")
    for name in ("'../escape.json'", "'/etc/skill.json'", "'skills/../../up.json'"):
        assert f"{name} would be written outside the library (absolute path or '..')" in message
    assert "'skills/plot_function/9.9.9-aaaaaaaaaaaa.json' is a symbolic link" in message
    assert "'notes.txt' is not a file of a skill library's layout" in message
    assert not target.exists() and not (tmp_path / "escape.json").exists()
    with pytest.raises(BundleError, match="refused 5 member"):
        verify(hostile)


def test_a_zip_bomb_is_refused_from_its_declared_size_without_inflating_it(source, tmp_path):
    bundle = open_library(source).export(tmp_path / "b.zip")
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            if info.filename != "LATEST":
                out.writestr(info, src.read(info))
        with out.open("LATEST", "w", force_zip64=True) as member:  # 80 MiB of zeros, ~80 KiB compressed
            chunk = b"\0" * (1 << 20)
            for _ in range(80):
                member.write(chunk)
    assert bomb.stat().st_size < 1 << 20
    tracemalloc.start()
    with pytest.raises(BundleError, match=r"'LATEST' inflates to 83,886,080 bytes, more than the 67,108,864 allowed"):
        open_library(bomb)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 * 1024 * 1024


def test_member_count_is_capped(source, tmp_path, monkeypatch):
    bundle = open_library(source).export(tmp_path / "b.zip")
    monkeypatch.setattr(store, "MAX_MEMBERS", 3)
    with pytest.raises(BundleError, match=r"b\.zip: \d+ members, more than the 3 a bundle may hold"):
        import_bundle(bundle, tmp_path / "target")
