"""Replay verification on real simulated workloads: stable skills become active, a mostly failing one stays
candidate, and crashing, looping or slow replays fail with their reason without raising."""
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from capture.store.capture_store import EVENTS, Batch, CaptureStore
from capture.store.migrate import upgrade
from skill_library import open_library
from skill_library.promotion import replay_records, status
from skill_pipeline.lib import warehouse
from skill_pipeline.lib.mining_steps import mine_store
from skill_pipeline.mining.compose import MiningParams
from skill_pipeline.verification.replay import (
    CODE_ACTION,
    ReplaySettings,
    ReplayTask,
    replay,
    replay_store,
    replay_tasks,
    shutdown_capture,
    unreplayed,
    verify_skill,
)
from workloads import fast_engine
from workloads.script import build_run_script
from workloads.simulate import simulate


def _mine(root: Path, url: str) -> Path:
    mine_store(url, root / "warehouse.duckdb", MiningParams(template_sample_runs=4, min_support=5),
               library=root / "library")
    return root / "library"


def _verify_all(root: Path, library: Path, settings: ReplaySettings) -> dict[str, tuple[dict, str]]:
    replay_store(settings)
    try:
        with warehouse.connect(root / "warehouse.duckdb") as con:
            return {name: verify_skill(con, library, name, settings, version)[1:]
                    for name, version in unreplayed(library)}
    finally:
        shutdown_capture()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_stable_skills_pass_replay_and_become_active_without_touching_their_support(tmp_path):
    url = f"sqlite:///{tmp_path / 'capture.db'}"
    simulate(runs=60, seed=4, engine="fast", url=url, modes=("one_shot",), families=("plot_function", "fit_model"),
             ground_truth=tmp_path / "truth.jsonl")
    library = _mine(tmp_path, url)
    support = {s["name"]: s["support"] for s in open_library(library).skills()}
    assert len(support) == 2 and all(status(library, name, "1.0.0") == "candidate" for name in support)
    settings = ReplaySettings(f"sqlite:///{tmp_path / 'replays.db'}", tmp_path / "work", tasks=6)
    outcome = _verify_all(tmp_path, library, settings)
    assert {name: s for name, (_, s) in outcome.items()} == dict.fromkeys(support, "active")
    for name, (stats, _) in outcome.items():
        assert stats["tried"] == 6 and stats["held_out"] == 6 and stats["passed"] >= 5
        assert stats["pass_wilson"][0] >= settings.threshold and stats["fitness_p50"] == 1.0
        assert replay_records(library, name)["1.0.0"]["status"] == "active"
    assert unreplayed(library) == []

    engine = create_engine(settings.store_url)
    with engine.connect() as conn:
        metas = [m for (m,) in conn.execute(text("SELECT meta FROM workflow_runs"))]
    engine.dispose()
    assert len(metas) == 12 and all('"replay"' in m and '"skill_applied"' in m for m in metas)
    remined = open_library(_mine(tmp_path, url))  # the capture store never saw a replay
    assert {s["name"]: s["support"] for s in remined.skills()} == support


