"""Skill groups: a skill is one behaviour applied to one request, within one mode.

Runs are split by their captured mode (a planning_and_control run and a one_shot run of the same task are
different skills). Within a mode:

1. **Behaviour clusters**: the token sequences are clustered by edit distance (``clustering.cluster_sequences``).
2. **Behaviour splits**: a cluster is split further where one sub-population always does something the other
   never does. Each successful run is described by binary features: the steps it takes (canonical tokens: agent,
   tool, action) and the kinds of files it writes. A split on feature *f* is accepted when (a) the request decides
   it: the wording families of the runs (``task_families``) predict *f* almost perfectly
   (I(f; family) >= ``split_purity`` x H(f)), so a detour, retry, stray or missing step that any request may show
   never splits; and (b) it pays for itself under BIC: a Bernoulli model per side gains N x [sum over the other
   features of I(f; g) + I(f; family)] log-likelihood, more than 1/2 log N per extra parameter. Splits repeat until
   no feature passes. Failed and unfinished runs (cut short, so missing steps say nothing) join the leaf that best
   explains the steps they did take and their wording.
3. **Requests**: wording families are paraphrases of one request when their parameter values come from the same
   pool: within a behaviour leaf, families whose value words (``task_families.value_words``; a word some family
   takes as a value counts as a value in every family, so a wording whose runs happened to share one topic still
   shares it; weighted by inverse document frequency over the mode's descriptions) have a cosine similarity of at
   least ``request_similarity`` are merged
   (average linkage). Two requests that behave alike stay two skills.
4. A (request, leaf) cell is a candidate skill. Cells with fewer than ``min_group_size`` successful runs fold
   into the family's dominant cell (the one with the most successful runs): failed, truncated or abandoned attempts
   of the same task; so do runs without a single recorded step (a source that kept only the run row) and a cell of
   another behaviour cluster whose medoid is within ``variant_distance`` of the dominant one (a detour the
   edit-distance clustering separated).

Group ids hash the mode, the request's words and the leaf's medoid, so re-mining the same runs gives the same ids.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
from collections import Counter, defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

from .clustering import cluster_sequences, normalized_distance, reduce_sequence
from .task_families import constant_words, content_words, task_families, value_words

UNKNOWN_MODE = "unknown"
NO_TOKENS = "none"  # the leaf of runs without a single step


@dataclass
class SkillGroup:
    group_id: str
    mode: str
    family_id: str
    family_words: list[str]  # words of the request's dominant wording
    behaviour_id: str | None  # behaviour leaf of the group (None: no tokens)
    medoid: list[str]  # the leaf's most common reduced success sequence
    run_ids: list[str]  # sorted
    folded_runs: int = 0  # runs folded in from other behaviour cells
    successes: int = 0
    behaviours: dict[str, int] = field(default_factory=dict)  # behaviour leaf -> runs
    wordings: int = 1  # wording families merged into the request

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
    outputs_by_run: Mapping[str, Collection[str]] | None = None,
    *,
    min_group_size: int = 2,
    min_family_size: int = 1,
    variant_distance: float = 0.5,
    split_purity: float = 0.7,
    request_similarity: float = 0.2,
    sample_size: int = 2000,
) -> list[SkillGroup]:
    """Skill groups over the runs of ``sequences_by_run`` (run_id -> tokens).

    ``descriptions_by_run``: task description per run (missing: empty); ``modes_by_run``: captured mode (missing:
    'unknown'); ``outcomes_by_run``: 'success' / 'failure' / 'unfinished' (``stats.outcome``; missing: success);
    ``outputs_by_run``: file types each run wrote (missing: none). ``min_group_size``: successful runs a cell needs
    to stand as a skill of its own; ``min_family_size``: runs a wording family needs not to join its nearest one.
    Groups come largest first, ties by id.
    """
    context = _Context(sequences_by_run, descriptions_by_run, outcomes_by_run or {}, outputs_by_run or {},
                       min_group_size, min_family_size, variant_distance, split_purity, request_similarity,
                       sample_size)
    modes = modes_by_run or {}
    by_mode: dict[str, list[str]] = defaultdict(list)
    for rid in sorted(sequences_by_run):
        by_mode[str(modes.get(rid) or UNKNOWN_MODE)].append(rid)
    groups: list[SkillGroup] = []
    for mode, run_ids in sorted(by_mode.items()):
        groups += context.mode_groups(mode, run_ids)
    groups.sort(key=lambda g: (-g.size, g.group_id))
    return groups


@dataclass
class _Context:
    sequences: Mapping[str, Sequence[str]]
    descriptions: Mapping[str, str]
    outcomes: Mapping[str, str]
    outputs: Mapping[str, Collection[str]]
    min_group_size: int
    min_family_size: int
    variant_distance: float
    split_purity: float
    request_similarity: float
    sample_size: int

    def success(self, run_id: str) -> bool:
        return self.outcomes.get(run_id, "success") == "success"

    def features(self, run_id: str) -> frozenset[str]:
        """What a run does: its canonical steps and the kinds of files it wrote."""
        steps = set(_reduced(tuple(self.sequences[run_id])))
        return frozenset(steps | {"output:" + str(t).lower().lstrip(".") for t in self.outputs.get(run_id, ())})

    def mode_groups(self, mode: str, run_ids: list[str]) -> list[SkillGroup]:
        families = task_families({r: str(self.descriptions.get(r) or "") for r in run_ids},
                                 min_group_size=self.min_family_size)
        family = families.labels
        leaves = self.behaviour_leaves(run_ids, family)
        leaf_of = {r: leaf for leaf, runs in leaves.items() for r in runs}
        medoids = {leaf: self.medoid(runs) for leaf, runs in leaves.items()}
        cells: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        for r in run_ids:
            cells[family[r]][leaf_of[r]].append(r)
        kept_cells: dict[str, list[str]] = {}  # leaf -> wording families with a cell of their own there
        members: dict[tuple[str, str], list[str]] = {}
        for fid, by_leaf in sorted(cells.items()):
            wins = {b: sum(self.success(r) for r in runs) for b, runs in by_leaf.items()}
            order = sorted(by_leaf, key=lambda b: (b == NO_TOKENS, -wins[b], -len(by_leaf[b]), b))
            kept: list[str] = []
            for b in order:
                head = kept[0] if kept else None
                if head is not None and (b == NO_TOKENS or wins[b] < self.min_group_size or (
                        _cluster(b) != _cluster(head)
                        and normalized_distance(medoids[b], medoids[head]) <= self.variant_distance)):
                    members[(fid, head)] += by_leaf[b]
                else:
                    kept.append(b)
                    members[(fid, b)] = list(by_leaf[b])
            for b in kept:
                kept_cells.setdefault(b, []).append(fid)
        groups = []
        specificity = self.specificity(run_ids)
        for leaf, fids in sorted(kept_cells.items()):
            for request in self.requests(fids, {f: members[(f, leaf)] for f in fids}, families.signatures,
                                         specificity):
                runs = sorted(r for f in request for r in members[(f, leaf)])
                dominant = max(request, key=lambda f: (len(members[(f, leaf)]), f))
                words = families.signatures[dominant]
                groups.append(SkillGroup(
                    _group_id(mode, words, medoids[leaf]), mode, _request_id(request), words, leaf,
                    list(medoids[leaf]), runs, folded_runs=sum(leaf_of[r] != leaf for r in runs),
                    successes=sum(self.success(r) for r in runs),
                    behaviours=dict(sorted(Counter(leaf_of[r] for r in runs).items())), wordings=len(request)))
        return groups

    # --- behaviour ---------------------------------------------------------------------------------------

    def behaviour_leaves(self, run_ids: list[str], family: Mapping[str, str]) -> dict[str, list[str]]:
        """Behaviour leaf id -> runs: edit-distance clusters, each split where the request decides a feature."""
        with_tokens = [r for r in run_ids if self.sequences[r]]
        leaves: dict[str, list[str]] = {}
        if len(with_tokens) < len(run_ids):
            leaves[NO_TOKENS] = [r for r in run_ids if not self.sequences[r]]
        if not with_tokens:
            return leaves
        result = cluster_sequences([self.sequences[r] for r in with_tokens], sample_size=self.sample_size,
                                   min_cluster_size=self.min_group_size)
        clusters: dict[str, list[str]] = defaultdict(list)
        for r, label in zip(with_tokens, result.labels, strict=True):
            clusters[label].append(r)
        for label, runs in sorted(clusters.items()):
            for i, part in enumerate(self.split(runs, family)):
                leaves[f"{label}.{i}"] = part
        return leaves

    def split(self, runs: list[str], family: Mapping[str, str]) -> list[list[str]]:
        """The runs of one behaviour cluster in leaves (see the module docstring, step 2)."""
        features = {r: self.features(r) for r in runs}
        core = [r for r in runs if self.success(r)] or list(runs)
        leaves, pending = [], [core]
        while pending:
            part = pending.pop()
            feature = _best_split(part, features, family, self.min_group_size, self.split_purity)
            if feature is None:
                leaves.append(sorted(part))
            else:
                pending += [[r for r in part if feature in features[r]],
                            [r for r in part if feature not in features[r]]]
        leaves.sort(key=lambda p: (-len(p), p[0]))
        if len(leaves) > 1:
            in_core = set(core)
            profiles = [_LeafProfile(leaf, features, family) for leaf in leaves]
            for r in runs:
                if r not in in_core:
                    chosen = max(range(len(leaves)), key=lambda i: (profiles[i].score(features[r], family.get(r)), -i))
                    leaves[chosen].append(r)
        else:
            leaves[0] = sorted(runs)
        return [sorted(p) for p in leaves]

    def medoid(self, runs: Sequence[str]) -> list[str]:
        """The most common reduced sequence among the successful runs (all runs when none succeeded)."""
        chosen = [r for r in runs if self.success(r)] or list(runs)
        counts = Counter(_reduced(tuple(self.sequences[r])) for r in chosen)
        return list(min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]) if counts else []

    # --- requests ----------------------------------------------------------------------------------------

    def requests(self, fids: list[str], runs_of: Mapping[str, list[str]], signatures: Mapping[str, list[str]],
                 specificity: Mapping[str, float]) -> list[list[str]]:
        """Wording families of one leaf grouped into requests by the similarity of their parameter values."""
        if len(fids) == 1:
            return [list(fids)]
        values: list[Counter[str]] = []
        words: list[Counter[str]] = []
        for f in fids:
            wording = set(signatures[f])
            counts: Counter[str] = Counter()
            every: Counter[str] = Counter()
            for r in runs_of[f]:
                text = str(self.descriptions.get(r) or "")
                counts.update(set(value_words(text, wording)))
                every.update(set(content_words(text)))
            values.append(counts)
            words.append(every)
        # a word some wording takes as a value is a value wherever it occurs: a wording family whose runs
        # happened to share one topic keeps that topic in its own words, and still shares it with the others
        pool = set().union(*values)
        vectors = [{w: c / len(runs_of[f]) * specificity.get(w, 0.0) for w, c in every.items() if w in pool}
                   for f, every in zip(fids, words, strict=True)]
        n = len(fids)
        dist = np.ones((n, n))
        for i in range(n):
            dist[i, i] = 0.0
            for j in range(i + 1, n):
                dist[i, j] = dist[j, i] = 1.0 - _cosine(vectors[i], vectors[j])
        labels = fcluster(linkage(squareform(dist, checks=False), method="average"),
                          t=1.0 - self.request_similarity, criterion="distance")
        grouped: dict[int, list[str]] = defaultdict(list)
        for f, label in zip(fids, labels, strict=True):
            grouped[int(label)].append(f)
        return sorted((sorted(g) for g in grouped.values()), key=lambda g: g[0])

    def specificity(self, run_ids: Sequence[str]) -> dict[str, float]:
        """Inverse document frequency of each word over the mode's descriptions: a word most tasks use ('data',
        'csv') says little about which request a run is; a topic or column name says much."""
        df: Counter[str] = Counter()
        for r in run_ids:
            df.update(set(content_words(str(self.descriptions.get(r) or ""))))
        return {w: math.log(len(run_ids) / d) for w, d in df.items()}


@functools.lru_cache(maxsize=65_536)
def _reduced(tokens: tuple[str, ...]) -> tuple[str, ...]:
    """``reduce_sequence`` once per distinct sequence (the runs of a skill share a few)."""
    return tuple(reduce_sequence(tokens))


def _cluster(leaf: str) -> str:
    return leaf.rsplit(".", 1)[0]


def _request_id(fids: Sequence[str]) -> str:
    return fids[0] if len(fids) == 1 else "r" + hashlib.sha1(" ".join(sorted(fids)).encode()).hexdigest()[:10]


def _cosine(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    dot = sum(v * b[w] for w, v in a.items() if w in b)
    na, nb = math.sqrt(sum(v * v for v in a.values())), math.sqrt(sum(v * v for v in b.values()))
    return dot / (na * nb) if na and nb else 0.0


def _entropy(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.nansum(np.where(p > 0, p * np.log(p), 0.0), axis=0)


def _mutual_information(joint: np.ndarray) -> float:
    """I(X; Y) in nats from a joint count table."""
    total = joint.sum()
    if total <= 0:
        return 0.0
    p = joint / total
    px, py = p.sum(axis=1, keepdims=True), p.sum(axis=0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p / (px * py)), 0.0)
    return float(terms.sum())


def _best_split(runs: Sequence[str], features: Mapping[str, frozenset[str]], family: Mapping[str, str],
                min_size: int, purity: float) -> str | None:
    """The feature to split ``runs`` on (module docstring, step 2), or None."""
    n = len(runs)
    counts = Counter(f for r in runs for f in features[r])
    varying = sorted(f for f, c in counts.items() if min(c, n - c) >= max(min_size, 1))
    if not varying:
        return None
    index = {f: i for i, f in enumerate(sorted(f for f, c in counts.items() if 0 < c < n))}
    x = np.zeros((n, len(index)), dtype=np.float64)
    for i, r in enumerate(runs):
        for f in features[r]:
            if f in index:
                x[i, index[f]] = 1.0
    fam_ids = {f: i for i, f in enumerate(sorted({family.get(r, "") for r in runs}))}
    fam = np.zeros((n, len(fam_ids)))
    fam[np.arange(n), [fam_ids[family.get(r, "")] for r in runs]] = 1.0
    both = x.T @ x  # runs having both features
    ones = x.sum(axis=0)
    fam_joint = x.T @ fam  # runs with feature and family
    fam_sizes = fam.sum(axis=0)
    extra_parameters = (len(index) - 1) + (len(fam_ids) - 1)
    cost = 0.5 * math.log(n) * max(extra_parameters, 1)
    best, best_gain = None, 0.0
    for f in varying:
        i = index[f]
        h = float(_entropy(np.array([ones[i] / n, 1 - ones[i] / n])))
        family_mi = _mutual_information(np.vstack([fam_joint[i], fam_sizes - fam_joint[i]]))
        if h <= 0 or family_mi < purity * h:
            continue
        pair_mi = 0.0
        for j in range(len(index)):
            if j != i:
                n11 = both[i, j]
                pair_mi += _mutual_information(np.array([[n11, ones[i] - n11],
                                                         [ones[j] - n11, n - ones[i] - ones[j] + n11]]))
        gain = n * (pair_mi + family_mi) - cost
        if gain > best_gain + 1e-9:
            best, best_gain = f, gain
    return best


class _LeafProfile:
    """How often a leaf's (successful) runs take each step and use each wording: scores a cut-short run by the
    steps it did take and its wording (absent steps say nothing, the run may have stopped before them)."""

    def __init__(self, leaf: Sequence[str], features: Mapping[str, frozenset[str]],
                 family: Mapping[str, str]) -> None:
        self.n = len(leaf)
        self.steps = Counter(f for r in leaf for f in features[r])
        self.wordings = Counter(family.get(r) for r in leaf)

    def score(self, run_features: frozenset[str], run_family: str | None) -> float:
        return (sum(math.log((self.steps[f] + 0.5) / (self.n + 1)) for f in run_features)
                + math.log((self.wordings[run_family] + 0.5) / (self.n + 1)))


def labels_of(groups: Sequence[SkillGroup]) -> dict[str, str]:
    """run_id -> group id."""
    return {r: g.group_id for g in groups for r in g.run_ids}


def assign_to_groups(groups: Sequence[SkillGroup], tokens: Sequence[str], description: str,
                     mode: str | None) -> tuple[str, float] | None:
    """The existing group a new run belongs to, and its behaviour distance to that group's medoid (incremental
    mining between full re-groupings): same mode, the family whose words overlap the run's most (Jaccard), then the
    nearest behaviour medoid. None when no group has the run's mode."""
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
