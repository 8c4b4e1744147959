"""The reference plan's trace questions, answered by name as well as by id, as plain JSON-ready dicts.

- :func:`resolve_run` / :func:`resolve_node` — a run by id or unique id prefix; a step by its name (``step_2``),
  its node id, or its step number;
- :func:`file_answer` — which agent, event, node and run wrote a file, with its content hash;
- :func:`step_flow` — the execution flow within one step: nested events, tools, files, tokens and cost;
- :func:`agent_invocations` — how many times each agent was called (``agent_call`` events, not all events);
- :func:`run_failure` — the events leading to a run's failure, or, when no event failed, the step judged failed;
- :func:`search_runs` — runs by task text, mode, outcome, agent and file type;
- :func:`run_usage` — tokens and cost per event, per node and for the run (one rule for all three).

The CLI (``skillmine trace ...``, ``skillmine runs search``) and the trace API both call these, so they give the
same answers.
"""

import re
from typing import Any

from sqlalchemy import and_, exists, func, or_, select

from capture.read.files import _escape_like, file_provenance
from capture.read.queries import EVENTS, FILES, NODES, RUNS, _all, engine_of, list_nodes_for_run, row_dict
from capture.read.summary import COSTS, cost_of, tokens_of
from capture.read.trace import failure_chain, flatten_flow, node_execution_flow

COMPLETED = "completed"
FAILED_RUN_STATUSES = frozenset({"failed", "error", "aborted", "cancelled"})
SEARCH_LIMIT = 50
LAST_EVENTS = 10
SOURCE_REASON_KEYS = ("error_message", "error", "failure_reason", "outcome", "status_message")


class NotFound(LookupError):
    """A requested run, node, event or file does not exist (in the requested session)."""

    def __init__(self, kind: str, ident: str, session_id: str | None = None, hint: str = "") -> None:
        where = f" in session {session_id!r}" if session_id else ""
        super().__init__(f"{kind} {ident!r} not found{where}{hint}")
        self.kind, self.ident = kind, ident


# -- names ------------------------------------------------------------------------------------------------


def resolve_run(source: Any, ident: str, session_id: str | None = None) -> dict[str, Any]:
    """The run whose id is ``ident`` or starts with it (unique prefix, at least 4 characters)."""
    base = select(RUNS)
    if session_id is not None:
        base = base.where(RUNS.c.session_id == session_id)
    rows = _all(source, base.where(RUNS.c.id == ident))
    if not rows and len(ident) >= 4:
        rows = _all(source, base.where(RUNS.c.id.like(_escape_like(ident) + "%", escape="\\")).limit(6))
        if len(rows) > 1:
            ids = ", ".join(r["id"] for r in rows[:5])
            raise NotFound("run", ident, session_id, f" uniquely: it is the prefix of {ids}")
    if not rows:
        raise NotFound("run", ident, session_id)
    return rows[0]


def node_name(node: dict[str, Any]) -> str:
    """A node's readable name: the source's step id (``step_2``, ``planning``), else its type."""
    meta = node.get("meta")
    name = meta.get("id") if isinstance(meta, dict) else None
    return str(name) if name else str(node.get("node_type") or node["id"])


def resolve_node(source: Any, run: dict[str, Any], step: str) -> dict[str, Any]:
    """A node of ``run`` by id, step name (``step_2``) or step number (``2``); :class:`NotFound` lists the names."""
    nodes = list_nodes_for_run(source, run["session_id"], run["id"])
    for matches in (lambda n: n["id"] == step, lambda n: node_name(n) == step,
                    lambda n: step.isdigit() and isinstance(n.get("meta"), dict)
                    and str(n["meta"].get("step_number")) == step):
        found = [n for n in nodes if matches(n)]
        if found:
            return found[0]
    names = ", ".join(node_name(n) for n in nodes) or "none: this run has no steps"
    raise NotFound("step", step, None, f" in run {run['id']} (its steps: {names})")


# -- tokens and cost -------------------------------------------------------------------------------------


def event_usage(event: dict[str, Any]) -> dict[str, Any]:
    """The ``tokens`` and ``cost_usd`` an event's meta carries (zero when none)."""
    return {"tokens": tokens_of(event.get("meta")), "cost_usd": round(cost_of(event.get("meta")), 6)}


