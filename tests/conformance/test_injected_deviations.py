"""Conformance flags deviations injected into real simulated runs, against the skills mined from those runs.

A fast-engine workload is mined with the pipeline's mining path; every successful run that fits its best skill
exactly gets one injected deviation at a time: its (first) executor step skipped, an installer detour inserted, or
a control step swapped with the step before it. Recall: injections reported with the right kind and event;
precision: reported deviations that are an injection.
"""
import random

import pytest
from store_events import events_by_run

from skill_pipeline.lib.mining_steps import mine_store
from skill_pipeline.mining.conformance import RunStep, SkillModel, best_fit, conform, run_steps
from workloads.simulate import simulate

INSTALLER = "installer|install dependency|"


def _inject(kind, steps, rng):
    """(deviated steps, predicate telling whether a reported deviation is this injection) or None when the run
    has no place for it."""
    steps = list(steps)
    if kind == "skip_executor":
        spots = [i for i, s in enumerate(steps) if s.label.startswith("executor|")]
        if not spots:
            return None
        label = steps.pop(spots[0]).label
        return steps, lambda d: d.kind == "missing" and d.label == label
    if kind == "installer_detour":
        at = rng.randrange(1, len(steps))
        steps.insert(at, RunStep(INSTALLER, "injected-installer"))
        return steps, lambda d: d.kind in ("extra", "repeated") and d.event_ids == ("injected-installer",)
    spots = [i for i, s in enumerate(steps) if s.label.startswith("control|") and i > 0
             and steps[i - 1].label != s.label]
    if not spots:
        return None
    i = rng.choice(spots)
    moved = {steps[i].event_id, steps[i - 1].event_id}
    steps[i - 1], steps[i] = steps[i], steps[i - 1]
    return steps, lambda d: d.kind == "out_of_order" and set(d.event_ids) <= moved


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_injected_deviations_are_found_with_high_precision_and_recall(tmp_path):
    url = f"sqlite:///{tmp_path / 'capture.db'}"
    simulate(runs=200, seed=5, engine="fast", url=url, ground_truth=tmp_path / "truth.jsonl")
    mined, _ = mine_store(url, tmp_path / "warehouse.duckdb")
    models = [SkillModel.from_skill(t.candidate) for t in mined.templates if t.publishable]
    events, statuses = events_by_run(url)
    rng = random.Random(3)
    clean, found, injected, reported, true_reports = 0, 0, 0, 0, 0
    for run_id in sorted(events):
        if statuses[run_id] != "completed":
            continue
        steps = run_steps(events[run_id])
        best = best_fit(models, steps)
        if best is None or best.fitness < 1.0:
            continue
        clean += 1
        model = next(m for m in models if m.name == best.skill)
        for kind in ("skip_executor", "installer_detour", "reorder_control"):
            case = _inject(kind, steps, rng)
            if case is None:
                continue
            deviated, is_injection = case
            result = conform(model, deviated)
            injected += 1
            found += any(is_injection(d) for d in result.deviations)
            reported += len(result.deviations)
            true_reports += sum(is_injection(d) for d in result.deviations)
            assert result.fitness < 1.0
    assert clean >= 100 and injected >= 250
    recall, precision = found / injected, true_reports / reported
    print(f"clean runs {clean}, injections {injected}, recall {recall:.3f}, precision {precision:.3f}")
    assert recall >= 0.95 and precision >= 0.95, (recall, precision)
