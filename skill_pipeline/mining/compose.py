"""The one composition of the mining steps: skill groups -> patterns -> templates with statistics and names.

The Dagster assets (one step per asset, reading and writing the warehouse in between), ``skillmine mine`` (which
runs those assets), the tests and every benchmark call these functions; :func:`mine` chains them for callers that
hold everything in memory. What may differ between callers is only a parameter: the clustering sample size, the
number of member runs whose full events feed slot inference, and a cache of slot inferences already done.
"""

import dataclasses
import hashlib
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from skill_pipeline.lib import candidates, pattern_json
from skill_pipeline.lib.slot_values import PLACEHOLDER, values_from_task

from .naming import skill_name, skill_title
from .patterns import Pattern
from .skill_groups import SkillGroup, group_runs
from .skills import group_pattern, group_skill, unique_names
from .stats import outcome
from .templates import shared_parameters, template_statistics, wording_templates

Events = Mapping[str, Sequence[Mapping[str, Any]]]
# run ids -> (their events, with tool-call payloads; their file rows): how the slot-inference sample is read.
SampleLoader = Callable[[list[str]], tuple[Events, Sequence[Mapping[str, Any]]]]
# cache key -> (library candidate, per-run slot values of the sample): slot inferences already done.
SlotCache = Mapping[str, tuple[dict[str, Any], dict[str, dict[str, str]]]]


@dataclass(frozen=True)
class MiningParams:
    """The settings that shape what is mined (the same defaults for every caller)."""

    sample_size: int = 2000  # reduced sequences clustered exactly before the others are assigned to medoids
    template_sample_runs: int = 100  # oldest member runs whose full events feed slot inference per skill
    granularity: str = "standard"  # token granularity (``tokens.GRANULARITIES``)
    min_support: int = 1  # member runs a skill needs to be published (a skill must also have worked once)


@dataclass
class SkillTemplate:
    """One mined skill: the library candidate plus what the warehouse keeps beside it."""

    group_id: str
    candidate: dict[str, Any]
    success_rate: float | None  # successes / finished members (None: none finished)
    slot_values: dict[str, dict[str, str]]  # every member run -> its parameter values
    cache_key: str
    # The candidate and the sample's slot values as slot inference gave them, before any step that looks at other
    # skills (adopting a larger skill's request, unique names): what the slot cache keeps, as the others change.
    inferred: tuple[dict[str, Any], dict[str, dict[str, str]]]
    reused: bool = False
    publishable: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.candidate["name"])

    @property
    def support(self) -> int:
        return int(self.candidate["statistics"]["support"])


@dataclass
class MiningResult:
    groups: list[SkillGroup]
    patterns: dict[str, Pattern]
    templates: list[SkillTemplate]

    def publishable(self) -> list[dict[str, Any]]:
        """The candidates a release publishes, in the library asset's order (support, then name)."""
        chosen = [t for t in self.templates if t.publishable]
        return [t.candidate for t in sorted(chosen, key=lambda t: (-t.support, t.name))]


def memory_loader(events_by_run: Events, files: Sequence[Mapping[str, Any]] = ()) -> SampleLoader:
    """A :data:`SampleLoader` over events and files already in memory (tests, small callers)."""
    def load(run_ids: list[str]) -> tuple[Events, Sequence[Mapping[str, Any]]]:
        wanted = set(run_ids)
        return ({r: events_by_run[r] for r in run_ids if r in events_by_run},
                [f for f in files if str(f.get("run_id")) in wanted])
    return load


def build_groups(sequences: Mapping[str, Sequence[str]], runs: Mapping[str, Mapping[str, Any]],
                 params: MiningParams, outputs: Mapping[str, Collection[str]] | None = None) -> list[SkillGroup]:
    """Skill groups over every run with a sequence (``skill_groups.group_runs``); ``outputs``: file types each run
    wrote."""
    ids = sorted(sequences)
    return group_runs(sequences, {r: str(runs.get(r, {}).get("task_description") or "") for r in ids},
                      {r: runs.get(r, {}).get("mode") for r in ids}, {r: outcome(runs.get(r, {})) for r in ids},
                      outputs, sample_size=params.sample_size)


