"""Consumer API: version ranges, search, diff, instantiate."""

from __future__ import annotations

import pytest
from conftest import plot_candidate, search_candidate, table_candidate, variant

from skill_library import (
    ParameterError,
    SkillNotFoundError,
    VersionSpecError,
    open_library,
    publish,
    validate_skill,
)
from skill_library.semver import best_match

VERSIONS = ["0.9.0", "1.0.0", "1.0.1", "1.2.0", "1.2.5", "1.3.0", "2.0.0", "2.1.0"]


@pytest.mark.parametrize("spec, expected", [
    ("latest", "2.1.0"), ("1.2.0", "1.2.0"), ("=1.0.1", "1.0.1"), ("^1", "1.3.0"), ("^1.2", "1.3.0"),
    ("~1.2", "1.2.5"), ("~1", "1.3.0"), (">=1.0,<2", "1.3.0"), (">=1.0 <1.2", "1.0.1"), ("<1", "0.9.0"),
    ("1.2", "1.2.5"), ("^0.9", "0.9.0"), (">2.1.0", None), ("3.0.0", None),
])
def test_version_ranges(spec, expected):
    assert best_match(VERSIONS, spec) == expected


@pytest.mark.parametrize("spec", ["^x", ">=1.0,<<2", "one"])
def test_bad_version_range(spec):
    with pytest.raises(VersionSpecError, match="bad version range"):
        best_match(VERSIONS, spec)


@pytest.fixture
def library(tmp_path, candidates):
    """plot_function 1.0.0 -> 1.0.1 (statistics) -> 1.1.0 (optional enum parameter) -> 2.0.0 (optional step)."""
    v101 = variant(plot_candidate(), lambda d: d["statistics"].update(support=20))
    v110 = variant(v101, lambda d: d["parameters"].update(
        colour={"type": "string", "required": False, "enum": ["red", "blue"]}))
    v200 = variant(v110, lambda d: d["steps"][2].update(optional=True))
    for plot in (plot_candidate(), v101, v110, v200):
        publish(tmp_path, [plot, *candidates[1:]])
    return open_library(tmp_path)


def test_validate_one_stored_skill(library):
    assert library.validate("plot_function", "^1") == []
    doc = library.get("plot_function", "^1")
    doc["statistics"]["support"] = 1  # a consumer changing its copy does not touch the library
    assert library.get("plot_function", "^1")["statistics"]["support"] == 20
    assert validate_skill(doc) == ["content_hash: does not match the document content"]


def test_get_by_range(library):
    assert library.versions("plot_function") == ["1.0.0", "1.0.1", "1.1.0", "2.0.0"]
    assert library.get("plot_function")["version"] == "2.0.0"
    assert library.get("plot_function", "^1")["version"] == "1.1.0"
    assert library.get("plot_function", "~1.0")["version"] == "1.0.1"
    assert library.get("plot_function", ">=1.0,<1.1")["version"] == "1.0.1"
    with pytest.raises(SkillNotFoundError, match=r"no version matching '\^3'.*1.0.0, 1.0.1, 1.1.0, 2.0.0"):
        library.get("plot_function", "^3")
    with pytest.raises(SkillNotFoundError, match="no skill named 'nope'"):
        library.get("nope")


def test_search_finds_plot_skills_only(tmp_path):
    chart = variant(table_candidate(name="chart columns", task_template="Draw a bar chart of {data_file}",
                                    description="Bar chart of column means."),
                    lambda d: d["steps"][1].update(expected_outputs=[{"type": "figure", "format": "svg"}]))
    publish(tmp_path, [plot_candidate(), table_candidate(), search_candidate(), chart])
    library = open_library(tmp_path)
    hits = library.search("plotting workflows")
    assert [h.name for h in hits] == ["plot_function", "chart_columns"]
    assert hits[0].outputs == ["plot", "png"] and hits[0].score > hits[1].score
    assert [h.name for h in library.search("csv table")] == ["summarise_dataset"]
    assert [h.name for h in library.search("arxiv papers")] == ["literature_search"]
    assert library.search("workflows") == []  # only generic words
    assert library.search("quantum chromodynamics") == []


