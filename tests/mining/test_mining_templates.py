import math

import pytest

from skill_pipeline.mining.patterns import mine_pattern
from skill_pipeline.mining.stats import failure_hotspots, wilson_interval
from skill_pipeline.mining.templates import (
    build_skill_candidate,
    extract_task_template,
    infer_kind,
    tokenize_text,
)
from skill_pipeline.mining.tokens import run_sequences

DESCS = {
    "r1": "Plot sin(x) over [0, 10] and save it as sine.png",
    "r2": "Plot cos(x) over [-5, 5] and save it as cosine.png",
    "r3": "Plot sin(x) over [0, 2.5] and save it as s2.png",
    "r4": "Plot tan(x) over [1, 3] and save it as t.png",
    "r5": "Plot cos(x) over [0, 10] and save it as data/c.png",
    "r6": "Plot sin(x) over [2, 4] and save it as sin24.png",
}


def test_task_template_slots_types_and_constants():
    t = extract_task_template(DESCS)
    assert t.template == "Plot {expression} over [{x_min}, {x_max}] and save it as {output_file}"
    kinds = {s.name: s.kind for s in t.slots}
    assert kinds == {"expression": "expression", "x_min": "integer", "x_max": "number", "output_file": "file_path"}
    slots = {s.name: s for s in t.slots}
    assert slots["expression"].examples == ["sin(x)", "cos(x)", "tan(x)"]
    assert slots["expression"].default == "sin(x)"
    assert slots["x_min"].default == 0 and all(s.required for s in t.slots)
    assert t.values["r2"] == {"expression": "cos(x)", "x_min": "-5", "x_max": "5", "output_file": "cosine.png"}
    assert t.render(expression="exp(x)", x_min=1, x_max=2, output_file="e.png") == \
        "Plot exp(x) over [1, 2] and save it as e.png"


def test_identical_descriptions_have_no_slots():
    t = extract_task_template({f"r{i}": "Compute the CMB power spectrum" for i in range(4)})
    assert t.slots == [] and t.template == "Compute the CMB power spectrum"


def test_tokenize_and_kinds():
    assert [w for w, _ in tokenize_text("save to out/data.csv now")] == ["save", "to", "out/data.csv", "now"]
    assert infer_kind(["1", "2", "3"]) == "integer"
    assert infer_kind(["1.5", "2"]) == "number"
    assert infer_kind(["a.png", "dir/b.csv"]) == "file_path"
    assert infer_kind(["red", "blue", "red", "blue", "red", "blue"]) == "enum"  # closed: every value recurs
    assert infer_kind(["red", "blue", "red"]) == "string"  # 'blue' seen once: the set may be open
    assert infer_kind(["cosmic shear", "galaxy clustering in DES"] * 4) == "string"  # open text, not a set
    assert infer_kind(["alpha", "beta", "gamma"]) == "string"


