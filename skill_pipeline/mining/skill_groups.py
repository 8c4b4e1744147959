"""Skill groups: a skill is one behaviour applied to one request, within one mode.

Runs are split by their captured mode (a planning_and_control run and a one_shot run of the same task are
different skills). Within a mode:

1. **Behaviour clusters**: the token sequences are clustered by edit distance (``clustering.cluster_sequences``).
2. **Behaviour splits**: a cluster is split further where one sub-population always does something the other
   never does. Each successful run is described by binary features: the steps it takes (canonical tokens: agent,
   tool, action) and the kinds of files it writes. A split on feature *f* is accepted when (a) the request decides
   it: the runs' wording families (``task_families``), or one content word of their tasks (a request that names
   its subject within one wording: "... in the CAMB docs" / "... in the CLASS docs"), predict *f* almost
   perfectly (I(f; request) >= ``split_purity`` x H(f)), so a detour, retry, stray or missing step that any request
   may show never splits; and (b) it pays for itself under BIC: a Bernoulli model per side gains N x [sum over the
   other features of I(f; g) + I(f; request)] log-likelihood, more than 1/2 log N per extra parameter, plus log V
   for naming the word among the V tried. Splits repeat until no feature passes. Failed and unfinished runs (cut
   short, so missing steps say nothing) join the leaf that best explains the steps they did take, their wording
   and their words.
3. **Requests**: within a behaviour leaf, wording families are merged into requests by average linkage on how
   alike they are (``_Context.alike``), at least ``request_similarity``:
   - paraphrases are asked about the same topics, files and quantities: the cosine of the families' word shares
     (weighted by inverse document frequency over the mode) over the value pool (words some family takes as a
     value, outside its signature), or over what varies within each family (words neither says in every run);
   - a family whose core (the words all its runs say) recurs whole in another family's runs is one whose runs
     clustered by a long parameter value (a module's purpose, a research topic), not by their wording: it is a
     value of that family's request (similarity 1);
   - two families that ask for different *kinds* of parameters (a number, a file, an expression, a quoted text
     that one always carries and the other never, decided as a behaviour split is) are never merged: paraphrases
     of one request carry the same parameters; "plot f over [a, b]" and "compute the median of c in d" do not.
   Two requests that behave alike stay two skills.
4. A (request, leaf) cell is a candidate skill. Cells with fewer than ``min_group_size`` successful runs fold
   into a kept cell of their family: failed, truncated or abandoned attempts of the same task; so do runs without a
   single recorded step (a source that kept only the run row) and a cell of another behaviour cluster whose medoid
   is within ``variant_distance`` of the dominant one (a detour the edit-distance clustering separated) unless the
   request decides the difference (the split test of step 2 on the two cells). A family with one kept cell takes
   them all; one with several (one wording, two behaviours its words tell apart) gives each run to the cell whose
   successful runs best explain its steps and words.

Group ids hash the mode, the request's words and the leaf's medoid, so re-mining the same runs gives the same ids.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.sparse import csr_matrix
from scipy.spatial.distance import squareform

from .clustering import cluster_sequences, normalized_distance, reduce_sequence
from .task_families import PLACEHOLDERS, constant_words, content_words, parameter_kinds, task_families

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
class _Wording:
    """One wording family of a behaviour leaf, as requests compare them."""

    runs: list[str]
    weights: dict[str, float]  # content word -> share of the runs saying it x its specificity
    values: frozenset[str]  # content words outside the family's signature
    core: frozenset[str]  # ``constant_words`` (almost) every run says: the wording, or a long value
    constant: frozenset[str]  # content words (almost) every run says
    kinds: Counter[str]  # parameter kind -> runs carrying it


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

    words_of: dict[str, frozenset[str]] = field(default_factory=dict)

    def success(self, run_id: str) -> bool:
        return self.outcomes.get(run_id, "success") == "success"

    def wording(self, run_id: str) -> frozenset[str]:
        """The task's words as wording families read them (``task_families.constant_words``)."""
        return constant_words(str(self.descriptions.get(run_id) or ""))

    def words(self, run_id: str) -> frozenset[str]:
        """Content words of the run's task (lemmatised once per run: splits, requests and specificity read them)."""
        found = self.words_of.get(run_id)
        if found is None:
            found = self.words_of[run_id] = frozenset(content_words(str(self.descriptions.get(run_id) or "")))
        return found

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
            folded: list[str] = []
            for b in order:
                head = kept[0] if kept else None
                if head is not None and (b == NO_TOKENS or wins[b] < self.min_group_size or any(
                        _cluster(b) != _cluster(k)
                        and normalized_distance(medoids[b], medoids[k]) <= self.variant_distance
                        and not self.asked_apart(by_leaf[b] + members[(fid, k)], family) for k in kept)):
                    folded += by_leaf[b]
                else:
                    kept.append(b)
                    members[(fid, b)] = list(by_leaf[b])
            for r, b in self.fold(folded, {b: members[(fid, b)] for b in kept}, family).items():
                members[(fid, b)].append(r)
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
            feature = _best_split(part, features, family, self.words, self.min_group_size, self.split_purity)
            if feature is None:
                leaves.append(sorted(part))
            else:
                pending += [[r for r in part if feature in features[r]],
                            [r for r in part if feature not in features[r]]]
        leaves.sort(key=lambda p: (-len(p), p[0]))
        if len(leaves) > 1:
            in_core = set(core)
            profiles = [_LeafProfile(leaf, features, family, self.words) for leaf in leaves]
            for r in runs:
                if r not in in_core:
                    chosen = max(range(len(leaves)), key=lambda i: (
                        profiles[i].score(features[r], family.get(r), self.words(r)), -i))
                    leaves[chosen].append(r)
        else:
            leaves[0] = sorted(runs)
        return [sorted(p) for p in leaves]

    def fold(self, runs: Sequence[str], cells: Mapping[str, Sequence[str]],
             family: Mapping[str, str]) -> dict[str, str]:
        """Run -> the cell of its wording family it folds into (failed, cut-short, step-less or detour runs): the
        one cell, or, when the family has several (one wording, two behaviours its words tell apart), the cell
        whose successful runs best explain the run's steps and words."""
        if len(cells) == 1:
            (only,) = cells
            return dict.fromkeys(runs, only)
        profiles = {}
        for b, members in cells.items():
            core = [r for r in members if self.success(r)] or list(members)
            profiles[b] = _LeafProfile(core, {r: self.features(r) for r in core}, family, self.words)
        order = list(cells)
        return {r: max(order, key=lambda b: (profiles[b].score(self.features(r), family.get(r), self.words(r)),
                                             -order.index(b))) for r in runs}

    def asked_apart(self, runs: list[str], family: Mapping[str, str]) -> bool:
        """Whether the request decides a difference between these runs' behaviours (the split test of step 2 on
        their successful runs): then two nearby behaviour clusters are two skills, not a detour and its path."""
        core = [r for r in runs if self.success(r)]
        return _best_split(core, {r: self.features(r) for r in core}, family, self.words, self.min_group_size,
                           self.split_purity) is not None

    def medoid(self, runs: Sequence[str]) -> list[str]:
        """The most common reduced sequence among the successful runs (all runs when none succeeded)."""
        chosen = [r for r in runs if self.success(r)] or list(runs)
        counts = Counter(_reduced(tuple(self.sequences[r])) for r in chosen)
        return list(min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]) if counts else []

    # --- requests ----------------------------------------------------------------------------------------

    def requests(self, fids: list[str], runs_of: Mapping[str, list[str]], signatures: Mapping[str, list[str]],
                 specificity: Mapping[str, float]) -> list[list[str]]:
        """Wording families of one leaf grouped into requests (module docstring, step 3): average linkage on
        :meth:`alike`, never joining two wordings that ask for different kinds of parameters."""
        if len(fids) == 1:
            return [list(fids)]
        wordings = [self.summary(runs_of[f], signatures[f], specificity) for f in fids]
        # a word some wording takes as a value is a value wherever it occurs: a wording family whose runs
        # happened to share one topic keeps that topic in its own words, and still shares it with the others
        pool = frozenset().union(*(w.values for w in wordings))
        n = len(fids)
        similarity = np.eye(n)
        apart = np.zeros((n, n), dtype=bool)
        for i in range(n):
            for j in range(i + 1, n):
                similarity[i, j] = similarity[j, i] = self.alike(wordings[i], wordings[j], pool)
                apart[i, j] = apart[j, i] = self.different_parameters(wordings[i], wordings[j])
        grouped = _average_linkage(similarity, apart, self.request_similarity)
        return sorted((sorted(fids[i] for i in g) for g in grouped), key=lambda g: g[0])

    def summary(self, runs: Sequence[str], signature: Sequence[str], specificity: Mapping[str, float],
                share: float = 0.95) -> _Wording:
        """What :meth:`alike` compares of one wording family."""
        said: Counter[str] = Counter()
        said_whole: Counter[str] = Counter()
        kinds: Counter[str] = Counter()
        for r in runs:
            text = str(self.descriptions.get(r) or "")
            said.update(self.words(r))
            said_whole.update(constant_words(text))
            kinds.update(parameter_kinds(text))
        return _Wording(
            runs=list(runs), kinds=kinds,
            weights={w: c / len(runs) * specificity.get(w, 0.0) for w, c in said.items()},
            values=frozenset(said) - set(signature),
            core=frozenset(w for w, c in said_whole.items() if c >= share * len(runs)),
            constant=frozenset(w for w, c in said.items() if c >= share * len(runs)))

    def alike(self, a: _Wording, b: _Wording, pool: frozenset[str]) -> float:
        """How likely two wording families of one behaviour ask the same thing, in [0, 1]:

        * 1 when one's core recurs whole in the other's runs (:meth:`recurs_in`): a family that clustered by a
          long parameter value is a value of the other's request;
        * else the larger of two cosines of their words' shares (weighted by ``specificity``): over the value
          pool (paraphrases are asked about the same topics, files and quantities), and over what varies within
          each (the words neither says in every run: the values of two paraphrases, or the wordings of two
          families that each clustered by one value, are drawn from the same pool)."""
        if self.recurs_in(a.core, b.runs) or self.recurs_in(b.core, a.runs):
            return 1.0
        steady = a.constant | b.constant
        return max(_cosine({w: v for w, v in a.weights.items() if w in pool},
                           {w: v for w, v in b.weights.items() if w in pool}),
                   _cosine({w: v for w, v in a.weights.items() if w not in steady},
                           {w: v for w, v in b.weights.items() if w not in steady}))

    def recurs_in(self, core: frozenset[str], runs: Sequence[str]) -> bool:
        """Whether a family's core (two words or more: one word recurs by chance) recurs whole in runs of another
        family (at least ``min_group_size``, and two): the first family is then one parameter value of the
        second's request (a topic or a purpose long enough that the runs asking about it, in any wording,
        clustered by it), not a request of its own."""
        return len(core) >= 2 and sum(core <= self.wording(r) for r in runs) >= max(self.min_group_size, 2)

    def different_parameters(self, first: _Wording, second: _Wording) -> bool:
        """Whether two wordings ask for different kinds of parameters: a kind (a number, a file, an expression, a
        quoted text) that one wording carries and the other does not, decided by the wording as a behaviour
        feature is (I(kind; wording) >= ``split_purity`` x H(kind), and worth its parameter under BIC).
        Paraphrases of one request carry the same parameters; "plot f over [a, b]" and "compute the median of c in
        d" do not."""
        n = len(first.runs) + len(second.runs)
        for kind in PLACEHOLDERS:
            both = first.kinds[kind] + second.kinds[kind]
            if 0 < both < n:
                h = float(_entropy(np.array([both / n, 1 - both / n])))
                mi = float(_pair_information(n, len(first.runs), np.array([both]), np.array([first.kinds[kind]]))[0])
                if mi >= self.split_purity * h and n * mi > 0.5 * math.log(n):
                    return True
        return False

    def specificity(self, run_ids: Sequence[str]) -> dict[str, float]:
        """Inverse document frequency of each word over the mode's descriptions: a word most tasks use ('data',
        'csv') says little about which request a run is; a topic or column name says much."""
        df: Counter[str] = Counter()
        for r in run_ids:
            df.update(self.words(r))
        return {w: math.log(len(run_ids) / d) for w, d in df.items()}


