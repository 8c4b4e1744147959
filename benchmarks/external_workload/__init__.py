"""A CMBAgent-shaped workload written apart from the project's simulator, to examine the miner on runs it was not
written against (issue 11, item 5). See README.md."""

from .catalogue import BEHAVIOURS, BY_ID, Behaviour
from .generate import GenerationSummary, generate, read_truth

__all__ = ["BEHAVIOURS", "BY_ID", "Behaviour", "GenerationSummary", "generate", "read_truth"]
