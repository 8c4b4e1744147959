"""Planted agent-like token sequences for tests and benchmarks.

Templates are CMBAgent-shaped: an optional planning prefix, then 1-6 steps, each an agent cycle
(engineer/researcher/idea_maker/... with formatter, executor and code execution) plus step-
specific tool calls, then control/terminator. Per run: an executor cycle may be retried 1-4
times (failed attempts carry ``code_exec:executor:fail`` and an ``error`` token), an installer
detour may follow an executor, and token noise (delete / substitute / insert) is applied.
"""
from __future__ import annotations

import random

_CYCLES = {
    "engineer": ["agent_call:engineer", "agent_call:engineer_response_formatter", "agent_call:executor",
                 "code_exec:executor:ok", "agent_call:executor_response_formatter"],
    "researcher": ["agent_call:researcher", "agent_call:researcher_response_formatter",
                   "tool_call:researcher:save_markdown"],
    "idea_maker": ["agent_call:idea_maker", "agent_call:idea_maker_nest", "tool_call:idea_maker:record_ideas"],
    "idea_hater": ["agent_call:idea_hater", "agent_call:idea_hater_response_formatter"],
    "camb": ["agent_call:camb_context", "tool_call:camb_context:query_docs", "agent_call:engineer",
             "agent_call:engineer_response_formatter", "agent_call:executor", "code_exec:executor:ok",
             "agent_call:executor_response_formatter"],
}
_PLANNING = ["agent_call:plan_setter", "agent_call:planner", "agent_call:planner_response_formatter",
             "tool_call:planner:record_plan", "agent_call:plan_reviewer",
             "agent_call:reviewer_response_formatter", "tool_call:plan_reviewer:record_review"]
_TAIL = ["agent_call:control", "tool_call:control:record_status", "agent_call:terminator",
         "tool_call:terminator:terminate_session"]
_INSTALLER = ["agent_call:installer", "agent_call:executor_bash", "code_exec:executor_bash:ok"]
_TOOLS = [f"tool_call:control:{name}" for name in (
    "load_data", "fit_model", "plot_spectrum", "query_arxiv", "run_mcmc", "read_fits", "compute_cl",
    "download", "summarise", "make_table", "write_report", "train", "evaluate", "tune", "clean_data",
    "merge", "regress", "classify", "cluster", "forecast", "simulate", "render", "translate", "search",
    "extract", "validate", "deploy", "profile", "benchmark", "compress", "encrypt", "parse", "index",
    "rank", "sample", "smooth", "fft", "integrate", "interpolate", "optimise")]
_NOISE_VOCAB = sorted({t for c in _CYCLES.values() for t in c} | set(_PLANNING) | set(_TAIL) | set(_TOOLS)
                      | {"agent_call:unknown", "tool_call:control:post_execution_transfer"})


def _make_templates(n_templates: int, rng: random.Random) -> list[list[tuple[str, list[str]]]]:
    """Each template: list of (kind, tokens) blocks; kind 'exec' blocks can be retried."""
    templates = []
    seen = set()
    while len(templates) < n_templates:
        blocks: list[tuple[str, list[str]]] = []
        if rng.random() < 0.5:
            blocks.append(("plan", list(_PLANNING)))
        n_steps = rng.randint(1, 6)
        for s in range(n_steps):
            cycle = rng.choice(sorted(_CYCLES))
            opener = "agent_call:control" if s == 0 else "agent_call:control_starter"
            blocks.append(("plain", [opener] + rng.sample(_TOOLS, 2)))
            blocks.append(("exec" if "code_exec:executor:ok" in _CYCLES[cycle] else "plain", list(_CYCLES[cycle])))
        blocks.append(("plain", list(_TAIL)))
        key = tuple(t for _, b in blocks for t in b)
        if key in seen:
            continue
        seen.add(key)
        templates.append(blocks)
    return templates


def render_run(
    blocks: list[tuple[str, list[str]]],
    rng: random.Random,
    noise: float,
    retry_prob: float = 0.3,
    installer_prob: float = 0.15,
) -> tuple[list[str], int]:
    """One run of a template; returns (tokens, retries) where retries = extra attempts."""
    out: list[str] = []
    retries = 0
    for kind, blk in blocks:
        if kind == "exec":
            n_attempts = rng.randint(2, 4) if rng.random() < retry_prob else 1
            retries += n_attempts - 1
            for a in range(n_attempts):
                if a < n_attempts - 1:
                    out.extend("code_exec:executor:fail" if t == "code_exec:executor:ok" else t for t in blk)
                    out.append("error:executor")
                else:
                    out.extend(blk)
            if rng.random() < installer_prob:
                out.extend(_INSTALLER + ["agent_call:executor_response_formatter"])
        else:
            out.extend(blk)
    if noise > 0:
        noisy: list[str] = []
        for t in out:
            r = rng.random()
            if r < noise / 3:
                continue  # delete
            if r < 2 * noise / 3:
                noisy.append(rng.choice(_NOISE_VOCAB))  # substitute
                continue
            noisy.append(t)
            if r < noise:
                noisy.append(rng.choice(_NOISE_VOCAB))  # insert
        out = noisy
    return out, retries


def generate_synthetic_sequences(
    n: int, n_templates: int, noise: float = 0.1, seed: int = 0, *,
    retry_prob: float = 0.3, installer_prob: float = 0.15,
) -> tuple[list[list[str]], list[int]]:
    """``n`` token sequences from ``n_templates`` planted templates; returns (sequences, true labels).

    Template sizes are uneven (Zipf-like weights) to resemble real usage.
    """
    rng = random.Random(seed)
    templates = _make_templates(n_templates, rng)
    weights = [1.0 / (i + 1) ** 0.5 for i in range(n_templates)]
    labels = rng.choices(range(n_templates), weights=weights, k=n)
    seqs = [render_run(templates[t], rng, noise, retry_prob, installer_prob)[0] for t in labels]
    return seqs, labels
