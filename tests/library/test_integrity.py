"""Integrity: tampering and truncation are detected, crashes and concurrent publishers are safe."""

from __future__ import annotations

import json
import multiprocessing
import os

import pytest
from conftest import plot_candidate, search_candidate, table_candidate, variant

from skill_library import IntegrityError, LibraryNotFoundError, open_library, publish, store, verify


def _skill_file(root, name):
    (path,) = (root / "skills" / name).glob("1.0.0-*.json")
    return path


def _flip(path, needle: bytes, replacement: bytes):
    data = path.read_bytes()
    assert needle in data
    path.write_bytes(data.replace(needle, replacement, 1))


@pytest.fixture
def lib(tmp_path, candidates):
    publish(tmp_path, candidates)
    return tmp_path


def test_flipped_byte_in_skill_file_is_detected_and_named(lib):
    path = _skill_file(lib, "plot_function")
    _flip(path, b"Plot a function", b"Plot a functioN")
    library = open_library(lib)  # manifest is fine; the skill file is checked when read
    with pytest.raises(IntegrityError) as err:
        library.get("plot_function")
    assert err.value.path == str(path)
    assert str(path) in str(err.value) and "sha256" in str(err.value)
    library.get("summarise_dataset")  # other skills still readable
    report = verify(lib)
    assert not report.ok
    assert len(report.errors) == 1 and report.errors[0].startswith(str(path))


def test_volatile_field_tampering_is_detected(lib):
    path = _skill_file(lib, "plot_function")
    _flip(path, b"2026-01-01", b"2027-01-01")
    assert [e.split(":")[0] for e in verify(lib).errors] == [str(path)]


def test_truncated_skill_file(lib):
    path = _skill_file(lib, "summarise_dataset")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(IntegrityError, match=str(path)):
        open_library(lib).get("summarise_dataset")


def test_tampered_manifest_and_latest(lib):
    manifest = lib / "releases" / "0001.json"
    _flip(manifest, b'"support":12', b'"support":99')
    with pytest.raises(IntegrityError, match=f"{manifest}: content does not match its manifest_hash"):
        open_library(lib)
    assert verify(lib).errors == [f"{manifest}: content does not match its manifest_hash (tampered?)"]
    (lib / "LATEST").write_text("{")
    with pytest.raises(IntegrityError, match=f"{lib / 'LATEST'}: not valid JSON"):
        open_library(lib)


def test_missing_library(tmp_path):
    with pytest.raises(LibraryNotFoundError, match=str(tmp_path / "nowhere")):
        open_library(tmp_path / "nowhere")
    with pytest.raises(LibraryNotFoundError, match="no release has been published"):
        open_library(tmp_path)


@pytest.mark.parametrize("failing", ["write_manifest", "write_latest"])
def test_crash_mid_publish_keeps_previous_release(lib, monkeypatch, failing):
    before = open_library(lib)
    changed = [variant(plot_candidate(), lambda d: d["statistics"].update(support=50)), table_candidate()]

    def crash(*args, **kwargs):
        raise OSError("disk on fire")

    monkeypatch.setattr(store, failing, crash)
    with pytest.raises(OSError, match="disk on fire"):
        publish(lib, changed)
    monkeypatch.undo()
    after = open_library(lib)
    assert after.release == 1 and after.manifest == before.manifest
    assert after.get("plot_function")["statistics"]["support"] == 12
    report = verify(lib)
    assert report.ok and report.warnings  # the new skill files are there but in no release
    assert all("not part of any release" in w for w in report.warnings)
    # the next publish completes, reusing the leftovers
    result = publish(lib, changed)
    assert result.release == 2 and result.outcome("plot_function").version == "1.0.1"
    assert verify(lib).ok and verify(lib).warnings == []


def _die_before_manifest_rename(root):
    real_replace = os.replace

    def replace(src, dst):
        if str(dst).endswith("releases/0002.json"):
            os._exit(9)  # hard crash: no exception handlers, temp file left behind
        real_replace(src, dst)

    os.replace = replace
    publish(root, [search_candidate()])


def test_process_killed_mid_publish(lib):
    proc = multiprocessing.get_context("fork").Process(target=_die_before_manifest_rename, args=(lib,))
    proc.start()
    proc.join(30)
    assert proc.exitcode == 9
    assert list((lib / "releases").glob(".0002.json.*.tmp"))
    assert open_library(lib).release == 1
    report = verify(lib)
    assert report.ok and any("temporary file" in w for w in report.warnings)
    assert publish(lib, [search_candidate()]).release == 2
    assert verify(lib).warnings == []


def _publisher(root, index, barrier, queue):
    sets = [[plot_candidate()], [table_candidate()], [search_candidate()],
            [plot_candidate(), table_candidate(), search_candidate()]]
    barrier.wait()
    result = publish(root, sets[index], pipeline_run_id=f"run-{index}")
    queue.put((index, result.release, result.created))


def test_concurrent_publishers(tmp_path):
    ctx = multiprocessing.get_context("fork")
    barrier, queue = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_publisher, args=(tmp_path, i, barrier, queue)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    results = sorted(queue.get(timeout=5) for _ in procs)
    assert sorted(r[1] for r in results) == [1, 2, 3, 4] and all(r[2] for r in results)
    report = verify(tmp_path)
    assert report.ok and report.warnings == [] and report.manifests_checked == 4
    expected_active = {0: {"plot_function"}, 1: {"summarise_dataset"}, 2: {"literature_search"},
                       3: {"plot_function", "summarise_dataset", "literature_search"}}
    library = open_library(tmp_path)
    for release in library.releases():
        snapshot = open_library(tmp_path, release=release["release"])
        run = int(release["pipeline_run_id"].split("-")[1])
        assert {s["name"] for s in snapshot.skills(include_deprecated=False)} == expected_active[run]
        for skill in snapshot.skills():
            assert snapshot.get(skill["name"])["version"] == skill["version"]
    assert json.loads((tmp_path / "LATEST").read_text())["release"] == 4
