"""Clustering token sequences at scale.

Steps: (1) canonicalise tokens (code_exec outcome and error tokens dropped, see
``tokens.canonical_token``); (2) collapse tandem repeats (a retry loop repeated 1-4 times becomes
one copy), so retry variants sit next to the clean run; (3) deduplicate the reduced variants with
counts; (4) average-linkage HAC on a bounded, count-weighted sample of reduced variants using the
normalised Levenshtein distance; the cut threshold is chosen by maximising a count-weighted
silhouette over candidate cuts (one cluster when the whole sample is tight); (5) a medoid per
cluster; (6) every other variant goes to its nearest medoid (batched ``cdist``); variants far from
every medoid get further HAC rounds so that templates missing from the sample still get clusters.

Memory is O(sample**2 + batch * k); time O(sample**2 * L**2 / 64 + N * k * L**2 / 64).
"""
from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
from rapidfuzz.distance import Indel, Levenshtein
from rapidfuzz.process import cdist
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.sparse import csr_matrix
from scipy.spatial.distance import squareform

from .tokens import canonical_sequence

T = TypeVar("T")


# --- sequence helpers ----------------------------------------------------------------------

def _copy_len(cur: Sequence[T], blk: Sequence[T], j: int, b: int, tol: int) -> int:
    """Length of a copy of ``blk`` starting at ``j`` (exact, or within ``tol`` edits; 0 = none).

    An approximate copy may miss or reorder the block's steps but not bring a step the block lacks: collapsing
    it would drop that step (e.g. the ideas saver that only the last maker round calls)."""
    n = len(cur)
    if j + b <= n and list(cur[j : j + b]) == list(blk):
        return b
    if tol <= 0 or cur[j] != blk[0]:
        return 0
    best, best_d = 0, tol + 1
    known = set(blk)
    for bl in (b, b - 1, b + 1):
        if bl < 2 or j + bl > n or not known.issuperset(cur[j : j + bl]):
            continue
        d = Levenshtein.distance(list(blk), list(cur[j : j + bl]), score_cutoff=tol)
        if d < best_d:
            best, best_d = bl, d
    return best


