"""Skill templates: parameterised task description, expected outputs, statistics, candidate dict.

Task template: member task descriptions are split into words / numbers / paths / punctuation and
aligned (Levenshtein opcodes) to a reference description (the word-level medoid). Reference
tokens kept by at least ``constant_share`` of the members are constant; the gaps between
consecutive constant anchors become slots ``{name}``, each member's slot value being its text
between the two anchors. Across wordings of one request (``request_template``), a phrase one wording's runs
give as a value is a parameter in every wording, so no template or title keeps one run's literal. Slot kinds:
integer, number, file_path, enum (few distinct values), string. Names come from nearby words (``x_min``/``x_max`` inside ``[a, b]``, ``file_name`` for
paths) or the kind.
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
from rapidfuzz.distance import Levenshtein
from rapidfuzz.process import cdist

from .clustering import encode
from .naming import behaviour_title, skill_name, skill_title
from .patterns import Pattern, describe_pattern
from .roles import step_action
from .stats import (
    failure_hotspots,
    last_step_before_failure,
    outcome,
    percentiles,
    run_cost_usd,
    run_duration_s,
    wilson_interval,
)
from .task_families import EXPRESSION, STOP_WORDS, VALUE_WORD, content_words, lemma, task_families
from .tokens import canonical_sequence, token_events

_WORD_RX = re.compile(
    r"(?:[A-Za-z_~][\w\-~]*)?(?:[/\\][\w\-.]+)+"  # paths with a separator
    r"|[A-Za-z_][\w\-]*\.[A-Za-z][A-Za-z0-9]{0,5}\b"  # file.ext
    rf"|{EXPRESSION.pattern}"  # math expressions (sin(x), x**3 - 2*x): one token, so one slot value
    r"|(?<![\w)\]])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"  # numbers (signed when not after a word)
    r"|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
    r"|\w+"
    r"|[^\w\s]"
)
_INT_RX = re.compile(r"^[-+]?\d+$")
_NUM_RX = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")
_PATH_RX = re.compile(r"^[\w\-./\\~]*\.[A-Za-z][A-Za-z0-9]{0,5}$")
_STOP = frozenset(["a", "an", "the", "of", "to", "in", "on", "at", "for", "from", "with", "and", "or", "as", "by", "it", "its", "into", "over", "under", "this", "that", "is", "are", "be", "using", "use", "then", "save", "store", "write", "show", "make", "create"])


def tokenize_text(text: str) -> list[tuple[str, bool]]:
    """Words / numbers / paths / punctuation with a flag 'preceded by whitespace'."""
    out = []
    for m in _WORD_RX.finditer(text or ""):
        out.append((m.group(0), m.start() > 0 and text[m.start() - 1].isspace()))
    return out


def _join(tokens: Sequence[tuple[str, bool]]) -> str:
    s = ""
    for i, (t, sp) in enumerate(tokens):
        s += (" " if sp and i > 0 else "") + t
    return s


@dataclass
class Slot:
    name: str
    kind: str  # integer | number | file_path | expression | enum | string
    required: bool
    default: Any
    examples: list[Any]
    enum: list[Any] | None = None
    description: str = ""
    source: str = "task"  # task | tool_argument

    def json_type(self) -> str:
        return {"integer": "integer", "number": "number"}.get(self.kind, "string")

    def as_parameter(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.json_type(), "required": self.required, "default": self.default,
                             "examples": self.examples, "description": self.description}
        if self.kind == "file_path":
            d["format"] = "file_path"
        if self.enum is not None:
            d["enum"] = self.enum
        return d


@dataclass
class TaskTemplate:
    template: str
    slots: list[Slot]
    values: dict[str, dict[str, str]] = field(default_factory=dict)  # run_id -> slot -> value
    reference_run: str | None = None
    value_keys: frozenset[tuple[str, ...]] = frozenset()  # short values between common words ("of {x} in")
    wording_runs: int = 0  # runs asked in the template's wording (1: the template is one run's request)

    def render(self, **params: Any) -> str:
        return self.template.format(**{s.name: params.get(s.name, s.default) for s in self.slots})


def _convert(kind: str, v: str) -> Any:
    if kind == "integer":
        return int(v)
    if kind == "number":
        return float(v)
    return v


def infer_kind(values: Sequence[str], max_enum: int = 8) -> str:
    """integer | number | file_path | expression | enum | string. An enum is a *closed* set: at most ``max_enum``
    short values, each seen at least twice and on average three times (a value seen once says the set is still
    open: a topic or a file name stays free text, so a consumer may pass one no member run used)."""
    vals = [v for v in values if v != ""]
    if not vals:
        return "string"
    if all(_INT_RX.match(v) for v in vals):
        return "integer"
    if all(_NUM_RX.match(v) for v in vals):
        return "number"
    if all(_PATH_RX.match(v) and not _NUM_RX.match(v) for v in vals):
        return "file_path"
    if all(EXPRESSION.fullmatch(v) for v in vals):
        return "expression"
    counts = Counter(vals)
    if (len(counts) <= max_enum and min(counts.values()) >= 2 and len(vals) >= 3 * len(counts)
            and all(len(v.split()) <= 2 for v in counts)):
        return "enum"
    return "string"


def _snake(text: str) -> str:
    s = re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower()
    return s


def _make_slot(name: str, values: Sequence[str], n_members: int, source: str, description: str) -> Slot:
    kind = infer_kind(values)
    present = [v for v in values if v != ""]
    counts = Counter(present)
    ranked = [v for v, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    conv = [_convert(kind, v) for v in ranked]
    return Slot(
        name=name, kind=kind, required=len(present) == n_members and n_members > 0,
        default=conv[0] if conv else None, examples=conv[:5],
        enum=sorted(conv, key=str) if kind == "enum" else None, description=description, source=source,
    )


def _reference(descs: Sequence[list[tuple[str, bool]]], max_sample: int = 200) -> int:
    order = sorted(range(len(descs)), key=lambda i: [t for t, _ in descs[i]])[:max_sample]
    strs, _ = encode([[t for t, _ in descs[i]] for i in order])
    D = cdist(strs, strs, scorer=Levenshtein.normalized_distance, dtype=np.float32, workers=1)
    return order[int(np.argmin(D.sum(axis=1)))]


def extract_task_template(
    descriptions: Mapping[str, str], *, constant_share: float = 0.8, min_gap_share: float = 0.2,
    values: frozenset[tuple[str, ...]] = frozenset(), wording: frozenset[str] = frozenset(),
) -> TaskTemplate:
    """Parameterised task template from the task descriptions of one cluster's runs (run_id -> text).

    ``values``: short values (``_value_key``: lemmas of their words) that some run of any wording of the request
    gave for a parameter; a reference phrase equal to one is never constant, nor is a reference span some member
    replaces with value words, so a value every member shares ("galaxy number density" in all runs of this wording,
    another wording varying it) is still a parameter. Such a span grows over the neighbouring tokens that are not
    words of the ``wording`` (its signature lemmas): "DES Y3", "dust extinction E(B-V)" are one value. The result's
    ``value_keys`` are this wording's own short values between common words. With a single run, its numbers, file
    paths and math expressions become the slots."""
    run_ids = sorted(descriptions)
    if not run_ids:
        return TaskTemplate("", [], {})
    toks = [tokenize_text(descriptions[r]) for r in run_ids]
    ref_i = _reference(toks)
    ref = toks[ref_i]
    n = len(run_ids)
    vocab = {t: i for i, t in enumerate(sorted({t for d in toks for t, _ in d}))}
    (ref_s,), _ = encode([[t for t, _ in ref]], vocab)
    matched_cnt = np.zeros(len(ref))
    varies = _value_phrases(ref, values)
    value_words = frozenset(w for key in values for w in key if VALUE_WORD.fullmatch(w))
    swapped: set[tuple[str, ...]] = set()
    maps: list[dict[int, int]] = []
    for d in toks:
        (s,), _ = encode([[t for t, _ in d]], vocab)
        mp = {}
        for tag, i1, i2, j1, j2 in Levenshtein.opcodes(ref_s, s):
            if tag == "equal":
                for m in range(i2 - i1):
                    mp[i1 + m] = j1 + m
        for i1, i2, j1, j2 in _differing_spans(mp):
            if i2 > i1 and _is_value_span(d[j1:j2], value_words):  # another value between common words
                varies[i1:i2] = True
            ours, theirs = _value_key(_join(ref[i1:i2])), _value_key(_join(d[j1:j2]))
            if ours and theirs:  # words in place of words: values, even where most members agree
                swapped.update((ours, theirs))
        maps.append(mp)
        for i in mp:
            matched_cnt[i] += 1
    _widen_values(ref, varies, wording)
    if n == 1:  # one example: its numbers, paths and expressions that stand as words of their own are parameters
        constant = [i for i in range(len(ref))
                    if not (infer_kind([ref[i][0]]) in _VALUE_KINDS and _stands_alone(ref, i)) and not varies[i]]
    else:
        constant = [i for i in range(len(ref)) if matched_cnt[i] >= constant_share * n and not varies[i]]
    anchors = [-1] + constant + [len(ref)]
    pieces: list[tuple[str, Any]] = []  # ("text", (tokens)) or ("slot", index into slots)
    slot_values: list[list[str]] = []
    slot_pos: list[tuple[int, int]] = []
    for a, b in pairwise(anchors):
        if a >= 0:
            pieces.append(("text", ref[a]))
        vals: list[str] = []
        complete = True
        for d, mp in zip(toks, maps):
            lo = mp.get(a, -1) if a >= 0 else -1
            hi = mp.get(b, len(d)) if b < len(ref) else len(d)
            if (a >= 0 and a not in mp) or (b < len(ref) and b not in mp) or hi < lo:
                vals.append("")
                complete = False
                continue
            vals.append(_join([(t, sp) for t, sp in d[lo + 1 : hi]]).strip())
        if b - a > 1 or sum(v != "" for v in vals) >= min_gap_share * n:
            if len(set(vals)) <= 1 and complete and n > 1 and not varies[a + 1:b].any():
                for k in range(a + 1, b):  # identical everywhere (and no value elsewhere): keep as text
                    pieces.append(("text", ref[k]))
                continue
            pieces.append(("slot", len(slot_values)))
            slot_values.append(vals)
            slot_pos.append((a, b))
    # names
    names: list[str] = []
    kinds = [infer_kind(v) for v in slot_values]
    for si, (a, b) in enumerate(slot_pos):
        name = _slot_name(ref, a, b, kinds[si])
        listed = si > 0 and slot_pos[si - 1][1] == a and ref[a][0].lower() in ("and", "or", ",", "/")
        names.append(re.sub(r"_\d+$", "", names[-1]) if listed and name == "subject" else name)  # "{x} and {x_2}"
    seen: Counter[str] = Counter()
    for i, nm in enumerate(names):
        seen[nm] += 1
        if seen[nm] > 1:
            names[i] = f"{nm}_{seen[nm]}"
    slots = []
    is_constant = set(constant)
    for si, vals in enumerate(slot_values):
        a, _ = slot_pos[si]
        before = []  # the constant words just before the slot (never another slot's value)
        for k in range(a, max(-1, a - 3), -1):
            if k not in is_constant:
                break
            before.insert(0, ref[k])
        context = _join(before).strip() if n > 1 else ""  # one run: its constant words may be its values too
        slots.append(_make_slot(names[si], vals, n, "task", describe_slot(names[si], context)))
    # template text
    out = ""
    first = True
    for kind, val in pieces:
        if kind == "text":
            t, sp = val
            out += (" " if sp and not first else "") + t
        else:
            a, b = slot_pos[val]
            sp = ref[a + 1][1] if a + 1 < b else (a >= 0 and a + 1 < len(ref) and ref[a + 1][1])
            out += (" " if sp and not first else "") + "{" + names[val] + "}"
        first = False
    values = {rid: {names[si]: slot_values[si][k] for si in range(len(slots))} for k, rid in enumerate(run_ids)}
    # values between constant words; none when the text does not open with its own words (a mix of wordings,
    # whose "values" are the other wordings' words)
    bounded = [vals for vals, (a, b) in zip(slot_values, slot_pos) if 0 <= a and b < len(ref) and 0 in is_constant]
    found = frozenset(k for vals in bounded for v in vals if (k := _value_key(v))).union(
        swapped if 0 in is_constant else ())
    return TaskTemplate(out, slots, values, run_ids[ref_i], found, n)


def _stands_alone(ref: Sequence[tuple[str, bool]], i: int) -> bool:
    """The token is a word of its own (space or an opening bracket, '=' or ':' before it; space, the end or
    punctuation ending a word after it), not a piece of a longer name ("chains_0.1_trisp")."""
    opens = i == 0 or ref[i][1] or ref[i - 1][0] in "([{=:"
    after = ref[i + 1:i + 3]
    closes = (not after or after[0][1] or (after[0][0] in ".,;:!?)]}" and (len(after) == 1 or after[1][1])))
    return bool(opens and closes)


_ARTICLES = frozenset({"a", "an", "the"})
_QUESTION_WORDS = frozenset({"how", "what", "why", "which", "who", "whom", "whose", "when", "where", "whether"})
_VALUE_KINDS = frozenset({"integer", "number", "file_path", "expression"})
_WRITE_VERBS = frozenset({"save", "write", "store", "export", "dump", "summarise", "summarize", "report"})
_PREPOSITION_NAMES = {"is": "subject", "are": "subject", "about": "topic", "on": "topic", "concerning": "topic", "regarding": "topic", "in": "subject",
                      "for": "target", "with": "method", "using": "method", "from": "source", "of": "subject",
                      "by": "method", "into": "target", "versus": "other_quantity", "vs": "other_quantity",
                      "against": "other_quantity", "across": "region", "over": "region"}
_ROLE_DESCRIPTIONS = {
    "x_min": "lower end of the range", "x_max": "upper end of the range", "input_file": "file the task reads",
    "output_file": "file the result is written to", "expression": "mathematical expression to work on",
    "topic": "topic the request is about", "subject": "what the request is about",
    "target": "what the result is for", "method": "method or tool to use", "source": "where the input comes from",
    "other_quantity": "second quantity it is compared with", "region": "region or range it covers",
    "quantity": "quantity to compute", "request": "the request in the user's words",
}
_CONTENT = re.compile(r"^[A-Za-z][A-Za-z_]+$")


def _is_content(word: str) -> bool:
    return bool(_CONTENT.match(word)) and word.lower() not in _STOP


def _clause_words(ref: Sequence[tuple[str, bool]], a: int) -> list[str]:
    """Lower-case words of the reference from the start of the clause holding position ``a`` up to ``a``."""
    words: list[str] = []
    for k in range(a, -1, -1):
        w = ref[k][0].lower()
        if w == "and":
            break
        words.append(w)
    return words[::-1]


def _slot_name(ref: Sequence[tuple[str, bool]], a: int, b: int, kind: str) -> str:
    """A slot's name from its surroundings in the reference description (``a``/``b``: constant anchors)."""
    prev = ref[a][0] if a >= 0 else ""
    nxt = ref[b][0] if b < len(ref) else ""
    clause = _clause_words(ref, a) if a >= 0 else []
    if kind == "file_path":  # "... and save it to {output_file}" vs "Fit a model to {input_file}"
        return "output_file" if any(w in _WRITE_VERBS for w in clause) else "input_file"
    if kind in ("integer", "number"):  # [a, b] ranges: two numeric slots separated by one comma, in brackets
        if prev in ("[", "(") and nxt == ",":
            return "x_min"
        if prev == "," and nxt in ("]", ")"):
            return "x_max"
        if _is_content(nxt):  # "{n_papers} recent papers on": a count of the noun before the preposition
            noun = nxt
            for k in range(b, len(ref)):
                w = ref[k][0]
                if not _is_content(w) or w.lower() in _PREPOSITION_NAMES:
                    break
                noun = w
            return "n_" + _snake(noun)
    if kind == "expression":  # "Plot {expression} over"
        return kind
    if prev == "=" and a > 0 and re.fullmatch(r"[A-Za-z_]\w*", ref[a - 1][0]):  # "k={k}", "y={expression}"
        return _snake(ref[a - 1][0]) if kind in ("integer", "number") else "expression"
    if prev.lower() in _PREPOSITION_NAMES:  # "about {topic}"
        return _PREPOSITION_NAMES[prev.lower()]
    verb = len(clause) < 2 or (a > 0 and ref[a - 1][0].lower() == "to")  # "Explain {x}", "to regress {x}"
    if _is_content(prev) and not verb and prev.lower() not in _QUESTION_WORDS:  # "column {column}"
        return _snake(prev)
    if prev.lower() in _ARTICLES:
        return _snake(nxt) if _is_content(nxt) else "quantity"  # "a {model} model", "the {quantity} of"
    if _is_content(nxt):  # "{model} fit": what the value qualifies
        return _snake(nxt) + "_kind"
    return "request" if a < 0 else "subject"  # a verb's object, or words between words of no role of their own


