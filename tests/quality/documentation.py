"""Does a published skill read like documentation? The checks a user would make reading ``skillmine skills show``,
written apart from the miner: they need no ground truth, only the skill, its member runs' task texts and the values
the pipeline read for each member, so they apply to the real records as much as to generated workloads."""

import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from lemminflect import getAllLemmas

from benchmarks.external_workload.scoring import is_type_name, member_literal

# Names that say where a value sits or what type it has, not what it is for.
PLACEHOLDER_NAMES = frozenset({"detail", "request", "value", "string", "enum", "text", "param", "parameter", "slot",
                               "arg", "argument", "thing", "item", "field"})
_STOP = frozenset({"a", "an", "the", "of", "to", "in", "on", "and", "or", "for", "with", "from", "by", "at", "as",
                   "is", "are", "it", "its", "then", "into", "over", "me", "my", "i", "you", "your", "this", "that"})


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z][a-z0-9_]*", text.lower())


def is_imperative(title: str) -> bool:
    """The title opens with a verb in its base form ("Plot ...", "Generate ...")."""
    first = (_words(title) or [""])[0]
    return first in getAllLemmas(first, upos="VERB").get("VERB", ())


def _mentions(text: str, value: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(value)}(?![\w])", text, flags=re.IGNORECASE) is not None


def _quoted_value(text: str, member_values: Sequence[Mapping[str, Any]], own: Collection[str] = ()) -> str | None:
    """A parameter value one member run was given that ``text`` repeats: a value the members do not all share (a
    single run's values count, it has no other run to share them with), unless all its words are the skill's
    ``own`` (the words of its steps, or the constant words of a request several runs asked)."""
    seen: dict[str, set[str]] = {}
    for values in member_values:
        for name, value in values.items():
            seen.setdefault(name, set()).add(str(value).strip())
    for name, found in sorted(seen.items()):
        if len(found) < 2 and len(member_values) > 1:
            continue
        for value in sorted(found):
            if (len(value) >= 2 and re.search(r"\w", value) and _mentions(text, value)
                    and not set(_words(value)) <= set(own)):
                return value
    return None


def _true_value(text: str, member_truth: Sequence[Mapping[str, Any]]) -> str | None:
    """A true parameter value of a member run (a word-like one: numbers coincide too easily) that ``text`` quotes,
    even one every member happens to share: two runs asking about the same column still asked about a column."""
    for truth in member_truth:
        for value in sorted(map(str, truth.values())):
            if len(value) >= 3 and re.search(r"[A-Za-z]{2}", value) and _mentions(text, value):
                return value
    return member_literal(text, member_truth)


def documentation_flags(skill: Mapping[str, Any], member_tasks: Sequence[str],
                        member_values: Sequence[Mapping[str, Any]],
                        member_truth: Sequence[Mapping[str, Any]] = (),
                        shared_requests: Collection[str] = ()) -> list[str]:
    """What reads badly in ``skill``: a title that is a type name, that is not an instruction, that shows an elided
    or unfilled value, that repeats a member run's value, or (for a skill of one run) that repeats that run's request
    instead of saying what it does; a parameter named for its position or type, whose description is a type name or
    repeats a member run's value. ``member_truth``: the true parameter values of the members, where known;
    ``shared_requests``: task templates other skills' runs ask too (a one-run skill asking one of them may take its
    title from that common request)."""
    title = str(skill.get("title") or "")
    steps = skill.get("steps", [])
    behaviour = {w for s in steps for w in _words(f"{s.get('action') or ''} {s.get('tool') or ''}")} | {
        w for s in steps for o in s.get("expected_outputs") or [] for w in _words(str(o.get("type") or ""))}
    template = str(skill.get("task_template") or "")
    asked = set(_words(re.sub(r"\{[^}]*\}", " ", template))) if len(member_tasks) > 1 else set()
    flags = []
    if is_type_name(title):
        flags.append(f"title is a type name: {title!r}")
    if not is_imperative(title):
        flags.append(f"title is not an instruction: {title!r}")
    if re.search(r"[…{}]", title):
        flags.append(f"title shows an elided or unfilled value: {title!r}")
    for where, text in [("title", title)] + [(f"parameter {n!r} description", str(p.get("description") or n))
                                             for n, p in sorted(skill.get("parameters", {}).items())]:
        if where != "title" and is_type_name(text):
            flags.append(f"{where} is a type name: {text!r}")
        quoted = _quoted_value(text, member_values, behaviour | asked if where == "title" else ())
        if quoted is not None:
            flags.append(f"{where} repeats a member run's value {quoted!r}: {text!r}")
        literal = _true_value(text, member_truth)
        if literal is not None and literal != quoted:
            flags.append(f"{where} quotes a member run's true parameter value {literal!r}: {text!r}")
    if len(member_tasks) == 1 and skill.get("task_template") not in shared_requests:
        request = {w for w in _words(member_tasks[0]) if len(w) > 2 and w not in _STOP}
        borrowed = sorted((set(_words(title)) & request) - behaviour)
        if borrowed:
            flags.append(f"title of a one-run skill repeats its request {borrowed}: {title!r}")
    for name in sorted(skill.get("parameters", {})):
        if re.sub(r"_\d+$", "", name) in PLACEHOLDER_NAMES:
            flags.append(f"parameter {name!r} is named for its place or type, not its role")
    return flags
