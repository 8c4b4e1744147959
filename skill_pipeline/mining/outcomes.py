"""Success / failure analysis across runs: rates by mode and cluster, failure tokens."""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from .stats import failure_hotspots, last_step_before_failure, outcome, wilson_interval


def _rate(outs: Sequence[str]) -> dict[str, Any]:
    s, f = outs.count("success"), outs.count("failure")
    lo, hi = wilson_interval(s, s + f)
    return {"runs": len(outs), "successes": s, "failures": f, "unfinished": outs.count("unfinished"),
            "success_rate": round(s / (s + f), 4) if s + f else None, "ci95": [round(lo, 4), round(hi, 4)]}


def analyse_outcomes(
    runs: Sequence[Mapping[str, Any]],
    sequences: Mapping[str, Sequence[str]] | None = None,
    cluster_of: Mapping[str, str] | None = None,
    *,
    top: int = 10,
) -> dict[str, Any]:
    """Outcome summary. ``sequences``: run_id -> full tokens (with outcome markers / errors);
    ``cluster_of``: run_id -> cluster id. Runs neither completed nor failed count as unfinished
    and are left out of success rates."""
    outs = {str(r.get("run_id")): outcome(r) for r in runs}
    by_mode: dict[str, list[str]] = defaultdict(list)
    for r in runs:
        by_mode[str(r.get("mode") or "unknown")].append(outs[str(r.get("run_id"))])
    result: dict[str, Any] = {
        "overall": _rate(list(outs.values())),
        "by_status": dict(sorted(Counter(str(r.get("status")) for r in runs).items())),
        "by_mode": {m: _rate(o) for m, o in sorted(by_mode.items())},
    }
    if cluster_of is not None:
        by_cluster: dict[str, list[str]] = defaultdict(list)
        for rid, o in outs.items():
            if rid in cluster_of:
                by_cluster[cluster_of[rid]].append(o)
        result["by_cluster"] = {c: _rate(o) for c, o in sorted(by_cluster.items())}
    if sequences is not None:
        failed = [sequences.get(rid, []) for rid, o in sorted(outs.items()) if o == "failure"]
        good = [sequences.get(rid, []) for rid, o in sorted(outs.items()) if o == "success"]
        errs = Counter(t for s in failed for t in s if t.startswith("error:") or t.endswith(":fail"))
        last = Counter(last_step_before_failure(s) for s in failed)
        result["failure_tokens"] = [{"token": t, "count": c} for t, c in errs.most_common(top)]
        result["last_step_before_failure"] = [{"token": t, "runs": c} for t, c in last.most_common(top) if t]
        result["failure_hotspots"] = failure_hotspots(failed, good, top=top)
    return result
