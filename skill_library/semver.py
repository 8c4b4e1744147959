"""Semantic versions and the version ranges accepted by ``Library.get``.

Supported specs: ``latest``; an exact version ``1.2.0`` (also ``=1.2.0`` / ``==1.2.0``); caret
``^1`` / ``^1.2`` / ``^0.3`` (npm rules: the left-most non-zero part is fixed); tilde ``~1.2``
(patch-level changes) and ``~1`` (minor-level changes); comparator lists such as ``>=1.0,<2``
(operators ``>= > <= < = ==``, comma or space separated, all must hold). Partial versions are
padded with zeros.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from .errors import VersionSpecError

Version = tuple[int, int, int]
_PARTIAL = re.compile(r"^(\d+)(?:\.(\d+))?(?:\.(\d+))?$")
_COMPARATOR = re.compile(r"^(>=|<=|==|=|>|<)?\s*(\d+(?:\.\d+){0,2})$")
_OPS: dict[str, Callable[[Version, Version], bool]] = {
    ">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b, "=": lambda a, b: a == b, "==": lambda a, b: a == b,
}


def parse(text: str) -> Version:
    """``"1.2.3"`` -> ``(1, 2, 3)``; raises ``VersionSpecError`` for anything else."""
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", text.strip())
    if not match:
        raise VersionSpecError(f"not a semantic version: {text!r} (expected MAJOR.MINOR.PATCH)")
    return int(match[1]), int(match[2]), int(match[3])


def format_version(version: Version) -> str:
    return ".".join(map(str, version))


def bump(version: str, level: str) -> str:
    """The next version after ``version`` for a ``major``, ``minor`` or ``patch`` change."""
    major, minor, patch = parse(version)
    if level == "major":
        return format_version((major + 1, 0, 0))
    if level == "minor":
        return format_version((major, minor + 1, 0))
    if level == "patch":
        return format_version((major, minor, patch + 1))
    raise ValueError(f"unknown bump level {level!r}")


def _partial(text: str, spec: str) -> tuple[Version, int]:
    """Parse a possibly partial version; also return how many parts were given."""
    match = _PARTIAL.match(text)
    if not match:
        raise VersionSpecError(f"bad version range {spec!r}: {text!r} is not a version")
    parts = [int(p) for p in match.groups() if p is not None]
    return (*(parts + [0, 0])[:3],), len(parts)  # type: ignore[return-value]


def _caret(text: str, spec: str) -> Callable[[Version], bool]:
    low, given = _partial(text, spec)
    if low[0] > 0 or given == 1:
        high = (low[0] + 1, 0, 0)
    elif low[1] > 0 or given == 2:
        high = (0, low[1] + 1, 0)
    else:
        high = (0, 0, low[2] + 1)
    return lambda v: low <= v < high


def _tilde(text: str, spec: str) -> Callable[[Version], bool]:
    low, given = _partial(text, spec)
    high = (low[0] + 1, 0, 0) if given == 1 else (low[0], low[1] + 1, 0)
    return lambda v: low <= v < high


def matcher(spec: str) -> Callable[[Version], bool] | None:
    """A predicate for ``spec``, or ``None`` for ``latest`` (any version, highest wins)."""
    spec = spec.strip()
    if spec in ("", "latest", "*"):
        return None
    if spec[0] == "^":
        return _caret(spec[1:].strip(), spec)
    if spec[0] == "~":
        return _tilde(spec[1:].strip(), spec)
    tests = []
    for part in re.split(r"[,\s]+(?=[<>=\d])", spec):
        match = _COMPARATOR.match(part.strip())
        if not match:
            raise VersionSpecError(f"bad version range {spec!r}: cannot parse {part!r}")
        if not match[1] and match[2].count(".") < 2:
            tests.append(_tilde(match[2], spec))  # a bare partial version: "1.2" means any 1.2.x
            continue
        op, bound = match[1] or "=", _partial(match[2], spec)[0]
        tests.append(lambda v, op=op, bound=bound: _OPS[op](v, bound))
    return lambda v: all(test(v) for test in tests)


def best_match(versions: Iterable[str], spec: str) -> str | None:
    """The highest of ``versions`` satisfying ``spec``, or ``None``."""
    test = matcher(spec)
    chosen = [parse(v) for v in versions]
    chosen = [v for v in chosen if test is None or test(v)]
    return format_version(max(chosen)) if chosen else None
