import pytest
from conftest import PLANTED, planted_sequences

from skill_pipeline.mining.baseline import (
    auto_discover_skills,
    baseline_sequences,
    calculate_similarity,
    extract_agent_pattern,
    find_common_sequences,
)
from skill_pipeline.mining.clustering import cluster_sequences
from skill_pipeline.mining.outcomes import analyse_outcomes
from skill_pipeline.mining.quality import (
    adjusted_rand,
    clustering_scores,
    interval_coverage,
    slot_scores,
    step_precision_recall,
)


def test_baseline_ngrams_hand_example():
    seqs = [list("abcab"), list("abcx")]
    found = dict(find_common_sequences(seqs))
    assert found == {("a", "b", "c"): 2}
    found = find_common_sequences([list("abcdabcd")], min_frequency=2)
    assert found[0] == (("a", "b", "c", "d"), 2) or found[0][1] == 2
    assert (("a", "b", "c", "d"), 2) in found and (("b", "c", "d"), 2) in found
    assert all(len(k) >= 3 for k, _ in found)


def test_baseline_similarity_grouping_and_tokens():
    assert calculate_similarity(list("abcde"), list("abcdx")) == pytest.approx(0.8)
    assert calculate_similarity([], []) == 1.0
    seqs = [list("abcde"), list("abcdx"), list("zzzzz"), list("abcde"), list("zzzzy")]
    res = auto_discover_skills(seqs, min_similarity=0.8, min_nodes=3)
    assert res.labels == [0, 0, 1, 0, 1]
    assert res.skills == [0]
    assert extract_agent_pattern(seqs) == list("abcde")
    evs = [{"run_id": "r", "seq": 2, "execution_order": 2, "event_type": "tool_call", "agent_name": None},
           {"run_id": "r", "seq": 1, "execution_order": 1, "event_type": "agent_call", "agent_name": "engineer"}]
    assert baseline_sequences(evs) == {"r": ["agent_call:engineer", "tool_call:system"]}


def test_miner_beats_baseline_on_planted_retry_data():
    seqs, labels = planted_sequences(300, PLANTED, noise=0.05, seed=7)
    ours = adjusted_rand(labels, cluster_sequences(seqs).labels)
    base = adjusted_rand(labels, auto_discover_skills(seqs).labels)
    assert ours >= 0.95 and ours > base


def test_quality_metrics_known_values():
    assert adjusted_rand([0, 0, 1, 1], ["x", "x", "y", "y"]) == 1.0
    assert adjusted_rand([0, 0, 1, 1], [0, 1, 0, 1]) < 0.0
    sc = clustering_scores([0, 0, 1, 1], [0, 0, 1, 2])
    assert sc["homogeneity"] == pytest.approx(1.0) and sc["completeness"] < 1.0
    pr = step_precision_recall(["a", "b", "x", "c"], ["a", "b", "c", "d"])
    assert pr["precision"] == pytest.approx(0.75) and pr["recall"] == pytest.approx(0.75)
    pred = {"r1": {"plot": "sin", "x_max": "10.0"}, "r2": {"plot": "cos", "x_max": "5", "extra": "q"}}
    truth = {"r1": {"function": "sin", "upper": 10}, "r2": {"function": "cos", "upper": 5}}
    s = slot_scores(pred, truth)
    assert s["precision"] == pytest.approx(4 / 5) and s["recall"] == 1.0
    assert s["mapping"] == {"function": "plot", "upper": "x_max"}
    assert interval_coverage([(0.1, 0.5), (0.6, 0.9)], [0.3, 0.95]) == 0.5


def test_outcomes():
    runs = [{"run_id": "a", "mode": "one_shot", "status": "completed"},
            {"run_id": "b", "mode": "one_shot", "status": "failed"},
            {"run_id": "c", "mode": "planning_and_control", "status": "executing"},
            {"run_id": "d", "mode": "one_shot", "status": "failed"}]
    seqs = {"a": ["agent_call:engineer", "code_exec:executor:ok"],
            "b": ["agent_call:engineer", "code_exec:executor:fail", "error:executor"],
            "d": ["agent_call:engineer", "code_exec:executor:fail", "error:executor"], "c": []}
    out = analyse_outcomes(runs, seqs, {"a": "c1", "b": "c1", "c": "c2", "d": "c1"})
    assert out["by_mode"]["one_shot"]["success_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert out["by_mode"]["planning_and_control"]["unfinished"] == 1
    assert out["by_mode"]["planning_and_control"]["success_rate"] is None
    assert out["by_cluster"]["c1"]["failures"] == 2
    assert out["last_step_before_failure"][0] == {"token": "code_exec:executor:fail", "runs": 2}
    assert out["failure_hotspots"][0]["token"] in ("code_exec:executor:fail", "error:executor")
