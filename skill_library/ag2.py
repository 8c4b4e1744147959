"""Skills in AG2 Classic chats: tools that find, load and instantiate skills, and a speaker selection that follows one.

- ``register_skill_tools(library, caller=..., executor=...)`` registers ``find_skills(query)``,
  ``load_skill(name)`` and ``instantiate_skill(name, parameters_json)`` on AG2 agents (the caller proposes the calls,
  the executor runs them). They serve verified skills (``Library.serves``), candidates only with
  ``include_candidates=True``. A tool never raises into the chat: bad input (an unknown skill, parameters that are not a
  JSON object or do not fit the skill, a library path that does not exist) comes back as one line starting with
  ``error:`` that names it, so the model can correct itself.
- ``skill_speaker_selection(skill, agents)`` returns a GroupChat ``speaker_selection_method`` that walks the skill's
  steps: after a step's agent speaks, the next step's agent is chosen (after the last step of a repeated group, the
  group's first step again until the group has been walked its ``repeat.min`` times); a proposed tool call goes to the agent that can
  execute it; agents that are not steps (the user proxy, the tool executor) leave the position unchanged; a step agent
  speaking out of turn re-synchronises the walk (skipping optional steps, or re-entering a repeated group); when the
  chat leaves the plan the ``fallback`` method (AG2's own ``"auto"`` by default) decides. When the next step's agent
  is not in this chat, or the plan is done, the chat ends (``None``): a workflow of several chats passes one selection
  to each and the walk continues where the agent is. The first selection records ``skill_applied`` (skill name,
  version, content hash) in the captured run's meta via ``capture.annotate_run`` when capture is installed.
- ``skill_transitions(skill, agents)`` is the softer alternative: an ``allowed_or_disallowed_speaker_transitions``
  graph (``speaker_transitions_type="allowed"``) that lets AG2's own selection choose only among the skill's next
  steps (skipping optional ones, re-entering repeated groups); agents that are not steps may speak at any point.

AG2 and capture are imported only inside these functions, so ``import skill_library`` stays light.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .agent_skills import skill_body
from .errors import SkillLibraryError, SkillNotFoundError
from .library import Library, open_library

FIND_LIMIT = 5


def _one_line(exc: BaseException) -> str:
    return "error: " + " ".join(str(exc).split())


class SkillTools:
    """The three tool functions over one library (opened on first use, so a bad path is reported in the chat).

    They serve the skills ``Library.serves`` (verified by replay, or every skill of a library that verifies none);
    candidates only with ``include_candidates``."""

    def __init__(self, library: Library | str | os.PathLike[str], *, include_candidates: bool = False):
        self._library: Library | str | os.PathLike[str] = library
        self.include_candidates = include_candidates

    def _open(self) -> Library:
        if not isinstance(self._library, Library):
            self._library = open_library(self._library)
        return self._library

    def _served(self, name: str) -> Library:
        """The library, once ``name`` is known to be served (``SkillNotFoundError`` for a candidate)."""
        library = self._open()
        if not library.serves(name, include_candidates=self.include_candidates):
            raise SkillNotFoundError(f"skill {name!r} {library.get(name)['version']} is a candidate that has not "
                                     "passed replay verification; this chat is served verified skills only")
        return library

    def find_skills(self, query: str) -> str:
        """Skills matching ``query``, best first: name, version, title, score and parameters, as JSON."""
        try:
            library = self._open()
            hits = library.search(query, limit=FIND_LIMIT, include_candidates=self.include_candidates)
            found = []
            for hit in hits:
                doc = library.get(hit.name, hit.version)
                found.append({"name": hit.name, "version": hit.version, "title": hit.title,
                              "score": round(hit.score, 3), "task_template": doc["task_template"],
                              "parameters": {n: {"type": p["type"], "required": p["required"]}
                                             for n, p in doc["parameters"].items()}})
            return json.dumps(found, ensure_ascii=False) if found else f"no skill matches {query!r}"
        except (SkillLibraryError, OSError) as exc:
            return _one_line(exc)

    def load_skill(self, name: str) -> str:
        """The skill's instructions (the ``SKILL.md`` body of its Agent Skills export)."""
        try:
            return skill_body(self._served(name).get(name))
        except (SkillLibraryError, OSError) as exc:
            return _one_line(exc)

    def instantiate_skill(self, name: str, parameters_json: str) -> str:
        """The filled plan (JSON) for ``parameters_json``, or an error listing missing or mistyped parameters."""
        try:
            params = json.loads(parameters_json) if isinstance(parameters_json, str) else parameters_json
        except json.JSONDecodeError as exc:
            return _one_line(ValueError(f"parameters_json for skill {name!r} is not valid JSON: {exc}"))
        try:
            return json.dumps(self._served(name).instantiate(name, params), ensure_ascii=False)
        except (SkillLibraryError, OSError) as exc:
            return _one_line(exc)


