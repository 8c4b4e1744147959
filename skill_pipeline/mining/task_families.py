"""Task families: group runs whose task descriptions are worded the same way, with different parameters.

One agent behaviour (e.g. one_shot: engineer -> executor -> control -> terminator) serves many different tasks
("Plot sin(x) over [0, 5] ...", "Fit a linear model to data/a.csv ..."). Descriptions are normalised (quoted
strings, paths / file names, math expressions and numbers become typed placeholders) and reduced to their set of
*content words*: lower case, stop words dropped, each word lemmatised with ``lemminflect`` (which ships its
dictionary in the wheel, so nothing is downloaded), so "Plotting the curves" and "plot a curve" share their words.
Two descriptions of one wording share most words, two wordings few. Distinct word sets are clustered by
average-linkage HAC on the Jaccard distance, cut at ``max_distance``; families smaller than ``min_group_size``
runs join their nearest family.

A wording family is not yet a request: paraphrases ("Brainstorm N ideas on T", "Propose N project ideas in T")
are different wordings of one request, and a parameter value longer than the wording (a module's purpose, a
research topic) can make the runs asking about it a "family" of their own. ``skill_groups`` decides which families
of one behaviour are one request (its module docstring, step 3).
"""
from __future__ import annotations

import functools
import hashlib
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from lemminflect import getAllLemmas
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.sparse import csr_matrix
from scipy.spatial.distance import squareform

PLACEHOLDERS = ("<str>", "<path>", "<expr>", "<num>")
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'|`[^`]*`")
_PATH = re.compile(r"(?:[\w.~-]*[/\\])+[\w.-]+|\b[\w-]+\.[A-Za-z][A-Za-z0-9]{0,5}\b")
CALL = r"[A-Za-z_]\w*\((?:[^()]|\([^()]*\))*\)"
OPERAND = rf"(?:{CALL}|\((?:[^()]|\([^()]*\))*\)|[A-Za-z_]\w*|\d+(?:\.\d+)?)"
# "step-by-step", "non-linear", "75-bin": a word joined by hyphens, not a difference (the number in it stays one),
# unless an operator follows it ("alpha-beta*2" is an expression)
HYPHENATED = r"[A-Za-z0-9_.]+(?:-[A-Za-z][A-Za-z_]+)+(?![\w.-])(?!\s*(?:\*\*|[*/^+\-(]))"
# An expression starts where no word, dot or hyphen goes before it, and not at a hyphenated word.
EXPRESSION = re.compile(rf"(?<![\w.-])(?!{HYPHENATED})(?:-?{OPERAND}(?:\s*(?:\*\*|[*/^+\-])\s*-?{OPERAND})+"
                        rf"|{CALL})")
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?:st|nd|rd|th|%)?(?![\w])")
_WORD = re.compile(r"<(?:str|path|expr|num)>|[A-Za-z][A-Za-z'-]*")
VALUE_WORD = re.compile(r"[A-Za-z][A-Za-z]+")  # a word of a parameter value (what ``content_words`` counts)
STOP_WORDS = frozenset(["a", "an", "the", "this", "that", "these", "those", "it", "its", "it's", "of", "to", "in", "on", "at", "for", "from", "with", "by", "into", "onto", "over", "under", "about", "across", "between", "through", "per", "as", "and", "or", "but", "nor", "then", "than", "so", "if", "when", "while", "also", "please", "each", "every", "any", "all", "some", "both", "is", "are", "was", "were", "be", "been", "being", "do", "does", "did", "done", "have", "has", "had", "i", "me", "my", "we", "our", "you", "your", "they", "them", "their", "he", "she", "will", "would", "can", "could", "should", "shall", "may", "might", "must", "let", "s"])
_LEMMA_POS = ("NOUN", "VERB", "ADJ", "ADV")


@functools.lru_cache(maxsize=65_536)
def lemma(word: str) -> str:
    """The word's dictionary form (noun reading first: "ideas" -> "idea", "plotting" -> "plot")."""
    found = getAllLemmas(word.lower())
    for pos in _LEMMA_POS:
        if found.get(pos):
            return found[pos][0].lower()
    return word.lower()


def content_words(text: str) -> list[str]:
    """Lemmatised words of ``text`` without stop words (placeholders and single letters left out)."""
    return [lemma(w) for w in VALUE_WORD.findall(text or "") if w.lower() not in STOP_WORDS]


def normalise_description(text: str) -> str:
    """The description with typed placeholders: ``"Plot sin(x) over [-3, 5] and save as data/p.png"`` ->
    ``"Plot <expr> over [<num>, <num>] and save as <path>"``."""
    out = _QUOTED.sub("<str>", text or "")
    out = _PATH.sub("<path>", out)
    out = EXPRESSION.sub("<expr>", out)
    out = _NUMBER.sub("<num>", out)
    return re.sub(r"\s+", " ", out).strip()


def constant_words(text: str) -> frozenset[str]:
    """Content words of the normalised description (placeholders left out): the wording of the request."""
    return description_shape(text)[0]


def parameter_kinds(text: str) -> frozenset[str]:
    """The kinds of parameter values the description carries (``PLACEHOLDERS``)."""
    return description_shape(text)[1]


@functools.lru_cache(maxsize=131_072)
def description_shape(text: str) -> tuple[frozenset[str], frozenset[str]]:
    """(:func:`constant_words`, :func:`parameter_kinds`) of a description, normalised once: task families and
    skill groups both read them for every run."""
    found = _WORD.findall(normalise_description(text))
    words = frozenset(lemma(w) for w in found if w not in PLACEHOLDERS and w.lower() not in STOP_WORDS and len(w) > 1)
    return words, frozenset(w for w in found if w in PLACEHOLDERS)


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


def _family_id(words: list[str]) -> str:
    return "f" + hashlib.sha1(" ".join(words).encode()).hexdigest()[:10]


def task_families(
    descriptions: Mapping[str, str], *, min_group_size: int = 1, max_distance: float = 0.7,
    max_shapes: int = 2000, signature_share: float = 0.8,
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
        threshold = max_distance
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
