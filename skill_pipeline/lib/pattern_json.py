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
    """The pattern as JSON. Per-member lists are made plain without ``dataclasses.asdict`` (which deep-copies
    every member's dict) or a ``default`` callback per numpy scalar: each cost ~0.1 s per 10,000 members."""
    data = {f.name: getattr(pattern, f.name) for f in dataclasses.fields(pattern)}
    data.update(steps=[dataclasses.asdict(s) for s in pattern.steps],
                blocks=[dataclasses.asdict(b) for b in pattern.blocks],
                similarities=[float(v) for v in pattern.similarities], fits=[bool(v) for v in pattern.fits])
    return json.dumps(data, sort_keys=True, default=_native)


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
