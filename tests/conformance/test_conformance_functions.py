"""Conformance of hand-made step sequences to hand-made skills: each deviation kind, fitness, best fit, precision."""
import pytest

from skill_pipeline.mining.conformance import (
    RunStep,
    SkillModel,
    best_fit,
    conform,
    precision,
    run_steps,
    step_label,
    token_label,
)
from skill_pipeline.mining.patterns import mine_pattern


def _skill(name="code_then_report", repeat=None):
    """engineer -> [executor] (optionally repeated) -> installer? -> control.record_status() -> terminator."""
    steps = [{"agent": "engineer", "action": "write code"},
             {"agent": "executor", "action": "execute code", **({"repeat": repeat} if repeat else {})},
             {"agent": "installer", "action": "install dependency", "optional": True},
             {"agent": "control", "action": "record status", "tool": "record_status"},
             {"agent": "terminator", "action": "terminate", "tool": "terminate_session"}]
    return {"name": name, "version": "1.0.0", "steps": steps}


E, X, I = "engineer|write code|", "executor|execute code|", "installer|install dependency|"
C, T = "control|record status|record_status", "terminator|terminate|terminate_session"


def _steps(*labels):
    return [RunStep(label, f"ev{i}") for i, label in enumerate(labels)]


def test_a_run_of_the_skill_fits_exactly_with_optional_steps_skipped_or_taken():
    model = SkillModel.from_skill(_skill(repeat={"min": 1, "max": 3}))
    for run in ([E, X, C, T], [E, X, I, C, T], [E, X, X, X, C, T]):
        result = conform(model, _steps(*run))
        assert result.fitness == 1.0 and result.deviations == [] and result.cost == 0


def test_each_deviation_kind_names_the_events_involved():
    model = SkillModel.from_skill(_skill(repeat={"min": 1, "max": 2}))
    missing = conform(model, _steps(E, C, T))
    assert [(d.kind, d.label, d.event_ids) for d in missing.deviations] == [("missing", X, ("ev0", "ev1"))]
    extra = conform(model, _steps(E, X, "researcher|research|", C, T))
    assert [(d.kind, d.event_ids) for d in extra.deviations] == [("extra", ("ev2",))]
    swapped = conform(model, _steps(E, X, T, C))
    assert [d.kind for d in swapped.deviations] == ["out_of_order"]
    assert swapped.deviations[0].event_ids[0] in ("ev2", "ev3") and swapped.cost == 2
    beyond = conform(model, _steps(E, X, X, X, C, T))
    assert [(d.kind, d.label, d.event_ids) for d in beyond.deviations] == [("repeated", X, ("ev3",))]
    twice = conform(model, _steps(E, X, C, C, T))
    assert [d.kind for d in twice.deviations] == ["repeated"]


def test_fitness_is_alignment_fitness_in_unit_interval():
    model = SkillModel.from_skill(_skill())
    assert model.min_cost == 4  # the empty run misses the four required steps
    one_missing = conform(model, _steps(E, C, T))
    assert one_missing.fitness == pytest.approx(1 - 1 / (3 + 4))
    nothing_alike = conform(model, _steps("a|b|", "c|d|"))
    assert nothing_alike.fitness == pytest.approx(1 - 6 / (2 + 4)) == 0.0
    assert conform(model, []).fitness == 0.0


def test_a_block_below_its_minimum_misses_the_steps_of_the_missing_iteration():
    model = SkillModel.from_skill(_skill(repeat={"min": 2, "max": 3}))
    result = conform(model, _steps(E, X, C, T))
    assert [(d.kind, d.label) for d in result.deviations] == [("missing", X)]


def test_best_fit_prefers_the_skill_with_the_highest_fitness():
    research = {"name": "research", "steps": [{"agent": "researcher", "action": "research"},
                                               {"agent": "terminator", "action": "terminate",
                                                "tool": "terminate_session"}]}
    models = [SkillModel.from_skill(research), SkillModel.from_skill(_skill())]
    best = best_fit(models, _steps(E, X, C, T))
    assert best.skill == "code_then_report" and best.fitness == 1.0
    assert best_fit([], _steps(E)) is None


