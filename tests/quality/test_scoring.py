"""The examiner's scorers say what they claim: type names and one member run's literals are caught while plain
documentation passes; step and slot scores count what they should."""

import pytest

from benchmarks.external_workload.scoring import (
    ari,
    is_type_name,
    member_literal,
    readability_flags,
    required_steps,
    slot_scores,
    step_precision_recall,
)

MEMBERS = [{"column": "redshift", "table": "a.csv", "bins": 20}, {"column": "parallax", "table": "b.csv", "bins": 30},
           {"column": "stellar_mass", "table": "a.csv", "bins": 20}]


@pytest.mark.parametrize("text", ["string", "A string", "an enum", "Propose project ideas in an enum", "Integer",
                                  "value", "", "str"])
def test_type_names_are_caught(text: str) -> None:
    assert is_type_name(text)


@pytest.mark.parametrize("text", ["Plot an expression over a range and save the figure", "number of ideas to generate",
                                  "lower end of the x range", "column whose values are histogrammed"])
def test_documentation_is_not_a_type_name(text: str) -> None:
    assert not is_type_name(text)


def test_literals_of_one_member_are_caught_but_enumerations_and_shared_words_are_not() -> None:
    assert member_literal("value after 'column redshift in'", MEMBERS) == "redshift"
    assert member_literal("value after '[20,'", MEMBERS) == "20"
    assert member_literal("one of redshift, parallax or stellar_mass", MEMBERS) is None
    assert member_literal("the table to read", MEMBERS) is None
    assert member_literal("histogram of a column in a.csv", [{"table": "a.csv"}, {"table": "a.csv"}]) is None


def test_readability_flags_name_the_field() -> None:
    skill = {"title": "A string", "parameters": {"column": {"type": "string", "description": "value after 'of redshift'"},
                                                  "bins": {"type": "integer", "description": "number of bins"}}}
    flags = readability_flags(skill, MEMBERS)
    assert len(flags) == 2
    assert flags[0].startswith("title is a type name")
    assert flags[1].startswith("parameter 'column' description quotes a member run's literal 'redshift'")


def test_required_steps_skip_optional_and_write_repeat_blocks_out() -> None:
    twice = {"min": 2, "max": 3}
    skill = {"steps": [{"agent": "planner"}, {"agent": "engineer", "repeat": twice},
                       {"agent": "executor", "repeat": dict(twice)}, {"agent": "plot_judge", "optional": True},
                       {"agent": "control", "tool": "record_status"}]}
    assert required_steps(skill) == ["planner", "engineer", "executor", "engineer", "executor",
                                     "control.record_status"]


def test_step_and_slot_scores() -> None:
    assert step_precision_recall(["a", "b", "x"], ["a", "b", "c", "d"]) == (2 / 3, 0.5)
    assert step_precision_recall([], ["a"]) == (0.0, 0.0)
    scores = slot_scores({"r1": {"p": "20", "q": "Redshift "}, "r2": {"p": "wrong"}},
                         {"r1": {"bins": 20, "column": "redshift"}, "r2": {"bins": 30, "column": "parallax"}})
    assert scores["precision"] == pytest.approx(2 / 3) and scores["recall"] == pytest.approx(0.5)
    assert ari(["a", "a", "b", "b"], ["x", "x", "y", "y"]) == 1.0
    assert ari(["a", "a", "b", "b"], ["x", "y", "x", "y"]) < 0.0
