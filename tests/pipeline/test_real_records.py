"""The real CMBAgent/MARS records (tests/fixtures), imported with every importer and mined with the defaults:
the job succeeds and publishes sensible skills for the plotting, idea-generation, planning-and-control and cobaya
runs, each step list in an order some member run follows."""

from collections.abc import Callable
from pathlib import Path

from capture.importers import import_cmbagent_db, import_cmbagent_history, import_cmbagent_trials
from skill_library import open_library

from .conftest import open_store
from .helpers import checks, run_job_on


def _import_everything(root: Path, url: str) -> None:
    cmb = root / "cmbagent"
    store = open_store(url)
    try:
        for db in sorted((cmb / "mars_sqlite").glob("*.db")):
            import_cmbagent_db(db, store)
        for folder in ("mars_sessions_2026-02-18", "mars_idea_generation_task", "upstream_cmbagent_history"):
            import_cmbagent_history(cmb / folder, store)
        import_cmbagent_trials(cmb / "benchmarks_cmbagent_trials.jsonl", store)
    finally:
        store.close()


def _agents(skill: dict) -> list[str]:
    return [s["agent"] for s in skill["steps"]]


def test_real_records_mine_with_defaults_into_sensible_skills(fixture_path: Callable[..., Path], tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'capture.db'}"
    _import_everything(fixture_path(), url)
    result = run_job_on(url, tmp_path)
    assert result.success
    failed = {name for name, passed in checks(result).items() if not passed}
    assert failed <= {"clustering_quality"}  # a data-dependent quality signal: it warns, never blocks
    skills = open_library(tmp_path / "library").skills(include_deprecated=False)
    docs = {s["name"]: open_library(tmp_path / "library").get(s["name"]) for s in skills}
    by_category: dict[str, list[dict]] = {}
    for doc in docs.values():
        by_category.setdefault(doc["category"], []).append(doc)
    assert {"one_shot", "planning_and_control"} <= set(by_category)
    assert by_category.keys() & {"idea_generation", "denario_research"}

    plotting = [d for d in by_category["one_shot"] if d["task_template"].lower().startswith("plot")]
    assert plotting, [d["task_template"] for d in by_category["one_shot"]]
    plot = max(plotting, key=lambda d: d["statistics"]["support"])
    agents = _agents(plot)
    assert "engineer" in agents and "executor" in agents
    assert agents.index("engineer") < agents.index("executor")  # code is written before it is run
    assert plot["statistics"]["success_rate"] > 0

    cobaya = [d for d in by_category["planning_and_control"] if "cobaya" in d["task_template"].lower()]
    assert cobaya and all("planner" in _agents(d) for d in cobaya)
    for doc in docs.values():
        required = [s["agent"] for s in doc["steps"] if not s["optional"]]
        if "planner" in required and "engineer" in required:  # a plan comes before the code it asks for
            assert required.index("planner") < required.index("engineer"), doc["name"]
        assert not doc["title"].lower().startswith(("a string", "an enum")), doc["title"]