def describe_slot(name: str, before: str = "") -> str:
    """What a parameter is, from its role (its name), plus the request's own words that precede it."""
    base = re.sub(r"_\d+$", "", name)  # "subject_2": a second value of one role
    if base in _ROLE_DESCRIPTIONS:
        role = _ROLE_DESCRIPTIONS[base]
    elif name.startswith("n_"):
        role = "number of " + name[2:].replace("_", " ")
    elif name.endswith("_kind"):
        role = "kind of " + name.removesuffix("_kind").replace("_", " ")
    elif len(base) <= 2:  # a symbol the request assigns ("k={k}")
        role = f"value of {base}"
    else:
        role = base.replace("_", " ")
    return f"{role} (after '{before}' in the request)" if before else role


def _is_value_word(token: str, values: frozenset[str]) -> bool:
    """True when the token's words ("halo_mass": halo, mass) are all words some run takes as a value."""
    parts = [w for w in VALUE_WORD.findall(token) if w.lower() not in STOP_WORDS]
    return bool(values) and bool(parts) and token.lower() not in STOP_WORDS and all(lemma(w) in values for w in parts)


def _value_phrases(ref: Sequence[tuple[str, bool]], values: frozenset[tuple[str, ...]]) -> np.ndarray:
    """Positions of the longest phrases, set apart by stop words or punctuation, that some run gives as a value ("of
    galaxy number density over" when another run's parameter was "galaxy number density")."""
    marks = np.zeros(len(ref), dtype=bool)
    apart = [not re.search(r"\w", t) or t.lower() in STOP_WORDS for t, _ in ref]
    starts = [i for i in range(len(ref)) if not apart[i] and (i == 0 or apart[i - 1])]
    ends = [j for j in range(1, len(ref) + 1) if not apart[j - 1] and (j == len(ref) or apart[j])]
    i = 0
    for start in starts:
        if start < i:
            continue
        for end in sorted((e for e in ends if e > start), reverse=True):
            span = ref[start:end]
            if _value_key(_join(span)) in values and not any(infer_kind([t]) in _VALUE_KINDS for t, _ in span):
                marks[start:end] = True  # numbers and files align by themselves
                i = end
                break
    return marks


