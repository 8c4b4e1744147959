"""Small statistics shared by templates and outcome analysis."""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from .vocabulary import FAILURE_STATUSES, SUCCESS_STATUSES


def outcome(run: Mapping[str, Any]) -> str:
    """'success', 'failure' or 'unfinished' (executing, waiting_approval, paused, unknown)."""
    status = str(run.get("status") or "").strip().lower()
    if status in SUCCESS_STATUSES:
        return "success"
    if status in FAILURE_STATUSES:
        return "failure"
    return "unfinished"


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (0, 1) when n == 0. 8/10 -> (0.490, 0.943)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def percentiles(values: Iterable[float | None], qs: Sequence[int] = (50, 90)) -> dict[str, float | None]:
    vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return {f"p{q}": None for q in qs}
    arr = np.asarray(vals)
    return {f"p{q}": float(np.percentile(arr, q)) for q in qs}


def parse_time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def run_duration_s(run: Mapping[str, Any]) -> float | None:
    start, end = parse_time(run.get("started_at")), parse_time(run.get("completed_at"))
    if start is None or end is None:
        return None
    if (start.tzinfo is None) != (end.tzinfo is None):
        start, end = start.replace(tzinfo=None), end.replace(tzinfo=None)
    return max(0.0, (end - start).total_seconds())


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def run_cost_usd(run: Mapping[str, Any], events: Iterable[Mapping[str, Any]]) -> float | None:
    """Run cost: run meta ``cost_usd``/``total_cost_usd`` if present, else the sum of event
    ``meta.cost_usd`` over llm_call events, else over agent_call events, else over all events
    (never both llm_call and agent_call: capture may record the same cost on both)."""
    meta = run.get("meta") if isinstance(run.get("meta"), Mapping) else {}
    for key in ("cost_usd", "total_cost_usd", "total_cost"):
        v = _num(meta.get(key))
        if v is not None:
            return v
    by_type: dict[str, float] = {}
    any_cost = False
    for ev in events:
        m = ev.get("meta") if isinstance(ev.get("meta"), Mapping) else {}
        v = _num(m.get("cost_usd"))
        if v is None:
            continue
        any_cost = True
        t = str(ev.get("event_type"))
        by_type[t] = by_type.get(t, 0.0) + v
    if not any_cost:
        return None
    if "llm_call" in by_type:
        return by_type["llm_call"]
    if "agent_call" in by_type:
        return by_type["agent_call"]
    return sum(by_type.values())


def _presence(sequences: Sequence[Sequence[str]]) -> dict[str, int]:
    """token -> number of sequences containing it; each distinct sequence is scanned once (runs of a skill
    repeat a few sequences, so 100,000 runs cost a few hundred scans)."""
    counts: dict[str, int] = {}
    for seq, n in Counter(map(tuple, sequences)).items():
        for t in set(seq):
            counts[t] = counts.get(t, 0) + n
    return counts


def failure_hotspots(
    failed: Sequence[Sequence[str]], succeeded: Sequence[Sequence[str]], *, min_failed: int = 2, top: int = 10
) -> list[dict[str, Any]]:
    """Tokens over-represented in failed runs: presence share in failed vs successful runs,
    lift and a smoothed (+0.5) log-odds ratio; only tokens in >= ``min_failed`` failed runs and
    with a positive log-odds, best first."""
    F, S = len(failed), len(succeeded)
    if F == 0:
        return []
    f_cnt, s_cnt = _presence(failed), _presence(succeeded)
    out = []
    for t, f in f_cnt.items():
        if f < min(min_failed, F):
            continue
        s = s_cnt.get(t, 0)
        log_odds = math.log(((f + 0.5) / (F - f + 0.5)) / ((s + 0.5) / (S - s + 0.5)))
        if log_odds <= 0:
            continue
        lift = (f / F) / ((s + 0.5) / (S + 0.5))
        out.append({"token": t, "failed_runs": f, "failed_share": round(f / F, 4),
                    "success_share": round(s / S, 4) if S else 0.0, "lift": round(lift, 4),
                    "log_odds": round(log_odds, 4)})
    out.sort(key=lambda d: (-d["log_odds"], -d["failed_runs"], d["token"]))
    return out[:top]


def last_step_before_failure(tokens: Sequence[str]) -> str | None:
    """The last non-error token before the run's first ``error`` token (else the last token)."""
    prev = None
    for t in tokens:
        if t.startswith("error:"):
            return prev
        prev = t
    return prev