def test_precision_counts_behaviour_no_run_shows():
    model = SkillModel.from_skill(_skill(repeat={"min": 1, "max": 2}))
    assert precision(model, [[E, X, C, T], [E, X, I, C, T], [E, X, X, C, T], [E, X, X, I, C, T]]) == 1.0
    narrow = precision(model, [[E, X, C, T]])
    assert 0.0 < narrow < 1.0  # the skill also allows a retry and the installer there


def test_run_steps_follow_the_miner_tokens_and_match_a_mined_skills_labels():
    events = [
        {"id": "a", "seq": 1, "execution_order": 1, "event_type": "agent_call", "agent_name": "engineer"},
        {"id": "b", "seq": 2, "execution_order": 2, "event_type": "agent_call", "agent_name": "executor"},
        {"id": "c", "seq": 3, "execution_order": 3, "event_type": "code_exec", "agent_name": "executor",
         "meta": {"exit_code": 1}},
        {"id": "d", "seq": 4, "execution_order": 4, "event_type": "error", "agent_name": "executor"},
        {"id": "e", "seq": 5, "execution_order": 5, "event_type": "tool_call", "agent_name": "_Group_Tool_Executor",
         "meta": {"tool_name": "record_status", "caller": "control"}},
    ]
    steps = run_steps(events)
    assert [(s.label, s.event_id) for s in steps] == [(E, "a"), (X, "c"), (C, "e")]
    assert token_label("error:executor") is None
    assert step_label("control", "record status", "record_status") == C
    pattern = mine_pattern([["agent_call:engineer", "code_exec:executor", "tool_call:control:record_status"]] * 3)
    assert conform(SkillModel.from_pattern(pattern), steps).fitness == 1.0


def test_the_pruned_best_fit_equals_the_full_ranking():
    import random

    from skill_pipeline.verification.runs import Assessor

    skills = [_skill("retrying", repeat={"min": 1, "max": 3}), _skill("once"),
              {"name": "research", "steps": [{"agent": "researcher", "action": "research"},
                                             {"agent": "control", "action": "record status", "tool": "record_status"},
                                             {"agent": "terminator", "action": "terminate",
                                              "tool": "terminate_session"}]}]
    assessor = Assessor([SkillModel.from_skill(s) for s in skills])
    rng = random.Random(0)
    vocabulary = [E, X, I, C, T, "researcher|research|", "planner|plan|"]
    for _ in range(300):
        steps = _steps(*rng.choices(vocabulary, k=rng.randint(0, 9)))
        best, ranked = assessor.best(steps), assessor.ranked(steps)
        assert (best.skill, best.fitness, best.deviations) == (ranked[0].skill, ranked[0].fitness,
                                                                ranked[0].deviations)


def test_steps_of_a_run_shape_are_reused_with_each_runs_own_event_ids():
    from skill_pipeline.verification.runs import StepShapes

    def run(prefix, exit_code):
        rows = [("agent_call", None, "engineer", {}), ("code_exec", "start", "executor", {}),
                ("code_exec", "complete", "executor", {"exit_code": exit_code}),
                ("tool_call", None, "_Group_Tool_Executor", {"tool_name": "record_status"}),
                ("message", None, "control", {})]
        return [{"id": f"{prefix}{i}", "seq": i, "execution_order": i, "event_type": t, "event_subtype": sub,
                 "agent_name": a, "meta": meta} for i, (t, sub, a, meta) in enumerate(rows)]

    shapes = StepShapes()
    for events in (run("a", 0), run("b", 0), run("c", 1), [dict(e, id=None) for e in run("d", 0)]):
        assert shapes.steps(events) == run_steps(events)
    assert [s.event_id for s in shapes.steps(run("e", 0))] == ["e0", "e2", "e3"]