def collapse_repeats(
    seq: Sequence[T], max_block: int = 16, tolerance: float = 0.2, min_approx_block: int = 4
) -> tuple[list[T], list[tuple[int, int, int]]]:
    """Collapse immediate (tandem) repeats of blocks of up to ``max_block`` tokens.

    Returns the reduced sequence and the repeats as ``(start, end, count)`` spans in reduced
    coordinates: ``reduced[start:end]`` occurred ``count`` (>= 2) times in a row.
    ``[a, b, x, b, x, b, x, c]`` -> ``([a, b, x, c], [(1, 3, 3)])``.
    Blocks of at least ``min_approx_block`` tokens also count as repeated when a copy (starting
    with the same token) is within ``tolerance * len`` edits, so one noisy retry does not break
    the loop; the first copy is kept. Passes repeat until nothing collapses (nested repeats).
    """
    cur = list(seq)
    spans: list[tuple[int, int, int]] = []
    while True:
        out: list[T] = []
        new_spans: list[tuple[int, int, int]] = []
        pos_map: list[int] = []  # old index -> new index (-1 removed)
        n = len(cur)
        i = 0
        changed = False
        while i < n:
            best_b, best_cover, best_k = 0, 0, 1
            first = cur[i]
            lim = min(max_block, (n - i) // 2)
            for b in range(1, lim + 1):
                if cur[i + b] != first:
                    continue
                blk = cur[i : i + b]
                tol = int(tolerance * b) if b >= min_approx_block else 0
                j, k = i + b, 1
                while j < n:
                    ln = _copy_len(cur, blk, j, b, tol)
                    if not ln and tol and j + 1 < n:  # one stray token between copies
                        ln = _copy_len(cur, blk, j + 1, b, tol - 1 if tol > 1 else 0)
                        ln = ln + 1 if ln else 0
                    if not ln:
                        break
                    j += ln
                    k += 1
                if k > 1 and j - i > best_cover:
                    best_b, best_cover, best_k = b, j - i, k
            if best_k > 1:
                start = len(out)
                for jj in range(best_b):
                    pos_map.append(start + jj)
                    out.append(cur[i + jj])
                pos_map.extend([-1] * (best_cover - best_b))
                new_spans.append((start, start + best_b, best_k))
                i += best_cover
                changed = True
            else:
                pos_map.append(len(out))
                out.append(first)
                i += 1
        if spans:  # remap spans of earlier passes
            remapped = []
            for s, e, c in spans:
                ns, ne = pos_map[s], pos_map[e - 1]
                if ns >= 0 and ne >= 0 and ne - ns == e - 1 - s:
                    remapped.append((ns, ne + 1, c))
            spans = remapped
        spans.extend(new_spans)
        cur = out
        if not changed:
            break
    spans.sort()
    return cur, spans


def reduce_sequence(tokens: Sequence[str], canonicalise: bool = True, max_block: int = 16) -> list[str]:
    """The form used for distances: canonical tokens with tandem repeats collapsed."""
    seq = canonical_sequence(tokens) if canonicalise else list(tokens)
    if max_block > 0:
        seq = collapse_repeats(seq, max_block)[0]
    return seq


def normalized_distance(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Levenshtein distance / max(len); 0.0 for two empty sequences."""
    return float(Levenshtein.normalized_distance(list(a), list(b)))


def sequence_id(tokens: Sequence[str], prefix: str = "c") -> str:
    """Deterministic content-derived id of a token sequence."""
    digest = hashlib.sha1("\x1f".join(tokens).encode("utf-8")).hexdigest()
    return f"{prefix}{digest[:12]}"


def _char(i: int) -> str:
    cp = 0x100 + i
    if cp >= 0xD800:
        cp += 0x800  # skip surrogates
    return chr(cp)


def encode(seqs: Sequence[Sequence[str]], vocab: dict[str, int] | None = None) -> tuple[list[str], dict[str, int]]:
    """Encode token sequences as strings (one char per token) for fast rapidfuzz calls."""
    if vocab is None:
        vocab = {t: i for i, t in enumerate(sorted({t for s in seqs for t in s}))}
    chars = {t: _char(i) for t, i in vocab.items()}
    return ["".join(chars[t] for t in s) for s in seqs], vocab


def _pairwise(strs: Sequence[str], workers: int) -> np.ndarray:
    D = cdist(strs, strs, scorer=Levenshtein.normalized_distance, dtype=np.float32, workers=workers)
    np.fill_diagonal(D, 0.0)
    return D


def weighted_silhouette(D: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> float:
    """Silhouette where item i stands for ``weights[i]`` identical copies (0-distance duplicates)."""
    uniq, lab = np.unique(labels, return_inverse=True)
    k = len(uniq)
    if k < 2 or (k >= len(labels) and float(weights.max()) <= 1.0):
        return float("nan")
    n = len(labels)
    W = csr_matrix((weights.astype(np.float64), (np.arange(n), lab)), shape=(n, k))
    sums = np.asarray((W.T @ D.T).T, dtype=np.float64)  # n x k weighted distance sums
    cw = np.bincount(lab, weights=weights, minlength=k).astype(np.float64)
    own_w = cw[lab] - 1.0
    a = np.where(own_w > 0, sums[np.arange(n), lab] / np.maximum(own_w, 1e-12), 0.0)
    other = sums / cw[None, :]
    other[np.arange(n), lab] = np.inf
    b = other.min(axis=1)
    denom = np.maximum(a, b)
    s = np.where((own_w > 0) & (denom > 0), (b - a) / np.where(denom > 0, denom, 1.0), 0.0)
    return float(np.average(s, weights=weights))


def _medoid(D: np.ndarray, idx: np.ndarray, weights: np.ndarray) -> int:
    sub = D[np.ix_(idx, idx)].astype(np.float64) @ weights[idx]
    return int(idx[int(np.argmin(sub))])  # argmin takes the first: idx is sorted -> deterministic


# --- result -------------------------------------------------------------------------------

@dataclass
class ClusterResult:
    labels: list[str]  # cluster id per input sequence (input order)
    cluster_ids: list[str]  # by size desc, then id
    medoids: dict[str, list[str]]  # cluster id -> medoid (canonical, repeat-collapsed tokens)
    representatives: dict[str, list[str]]  # cluster id -> most common original sequence
    sizes: dict[str, int]  # cluster id -> number of input sequences
    distances: list[float]  # per input: normalised distance (reduced form) to its medoid
    threshold: float  # dendrogram cut distance
    silhouette: float | None  # count-weighted silhouette on the sample (None when k == 1)
    n_inputs: int
    n_variants: int  # distinct input sequences
    n_reduced_variants: int  # distinct reduced sequences
    sample_size: int
    rounds: int  # HAC rounds (1 + rounds for far-away leftovers)
    candidates: list[dict[str, float]] = field(default_factory=list)  # threshold, k, silhouette

    def members(self, cluster_id: str) -> list[int]:
        return [i for i, c in enumerate(self.labels) if c == cluster_id]

    def quality(self) -> dict[str, Any]:
        return {
            "n_clusters": len(self.cluster_ids),
            "threshold": self.threshold,
            "silhouette": self.silhouette,
            "n_inputs": self.n_inputs,
            "n_variants": self.n_variants,
            "n_reduced_variants": self.n_reduced_variants,
            "sample_size": self.sample_size,
            "rounds": self.rounds,
            "mean_distance_to_medoid": float(np.mean(self.distances)) if self.distances else 0.0,
        }


def _absorb_small(D: np.ndarray, lab: np.ndarray, w: np.ndarray, min_w: float) -> np.ndarray:
    """Move members of clusters lighter than ``min_w`` to the nearest (mean distance) big cluster.

    Outlier variants otherwise form singleton clusters that inflate the silhouette of a cut.
    Returns labels 0..k-1 (all zero when no or one cluster is big enough).
    """
    uniq, lab = np.unique(lab, return_inverse=True)
    k = len(uniq)
    cw = np.bincount(lab, weights=w, minlength=k)
    big = np.flatnonzero(cw >= min_w)
    if len(big) <= 1:
        return np.zeros(len(lab), dtype=np.int64)
    if len(big) == k:
        return lab
    n = len(lab)
    W = csr_matrix((w.astype(np.float64), (np.arange(n), lab)), shape=(n, k))
    sums = np.asarray((W.T @ D.T).T, dtype=np.float64)[:, big] / cw[big][None, :]
    remap = np.full(k, -1, dtype=np.int64)
    remap[big] = np.arange(len(big))
    out = remap[lab]
    small = out < 0
    out[small] = np.argmin(sums[small], axis=1)
    return out


def _is_detour(a: str, b: str, max_insert_share: float) -> bool:
    """True when one encoded sequence is the other plus insertions (optional steps / detours).

    The longer may add at most ``max_insert_share`` of its length; one substitution is tolerated
    when the shorter has 8+ steps (noise in a medoid).
    """
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    extra = len(long_) - len(short)
    if not long_ or extra / len(long_) > max_insert_share:
        return False
    slack = 2 if len(short) >= 8 else 0
    return Indel.distance(short, long_) <= extra + slack


def _merge_detours(
    D: np.ndarray, lab: np.ndarray, w: np.ndarray, strs: Sequence[str], max_insert_share: float
) -> np.ndarray:
    """Merge clusters whose medoids differ only by inserted steps (union-find over medoid pairs)."""
    for _ in range(5):
        uniq, lab = np.unique(lab, return_inverse=True)
        k = len(uniq)
        if k < 2:
            return lab
        n = len(lab)
        W = csr_matrix((w.astype(np.float64), (np.arange(n), lab)), shape=(n, k))
        sums = np.asarray((W.T @ D.T).T, dtype=np.float64)
        meds = []
        for c in range(k):
            idx = np.flatnonzero(lab == c)
            meds.append(int(idx[int(np.argmin(sums[idx, c]))]))
        parent = list(range(k))

        def find(x: int, parent: list[int] = parent) -> int:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        merged = False
        for i in range(k):
            for j in range(i + 1, k):
                if find(i) != find(j) and _is_detour(strs[meds[i]], strs[meds[j]], max_insert_share):
                    parent[find(j)] = find(i)
                    merged = True
        if not merged:
            return lab
        lab = np.array([find(c) for c in lab])
    return np.unique(lab, return_inverse=True)[1]


def _hac_cut(
    D: np.ndarray,
    w: np.ndarray,
    threshold: float | None,
    grid: Sequence[float],
    single_cluster_height: float,
    min_silhouette: float,
    min_cluster_share: float,
    min_cluster_size: int,
    strs: Sequence[str],
    max_insert_share: float,
) -> tuple[np.ndarray, float, float | None, list[dict[str, float]]]:
    """Labels (0..k-1) for the sample, the threshold and silhouette used, and the candidates tried."""
    n = D.shape[0]
    if n == 1:
        return np.zeros(1, dtype=int), threshold if threshold is not None else 0.0, None, []
    min_w = max(float(min_cluster_size), min_cluster_share * float(w.sum()))
    Z = linkage(squareform(D.astype(np.float64), checks=False), method="average")
    if threshold is not None:
        lab = _absorb_small(D, fcluster(Z, t=threshold, criterion="distance"), w, min_w)
        lab = _merge_detours(D, lab, w, strs, max_insert_share)
        sil = weighted_silhouette(D, lab, w)
        return lab, threshold, (None if np.isnan(sil) else sil), []
    top = float(Z[-1, 2])
    cands: list[dict[str, float]] = []
    best: tuple[float, float, np.ndarray] | None = None
    seen_k: set[int] = set()
    for t in grid:
        raw = fcluster(Z, t=t, criterion="distance")
        if raw.max() >= n and float(w.max()) <= 1.0:
            continue  # all singletons: nothing to score
        lab = _absorb_small(D, raw, w, min_w)
        lab = _merge_detours(D, lab, w, strs, max_insert_share)
        k = int(lab.max()) + 1
        if k < 2 or k in seen_k:
            continue
        seen_k.add(k)
        sil = weighted_silhouette(D, lab, w)
        cands.append({"threshold": float(t), "k": float(k), "silhouette": float(sil)})
        if best is None or sil > best[0] + 1e-9:
            best = (sil, t, lab)
    if top <= single_cluster_height or best is None or best[0] < min_silhouette:
        t1 = max(top, max(grid)) + 1e-6
        return np.zeros(n, dtype=int), t1, None, cands
    return best[2], float(best[1]), float(best[0]), cands


def cluster_sequences(
    sequences: Sequence[Sequence[str]],
    *,
    canonicalise: bool = True,
    max_block: int = 16,
    sample_size: int = 2000,
    threshold: float | None = None,
    grid: Sequence[float] | None = None,
    single_cluster_height: float = 0.25,
    min_silhouette: float = 0.15,
    min_cluster_share: float = 0.01,
    min_cluster_size: int = 5,
    max_insert_share: float = 0.4,
    max_rounds: int = 3,
    min_new_cluster_share: float = 0.002,
    batch_size: int = 4096,
    seed: int = 0,
    workers: int = -1,
) -> ClusterResult:
    """Cluster token sequences; the number of clusters comes from the data.

    ``threshold`` fixes the dendrogram cut (normalised edit distance); by default it is chosen on
    ``grid`` by the best count-weighted silhouette, and everything is one cluster when the last
    merge of the dendrogram is below ``single_cluster_height`` or no cut reaches
    ``min_silhouette``. Deterministic for a given multiset of inputs (independent of input order).
    """
    n_inputs = len(sequences)
    if grid is None:
        grid = [round(x, 3) for x in np.arange(0.05, 0.701, 0.025)]
    if n_inputs == 0:
        return ClusterResult([], [], {}, {}, {}, [], 0.0, None, 0, 0, 0, 0, 0)

    # exact variants (sorted -> order independent)
    orig_tuples = [tuple(s) for s in sequences]
    variant_counts = Counter(orig_tuples)
    variants = sorted(variant_counts)
    reduced_of: dict[tuple[str, ...], tuple[str, ...]] = {}
    red_counts: Counter[tuple[str, ...]] = Counter()
    for v in variants:
        r = tuple(reduce_sequence(v, canonicalise, max_block))
        reduced_of[v] = r
        red_counts[r] += variant_counts[v]
    reduced = sorted(red_counts)
    m = len(reduced)
    weights = np.array([red_counts[r] for r in reduced], dtype=np.float64)
    strs, _ = encode(reduced)

    # sample (count-weighted, without replacement, fixed seed)
    rng = np.random.default_rng(seed)
    if m <= sample_size:
        sample = np.arange(m)
        sample_w = weights
    else:
        # drawn proportionally to count: each drawn variant then stands for the same share of
        # runs, so the sample is unweighted (weighting again would count frequency twice)
        sample = np.sort(rng.choice(m, size=sample_size, replace=False, p=weights / weights.sum()))
        sample_w = np.ones(len(sample))

    label_of = np.full(m, -1, dtype=np.int64)
    dist_of = np.zeros(m, dtype=np.float64)
    medoid_idx: list[int] = []

    D = _pairwise([strs[i] for i in sample], workers)
    lab, thr, sil, cands = _hac_cut(
        D, sample_w, threshold, grid, single_cluster_height, min_silhouette, min_cluster_share,
        min_cluster_size, [strs[i] for i in sample], max_insert_share,
    )
    for c in np.unique(lab):
        idx = np.flatnonzero(lab == c)
        med = _medoid(D, idx, sample_w)
        medoid_idx.append(int(sample[med]))
        cid = len(medoid_idx) - 1
        label_of[sample[idx]] = cid
        dist_of[sample[idx]] = D[med, idx]
    del D

    def assign(items: np.ndarray) -> None:
        med_strs = [strs[i] for i in medoid_idx]
        for s in range(0, len(items), batch_size):
            chunk = items[s : s + batch_size]
            d = cdist([strs[i] for i in chunk], med_strs, scorer=Levenshtein.normalized_distance,
                      dtype=np.float32, workers=workers)
            best = np.argmin(d, axis=1)
            label_of[chunk] = best
            dist_of[chunk] = d[np.arange(len(chunk)), best]

    rest = np.flatnonzero(label_of < 0)
    assign(rest)
    rounds = 1
    total = weights.sum()
    min_new = max(float(min_cluster_size), min_new_cluster_share * total)
    far_cut = thr if len(medoid_idx) > 1 else max(thr, single_cluster_height)
    while rounds < max_rounds and len(rest):
        far = rest[dist_of[rest] > far_cut]
        if weights[far].sum() < min_new or len(far) < 2:
            break
        rounds += 1
        if len(far) > sample_size:
            p = weights[far] / weights[far].sum()
            sub = np.sort(rng.choice(len(far), size=sample_size, replace=False, p=p))
            far_s = far[sub]
        else:
            far_s = far
        D = _pairwise([strs[i] for i in far_s], workers)
        Z = linkage(squareform(D.astype(np.float64), checks=False), method="average")
        lab = fcluster(Z, t=far_cut, criterion="distance")
        added = False
        for c in np.unique(lab):
            idx = np.flatnonzero(lab == c)
            if weights[far_s[idx]].sum() < min_new:
                continue
            medoid_idx.append(int(far_s[_medoid(D, idx, weights[far_s])]))
            added = True
        del D
        if not added:
            break
        assign(far)
        rest = far

    # content-derived ids, sizes, representatives
    cid_of = [sequence_id(reduced[i]) for i in medoid_idx]
    per_input_label: list[str] = []
    per_input_dist: list[float] = []
    red_index = {r: i for i, r in enumerate(reduced)}
    sizes: Counter[str] = Counter()
    rep_counts: dict[str, Counter[tuple[str, ...]]] = {}
    for v in variants:
        ri = red_index[reduced_of[v]]
        cid = cid_of[label_of[ri]]
        sizes[cid] += variant_counts[v]
        rep_counts.setdefault(cid, Counter())[v] = variant_counts[v]
    for t in orig_tuples:
        ri = red_index[reduced_of[t]]
        per_input_label.append(cid_of[label_of[ri]])
        per_input_dist.append(float(dist_of[ri]))
    # drop medoids that ended with no members (possible after reassignment)
    medoids = {cid_of[j]: list(reduced[i]) for j, i in enumerate(medoid_idx) if sizes[cid_of[j]] > 0}
    cluster_ids = sorted(medoids, key=lambda c: (-sizes[c], c))
    reps = {c: list(min(rep_counts[c].items(), key=lambda kv: (-kv[1], kv[0]))[0]) for c in cluster_ids}
    return ClusterResult(
        labels=per_input_label,
        cluster_ids=cluster_ids,
        medoids={c: medoids[c] for c in cluster_ids},
        representatives=reps,
        sizes={c: sizes[c] for c in cluster_ids},
        distances=per_input_dist,
        threshold=float(thr),
        silhouette=sil,
        n_inputs=n_inputs,
        n_variants=len(variants),
        n_reduced_variants=m,
        sample_size=len(sample),
        rounds=rounds,
        candidates=cands,
    )
