"""Stable skill identity across mining runs.

The miner proposes skills without ids; each publish matches them against the skills already in
the library so that a re-mined pattern keeps its name and id.

**Similarity rule.** A candidate *c* and an existing skill *e* are the same skill when

1. the normalised edit similarity of their step signatures is at least ``STEP_THRESHOLD`` (0.8):
   a signature is the sequence of ``(agent, action, tool)`` triples, and the similarity is
   ``1 - levenshtein(sig_c, sig_e) / max(len(sig_c), len(sig_e))`` with whole triples as symbols;
2. their task templates belong to the same family: the Jaccard similarity of the templates'
   literal words (lower-cased, placeholders dropped) is at least ``TEMPLATE_THRESHOLD`` (0.5).

Among all qualifying pairs the best wins: pairs are taken greedily by descending step similarity,
then template similarity, then "the candidate proposed the existing name"; each existing skill and
each candidate is matched at most once. Exact signature pairs are found by hashing; the quadratic
edit-distance comparison only runs for candidates left unmatched, against existing skills left
unmatched, and is skipped when the lengths alone rule the pair out.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from .values import TEMPLATE_TOKEN

STEP_THRESHOLD = 0.8
TEMPLATE_THRESHOLD = 0.5
_ID_NAMESPACE = uuid.UUID("6f1c1f4e-5a0e-4c55-9d1b-2f8e7a3c9b10")

Signature = tuple[tuple[str, str, str], ...]


def signature(doc: dict[str, Any]) -> Signature:
    """The step signature: ``(agent, action, tool)`` per step, in order."""
    return tuple((s["agent"], s["action"], s.get("tool") or "") for s in doc["steps"])


def template_words(template: str) -> frozenset[str]:
    """The literal words of a task template, placeholders removed."""
    return frozenset(re.findall(r"[a-z0-9]+", TEMPLATE_TOKEN.sub(" ", template).lower()))


def edit_similarity(a: Sequence[Any], b: Sequence[Any]) -> float:
    """``1 - levenshtein(a, b) / max(len)`` over whole elements; 1.0 for two empty sequences."""
    if not a and not b:
        return 1.0
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return 1.0 - previous[-1] / max(len(a), len(b))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def slugify(proposed: str) -> str:
    """A valid skill name from a proposed one: lower-case ``[a-z0-9_]``, starting with a letter."""
    slug = re.sub(r"[^a-z0-9]+", "_", proposed.lower()).strip("_")[:72].rstrip("_")
    if not slug or not slug[0].isalpha():
        slug = f"skill_{slug}".rstrip("_")
    return slug


def unique_name(proposed: str, taken: set[str]) -> str:
    """``slugify(proposed)``, suffixed ``_2``, ``_3``... until it is not in ``taken``."""
    base = slugify(proposed)
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    return name


def skill_id(name: str) -> str:
    """The id a skill gets when first published: a UUID derived from its (unique) name."""
    return str(uuid.uuid5(_ID_NAMESPACE, name))


def match(candidates: Sequence[dict[str, Any]], existing: Sequence[dict[str, Any]]) -> dict[int, int]:
    """Match candidates to existing skills: ``{candidate index: existing index}``."""
    cand = [(signature(c), template_words(c["task_template"]), slugify(c["name"])) for c in candidates]
    exist = [(signature(e), template_words(e["task_template"]), e["name"]) for e in existing]
    by_signature: dict[Signature, list[int]] = defaultdict(list)
    for j, (sig, _, _) in enumerate(exist):
        by_signature[sig].append(j)

    def pairs(ci: int, options: Iterable[int]) -> Iterable[tuple[float, float, bool, int, int]]:
        sig, words, name = cand[ci]
        for ej in options:
            esig, ewords, ename = exist[ej]
            if abs(len(sig) - len(esig)) > (1 - STEP_THRESHOLD) * max(len(sig), len(esig)):
                continue
            step_sim = 1.0 if sig == esig else edit_similarity(sig, esig)
            template_sim = jaccard(words, ewords)
            if step_sim >= STEP_THRESHOLD and template_sim >= TEMPLATE_THRESHOLD:
                yield step_sim, template_sim, name == ename, ci, ej

    result: dict[int, int] = {}

    def assign(scored: list[tuple[float, float, bool, int, int]]) -> None:
        taken = set(result.values())
        for *_, ci, ej in sorted(scored, key=lambda p: (-p[0], -p[1], not p[2], p[3], p[4])):
            if ci not in result and ej not in taken:
                result[ci] = ej
                taken.add(ej)

    assign([p for ci in range(len(cand)) for p in pairs(ci, by_signature.get(cand[ci][0], ()))])
    free = [ej for ej in range(len(exist)) if ej not in set(result.values())]
    assign([p for ci in range(len(cand)) if ci not in result for p in pairs(ci, free)])
    return result
