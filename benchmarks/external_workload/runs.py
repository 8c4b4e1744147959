"""One run of the external workload: its script (turns with noise, retries and failure drawn from a seeded RNG) and
its rows (run, DAG nodes and edges, events, files, messages, cost records) as a capture store ``Batch``.

The events follow what CMBAgent-on-AG2 capture records (``reference/cmbagent.md`` section 11): per turn a
``handoff`` (speaker selection), an ``agent_call`` with its ``llm_call`` (tokens, cost, model) and a ``message``
broadcast of the reply; a tool is executed by AG2's ``_Group_Tool_Executor`` (``tool_call`` with the tool name), an
executor runs code (``code_exec`` with an exit code; a ``file_gen`` and a ``files`` row per file written, a failed
execution adds an ``error``); node status changes are ``state_transition`` events; HITL approvals are
``approval_requested``.
"""

import hashlib
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from capture.core.files import classify_file, file_id
from capture.core.vocabulary import message_addressing
from capture.store.capture_store import Batch

from .catalogue import PLUMBING_TOOL_AGENT, Behaviour, Node, Turn

# (model, median prompt tokens, median completion tokens) per agent; prices per million tokens (input, output).
LLM_PROFILE = {
    "engineer": ("gpt-4.1-2025-04-14", 8900, 2700), "researcher": ("gpt-4.1-2025-04-14", 1100, 1000),
    "control": ("gpt-4.1-2025-04-14", 7300, 119), "control_starter": ("gpt-4.1-2025-04-14", 6800, 110),
    "planner": ("gpt-4.1-2025-04-14", 1300, 334), "plan_reviewer": ("o3-mini-2025-01-31", 2100, 420),
    "terminator": ("gpt-4o-2024-11-20", 1200, 2), "installer": ("gpt-4.1-2025-04-14", 24000, 16),
    "idea_maker": ("gpt-4.1-2025-04-14", 3200, 900), "idea_hater": ("gpt-4.1-2025-04-14", 3600, 700),
}
DEFAULT_PROFILE = ("o3-mini-2025-01-31", 8500, 300)
PRICES = {"gpt-4.1-2025-04-14": (2.0, 8.0), "o3-mini-2025-01-31": (1.1, 4.4), "gpt-4o-2024-11-20": (2.5, 10.0)}
STRAYS = ((Turn("plot_judge"),), (Turn("session_summarizer"),),
          (Turn("installer"), Turn("executor_bash", code=True)))
FAILURE_SHARE = 0.15
STRAY_SHARE, MISSING_SHARE, REPEAT_SHARE = 0.10, 0.08, 0.08
MODE_SPELLINGS = {"one_shot": ("one_shot", "one-shot"), "planning_and_control": ("planning_and_control",
                                                                                 "planning-control"),
                  "idea_generation": ("idea_generation",), "human_in_the_loop": ("human_in_the_loop",)}
EPOCH = datetime(2026, 2, 2, 8, 0)


@dataclass
class Entry:
    """A turn as played: its node, whether its code execution fails, whether the run dies in it."""

    node: Node
    turn: Turn
    exec_fails: bool = False
    dies: str | None = None


@dataclass
class RunScript:
    """Everything drawn for one run: the truth (skill, request wording, parameters, outcome) and its turns."""

    run_id: str
    index: int
    seed: int
    behaviour: Behaviour
    paraphrase: int
    task: str
    params: dict[str, Any]
    entries: list[Entry]
    outcome: str
    failure: str | None
    retries: int
    noise: list[str] = field(default_factory=list)

    def truth(self) -> dict[str, Any]:
        """The ground-truth record of this run (never read by the miner)."""
        b = self.behaviour
        return {"run_id": self.run_id, "index": self.index, "seed": self.seed, "skill_id": b.skill_id,
                "mode": b.mode, "request_id": b.request.request_id, "paraphrase": self.paraphrase,
                "task": self.task, "params": self.params, "success_path": b.success_path,
                "outcome": self.outcome, "failure": self.failure, "retries": self.retries, "noise": self.noise}


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def draw_request(behaviour: Behaviour, rng: random.Random) -> tuple[int, str, dict[str, Any]]:
    """A paraphrase index, the task text and the true parameter values (slots sharing a pool take distinct
    values)."""
    request = behaviour.request
    params: dict[str, Any] = {}
    for name, pool in request.slots.items():
        taken = {v for k, v in params.items() if request.slots[k] is pool}
        params[name] = rng.choice([v for v in pool if v not in taken])
    which = rng.randrange(len(request.paraphrases))
    return which, request.paraphrases[which].format(**params, **request.fixed), params


