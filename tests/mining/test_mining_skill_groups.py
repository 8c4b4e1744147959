"""Skill groups (behaviour x task family x mode), plumbing agents, naming: hand-made data with known answers."""
import random

from skill_pipeline.mining.compose import MiningParams, build_patterns, build_templates, memory_loader
from skill_pipeline.mining.naming import skill_name, skill_title
from skill_pipeline.mining.roles import step_action
from skill_pipeline.mining.skill_groups import SkillGroup, assign_to_groups, group_runs, labels_of
from skill_pipeline.mining.task_families import constant_words, normalise_description
from skill_pipeline.mining.tokens import token_events

ENGINEER_PATH = ["agent_call:engineer", "agent_call:engineer_response_formatter", "code_exec:executor:ok",
                 "tool_call:control:record_status", "tool_call:terminator:terminate_session"]
FAMILIES = {
    "plot": lambda r: f"Plot {r.choice(['sin(x)', 'cos(x)', 'x**2 - 1'])} over [{r.randint(-5, 0)}, "
                      f"{r.randint(1, 9)}] and save the figure as data/p_{r.randint(0, 999)}.png",
    "fit": lambda r: f"Fit a {r.choice(['linear', 'quadratic'])} model to data/m_{r.randint(0, 999)}.csv "
                     f"and write the fitted parameters to data/f_{r.randint(0, 999)}.txt",
    "stat": lambda r: f"Compute the {r.choice(['mean', 'median'])} of column {r.choice(['flux', 'mass'])} in "
                      f"data/c_{r.randint(0, 999)}.csv and save it to data/s_{r.randint(0, 999)}.txt",
}


def _runs(n_per_family: int = 8, seed: int = 3) -> tuple[dict, dict, dict, dict]:
    rng = random.Random(seed)
    seqs, descs, modes, runs = {}, {}, {}, {}
    for family, make in sorted(FAMILIES.items()):
        for i in range(n_per_family):
            rid = f"{family}-{i:02d}"
            seqs[rid], descs[rid], modes[rid] = list(ENGINEER_PATH), make(rng), "one_shot"
            runs[rid] = {"run_id": rid, "mode": "one_shot", "status": "completed", "task_description": descs[rid]}
    return seqs, descs, modes, runs


def _templates(groups, seqs, runs):
    """The skills the pipeline's composition mines for these groups (no events: steps come from the tokens)."""
    return build_templates(groups, build_patterns(groups, seqs, runs), runs, seqs, {}, {}, memory_loader({}),
                           MiningParams(min_support=1))


def test_one_behaviour_with_three_task_families_splits_into_three_templates():
    seqs, descs, modes, runs = _runs()
    groups = group_runs(seqs, descs, modes, {r: "success" for r in seqs})
    assert sorted(sorted({r.split("-")[0] for r in g.run_ids}) for g in groups) == [["fit"], ["plot"], ["stat"]]
    assert all(g.size == 8 and g.mode == "one_shot" for g in groups)
    skills = {t.name: t.candidate for t in _templates(groups, seqs, runs)}
    assert sorted(skills) == ["one_shot_compute_quantity", "one_shot_fit_model", "one_shot_plot_expression"]
    assert skills["one_shot_plot_expression"]["task_template"] == \
        "Plot {expression} over [{x_min}, {x_max}] and save the figure as {output_file}"
    assert skills["one_shot_fit_model"]["task_template"] == \
        "Fit a {model} model to {input_file} and write the fitted parameters to {output_file}"
    assert skills["one_shot_compute_quantity"]["task_template"] == \
        "Compute the {quantity} of column {column} in {input_file} and save it to {output_file}"
    assert skills["one_shot_fit_model"]["title"] == "Fit a model to an input file"
    assert [s["action"] for s in skills["one_shot_plot_expression"]["steps"]] == [
        "write code", "format code", "execute code", "record status", "terminate"]


def test_modes_split_and_failed_runs_fold_into_their_skill():
    seqs, descs, modes, _ = _runs()
    outcomes = {r: "success" for r in seqs}
    for i in range(3):  # planning_and_control plot runs: a different skill of the same family
        rid = f"pc-{i}"
        seqs[rid] = ["agent_call:planner", "tool_call:plan_recorder:record_plan", *ENGINEER_PATH]
        descs[rid], modes[rid], outcomes[rid] = f"Plot sin(x) over [0, {i + 2}] and save the figure as d/q{i}.png", \
            "planning_and_control", "success"
    for i in range(2):  # rate-limited one_shot fit runs cut after the engineer: fold into the fit skill
        rid = f"fit-cut-{i}"
        seqs[rid], descs[rid], modes[rid], outcomes[rid] = ["agent_call:engineer"], \
            f"Fit a linear model to data/x{i}.csv and write the fitted parameters to data/y{i}.txt", "one_shot", "failure"
    labels = labels_of(group_runs(seqs, descs, modes, outcomes, min_group_size=3))
    assert labels["fit-cut-0"] == labels["fit-cut-1"] == labels["fit-00"]
    assert labels["pc-0"] == labels["pc-2"] != labels["plot-00"]
    assert len(set(labels.values())) == 4


