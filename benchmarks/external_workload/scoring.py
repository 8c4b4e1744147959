"""Scorers written apart from the miner's own quality code: agreement of groupings, step precision/recall, slot
F1, and the readability checks on published titles and parameter descriptions."""

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sklearn.metrics import adjusted_rand_score

# Words only a type system uses: a title or description containing one names a type, it does not document.
TYPE_WORDS = frozenset({"string", "strings", "str", "enum", "enums", "bool", "dict"})
# Words that are documentation inside a phrase ("number of ideas") but a type name when they are the whole text.
BARE_TYPE_WORDS = frozenset({"number", "value", "text", "list", "object", "any", "integer", "int", "float",
                             "boolean", "array", "parameter", "param", "slot"})
ARTICLES = frozenset({"a", "an", "the", "some"})


def ari(truth: Sequence[str], predicted: Sequence[str]) -> float:
    """Adjusted Rand index of two labelings of the same runs."""
    return float(adjusted_rand_score(list(truth), list(predicted)))


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence."""
    if not a or not b:
        return 0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def step_precision_recall(found: Sequence[str], truth: Sequence[str]) -> tuple[float, float]:
    """Order-aware step precision and recall: the longest common subsequence over each side's length."""
    common = lcs_length(found, truth)
    return (common / len(found) if found else 0.0, common / len(truth) if truth else 0.0)


def step_key(step: Mapping[str, Any]) -> str:
    """A published step in the truth's vocabulary: ``agent`` or ``agent.tool``."""
    return f"{step['agent']}.{step['tool']}" if step.get("tool") else str(step["agent"])


def required_steps(skill: Mapping[str, Any]) -> list[str]:
    """A published skill's required steps in order: optional steps left out, a repeat block (consecutive steps
    sharing one ``repeat``) written out its minimum number of times (at least once)."""
    out: list[str] = []
    block: list[str] = []
    repeat: Any = None
    for step in (s for s in skill["steps"] if not s.get("optional")):
        if block and step.get("repeat") != repeat:
            out += block * max(1, (repeat or {}).get("min", 1))
            block = []
        repeat = step.get("repeat")
        block.append(step_key(step))
    return out + block * max(1, (repeat or {}).get("min", 1))


def normalise_value(value: Any) -> str:
    """Slot values compared as text: trimmed, lower-case, numbers in one spelling."""
    text = str(value).strip().lower()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else repr(number)


def slot_scores(predicted: Mapping[str, Mapping[str, Any]], truth: Mapping[str, Mapping[str, Any]]
                ) -> dict[str, float]:
    """Micro precision/recall/F1 of per-run slot values against the true parameter values (names are free:
    the miner cannot know the truth's names, so values are matched as multisets per run)."""
    tp = n_pred = n_true = 0
    for run_id, gold in truth.items():
        want = Counter(normalise_value(v) for v in gold.values())
        got = Counter(normalise_value(v) for v in predicted.get(run_id, {}).values())
        tp += sum((want & got).values())
        n_pred += sum(got.values())
        n_true += sum(want.values())
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9_]+", text.lower())


def is_type_name(text: str) -> bool:
    """True when ``text`` names a type instead of saying what something is ("string", "A string", "an enum")."""
    words = _words(text)
    content = [w for w in words if w not in ARTICLES]
    if not content:
        return True
    if len(content) == 1 and content[0] in BARE_TYPE_WORDS | TYPE_WORDS:
        return True
    return any(w in TYPE_WORDS for w in words)


def _mentions(text: str, value: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(value)}(?![\w])", text, flags=re.IGNORECASE) is not None


def member_literal(text: str, member_params: Iterable[Mapping[str, Any]]) -> str | None:
    """A parameter value that varies across the skill's member runs and that ``text`` quotes on its own (one member's
    literal); ``None`` when there is none. Quoting two or more values of one parameter is an enumeration, not a
    literal, and a value every member shares is part of the request, not a parameter."""
    values: dict[str, set[str]] = {}
    for params in member_params:
        for name, value in params.items():
            values.setdefault(name, set()).add(str(value))
    for name, seen in sorted(values.items()):
        if len(seen) < 2:
            continue
        quoted = sorted(v for v in seen if len(v) >= 2 and _mentions(text, v))
        if len(quoted) == 1:
            return quoted[0]
    return None


def readability_flags(skill: Mapping[str, Any], member_params: Sequence[Mapping[str, Any]]) -> list[str]:
    """What reads badly in a published skill: its title or a parameter description that is a type name, or that
    quotes one member run's literal."""
    texts = [("title", skill.get("title") or "")] + [
        (f"parameter {name!r} description", (p.get("description") or name))
        for name, p in sorted(skill.get("parameters", {}).items())]
    flags = []
    for where, text in texts:
        if is_type_name(text):
            flags.append(f"{where} is a type name: {text!r}")
        literal = member_literal(text, member_params)
        if literal is not None:
            flags.append(f"{where} quotes a member run's literal {literal!r}: {text!r}")
    return flags
