"""Property-based bundle import: a corrupted, truncated, re-packed or hostile bundle gives one clear error naming the
bundle (never another exception) and leaves the target library exactly as it was (same files, same bytes)."""

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest
from conftest import plot_candidate, search_candidate, table_candidate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skill_library import SkillLibraryError, import_bundle, open_library, publish, verify

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A two-release bundle; the fuzzed target already holds release 1 (a prefix of its history)."""
    root = tmp_path_factory.mktemp("fuzz") / "source"
    publish(root, [plot_candidate(), table_candidate()], pipeline_run_id="p1")
    publish(root, [plot_candidate(), table_candidate(), search_candidate()], pipeline_run_id="p2")
    return open_library(root).export(root.parent / "b.zip").read_bytes()


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {name: z.read(name) for name in z.namelist()}


def _pack(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, content in members.items():
            z.writestr(name, content)
    return out.getvalue()


def _snapshot(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}


def _target(tmp_path: Path, bundle: bytes) -> Path:
    target = tmp_path / "target"
    if not target.exists():
        first = tmp_path / "first.zip"
        members = _members(bundle)
        members["LATEST"] = json.dumps({"release": 1, "manifest_hash": json.loads(
            members["releases/0001.json"])["manifest_hash"]}, separators=(",", ":")).encode()
        first.write_bytes(_pack({k: v for k, v in members.items() if not k.startswith("releases/0002")}))
        assert import_bundle(first, target) == 1
    return target


def _check_import(tmp_path: Path, bundle: bytes, mutated: bytes) -> None:
    target = _target(tmp_path, bundle)
    before = _snapshot(target)
    path = tmp_path / "mutated.zip"
    path.write_bytes(mutated)
    try:
        release = import_bundle(path, target)
    except SkillLibraryError as exc:
        assert str(path) in str(exc)
        assert _snapshot(target) == before
        return
    assert release == 2 and verify(target).ok  # the mutation did not touch anything the library holds


NESTED = "[" * 50_000 + "]" * 50_000

MEMBER_NAME = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), min_size=1, max_size=40)
member_content = st.one_of(
    st.binary(max_size=200),
    st.sampled_from([b"", b"{", b"null", b"[]", b'{"release": "2"}', b'{"release": 2, "manifest_hash": 7}',
                     NESTED.encode(), json.dumps({"format": "skillmine.release/1", "release": 10**30}).encode(),
                     b"\xff\xfe\x00bad utf-8"]),
)


@FUZZ
@given(data=st.data())
def test_byte_level_corruption_is_refused_cleanly(bundle: bytes, tmp_path: Path, data: st.DataObject) -> None:
    mutated = bytearray(bundle)
    kind = data.draw(st.sampled_from(["truncate", "flip", "insert"]))
    at = data.draw(st.integers(0, len(bundle) - 1))
    if kind == "truncate":
        mutated = mutated[:at]
    elif kind == "flip":
        for offset in data.draw(st.lists(st.integers(0, 64), min_size=1, max_size=8)):
            mutated[min(at + offset, len(mutated) - 1)] ^= data.draw(st.integers(1, 255))
    else:
        mutated[at:at] = data.draw(st.binary(min_size=1, max_size=64))
    _check_import(tmp_path, bundle, bytes(mutated))


@FUZZ
@given(data=st.data())
def test_member_level_corruption_is_refused_cleanly(bundle: bytes, tmp_path: Path, data: st.DataObject) -> None:
    members = _members(bundle)
    names = sorted(members)
    for _ in range(data.draw(st.integers(1, 3))):
        action = data.draw(st.sampled_from(["replace", "drop", "rename", "add"]))
        name = data.draw(st.sampled_from(names))
        if action == "replace" and name in members:
            members[name] = data.draw(member_content)
        elif action == "drop":
            members.pop(name, None)
        elif action == "rename" and name in members:
            members[data.draw(MEMBER_NAME)] = members.pop(name)
        else:
            members[data.draw(st.sampled_from(["releases/0003.json", "skills/x/1.0.0-aaaaaaaaaaaa.json",
                                               "releases/0002.sig"]))] = data.draw(member_content)
    _check_import(tmp_path, bundle, _pack(members))


def test_a_signature_file_nested_too_deeply_is_refused_cleanly(bundle: bytes, tmp_path: Path) -> None:
    """A case the fuzzer found: a signature file of 100,000 nested arrays (``json.loads`` recurses too deep)."""
    members = _members(bundle)
    members["releases/0002.sig"] = b"[" * 100_000 + b"]" * 100_000
    _check_import(tmp_path, bundle, _pack(members))