def _played_turns(behaviour: Behaviour, failed_attempts: int) -> list[Entry]:
    entries: list[Entry] = []
    for node in behaviour.nodes:
        entries += [Entry(node, t) for t in node.before]
        for _ in range(failed_attempts if node.cycle else 0):
            entries += [Entry(node, t, exec_fails=t.code) for t in node.cycle]
        entries += [Entry(node, t) for t in node.cycle]
        entries += [Entry(node, t) for t in node.after]
    return entries


def _add_noise(entries: list[Entry], rng: random.Random) -> list[str]:
    """Stray, missing and repeated turns, each with its own probability; returns what was applied."""
    applied = []
    inner = [i for i, e in enumerate(entries) if e.node.name != "terminator"]
    if rng.random() < STRAY_SHARE:
        at = rng.choice(inner[1:])
        stray = rng.choice(STRAYS)
        entries[at:at] = [Entry(entries[at].node, t) for t in stray]
        applied.append("stray:" + "+".join(t.agent for t in stray))
    if rng.random() < MISSING_SHARE:
        formatters = [i for i, e in enumerate(entries) if e.turn.agent.endswith("_formatter") and not e.turn.tool]
        if formatters:
            applied.append("missing:" + entries.pop(rng.choice(formatters)).turn.agent)
    if rng.random() < REPEAT_SHARE:
        talkers = [i for i, e in enumerate(entries) if not e.turn.tool and not e.turn.code
                   and not e.turn.approval and e.node.name != "terminator"]
        if talkers:
            at = rng.choice(talkers)
            entries.insert(at + 1, Entry(entries[at].node, entries[at].turn))
            applied.append("repeated:" + entries[at].turn.agent)
    return applied


def build_script(behaviour: Behaviour, seed: int, index: int) -> RunScript:
    """Draw one run of ``behaviour`` deterministically from (seed, index)."""
    rng = random.Random(f"external-workload:{seed}:{index}")
    run_id = _uuid(rng)
    paraphrase, task, params = draw_request(behaviour, rng)
    failed_attempts = rng.choice((1, 1, 1, 2, 2, 3)) if rng.random() < behaviour.retry_share else 0
    failure = None
    if rng.random() < FAILURE_SHARE:
        failure = "attempts_exhausted" if behaviour.retry_share and rng.random() < 0.4 else rng.choice(
            ("rate_limit", "rate_limit", "context_overflow", "tool_error"))
    if failure == "attempts_exhausted":
        failed_attempts = behaviour.max_attempts
    entries = _played_turns(behaviour, failed_attempts)
    noise = _add_noise(entries, rng)
    if failure == "attempts_exhausted":
        last_fail = max(i for i, e in enumerate(entries) if e.exec_fails)
        entries = entries[:last_fail + 2]
        entries[-1].dies = "step_failure"
    elif failure:
        fits = (lambda t: bool(t.tool)) if failure == "tool_error" else (lambda t: not t.code and not t.approval)
        at = rng.choice([i for i, e in enumerate(entries[:-1]) if i >= 2 and fits(e.turn)])
        entries = entries[:at + 1]
        entries[-1] = Entry(entries[-1].node, entries[-1].turn, entries[-1].exec_fails, failure)
    return RunScript(run_id, index, seed, behaviour, paraphrase, task, params, entries,
                     "failure" if failure else "success", failure, failed_attempts, noise)


# -- rendering -----------------------------------------------------------------------------------------------