@pytest.fixture(scope="module")
def failing(tmp_path_factory):
    """A one-shot fitting family whose runs mostly fail (16 rate-limited runs, 4 successes of one seed)."""
    root = tmp_path_factory.mktemp("failing")
    url = f"sqlite:///{root / 'capture.db'}"
    upgrade(url)
    scripts = [build_run_script(31, i, modes=("one_shot",), families=("fit_model",)) for i in range(400)]
    chosen = [s for s in scripts if s.outcome == "rate_limit"] + [s for s in scripts if s.outcome == "success"][:4]
    store, batch = CaptureStore.open(url), Batch()
    for script in chosen:
        fast_engine.add_run(script, batch)
    store.write_batch(batch)
    store.close()
    return root, _mine(root, url)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_skill_of_a_mostly_failing_family_stays_candidate_with_its_failures(failing, tmp_path):
    root, library = failing
    skills = open_library(library).skills()
    assert [(s["support"], s["success_rate"]) for s in skills] == [(20, 0.2)]
    settings = ReplaySettings(f"sqlite:///{tmp_path / 'replays.db'}", tmp_path / "work", tasks=6)
    (stats, outcome), = _verify_all(root, library, settings).values()
    assert outcome == "candidate" and stats["passed"] < stats["tried"] == 6
    assert any("agent crashed" in f and "429" in f for f in stats["failures"])
    assert status(library, skills[0]["name"], skills[0]["version"]) == "candidate"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_crashing_looping_and_slow_replays_fail_with_their_reason(failing, tmp_path):
    root, library = failing
    skill = open_library(library).get(open_library(library).skills()[0]["name"])
    with warehouse.connect(root / "warehouse.duckdb") as con:
        tasks = replay_tasks(con, skill, 20)
    good = next(t for t in tasks if t.code_worked and t.model_error is None)
    crash = next(t for t in tasks if t.model_error)
    broken = ReplayTask(good.source_run, good.task, good.params, good.held_out, code_worked=False)
    settings = ReplaySettings(f"sqlite:///{tmp_path / 'replays.db'}", tmp_path / "work")
    replay_store(settings)
    try:
        def run(task, **overrides):
            options = {"store_url": settings.store_url, "work_root": settings.work_root, **overrides}
            return replay(skill, task, **options)

        assert run(good).passed
        crashed = run(crash)
        assert not crashed.passed and crashed.reason.startswith("an agent crashed: ScriptedLLMError: Error code: 429")
        assert crashed.run_status == "failed"
        looping = run(good, max_round=3)
        assert not looping.passed and looping.reason == "did not reach the skill's last step within max_round=3"
        slow = run(good, timeout_s=0.0)
        assert not slow.passed and slow.reason == "timed out after 0 s"
        failing_code = run(broken)
        assert not failing_code.passed and failing_code.reason == "the last code execution failed"
    finally:
        shutdown_capture()


def test_replays_are_never_captured_into_the_mined_store(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'capture.db'}"
    monkeypatch.setenv("SKILLMINE_DATABASE_URL", url)
    with pytest.raises(ValueError, match="SKILLMINE_REPLAY_DATABASE_URL"):
        replay_store(ReplaySettings(url, tmp_path / "work"))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_skills_replay_command_replays_records_and_lists_the_status(failing, tmp_path, monkeypatch, capsys):
    import json

    from skillmine.cli import main

    root, library = failing
    monkeypatch.setenv("SKILLMINE_HOME", str(tmp_path / "home"))
    name = open_library(library).skills()[0]["name"]
    args = ["--library", str(library), "--warehouse", str(root / "warehouse.duckdb"),
            "--replay-url", f"sqlite:///{tmp_path / 'replays.db'}", "--tasks", "3"]
    assert main(["skills", "replay", name, *args, "--json"]) == 0
    (answer,) = json.loads(capsys.readouterr().out)
    assert answer["skill"] == name and answer["statistics"]["tried"] == 3 == len(answer["replays"])
    assert answer["status"] == "candidate" and all(r["run_id"] for r in answer["replays"])
    assert main(["skills", "list", "--library", str(library), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["skills"][0]["replay"] == "candidate"
    assert main(["skills", "replay", "no_such_skill", *args]) == 2
    assert "no skill named 'no_such_skill'" in capsys.readouterr().err
    assert (tmp_path / "home" / "replays").is_dir()  # replays ran their code under SKILLMINE_HOME


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_skill_whose_code_block_repeats_three_to_four_times_passes_replay(failing, tmp_path):
    """The walk loops the write-and-run block its minimum of 3 times, so the replayed run fits the skill (walked
    once, it would miss two rounds of both steps)."""
    root, library = failing
    skill = open_library(library).get(open_library(library).skills()[0]["name"])
    code = next(i for i, s in enumerate(skill["steps"]) if s["action"] == CODE_ACTION and not s.get("tool"))
    for step in skill["steps"][code - 1:code + 1]:
        step["repeat"] = {"min": 3, "max": 4, "until": "success"}
    with warehouse.connect(root / "warehouse.duckdb") as con:
        good = next(t for t in replay_tasks(con, skill, 20) if t.code_worked and t.model_error is None)
    settings = ReplaySettings(f"sqlite:///{tmp_path / 'replays.db'}", tmp_path / "work")
    replay_store(settings)
    try:
        result = replay(skill, good, store_url=settings.store_url, work_root=settings.work_root)
    finally:
        shutdown_capture()
    assert result.passed and result.fitness == 1.0, result
    engine = create_engine(settings.store_url)
    with engine.connect() as conn:
        executions = conn.execute(select(func.count()).select_from(EVENTS).where(
            EVENTS.c.run_id == result.run_id, EVENTS.c.event_type == "code_exec")).scalar_one()
    engine.dispose()
    assert executions == 3
