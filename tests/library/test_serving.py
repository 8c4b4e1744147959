"""Which skills consumers are served: every skill of a library that verifies none; once it holds a replay record,
only versions that passed replay, candidates when asked (``Library.search``, ``Library.serves`` and the AG2 skill
tools over them)."""

import json

import pytest
from conftest import plot_candidate, search_candidate, table_candidate, variant

from skill_library import open_library, publish
from skill_library.ag2 import SkillTools
from skill_library.promotion import record_replays, served_check, verifying


@pytest.fixture
def lib(tmp_path):
    """Release 2 of a library: plot_function 1.1.0 (1.0.0 before), summarise_dataset and literature_search 1.0.0."""
    root = tmp_path / "lib"
    publish(root, [plot_candidate(), table_candidate(), search_candidate()])
    publish(root, [variant(plot_candidate(), lambda d: d.update(tags=["matplotlib", "maths"])), table_candidate(),
                   search_candidate()])
    return root


def hits(library, query, **kw):
    return [h.name for h in open_library(library).search(query, **kw)]


def test_a_library_that_verifies_nothing_serves_every_skill(lib):
    assert not verifying(lib)
    library = open_library(lib)
    assert all(library.serves(s["name"]) for s in library.skills())
    assert hits(lib, "plot") == ["plot_function"]
    assert [h["name"] for h in json.loads(SkillTools(lib).find_skills("plot"))] == ["plot_function"]


def test_once_verifying_only_promoted_current_versions_are_served(lib):
    record_replays(lib, "plot_function", "1.0.0", {"tried": 4, "passed": 4}, "active")  # an older version
    record_replays(lib, "literature_search", "1.0.0", {"tried": 4, "passed": 4}, "active")
    record_replays(lib, "summarise_dataset", "1.0.0", {"tried": 4, "passed": 0}, "candidate")
    assert verifying(lib)
    check = served_check(lib)
    assert [check(n, "1.0.0") for n in ("plot_function", "literature_search", "summarise_dataset")] == [
        True, True, False]
    assert check("plot_function", "1.1.0") is False
    library = open_library(lib)
    assert {s["name"]: library.serves(s["name"]) for s in library.skills()} == {
        "literature_search": True, "plot_function": False, "summarise_dataset": False}
    assert all(library.serves(s["name"], include_candidates=True) for s in library.skills())
    assert hits(lib, "plot") == [] and hits(lib, "plot", include_candidates=True) == ["plot_function"]
    assert hits(lib, "papers") == ["literature_search"]

    record_replays(lib, "plot_function", "1.1.0", {"tried": 4, "passed": 4}, "active")
    assert hits(lib, "plot") == ["plot_function"]  # read when asked: a long-lived Library sees promotions


def test_skill_tools_serve_candidates_only_when_asked(lib):
    record_replays(lib, "literature_search", "1.0.0", {"tried": 4, "passed": 4}, "active")
    tools, everything = SkillTools(lib), SkillTools(lib, include_candidates=True)
    assert tools.find_skills("plot") == "no skill matches 'plot'"
    assert [h["name"] for h in json.loads(everything.find_skills("plot"))] == ["plot_function"]
    refused = [tools.load_skill("plot_function"), tools.instantiate_skill("plot_function", '{"function": "x"}')]
    for answer in refused:
        assert answer == ("error: skill 'plot_function' 1.1.0 is a candidate that has not passed replay "
                          "verification; this chat is served verified skills only")
    assert everything.load_skill("plot_function").startswith("# Plot a function\n")
    assert json.loads(everything.instantiate_skill("plot_function", '{"function": "x"}'))["task"] == \
        "Plot x over [0, 10]"
    assert tools.load_skill("literature_search").startswith("# ")
    assert tools.load_skill("no_such_skill").startswith("error: no skill named 'no_such_skill'")