def run_usage(source: Any, session_id: str, run_id: str) -> dict[str, Any]:
    """Tokens and USD cost per node and for the whole run (each event's own are in its meta: see
    :func:`capture.read.summary.tokens_of`).

    The rule of the node summaries: ``llm_call`` events carry the usage when any does (their parent
    ``agent_call`` often repeats the sum, so it is not added again; only their metas are read then); otherwise
    every event that carries tokens or cost; when no event carries any, the run's ``cost_records`` (by their
    node). ``source`` names which applied.
    """
    where = and_(EVENTS.c.run_id == run_id, EVENTS.c.session_id == session_id, EVENTS.c.meta.is_not(None))
    metas = select(EVENTS.c.node_id, EVENTS.c.meta)
    with engine_of(source).connect() as conn:
        rows, used = conn.execute(metas.where(where, EVENTS.c.event_type == "llm_call")).all(), "llm_call events"
        carried = [(node, tokens_of(meta), cost_of(meta)) for node, meta in rows]
        carried = [c for c in carried if c[1] or c[2]]
        if not carried:
            rows, used = conn.execute(metas.where(where, EVENTS.c.event_type != "llm_call")).all(), "events"
            carried = [c for c in ((node, tokens_of(meta), cost_of(meta)) for node, meta in rows) if c[1] or c[2]]
        if not carried:
            carried = [(node, int(tokens or 0), float(cost or 0)) for node, tokens, cost in conn.execute(
                select(COSTS.c.node_id, func.sum(COSTS.c.total_tokens), func.sum(COSTS.c.cost_usd))
                .where(COSTS.c.run_id == run_id).group_by(COSTS.c.node_id))]
            used = "cost records" if carried else "none recorded"
    total = {"tokens": 0, "cost_usd": 0.0}
    by_node: dict[str, dict[str, Any]] = {}
    for node, tokens, cost in carried:
        for slot in (total, by_node.setdefault(node, {"tokens": 0, "cost_usd": 0.0})) if node else (total,):
            slot["tokens"] += tokens
            slot["cost_usd"] += cost
    for slot in (total, *by_node.values()):
        slot["cost_usd"] = round(slot["cost_usd"], 6)
    return {"total_tokens": total["tokens"], "total_cost_usd": total["cost_usd"], "by_node": by_node,
            "source": used}


# -- the questions ---------------------------------------------------------------------------------------


def file_answer(source: Any, session_ids: list[str], path: str) -> dict[str, Any]:
    """Which agent, event, node and run wrote the files matching ``path`` (a stored path, its ending, or a sha256).

    Each match says where its agent comes from (``agent_source``: the file's own record, its event, or its step).
    """
    is_hash = len(path) == 64 and all(c in "0123456789abcdefABCDEF" for c in path)
    matches = []
    for sid in session_ids:
        found = file_provenance(source, sid, content_hash=path) if is_hash else []
        matches += found or file_provenance(source, sid, path=path)
    if not matches:
        raise NotFound("file", path)
    runs = {r["id"]: r for r in _all(source, select(RUNS.c.id, RUNS.c.mode, RUNS.c.status, RUNS.c.task_description)
                                     .where(RUNS.c.id.in_({m["file"]["run_id"] for m in matches})))}
    node_ids = {m["file"]["node_id"] for m in matches if m["file"]["node_id"]}
    nodes = {n["id"]: n for n in _all(source, select(NODES).where(NODES.c.id.in_(node_ids)))} if node_ids else {}
    out = []
    for m in matches:
        f, event = m["file"], m["event"]
        node = nodes.get(f["node_id"])
        agent, agent_source = ((f["generating_agent"], "file record") if f["generating_agent"] else
                               (event["agent_name"], "event") if event and event["agent_name"] else
                               (node["agent"], "step") if node and node.get("agent") else (None, None))
        out.append({"path": f["file_path"], "file_type": f["file_type"], "size_bytes": f["size_bytes"],
                    "content_hash": f["content_hash"], "created_at": f["created_at"], "agent": agent,
                    "agent_source": agent_source, "event": event,
                    "node": None if node is None else {"id": node["id"], "name": node_name(node),
                                                       "node_type": node["node_type"], "agent": node["agent"]},
                    "run": runs.get(f["run_id"], {"id": f["run_id"]}), "session_id": f["session_id"]})
    return {"query": path, "total_files": len(out), "files": out}


