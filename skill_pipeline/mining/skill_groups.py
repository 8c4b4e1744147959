"""Skill groups: a skill is one behaviour pattern applied to one task family, within one mode.

Runs are split by their captured mode (a planning_and_control run and a one_shot run of the same task are
different skills), then, within a mode, clustered by behaviour (``clustering.cluster_sequences``) and, separately,
by task family (``task_families``). Each (behaviour cluster, family) cell is a candidate skill. Cells that are
not a skill of their own fold into the family's dominant cell (the one with the most successful runs):

- cells with fewer than ``min_group_size`` successful runs: failed, truncated or abandoned attempts (a rate limit
  mid-run, a plan never approved) of the same task, whose outcomes belong to that skill's statistics;
- cells whose behaviour medoid is within ``variant_distance`` (normalised edit distance) of the dominant one:
  a detour of the same procedure (e.g. installing a missing package before re-running the code).

Group ids hash the mode, the family's constant words and the dominant behaviour's medoid, so re-mining the same
runs gives the same ids.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .clustering import cluster_sequences, normalized_distance, reduce_sequence
from .task_families import constant_words, task_families

UNKNOWN_MODE = "unknown"


@dataclass
class SkillGroup:
    group_id: str
    mode: str
    family_id: str
    family_words: list[str]  # constant words shared by the family's task descriptions
    behaviour_id: str | None  # behaviour cluster of the dominant cell (None: no tokens)
    medoid: list[str]  # that cluster's medoid (canonical, repeat-collapsed tokens)
    run_ids: list[str]  # sorted
    folded_runs: int = 0  # runs folded in from other behaviour cells
    successes: int = 0
    behaviours: dict[str, int] = field(default_factory=dict)  # behaviour cluster -> runs

    @property
    def size(self) -> int:
        return len(self.run_ids)


def _group_id(mode: str, words: Sequence[str], medoid: Sequence[str]) -> str:
    text = json.dumps([mode, list(words), list(medoid)], separators=(",", ":"))
    return "g" + hashlib.sha1(text.encode()).hexdigest()[:12]


def group_runs(
    sequences_by_run: Mapping[str, Sequence[str]],
    descriptions_by_run: Mapping[str, str],
    modes_by_run: Mapping[str, str | None] | None = None,
    outcomes_by_run: Mapping[str, str] | None = None,
    *,
    min_group_size: int = 2,
    min_family_size: int = 1,
    variant_distance: float = 0.5,
    sample_size: int = 2000,
) -> list[SkillGroup]:
    """Skill groups over the runs of ``sequences_by_run`` (run_id -> tokens).

    ``descriptions_by_run``: task description per run (missing: empty); ``modes_by_run``: captured mode (missing:
    'unknown'); ``outcomes_by_run``: 'success' / 'failure' / 'unfinished' (``stats.outcome``; missing: success).
    ``min_group_size``: successful runs a behaviour cell needs to stand as a skill of its own;
    ``min_family_size``: runs a task family needs not to join its nearest family (1: a lone task stays apart
    rather than blurring another family's template).
    Groups come largest first, ties by id.
    """
    modes = modes_by_run or {}
    outcomes = outcomes_by_run or {}
    by_mode: dict[str, list[str]] = defaultdict(list)
    for rid in sorted(sequences_by_run):
        by_mode[str(modes.get(rid) or UNKNOWN_MODE)].append(rid)
    groups: list[SkillGroup] = []
    for mode, run_ids in sorted(by_mode.items()):
        groups += _mode_groups(mode, run_ids, sequences_by_run, descriptions_by_run, outcomes,
                               min_group_size, min_family_size, variant_distance, sample_size)
    groups.sort(key=lambda g: (-g.size, g.group_id))
    return groups


def _mode_groups(mode: str, run_ids: list[str], sequences: Mapping[str, Sequence[str]],
                 descriptions: Mapping[str, str], outcomes: Mapping[str, str], min_group_size: int,
                 min_family_size: int, variant_distance: float, sample_size: int) -> list[SkillGroup]:
    with_tokens = [r for r in run_ids if sequences[r]]
    behaviour: dict[str, str | None] = dict.fromkeys(run_ids)
    medoids: dict[str | None, list[str]] = {None: []}
    if with_tokens:
        result = cluster_sequences([sequences[r] for r in with_tokens], sample_size=sample_size,
                                   min_cluster_size=min_group_size)
        behaviour.update(zip(with_tokens, result.labels))
        medoids.update(result.medoids)
    families = task_families({r: str(descriptions.get(r) or "") for r in run_ids}, min_group_size=min_family_size)
    cells: dict[str, dict[str | None, list[str]]] = defaultdict(lambda: defaultdict(list))
    for r in run_ids:
        cells[families.labels[r]][behaviour[r]].append(r)
    groups = []
    for fid, by_behaviour in sorted(cells.items()):
        wins = {b: sum(outcomes.get(r, "success") == "success" for r in runs) for b, runs in by_behaviour.items()}
        order = sorted(by_behaviour, key=lambda b: (b is None, -wins[b], -len(by_behaviour[b]), b or ""))
        kept: list[str | None] = []
        members: dict[str | None, list[str]] = {}
        for b in order:
            if kept and (wins[b] < min_group_size or normalized_distance(medoids[b], medoids[kept[0]])
                         <= variant_distance or b is None):
                members[kept[0]] += by_behaviour[b]
            else:
                kept.append(b)
                members[b] = list(by_behaviour[b])
        for b in kept:
            runs = sorted(members[b])
            groups.append(SkillGroup(
                _group_id(mode, families.signatures[fid], medoids[b]), mode, fid, families.signatures[fid], b,
                list(medoids[b]), runs, folded_runs=len(runs) - len(by_behaviour[b]),
                successes=sum(outcomes.get(r, "success") == "success" for r in runs),
                behaviours=dict(sorted(Counter(str(behaviour[r]) for r in runs).items()))))
    return groups


def labels_of(groups: Sequence[SkillGroup]) -> dict[str, str]:
    """run_id -> group id."""
    return {r: g.group_id for g in groups for r in g.run_ids}


def assign_to_groups(groups: Sequence[SkillGroup], tokens: Sequence[str], description: str,
                     mode: str | None) -> tuple[str, float] | None:
    """The existing group a new run belongs to, and its behaviour distance to that group's medoid (incremental
    mining between full re-groupings): same mode, the family whose constant words overlap the run's most
    (Jaccard), then the nearest behaviour medoid. None when no group has the run's mode."""
    same_mode = [g for g in groups if g.mode == str(mode or UNKNOWN_MODE)]
    if not same_mode:
        return None
    words = constant_words(description or "")

    def overlap(g: SkillGroup) -> float:
        family = set(g.family_words)
        union = words | family
        return len(words & family) / len(union) if union else 1.0

    best = max(overlap(g) for g in same_mode)
    reduced = reduce_sequence(tokens)
    distance, group_id = min((normalized_distance(reduced, g.medoid), g.group_id)
                             for g in same_mode if overlap(g) == best)
    return group_id, float(distance)