def test_group_ids_and_names_are_deterministic_and_order_free():
    seqs, descs, modes, _ = _runs()
    first = [(g.group_id, g.run_ids) for g in group_runs(seqs, descs, modes)]
    reordered = {k: seqs[k] for k in sorted(seqs, reverse=True)}
    again = [(g.group_id, g.run_ids) for g in group_runs(reordered, dict(reversed(descs.items())), modes)]
    assert first == again and all(gid.startswith("g") and len(gid) == 13 for gid, _ in first)
    title = skill_title("Summarise {n_papers} recent papers on {topic} in {report_file}", {"n_papers": "integer"})
    assert title == "Summarise recent papers on a topic in a report file"
    assert skill_name("planning_and_control", title, "researcher") == "planning_and_control_summarise_papers"
    assert skill_name("one_shot", "", "researcher") == "one_shot_researcher"


def test_description_normalisation():
    text = "Plot exp(-x**2) over [-3, 5.5] and save 'fig one' as data/plot_ab12.png"
    assert normalise_description(text) == "Plot <expr> over [<num>, <num>] and save <str> as <path>"
    assert constant_words("Compute the 90th percentile of column flux in cat.csv") == {
        "compute", "percentile", "column", "flux"}
    assert constant_words("Plotting the curves") == constant_words("plot a curve") == {"plot", "curve"}


def _paraphrased_runs(seed: int = 5):
    """Three requests, each asked in three wordings: two make a figure (same steps, .png), one a table (.csv)."""
    rng = random.Random(seed)
    columns, regions = ["flux", "redshift", "stellar mass", "colour"], ["stripe", "deep field", "polar cap"]
    requests = {
        "chart": (["Draw a line chart of {v} from data/cat_{n}.csv", ("Make a plot showing how {v} varies, using "
                   "data/cat_{n}.csv"), "I need a figure of {v} taken from data/cat_{n}.csv"], columns, "png"),
        "table": (["Tabulate the mean of {v} in data/cat_{n}.csv", ("Give me a table with the average {v} of "
                   "data/cat_{n}.csv"), "Summarise {v} from data/cat_{n}.csv as a table of means"], columns, "csv"),
        "skymap": (["Render a sky map of the {v} region", "Produce an all-sky image around the {v}",
                    "Show the {v} area on a projected map"], regions, "png"),
    }
    seqs, descs, outputs, truth = {}, {}, {}, {}
    for request, (wordings, values, output) in requests.items():
        for i in range(30):
            rid = f"{request}-{i:02d}"
            seqs[rid] = list(ENGINEER_PATH) if rng.random() > 0.1 else [*ENGINEER_PATH[:2], *ENGINEER_PATH[1:]]
            descs[rid] = wordings[i % 3].format(v=rng.choice(values), n=rng.randint(0, 99))
            outputs[rid], truth[rid] = [output], request
    return seqs, descs, outputs, truth


def test_paraphrases_are_one_skill_outputs_split_behaviour_and_other_requests_stay_apart():
    seqs, descs, outputs, truth = _paraphrased_runs()
    groups = group_runs(seqs, descs, dict.fromkeys(seqs, "one_shot"), None, outputs)
    found = sorted((sorted({truth[r] for r in g.run_ids}), g.size) for g in groups)
    assert found == [(["chart"], 30), (["skymap"], 30), (["table"], 30)]
    assert {g.wordings for g in groups} == {3}


def test_a_detour_any_request_may_take_does_not_split_a_behaviour():
    seqs, descs, outputs, _truth = _paraphrased_runs()
    for rid in list(seqs)[::4]:  # an installer detour in a quarter of the runs, whatever was asked
        seqs[rid] = [*seqs[rid][:3], "agent_call:installer", "code_exec:executor:ok", *seqs[rid][3:]]
    groups = group_runs(seqs, descs, dict.fromkeys(seqs, "one_shot"), None, outputs)
    assert sorted(g.size for g in groups) == [30, 30, 30]


