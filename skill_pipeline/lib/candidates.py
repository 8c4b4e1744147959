"""From the miner's skill candidate to the library's candidate shape, and validation against its schema.

``skill_pipeline.mining.templates.build_skill_candidate`` returns a rich dict (per-step frequencies, Wilson
interval under ``success_rate_ci95``, repeat-count histograms, per-run slot values ...). The library schema is
strict (``additionalProperties: false``), so this module maps the miner's fields onto the published ones and
keeps the rest out of the document.
"""

from typing import Any

from skill_library.document import seal, validate_skill, with_defaults
from skill_library.identity import slugify
from skill_library.values import placeholders

PARAMETER_KEYS = ("type", "required", "description", "default", "examples", "enum")
PERCENTILE_KEYS = ("p50", "p90", "p95", "max")
PLACEHOLDER_ID = "00000000-0000-0000-0000-000000000000"
SOURCE_EXAMPLES = 3


def _percentiles(values: Any) -> dict[str, float]:
    if not isinstance(values, dict):
        return {}
    return {k: round(float(values[k]), 6) for k in PERCENTILE_KEYS if isinstance(values.get(k), (int, float))
            and values[k] >= 0}


def _step(step: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"agent": step["agent"] or "unknown", "action": step["action"] or step["agent"],
                           "tool": step.get("tool"), "optional": bool(step.get("optional"))}
    repeat = step.get("repeat")
    if repeat:
        out["repeat"] = {"min": int(repeat["min"]), "max": max(int(repeat["max"]), 1),
                         **({"until": repeat["until"]} if repeat.get("until") else {})}
    outputs = [o if isinstance(o, dict) else {"type": str(o)} for o in step.get("expected_outputs") or []]
    if outputs:
        out["expected_outputs"] = [{k: v for k, v in o.items() if k in ("type", "format", "description")}
                                   for o in outputs]
    return out


def _retries(histogram: dict[str, int]) -> dict[str, float]:
    total = sum(histogram.values())
    if not total:
        return {}
    mean = sum(int(k) * v for k, v in histogram.items()) / total
    return {"mean": round(mean, 4), "max": max(int(k) for k in histogram)}


def _statistics(stats: dict[str, Any]) -> dict[str, Any]:
    support = int(stats["support"])
    out: dict[str, Any] = {"support": support, "success_rate": float(stats.get("success_rate") or 0.0)}
    if stats.get("success_rate_ci95"):
        out["success_wilson"] = [float(x) for x in stats["success_rate_ci95"]]
    repeat = stats.get("repeatability")
    if isinstance(repeat, dict) and repeat.get("mean_similarity") is not None:
        out["repeatability"] = min(max(float(repeat["mean_similarity"]), 0.0), 1.0)
    for key in ("duration_s", "cost_usd"):
        if values := _percentiles(stats.get(key)):
            out[key] = values
    if retries := _retries(stats.get("retries") or {}):
        out["retries"] = retries
    if support:
        out["failure_hotspots"] = [{"step": int(s["step"]), "failure_rate": round(s["runs"] / support, 4)}
                                   for s in stats.get("failure_stop_steps") or []]
    return out


def _source_examples(mined: dict[str, Any]) -> list[dict[str, Any]]:
    """A few source runs' values of the task template's placeholders: their task text, for the skill's evals."""
    names = placeholders(mined.get("task_template") or "")
    runs = sorted((mined.get("slot_values") or {}).items())[:SOURCE_EXAMPLES]
    return [{"run_id": run_id, "values": {n: str(values[n]) for n in names if n in values}} for run_id, values in runs]


def to_library_candidate(mined: dict[str, Any]) -> dict[str, Any]:
    """The library-shaped candidate (see ``skill_library.document.CandidateSkill``) for one mined skill."""
    provenance = mined.get("provenance") or {}
    return {
        "name": mined["name"],
        "title": mined.get("title") or mined["name"],
        "description": mined.get("description") or "",
        "category": mined.get("category") or "general",
        "tags": sorted({str(t) for t in mined.get("tags") or []}),
        "task_template": mined.get("task_template") or "",
        "steps": [_step(s) for s in mined["steps"]],
        "parameters": {name: {k: v for k, v in p.items() if k in PARAMETER_KEYS and not (k == "enum" and not v)}
                       for name, p in (mined.get("parameters") or {}).items()},
        "statistics": _statistics(mined["statistics"]),
        "provenance": {"source_runs": list(provenance.get("source_runs") or []),
                       "cluster_id": provenance.get("group_id") or provenance.get("cluster_id"),
                       **({"group_id": provenance["group_id"]} if provenance.get("group_id") else {}),
                       "extraction_method": "automatic", "source_examples": _source_examples(mined)},
    }


def with_statistics(candidate: dict[str, Any], stats: dict[str, Any], source_runs: list[str]) -> dict[str, Any]:
    """A copy of a library candidate with statistics and source runs replaced (e.g. over every member run)."""
    return {**candidate, "statistics": _statistics(stats),
            "provenance": {**candidate["provenance"], "source_runs": list(source_runs)}}


def library_errors(candidate: dict[str, Any]) -> list[str]:
    """Schema errors of a candidate as the library would publish it ([] when it validates)."""
    doc = with_defaults(candidate)
    try:
        sealed = seal(doc, name=slugify(str(candidate.get("name") or "unnamed")), skill_id=PLACEHOLDER_ID, version="0.0.0")
    except (TypeError, ValueError) as exc:
        return [f"cannot be serialised: {exc}"]
    return validate_skill(sealed)