def register_skill_tools(library: Library | str | os.PathLike[str], *, caller: Any,
                         executor: Any | None = None, include_candidates: bool = False) -> SkillTools:
    """Register ``find_skills``, ``load_skill`` and ``instantiate_skill`` on ``caller`` (LLM) and ``executor``
    (serving candidate skills too only with ``include_candidates``)."""
    from autogen import register_function

    tools = SkillTools(library, include_candidates=include_candidates)

    def find_skills(query: str) -> str:
        """Find skills in the skill library whose task matches a query; returns names, titles and parameters."""
        return tools.find_skills(query)

    def load_skill(name: str) -> str:
        """Load a skill's instructions: its task, parameters, ordered steps and statistics."""
        return tools.load_skill(name)

    def instantiate_skill(name: str, parameters_json: str) -> str:
        """Fill a skill's parameters (a JSON object) into a concrete plan: the task text and the ordered steps."""
        return tools.instantiate_skill(name, parameters_json)

    for function in (find_skills, load_skill, instantiate_skill):
        register_function(function, caller=caller, executor=executor or caller, name=function.__name__,
                          description=function.__doc__ or "")
    return tools


def _annotate(skill: Mapping[str, Any]) -> None:
    """Record which skill steers this chat in the captured run's meta (nothing when capture is absent)."""
    try:
        import capture
    except ImportError:
        return
    capture.annotate_run(skill_applied={"name": skill["name"], "version": skill["version"],
                                        "content_hash": skill["content_hash"]})


def _repeat_group(steps: list[Mapping[str, Any]], index: int) -> range:
    """Indices of the run of consecutive steps sharing step ``index``'s repeat marker (empty without one)."""
    marker = steps[index].get("repeat")
    if marker is None:
        return range(0)
    first = last = index
    while first > 0 and steps[first - 1].get("repeat") == marker:
        first -= 1
    while last + 1 < len(steps) and steps[last + 1].get("repeat") == marker:
        last += 1
    return range(first, last + 1)


def _proposed_tools(groupchat: Any) -> list[str]:
    last = groupchat.messages[-1] if groupchat.messages else {}
    names = [call["function"]["name"] for call in last.get("tool_calls") or [] if call.get("type") == "function"]
    if last.get("function_call"):
        names.append(last["function_call"]["name"])
    return names