def _ev(order, etype, agent, subtype=None, **kw):
    return {"run_id": "r", "seq": order, "execution_order": order, "event_type": etype, "event_subtype": subtype,
            "agent_name": agent, "status": "completed", "meta": {}, "inputs": {}, **kw}


def test_plumbing_agents_dropped_and_tools_attributed_to_the_caller():
    events = [
        _ev(1, "agent_call", "chat_manager", "start"),
        _ev(2, "agent_call", "control", "start"), _ev(3, "llm_call", "control"),
        _ev(4, "agent_call", "_Group_Tool_Executor", "start"),
        _ev(5, "tool_call", "_Group_Tool_Executor", "start", inputs={"name": "record_status"}),
        _ev(6, "agent_call", "engineer", "start"),
        _ev(7, "agent_call", "executor", "start"), _ev(8, "code_exec", "executor", meta={"exit_code": 0}),
        _ev(9, "agent_call", "_Group_Tool_Executor", "start"),
        _ev(10, "tool_call", "_Group_Tool_Executor", "start", inputs={"name": "terminate_session"},
            meta={"caller": "terminator"}),
        _ev(11, "agent_call", "_User", "start"),
    ]
    assert [t for t, _ in token_events(events)] == [
        "tool_call:control:record_status", "agent_call:engineer", "code_exec:executor:ok",
        "tool_call:terminator:terminate_session"]
    assert step_action("tool_call", "control", "record_status") == "record status"
    assert step_action("agent_call", "planner_response_formatter") == "format plan"
    assert step_action("agent_call", "my_agent") == "act as my agent"


def test_a_lone_task_keeps_its_own_group_with_typed_slots():
    seqs, descs, modes, runs = _runs(n_per_family=4)
    for rid in [r for r in seqs if r.startswith("plot-") and r != "plot-00"] + [r for r in seqs if r.startswith("stat")]:
        del seqs[rid], descs[rid], modes[rid], runs[rid]
    groups = group_runs(seqs, descs, modes)
    assert sorted(g.size for g in groups) == [1, 4]
    lone = next(g for g in groups if g.size == 1)
    template = _templates([lone], seqs, runs)[0]
    skill = template.candidate
    assert skill["task_template"] == "Plot {expression} over [{x_min}, {x_max}] and save the figure as {output_file}"
    # one run's request is that run's literal: the title says what the skill does, from its behaviour
    assert (skill["title"], skill["name"]) == ("Write code and execute code", "one_shot_write_code")
    assert set(template.slot_values["plot-00"]) == {"expression", "x_min", "x_max", "output_file"}


def test_runs_without_tokens_mode_or_description_still_get_a_group():
    groups = group_runs({"a": [], "b": ["agent_call:x"], "c": ["agent_call:x"]}, {"a": "Run it", "b": "Run it"},
                        None, {"a": "success", "b": "failure", "c": "failure"})
    assert [(g.run_ids, g.mode, g.medoid) for g in groups] == [(["a", "b"], "unknown", ["agent_call:x"]),
                                                               (["c"], "unknown", ["agent_call:x"])]


def test_new_runs_are_assigned_to_their_mode_family_and_behaviour():
    seqs, descs, modes, _ = _runs()
    groups = group_runs(seqs, descs, modes)
    fit = next(g for g in groups if "fit" in g.family_words)
    new_fit = "Fit a quadratic model to data/new.csv and write the fitted parameters to data/out.txt"
    assert assign_to_groups(groups, ENGINEER_PATH, new_fit, "one_shot") == (fit.group_id, 0.0)
    group_id, distance = assign_to_groups(groups, ["agent_call:engineer"], new_fit, "one_shot")
    assert group_id == fit.group_id and distance == 0.8
    assert assign_to_groups(groups, ENGINEER_PATH, new_fit, "planning_and_control") is None