@functools.lru_cache(maxsize=65_536)
def _reduced(tokens: tuple[str, ...]) -> tuple[str, ...]:
    """``reduce_sequence`` once per distinct sequence (the runs of a skill share a few)."""
    return tuple(reduce_sequence(tokens))


def _cluster(leaf: str) -> str:
    return leaf.rsplit(".", 1)[0]


def _request_id(fids: Sequence[str]) -> str:
    return fids[0] if len(fids) == 1 else "r" + hashlib.sha1(" ".join(sorted(fids)).encode()).hexdigest()[:10]


def _average_linkage(similarity: np.ndarray, apart: np.ndarray, threshold: float) -> list[list[int]]:
    """Average-linkage clusters of similarity at least ``threshold``, never joining two items marked ``apart``
    (scipy's linkage when nothing is apart: the same merges, faster)."""
    n = len(similarity)
    if not apart.any():
        labels = fcluster(linkage(squareform(1.0 - similarity, checks=False), method="average"),
                          t=1.0 - threshold, criterion="distance")
        grouped: dict[int, list[int]] = defaultdict(list)
        for i, label in enumerate(labels):
            grouped[int(label)].append(i)
        return list(grouped.values())
    clusters: list[list[int]] = [[i] for i in range(n)]
    total = similarity.astype(np.float64).copy()  # summed similarity between clusters
    blocked = apart.copy()
    sizes = np.ones(n)
    alive = np.ones(n, dtype=bool)
    while True:
        mean = total / np.outer(sizes, sizes)
        mask = np.outer(alive, alive) & ~blocked & ~np.eye(n, dtype=bool)
        if not mask.any():
            break
        scores = np.where(mask, mean, -np.inf)
        a, b = np.unravel_index(int(np.argmax(scores)), scores.shape)
        if scores[a, b] < threshold:
            break
        total[a] += total[b]
        total[:, a] += total[:, b]
        blocked[a] |= blocked[b]
        blocked[:, a] |= blocked[:, b]
        sizes[a] += sizes[b]
        alive[b] = False
        clusters[a] += clusters[b]
        clusters[b] = []
    return [c for c in clusters if c]


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
                words: Callable[[str], frozenset[str]], min_size: int, purity: float) -> str | None:
    """The feature to split ``runs`` on (module docstring, step 2), or None.

    What was asked is read two ways: the run's wording family, and each content word of its task (a request that
    names its subject, "... in the CAMB docs" / "... in the CLASS docs", within one wording). A word is one
    predictor among V tried, so choosing it costs log V nats besides its one parameter."""
    n = len(runs)
    counts = Counter(f for r in runs for f in features[r])
    varying = sorted(f for f, c in counts.items() if min(c, n - c) >= max(min_size, 1))
    if not varying:
        return None
    x = _indicators(runs, features, sorted(f for f, c in counts.items() if 0 < c < n))
    index = x.columns
    fam = _indicators(runs, {r: frozenset([family.get(r, "")]) for r in runs},
                      sorted({family.get(r, "") for r in runs}))
    word_counts = Counter(w for r in runs for w in words(r))
    vocabulary = sorted(w for w, c in word_counts.items() if min(c, n - c) >= max(min_size, 1))
    said = _sparse_indicators(runs, words, vocabulary)
    both = x.matrix.T @ x.matrix  # runs having both features
    ones = x.matrix.sum(axis=0)
    fam_joint = x.matrix.T @ fam.matrix  # runs with feature and family
    fam_sizes = fam.matrix.sum(axis=0)
    word_joint = np.asarray((said.T @ x.matrix).T)  # runs with feature and word
    word_ones = np.asarray(said.sum(axis=0)).ravel()
    log_n = math.log(n)
    feature_cost = 0.5 * log_n * max(len(index) - 1, 0)
    family_cost = 0.5 * log_n * max(len(fam.columns) - 1, 1)
    word_cost = 0.5 * log_n + math.log(max(len(vocabulary), 1))
    best, best_gain = None, 0.0
    for f in varying:
        i = index[f]
        h = float(_entropy(np.array([ones[i] / n, 1 - ones[i] / n])))
        family_mi = _mutual_information(np.vstack([fam_joint[i], fam_sizes - fam_joint[i]]))
        word_mi = (_pair_information(n, ones[i], word_ones, word_joint[i]).max() if vocabulary else 0.0)
        explained = [(n * family_mi - family_cost, family_mi), (n * word_mi - word_cost, word_mi)]
        request_gain = max((g for g, mi in explained if h > 0 and mi >= purity * h), default=None)
        if request_gain is None:
            continue
        others = np.delete(np.arange(len(index)), i)
        pair_mi = float(_pair_information(n, ones[i], ones[others], both[i, others]).sum())
        gain = n * pair_mi - feature_cost + request_gain
        if gain > best_gain + 1e-9:
            best, best_gain = f, gain
    return best