class _Renderer:
    """Turns a script into rows, advancing a simulated clock."""

    def __init__(self, script: RunScript, session_id: str) -> None:
        self.s = script
        self.rng = random.Random(f"external-render:{script.seed}:{script.index}")
        self.session_id = session_id
        self.rows = Batch()
        self.order = 0
        self.now = EPOCH + timedelta(minutes=7 * script.index, seconds=self.rng.randrange(400))
        self.tag = script.run_id[:8]
        self.node_ids = {n.name: hashlib.md5(f"{script.run_id}:{n.name}".encode()).hexdigest()
                         for n in script.behaviour.nodes}
        self.group = sorted({t.agent for n in script.behaviour.nodes for t in n.turns if not t.approval})

    def _tick(self, low: float, high: float) -> tuple[datetime, datetime, int]:
        start = self.now
        seconds = self.rng.uniform(low, high)
        self.now = start + timedelta(seconds=seconds)
        return start, self.now, int(seconds * 1000)

    def event(self, event_type: str, subtype: str | None, node: Node, agent: str | None, *, depth: int = 0,
              parent: str | None = None, span: tuple[datetime, datetime, int] | None = None,
              status: str = "completed", **fields: Any) -> str:
        self.order += 1
        event_id = _uuid(self.rng)
        start, end, ms = span or (self.now, None, None)
        self.rows.events.append({
            "id": event_id, "run_id": self.s.run_id, "session_id": self.session_id,
            "node_id": self.node_ids[node.name], "parent_event_id": parent, "event_type": event_type,
            "event_subtype": subtype, "agent_name": agent, "timestamp": start, "started_at": start if span else None,
            "completed_at": end, "duration_ms": ms, "execution_order": self.order, "depth": depth,
            "status": status, **fields})
        return event_id

    # -- one turn ------------------------------------------------------------------------------------------

    def llm(self, node: Node, agent: str, parent: str, tool: str | None) -> dict[str, Any]:
        model, prompt, completion = LLM_PROFILE.get(agent, DEFAULT_PROFILE)
        p = max(50, int(prompt * self.rng.lognormvariate(0, 0.35)))
        c = max(1, int(completion * self.rng.lognormvariate(0, 0.45)))
        price_in, price_out = PRICES[model]
        cost = round((p * price_in + c * price_out) / 1e6, 6)
        span = self._tick(1.5, 14.0)
        usage = {"model": model, "prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c,
                 "cost_usd": cost, "cached": False}
        call = self.event("llm_call", "complete", node, agent, depth=1, parent=parent, span=span,
                          inputs={"messages": self.order + 1},
                          outputs={"content": f"[{agent} reply]", "tool_calls": [tool] if tool else []},
                          meta=usage)
        self.rows.costs.append({"run_id": self.s.run_id, "session_id": self.session_id,
                                "node_id": self.node_ids[node.name], "event_id": call, "model": model,
                                "agent_name": agent, "prompt_tokens": p, "completion_tokens": c,
                                "total_tokens": p + c, "cost_usd": cost, "timestamp": span[1]})
        return usage

    def file(self, node: Node, agent: str, parent: str, template: str, attempt: int) -> None:
        path = template.format(run=self.tag)
        kind = classify_file(path)
        size = self.rng.randrange(600, 250_000)
        gen = self.event("file_gen", "create", node, agent, depth=2, parent=parent, inputs={"path": path},
                         meta={"file_path": path, "file_type": kind, "size_bytes": size})
        digest = hashlib.sha256(f"{self.s.run_id}:{path}:{attempt}".encode()).hexdigest()
        final = path.startswith(("data/", "control/"))
        self.rows.files.append({
            "id": file_id(self.s.run_id, path), "run_id": self.s.run_id, "session_id": self.session_id,
            "event_id": gen, "node_id": self.node_ids[node.name], "file_path": path, "file_type": kind,
            "size_bytes": size, "created_at": self.now, "content_hash": digest, "generating_agent": agent,
            "workflow_phase": "planning" if node.node_type == "planning" else "execution",
            "is_final_output": final, "priority": "primary" if final or kind == "code" else "secondary"})

    def tool(self, node: Node, caller: str, turn: Turn, dies: str | None) -> None:
        self.event("handoff", "speaker_selection", node, caller,
                   meta={"from_agent": caller, "to_agent": PLUMBING_TOOL_AGENT, "reason": "tool_call"})
        span_start = self.now
        call = self.event("agent_call", "complete", node, PLUMBING_TOOL_AGENT, span=(span_start, span_start, 0),
                          inputs={"sender": caller})
        failed = dies == "tool_error"
        span = self._tick(0.05, 0.6)
        tool_call = self.event(
            "tool_call", "error" if failed else "complete", node, PLUMBING_TOOL_AGENT, depth=1, parent=call,
            span=span, status="failed" if failed else "completed",
            inputs={"name": turn.tool, "arguments": "{}", "call_id": f"call_{self.rng.getrandbits(40):010x}"},
            outputs={"content": "ValueError: malformed arguments" if failed else f"{turn.tool} recorded",
                     "success": not failed},
            meta={"tool_name": turn.tool}, error_message="ValueError: malformed arguments" if failed else None)
        if not failed:
            for template in turn.outputs:
                self.file(node, caller, tool_call, template, 0)
        self._close(call, span_start, "failed" if failed else "completed")

    def code(self, node: Node, entry: Entry, parent: str, attempt: int) -> None:
        turn = entry.turn
        span = self._tick(0.8, 9.0)
        fails = entry.exec_fails
        output = ("Traceback (most recent call last):\n  File \"main.py\", line 41\nRuntimeError: fit did not "
                  "converge" if fails else "execution succeeded")
        language = "bash" if turn.agent == "executor_bash" else "python"
        exec_id = self.event("code_exec", "error" if fails else "complete", node, turn.agent, depth=1, parent=parent,
                             span=span, status="failed" if fails else "completed",
                             inputs={"language": language, "blocks": 1, "code": f"# {language} block {attempt}"},
                             outputs={"exit_code": 1 if fails else 0, "output": output},
                             error_message=f"exit code 1: {output}" if fails else None)
        if fails:
            self.event("error", "runtime_error", node, turn.agent, depth=1, parent=parent, status="failed",
                       error_message=output)
            return
        for template in turn.outputs:
            self.file(node, turn.agent, exec_id, template, attempt)

    def _close(self, event_id: str, started: datetime, status: str, **fields: Any) -> None:
        row = next(e for e in reversed(self.rows.events) if e["id"] == event_id)
        row.update(status=status, event_subtype="error" if status == "failed" else "complete",
                   completed_at=self.now, duration_ms=int((self.now - started).total_seconds() * 1000), **fields)

    def turn(self, entry: Entry, previous: str | None, attempt: int) -> None:
        node, turn = entry.node, entry.turn
        if previous and previous != turn.agent:
            self.event("handoff", "speaker_selection", node, previous,
                       meta={"from_agent": previous, "to_agent": turn.agent, "reason": "group_chat_selection"})
        if turn.approval:
            self._tick(20, 600)
            self.event("approval_requested", "approved", node, turn.agent,
                       inputs={"approval_type": "plan_approval", "action": "approve plan"},
                       outputs={"resolution": "approved"})
            return
        started = self.now
        call = self.event("agent_call", "start", node, turn.agent, span=(started, started, 0),
                          inputs={"sender": previous, "message": self.s.task if previous is None else "continue"},
                          status="running")
        dies = entry.dies
        if turn.code:
            self.code(node, entry, call, attempt)
            self._close(call, started, "completed", outputs={"replied": True})
        else:
            if dies in ("rate_limit", "context_overflow"):
                message = ("RateLimitError: Error code: 429 - Rate limit reached for gpt-4.1" if dies == "rate_limit"
                           else "BadRequestError: context_length_exceeded")
                self._tick(0.5, 3.0)
                self.event("error", dies, node, turn.agent, depth=1, parent=call, status="failed",
                           error_message=message)
                self._close(call, started, "failed", error_message=message)
                return
            usage = self.llm(node, turn.agent, call, turn.tool)
            self._close(call, started, "completed", outputs={"replied": True},
                        meta={"llm_calls": 1, **{k: usage[k] for k in ("prompt_tokens", "completion_tokens",
                                                                      "cost_usd", "model")}})
            self.broadcast(node, turn.agent, usage["completion_tokens"])
        if turn.tool:
            self.tool(node, turn.agent, turn, dies)
        if dies == "step_failure":
            self.event("error", "step_failure", node, turn.agent, status="failed",
                       error_message=f"step failed after {self.s.behaviour.max_attempts} attempts")

    def broadcast(self, node: Node, sender: str, tokens: int) -> None:
        recipients = [a for a in self.group if a != sender]
        inputs, recipient, meta = message_addressing(sender, recipients, None)
        content = f"Message from {sender}: ..."
        event_id = self.event("message", "broadcast", node, sender, inputs={**inputs, "content": content})
        self.rows.messages.append({"run_id": self.s.run_id, "session_id": self.session_id, "event_id": event_id,
                                   "node_id": self.node_ids[node.name], "sender": sender, "recipient": recipient,
                                   "content": content, "timestamp": self.now, "tokens": tokens, "meta": meta})

    # -- the whole run -------------------------------------------------------------------------------------

    def render(self) -> Batch:
        s, b = self.s, self.s.behaviour
        started = self.now
        reached: dict[str, str] = {}
        previous: str | None = None
        attempts: dict[str, int] = {}
        for entry in s.entries:
            name = entry.node.name
            if name not in reached:
                if reached:
                    last = next(reversed(reached))
                    reached[last] = "completed"
                    self.event("state_transition", "node", entry.node, "system",
                               meta={"from": "running", "to": "completed", "node": last})
                reached[name] = "running"
                self.event("state_transition", "node", entry.node, "system",
                           meta={"from": "pending", "to": "running", "node": name})
            if entry.turn.code:
                attempts[name] = attempts.get(name, 0) + 1
            self.turn(entry, previous, attempts.get(name, 1))
            previous = PLUMBING_TOOL_AGENT if entry.turn.tool and entry.dies != "tool_error" else entry.turn.agent
        last = next(reversed(reached))
        reached[last] = "failed" if s.failure else "completed"
        self.event("state_transition", "node", s.entries[-1].node, "system",
                   meta={"from": "running", "to": reached[last], "node": last})
        status = "failed" if s.failure else "completed"
        spelling = MODE_SPELLINGS[b.mode][s.index % len(MODE_SPELLINGS[b.mode])]
        self.rows.runs.append({
            "id": s.run_id, "session_id": self.session_id, "mode": spelling, "agent": b.lead_agent,
            "model": "gpt-4.1-2025-04-14", "status": status, "started_at": started, "completed_at": self.now,
            "last_heartbeat_at": self.now, "task_description": s.task, "is_branch": False, "branch_depth": 0,
            "meta": {"model": "gpt-4.1-2025-04-14", "maxRounds": 25, "maxAttempts": b.max_attempts,
                     "nPlanReviews": 1, "task_id": f"task_{int(started.timestamp() * 1000)}_{self.tag}"}})
        last_reached = max(i for i, n in enumerate(b.nodes) if n.name in reached)
        for order, node in enumerate(b.nodes):
            state = reached.get(node.name, "completed" if order < last_reached else "failed" if s.failure
                                else "skipped")
            self.rows.nodes.append({
                "id": self.node_ids[node.name], "run_id": s.run_id, "session_id": self.session_id,
                "node_type": node.node_type, "agent": node.agent, "status": state, "order_index": order,
                "depth": 0, "meta": {"id": node.name, "label": node.name.replace("_", " "), "type": node.node_type,
                                     "agent": node.agent, "status": state}})
            if order:
                self.rows.edges.append({"from_node_id": self.node_ids[b.nodes[order - 1].name],
                                        "to_node_id": self.node_ids[node.name], "dependency_type": "sequential"})
        return self.rows


def render(script: RunScript, session_id: str) -> Batch:
    """The store rows of one scripted run."""
    return _Renderer(script, session_id).render()
