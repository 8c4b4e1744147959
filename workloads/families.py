"""Task families: parameterised task templates, their parameter generators and the plan each mode follows.

A family is what a skill miner should rediscover: one task template (``template_id`` + text with ``{slots}``),
parameters that vary run to run, and the agents and artefacts its runs involve. Templates and ids are ground
truth: they are written to the ground-truth file only, never to the capture store.
"""

import random
import string
from collections.abc import Callable
from dataclasses import dataclass

ENGINEER, RESEARCHER, IDEAS = "engineer", "researcher", "ideas"


@dataclass(frozen=True)
class PlanStep:
    """One sub-task of a plan: the agent that does it, its text, and the family artefact it produces."""

    agent: str
    text: str
    producer: str


@dataclass(frozen=True)
class TaskFamily:
    """A parameterised task and how the reference system carries it out."""

    name: str
    template_id: str
    template: str
    kind: str  # ENGINEER, RESEARCHER or IDEAS: which agent cycle does the work
    make_params: Callable[[random.Random], dict]
    plan: tuple[PlanStep, ...]

    @property
    def slots(self) -> tuple[str, ...]:
        """The template's parameter names, in order."""
        return tuple(name for _, name, _, _ in string.Formatter().parse(self.template) if name)

    def task(self, params: dict) -> str:
        """The task text of one run."""
        return self.template.format(**params)


def _slug(rng: random.Random, n: int = 6) -> str:
    return "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(n))


def _plot_params(rng: random.Random) -> dict:
    function = rng.choice(["sin(x)", "cos(x)", "exp(-x**2)", "x**3 - 2*x", "log(1 + x**2)", "tanh(x)",
                           "x*sin(x)", "sqrt(1 + x**2)"])
    x_min = rng.choice([-10, -5, -3, -2, -1, 0])
    x_max = x_min + rng.choice([1, 2, 4, 5, 8, 10, 20])
    return {"function": function, "x_min": x_min, "x_max": x_max, "file_name": f"data/plot_{_slug(rng)}.png"}


def _fit_params(rng: random.Random) -> dict:
    name = rng.choice(["measurements", "light_curve", "growth", "spectrum", "calibration", "decay"])
    tag = _slug(rng, 4)
    return {"model": rng.choice(["linear", "quadratic", "exponential"]), "data_file": f"data/{name}_{tag}.csv",
            "output_file": f"data/fit_{name}_{tag}.txt", "n_points": rng.randrange(20, 200),
            "data_seed": rng.randrange(1, 10_000)}


def _statistic_params(rng: random.Random) -> dict:
    column = rng.choice(["flux", "redshift", "mass", "temperature", "luminosity", "velocity"])
    tag = _slug(rng, 4)
    return {"statistic": rng.choice(["mean", "median", "standard deviation", "90th percentile"]),
            "column": column, "data_file": f"data/catalogue_{tag}.csv", "output_file": f"data/{column}_{tag}.txt",
            "n_rows": rng.randrange(50, 500), "data_seed": rng.randrange(1, 10_000)}


TOPICS = ("dark energy", "galaxy clustering", "CMB lensing", "exoplanet atmospheres", "gravitational waves",
          "reionization", "fast radio bursts", "cosmic shear", "primordial black holes", "neutrino masses")


def _papers_params(rng: random.Random) -> dict:
    topic = rng.choice(TOPICS)
    return {"n_papers": rng.randrange(3, 9), "topic": topic,
            "report_file": f"data/summary_{topic.replace(' ', '_')}_{_slug(rng, 4)}.md"}


def _ideas_params(rng: random.Random) -> dict:
    return {"n_ideas": rng.randrange(3, 8), "topic": rng.choice(TOPICS),
            "ideas_file": f"control/ideas_{_slug(rng, 8)}.json"}


SUMMARY = PlanStep(RESEARCHER, "Summarise the results of the previous step", "results_summary")

FAMILIES: dict[str, TaskFamily] = {family.name: family for family in (
    TaskFamily("plot_function", "plot_function.v1",
               "Plot {function} over [{x_min}, {x_max}] and save the figure as {file_name}", ENGINEER,
               _plot_params, (PlanStep(ENGINEER, "Evaluate and plot the function", "plot_function"), SUMMARY)),
    TaskFamily("fit_model", "fit_model.v1",
               "Fit a {model} model to {data_file} and write the fitted parameters to {output_file}", ENGINEER,
               _fit_params, (PlanStep(ENGINEER, "Load the data and fit the model", "fit_model"), SUMMARY)),
    TaskFamily("dataset_statistic", "dataset_statistic.v1",
               "Compute the {statistic} of column {column} in {data_file} and save it to {output_file}", ENGINEER,
               _statistic_params,
               (PlanStep(ENGINEER, "Load the catalogue and compute the statistic", "dataset_statistic"), SUMMARY)),
    TaskFamily("summarise_papers", "summarise_papers.v1",
               "Summarise {n_papers} recent papers on {topic} in {report_file}", RESEARCHER, _papers_params,
               (PlanStep(RESEARCHER, "Find and summarise the papers", "summarise_papers"), SUMMARY)),
    TaskFamily("generate_ideas", "generate_ideas.v1",
               "Generate {n_ideas} research ideas about {topic} and critique them", IDEAS, _ideas_params, ()),
)}

MODES = ("one_shot", "planning_and_control", "idea_generation", "human_in_the_loop")
MODE_WEIGHTS = {"one_shot": 0.35, "planning_and_control": 0.35, "idea_generation": 0.15, "human_in_the_loop": 0.15}


def usable_modes(modes: tuple[str, ...], families: tuple[str, ...]) -> list[str]:
    """The modes in which at least one of ``families`` runs; a clear error when there is none."""
    usable = [m for m in modes if families_for(m, families)]
    if not usable:
        raise ValueError(f"no family among {list(families)} runs in any mode of {list(modes)}")
    return usable


def families_for(mode: str, allowed: tuple[str, ...]) -> list[TaskFamily]:
    """Families that can run in ``mode`` (idea generation runs the ideas family; the others run the rest)."""
    return [FAMILIES[name] for name in allowed
            if (FAMILIES[name].kind == IDEAS) == (mode == "idea_generation")]