def _is_value_span(tokens: Sequence[tuple[str, bool]], values: frozenset[str]) -> bool:
    """True when the tokens hold a value word and every word of them is a value word or a stop word."""
    words = [t for t, _ in tokens if VALUE_WORD.search(t)]
    return any(_is_value_word(w, values) for w in words) and all(
        _is_value_word(w, values) or w.lower() in STOP_WORDS for w in words)


def _value_key(text: str, max_words: int = 4) -> tuple[str, ...]:
    """Lemmas of a short value's words and numbers ("the galaxy number density" -> galaxy, number, density; "40
    bins" -> 40, bin); () for longer text, which is a rewording (a slot holding the whole request), not a value."""
    if len(text.split()) > max_words:
        return ()
    return tuple(lemma(t) for t, _ in tokenize_text(text) if re.search(r"\w", t) and t.lower() not in STOP_WORDS)


def _differing_spans(mp: Mapping[int, int]) -> list[tuple[int, int, int, int]]:
    """Maximal reference spans ``[i1, i2)`` a member words differently (its span ``[j1, j2)``) between two aligned
    common tokens (``mp``: reference position -> member position of the equal tokens); open ends are left out."""
    aligned = sorted(mp.items())
    return [(a + 1, b, mp[a] + 1, mp[b]) for (a, _), (b, _) in pairwise(aligned)
            if b - a > 1 or mp[b] - mp[a] > 1]


