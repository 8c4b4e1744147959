"""Scoring mined results against ground truth (used by tests and benchmarks, never by the miner)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rapidfuzz.distance import Indel
from sklearn.metrics import (
    adjusted_mutual_info_score,
    adjusted_rand_score,
    homogeneity_completeness_v_measure,
    normalized_mutual_info_score,
)

from .clustering import encode


def clustering_scores(true_labels: Sequence[Any], pred_labels: Sequence[Any]) -> dict[str, float]:
    t = [str(x) for x in true_labels]
    p = [str(x) for x in pred_labels]
    h, c, v = homogeneity_completeness_v_measure(t, p)
    return {"ari": float(adjusted_rand_score(t, p)), "ami": float(adjusted_mutual_info_score(t, p)),
            "nmi": float(normalized_mutual_info_score(t, p)), "homogeneity": float(h),
            "completeness": float(c), "v_measure": float(v)}


def adjusted_rand(true_labels: Sequence[Any], pred_labels: Sequence[Any]) -> float:
    return float(adjusted_rand_score([str(x) for x in true_labels], [str(x) for x in pred_labels]))


def _prf(tp: float, n_pred: float, n_true: float) -> dict[str, float]:
    p = tp / n_pred if n_pred else (1.0 if not n_true else 0.0)
    r = tp / n_true if n_true else (1.0 if not n_pred else 0.0)
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f}


def step_precision_recall(predicted: Sequence[str], truth: Sequence[str]) -> dict[str, float]:
    """Steps matched in order (longest common subsequence) over predicted / true steps."""
    (a, b), _ = encode([list(predicted), list(truth)])
    lcs = (len(a) + len(b) - Indel.distance(a, b)) // 2
    return _prf(lcs, len(predicted), len(truth))


def _norm(v: Any) -> str:
    s = str(v).strip().strip("'\"").lower()
    try:
        f = float(s)
        return repr(int(f)) if f.is_integer() else repr(f)
    except ValueError:
        return s


def slot_scores(
    predicted: Mapping[str, Mapping[str, Any]], truth: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """Slot values per run vs true parameter values per run, matched by value (names differ).

    Returns value-level precision / recall / F1 (multiset per run, numbers compared numerically)
    and, per true parameter, the predicted slot agreeing with it most often and that agreement.
    """
    tp = n_pred = n_true = 0
    agree: dict[str, dict[str, int]] = {}
    for rid in sorted(set(predicted) | set(truth)):
        pv = {k: _norm(v) for k, v in (predicted.get(rid) or {}).items() if str(v) != ""}
        tv = {k: _norm(v) for k, v in (truth.get(rid) or {}).items() if str(v) != ""}
        n_pred += len(pv)
        n_true += len(tv)
        pool = list(pv.values())
        for tk, val in tv.items():
            if val in pool:
                pool.remove(val)
                tp += 1
            for pk, pval in pv.items():
                if pval == val:
                    agree.setdefault(tk, {}).setdefault(pk, 0)
                    agree[tk][pk] += 1
    runs = max(1, len(truth))
    mapping = {tk: max(d.items(), key=lambda kv: (kv[1], kv[0]))[0] for tk, d in agree.items()}
    return {**_prf(tp, n_pred, n_true), "mapping": mapping,
            "mapping_agreement": {tk: agree[tk][pk] / runs for tk, pk in mapping.items()}}


def interval_coverage(intervals: Sequence[Sequence[float]], true_rates: Sequence[float]) -> float:
    """Share of intervals [lo, hi] containing the corresponding true rate."""
    if not intervals:
        return 0.0
    hits = sum(1 for (lo, hi), r in zip(intervals, true_rates) if lo <= r <= hi)
    return hits / len(intervals)


def script_step_tokens(nodes: Sequence[Any]) -> list[str]:
    """The step tokens a scripted run should yield (a simulator ``RunScript.nodes``: ``approval`` and ``turns``
    of ``agent`` / ``executes`` / ``code``): plumbing turns are the calling agent's tool step, an agent's turn
    followed by its own code execution is that execution, repeated blocks collapsed. Duck-typed so the miner's
    package never imports the simulator."""
    from .clustering import collapse_repeats
    from .roles import is_plumbing

    tokens: list[str] = []
    for node in nodes:
        if getattr(node, "approval", None):
            tokens.append("approval_requested:admin")
        previous = None
        for turn in node.turns:
            if turn.executes is not None:
                caller = previous if is_plumbing(turn.agent) and previous else turn.agent
                if tokens and tokens[-1] == f"agent_call:{caller}":
                    tokens.pop()
                tokens.append(f"tool_call:{caller}:{turn.executes.name}")
            elif turn.code is not None:
                if tokens and tokens[-1] == f"agent_call:{turn.agent}":
                    tokens.pop()
                tokens.append(f"code_exec:{turn.agent}")
            elif not is_plumbing(turn.agent):
                tokens.append(f"agent_call:{turn.agent}")
            previous = turn.agent
    return collapse_repeats(tokens)[0]