def step_flow(source: Any, run: dict[str, Any], step: str) -> dict[str, Any]:
    """The execution flow within one step of ``run``: its events nested by parent, the tools it called (with
    counts, in first-call order), its files, its agents' invocations, and its tokens and cost."""
    node = resolve_node(source, run, step)
    sid = run["session_id"]
    flow = node_execution_flow(source, sid, node["id"])
    events = [e for _, e in flatten_flow(flow)]
    tools: dict[str, int] = {}
    for e in events:
        if e["event_type"] == "tool_call":
            name = _tool_name(e)
            tools[name] = tools.get(name, 0) + 1
    usage = run_usage(source, sid, run["id"])
    node_usage = usage["by_node"].get(node["id"], {"tokens": 0, "cost_usd": 0.0})
    for e in events:
        e.update(event_usage(e))
    files = _all(source, select(FILES).where(FILES.c.node_id == node["id"])
                 .order_by(FILES.c.created_at, FILES.c.file_path))
    return {"run_id": run["id"], "step": node_name(node), "node": node, "total_events": len(events),
            "flow": flow, "sequence": [f"{e['event_type']}:{e.get('agent_name') or 'system'}" for e in events],
            "tools": tools, "invocations": _count_calls(e for e in events),
            "files": [{"path": f["file_path"], "file_type": f["file_type"], "content_hash": f["content_hash"],
                       "agent": f["generating_agent"]} for f in files],
            "tokens": node_usage["tokens"], "cost_usd": node_usage["cost_usd"], "usage_source": usage["source"]}


def _tool_name(event: dict[str, Any]) -> str:
    for payload in (event.get("meta"), event.get("inputs")):
        if isinstance(payload, dict):
            name = payload.get("tool_name") or payload.get("tool") or payload.get("name")
            if isinstance(name, str) and name:
                return name
    return "(unnamed tool)"


