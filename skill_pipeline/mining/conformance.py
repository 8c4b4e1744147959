"""Conformance of a run to a skill: an optimal alignment of the run's steps to the skill's step pattern.

A skill's steps (agent, action, tool; optional steps; consecutive steps sharing one ``repeat`` marker form a block
repeated ``min``..``max`` times) compile into a small automaton. A shortest-path search over (run position,
automaton state) finds the cheapest alignment, as process-mining alignments do: a run step the skill expects at
that point costs nothing, a run step the skill has no place for costs 1 (``extra``), a required skill step the run
lacks costs 1 (``missing``), an optional step skipped costs nothing, and a block iteration beyond ``max`` costs 1
per step (``repeated``). Afterwards a missing and an extra step with the same label are one step ``out_of_order``,
and an extra step equal to its neighbour is ``repeated``.

Fitness follows the alignment-fitness definition of pm4py / Adriansyah et al.: ``1 - cost / (run length + cost of
aligning an empty run)``, so it lies in [0, 1] and 1 means the run is a word of the skill's language.
``precision`` measures the opposite direction (escaping edges, as ETConformance): the share of steps the skill
allows after an observed prefix that no run takes there.

Steps are compared by label (``agent|action|tool``), derived the same way for a skill document's steps
(``action`` stored by the miner) and a run's tokens (``roles.step_action``), so conformance needs no warehouse.
"""

import heapq
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .roles import step_action
from .tokens import canonical_token, parse_token, token_events

if TYPE_CHECKING:  # patterns imports numpy and rapidfuzz; the trace API only aligns runs to documents
    from .patterns import Pattern, PatternStep

KINDS = ("missing", "extra", "out_of_order", "repeated")
MAX_UNROLL = 50  # block iterations compiled explicitly; a larger max behaves as 50


def step_label(agent: str, action: str, tool: str | None = None) -> str:
    """The label two steps must share to match: agent, action and tool."""
    return f"{agent}|{action}|{tool or ''}"


def token_label(token: str) -> str | None:
    """The label of a run's step token (None for tokens that are no step, e.g. errors)."""
    canon = canonical_token(token)
    if canon is None:
        return None
    etype, agent, detail = parse_token(canon)
    tool = detail if etype == "tool_call" else None
    return step_label(agent, step_action(etype, agent, tool), tool)


@dataclass(frozen=True)
class RunStep:
    """One step of a run: its label and the id of the event it came from."""

    label: str
    event_id: str | None = None


def run_steps(events: Sequence[Mapping[str, Any]], granularity: str = "standard") -> list[RunStep]:
    """A run's steps, in execution order, as the miner tokenises them (``tokens.token_events``)."""
    out = []
    for token, event in token_events(events, granularity):
        label = token_label(token)
        if label is not None:
            out.append(RunStep(label, None if event.get("id") is None else str(event["id"])))
    return out


@dataclass(frozen=True)
class _Edge:
    target: int
    label: str | None  # None: a move of the skill alone
    cost: int
    kind: str  # sync | skip | missing | eps (block entry/exit) | repeated, beyond (iterations past max)
    step: int | None


