"""The MARS stage-4 reference algorithms (never shipped there), reimplemented as a baseline.

``PatternMatcher``: token ``"<event_type>:<agent_name|system>"``; ``find_common_sequences``
counts contiguous subsequences of length >= 3 occurring >= 2 times, sorted by (frequency, length);
``extract_agent_pattern`` = most common exact agent sequence; ``calculate_similarity`` =
1 - Levenshtein / max(len). ``auto_discover_skills(min_similarity=0.8, min_nodes=3)`` groups
sequences greedily: each ungrouped sequence seeds a group and takes every later ungrouped
sequence at least ``min_similarity`` similar to the seed.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rapidfuzz.distance import Levenshtein

from .clustering import encode
from .tokens import order_events


def baseline_token(event: Mapping[str, Any]) -> str:
    return f"{event.get('event_type')}:{event.get('agent_name') or 'system'}"


def baseline_sequences(events: Iterable[Mapping[str, Any]], by: str = "run_id") -> dict[str, list[str]]:
    """Per run (``by='run_id'``) or per node (``by='node_id'``): baseline tokens of all events."""
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for ev in events:
        groups[str(ev.get(by))].append(ev)
    return {k: [baseline_token(e) for e in order_events(v)] for k, v in sorted(groups.items())}


def find_common_sequences(
    sequences: Sequence[Sequence[str]], min_length: int = 3, min_frequency: int = 2,
    max_length: int | None = None,
) -> list[tuple[tuple[str, ...], int]]:
    """Contiguous subsequences (length >= ``min_length``) occurring >= ``min_frequency`` times in
    total, sorted by frequency then length (descending), then lexicographically."""
    counts: Counter[tuple[str, ...]] = Counter()
    for seq in sequences:
        n = len(seq)
        top = n if max_length is None else min(n, max_length)
        for length in range(min_length, top + 1):
            for i in range(n - length + 1):
                counts[tuple(seq[i : i + length])] += 1
    found = [(k, c) for k, c in counts.items() if c >= min_frequency]
    found.sort(key=lambda kc: (-kc[1], -len(kc[0]), kc[0]))
    return found


def extract_agent_pattern(sequences: Sequence[Sequence[str]]) -> list[str]:
    """The most common exact sequence (ties: lexicographically smallest)."""
    if not sequences:
        return []
    c = Counter(tuple(s) for s in sequences)
    return list(min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0])


def calculate_similarity(a: Sequence[str], b: Sequence[str]) -> float:
    if not a and not b:
        return 1.0
    return 1.0 - Levenshtein.distance(list(a), list(b)) / max(len(a), len(b))


@dataclass
class BaselineResult:
    labels: list[int]  # group index per input sequence (every input has a group)
    groups: list[list[int]]  # members per group, seeds in input order
    skills: list[int]  # groups with at least min_nodes members


def auto_discover_skills(
    sequences: Sequence[Sequence[str]], min_similarity: float = 0.8, min_nodes: int = 3
) -> BaselineResult:
    """Greedy grouping at ``min_similarity`` to the group seed (exact variants are decided once)."""
    variants: dict[tuple[str, ...], list[int]] = {}
    for i, s in enumerate(sequences):
        variants.setdefault(tuple(s), []).append(i)
    keys = list(variants)  # first-occurrence order
    strs, _ = encode(keys)
    vlabel = [-1] * len(keys)
    seeds: list[int] = []
    for vi in range(len(keys)):
        if vlabel[vi] >= 0:
            continue
        g = len(seeds)
        seeds.append(vi)
        vlabel[vi] = g
        a = strs[vi]
        for vj in range(vi + 1, len(keys)):
            if vlabel[vj] < 0:
                b = strs[vj]
                m = max(len(a), len(b))
                if m == 0 or 1.0 - Levenshtein.distance(a, b) / m >= min_similarity:
                    vlabel[vj] = g
    labels = [0] * len(sequences)
    groups: list[list[int]] = [[] for _ in seeds]
    for vi, key in enumerate(keys):
        for i in variants[key]:
            labels[i] = vlabel[vi]
    for i, g in enumerate(labels):
        groups[g].append(i)
    return BaselineResult(labels, groups, [g for g, m in enumerate(groups) if len(m) >= min_nodes])
