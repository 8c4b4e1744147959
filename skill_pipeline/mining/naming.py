"""Human names for mined skills, from the task template's constant words.

``"Plot {function} over [{x_min}, {x_max}] and save the figure as {file_name}"`` gives the title
``"Plot a function over a range"`` and, in one_shot mode, the name ``one_shot_plot_function``: the title is the
template's main clause with each slot replaced by what it stands for; the name is the mode, the title's verb and
the last word before its first preposition (the object of the verb).
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from lemminflect import getAllLemmas

_SLOT = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_RANGE = re.compile(r"[\[(]\s*\{[^}]+\}\s*,\s*\{[^}]+\}\s*[\])]")
_ARTICLES = frozenset({"a", "an", "the"})
_BOOKKEEPING = ("record ", "format ")
_ASSIGNED = re.compile(r"^([A-Za-z_]\w*)=\{")
_PREPOSITIONS = frozenset({"over", "to", "of", "on", "in", "about", "for", "from", "with", "into", "as", "at",
                           "by", "under", "between", "using"})
_COUNT_KINDS = frozenset({"integer", "number"})


def _article(words: str) -> str:
    return ("an " if words[:1].lower() in "aeiou" else "a ") + words


def _slot_words(name: str) -> str:
    """What a slot stands for, in words: ``n_papers`` -> "papers", ``subject_2`` -> "subject"."""
    words = [w for w in name.split("_") if w and w not in ("n", "num", "name") and not w.isdigit()]
    return " ".join(words) or name


def skill_title(template: str, slot_kinds: Mapping[str, str] | None = None, max_chars: int = 80) -> str:
    """The template's main clause (up to ' and ') in words: slots become 'a <what>', '[{a}, {b}]' 'a range',
    counts before a noun disappear, and a slot right after its own name ('column {column}') reads 'a column'.
    Empty when the request has no words of its own to show (it starts with a parameter, or has no constant
    word): the title then comes from the behaviour (:func:`behaviour_title`)."""
    kinds = slot_kinds or {}
    constant = _SLOT.sub(" ", template)
    if template.strip().startswith("{") or not re.search(r"[A-Za-z]{2,}", constant):
        return ""
    parts = re.split(r"\s+and\s+", template.strip())
    clause = parts[0]
    for more in parts[1:]:  # "Devise and execute a plan ...": a clause of one or two words is not yet the request
        if len(clause.split()) > 2:
            break
        clause += " and " + more
    clause = _RANGE.sub("a range", clause)
    words = clause.split()
    out: list[str] = []
    for i, word in enumerate(words):
        slot = _SLOT.search(word)
        if not slot:
            out.append(word)
            continue
        name = slot.group(1)
        what = _slot_words(name)
        if slot.start() or slot.end() < len(word.rstrip(".,;:?!")):  # a value inside a word
            lhs = _ASSIGNED.match(word)  # "y={expression}" -> "y = an expression"; "k={k}" -> "a given k"
            if lhs and lhs.group(1) == what:
                out.append(("another " if re.search(r"_\d+$", name) else "a given ") + what)
            else:
                out.append((lhs.group(1) + " = " if lhs else "") + _article(what))
            continue
        second = bool(re.search(r"_\d+$", name))  # "{subject} in {subject_2}" -> "a subject in another subject"
        prev = out[-1].lower() if out else ""
        nxt = words[i + 1].lower().strip(".,;:") if i + 1 < len(words) else ""
        if kinds.get(name) in _COUNT_KINDS or nxt == what.split()[-1]:
            continue  # "{n_papers} recent papers" -> "recent papers"; "a {model} model" -> "a model"
        if prev == what.split()[-1]:  # "column {column}" -> "a column"
            out[-1] = _article(prev)
        elif prev in _ARTICLES:
            out.append(("other " if second else "") + what)  # "the {statistic}" -> "the statistic"
        else:
            out.append("another " + what if second else _article(what))
    title = re.sub(r"\s+", " ", " ".join(out)).strip(" ,.;:")
    title = re.sub(r"\b(a|an|the) (a|an|the)\b", r"\1", title)
    title = instruction(title)
    return _cut_words(title[:1].upper() + title[1:], max_chars) if title else ""


def is_base_verb(word: str) -> bool:
    """True for a verb in its base form ("plot", "generate"), the word an instruction opens with."""
    word = word.lower()
    return word in getAllLemmas(word, upos="VERB").get("VERB", ())


_QUESTION = re.compile(r"^(?:what|which)\s+(?:is|are)\s+(?P<rest>.+?)\??$", re.IGNORECASE)
_HOW = re.compile(r"^how\s+(?:do|can|should|would)\s+(?:i|we|you)\s+(?P<rest>.+?)\??$", re.IGNORECASE)
_POLITE = re.compile(r"^(?:please|(?:can|could|would|will) you|i (?:want|need|would like) you to|kindly)\s+",
                     re.IGNORECASE)


def instruction(clause: str) -> str:
    """The clause as an instruction (it opens with a verb in its base form), or "" when it cannot be read as one: a
    question about something asks to explain it ("What is a subject" -> "Explain a subject"; "What are promising
    questions ..." -> "List promising questions ..."), "how do I <do>" asks to <do>, a polite opening is dropped
    ("Please plot ..."), and a leading condition gives way to the instruction after its comma ("Once I approve the
    plan, map ..." -> "Map ..."). A statement ("My chain is at ...", "Data is ticket data") is no instruction: the
    title then comes from the behaviour."""
    clause = _POLITE.sub("", clause.strip())
    question = _QUESTION.match(clause)
    if question:
        rest = question.group("rest").strip()
        plural = clause.split()[1].lower() == "are"
        return ("List " if plural else "Explain ") + rest
    how = _HOW.match(clause)
    if how:
        clause = how.group("rest")
    for part in [clause, *[p.strip() for p in clause.split(",")[1:]]]:
        words = part.split()
        if words and is_base_verb(words[0]):
            return part[:1].upper() + part[1:]
    return ""


def _cut_words(text: str, max_chars: int) -> str:
    """``text`` cut to ``max_chars`` at a word boundary."""
    return text if len(text) <= max_chars else text[:max_chars + 1].rsplit(" ", 1)[0].rstrip(" ,;:")


def behaviour_title(actions: Sequence[str], output_types: Sequence[str], max_chars: int = 80) -> str:
    """A title from what the skill does: its main agents' actions in order, bookkeeping (recording and formatting
    what another step produced) left out, and the files it writes (``["plan", "record plan", "write code", "execute
    code"], ["png"]`` -> "Plan, write code and execute code, writing png files"); as many actions as fit in
    ``max_chars``, so two skills that differ in a later step still read differently."""
    seen = [a for a in dict.fromkeys(actions) if a and not a.startswith(_BOOKKEEPING)] or ["run the workflow"]
    files = ", writing " + ", ".join(output_types[:3]) + " files" if output_types else ""

    def sentence(parts: Sequence[str]) -> str:
        words = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
        return words[:1].upper() + words[1:]

    for k in range(len(seen), 0, -1):
        if len(sentence(seen[:k]) + files) <= max_chars:
            return sentence(seen[:k]) + files
    return _cut_words(sentence(seen), max_chars)


def _snake(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", text.lower()).strip("_")


def skill_name(mode: str | None, title: str, fallback: str) -> str:
    """``<mode>_<verb>_<object>`` from the title (``one_shot_plot_function``); ``<mode>_<fallback>`` without
    a usable title."""
    words = re.findall(r"[A-Za-z][A-Za-z0-9]*", title)
    while words and words[0].lower() in _ARTICLES:
        words.pop(0)
    parts: list[str] = []
    if words:
        head = []
        for w in words[1:]:
            if w.lower() in _PREPOSITIONS:
                break
            head.append(w)
        obj = [w for w in head if w.lower() not in _ARTICLES][-1:]
        parts = [words[0], *obj]
    prefix = _snake(mode or "")
    body = _snake("_".join(parts)) or _snake(fallback)
    return "_".join(p for p in (prefix, body) if p) or "skill"