class SkillModel:
    """A skill's steps compiled into an automaton (see the module docstring)."""

    def __init__(self, name: str, labels: Sequence[str], optional: Sequence[bool],
                 blocks: Sequence[tuple[int, int, int, int]] = (), version: str | None = None) -> None:
        """``blocks``: ``(start, end, min, max)`` step ranges repeated ``min``..``max`` times, not overlapping."""
        self.name, self.version = name, version
        self.labels, self.optional = list(labels), list(optional)
        self.blocks = sorted(blocks)
        self.edges: list[list[_Edge]] = [[]]
        state, i = 0, 0
        starts = {b[0]: b for b in self.blocks}
        while i < len(self.labels):
            if i in starts:
                start, end, low, high = starts[i]
                state = self._block(state, range(start, end), low, high)
                i = end
            else:
                state = self._chain(state, [i])
                i += 1
        self.final = state
        self.min_cost = self._empty_cost()

    @classmethod
    def from_skill(cls, skill: Mapping[str, Any]) -> "SkillModel":
        """The model of a skill document (library or mining candidate): consecutive steps with equal ``repeat``
        markers form one block."""
        steps = list(skill["steps"])
        labels = [step_label(s["agent"], s["action"], s.get("tool")) for s in steps]
        blocks, i = [], 0
        while i < len(steps):
            marker = steps[i].get("repeat")
            j = i + 1
            while marker and j < len(steps) and steps[j].get("repeat") == marker:
                j += 1
            if marker:
                blocks.append((i, j, int(marker.get("min", 1)), int(marker.get("max", 1))))
            i = j
        return cls(str(skill["name"]), labels, [bool(s.get("optional")) for s in steps], blocks,
                   skill.get("version"))

    @classmethod
    def from_pattern(cls, pattern: "Pattern", name: str | None = None,
                     label: "Callable[[PatternStep], str] | None" = None) -> "SkillModel":
        """The model of a mined pattern; ``label`` maps a step to its label (default: as a skill document's)."""
        def default(step: "PatternStep") -> str:
            return step_label(step.agent, step_action(step.event_type, step.agent, step.tool), step.tool)
        to_label = label or default
        return cls(name or str(pattern.cluster_id), [to_label(s) for s in pattern.steps],
                   [s.optional for s in pattern.steps], [(b.start, b.end, b.min, b.max) for b in pattern.blocks])

    def _new(self) -> int:
        self.edges.append([])
        return len(self.edges) - 1

    def _chain(self, state: int, steps: Iterable[int], beyond: bool = False) -> int:
        for j in steps:
            nxt = self._new()
            if beyond:
                self.edges[state] += [_Edge(nxt, self.labels[j], 1, "repeated", j),
                                     _Edge(nxt, None, 0, "beyond", j)]
            else:
                skip = _Edge(nxt, None, 0, "skip", j) if self.optional[j] else _Edge(nxt, None, 1, "missing", j)
                self.edges[state] += [_Edge(nxt, self.labels[j], 0, "sync", j), skip]
            state = nxt
        return state

    def _block(self, state: int, steps: range, low: int, high: int) -> int:
        exit_ = self._new()
        if low <= 0:
            self.edges[state].append(_Edge(exit_, None, 0, "eps", None))
        for k in range(1, min(max(high, low, 1), MAX_UNROLL) + 1):
            state = self._chain(state, steps)
            if k >= max(low, 1):
                self.edges[state].append(_Edge(exit_, None, 0, "eps", None))
        loop_end = self._chain(state, steps, beyond=True)
        self.edges[loop_end].append(_Edge(state, None, 0, "eps", None))
        return exit_

    def _empty_cost(self) -> int:
        return _search(self, [])[0]

    def transitions(self) -> list[tuple[int, int, str | None]]:
        """The skill's language as a labelled transition system from state 0 to ``final``: ``(source, target,
        label)``, label None for a silent move. Moves that cost (missing steps, iterations past ``max``) are
        left out, so another conformance tool aligning runs to it finds the same costs."""
        return [(s, e.target, e.label) for s, edges in enumerate(self.edges) for e in edges
                if e.kind in ("sync", "skip", "eps")]

    def enabled(self, states: Iterable[int]) -> tuple[set[int], set[str]]:
        """The zero-cost closure of ``states`` and the labels a step may take from it at no cost."""
        closure, todo = set(states), list(states)
        labels: set[str] = set()
        while todo:
            state = todo.pop()
            for edge in self.edges[state]:
                if edge.cost:
                    continue
                if edge.label is None:
                    if edge.target not in closure:
                        closure.add(edge.target)
                        todo.append(edge.target)
                else:
                    labels.add(edge.label)
        return closure, labels

    def advance(self, states: Iterable[int], label: str) -> set[int]:
        """States reached from the closure of ``states`` by a zero-cost step ``label``."""
        closure, _ = self.enabled(states)
        return {e.target for s in closure for e in self.edges[s] if e.label == label and not e.cost}


Move = tuple[str, int | None, int | None]  # (kind, skill step index, run position)


def _search(model: SkillModel, labels: Sequence[str]) -> tuple[int, list[Move]]:
    """Cheapest alignment of ``labels`` to ``model`` (Dijkstra over (position, state); ties prefer earlier
    synchronous moves, so equal-cost alignments come out the same way every time)."""
    n = len(labels)
    start, goal = (0, 0), (n, model.final)
    best: dict[tuple[int, int], int] = {start: 0}
    back: dict[tuple[int, int], tuple[tuple[int, int], Move]] = {}
    heap: list[tuple[int, int, int, int]] = [(0, 0, 0, 0)]
    counter = 0
    while heap:
        cost, _, pos, state = heapq.heappop(heap)
        node = (pos, state)
        if cost > best.get(node, cost):
            continue
        if node == goal:
            break
        moves: list[tuple[tuple[int, int], int, Move]] = []
        for edge in model.edges[state]:
            if edge.label is None:
                moves.append(((pos, edge.target), edge.cost, (edge.kind, edge.step, pos)))
            elif pos < n and labels[pos] == edge.label:
                moves.append(((pos + 1, edge.target), edge.cost, (edge.kind, edge.step, pos)))
        if pos < n:
            moves.append(((pos + 1, state), 1, ("extra", None, pos)))
        for target, step_cost, move in moves:
            total = cost + step_cost
            if total < best.get(target, total + 1):
                best[target] = total
                back[target] = (node, move)
                counter += 1
                heapq.heappush(heap, (total, counter, *target))
    path: list[Move] = []
    node = goal
    while node != start:
        node, move = back[node]
        path.append(move)
    path.reverse()
    return best[goal], path


