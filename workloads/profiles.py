"""Per-agent LLM usage, cost and latency drawn from the reference system's observed distributions.

Medians come from ``shared/reference/cmbagent.md`` §11 (per-LLM-call prompt / completion tokens per agent, upstream
CMBAgent runs); each draw spreads around the median with a lognormal, as token counts and latencies do in practice.
Cost is priced per model; latency follows the completion length at the model's generation speed.
"""

import math
import random
from dataclasses import dataclass

GPT41 = "gpt-4.1-2025-04-14"
O3_MINI = "o3-mini-2025-01-31"

# USD per million (prompt, completion) tokens.
PRICES: dict[str, tuple[float, float]] = {GPT41: (2.0, 8.0), O3_MINI: (1.1, 4.4)}
# Completion tokens generated per second, and the fixed time to first token (ms).
SPEED: dict[str, tuple[float, float]] = {GPT41: (90.0, 700.0), O3_MINI: (150.0, 1500.0)}


@dataclass(frozen=True)
class AgentProfile:
    """Median prompt and completion tokens of one LLM call of an agent, and the model it runs on."""

    model: str
    prompt_tokens: int
    completion_tokens: int


# Observed medians where the reference has them; formatters and reviewers run on o3-mini (§10).
PROFILES: dict[str, AgentProfile] = {
    "control": AgentProfile(GPT41, 7300, 119),
    "control_starter": AgentProfile(GPT41, 6800, 110),
    "executor_response_formatter": AgentProfile(O3_MINI, 13000, 45),
    "engineer": AgentProfile(GPT41, 8900, 2700),
    "engineer_response_formatter": AgentProfile(O3_MINI, 8500, 3100),
    "terminator": AgentProfile(GPT41, 1200, 2),
    "planner": AgentProfile(GPT41, 1300, 334),
    "planner_response_formatter": AgentProfile(O3_MINI, 1600, 380),
    "plan_setter": AgentProfile(GPT41, 1100, 60),
    "plan_recorder": AgentProfile(GPT41, 1900, 350),
    "plan_reviewer": AgentProfile(O3_MINI, 1700, 420),
    "reviewer_response_formatter": AgentProfile(O3_MINI, 2100, 400),
    "review_recorder": AgentProfile(GPT41, 2300, 380),
    "researcher": AgentProfile(GPT41, 1100, 1000),
    "researcher_response_formatter": AgentProfile(O3_MINI, 2200, 1100),
    "installer": AgentProfile(GPT41, 24000, 16),
    "idea_maker": AgentProfile(GPT41, 2600, 900),
    "idea_maker_nest": AgentProfile(O3_MINI, 3200, 850),
    "idea_hater": AgentProfile(GPT41, 3400, 800),
    "idea_hater_response_formatter": AgentProfile(O3_MINI, 3900, 760),
    "idea_saver": AgentProfile(GPT41, 4200, 600),
}

TOKEN_SIGMA = 0.35
LATENCY_SIGMA = 0.25
CODE_EXEC_MEDIAN_MS = 1800.0
CODE_EXEC_SIGMA = 0.6
TOOL_MEDIAN_MS = 40.0


@dataclass(frozen=True)
class LlmUsage:
    """One scripted LLM call: model, tokens, USD cost and simulated latency."""

    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_ms: int

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


def lognormal(rng: random.Random, median: float, sigma: float) -> float:
    """A lognormal draw with the given median."""
    return median * math.exp(rng.gauss(0.0, sigma))


def draw_usage(rng: random.Random, agent: str) -> LlmUsage:
    """Tokens, cost and latency of one LLM call by ``agent`` (unknown agents fail loudly)."""
    try:
        profile = PROFILES[agent]
    except KeyError:
        raise ValueError(f"no LLM usage profile for agent {agent!r}") from None
    prompt = max(1, round(lognormal(rng, profile.prompt_tokens, TOKEN_SIGMA)))
    completion = max(1, round(lognormal(rng, profile.completion_tokens, TOKEN_SIGMA)))
    price_in, price_out = PRICES[profile.model]
    cost = round((prompt * price_in + completion * price_out) / 1_000_000, 6)
    speed, first_token_ms = SPEED[profile.model]
    latency = round(lognormal(rng, first_token_ms + 1000.0 * completion / speed, LATENCY_SIGMA))
    return LlmUsage(profile.model, prompt, completion, cost, latency)


def draw_code_ms(rng: random.Random) -> int:
    """Duration of one code execution (ms)."""
    return max(50, round(lognormal(rng, CODE_EXEC_MEDIAN_MS, CODE_EXEC_SIGMA)))


def draw_tool_ms(rng: random.Random) -> int:
    """Duration of one tool function call (ms)."""
    return max(1, round(lognormal(rng, TOOL_MEDIAN_MS, 0.5)))