def build_patterns(groups: Sequence[SkillGroup], sequences: Mapping[str, Sequence[str]],
                   runs: Mapping[str, Mapping[str, Any]]) -> dict[str, Pattern]:
    """Each group's step pattern, defined by its successful runs (``skills.group_pattern``)."""
    return {g.group_id: group_pattern(g, sequences, runs) for g in groups}


def template_sample(group: SkillGroup, first_seq: Mapping[str, int], size: int) -> list[int]:
    """Positions (in member order) of the ``size`` oldest members: new runs rarely change the sample, so the
    slot inference is reused while its inputs stay the same."""
    members = group.run_ids
    oldest = sorted(range(len(members)), key=lambda i: (first_seq.get(members[i], 0), members[i]))[:size]
    return sorted(oldest)


def cache_key(pattern: Pattern, sample_runs: Sequence[str], last_seq: Mapping[str, int]) -> str:
    """What slot inference depends on: the pattern's step structure and the sampled runs (with their last seq)."""
    shape = [[s.token, s.optional, s.block] for s in pattern.steps]
    blocks = [[b.start, b.end, b.min, b.max, b.until] for b in pattern.blocks]
    text = json.dumps([shape, blocks, [[r, last_seq.get(r)] for r in sample_runs]],
                      default=lambda v: v.item())  # numpy scalars of a pattern not yet stored as JSON
    return hashlib.sha256(text.encode()).hexdigest()


def build_template(group: SkillGroup, pattern: Pattern, runs: Mapping[str, Mapping[str, Any]],
                   sequences: Mapping[str, Sequence[str]], first_seq: Mapping[str, int],
                   last_seq: Mapping[str, int], load_sample: SampleLoader, params: MiningParams,
                   cache: SlotCache | None = None) -> SkillTemplate:
    """One group's skill. Slot inference reads the ``params.template_sample_runs`` oldest members (they are the
    skill's ``provenance.source_runs``, so a document stays small however many runs a skill has); statistics
    cover every member (``statistics.support`` counts them)."""
    positions = template_sample(group, first_seq, params.template_sample_runs)
    sample_ids = [group.run_ids[i] for i in positions]
    key = cache_key(pattern, sample_ids, last_seq)
    reused = cache is not None and key in cache
    if reused:
        candidate, sampled = cache[key]
    else:
        events, files = load_sample(sample_ids)
        mined = group_skill(dataclasses.replace(group, run_ids=sample_ids), pattern_json.subset(pattern, positions), runs,
                            events, files, granularity=params.granularity)
        candidate, sampled = candidates.to_library_candidate(mined), mined.get("slot_values") or {}
    members = [runs[r] for r in group.run_ids]
    stats = template_statistics(pattern, members, {}, sequences)
    candidate = candidates.with_statistics(candidate, stats, sorted(sample_ids))
    names = set(PLACEHOLDER.findall(candidate["task_template"]))
    tasks = {r: str(runs[r].get("task_description") or "") for r in group.run_ids}
    known = [candidate["task_template"], *wording_templates({r: tasks[r] for r in sample_ids}, sampled, names)]
    values = {r: sampled.get(r) or member_values(known, names, tasks[r]) for r in sorted(group.run_ids)}
    return SkillTemplate(group.group_id, candidate, stats["success_rate"], values, key, (dict(candidate), sampled),
                         reused=reused)


def member_values(templates: Sequence[str], names: Collection[str], task: str) -> dict[str, str]:
    """A member's parameter values from the template of the wording nearest its own: the one that reads the most of
    the skill's parameters from its text (the main template first, then the sampled runs' wordings, most common
    first), so a member outside the slot-inference sample asked in a paraphrase still gets its values."""
    best: dict[str, str] = {}
    for template in templates:
        found = {k: v for k, v in values_from_task(template, task).items() if k in names}
        if len(found) > len(best):
            best = found
        if len(best) == len(names):
            break
    return best


def _short_values(found: Mapping[str, str], max_words: int = 4) -> bool:
    return all(v.strip() and len(v.split()) <= max_words for v in found.values())


