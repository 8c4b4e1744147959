"""``skillmine skills ...`` through the real top-level CLI."""

from __future__ import annotations

import json

import pytest
from conftest import plot_candidate, search_candidate, table_candidate, variant

from skillmine.cli import main


@pytest.fixture
def lib(tmp_path, capsys):
    """A library published through the CLI: release 1, then release 2 with plot_function 1.1.0."""
    root = tmp_path / "lib"
    first = tmp_path / "c1.json"
    first.write_text(json.dumps([plot_candidate(), table_candidate(), search_candidate()]))
    second = tmp_path / "c2.json"
    second.write_text(json.dumps({"pipeline_run_id": "mine-2", "candidates": [
        variant(plot_candidate(), lambda d: d.update(tags=["matplotlib", "maths"])), table_candidate(),
        search_candidate()]}))
    assert main(["skills", "publish", str(first), "--library", str(root), "--pipeline-run-id", "mine-1"]) == 0
    assert "release 1" in capsys.readouterr().out
    assert main(["skills", "publish", str(second), "--library", str(root), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["release"] == 2 and result["created"] is True
    assert {(o["name"], o["outcome"]) for o in result["outcomes"]} == {
        ("plot_function", "minor"), ("summarise_dataset", "unchanged"), ("literature_search", "unchanged")}
    return root


def run(capsys, *argv):
    code = main(["skills", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_list_table_and_json(lib, capsys):
    code, out, _ = run(capsys, "list", "--library", str(lib))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"{lib}  release 2"
    assert lines[1].split() == ["NAME", "VERSION", "STATUS", "REPLAY", "SERVED", "CATEGORY", "SUPPORT", "SUCCESS",
                                "TITLE"]
    # never replayed, and served: the library verifies no skill yet
    assert lines[3].split()[:5] == ["literature_search", "1.0.0", "active", "candidate", "yes"]
    assert lines[4].split()[:5] == ["plot_function", "1.1.0", "active", "candidate", "yes"]
    code, out, _ = run(capsys, "list", "--library", str(lib), "--json")
    data = json.loads(out)
    assert data["release"] == 2 and [s["name"] for s in data["skills"]] == [
        "literature_search", "plot_function", "summarise_dataset"]
    code, out, _ = run(capsys, "list", "--releases", "--library", str(lib), "--json")
    assert [(r["release"], r["pipeline_run_id"], len(r["changes"])) for r in json.loads(out)] == [
        (1, "mine-1", 3), (2, "mine-2", 1)]


def test_library_location_from_environment(lib, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("SKILLMINE_LIBRARY", str(lib))
    assert json.loads(run(capsys, "list", "--json")[1])["release"] == 2
    monkeypatch.delenv("SKILLMINE_LIBRARY")
    monkeypatch.setenv("SKILLMINE_HOME", str(tmp_path))
    (tmp_path / "lib").rename(tmp_path / "library")
    assert json.loads(run(capsys, "list", "--json")[1])["release"] == 2


def test_show_json_includes_provenance(lib, capsys):
    code, out, _ = run(capsys, "show", "plot_function", "--version", "^1.0", "--library", str(lib), "--json")
    doc = json.loads(out)
    assert code == 0 and doc["version"] == "1.1.0"
    assert doc["provenance"]["source_runs"] == ["run-1", "run-2"]
    assert doc["provenance"]["pipeline_run_id"] == "mine-2"
    code, out, _ = run(capsys, "show", "plot_function", "--version", "1.0.0", "--library", str(lib))
    assert out.startswith("plot_function 1.0.0 (active)  Plot a function")
    assert "pipeline run mine-1" in out and "versions: 1.0.0, 1.1.0" in out
    assert ["2", "executor", "execute", "python", "repeat", "1-4", "plot/png"] in [line.split() for line in out.splitlines()]


def test_search(lib, capsys):
    code, out, _ = run(capsys, "search", "plotting", "workflows", "--library", str(lib), "--json")
    assert code == 0 and [h["name"] for h in json.loads(out)] == ["plot_function"]
    code, out, _ = run(capsys, "search", "nothing", "matches", "--library", str(lib))
    assert out.strip() == "no matching skills"


def test_diff(lib, capsys):
    code, out, _ = run(capsys, "diff", "plot_function", "1.0.0", "--library", str(lib), "--json")
    assert json.loads(out) == {"name": "plot_function", "from": "1.0.0", "to": "1.1.0", "bump": "minor", "changes": [
        {"path": "tags", "change": "changed", "old": ["matplotlib"], "new": ["matplotlib", "maths"], "bump": "minor"}]}  # volatile provenance (pipeline run) is not a change
    code, out, _ = run(capsys, "diff", "plot_function", "1.0.0", "1.1.0", "--library", str(lib))
    assert code == 0 and out.splitlines()[0] == "plot_function 1.0.0 -> 1.1.0: minor"


def test_instantiate(lib, capsys):
    code, out, _ = run(capsys, "instantiate", "plot_function", "-p", "function={x}", "-p", "x_max=3",
                       "--library", str(lib), "--json")
    plan = json.loads(out)
    assert code == 0 and plan["task"] == "Plot {x} over [0, 3]"
    code, out, err = run(capsys, "instantiate", "plot_function", "--params", '{"x_max": "big"}',
                         "--library", str(lib))
    assert code == 1 and out == ""
    assert "missing required parameter 'function'" in err and "expected number, got string 'big'" in err
    assert "Traceback" not in err


def test_export_import_verify(lib, capsys, tmp_path):
    bundle = tmp_path / "skills.zip"
    assert run(capsys, "export", str(bundle), "--library", str(lib))[0] == 0
    target = tmp_path / "copy"
    code, out, _ = run(capsys, "import", str(bundle), "--library", str(target), "--json")
    assert code == 0 and json.loads(out) == {"library": str(target), "release": 2}
    code, out, _ = run(capsys, "verify", "--library", str(target))
    assert code == 0 and out.strip().endswith("release 2, 2 manifests, 4 skill files: OK")
    code, out, _ = run(capsys, "list", "--library", str(bundle), "--json")  # bundles open directly
    assert json.loads(out)["release"] == 2


def test_verify_reports_tampering(lib, capsys):
    (path,) = (lib / "skills" / "literature_search").glob("*.json")
    path.write_bytes(path.read_bytes()[:-20])
    code, out, _ = run(capsys, "verify", "--library", str(lib), "--json")
    report = json.loads(out)
    assert code == 1 and report["ok"] is False
    assert report["errors"][0].startswith(f"{path}: file bytes do not match")


@pytest.mark.parametrize("argv, message", [
    (["list", "--library", "{missing}"], "{missing}: no skill library here"),
    (["show", "nope", "--library", "{lib}"], "no skill named 'nope'"),
    (["show", "plot_function", "--version", "^x", "--library", "{lib}"], "bad version range '^x'"),
    (["publish", "{missing}", "--library", "{lib}"], "No such file or directory"),
])
def test_errors_are_one_clear_line(lib, capsys, tmp_path, argv, message):
    subst = {"lib": str(lib), "missing": str(tmp_path / "missing")}
    code, out, err = run(capsys, *[a.format(**subst) for a in argv])
    assert code == 1 and out == ""
    assert err.startswith(f"skillmine skills {argv[0]}: error: ") and message.format(**subst) in err
    assert len(err.strip().splitlines()) == 1


def test_publish_rejects_invalid_candidates(lib, capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([plot_candidate(steps=[])]))
    code, _, err = run(capsys, "publish", str(bad), "--library", str(lib))
    assert code == 1 and "candidate[0] ('Plot function') is invalid: steps: [] should be non-empty" in err


def test_list_shows_the_replay_status_recorded_for_a_version(lib, capsys):
    from skill_library.promotion import record_replays

    record_replays(lib, "plot_function", "1.1.0", {"tried": 4, "passed": 4}, "active")
    code, out, _ = run(capsys, "list", "--library", str(lib), "--json")
    rows = json.loads(out)["skills"]
    replay = {s["name"]: s["replay"] for s in rows}
    assert code == 0 and replay == {"literature_search": "candidate", "plot_function": "active",
                                    "summarise_dataset": "candidate"}
    # one replay record puts the library under verification: only the promoted version is served now
    assert {s["name"]: s["served"] for s in rows} == {"literature_search": False, "plot_function": True,
                                                      "summarise_dataset": False}
    assert run(capsys, "list", "--library", str(lib))[1].splitlines()[4].split()[:5] == [
        "plot_function", "1.1.0", "active", "active", "yes"]


def test_search_and_export_serve_candidates_only_when_asked(lib, capsys, tmp_path):
    from skill_library.agent_skills import verify_export
    from skill_library.promotion import record_replays

    def searched(*extra):
        code, out, _ = run(capsys, "search", "csv", "--library", str(lib), "--json", *extra)
        assert code == 0
        return [h["name"] for h in json.loads(out)]

    def exported(folder, *extra):
        assert run(capsys, "export", str(folder), "--format", "agent-skills", "--library", str(lib), "--json",
                   *extra)[0] == 0
        assert verify_export(folder, trusted="").ok
        return json.loads((folder / "skillmine-export.json").read_text())["skills"]

    assert searched() == ["summarise_dataset"]  # nothing verified yet: everything is served
    assert set(exported(tmp_path / "before")) == {"literature-search", "plot-function", "summarise-dataset"}
    record_replays(lib, "summarise_dataset", "1.0.0", {"tried": 3, "passed": 0}, "candidate")
    record_replays(lib, "plot_function", "1.0.0", {"tried": 3, "passed": 3}, "active")  # not the current 1.1.0
    record_replays(lib, "literature_search", "1.0.0", {"tried": 3, "passed": 3}, "active")
    assert searched() == []
    assert searched("--all") == ["summarise_dataset"]
    assert set(exported(tmp_path / "after")) == {"literature-search"}
    assert set(exported(tmp_path / "all", "--include-candidates")) == {
        "literature-search", "plot-function", "summarise-dataset"}


def test_table_cells_print_brackets_verbatim(tmp_path, capsys):
    """A title with square brackets is data: the table shows it as written, never as rich markup."""
    title = "Plot [bold]f[/bold] over [x_min, x_max]"
    candidates = tmp_path / "c.json"
    candidates.write_text(json.dumps([variant(plot_candidate(), lambda d: d.update(title=title))]))
    assert main(["skills", "publish", str(candidates), "--library", str(tmp_path / "lib")]) == 0
    capsys.readouterr()
    code, out, _ = run(capsys, "list", "--library", str(tmp_path / "lib"))
    assert code == 0 and out.splitlines()[3].rstrip().endswith(title)