@dataclass(frozen=True)
class Deviation:
    """One difference between a run and a skill. ``event_ids``: the run step's event (extra, out of order,
    repeated) or the events either side of where a missing step belongs."""

    kind: str
    label: str
    step: int | None  # skill step index (None for an extra step)
    position: int  # run step position (where a missing step belongs)
    event_ids: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        agent, action, tool = self.label.split("|")
        return {"kind": self.kind, "agent": agent, "action": action, "tool": tool or None, "step": self.step,
                "position": self.position, "event_ids": list(self.event_ids)}


@dataclass
class Conformance:
    """How one run conforms to one skill."""

    skill: str
    version: str | None
    fitness: float
    cost: int
    steps: int  # run steps aligned
    deviations: list[Deviation] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"skill": self.skill, "version": self.version, "fitness": round(self.fitness, 6), "cost": self.cost,
                "steps": self.steps, "deviations": [d.as_dict() for d in self.deviations]}


def _ids(steps: Sequence[RunStep], *positions: int) -> tuple[str, ...]:
    return tuple(steps[p].event_id for p in positions if 0 <= p < len(steps) and steps[p].event_id is not None)


def _involved(kind: str, steps: Sequence[RunStep], position: int) -> tuple[str, ...]:
    return _ids(steps, position - 1, position) if kind == "missing" else _ids(steps, position)


def for_run(result: Conformance, steps: Sequence[RunStep]) -> Conformance:
    """``result`` (computed for another run with the same step labels) with this run's event ids."""
    deviations = [Deviation(d.kind, d.label, d.step, d.position, _involved(d.kind, steps, d.position))
                  for d in result.deviations]
    return Conformance(result.skill, result.version, result.fitness, result.cost, result.steps, deviations)


def _deviations(model: SkillModel, steps: Sequence[RunStep], path: list[Move]) -> list[Deviation]:
    raw: list[Deviation] = []
    for kind, step, pos in path:
        assert pos is not None
        if kind == "missing":
            raw.append(Deviation("missing", model.labels[step], step, pos, _involved("missing", steps, pos)))
        elif kind == "repeated":
            raw.append(Deviation("repeated", steps[pos].label, step, pos, _involved("repeated", steps, pos)))
        elif kind == "extra":
            label = steps[pos].label
            twin = any(0 <= q < len(steps) and steps[q].label == label for q in (pos - 1, pos + 1))
            raw.append(Deviation("repeated" if twin else "extra", label, None, pos, _involved("extra", steps, pos)))
    missing: dict[str, list[int]] = defaultdict(list)
    for i, d in enumerate(raw):
        if d.kind == "missing":
            missing[d.label].append(i)
    out: list[Deviation | None] = list(raw)
    for i, d in enumerate(raw):
        if d.kind == "extra" and missing[d.label]:
            j = missing[d.label].pop(0)
            out[j] = None
            out[i] = Deviation("out_of_order", d.label, raw[j].step, d.position, d.event_ids)
    return [d for d in out if d is not None]


def conform(model: SkillModel, steps: Sequence[RunStep]) -> Conformance:
    """Fitness and deviations of a run (its steps) against one skill."""
    cost, path = _search(model, [s.label for s in steps])
    denominator = len(steps) + model.min_cost
    fitness = 1.0 - cost / denominator if denominator else 1.0
    return Conformance(model.name, model.version, max(0.0, fitness), cost, len(steps),
                       _deviations(model, steps, path))


def best_fit(models: Sequence[SkillModel], steps: Sequence[RunStep]) -> Conformance | None:
    """The skill the run fits best (highest fitness, then fewest deviations, then name); None without skills."""
    results = [conform(m, steps) for m in models]
    return min(results, key=lambda c: (-c.fitness, len(c.deviations), c.skill), default=None)


def precision(model: SkillModel, traces: Sequence[Sequence[str]]) -> float:
    """Escaping-edges precision of ``model`` on ``traces`` (label sequences): over every prefix the model replays
    at no cost, the share of the labels it enables there that some trace with that prefix does take. 1 = the
    skill allows nothing the runs do not show; lower = it allows more."""
    followers: dict[tuple[str, ...], set[str]] = defaultdict(set)
    weight: Counter[tuple[str, ...]] = Counter()
    for trace in traces:
        for k in range(len(trace) + 1):
            prefix = tuple(trace[:k])
            weight[prefix] += 1
            if k < len(trace):
                followers[prefix].add(trace[k])
    states: dict[tuple[str, ...], set[int]] = {(): {0}}
    allowed = escaping = 0
    for prefix in sorted(weight, key=len):
        if prefix not in states:
            if prefix[:-1] not in states:
                continue
            reached = model.advance(states[prefix[:-1]], prefix[-1])
            if not reached:
                continue
            states[prefix] = reached
        _, enabled = model.enabled(states[prefix])
        allowed += weight[prefix] * len(enabled)
        escaping += weight[prefix] * len(enabled - followers[prefix])
    return 1.0 - escaping / allowed if allowed else 1.0