def _count_calls(events: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for e in events:
        if e["event_type"] == "agent_call":
            agent = e.get("agent_name") or "(no agent)"
            counts[agent] = counts.get(agent, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def agent_invocations(source: Any, run: dict[str, Any]) -> dict[str, Any]:
    """Calls per agent in ``run``, counted as invocations (``agent_call`` events), most called first, with the
    events each agent emitted besides (``events``: every event naming the agent)."""
    where = and_(EVENTS.c.run_id == run["id"], EVENTS.c.session_id == run["session_id"],
                 EVENTS.c.agent_name.is_not(None))
    with engine_of(source).connect() as conn:
        rows = conn.execute(select(EVENTS.c.agent_name, EVENTS.c.event_type, func.count()).where(where)
                            .group_by(EVENTS.c.agent_name, EVENTS.c.event_type)).all()
    agents: dict[str, dict[str, int]] = {}
    for agent, etype, n in rows:
        slot = agents.setdefault(agent, {"invocations": 0, "events": 0})
        slot["events"] += n
        if etype == "agent_call":
            slot["invocations"] += n
    ordered = sorted(agents.items(), key=lambda kv: (-kv[1]["invocations"], kv[0]))
    return {"run_id": run["id"], "counted_as": "agent_call events",
            "total_invocations": sum(s["invocations"] for s in agents.values()),
            "agents": [{"agent": a, **s} for a, s in ordered]}


def run_failure(source: Any, run: dict[str, Any]) -> dict[str, Any]:
    """What led to the run's failure.

    ``failure`` is the chain of :func:`~capture.read.trace.failure_chain` (``kind: "event"``) when an event
    failed; for a run whose status says it failed but with no failed event, ``kind: "judged"``: the last step
    that did not complete, the reason it is judged failed, and the run's last events. ``None`` only when the run
    did not fail and no event failed.
    """
    sid = run["session_id"]
    chain = failure_chain(source, sid, run["id"])
    if chain is not None:
        return {"run_id": run["id"], "run_status": run["status"], "failure": {"kind": "event", **chain}}
    if run["status"] not in FAILED_RUN_STATUSES:
        return {"run_id": run["id"], "run_status": run["status"], "failure": None}
    nodes = list_nodes_for_run(source, sid, run["id"])
    unfinished = [n for n in nodes if n["status"] != COMPLETED]
    step = unfinished[-1] if unfinished else None
    if step is None:
        why = (f"the run's status is {run['status']!r} but no event failed and "
               + ("every step completed" if nodes else "the source recorded no steps"))
    else:
        done = sum(1 for n in nodes if n["status"] == COMPLETED)
        why = (f"the run's status is {run['status']!r}, no event failed, and step {node_name(step)!r} "
               f"({step['agent'] or 'no agent'}) is {step['status']!r}: it never completed "
               f"({done} of {len(nodes)} steps completed)")
    said = _source_reason(run.get("meta"))
    if said:
        why += f"; the source says: {said}"
    with engine_of(source).connect() as conn:
        rows = conn.execute(select(EVENTS).where(EVENTS.c.run_id == run["id"], EVENTS.c.session_id == sid)
                            .order_by(EVENTS.c.execution_order.desc(), EVENTS.c.seq.desc())
                            .limit(LAST_EVENTS)).all()
    last = [row_dict(r) for r in reversed(rows)]
    return {"run_id": run["id"], "run_status": run["status"], "failure": {
        "kind": "judged", "reason": why, "step": None if step is None else {
            "id": step["id"], "name": node_name(step), "agent": step["agent"], "status": step["status"]},
        "last_events": last,
        "sequence": [f"{e['event_type']}:{e.get('agent_name') or 'system'}" for e in last]}}


def _source_reason(meta: Any) -> str | None:
    """What the source recorded about a run's outcome (e.g. a benchmark trial's ``outcome``), if anything."""
    if not isinstance(meta, dict):
        return None
    for key in SOURCE_REASON_KEYS:
        value = meta.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:500]
    return None


def _stems(text: str) -> list[str]:
    """Lower-case word stems, so "plotting" finds "Plot ..." and "fits" finds "fit"."""
    stems = []
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        for suffix in ("ing", "ed", "es", "s"):
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                word = word[: -len(suffix)]
                if suffix in ("ing", "ed") and len(word) > 3 and word[-1] == word[-2]:
                    word = word[:-1]
                break
        stems.append(word)
    return stems


def search_runs(source: Any, text: str | None = None, *, mode: str | None = None, outcome: str | None = None,
                agent: str | None = None, file_type: str | None = None, session_id: str | None = None,
                limit: int = SEARCH_LIMIT) -> dict[str, Any]:
    """Runs whose task text contains every word stem of ``text`` (case-insensitive), of ``mode``, whose status is
    ``outcome``, in which ``agent`` appears (an event or the run's agent) and that produced a file of
    ``file_type``; newest first, with their event count, agents and file types."""
    stmt = select(RUNS.c.id, RUNS.c.session_id, RUNS.c.mode, RUNS.c.status, RUNS.c.started_at,
                  RUNS.c.task_description)
    for stem in _stems(text or ""):
        stmt = stmt.where(func.lower(RUNS.c.task_description).like(f"%{_escape_like(stem)}%", escape="\\"))
    if mode:
        stmt = stmt.where(RUNS.c.mode == mode)
    if outcome:
        stmt = stmt.where(RUNS.c.status == outcome)
    if session_id:
        stmt = stmt.where(RUNS.c.session_id == session_id)
    if agent:
        stmt = stmt.where(or_(RUNS.c.agent == agent, exists().where(EVENTS.c.run_id == RUNS.c.id,
                                                                   EVENTS.c.agent_name == agent)))
    if file_type:
        stmt = stmt.where(exists().where(FILES.c.run_id == RUNS.c.id, FILES.c.file_type == file_type))
    runs = _all(source, stmt.order_by(RUNS.c.started_at.desc().nulls_last(), RUNS.c.id).limit(limit))
    ids = [r["id"] for r in runs]
    with engine_of(source).connect() as conn:
        events = dict(conn.execute(select(EVENTS.c.run_id, func.count()).where(EVENTS.c.run_id.in_(ids))
                                   .group_by(EVENTS.c.run_id)).all()) if ids else {}
        agents = conn.execute(select(EVENTS.c.run_id, EVENTS.c.agent_name).distinct()
                              .where(EVENTS.c.run_id.in_(ids), EVENTS.c.event_type == "agent_call")).all()
        types = conn.execute(select(FILES.c.run_id, FILES.c.file_type).distinct()
                             .where(FILES.c.run_id.in_(ids))).all()
    for run in runs:
        run["total_events"] = int(events.get(run["id"], 0))
        run["agents"] = sorted(a for r, a in agents if r == run["id"] and a)
        run["file_types"] = sorted(t for r, t in types if r == run["id"] and t)
    query = {"text": text, "mode": mode, "outcome": outcome, "agent": agent, "file_type": file_type}
    return {"query": {k: v for k, v in query.items() if v}, "total_runs": len(runs), "runs": runs}
