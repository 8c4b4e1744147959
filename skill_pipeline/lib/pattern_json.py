"""Round-trip of mined :class:`~skill_pipeline.mining.patterns.Pattern` objects through JSON (warehouse rows).

JSON object keys are strings, so the integer keys of repeat counts are restored on the way back.
"""

import dataclasses
import json
from typing import Any

from skill_pipeline.mining.patterns import Pattern, PatternStep, RepeatBlock


def _native(value: Any) -> Any:
    """numpy scalars (the miner's similarities and fits) as plain Python values."""
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    raise TypeError(f"cannot store {type(value).__name__} in a pattern")


def dumps(pattern: Pattern) -> str:
    return json.dumps(dataclasses.asdict(pattern), sort_keys=True, default=_native)


def _int_keys(mapping: dict[str, Any]) -> dict[int, Any]:
    return {int(k): v for k, v in mapping.items()}


def loads(text: str) -> Pattern:
    data = json.loads(text)
    data["steps"] = [PatternStep(**s) for s in data["steps"]]
    data["blocks"] = [RepeatBlock(**{**b, "counts": _int_keys(b["counts"])}) for b in data["blocks"]]
    data["repeat_counts"] = [_int_keys(rc) for rc in data["repeat_counts"]]
    return Pattern(**data)


def subset(pattern: Pattern, positions: list[int]) -> Pattern:
    """The same pattern restricted to some of its members (positions in member order)."""
    return dataclasses.replace(
        pattern, support=len(positions), similarities=[pattern.similarities[i] for i in positions],
        fits=[pattern.fits[i] for i in positions], repeat_counts=[pattern.repeat_counts[i] for i in positions],
        member_indices=[pattern.member_indices[i] for i in positions])
