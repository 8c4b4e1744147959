"""Publishing: no-op re-publish, version bumps, identity across re-mining, deprecation."""

from __future__ import annotations

import json

import pytest
from conftest import plot_candidate, search_candidate, table_candidate, variant

from skill_library import open_library, publish
from skill_library.identity import edit_similarity, match


def _files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != ".lock")


def test_publishing_identical_content_twice_is_a_noop(tmp_path, candidates):
    first = publish(tmp_path, candidates, pipeline_run_id="run-a", source_watermark=100)
    before = _files(tmp_path)
    latest = (tmp_path / "LATEST").read_bytes()
    again = publish(tmp_path, candidates, pipeline_run_id="run-b", source_watermark=200)
    assert (first.release, first.created) == (1, True)
    assert (again.release, again.created) == (1, False)
    assert [o.outcome for o in again.outcomes] == ["unchanged"] * 3
    assert _files(tmp_path) == before
    assert (tmp_path / "LATEST").read_bytes() == latest
    assert before == [
        "LATEST", "releases/0001.json",
        *sorted(f"skills/{n}/1.0.0-{open_library(tmp_path).get(n)['content_hash'][:12]}.json"
                for n in ("literature_search", "plot_function", "summarise_dataset")),
    ]


def _republish(tmp_path, changed_plot):
    publish(tmp_path, [plot_candidate(), table_candidate()])
    result = publish(tmp_path, [changed_plot, table_candidate()])
    return result.outcome("plot_function"), result


@pytest.mark.parametrize("mutate, level, version", [
    (lambda d: d["steps"][0].update(repeat={"min": 1, "max": 2}), "major", "2.0.0"),
    (lambda d: d["steps"][2].update(optional=True), "major", "2.0.0"),
    (lambda d: d["parameters"].update(colour={"type": "string", "required": True}), "major", "2.0.0"),
    (lambda d: d["parameters"]["x_min"].update(type="integer"), "major", "2.0.0"),
    (lambda d: (d["parameters"].pop("x_max"), d.update(task_template="Plot {function} over [{x_min}, 100]")),
     "major", "2.0.0"),
    (lambda d: d["parameters"].update(colour={"type": "string", "required": False}), "minor", "1.1.0"),
    (lambda d: d.update(description="Draw a function."), "minor", "1.1.0"),
    (lambda d: d.update(tags=["matplotlib", "maths"]), "minor", "1.1.0"),
    (lambda d: d.update(preconditions=[]), "minor", "1.1.0"),
    (lambda d: d["steps"][2]["expected_outputs"].append({"type": "file", "format": "pdf"}), "minor", "1.1.0"),
    (lambda d: d["statistics"].update(support=13, success_rate=0.93), "patch", "1.0.1"),
    (lambda d: d["provenance"]["source_runs"].append("run-3"), "patch", "1.0.1"),
])
def test_bump_rules(tmp_path, mutate, level, version):
    outcome, result = _republish(tmp_path, variant(plot_candidate(), mutate))
    assert (outcome.outcome, outcome.previous_version, outcome.version) == (level, "1.0.0", version)
    assert result.outcome("summarise_dataset").outcome == "unchanged"
    library = open_library(tmp_path)
    assert library.versions("plot_function") == ["1.0.0", version]
    assert library.get("plot_function", "1.0.0")["version"] == "1.0.0"  # old version still readable


def test_identity_survives_a_re_mine(tmp_path):
    first = publish(tmp_path, [plot_candidate(), table_candidate()])
    ids = {n: open_library(tmp_path).get(n)["id"] for n in ("plot_function", "summarise_dataset")}
    # New mining run: other order, other proposed names, slightly different statistics and runs.
    remined = [
        table_candidate(name="dataset summary", statistics={"support": 9, "success_rate": 0.95}),
        variant(plot_candidate(name="function plotting"), lambda d: (
            d["statistics"].update(support=15, success_rate=0.9),
            d["provenance"].update(source_runs=["run-1", "run-2", "run-7"], extracted_at="2026-02-01T00:00:00Z"))),
    ]
    second = publish(tmp_path, remined, pipeline_run_id="mine-2")
    assert first.release == 1 and second.release == 2
    assert {(o.name, o.outcome, o.version) for o in second.outcomes} == {
        ("plot_function", "patch", "1.0.1"), ("summarise_dataset", "patch", "1.0.1")}
    library = open_library(tmp_path)
    assert {n: library.get(n)["id"] for n in ids} == ids
    assert library.get("plot_function")["provenance"]["pipeline_run_id"] == "mine-2"
    assert len(library.skills()) == 2


