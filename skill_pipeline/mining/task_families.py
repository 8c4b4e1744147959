"""Task families: group runs whose task descriptions are the same request with different parameters.

One agent behaviour (e.g. one_shot: engineer -> executor -> control -> terminator) serves many different tasks
("Plot sin(x) over [0, 5] ...", "Fit a linear model to data/a.csv ..."). Descriptions are normalised (quoted
strings, paths / file names, math expressions and numbers become typed placeholders) and reduced to their set of
lower-case words; two descriptions of one family share most words (the template's constant words), two families
share few. Distinct word sets are clustered by average-linkage HAC on the Jaccard distance, cut at the widest gap
between merge heights that lies above ``min_split_distance`` (no such gap: one family); families smaller than
``min_group_size`` runs join their nearest family.
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.sparse import csr_matrix
from scipy.spatial.distance import squareform

PLACEHOLDERS = ("<str>", "<path>", "<expr>", "<num>")
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'|`[^`]*`")
_PATH = re.compile(r"(?:[\w.~-]*[/\\])+[\w.-]+|\b[\w-]+\.[A-Za-z][A-Za-z0-9]{0,5}\b")
CALL = r"[A-Za-z_]\w*\((?:[^()]|\([^()]*\))*\)"
OPERAND = rf"(?:{CALL}|\((?:[^()]|\([^()]*\))*\)|[A-Za-z_]\w*|\d+(?:\.\d+)?)"
EXPRESSION = re.compile(rf"-?{OPERAND}(?:\s*(?:\*\*|[*/^+\-])\s*-?{OPERAND})+|{CALL}")
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?:st|nd|rd|th|%)?(?![\w])")
_WORD = re.compile(r"<(?:str|path|expr|num)>|[A-Za-z][A-Za-z'-]*")


def normalise_description(text: str) -> str:
    """The description with typed placeholders: ``"Plot sin(x) over [-3, 5] and save as data/p.png"`` ->
    ``"Plot <expr> over [<num>, <num>] and save as <path>"``."""
    out = _QUOTED.sub("<str>", text or "")
    out = _PATH.sub("<path>", out)
    out = EXPRESSION.sub("<expr>", out)
    out = _NUMBER.sub("<num>", out)
    return re.sub(r"\s+", " ", out).strip()


def constant_words(text: str) -> frozenset[str]:
    """Lower-case words of the normalised description (placeholders left out): what a template keeps."""
    return frozenset(w.lower() for w in _WORD.findall(normalise_description(text)) if w not in PLACEHOLDERS)


@dataclass
class FamilyResult:
    labels: dict[str, str]  # run_id -> family id
    signatures: dict[str, list[str]]  # family id -> words found in >= 80% of its runs (sorted)
    sizes: dict[str, int]
    threshold: float | None  # the cut (None: one family)


def _jaccard_distances(shapes: list[frozenset[str]]) -> np.ndarray:
    vocab = {w: i for i, w in enumerate(sorted({w for s in shapes for w in s}))}
    rows = [i for i, s in enumerate(shapes) for _ in s]
    cols = [vocab[w] for s in shapes for w in sorted(s)]
    x = csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(shapes), max(1, len(vocab))))
    inter = (x @ x.T).toarray()
    sizes = np.asarray(x.sum(axis=1)).ravel()
    union = sizes[:, None] + sizes[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        dist = np.where(union > 0, 1.0 - inter / union, 0.0)
    np.fill_diagonal(dist, 0.0)
    return dist


def _cut(heights: np.ndarray, min_split_distance: float, min_gap: float) -> float | None:
    """Midpoint of the widest gap between consecutive merge heights whose upper side is a merge of clearly
    different families (>= ``min_split_distance``); None when there is no such gap."""
    hs = np.sort(heights)
    best, cut = min_gap, None
    for lo, hi in zip(np.concatenate([[0.0], hs[:-1]]), hs):
        if hi >= min_split_distance and hi - lo >= best:
            best, cut = hi - lo, (lo + hi) / 2
    return cut


def _family_id(words: list[str]) -> str:
    return "f" + hashlib.sha1(" ".join(words).encode()).hexdigest()[:10]


def task_families(
    descriptions: Mapping[str, str], *, min_group_size: int = 1, min_split_distance: float = 0.6,
    min_gap: float = 0.1, max_shapes: int = 2000, signature_share: float = 0.8,
) -> FamilyResult:
    """Task family per run (run_id -> description). Deterministic: ids are hashes of the family's words."""
    run_ids = sorted(descriptions)
    shape_of = {r: constant_words(descriptions[r]) for r in run_ids}
    counts = Counter(shape_of.values())
    shapes = sorted(counts, key=lambda s: (-counts[s], sorted(s)))
    sampled = shapes[:max_shapes]
    label = np.zeros(len(sampled), dtype=int)
    threshold = None
    if len(sampled) > 1:
        dist = _jaccard_distances(sampled)
        z = linkage(squareform(dist, checks=False), method="average")
        threshold = _cut(z[:, 2], min_split_distance, min_gap)
        if threshold is not None:
            label = fcluster(z, t=threshold, criterion="distance") - 1
        label = _absorb_small(label, dist, [counts[s] for s in sampled], min_group_size)
    group_of = dict(zip(sampled, label.tolist()))
    if len(shapes) > len(sampled):  # rare shapes beyond the sample join the group of their nearest sampled shape
        for s in shapes[len(sampled):]:
            sims = [len(s & t) / len(s | t) if s | t else 1.0 for t in sampled]
            group_of[s] = group_of[sampled[int(np.argmax(sims))]]
    members: dict[int, list[str]] = {}
    for r in run_ids:
        members.setdefault(group_of[shape_of[r]], []).append(r)
    labels: dict[str, str] = {}
    signatures: dict[str, list[str]] = {}
    sizes: dict[str, int] = {}
    for runs in members.values():
        words = Counter(w for r in runs for w in shape_of[r])
        signature = sorted(w for w, c in words.items() if c >= signature_share * len(runs))
        fid = _family_id(signature)
        signatures[fid], sizes[fid] = signature, len(runs)
        labels.update({r: fid for r in runs})
    return FamilyResult(labels, signatures, sizes, threshold)


def _absorb_small(label: np.ndarray, dist: np.ndarray, weights: list[int], min_size: int) -> np.ndarray:
    """Groups with fewer than ``min_size`` runs join the big group at the least average distance."""
    w = np.asarray(weights)
    size = {g: int(w[label == g].sum()) for g in np.unique(label)}
    big = [g for g, n in size.items() if n >= min_size]
    if not big:
        return np.zeros_like(label)
    out = label.copy()
    for g in (g for g in size if g not in big):
        idx = np.flatnonzero(label == g)
        out[idx] = min(big, key=lambda b: (float(dist[np.ix_(idx, np.flatnonzero(label == b))].mean()), b))
    return out
