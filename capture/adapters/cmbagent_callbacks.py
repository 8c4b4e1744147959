"""CMBAgent's WorkflowCallbacks, mapped onto capture runs, nodes and events.

A CMBAgent user passes ``SkillmineCallbacks()`` where they pass their callbacks; every mode then records the same
shape: one run (``on_workflow_start`` … ``on_workflow_complete/failed``), nodes ``planning``, ``step_N`` and
``terminator`` linked in order, ``agent_call`` spans between ``on_agent_start`` and ``on_agent_complete``, and
``message``, ``code_exec``, ``tool_call``, cost and phase-change records inside the open node and agent span.

CMBAgent calls these from a thread pool, so the adapter does not rely on the caller's context: it keeps its own
run/node/agent state and installs it around each call. Every method swallows and counts its own failures.
"""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any

from capture import api
from capture.core.context import current_node_var, current_run_var, current_span_var

CODE_FAILURE_MARKERS = ("error", "traceback", "exitcode: 1", "exit code 1")


def _field(info: Any, *names: str) -> Any:
    """The first present attribute or key of a CMBAgent info object (dataclass or dict)."""
    for name in names:
        if isinstance(info, dict) and info.get(name) is not None:
            return info[name]
        value = getattr(info, name, None)
        if value is not None:
            return value
    return None


def _plain(info: Any) -> Any:
    if info is None or isinstance(info, (dict, list, str, int, float, bool)):
        return info
    return dict(vars(info)) if hasattr(info, "__dict__") else str(info)


