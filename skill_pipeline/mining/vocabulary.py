"""The one vocabulary the miner uses for run statuses and plumbing agents.

Extraction (which runs to re-read), dirty-data counts, outcome statistics and tokenisation all read these sets, so
a status or an agent is classified the same way everywhere.
"""

# A run in one of these states may still change: it is counted as open (dirty-data counts).
OPEN_RUN_STATUSES: tuple[str, ...] = ("executing", "pending", "running", "paused", "waiting_approval", "draft",
                                      "planning")
SUCCESS_STATUSES: frozenset[str] = frozenset({"completed", "complete", "success", "succeeded", "done"})
FAILURE_STATUSES: frozenset[str] = frozenset({"failed", "failure", "error", "errored", "cancelled", "canceled",
                                              "aborted", "timeout", "timed_out", "killed"})
# AG2 chat machinery (lower case): never a step; tool and code executions are credited to the calling agent.
PLUMBING_AGENTS: frozenset[str] = frozenset({"chat_manager", "_group_tool_executor", "_user",
                                             "user_proxy_tool_executor"})