def adopt_shared_requests(templates: Sequence[SkillTemplate], runs: Mapping[str, Mapping[str, Any]]) -> None:
    """A skill takes (in place) the task template and title of a larger skill of its mode that asks the same
    request: the same template, or one with more parameters that reads this skill's whole template as short values. Two runs that happened to ask
    about the same column ("Compute the mean of column velocity in ...") still asked about a column, and one run's
    numbers are not its only parameters; the request's wording, parameters and title are then the ones its other
    runs showed (whatever their behaviour), and every member's values are read with that template. Only within a
    mode: skills never cross modes, so a mode partition mines the same skills as the whole warehouse."""
    donors = sorted((t for t in templates if PLACEHOLDER.search(t.candidate["task_template"])
                     and not t.candidate["task_template"].startswith("{")), key=lambda t: (-t.support, t.name))
    for skill in templates:
        own = skill.candidate["task_template"]
        own_names = set(PLACEHOLDER.findall(own))
        for donor in donors:
            shared = donor.candidate["task_template"]
            names = set(PLACEHOLDER.findall(shared))
            if donor.support <= skill.support:
                break
            if donor.candidate.get("category") != skill.candidate.get("category"):
                continue  # mining by mode sees one mode at a time: a release must not depend on the others
            found = values_from_task(shared, own)
            if shared == own or (len(names) > len(own_names) and set(found) == names and _short_values(found)):
                _adopt(skill, donor, runs)
                break


def _adopt(skill: SkillTemplate, donor: SkillTemplate, runs: Mapping[str, Mapping[str, Any]]) -> None:
    """``skill`` asks ``donor``'s request: its template, parameters (values from its own members), title and name."""
    shared, old = donor.candidate["task_template"], set(PLACEHOLDER.findall(skill.candidate["task_template"]))
    names = set(PLACEHOLDER.findall(shared))
    values = {r: {**{k: v for k, v in skill.slot_values.get(r, {}).items() if k not in old},
                  **member_values([shared], names, str(runs[r].get("task_description") or ""))}
              for r in skill.slot_values}
    params = {k: p for k, p in skill.candidate["parameters"].items() if k not in old}
    params.update(shared_parameters({k: donor.candidate["parameters"][k] for k in names}, list(values.values())))
    kinds = {k: str(p.get("type")) for k, p in params.items()}
    title = skill_title(shared, kinds) or skill.candidate["title"]
    skill.candidate = {**skill.candidate, "task_template": shared, "parameters": params, "title": title,
                       "name": skill_name(skill.candidate.get("category"), title, skill.name)}
    skill.slot_values = values


def build_templates(groups: Sequence[SkillGroup], patterns: Mapping[str, Pattern],
                    runs: Mapping[str, Mapping[str, Any]], sequences: Mapping[str, Sequence[str]],
                    first_seq: Mapping[str, int], last_seq: Mapping[str, int], load_sample: SampleLoader,
                    params: MiningParams, cache: SlotCache | None = None) -> list[SkillTemplate]:
    """Every group's skill (largest pattern first), names made unique, publishability decided: a skill is
    published when the library schema accepts it (it has steps), it has ``params.min_support`` runs and at least
    one of them succeeded (a skill is a way of doing the task that worked)."""
    by_id = {g.group_id: g for g in groups}
    order = sorted(patterns, key=lambda gid: (-patterns[gid].support, gid))
    templates = [build_template(by_id[gid], patterns[gid], runs, sequences, first_seq, last_seq, load_sample,
                                params, cache) for gid in order]
    adopt_shared_requests(templates, runs)
    unique_names([t.candidate for t in templates])
    for t in templates:
        t.errors = candidates.library_errors(t.candidate)
        t.publishable = not t.errors and t.support >= params.min_support and bool(t.success_rate)
    return templates


def mine(sequences: Mapping[str, Sequence[str]], runs: Mapping[str, Mapping[str, Any]],
         first_seq: Mapping[str, int], last_seq: Mapping[str, int], load_sample: SampleLoader,
         params: MiningParams | None = None, cache: SlotCache | None = None,
         outputs: Mapping[str, Collection[str]] | None = None) -> MiningResult:
    """Groups, patterns and skills of the runs: the steps the pipeline's assets run one by one, chained."""
    params = params or MiningParams()
    groups = build_groups(sequences, runs, params, outputs)
    patterns = build_patterns(groups, sequences, runs)
    templates = build_templates(groups, patterns, runs, sequences, first_seq, last_seq, load_sample, params, cache)
    return MiningResult(groups, patterns, templates)
