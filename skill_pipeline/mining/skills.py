"""Skill candidates per skill group: the success-path pattern, the task template and statistics.

The steps of a skill are what its successful runs do, so each group's pattern is mined with the successful
members as its core (``patterns.mine_pattern(core=...)``); statistics (success rate and interval, retries,
failure hot-spots) still cover every member, failed and unfinished ones included.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .patterns import Pattern, mine_pattern
from .skill_groups import SkillGroup
from .stats import outcome
from .templates import build_skill_candidate


def group_pattern(group: SkillGroup, sequences_by_run: Mapping[str, Sequence[str]],
                  runs_by_id: Mapping[str, Mapping[str, Any]]) -> Pattern:
    """The group's pattern over its members (in ``group.run_ids`` order), steps defined by the successful runs that
    recorded steps (a run known only from its run row says nothing about the steps)."""
    core = [outcome(runs_by_id.get(r, {})) == "success" and bool(sequences_by_run.get(r)) for r in group.run_ids]
    pattern = mine_pattern([sequences_by_run.get(r, []) for r in group.run_ids], cluster_id=group.group_id,
                           core=core)
    pattern.member_indices = list(range(len(group.run_ids)))
    return pattern


def group_skill(group: SkillGroup, pattern: Pattern, runs_by_id: Mapping[str, Mapping[str, Any]],
                events_by_run: Mapping[str, Sequence[Mapping[str, Any]]], files: Sequence[Mapping[str, Any]] = (),
                *, granularity: str = "standard") -> dict[str, Any]:
    """The skill candidate of one group (``templates.build_skill_candidate``) with the group's provenance."""
    runs = [runs_by_id.get(r, {"run_id": r}) for r in group.run_ids]
    candidate = build_skill_candidate(pattern, runs, events_by_run, files, granularity=granularity)
    candidate["category"] = group.mode
    candidate["provenance"].update({"group_id": group.group_id, "behaviour_cluster": group.behaviour_id,
                                    "task_family": group.family_words})
    return candidate


def unique_names(candidates: Sequence[dict[str, Any]]) -> None:
    """Make names unique in place: a repeated name gets its group id appended (groups of one family with
    genuinely different behaviours)."""
    seen: dict[str, int] = {}
    for c in candidates:
        seen[c["name"]] = seen.get(c["name"], 0) + 1
    for c in candidates:
        if seen[c["name"]] > 1:
            c["name"] = f"{c['name']}_{c['provenance']['group_id']}"