def _guarded(method: Callable[..., None]) -> Callable[..., None]:
    @wraps(method)
    def call(self: "SkillmineCallbacks", *args: Any, **kwargs: Any) -> None:
        try:
            with self._lock, self._scope():
                method(self, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - callbacks must never break the workflow
            api.get_recorder().error(f"callback {method.__name__}", exc)
    return call


class SkillmineCallbacks:
    """WorkflowCallbacks that record into skillmine (one instance per workflow run)."""

    def __init__(self, *, mode: str | None = None, session_id: str | None = None, run_id: str | None = None) -> None:
        self.mode = mode
        self.session_id = session_id
        self.run_id = run_id
        self._lock = threading.RLock()
        self._run: api.RunHandle | None = None
        self._node: api.NodeHandle | None = None
        self._agents: list[tuple[str, api.Span]] = []
        self._run_id: str | None = None

    @contextmanager
    def _scope(self) -> Iterator[None]:
        state = getattr(self._run, "_state", None)
        node = (self._node.id, 0) if self._node is not None and self._node.id is not None else None
        top = next((s for _, s in reversed(self._agents) if s.run is not None), None)  # an entered span is its state
        tokens = (current_run_var.set(state), current_node_var.set(node), current_span_var.set(top))
        try:
            yield
        finally:
            for variable, token in zip((current_run_var, current_node_var, current_span_var), tokens):
                variable.reset(token)

    @property
    def run_id_recorded(self) -> str | None:
        """The id of the run this adapter recorded (set by ``on_workflow_start``)."""
        return self._run_id

    # -- workflow ---------------------------------------------------------------------------------------------

    @_guarded
    def on_workflow_start(self, task: str | None = None, config: dict | None = None) -> None:
        """Open the run (mode from ``config['mode']`` or the constructor)."""
        config = dict(config or {})
        self._run = api.run(config.get("name"), mode=config.get("mode") or self.mode, task=task,
                            run_id=self.run_id, session_id=self.session_id, meta={"config": config} if config else None)
        self._run.__enter__()
        self._run_id = self._run.id

    @_guarded
    def on_workflow_complete(self, final_context: Any = None, total_time: float | None = None) -> None:
        """Close any open node, record the ``terminator`` node, close the run completed."""
        self._close_agents(failed=None)
        self._close_node(failed=None)
        self._open_node("terminator", agent="system", node_type="terminator")
        self._close_node(failed=None)
        if self._run is not None:
            if total_time is not None:
                self._run.set_meta(total_time_s=total_time)
            self._run.__exit__(None, None, None)
            self._run = None

    @_guarded
    def on_workflow_failed(self, error: Any = None, step: Any = None) -> None:
        """Record the error, close what is open as failed, close the run failed."""
        message = str(error) if error is not None else "workflow failed"
        api.record_event("error", "runtime_error", status="failed", error_message=message,
                         meta={"step": _plain(step)} if step is not None else None)
        self._close_agents(failed=message)
        self._close_node(failed=message)
        if self._run is not None:
            self._run.fail(message)
            self._run.__exit__(None, None, None)
            self._run = None

    # -- planning and steps -----------------------------------------------------------------------------------

    @_guarded
    def on_planning_start(self, task: str | None = None, config: dict | None = None) -> None:
        """Open the ``planning`` node."""
        self._close_node(failed=None)
        self._open_node("planning", agent="planner", node_type="planning")

    @_guarded
    def on_planning_complete(self, plan_info: Any = None) -> None:
        """Close the ``planning`` node, keeping the plan in its meta."""
        if self._node is not None and plan_info is not None:
            self._node.set_meta(plan=_plain(plan_info))
        self._close_node(failed=None)

    @_guarded
    def on_step_start(self, step_info: Any = None) -> None:
        """Open node ``step_N`` (agent from the step's ``sub_task_agent``/``agent``)."""
        self._close_node(failed=None)
        number = _field(step_info, "step_number", "step", "number")
        name = f"step_{number}" if number is not None else "step"
        self._open_node(name, agent=_field(step_info, "sub_task_agent", "agent"), node_type="agent",
                        meta={"goal": _field(step_info, "goal", "description", "sub_task")})

    @_guarded
    def on_step_complete(self, step_info: Any = None) -> None:
        """Close the step node."""
        self._close_agents(failed=None)
        self._close_node(failed=None)

    @_guarded
    def on_step_failed(self, step_info: Any = None, error: Any = None) -> None:
        """Record a ``step_failure`` error and close the step node failed."""
        message = str(error or _field(step_info, "error") or "step failed")
        api.record_event("error", "step_failure", status="failed", error_message=message)
        self._close_agents(failed=message)
        self._close_node(failed=message)

    # -- agents and their work ----------------------------------------------------------------------------------

    @_guarded
    def on_agent_start(self, agent: str, *args: Any, **kwargs: Any) -> None:
        """Open an ``agent_call`` span for ``agent``."""
        span = api.span("agent_call", agent_name=str(agent), inputs={"args": list(args)} if args else None)
        span.__enter__()
        self._agents.append((str(agent), span))

    @_guarded
    def on_agent_complete(self, agent: str, *args: Any, **kwargs: Any) -> None:
        """Close the innermost open ``agent_call`` span of ``agent``."""
        for index in range(len(self._agents) - 1, -1, -1):
            if self._agents[index][0] == str(agent):
                _, span = self._agents.pop(index)
                if args:
                    span.set_outputs({"result": _plain(args[0])})
                span.__exit__(None, None, None)
                return

    @_guarded
    def on_agent_message(self, agent: str, role: str | None = None, content: Any = None, meta: dict | None = None) -> None:
        """A ``message`` event and ``messages`` row sent by ``agent``."""
        api.record_message(str(agent), None, content, meta={"role": role, **(meta or {})})

    @_guarded
    def on_code_execution(self, agent: str, code: str | None = None, language: str | None = None,
                          result: Any = None) -> None:
        """A completed ``code_exec`` event (failed when the result looks like an error)."""
        text = str(result or "").lower()
        failed = any(marker in text for marker in CODE_FAILURE_MARKERS)
        api.record_event("code_exec", "error" if failed else "complete", agent_name=str(agent),
                         inputs={"code": code, "language": language}, outputs={"result": result},
                         status="failed" if failed else "completed")

    @_guarded
    def on_tool_call(self, agent: str, tool: str | None = None, args: Any = None, result: Any = None) -> None:
        """A completed ``tool_call`` event."""
        api.record_event("tool_call", "complete", agent_name=str(agent), inputs={"tool": tool, "args": args},
                         outputs={"result": result}, meta={"tool_name": tool})

    @_guarded
    def on_cost_update(self, cost: dict | None = None) -> None:
        """A ``cost_records`` row from CMBAgent's cost dict."""
        cost = cost or {}
        prompt = int(_field(cost, "prompt_tokens", "input_tokens") or 0)
        completion = int(_field(cost, "completion_tokens", "output_tokens") or 0)
        api.record_cost(agent_name=_field(cost, "agent", "agent_name"), model=_field(cost, "model"),
                        prompt_tokens=prompt, completion_tokens=completion,
                        cost_usd=float(_field(cost, "cost_usd", "cost", "total_cost") or 0.0))

    @_guarded
    def on_phase_change(self, phase: str, step: Any = None) -> None:
        """A ``state_transition/workflow`` event naming the new phase."""
        api.record_event("state_transition", "workflow", meta={"phase": phase, "step": _plain(step)})

    # -- helpers (called under the lock and scope) ---------------------------------------------------------------

    def _open_node(self, name: str, *, agent: Any, node_type: str, meta: dict | None = None) -> None:
        if self._run is None:
            self.on_workflow_start.__wrapped__(self)  # type: ignore[attr-defined]
        node = api.node(name, agent=str(agent) if agent is not None else None, node_type=node_type, meta=meta)
        with self._scope():
            node.__enter__()
        self._node = node

    def _close_node(self, *, failed: str | None) -> None:
        if self._node is None:
            return
        node, self._node = self._node, None
        if failed is not None:
            node.fail(failed)
        node.__exit__(None, None, None)

    def _close_agents(self, *, failed: str | None) -> None:
        while self._agents:
            _, span = self._agents.pop()
            if failed is not None:
                span.fail(failed)
            span.__exit__(None, None, None)