def _widen_values(ref: Sequence[tuple[str, bool]], varies: np.ndarray, wording: frozenset[str]) -> None:
    """Grow each varying span (in place) over its neighbours that belong to no wording: not a stop word, not
    punctuation, not a lemma of the request's own words ("Y3" after "DES", "E(B-V)" after "dust extinction"); a
    number or a file name stays a parameter of its own."""
    def part_of_value(token: str) -> bool:
        return (bool(re.search(r"\w", token)) and token.lower() not in STOP_WORDS and token.lower() not in _STOP
                and lemma(token) not in wording and infer_kind([token]) not in ("integer", "number", "file_path"))

    changed = True
    while changed:
        changed = False
        for i, (token, _) in enumerate(ref):
            near = (i > 0 and varies[i - 1]) or (i + 1 < len(ref) and varies[i + 1])
            if not varies[i] and near and part_of_value(token):
                varies[i] = changed = True


def _signature(word_sets: Sequence[frozenset[str]], share: float = 0.8) -> frozenset[str]:
    """The content-word lemmas of one wording: those in at least ``share`` of its runs' descriptions."""
    counts = Counter(w for ws in word_sets for w in ws)
    return frozenset(w for w, c in counts.items() if c >= share * len(word_sets))


def own_wordings(descriptions: Mapping[str, str], run_ids: list[str], max_distance: float = 0.6,
                 floor: float = 0.3) -> list[list[str]]:
    """``run_ids`` (one wording family) split until each part opens with its own words: a family whose template
    starts with a parameter glues paraphrases that share a value ("Suggest N projects about T", "What are N
    questions in T" asked about one T), so it is clustered again with a tighter cut (down to ``floor``)."""
    texts = {r: descriptions[r] for r in run_ids}
    if len(run_ids) < 2 or max_distance < floor or not extract_task_template(texts).template.startswith("{"):
        return [run_ids]
    parts = wordings(texts, max_distance)
    return [own for part in parts for own in own_wordings(descriptions, part, max_distance - 0.1, floor)]