def test_similar_step_sequence_keeps_identity_with_major_bump(tmp_path):
    five_steps = variant(table_candidate(), lambda d: d["steps"].extend([
        {"agent": "engineer", "action": "plot", "tool": "python"},
        {"agent": "executor", "action": "execute", "tool": "python"}]))
    publish(tmp_path, [five_steps])
    one_step_changed = variant(five_steps, lambda d: d["steps"][3].update(action="chart"))  # similarity 0.8
    result = publish(tmp_path, [one_step_changed])
    assert [(o.name, o.outcome, o.version) for o in result.outcomes] == [("summarise_dataset", "major", "2.0.0")]


def test_dissimilar_pattern_is_a_new_skill_and_the_old_one_is_deprecated(tmp_path):
    publish(tmp_path, [table_candidate()])
    two_changed = variant(table_candidate(), lambda d: (d["steps"][0].update(tool="R"),
                                                        d["steps"][1].update(tool="R")))  # similarity 1/3
    result = publish(tmp_path, [two_changed])
    assert sorted((o.name, o.outcome, o.version) for o in result.outcomes) == [
        ("summarise_dataset", "deprecated", "1.0.1"), ("summarise_dataset_2", "new", "1.0.0")]


def test_template_family_is_part_of_identity(tmp_path):
    publish(tmp_path, [table_candidate()])
    other_family = table_candidate(task_template="Train a classifier on {data_file}")
    result = publish(tmp_path, [other_family])
    assert {o.outcome for o in result.outcomes} == {"new", "deprecated"}


def test_deprecation_and_revival(tmp_path, candidates):
    publish(tmp_path, candidates)
    dropped = publish(tmp_path, candidates[:2])
    assert dropped.outcome("literature_search").outcome == "deprecated"
    library = open_library(tmp_path)
    assert library.get("literature_search")["status"] == "deprecated"
    assert library.get("literature_search")["version"] == "1.0.1"
    assert library.get("literature_search", "1.0.0")["status"] == "active"  # never deleted
    assert [s["name"] for s in library.skills(include_deprecated=False)] == ["plot_function", "summarise_dataset"]
    # still absent: nothing to do; back again: same identity, active again
    assert publish(tmp_path, candidates[:2]).created is False
    back = publish(tmp_path, candidates)
    assert (back.outcome("literature_search").outcome, back.outcome("literature_search").version) == ("patch", "1.0.2")
    assert open_library(tmp_path).get("literature_search")["status"] == "active"


def test_names_are_deduplicated_within_a_candidate_set(tmp_path):
    other = search_candidate(name="Plot function")
    result = publish(tmp_path, [plot_candidate(), other])
    assert [o.name for o in result.outcomes] == ["plot_function", "plot_function_2"]


def test_release_manifest_records_exact_versions(tmp_path, candidates):
    publish(tmp_path, candidates, pipeline_run_id="p1", source_watermark="evt-10")
    publish(tmp_path, candidates[:2], pipeline_run_id="p2")
    manifest = json.loads((tmp_path / "releases/0002.json").read_text())
    assert manifest["release"] == 2 and manifest["pipeline_run_id"] == "p2"
    assert manifest["changes"] == [{"name": "literature_search", "outcome": "deprecated", "version": "1.0.1",
                                    "previous_version": "1.0.0"}]
    entry = manifest["skills"]["literature_search"]
    assert [v["version"] for v in entry["versions"]] == ["1.0.0", "1.0.1"]
    assert json.loads((tmp_path / "LATEST").read_text()) == {"release": 2, "manifest_hash": manifest["manifest_hash"]}
    first = open_library(tmp_path, release=1)
    assert first.get("literature_search")["status"] == "active"
    assert first.get("plot_function")["provenance"]["source_watermark"] == "evt-10"


def test_similarity_rule_unit():
    assert edit_similarity("abcde", "abXde") == pytest.approx(0.8)
    assert edit_similarity("abc", "abc") == 1.0
    a, b = table_candidate(), variant(table_candidate(), lambda d: d["steps"].pop())
    # 2/3 similarity is below the 0.8 threshold; each existing skill is matched at most once
    assert match([b], [dict(a, name="x")]) == {}
    assert match([a, a], [dict(a, name="x")]) == {0: 0}
