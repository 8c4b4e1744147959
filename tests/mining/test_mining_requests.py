"""Requests within a behaviour: what the task text splits and what it must not (issue 11, item 3).

Hand-made run sets with known answers: a subject word that decides a tool, parameter kinds that tell two requests
with the same steps and values apart, and long parameter values that must not fragment a request by wording.
"""
import random

import numpy as np

from skill_pipeline.mining.skill_groups import _average_linkage, group_runs
from skill_pipeline.mining.task_families import EXPRESSION, normalise_description
from skill_pipeline.mining.templates import infer_kind

ANSWER = ["agent_call:researcher_response_formatter", "code_exec:executor:ok", "tool_call:control:record_status",
          "tool_call:terminator:terminate_session"]
PLOT = ["agent_call:engineer", "agent_call:engineer_response_formatter", "code_exec:executor:ok",
        "tool_call:control:record_status", "tool_call:terminator:terminate_session"]


def _found(groups, truth):
    return sorted((sorted({truth[r] for r in g.run_ids}), g.size) for g in groups)


def test_a_subject_word_that_decides_the_tool_splits_one_wording_and_cut_runs_follow_their_subject():
    """One wording names one of two manuals; each manual has its own retrieval tool. The wording family cannot
    predict the tool, the word naming the manual does: two skills. Runs that failed before the tool was called
    join the skill of the manual they named."""
    rng = random.Random(2)
    settings = ["massive neutrinos", "the helium fraction", "lensing", "the optical depth", "dark energy"]
    wordings = ["Look up in the {m} manual how {s} is configured", "Which {m} option controls {s}? Explain it",
                "Find the {m} input for {s} and describe its effect"]
    seqs, descs, outcomes, truth = {}, {}, {}, {}
    for manual in ("Alpha", "Borealis"):
        tool = f"tool_call:researcher:retrieve_{manual.lower()}_docs"
        for i in range(36):
            rid = f"{manual}-{i:02d}"
            failed = i % 9 == 8
            seqs[rid] = ["agent_call:researcher", "agent_call:researcher_response_formatter"] if failed \
                else [tool, *ANSWER]
            descs[rid] = wordings[i % 3].format(m=manual, s=rng.choice(settings))
            outcomes[rid], truth[rid] = ("failure" if failed else "success"), manual
    groups = group_runs(seqs, descs, dict.fromkeys(seqs, "one_shot"), outcomes)
    assert _found(groups, truth) == [(["Alpha"], 36), (["Borealis"], 36)]


def test_a_detour_no_word_predicts_does_not_split_even_with_many_words():
    """A stray installer step in a third of the runs, whatever they asked about: many topic words are tried as
    predictors, none passes the test, so the request stays one skill."""
    rng = random.Random(4)
    topics = ["galaxy mergers", "cosmic voids", "radio bursts", "exoplanet atmospheres", "tidal streams",
              "dark energy", "neutron stars", "quasar outflows"]
    seqs, descs = {}, {}
    for i in range(60):
        rid = f"r{i:02d}"
        seqs[rid] = [*PLOT[:2], "agent_call:installer", *PLOT[2:]] if rng.random() < 0.33 else list(PLOT)
        descs[rid] = f"Summarise recent results on {rng.choice(topics)} in a figure"
    groups = group_runs(seqs, descs, dict.fromkeys(seqs, "one_shot"))
    assert [g.size for g in groups] == [60]


def test_same_steps_and_values_but_different_parameter_kinds_are_two_requests():
    """Two requests over the same tables and columns with the same steps: one always asks for a number of bins,
    the other never has a number. Their paraphrases (same kinds) stay together."""
    rng = random.Random(6)
    columns, tables = ["flux", "redshift", "mass", "colour", "radius"], ["cat_a.csv", "cat_b.csv", "cat_c.csv"]
    requests = {
        "histogram": ["Histogram {c} from {t} with {n} bins", "Show how {c} in {t} is distributed over {n} bins"],
        "scatter": ["Scatter {c} against {d} from {t}", "Draw {c} versus {d} using {t} as points"],
    }
    seqs, descs, truth = {}, {}, {}
    for request, wordings in requests.items():
        for i in range(40):
            rid = f"{request}-{i:02d}"
            c, d = rng.sample(columns, 2)
            seqs[rid], truth[rid] = list(PLOT), request
            descs[rid] = wordings[i % 2].format(c=c, d=d, t=rng.choice(tables), n=rng.randint(10, 80))
    groups = group_runs(seqs, descs, dict.fromkeys(seqs, "one_shot"))
    assert _found(groups, truth) == [(["histogram"], 40), (["scatter"], 40)]
    assert {g.wordings for g in groups} == {2}


def test_long_parameter_values_do_not_fragment_a_request_by_wording():
    """A request whose parameter (what the module does) is longer than its wording: runs asking for one purpose
    in any wording may cluster by that purpose. Such a "wording" recurs whole inside the runs of the others, so
    it is a value of the same request: one skill."""
    rng = random.Random(8)
    purposes = ["converts redshifts into comoving distances for a flat cosmology",
                "rebins galaxy spectra onto a common wavelength grid",
                "estimates angular power spectra from healpix sky maps",
                "builds mock photometric catalogues from a luminosity function",
                "computes two-point correlation functions with jackknife errors",
                "reads fits catalogues and cross-matches sources by position"]
    wordings = ["Create a plan and then the code for a module which {p}",
                "Plan and implement a Python module that {p}",
                "Break the work down and write a reusable Python package that {p}",
                "Design, then code, a small library that {p}"]
    seqs, descs = {}, {}
    for i in range(120):
        rid = f"m{i:03d}"
        seqs[rid] = ["agent_call:planner", "tool_call:planner:record_plan", *PLOT]
        descs[rid] = rng.choice(wordings).format(p=rng.choice(purposes))
    groups = group_runs(seqs, descs, dict.fromkeys(seqs, "planning_and_control"))
    assert [g.size for g in groups] == [120]


def test_hyphenated_words_are_words_not_expressions():
    assert normalise_description("Make a step-by-step plan with a 75-bin histogram") == \
        "Make a step-by-step plan with a <num>-bin histogram"
    assert normalise_description("Plot x-y and 1-x**2 and g-r") == "Plot <expr> and <expr> and <expr>"
    # the same rule wherever an expression is recognised: slot kinds and the template's words
    assert infer_kind(["non-linear", "step-by-step", "well-known"]) == "string"
    assert infer_kind(["x-y", "alpha-beta*2", "sin(x)-cos(x)"]) == "expression"
    assert not any(EXPRESSION.search(w) for w in ("step-by-step", "non-linear", "75-bin"))


def test_average_linkage_never_joins_items_kept_apart():
    similarity = np.array([[1.0, 0.9, 0.8], [0.9, 1.0, 0.85], [0.8, 0.85, 1.0]])
    apart = np.zeros((3, 3), dtype=bool)
    assert sorted(map(sorted, _average_linkage(similarity, apart, 0.5))) == [[0, 1, 2]]
    apart[0, 2] = apart[2, 0] = True
    assert sorted(map(sorted, _average_linkage(similarity, apart, 0.5))) == [[0, 1], [2]]
    assert sorted(map(sorted, _average_linkage(similarity, np.zeros((3, 3), dtype=bool), 0.95))) == [[0], [1], [2]]