@dataclass
class _Indicators:
    matrix: np.ndarray  # runs x columns, 1.0 where the run has the column's item
    columns: dict[str, int]


def _indicators(runs: Sequence[str], items: Mapping[str, Collection[str]], columns: Sequence[str]) -> _Indicators:
    index = {c: i for i, c in enumerate(columns)}
    matrix = np.zeros((len(runs), len(index)), dtype=np.float64)
    for row, r in enumerate(runs):
        for item in items[r]:
            if item in index:
                matrix[row, index[item]] = 1.0
    return _Indicators(matrix, index)


def _sparse_indicators(runs: Sequence[str], words: Callable[[str], frozenset[str]],
                       vocabulary: Sequence[str]) -> csr_matrix:
    """Runs x vocabulary, 1.0 where the run's task says the word (sparse: a leaf's tasks use thousands of words,
    each run a dozen)."""
    index = {w: i for i, w in enumerate(vocabulary)}
    rows, cols = [], []
    for row, r in enumerate(runs):
        for w in words(r):
            if w in index:
                rows.append(row)
                cols.append(index[w])
    return csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(runs), len(index)))


def _pair_information(n: int, a: float, b: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """I(A; B) in nats for one binary variable A (``a`` runs) against many binary B (``b`` runs, ``ab`` both)."""
    cells = np.stack([ab, a - ab, b - ab, n - a - b + ab]) / n
    pa, pb = np.array([a, a, n - a, n - a])[:, None] / n, np.stack([b, n - b, b, n - b]) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(cells > 0, cells * np.log(cells / (pa * pb)), 0.0)
    return terms.sum(axis=0)


class _LeafProfile:
    """How often a leaf's (successful) runs take each step, use each wording and say each word: scores a cut-short
    run by the steps it did take, its wording and its words (absent steps say nothing, the run may have stopped
    before them; a word such as the subject a request names tells leaves of one wording apart)."""

    def __init__(self, leaf: Sequence[str], features: Mapping[str, frozenset[str]], family: Mapping[str, str],
                 words: Callable[[str], frozenset[str]]) -> None:
        self.n = len(leaf)
        self.steps = Counter(f for r in leaf for f in features[r])
        self.wordings = Counter(family.get(r) for r in leaf)
        self.said = Counter(w for r in leaf for w in words(r))

    def score(self, run_features: frozenset[str], run_family: str | None, run_words: frozenset[str]) -> float:
        return (sum(math.log((self.steps[f] + 0.5) / (self.n + 1)) for f in run_features)
                + math.log((self.wordings[run_family] + 0.5) / (self.n + 1))
                + sum(math.log((self.said[w] + 0.5) / (self.n + 1)) for w in run_words))


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