def test_wilson_known_values():
    lo, hi = wilson_interval(8, 10)
    assert math.isclose(lo, 0.4902, abs_tol=1e-3) and math.isclose(hi, 0.9433, abs_tol=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lo, hi = wilson_interval(10, 10)
    assert math.isclose(hi, 1.0, abs_tol=1e-9) and math.isclose(lo, 0.7225, abs_tol=1e-3)


def test_hotspot_finds_planted_failure_token():
    ok = [["a", "b", "c"]] * 8
    bad = [["a", "b", "boom", "c"]] * 4 + [["a", "c"]]
    hs = failure_hotspots(bad, ok)
    assert hs[0]["token"] == "boom" and hs[0]["failed_runs"] == 4 and hs[0]["log_odds"] > 2
    assert all(h["token"] != "a" for h in hs)


def _event(run, seq, etype, agent, **kw):
    e = {"run_id": run, "node_id": "n", "seq": seq, "execution_order": seq, "event_type": etype,
         "event_subtype": None, "agent_name": agent, "status": "completed", "meta": {}, "inputs": {},
         "outputs": {}, "duration_ms": 10}
    e.update(kw)
    return e


def make_runs():
    runs, events, files = [], {}, []
    for i, rid in enumerate(sorted(DESCS)):
        failed = i == 5
        evs = [_event(rid, 1, "agent_call", "engineer", meta={"cost_usd": 0.1 * (i + 1)}),
               _event(rid, 2, "llm_call", "engineer", meta={"cost_usd": 0.1 * (i + 1)})]
        if i in (1, 2):  # one retry
            evs += [_event(rid, 3, "code_exec", "executor", meta={"exit_code": 1}),
                    _event(rid, 4, "error", "executor"), _event(rid, 5, "agent_call", "engineer")]
        evs.append(_event(rid, 6, "code_exec", "executor", meta={"exit_code": 1 if failed else 0}))
        if failed:
            evs.append(_event(rid, 7, "error", "executor"))
        else:
            evs += [_event(rid, 8, "tool_call", "control", meta={"tool_name": "record_status"},
                           inputs={"arguments": {"status": "done", "step": i}}),
                    _event(rid, 9, "agent_call", "terminator")]
            files.append({"run_id": rid, "event_id": "e", "node_id": "n", "file_path": f"data/{rid}.png",
                          "file_type": "plot"})
        events[rid] = evs
        runs.append({"run_id": rid, "mode": "one_shot", "status": "failed" if failed else "completed",
                     "task_description": DESCS[rid], "started_at": "2026-01-01T00:00:00Z",
                     "completed_at": f"2026-01-01T00:{i:02d}:{10 * (i + 1) % 60:02d}Z", "meta": {}})
    return runs, events, files


def test_build_skill_candidate_end_to_end():
    runs, events, files = make_runs()
    seqs = run_sequences([e for evs in events.values() for e in evs])
    pattern = mine_pattern([seqs[r["run_id"]] for r in runs], cluster_id="c123")
    skill = build_skill_candidate(pattern, runs, events, files)
    assert set(skill) >= {"name", "title", "description", "category", "tags", "task_template", "steps",
                          "parameters", "expected_outputs", "statistics", "provenance"}
    assert skill["category"] == "one_shot" and skill["name"] == "one_shot_plot_expression"
    assert skill["title"] == "Plot an expression over a range"
    assert skill["task_template"].startswith("Plot {expression} over")
    assert skill["parameters"]["output_file"]["format"] == "file_path"
    assert "record_status_step" in skill["parameters"]  # varying tool argument
    assert "record_status_status" not in skill["parameters"]  # constant argument
    st = skill["statistics"]
    assert st["support"] == 6 and st["successes"] == 5 and st["failures"] == 1
    assert st["success_rate_ci95"][0] < 5 / 6 < st["success_rate_ci95"][1]
    # durations 10, 80, 150, 220, 290, 300 s
    assert st["duration_s"]["p50"] == pytest.approx(185.0)
    assert st["cost_usd"]["p50"] == pytest.approx(0.35)  # llm_call costs only, not doubled
    assert st["retries"] == {"0": 4, "1": 2}
    assert st["failure_hotspots"] == [] or st["failure_hotspots"][0]["token"] in (
        "code_exec:executor:fail", "error:executor")
    assert skill["expected_outputs"][0]["file_type"] == "plot"
    assert skill["provenance"] == {"source_runs": sorted(DESCS), "cluster_id": "c123", "reference_run": "r1"} or \
        skill["provenance"]["cluster_id"] == "c123"
    eng = [s for s in skill["steps"] if s["agent"] == "engineer"]
    assert eng and eng[0]["repeat"] == {"min": 1, "max": 2, "until": "success"}
    assert [(s["agent"], s["action"], s["tool"]) for s in skill["steps"] if not s["optional"]] == [
        ("engineer", "write code", None), ("executor", "execute code", None),
        ("control", "record status", "record_status"), ("terminator", "terminate", None)]
