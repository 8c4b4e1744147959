"""The documentation checks catch what a user would not accept (the titles and parameters the miner once
published) and let plain documentation through."""

import pytest

from .documentation import documentation_flags, is_imperative

PLOT = {"title": "Plot an expression over a range", "steps": [{"action": "write code"}, {"action": "execute code"}],
        "parameters": {"expression": {"description": "mathematical expression to work on (after 'Plot' in the request)"},
                       "x_min": {"description": "lower end of the range"}}}
PLOT_RUNS = ["Plot sin(x) over [0, 3]", "Plot x**2 over [1, 5]"]
PLOT_VALUES = [{"expression": "sin(x)", "x_min": "0"}, {"expression": "x**2", "x_min": "1"}]


def _skill(title: str, **parameters: str) -> dict:
    return {**PLOT, "title": title, "parameters": {n: {"description": d} for n, d in parameters.items()}}


def test_plain_documentation_passes() -> None:
    assert documentation_flags(PLOT, PLOT_RUNS, PLOT_VALUES) == []
    one_run = {**PLOT, "title": "Write code and execute code, writing png files", "parameters": {}}
    assert documentation_flags(one_run, ["Plot y=x^2"], [{}]) == []
    asked = {**PLOT, "title": "Find the CLASS input parameter for a target", "parameters": {},
             "task_template": "Find the CLASS input parameter for {target}",
             "steps": [{"action": "call retrieve class docs"}]}
    # the request's own words (several runs asked them) and its steps' words are the skill's, whatever a stray
    # member was given
    stray = [{"target": "CLASS"}, {"target": "CAMB"}]
    assert documentation_flags(asked, ["Find the CLASS ...", "Which CAMB ..."], stray) == []
    common = {**PLOT, "task_template": "Plot {expression} over [{x_min}, {x_max}]"}  # other skills' runs ask it too
    assert documentation_flags(common, PLOT_RUNS[:1], PLOT_VALUES[:1], shared_requests={common["task_template"]}) == []


@pytest.mark.parametrize(("skill", "tasks", "values", "flag"), [
    (_skill("A string"), PLOT_RUNS, PLOT_VALUES, "type name"),
    (_skill("Propose project ideas in an enum"), PLOT_RUNS, PLOT_VALUES, "type name"),
    (_skill("My cobaya chain is ….…_trisp The structure of the file is"), ["My cobaya chain is at x"], [{}],
     "not an instruction"),
    (_skill("What is a subject"), PLOT_RUNS, PLOT_VALUES, "not an instruction"),
    (_skill("Data is ticket data"), ["data is ticket data", "ticket data is present"], [{}, {}], "not an instruction"),
    (_skill("Plot y=…"), ["Plot y=2x", "Plot y=x^2"], [{"detail": "2x"}, {"detail": "x^2"}], "elided"),
    (_skill("Plot sin(x) over a range"), PLOT_RUNS, PLOT_VALUES, "repeats a member run's value 'sin(x)'"),
    (_skill("Compute the mean of column velocity in an input file"),
     ["Compute the mean of column velocity in a.csv", "Compute the mean of column flux in b.csv"],
     [{"input_file": "a.csv"}, {"input_file": "b.csv"}], "true parameter value 'velocity'"),
    (_skill("Download stock prices of tech bigs"), ["download stock prices of tech bigs of US firms"], [{}],
     "repeats its request"),
    (_skill("Plot an expression", detail="detail (after 'Plot y=' in the request)"), PLOT_RUNS, PLOT_VALUES,
     "'detail' is named for its place"),
    (_skill("Plot an expression", input_file="value after 'of stellar_mass in'"), PLOT_RUNS,
     [{"column": "stellar_mass"}, {"column": "redshift"}], "repeats a member run's value 'stellar_mass'"),
    (_skill("Plot an expression", enum="enum"), PLOT_RUNS, PLOT_VALUES, "description is a type name"),
])
def test_what_a_user_would_not_accept_is_flagged(skill: dict, tasks: list, values: list, flag: str) -> None:
    truth = [{"column": "velocity"}, {"column": "flux"}] if "velocity" in skill["title"] else ()
    flags = documentation_flags(skill, tasks, values, truth)
    assert any(flag in f for f in flags), flags


@pytest.mark.parametrize(("title", "expected"), [("Plot an expression", True), ("Generate ideas", True),
                                                 ("What is CMB?", False), ("Once I approve the plan, map it", False),
                                                 ("Data is ticket data", False)])
def test_an_instruction_opens_with_a_verb(title: str, expected: bool) -> None:
    assert is_imperative(title) is expected
