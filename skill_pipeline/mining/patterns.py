"""Consensus step sequence of a cluster: required / optional steps and repeat blocks.

Each member is canonicalised and repeat-collapsed (``clustering.reduce_sequence``), aligned to the
cluster medoid (Levenshtein opcodes), and:

- a medoid step matched in fewer than ``optional_below`` of the members becomes optional;
- a step inserted (relative to the medoid) in at least ``min_insert_share`` of the members, and in at least
  two of them, is added at its slot (optional unless it is frequent enough to be required); an optional insertion
  of a step the medoid already takes elsewhere is left out: it is that step done in another place by some runs
  (a resumed session, a shuffled phase), and adding it would put steps in an order no run follows as a whole
  (the engineer before the planner in a planning run);
- a tandem-repeated block (e.g. the engineer -> executor retry loop) becomes a ``RepeatBlock`` with
  ``min``/``max`` counts over the members (members without the loop count 1).
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rapidfuzz.distance import Levenshtein
from rapidfuzz.process import cdist

from .clustering import ClusterResult, collapse_repeats, encode
from .tokens import canonical_sequence, canonical_tuple, parse_token


@dataclass
class RepeatBlock:
    start: int  # first step index (into Pattern.steps)
    end: int  # exclusive
    min: int
    max: int
    counts: dict[int, int]  # repeat count -> number of member runs
    until: str | None  # "success" when the block executes code (retry until it works)

    def as_dict(self) -> dict[str, Any]:
        return {"min": self.min, "max": self.max, "until": self.until}


@dataclass
class PatternStep:
    index: int
    token: str
    event_type: str
    agent: str
    tool: str | None
    optional: bool
    frequency: float  # share of member runs (count-weighted) with this step
    block: int | None = None  # index into Pattern.blocks


@dataclass
class Pattern:
    cluster_id: str | None
    consensus: list[str]  # the medoid (canonical, repeat-collapsed) the members were aligned to
    steps: list[PatternStep]
    blocks: list[RepeatBlock]
    support: int  # member runs
    similarities: list[float]  # per member (input order): 1 - normalised distance to the consensus
    fits: list[bool]  # per member: the member's canonical sequence matches the pattern exactly
    repeat_counts: list[dict[int, int]]  # per member: block index -> repeat count (1 = once)
    member_indices: list[int] = field(default_factory=list)  # indices into the clustered input

    @property
    def mean_similarity(self) -> float:
        return float(np.mean(self.similarities)) if self.similarities else 0.0

    @property
    def exact_share(self) -> float:
        return float(np.mean(self.fits)) if self.fits else 0.0

    def regex(self) -> re.Pattern[str]:
        return _pattern_regex(self)[0]

    def matches(self, tokens: Sequence[str]) -> bool:
        rx, chars = _pattern_regex(self)
        seq = canonical_sequence(tokens)
        if any(t not in chars for t in seq):
            return False
        return rx.fullmatch("".join(chars[t] for t in seq)) is not None


def _pattern_regex(p: Pattern) -> tuple[re.Pattern[str], dict[str, str]]:
    vocab = sorted({s.token for s in p.steps})
    chars = {t: chr(0x100 + i) for i, t in enumerate(vocab)}
    parts: list[str] = []
    i = 0
    while i < len(p.steps):
        st = p.steps[i]
        if st.block is not None:
            blk = p.blocks[st.block]
            inner = "".join(_step_rx(p.steps[j], chars) for j in range(blk.start, blk.end))
            parts.append(f"(?:{inner}){{1,{max(blk.max, 1)}}}")
            i = blk.end
            continue
        parts.append(_step_rx(st, chars))
        i += 1
    return re.compile("".join(parts)), chars


def _step_rx(st: PatternStep, chars: dict[str, str]) -> str:
    c = re.escape(chars[st.token])
    return f"(?:{c})?" if st.optional else c


def _medoid_of(reduced: list[tuple[str, ...]], weights: list[int], max_sample: int = 300) -> tuple[str, ...]:
    order = sorted(range(len(reduced)), key=lambda i: (-weights[i], reduced[i]))[:max_sample]
    cand = [reduced[i] for i in order]
    strs, _ = encode(cand)
    D = cdist(strs, strs, scorer=Levenshtein.normalized_distance, dtype=np.float32, workers=1)
    score = D.astype(np.float64) @ np.array([weights[i] for i in order], dtype=np.float64)
    return cand[int(np.argmin(score))]


def mine_pattern(
    sequences: Sequence[Sequence[str]],
    medoid: Sequence[str] | None = None,
    *,
    cluster_id: str | None = None,
    optional_below: float = 0.8,
    min_insert_share: float = 0.2,
    min_repeat_share: float = 0.05,
    max_block: int = 16,
    core: Sequence[bool] | None = None,
) -> Pattern:
    """The consensus pattern of one cluster's member sequences (original tokens).

    ``core`` (per member) marks the members whose runs define the steps (e.g. the successful ones): the medoid
    and step frequencies come from them, while similarities, fits and repeat counts cover every member.
    """
    n = len(sequences)
    canon = [canonical_tuple(s) for s in sequences]
    variants = Counter(canon)
    in_core = list(core) if core is not None and any(core) else [True] * n
    core_w = Counter(v for v, c in zip(canon, in_core) if c)
    uniq = sorted(variants)
    collapsed = {v: collapse_repeats(list(v), max_block) for v in uniq}
    red_w: Counter[tuple[str, ...]] = Counter()
    for v in uniq:
        if core_w[v]:
            red_w[tuple(collapsed[v][0])] += core_w[v]
    if medoid is None:
        reds = sorted(red_w)
        medoid = _medoid_of(reds, [red_w[r] for r in reds]) if reds else ()
    M = list(medoid)
    total = float(sum(in_core)) or 1.0
    vocab = {t: i for i, t in enumerate(sorted(set(M) | {t for c in collapsed.values() for t in c[0]}))}
    (m_str,), _ = encode([M], vocab)

    present = np.zeros(len(M))
    ins_count: dict[tuple[int, str], float] = defaultdict(float)
    ins_offset: dict[tuple[int, str], list[float]] = defaultdict(list)
    block_obs: dict[tuple[int, int], Counter[int]] = defaultdict(Counter)  # (Ms, Me) -> count -> weight
    var_info: dict[tuple[str, ...], tuple[float, dict[tuple[int, int], int], set[int]]] = {}

    for v in uniq:
        w = variants[v]
        red, spans = collapsed[v]
        (r_str,), _ = encode([red], vocab)
        to_m: list[int | None] = [None] * len(red)
        matched: set[int] = set()
        seen_ins: set[tuple[int, str]] = set()
        for tag, i1, i2, j1, j2 in Levenshtein.opcodes(m_str, r_str):
            if tag == "equal":
                for k in range(i2 - i1):
                    to_m[j1 + k] = i1 + k
                    matched.add(i1 + k)
            elif tag in ("insert", "replace"):
                for off, j in enumerate(range(j1, j2)):
                    key = (i1, red[j])
                    if key not in seen_ins and core_w[v]:
                        seen_ins.add(key)
                        ins_count[key] += core_w[v]
                        ins_offset[key].append(off)
        for i in matched:
            present[i] += core_w[v]
        member_blocks: dict[tuple[int, int], int] = {}
        for s, e, c in spans:
            mapped = [to_m[j] for j in range(s, e) if to_m[j] is not None]
            if len(mapped) * 2 < (e - s) or not mapped:
                continue
            key = (min(mapped), max(mapped) + 1)
            member_blocks[key] = c
        sim = 1.0 - float(Levenshtein.normalized_distance(m_str, r_str))
        var_info[v] = (sim, member_blocks, matched)
        for key, c in member_blocks.items():
            block_obs[key][c] += w

    # repeat blocks in medoid coordinates: keep the best-supported non-overlapping ones
    min_rep = max(1.0, min_repeat_share * total)
    cand_blocks = sorted(
        ((sum(cnt.values()), key) for key, cnt in block_obs.items() if sum(cnt.values()) >= min_rep),
        key=lambda t: (-t[0], t[1]),
    )
    chosen: list[tuple[int, int]] = []
    for _, (s, e) in cand_blocks:
        if all(e <= cs or s >= ce for cs, ce in chosen):
            chosen.append((s, e))
    chosen.sort()

    # steps: medoid positions plus frequent insertions at their slots
    inserts_at: dict[int, list[tuple[float, str, float]]] = defaultdict(list)
    in_medoid = set(M)
    for (slot, tok), cnt in ins_count.items():
        supported = cnt / total >= min_insert_share and cnt >= min(2.0, total)
        if supported and (tok not in in_medoid or cnt / total >= optional_below):
            inserts_at[slot].append((float(np.mean(ins_offset[(slot, tok)])), tok, cnt / total))
    steps: list[PatternStep] = []
    pos_of_m: dict[int, int] = {}
    slot_start: dict[int, int] = {}

    def add(tok: str, freq: float) -> None:
        etype, agent, detail = parse_token(tok)
        steps.append(PatternStep(len(steps), tok, etype, agent, detail if etype == "tool_call" else None,
                                 freq < optional_below, round(freq, 4)))

    for i in range(len(M) + 1):
        slot_start[i] = len(steps)
        for _, tok, freq in sorted(inserts_at.get(i, [])):
            add(tok, freq)
        if i < len(M):
            pos_of_m[i] = len(steps)
            add(M[i], present[i] / total)
    blocks: list[RepeatBlock] = []
    block_keys: list[tuple[int, int]] = []
    for s, e in chosen:
        bs, be = pos_of_m[s], pos_of_m[e - 1] + 1
        # members whose run contains the block's steps at all (matched at least one position)
        counts: Counter[int] = Counter()
        for v in uniq:
            _, mb, matched = var_info[v]
            if (s, e) in mb:
                counts[mb[(s, e)]] += variants[v]
            elif any(i in matched for i in range(s, e)):
                counts[1] += variants[v]
        if not counts or max(counts) < 2:
            continue
        has_code = any(steps[j].event_type == "code_exec" for j in range(bs, be))
        blk = RepeatBlock(bs, be, min(counts), max(counts), dict(sorted(counts.items())),
                          "success" if has_code else None)
        for j in range(bs, be):
            steps[j].block = len(blocks)
        blocks.append(blk)
        block_keys.append((s, e))

    pattern = Pattern(cluster_id, M, steps, blocks, n, [], [], [])
    rx, chars = _pattern_regex(pattern)
    fit_of = {}
    for v in uniq:
        ok = all(t in chars for t in v) and rx.fullmatch("".join(chars[t] for t in v)) is not None
        fit_of[v] = ok
    for v in canon:
        sim, mb, matched = var_info[v]
        pattern.similarities.append(sim)
        pattern.fits.append(fit_of[v])
        rc = {}
        for b, key in enumerate(block_keys):
            if key in mb:
                rc[b] = mb[key]
            elif any(i in matched for i in range(*key)):
                rc[b] = 1
        pattern.repeat_counts.append(rc)
    return pattern


def mine_patterns(
    sequences: Sequence[Sequence[str]], result: ClusterResult, **kwargs: Any
) -> dict[str, Pattern]:
    """One pattern per cluster of ``result`` (aligned to the cluster medoid)."""
    members: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(result.labels):
        members[c].append(i)
    out = {}
    for cid in result.cluster_ids:
        idx = members.get(cid, [])
        p = mine_pattern([sequences[i] for i in idx], result.medoids[cid], cluster_id=cid, **kwargs)
        p.member_indices = idx
        out[cid] = p
    return out


def step_label(step: PatternStep) -> str:
    if step.event_type == "tool_call" and step.tool:
        return f"{step.agent}.{step.tool}()"
    if step.event_type == "agent_call":
        return step.agent
    return f"{step.agent}:{step.event_type}"


def describe_pattern(pattern: Pattern) -> str:
    """``'planner -> [engineer -> executor] x1-4 until success -> terminator'``; optional steps end in '?'."""
    parts: list[str] = []
    i = 0
    while i < len(pattern.steps):
        st = pattern.steps[i]
        if st.block is not None:
            b = pattern.blocks[st.block]
            inner = " -> ".join(step_label(s) + ("?" if s.optional else "") for s in pattern.steps[b.start:b.end])
            until = f" until {b.until}" if b.until else ""
            parts.append(f"[{inner}] repeated {b.min}-{b.max} times{until}")
            i = b.end
            continue
        parts.append(step_label(st) + ("?" if st.optional else ""))
        i += 1
    return " -> ".join(parts)
