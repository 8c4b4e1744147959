"""The external workload generator (``benchmarks/external_workload``): deterministic by seed, written apart from
the simulator, and shaped as its README promises (paraphrases, look-alike behaviours, noise, failures, real-looking
events in the capture store)."""

import ast
from collections import Counter
from pathlib import Path

from sqlalchemy import create_engine, text

from benchmarks.external_workload import BEHAVIOURS, BY_ID, generate, read_truth
from benchmarks.external_workload.generate import pick_behaviour
from benchmarks.external_workload.runs import build_script

PACKAGE = Path(__file__).resolve().parents[2] / "benchmarks" / "external_workload"


def _scripts(n: int, seed: int = 1) -> list:
    return [build_script(pick_behaviour(seed, i), seed, i) for i in range(n)]


def test_the_generator_imports_nothing_of_the_simulator_or_the_miner() -> None:
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert not name.startswith(("workloads", "skill_pipeline")), f"{path.name} imports {name}"


def test_catalogue_has_the_hard_cases() -> None:
    assert len(BEHAVIOURS) >= 11
    assert {b.mode for b in BEHAVIOURS} >= {"one_shot", "planning_and_control", "idea_generation"}
    for b in BEHAVIOURS:
        phrasings = b.request.paraphrases
        assert len(set(phrasings)) >= 4, b.skill_id
        for phrasing in phrasings:
            assert all("{" + slot + "}" in phrasing for slot in b.request.slots), (b.skill_id, phrasing)
    camb, klass = BY_ID["doc_lookup_camb"].success_path, BY_ID["doc_lookup_class"].success_path
    assert [s for s in camb if s not in klass] == ["researcher.retrieve_camb_docs"]
    assert len(camb) == len(klass)
    assert BY_ID["histogram_plot"].success_path == BY_ID["scatter_plot"].success_path
    assert BY_ID["histogram_plot"].request.paraphrases != BY_ID["scatter_plot"].request.paraphrases
    planned = [b.success_path for b in BEHAVIOURS if b.mode == "planning_and_control"]
    assert len(planned) >= 4 and all(p[:11] == planned[0][:11] for p in planned)


def test_scripts_are_deterministic_and_noisy_at_the_stated_rates() -> None:
    scripts = _scripts(2000)
    assert [s.truth() for s in scripts[:50]] == [s.truth() for s in _scripts(50)]
    assert [s.truth() for s in _scripts(50, seed=2)] != [s.truth() for s in scripts[:50]]
    failures = sum(s.outcome == "failure" for s in scripts) / len(scripts)
    assert 0.12 <= failures <= 0.18
    noise = Counter(n.split(":")[0] for s in scripts for n in s.noise)
    assert all(0.05 * len(scripts) <= noise[k] <= 0.13 * len(scripts) for k in ("stray", "missing", "repeated"))
    assert sum(s.retries > 0 and s.outcome == "success" for s in scripts) > 100
    used = Counter((s.behaviour.skill_id, s.paraphrase) for s in scripts)
    assert all(used[(b.skill_id, i)] for b in BEHAVIOURS for i in range(len(b.request.paraphrases)))
    for s in scripts:
        assert all(str(v) in s.task for v in s.params.values())


def test_generated_store_looks_like_captured_cmbagent_runs(tmp_path: Path) -> None:
    urls = [f"sqlite:///{tmp_path / f'{n}.db'}" for n in ("a", "b")]
    for url, name in zip(urls, ("a", "b"), strict=True):
        generate(runs=60, seed=4, url=url, truth_path=tmp_path / f"{name}.jsonl")
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()
    truth = {t["run_id"]: t for t in read_truth(tmp_path / "a.jsonl")}
    query = ("SELECT id, run_id, execution_order, depth, event_type, event_subtype, agent_name, status, meta, "
             "outputs FROM execution_events ORDER BY run_id, execution_order")
    stores = []
    for url in urls:
        engine = create_engine(url)
        with engine.connect() as con:
            stores.append([tuple(r) for r in con.execute(text(query))])
            files = dict(con.execute(text("SELECT event_id, file_type FROM files")).fetchall())
            costs = {r[0] for r in con.execute(text("SELECT event_id FROM cost_records"))}
            runs = dict(con.execute(text("SELECT id, status FROM workflow_runs")).fetchall())
        engine.dispose()
    assert stores[0] == stores[1]
    events = stores[0]
    assert set(runs) == set(truth)
    assert all(runs[r] == ("completed" if t["outcome"] == "success" else "failed") for r, t in truth.items())
    per_run = Counter(e[1] for e in events)
    for run_id, t in truth.items():
        if t["outcome"] == "success":
            low, high = (20, 80) if t["mode"] == "one_shot" else (60, 400)
            assert low <= per_run[run_id] <= high, (t["skill_id"], per_run[run_id])
    kinds = Counter(e[4] for e in events)
    assert {"agent_call", "llm_call", "tool_call", "code_exec", "file_gen", "handoff", "message",
            "state_transition", "error"} <= set(kinds)
    for event_id, _, _, depth, etype, _, agent, _, meta, outputs in events:
        if etype == "file_gen":
            assert files[event_id] in {"code", "plot", "data", "report", "plan"} and depth == 2
        if etype == "llm_call":
            assert event_id in costs and '"cost_usd"' in meta
        if etype == "code_exec":
            assert '"exit_code"' in outputs
        if etype == "tool_call":
            assert agent == "_Group_Tool_Executor" and '"tool_name"' in meta