def wordings(descriptions: Mapping[str, str], max_distance: float = 0.7) -> list[list[str]]:
    """Run ids per wording of the request (``task_families`` over these descriptions, cut at ``max_distance``),
    most common first."""
    by_family: dict[str, list[str]] = defaultdict(list)
    for rid, fid in task_families(descriptions, max_distance=max_distance).labels.items():
        by_family[fid].append(rid)
    return sorted((sorted(r) for r in by_family.values()), key=lambda rs: (-len(rs), rs[0]))


def request_template(descriptions: Mapping[str, str]) -> TaskTemplate:
    """The task template in the words of the most common wording that opens with its own words; runs asked in
    other words (paraphrases) get their values from their own wording's template, each slot matched to the main slot
    of the same name, else of the same kind, else of the same JSON type, in order. A phrase any member run of any
    wording gives as a short value between common words (``TaskTemplate.value_keys``) is then a parameter in every
    wording's template, never one run's literal (a value most runs of one wording share included)."""
    groups = [own for g in wordings(descriptions) for own in own_wordings(descriptions, g)] or [[]]
    pool = frozenset().union(*(extract_task_template({r: descriptions[r] for r in g}).value_keys for g in groups))
    found = [extract_task_template({r: descriptions[r] for r in g}, values=pool,
                                   wording=_signature([frozenset(content_words(descriptions[r])) for r in g]))
             for g in groups]
    order = sorted(range(len(groups)), key=lambda i: (found[i].template.startswith("{"), -len(groups[i]),
                                                      groups[i][:1]))
    task = found[order[0]]
    values = dict(task.values)
    for i in order[1:]:
        own = found[i]
        unused = list(task.slots)
        mapping: dict[str, str] = {}
        for slot in own.slots:
            match = next((m for m in unused if m.name == slot.name), None) or next(
                (m for m in unused if m.kind == slot.kind), None) or next(
                (m for m in unused if m.json_type() == slot.json_type()), None)
            if match is not None:
                mapping[slot.name] = match.name
                unused.remove(match)
        for rid in groups[i]:
            values[rid] = {mapping[k]: v for k, v in own.values.get(rid, {}).items() if k in mapping}
    return TaskTemplate(task.template, task.slots, values, task.reference_run, wording_runs=len(groups[order[0]]))


