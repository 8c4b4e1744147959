"""Hand-off helpers: slot values read back from a mined template, and library-shaped candidates."""

from skill_pipeline.lib.candidates import library_errors, to_library_candidate, with_statistics
from skill_pipeline.lib.slot_values import values_from_task

MINED = {
    "name": "fit_model_engineer", "title": "Fit a {model} model", "description": "Mined from 6 runs",
    "category": "one_shot", "tags": ["engineer"], "task_template": "Fit a {model} model to {data_file}",
    "steps": [{"agent": "engineer", "action": "engineer", "tool": None, "event_type": "agent_call",
               "optional": False, "repeat": {"min": 1, "max": 3, "until": "success"},
               "expected_outputs": ["plot"], "frequency": 1.0}],
    "parameters": {"model": {"type": "string", "required": True, "default": "linear", "examples": ["linear"],
                             "enum": None, "description": "model"},
                   "data_file": {"type": "string", "required": True, "default": "a.csv", "examples": ["a.csv"],
                                 "description": "file", "format": "file_path"}},
    "expected_outputs": [{"file_type": "plot", "share": 1.0}],
    "statistics": {"support": 6, "successes": 5, "failures": 1, "success_rate": 0.8333,
                   "success_rate_ci95": [0.4365, 0.9699], "repeatability": {"mean_similarity": 0.9},
                   "duration_s": {"p50": 12.0, "p90": None}, "cost_usd": {"p50": 0.1, "p90": 0.2},
                   "retries": {"0": 4, "2": 2}, "failure_stop_steps": [{"step": 0, "runs": 1}]},
    "provenance": {"source_runs": ["r1", "r2"], "cluster_id": "c1", "reference_run": "r1"},
    "slot_values": {"r1": {"data_file": "a.csv"}},
}


def test_values_from_task():
    assert values_from_task("Fit a {model} model to {data_file}", "Fit a linear model to d 1.csv") == {
        "model": "linear", "data_file": "d 1.csv"}
    assert values_from_task("Fit a {model} model to {data_file}", "Plot sin(x)") == {}
    assert values_from_task("no slots here", "no slots here") == {}


def test_library_candidate_validates_and_keeps_only_schema_fields():
    candidate = to_library_candidate(MINED)
    assert library_errors(candidate) == []
    assert candidate["steps"] == [{"agent": "engineer", "action": "engineer", "tool": None, "optional": False,
                                   "repeat": {"min": 1, "max": 3, "until": "success"},
                                   "expected_outputs": [{"type": "plot"}]}]
    assert "format" not in candidate["parameters"]["data_file"]
    assert "enum" not in candidate["parameters"]["model"]
    assert candidate["statistics"] == {"support": 6, "success_rate": 0.8333, "success_wilson": [0.4365, 0.9699],
                                       "repeatability": 0.9, "duration_s": {"p50": 12.0},
                                       "cost_usd": {"p50": 0.1, "p90": 0.2}, "retries": {"mean": 0.6667, "max": 2},
                                       "failure_hotspots": [{"step": 0, "failure_rate": 0.1667}]}
    wider = with_statistics(candidate, {**MINED["statistics"], "support": 12}, ["r1", "r2", "r3"])
    assert wider["statistics"]["support"] == 12 and wider["provenance"]["source_runs"] == ["r1", "r2", "r3"]
    assert candidate["statistics"]["support"] == 6


def test_library_errors_name_the_bad_field():
    broken = {**to_library_candidate(MINED), "steps": [{"agent": "", "action": "x"}]}
    assert any(e.startswith("steps[0].agent") or "steps" in e for e in library_errors(broken))