class SkillWalk:
    """The state of one walk through a skill's steps (see the module docstring); call it as the selection method."""

    def __init__(self, skill: Mapping[str, Any], agents: Mapping[str, Any] | Iterable[Any] = (), *,
                 fallback: str = "auto") -> None:
        self.skill = skill
        self.steps: list[Mapping[str, Any]] = list(skill["steps"])
        self.agents = dict(agents) if isinstance(agents, Mapping) else {a.name: a for a in agents}
        self.fallback = fallback
        self.position = -1  # index of the last step performed
        self.expected: int | None = None
        self.left_plan = False
        self.history: list[tuple[str, int | None]] = []  # (speaker chosen, step index or None when not a step)
        self.rounds: dict[int, int] = {}  # first step of a repeated group -> times its last step was performed
        self._annotated = False
        self._names = {s["agent"] for s in self.steps}
        self._step_names = {agent.name: step for step, agent in self.agents.items()}
        self.__name__ = f"skill:{skill['name']}"  # capture names a selection method by its __name__

    def __call__(self, last_speaker: Any, groupchat: Any) -> Any:
        try:
            if not self._annotated:
                self._annotated = True
                _annotate(self.skill)
            return self._select(last_speaker, groupchat)
        except Exception:  # noqa: BLE001 - a selection method must never break the chat
            self.left_plan = True
            return self.fallback

    def _agent(self, name: str, groupchat: Any) -> Any | None:
        chosen = self.agents.get(name)
        present = {a.name: a for a in groupchat.agents}
        if chosen is not None and chosen in groupchat.agents:
            return chosen
        return present.get(name)

    def _advance(self, speaker: str) -> bool:
        """Move the position to the step ``speaker`` just performed (counting a repeated group's rounds at its last
        step); ``False`` when no step fits."""
        found = self._performed(speaker)
        if found is None:
            return False
        self.position = found
        group = _repeat_group(self.steps, found)
        if group and found == group[-1]:
            self.rounds[group[0]] = self.rounds.get(group[0], 0) + 1
        return True

    def _performed(self, speaker: str) -> int | None:
        """The step ``speaker`` just performed: the one expected, else the next one it can be (past optional steps
        and the rest of the current repeated group), else a step of the current repeated group (re-entered)."""
        if self.expected is not None and self.steps[self.expected]["agent"] == speaker:
            return self.expected
        group = _repeat_group(self.steps, self.position) if self.position >= 0 else range(0)
        forward = [j for j in range(self.position + 1, len(self.steps)) if self.steps[j]["agent"] == speaker]
        if forward and all(self.steps[k].get("optional") or k in group for k in range(self.position + 1, forward[0])):
            return forward[0]
        back = [j for j in group if self.steps[j]["agent"] == speaker]
        return back[0] if back else None

    def _following(self) -> int:
        """The step after the position: the first of its repeated group again while the group has been walked fewer
        than ``repeat.min`` times, else the next one."""
        group = _repeat_group(self.steps, self.position) if self.position >= 0 else range(0)
        if group and self.position == group[-1]:
            minimum = int(self.steps[group[0]]["repeat"].get("min") or 1)
            if self.rounds.get(group[0], 0) < minimum:
                return group[0]
        return self.position + 1

    def _select(self, last_speaker: Any, groupchat: Any) -> Any:
        name = getattr(last_speaker, "name", None)
        speaker = self._step_names.get(name, name)
        if speaker in self._names and not self.left_plan and not self._advance(speaker):
            self.left_plan = True
        if self.left_plan:
            return self.fallback
        if tools := _proposed_tools(groupchat):
            runner = next((a for a in groupchat.agents if a.can_execute_function(tools)), None)
            self.history.append((getattr(runner, "name", self.fallback), None))
            return runner if runner is not None else self.fallback
        following = self._following()
        while following < len(self.steps):
            agent = self._agent(self.steps[following]["agent"], groupchat)
            if agent is not None:
                self.expected = following
                self.history.append((agent.name, following))
                return agent
            if not self.steps[following].get("optional"):
                return None  # the next step's agent is in another chat: this chat's part of the plan is done
            following += 1
        return None


def skill_speaker_selection(skill: Mapping[str, Any], agents: Mapping[str, Any] | Iterable[Any] = (), *,
                            fallback: str = "auto") -> Callable[[Any, Any], Any]:
    """A GroupChat ``speaker_selection_method`` following ``skill``'s steps (a skill document, e.g. from
    ``Library.get``); ``agents`` maps step agent names to AG2 agents (or lists agents, matched by name)."""
    return SkillWalk(skill, agents, fallback=fallback)


def skill_transitions(skill: Mapping[str, Any], agents: Iterable[Any]) -> dict[Any, list[Any]]:
    """Allowed speaker transitions of a group of ``agents`` (matched to steps by name) that follow ``skill``."""
    group = list(agents)
    by_name = {a.name: a for a in group}
    steps = [s for s in skill["steps"] if s["agent"] in by_name]
    plumbing = [a for a in group if a.name not in {s["agent"] for s in steps}]
    allowed: dict[Any, list[Any]] = {a: [] for a in group}
    for index, step in enumerate(steps):
        targets = []
        following = index + 1
        while following < len(steps):  # the next step, and past it while the steps skipped are optional
            targets.append(by_name[steps[following]["agent"]])
            if not steps[following].get("optional"):
                break
            following += 1
        group_steps = _repeat_group(steps, index)
        if group_steps and index == group_steps[-1]:
            targets.append(by_name[steps[group_steps[0]]["agent"]])
        speaker = by_name[step["agent"]]
        allowed[speaker] = list(dict.fromkeys([*allowed[speaker], *targets, *plumbing]))
    for agent in plumbing:
        allowed[agent] = [a for a in group if a is not agent]
    return allowed