def test_search_skips_deprecated_unless_asked(tmp_path):
    publish(tmp_path, [plot_candidate(), table_candidate()])
    publish(tmp_path, [table_candidate()])
    library = open_library(tmp_path)
    assert library.search("plot") == []
    assert [(h.name, h.status) for h in library.search("plot", include_deprecated=True)] == [
        ("plot_function", "deprecated")]


def test_diff_is_structured(library):
    diff = library.diff("plot_function", "1.0.0", "1.1.0")
    assert diff["name"] == "plot_function" and (diff["from"], diff["to"], diff["bump"]) == ("1.0.0", "1.1.0", "minor")
    assert diff["changes"] == [
        {"path": "parameters.colour", "change": "added", "bump": "minor",
         "new": {"type": "string", "required": False, "enum": ["red", "blue"]}},
        {"path": "statistics.support", "change": "changed", "old": 12, "new": 20, "bump": "patch"},
    ]
    major = library.diff("plot_function", "^1", "latest")
    assert major["bump"] == "major"
    assert major["changes"] == [{"path": "steps[2].optional", "change": "added", "new": True, "bump": "major"}]
    assert library.diff("plot_function", "2.0.0", "2.0.0")["changes"] == []


def test_instantiate_fills_parameters_and_defaults(library):
    plan = library.instantiate("plot_function", {"function": "sin(x)", "x_max": 6.28})
    assert plan["task"] == "Plot sin(x) over [0, 6.28]"
    assert plan["version"] == "2.0.0"
    assert plan["parameters"] == {"function": "sin(x)", "x_min": 0, "x_max": 6.28}
    assert [(s["agent"], s["action"], s["optional"]) for s in plan["steps"]] == [
        ("planner", "plan", False), ("engineer", "write_code", False), ("executor", "execute", True)]
    assert plan["steps"][1]["task"] == "Write code that plots sin(x)"
    assert plan["steps"][2]["repeat"] == {"min": 1, "max": 4, "until": "success"}
    assert plan["steps"][2]["expected_outputs"] == [{"type": "plot", "format": "png"}]
    old = library.instantiate("plot_function", {"function": "x"}, version="1.0.0")
    assert old["version"] == "1.0.0"


@pytest.mark.parametrize("params, message", [
    ({}, "missing required parameter 'function' (string)"),
    ({"function": "x", "colour": "green", "x_min": 1}, "parameter 'colour': 'green' is not one of ['red', 'blue']"),
    ({"function": "x", "bogus": 1}, "unknown parameter 'bogus'"),
    ({"function": 3}, "parameter 'function': expected string, got integer 3"),
    ({"function": "x", "x_min": True}, "parameter 'x_min': expected number, got boolean True"),
    ({"function": "x", "x_min": "0"}, "parameter 'x_min': expected number, got string '0'"),
    (["function"], "parameters for skill plot_function 1.1.0 must be an object, got array"),
])
def test_instantiate_rejects_bad_parameters(library, params, message):
    with pytest.raises(ParameterError) as err:
        library.instantiate("plot_function", params, version="1.1.0")
    assert message in str(err.value)
    assert "plot_function 1.1.0" in str(err.value)


@pytest.mark.parametrize("value", ["{__import__('os')}", "${x}", "{{x}}", "{x_min}", "%(x)s {0}"])
def test_injection_attempts_stay_inert_text(library, value):
    plan = library.instantiate("plot_function", {"function": value, "x_min": -1})
    assert plan["task"] == f"Plot {value} over [-1, 10]"
    assert plan["steps"][1]["task"] == f"Write code that plots {value}"


def test_template_brace_escapes(tmp_path):
    publish(tmp_path, [plot_candidate(task_template="Plot {function} as {{json}}")])
    assert open_library(tmp_path).instantiate("plot_function", {"function": "f"})["task"] == "Plot f as {json}"
