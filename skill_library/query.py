"""Word search over skill summaries: light stemming, synonym groups, field weights.

A query is split into words; common words and words that describe every skill ("workflow",
"skill", ...) are dropped. Each remaining word becomes a group of stems: its own and those of its
synonyms (so "plotting" also looks for "plot", "chart", "figure", "png", ...). A skill matches
when it matches *every* group; its score sums, per group, the best field weight among the group's
stems (times 0.8 for a synonym rather than the word itself) times the stem's inverse document
frequency. Fields weigh: name 3, output types 3, title 2, tags 2, tools 1.5, category 1.5,
description 1, task template 1, agents 0.5.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

FIELD_WEIGHTS = {"name": 3.0, "outputs": 3.0, "title": 2.0, "tags": 2.0, "tools": 1.5, "category": 1.5,
                 "description": 1.0, "task_template": 1.0, "agents": 0.5}
SYNONYM_WEIGHT = 0.8
STOPWORDS = frozenset(
    ["a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "how", "i", "in", "into", "is", "it", "of", "on", "or", "over", "that", "the", "this", "to", "using", "via", "what", "which", "with", "workflow", "workflows", "skill", "skills", "procedure", "procedures", "recipe", "recipes", "task", "tasks"]
)
SYNONYMS = [
    "plot plotting chart graph figure visualization visualisation visualize visualise png svg image diagram histogram",
    "table tabular csv dataframe spreadsheet",
    "code script program implement implementation",
    "analysis analyze analyse analytics",
    "fit fitting regression",
    "load read ingest import",
    "report summary summarize summarise document writeup",
    "simulate simulation",
    "execute execution run",
    "data dataset",
    "debug fix error",
]
_WORD = re.compile(r"[a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light English stemmer: plurals, -ing, -ed (with undoubling), -ation/-ization."""
    if len(word) <= 3 or word.isdigit():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("isation", "ization", "ation", "ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz":
                word = word[:-1]
            break
    return word


def words(text: str) -> list[str]:
    """Lower-case words of ``text``, splitting camelCase and snake_case."""
    return _WORD.findall(_CAMEL.sub(" ", text).lower())


@lru_cache(maxsize=1)
def _synonym_groups() -> dict[str, frozenset[str]]:
    groups: dict[str, frozenset[str]] = {}
    for line in SYNONYMS:
        group = frozenset(stem(w) for w in line.split())
        for member in group:
            groups[member] = groups.get(member, frozenset()) | group
    return groups


def query_groups(query: str) -> list[tuple[str, frozenset[str]]]:
    """``(stem, stems to look for)`` per meaningful query word."""
    stems = dict.fromkeys(stem(w) for w in words(query) if w not in STOPWORDS)
    return [(s, _synonym_groups().get(s, frozenset()) | {s}) for s in stems]


@dataclass(frozen=True)
class SearchHit:
    name: str
    version: str
    score: float
    title: str
    status: str
    outputs: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _field_texts(name: str, entry: dict[str, Any]) -> dict[str, str]:
    s = entry["summary"]
    return {"name": name, "outputs": " ".join(s["outputs"]), "title": s["title"], "tags": " ".join(s["tags"]),
            "tools": " ".join(s["tools"]), "category": s["category"], "description": s["description"],
            "task_template": s["task_template"], "agents": " ".join(s["agents"])}


class SearchIndex:
    """An inverted index (stem -> skill -> best field weight) over a manifest's skills."""

    def __init__(self, skills: dict[str, dict[str, Any]]):
        self._entries = skills
        self._postings: dict[str, dict[str, float]] = defaultdict(dict)
        for name, entry in skills.items():
            for field_name, text in _field_texts(name, entry).items():
                weight = FIELD_WEIGHTS[field_name]
                for term in {stem(w) for w in words(text)}:
                    posting = self._postings[term]
                    if posting.get(name, 0.0) < weight:
                        posting[name] = weight
        self._size = max(len(skills), 1)

    def search(self, query: str, *, limit: int = 10, include_deprecated: bool = False,
               keep: Callable[[str, str], bool] | None = None) -> list[SearchHit]:
        """Skills matching every meaningful word of ``query``, best first; only those ``keep(name, version)``
        accepts, when given."""
        groups = query_groups(query)
        if not groups:
            return []
        scores: dict[str, float] | None = None
        for own, stems in groups:
            group_scores: dict[str, float] = {}
            for term in stems:
                posting = self._postings.get(term, {})
                idf = math.log(1 + self._size / max(len(posting), 1))
                factor = idf * (1.0 if term == own else SYNONYM_WEIGHT)
                for name, weight in posting.items():
                    group_scores[name] = max(group_scores.get(name, 0.0), weight * factor)
            scores = group_scores if scores is None else {
                n: scores[n] + v for n, v in group_scores.items() if n in scores}
        hits = []
        for name, score in (scores or {}).items():
            entry = self._entries[name]
            if (include_deprecated or entry["status"] == "active") and (keep is None or keep(name, entry["version"])):
                hits.append(SearchHit(name, entry["version"], round(score, 4), entry["summary"]["title"],
                                      entry["status"], entry["summary"]["outputs"]))
        hits.sort(key=lambda h: (-h.score, -self._entries[h.name]["summary"]["success_rate"], h.name))
        return hits[:limit]