def test_members_outside_the_slot_inference_sample_get_values_from_their_own_wording():
    """Slot inference reads only the oldest members; a later member asked in a paraphrase reads its values from the
    sampled run of its wording nearest its text, not from the main wording's template alone (which it never
    matches)."""
    rng = random.Random(11)
    topics = ["dark energy", "galaxy mergers", "cosmic voids", "fast radio bursts", "exoplanet atmospheres"]
    wordings = [lambda n, t: f"Brainstorm {n} ideas on {t} and rank them",
                lambda n, t: f"Come up with {n} research directions for {t}, then pick the best"]
    seqs, runs, truth = {}, {}, {}
    for i in range(40):
        rid, n, topic = f"idea-{i:02d}", rng.randint(3, 9), rng.choice(topics)
        task = wordings[i % 3 == 2](n, topic)  # a third of the runs in the paraphrase
        seqs[rid], truth[rid] = list(ENGINEER_PATH), {str(n), topic}
        runs[rid] = {"run_id": rid, "mode": "idea_generation", "status": "completed", "task_description": task}
    group = SkillGroup("g1", "idea_generation", "f1", ["brainstorm", "idea"], "b1", list(ENGINEER_PATH),
                       sorted(runs), successes=40)
    (template,) = build_templates([group], build_patterns([group], seqs, runs), runs, seqs,
                                  {r: i for i, r in enumerate(sorted(runs))}, {}, memory_loader({}),
                                  MiningParams(template_sample_runs=12))
    assert template.candidate["task_template"] == "Brainstorm {n_ideas} ideas on {topic} and rank them"
    outside = sorted(runs)[12:]
    paraphrased = [r for r in outside if runs[r]["task_description"].startswith("Come up")]
    assert paraphrased
    for rid in outside:
        assert set(template.slot_values[rid].values()) == truth[rid], rid


def test_a_small_skill_asking_a_larger_skills_request_takes_its_parameters_and_title():
    """Two runs that happen to ask about the same column and statistic still asked about a column and a statistic:
    the larger skill of the same request and mode (another behaviour) knows them as parameters, so the title repeats
    no run's value. A larger skill of another mode is not consulted (a mode partition would not see it)."""
    rng = random.Random(5)
    seqs, runs = {}, {}
    for i in range(8):
        rid = f"big-{i}"
        seqs[rid], runs[rid] = list(ENGINEER_PATH), {"run_id": rid, "mode": "human_in_the_loop",
                                                     "status": "completed", "task_description": FAMILIES["stat"](rng)}
    small_tasks = ["Compute the mean of column velocity in data/c_1.csv and save it to data/s_1.txt",
                   "Compute the mean of column velocity in data/c_2.csv and save it to data/s_2.txt"]
    for i, task in enumerate(small_tasks):
        rid = f"small-{i}"
        seqs[rid], runs[rid] = list(ENGINEER_PATH), {"run_id": rid, "mode": "human_in_the_loop",
                                                     "status": "completed", "task_description": task}
    groups = [SkillGroup("big", "human_in_the_loop", "f", ["compute"], "b", list(ENGINEER_PATH),
                         sorted(r for r in runs if r.startswith("big")), successes=8),
              SkillGroup("small", "human_in_the_loop", "f", ["compute"], "b", list(ENGINEER_PATH),
                         ["small-0", "small-1"], successes=2)]
    big, small = _templates(groups, seqs, runs)
    assert big.candidate["task_template"] == \
        "Compute the {quantity} of column {column} in {input_file} and save it to {output_file}"
    assert small.candidate["task_template"] == big.candidate["task_template"]
    assert small.candidate["title"] == big.candidate["title"] == "Compute the quantity of a column in an input file"
    assert small.name.startswith("human_in_the_loop_compute_quantity_")  # one title: group ids tell them apart
    assert small.slot_values["small-1"] == {"quantity": "mean", "column": "velocity", "input_file": "data/c_2.csv",
                                            "output_file": "data/s_2.txt"}
    assert small.candidate["parameters"]["column"]["examples"] == ["velocity"]
    assert small.candidate["parameters"]["column"]["required"]
    for param in small.candidate["parameters"].values():  # a member's own value is always allowed
        assert "enum" not in param or set(param["examples"]) <= set(param["enum"])
    # The slot cache keeps what slot inference gave, not what the larger skill lent: mined again without the larger
    # skill, the small one is what mining it from scratch gives.
    cache = {t.cache_key: t.inferred for t in (big, small)}
    (cached,) = build_templates(groups[1:], build_patterns(groups[1:], seqs, runs), runs, seqs, {}, {},
                                memory_loader({}), MiningParams(min_support=1), cache)
    (scratch,) = _templates(groups[1:], seqs, runs)
    assert cached.reused and "velocity" in cached.candidate["task_template"]
    assert (cached.candidate, cached.slot_values) == (scratch.candidate, scratch.slot_values)
    for rid in groups[0].run_ids:
        runs[rid]["mode"] = "one_shot"
    groups[0].mode = "one_shot"
    _, alone = _templates(groups, seqs, runs)
    assert "velocity" in alone.candidate["task_template"]