def _value_span(text: str, value: str, taken: Sequence[tuple[int, int]]) -> tuple[int, int] | None:
    """Where ``value`` stands in ``text`` as a whole value (not inside a longer word or number), clear of ``taken``."""
    for m in re.finditer(re.escape(value), text):
        s, e = m.span()
        inside_word = (value[:1].isalnum() and s > 0 and text[s - 1].isalnum()) or (
            value[-1:].isalnum() and e < len(text) and text[e].isalnum())
        if not inside_word and all(e <= a or s >= b for a, b in taken):
            return s, e
    return None


def run_template(text: str, values: Mapping[str, str]) -> str | None:
    """A run's task text with each of its parameter values cut out as ``{slot}`` ("Propose 5 ideas in T" with
    {n: 5, topic: T} -> "Propose {n} ideas in {topic}"): the wording this run was asked in, so that a run asked in
    the same words gets its values from it. None when a value is not found in the text, or there is none."""
    text = text.strip()
    spans: list[tuple[int, int]] = []
    names: dict[tuple[int, int], str] = {}
    for name, value in sorted(values.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        if not value:
            continue
        span = _value_span(text, value, spans)
        if span is None:
            return None
        spans.append(span)
        names[span] = name
    if not spans:
        return None
    out, last = [], 0
    for s, e in sorted(spans):
        out += [text[last:s], "{" + names[(s, e)] + "}"]
        last = e
    return "".join(out) + text[last:]


def wording_templates(tasks: Mapping[str, str], values: Mapping[str, Mapping[str, str]],
                      slot_names: Collection[str]) -> list[str]:
    """The distinct :func:`run_template` of the runs whose values are known (slot inference's sample), restricted
    to the task template's slots, most common first: one per wording (and per literal a paraphrase keeps)."""
    wanted = set(slot_names)
    found = Counter(t for rid, text in tasks.items()
                    if (t := run_template(text, {k: v for k, v in values.get(rid, {}).items() if k in wanted})))
    return [t for t, _ in sorted(found.items(), key=lambda kv: (-kv[1], kv[0]))]


def shared_parameters(donor: Mapping[str, Mapping[str, Any]], values: Sequence[Mapping[str, str]]
                      ) -> dict[str, dict[str, Any]]:
    """The parameters of a request another skill parameterised (``donor``: its parameters, names, types, enums and
    descriptions kept; an enum also takes this skill's own values), with examples, default and requiredness from
    this skill's member ``values``."""
    out = {}
    for name, param in donor.items():
        kind = {"integer": "integer", "number": "number"}.get(str(param.get("type")), "string")
        present = [v[name] for v in values if v.get(name)]
        ranked = [v for v, _ in sorted(Counter(present).items(), key=lambda kv: (-kv[1], kv[0]))]
        examples = [_convert(kind, v) for v in ranked
                    if kind == "string" or (_INT_RX if kind == "integer" else _NUM_RX).match(v)]
        out[name] = {**param, "examples": examples[:5], "default": examples[0] if examples else None,
                     "required": bool(values) and len(present) == len(values)}
        if "enum" in param:  # the donor's values, and this skill's own: a member's value is always allowed
            out[name]["enum"] = [*param["enum"], *(e for e in examples if e not in param["enum"])]
    return out


def tool_argument_slots(
    pattern: Pattern, token_events_by_run: Mapping[str, Sequence[tuple[str, Mapping[str, Any]]]],
    *, task_values: Mapping[str, Mapping[str, str]] | None = None,
) -> tuple[list[Slot], dict[str, dict[str, str]]]:
    """Slots from scalar tool arguments (``inputs.arguments``) that vary across the member runs.

    For each tool_call step, the first call of that tool per run is used; arguments whose value
    equals a task-template slot value in most runs are skipped (already a parameter).
    """
    tools = [(s.token, s.tool) for s in pattern.steps if s.event_type == "tool_call" and s.tool]
    run_ids = sorted(token_events_by_run)
    slots: list[Slot] = []
    values: dict[str, dict[str, str]] = defaultdict(dict)
    seen_tools = set()
    for token, tool in tools:
        if token in seen_tools:
            continue
        seen_tools.add(token)
        args_by_run: dict[str, Mapping[str, Any]] = {}
        for rid in run_ids:
            for t, ev in token_events_by_run[rid]:
                if t == token:
                    inputs = ev.get("inputs") if isinstance(ev.get("inputs"), Mapping) else {}
                    args = inputs.get("arguments", inputs)
                    if isinstance(args, Mapping):
                        args_by_run[rid] = args
                    break
        keys = sorted({k for a in args_by_run.values() for k, v in a.items()
                       if isinstance(v, (str, int, float)) and not isinstance(v, bool)})
        for key in keys:
            vals = {rid: str(a[key]) for rid, a in args_by_run.items() if key in a}
            if len(set(vals.values())) <= 1:
                continue
            if task_values:
                same = sum(1 for rid, v in vals.items() if v in task_values.get(rid, {}).values())
                if same >= 0.8 * len(vals):
                    continue
            name = _snake(f"{tool}_{key}")
            slot = _make_slot(name, [vals.get(r, "") for r in run_ids], len(run_ids), "tool_argument",
                              f"{key.replace('_', ' ')} passed to the {tool.replace('_', ' ')} tool")
            slots.append(slot)
            for rid, v in vals.items():
                values[rid][name] = v
    return slots, dict(values)


def expected_outputs(files: Sequence[Mapping[str, Any]], run_ids: Sequence[str], min_share: float = 0.0
                     ) -> list[dict[str, Any]]:
    """File types produced by the runs: share of runs producing each type, example paths."""
    runs = set(run_ids)
    by_type: dict[str, set[str]] = defaultdict(set)
    examples: dict[str, Counter[str]] = defaultdict(Counter)
    for f in files:
        rid = str(f.get("run_id"))
        if rid not in runs:
            continue
        ftype = str(f.get("file_type") or "file")
        by_type[ftype].add(rid)
        path = str(f.get("file_path") or "")
        examples[ftype][re.sub(r"^.*[/\\]", "", path) if path.startswith("/") else path] += 1
    n = max(1, len(runs))
    out = [{"file_type": t, "share": round(len(r) / n, 4), "runs": len(r),
            "examples": [p for p, _ in sorted(examples[t].items(), key=lambda kv: (-kv[1], kv[0]))[:3]]}
           for t, r in by_type.items() if len(r) / n >= min_share]
    out.sort(key=lambda d: (-d["share"], d["file_type"]))
    return out


def template_statistics(
    pattern: Pattern,
    runs: Sequence[Mapping[str, Any]],
    events_by_run: Mapping[str, Sequence[Mapping[str, Any]]],
    full_sequences: Mapping[str, Sequence[str]],
) -> dict[str, Any]:
    """Support, success rate + Wilson 95% CI, repeatability, duration / cost percentiles,
    retry distribution and failure hot-spots for one pattern's member runs.

    ``runs`` must be in the same order as the pattern's members; ``full_sequences`` are the
    uncanonicalised token sequences (with outcome markers and errors) per run id.
    """
    outs = [outcome(r) for r in runs]
    succ, fail = outs.count("success"), outs.count("failure")
    lo, hi = wilson_interval(succ, succ + fail)
    durations = [run_duration_s(r) for r in runs]
    costs = [run_cost_usd(r, events_by_run.get(str(r.get("run_id")), ())) for r in runs]
    retries: Counter[int] = Counter()
    if pattern.blocks:
        main = max(range(len(pattern.blocks)), key=lambda b: sum(pattern.blocks[b].counts.values()))
        for rc in pattern.repeat_counts:
            retries[rc.get(main, 1) - 1] += 1
    failed = [full_sequences.get(str(r.get("run_id")), []) for r, o in zip(runs, outs) if o == "failure"]
    good = [full_sequences.get(str(r.get("run_id")), []) for r, o in zip(runs, outs) if o == "success"]
    stops = Counter(last_step_before_failure(s) for s in failed)
    stop_steps = Counter()
    for seq in failed:
        canon = canonical_sequence(seq)
        last = None
        for st in pattern.steps:  # last pattern step the failed run reached (in order)
            if st.token in canon:
                last = st.index
        stop_steps[last] += 1
    return {
        "support": len(runs),
        "successes": succ,
        "failures": fail,
        "unfinished": outs.count("unfinished"),
        "success_rate": round(succ / (succ + fail), 4) if succ + fail else None,
        "success_rate_ci95": [round(lo, 4), round(hi, 4)],
        "repeatability": {"mean_similarity": round(pattern.mean_similarity, 4),
                          "exact_share": round(pattern.exact_share, 4)},
        "duration_s": percentiles(durations),
        "cost_usd": percentiles(costs),
        "retries": {str(k): v for k, v in sorted(retries.items())},
        "failure_hotspots": failure_hotspots(failed, good),
        "failure_last_tokens": [{"token": t, "runs": c} for t, c in stops.most_common(5) if t],
        "failure_stop_steps": [{"step": s, "runs": c} for s, c in stop_steps.most_common(5) if s is not None],
    }


def build_skill_candidate(
    pattern: Pattern,
    runs: Sequence[Mapping[str, Any]],
    events_by_run: Mapping[str, Sequence[Mapping[str, Any]]],
    files: Sequence[Mapping[str, Any]] = (),
    *,
    granularity: str = "standard",
    output_share: float = 0.5,
) -> dict[str, Any]:
    """The candidate skill dict a library publishes, from one pattern and its member runs.

    ``runs`` are the member runs (same order as the pattern's members); ``events_by_run`` maps
    run_id -> raw events; ``files`` are file rows (run_id, file_path, file_type, ...).
    """
    run_ids = [str(r.get("run_id")) for r in runs]
    tev = {rid: token_events(events_by_run.get(rid, ()), granularity) for rid in run_ids}
    full = {rid: [t for t, _ in tev[rid]] for rid in run_ids}
    task = request_template({str(r.get("run_id")): str(r.get("task_description") or "") for r in runs})
    arg_slots, arg_values = tool_argument_slots(pattern, tev, task_values=task.values)
    outputs = expected_outputs(files, run_ids)
    expected = [o for o in outputs if o["share"] >= output_share]
    stats = template_statistics(pattern, runs, events_by_run, full)

    modes = Counter(str(r.get("mode") or "unknown") for r in runs)
    mode = min(modes.items(), key=lambda kv: (-kv[1], kv[0]))[0]
    agents = Counter(s.agent for s in pattern.steps if not s.optional)
    generic = {"control", "control_starter", "terminator", "unknown", "system", "_group_tool_executor",
               "plan_setter", "admin"}
    main_agents = [a for a, _ in sorted(agents.items(), key=lambda kv: (-kv[1], kv[0]))
                   if a not in generic and not a.endswith("_response_formatter") and not a.endswith("_nest")]
    tools = sorted({s.tool for s in pattern.steps if s.tool and not s.optional})
    # the request's words make the title when some runs share them; one run's request is that run's literal
    request_title = skill_title(task.template, {sl.name: sl.kind for sl in task.slots}) if task.wording_runs > 1 else ""
    title = request_title or behaviour_title(
        [step_action(s.event_type, s.agent, s.tool) for s in pattern.steps if not s.optional and s.agent in main_agents],
        [o["file_type"] for o in expected])
    name = skill_name(mode, title, main_agents[0] if main_agents else f"skill_{pattern.cluster_id}")
    all_slots = task.slots + arg_slots
    steps = []
    for st in pattern.steps:
        blk = pattern.blocks[st.block].as_dict() if st.block is not None else None
        step_outputs = []
        if st.event_type == "code_exec":
            step_outputs = [o["file_type"] for o in expected]
        steps.append({"agent": st.agent, "action": step_action(st.event_type, st.agent, st.tool), "tool": st.tool,
                      "token": st.token, "event_type": st.event_type,
                      "optional": st.optional, "repeat": blk, "expected_outputs": step_outputs,
                      "frequency": st.frequency})
    return {
        "name": name,
        "title": title,
        "description": (f"Mined from {len(runs)} {mode} runs: {describe_pattern(pattern)}"),
        "category": mode,
        "tags": sorted(set(main_agents[:3]) | set(tools[:5]) | {o["file_type"] for o in expected} | {mode}),
        "task_template": task.template,
        "steps": steps,
        "parameters": {s.name: s.as_parameter() for s in all_slots},
        "expected_outputs": expected,
        "statistics": stats,
        "provenance": {"source_runs": sorted(run_ids), "cluster_id": pattern.cluster_id,
                       "reference_run": task.reference_run},
        "slot_values": {rid: {**task.values.get(rid, {}), **arg_values.get(rid, {})} for rid in sorted(run_ids)},
    }
