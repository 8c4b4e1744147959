"""Mine a store the way a user does (``skillmine mine``, the production Dagster job) and read back what it
published: the library's skills, and from the warehouse each run's skill group and slot values.

The warehouse reads are the only places that know the pipeline's table layout (today ``run_clusters`` and
``skill_templates``); repoint them here if the layout moves.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import duckdb
from sqlalchemy import create_engine, text

from skill_library import open_library

from .scoring import readability_flags

BASELINE_EVENT_COLUMNS = ("id", "parent_event_id", "run_id", "node_id", "seq", "execution_order", "depth",
                          "timestamp", "event_type", "agent_name", "status")


class MiningFailed(RuntimeError):
    """``skillmine mine`` exited with an error; the message carries its output."""


def skillmine_command() -> list[str]:
    """The installed ``skillmine`` console script (next to this interpreter, else on PATH)."""
    beside = Path(sys.executable).with_name("skillmine")
    found = str(beside) if beside.exists() else shutil.which("skillmine")
    if not found:
        raise MiningFailed("the skillmine command is not installed (pip install -e .)")
    return [found]


def run_cli(home: Path, *args: str, timeout: float = 1800) -> str:
    """Run ``skillmine ARGS`` with ``SKILLMINE_HOME=home``; returns its output, raises on a non-zero exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKILLMINE_")}
    env["SKILLMINE_HOME"] = str(home)
    done = subprocess.run([*skillmine_command(), *args], env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)
    if done.returncode:
        raise MiningFailed(f"skillmine {' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}\n"
                           f"{done.stderr[-3000:]}")
    return done.stdout


def mine(home: Path, url: str) -> float:
    """Mine the store at ``url`` into ``home``'s warehouse and library with ``skillmine mine``; returns seconds."""
    started = time.perf_counter()
    run_cli(home, "mine", "--url", url, "--warehouse", str(home / "warehouse.duckdb"),
            "--library", str(home / "library"), "--quiet")
    return time.perf_counter() - started


def published_skills(library: Path) -> list[dict[str, Any]]:
    """Every active skill document of the library's latest release (none before the first release)."""
    if not (library / "LATEST").exists():
        return []
    lib = open_library(library)
    return [lib.get(row["name"]) for row in lib.skills(include_deprecated=False)]


def group_of_skill(skill: dict[str, Any]) -> str | None:
    """The skill group (warehouse cluster) a published skill was mined from."""
    provenance = skill.get("provenance", {})
    return provenance.get("cluster_id") or provenance.get("group_id")


def run_memberships(warehouse: Path) -> dict[str, str]:
    """run id -> skill group id, as the pipeline stores the full membership (table ``run_clusters``)."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return dict(con.execute("SELECT run_id, cluster_id FROM run_clusters").fetchall())


def run_slot_values(warehouse: Path) -> dict[str, dict[str, Any]]:
    """run id -> the slot values the pipeline inferred for it (table ``skill_templates``, column ``slot_values``)."""
    out: dict[str, dict[str, Any]] = {}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for (doc,) in con.execute("SELECT slot_values FROM skill_templates WHERE slot_values IS NOT NULL").fetchall():
            out.update(json.loads(doc))
    return out


def members_by_skill(skills: list[dict[str, Any]], membership: dict[str, str]) -> dict[str, list[str]]:
    """Published skill name -> its member runs (every run of the group it was mined from)."""
    runs_of_group: dict[str, list[str]] = defaultdict(list)
    for run_id, group in membership.items():
        runs_of_group[group].append(run_id)
    return {s["name"]: sorted(runs_of_group.get(group_of_skill(s) or "", [])) for s in skills}


def step_events(url: str) -> list[dict[str, Any]]:
    """Every event of the store except messages and LLM calls (no step comes from them), for the baseline."""
    engine = create_engine(url)
    try:
        with engine.connect() as con:
            rows = con.execute(text(f"SELECT {', '.join(BASELINE_EVENT_COLUMNS)} FROM execution_events "
                                    "WHERE event_type NOT IN ('message', 'llm_call') ORDER BY run_id, seq"))
            return [dict(zip(BASELINE_EVENT_COLUMNS, r, strict=True)) for r in rows]
    finally:
        engine.dispose()


def readability_report(home: Path, params_of_run: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Published skill name -> what reads badly in it (type names, one member run's literals), judged against the
    true parameter values of its member runs; mined into ``home`` by :func:`mine`."""
    skills = published_skills(home / "library")
    members = members_by_skill(skills, run_memberships(home / "warehouse.duckdb"))
    return {s["name"]: readability_flags(s, [params_of_run[r] for r in members[s["name"]] if r in params_of_run])
            for s in skills}
