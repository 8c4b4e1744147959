"""What the external workload's runs do: requests (with their own paraphrases and parameter pools) and behaviours.

A behaviour is the truth about a skill: a mode, a request, and the DAG nodes of its success path, each node a list
of agent turns (``Turn``: an agent, optionally the tool it calls, whether it runs code, the files it writes). The
catalogue is built to test what a skill miner must get right:

* behaviours that differ only in a tool (``doc_lookup_camb`` / ``doc_lookup_class``: the same request wording, the
  researcher retrieves from a different documentation tool) or only in an output type (``histogram_plot`` writes a
  ``.png``, ``column_correlation`` a ``.txt``; ``pc_regression_table`` a ``.csv``, ``pc_summary_statistic`` a
  ``.txt``);
* behaviours sharing long prefixes (the four planning_and_control behaviours share the whole planning phase);
* distinct requests with identical behaviour (``histogram_plot`` and ``scatter_plot``);
* every request in at least four paraphrases of its own.

Nothing here is derived from the project's simulator (``workloads/``); names and phrasings are independent.
"""

from dataclasses import dataclass, field

PLUMBING_TOOL_AGENT = "_Group_Tool_Executor"


@dataclass(frozen=True)
class Turn:
    """One agent turn on the success path. ``outputs`` are path templates (``{run}`` = short run tag)."""

    agent: str
    tool: str | None = None
    code: bool = False
    outputs: tuple[str, ...] = ()
    approval: bool = False

    @property
    def key(self) -> str:
        """The step as the truth names it: ``agent`` or ``agent.tool``."""
        return f"{self.agent}.{self.tool}" if self.tool else self.agent


@dataclass(frozen=True)
class Node:
    """A DAG node: turns before the code cycle, the cycle (repeated on retries), turns after it."""

    name: str
    node_type: str
    agent: str
    before: tuple[Turn, ...] = ()
    cycle: tuple[Turn, ...] = ()
    after: tuple[Turn, ...] = ()

    @property
    def turns(self) -> tuple[Turn, ...]:
        """The node's turns on the success path (the cycle once)."""
        return self.before + self.cycle + self.after


@dataclass(frozen=True)
class Request:
    """A request: paraphrase templates over named slots; ``fixed`` fills placeholders that are not parameters."""

    request_id: str
    paraphrases: tuple[str, ...]
    slots: dict[str, tuple] = field(default_factory=dict)
    fixed: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Behaviour:
    """A true skill: mode, request, success-path nodes and how often its code cycle needs retries."""

    skill_id: str
    mode: str
    lead_agent: str
    request: Request
    nodes: tuple[Node, ...]
    retry_share: float = 0.1
    max_attempts: int = 4

    @property
    def success_path(self) -> list[str]:
        """Step keys of a clean successful run."""
        return [t.key for n in self.nodes for t in n.turns]


# -- parameter pools ----------------------------------------------------------------------------------------

TABLES = ("sdss_dr17_galaxies.csv", "gaia_dr3_sample.csv", "tng100_subhalos.csv", "des_y3_clusters.csv",
          "kepler_q12_targets.csv", "planck_pccs2_sources.csv", "eboss_qso_catalog.csv", "lsst_dp0_objects.csv")
COLUMNS = ("stellar_mass", "redshift", "g_minus_r", "halo_mass", "parallax", "flux_ratio", "velocity_dispersion",
           "star_formation_rate", "metallicity", "effective_radius")
BINS = (15, 20, 25, 30, 40, 50, 60, 75)
CONCEPTS = ("baryon acoustic oscillations", "the Sachs-Wolfe effect", "weak gravitational lensing",
            "the Press-Schechter mass function", "cosmic variance", "the Sunyaev-Zeldovich effect",
            "Silk damping", "redshift-space distortions")
LIGHT_CURVES = ("lc_tic_2291.fits", "lc_kic_8462.fits", "lc_sn2023ixf.fits", "lc_ogle_blg_0413.fits",
                "lc_ztf21aagnvqv.fits", "lc_tess_s14_0091.fits")
PROFILES = ("Gaussian", "Lorentzian", "Voigt", "double-exponential", "skewed Gaussian")
CODE_SETTINGS = ("the reionization optical depth", "massive neutrinos", "the tensor-to-scalar ratio",
                 "non-linear corrections to the matter power", "the primordial helium fraction",
                 "the dark energy equation of state", "lensed CMB spectra")
MODULE_PURPOSES = ("reads FITS catalogues and cross-matches sources by position",
                   "converts redshifts to comoving distances for a flat LCDM cosmology",
                   "rebins galaxy spectra onto a common wavelength grid",
                   "estimates angular power spectra from HEALPix maps",
                   "computes two-point correlation functions with jackknife errors",
                   "builds mock photometric catalogues from a luminosity function")
REGRESSIONS = ("linear", "quadratic", "power-law", "log-linear")
STATISTICS = ("median", "interquartile range", "weighted mean", "95th percentile", "skewness")
REVIEW_TOPICS = ("the Hubble tension", "fast radio burst localisation", "primordial black holes as dark matter",
                 "21-cm intensity mapping", "galaxy quenching in clusters", "exoplanet radius valley")
IDEA_COUNTS = (3, 4, 5, 6, 8, 10)
IDEA_AREAS = ("strong lensing time delays", "machine learning for CMB foregrounds", "line intensity mapping",
              "stellar streams in the Milky Way halo", "tidal disruption events", "cosmic dawn simulations",
              "dark matter substructure", "gravitational-wave standard sirens")
MAP_QUANTITIES = ("galaxy number density", "dust extinction E(B-V)", "mean photometric redshift",
                  "seeing FWHM", "star-galaxy contamination")
SURVEYS = ("DES Y3", "KiDS-1000", "HSC PDR3", "DECaLS DR10", "Euclid Q1")

# -- reusable turn sequences (CMBAgent's agents and tools) ---------------------------------------------------

FORMATTER = {"engineer": "engineer_response_formatter", "researcher": "researcher_response_formatter"}


def code_cycle(*outputs: str, lead: str = "engineer") -> tuple[Turn, ...]:
    """write -> format -> execute (files) -> route: CMBAgent's engineer (or researcher) cycle."""
    return (Turn(lead), Turn(FORMATTER[lead]), Turn("executor", code=True, outputs=outputs),
            Turn("executor_response_formatter", tool="post_execution_transfer"))


def retrieval_cycle(tool: str, *outputs: str) -> tuple[Turn, ...]:
    """A researcher that first retrieves from a documentation tool, then writes its note."""
    return (Turn("researcher", tool=tool), Turn("researcher_response_formatter"),
            Turn("executor", code=True, outputs=outputs),
            Turn("executor_response_formatter", tool="post_execution_transfer"))


PLANNING = (Turn("plan_setter", tool="record_plan_constraints"), Turn("planner"), Turn("planner_response_formatter"),
            Turn("plan_recorder", tool="record_plan"), Turn("plan_reviewer"), Turn("reviewer_response_formatter"),
            Turn("review_recorder", tool="record_review"), Turn("planner"), Turn("planner_response_formatter"),
            Turn("plan_recorder", tool="record_plan", outputs=("planning/final_plan.json",)))
CLOSE = (Turn("control", tool="record_status"),)
TERMINATE = Node("terminator", "terminator", "system", before=(Turn("terminator", tool="terminate_session"),))


def one_shot(skill_id: str, request: Request, cycle: tuple[Turn, ...], lead: str = "engineer",
             retry_share: float = 0.1) -> Behaviour:
    """init -> execute (cycle, then control) -> terminator."""
    return Behaviour(skill_id, "one_shot", lead, request,
                     (Node("init", "planning", "unknown"), Node("execute", "agent", lead, cycle=cycle, after=CLOSE),
                      TERMINATE), retry_share=retry_share)


def planned(skill_id: str, request: Request, steps: tuple[tuple[str, tuple[Turn, ...]], ...],
            retry_step: int | None = None, retry_share: float = 0.1, mode: str = "planning_and_control",
            approval: bool = False) -> Behaviour:
    """planning -> step_1..N (control or control_starter, then the step's cycle) -> terminator.

    Only ``retry_step`` (1-based) retries its cycle; the other steps' cycles run once on the success path.
    """
    planning_after = (Turn("admin", approval=True),) if approval else ()
    nodes = [Node("planning", "planning", "planner", before=PLANNING, after=planning_after)]
    for i, (agent, cycle) in enumerate(steps, start=1):
        opener = Turn("control", tool="record_status") if i == 1 else Turn("control_starter",
                                                                           tool="record_status_starter")
        last = CLOSE if i == len(steps) else ()
        if i == retry_step:
            nodes.append(Node(f"step_{i}", "agent", agent, before=(opener,), cycle=cycle, after=last))
        else:
            nodes.append(Node(f"step_{i}", "agent", agent, before=(opener, *cycle), after=last))
    return Behaviour(skill_id, mode, "planner", request, (*nodes, TERMINATE),
                     retry_share=retry_share if retry_step else 0.0)


# -- the catalogue -------------------------------------------------------------------------------------------

HISTOGRAM = Request("histogram_plot", (
    "Make a histogram of the {column} column in {table} using {bins} bins",
    "Plot the distribution of {column} from {table} as a {bins}-bin histogram",
    "Histogram the {column} values of {table} with {bins} bins and save the figure",
    "Using {table}, draw a histogram of {column} ({bins} bins)",
    "Show me how {column} is distributed in {table}, binned into {bins} bins",
), {"column": COLUMNS, "table": TABLES, "bins": BINS})

SCATTER = Request("scatter_plot", (
    "Draw a scatter plot of {y_column} against {x_column} from {table}",
    "Scatter {y_column} versus {x_column} using the table {table}",
    "Plot {y_column} as a function of {x_column} for every row of {table}, as points",
    "From {table}, make a scatter chart with {x_column} on the horizontal axis and {y_column} on the vertical",
), {"x_column": COLUMNS, "y_column": COLUMNS, "table": TABLES})

CORRELATION = Request("column_correlation", (
    "Compute the Pearson correlation coefficient between {x_column} and {y_column} in {table}",
    "How strongly are {x_column} and {y_column} correlated in {table}? Report Pearson's r",
    "Calculate Pearson r for the columns {x_column} and {y_column} of {table}",
    "Give me the linear correlation between {x_column} and {y_column} using {table}",
), {"x_column": COLUMNS, "y_column": COLUMNS, "table": TABLES})

EXPLAINER = Request("concept_explainer", (
    "Write a short explainer on {concept} for a graduate student",
    "Explain {concept} in a one-page note",
    "Prepare a brief written introduction to {concept}",
    "I need a concise summary of what {concept} is and why it matters",
), {"concept": CONCEPTS})

LIGHT_CURVE_FIT = Request("light_curve_fit", (
    "Fit a {profile} profile to the light curve in {light_curve} and save the best-fit parameters",
    "Estimate {profile} model parameters for the light curve stored in {light_curve}",
    "Run a least-squares {profile} fit on {light_curve} and write the parameters to a table",
    "Model the light curve {light_curve} with a {profile} shape and tabulate the fit",
), {"profile": PROFILES, "light_curve": LIGHT_CURVES})

DOC_LOOKUP = (
    "Which {code} setting controls {setting}? Explain it using the documentation",
    "Look up in the {code} docs how {setting} is configured",
    "Explain, from the {code} documentation, how to set {setting}",
    "Find the {code} input parameter for {setting} and describe its effect",
)

MODULE = Request("pc_python_module", (
    "Plan and implement a Python module that {purpose}",
    "Design, then code, a small library that {purpose}",
    "Break the work down and write a reusable Python package that {purpose}",
    "Create a plan and then the code for a module which {purpose}",
), {"purpose": MODULE_PURPOSES})

REGRESSION = Request("pc_regression_table", (
    "Plan a {regression} regression of {y_column} on {x_column} in {table}, run it and save the coefficients",
    "Set up and carry out a {regression} fit of {y_column} against {x_column} from {table}; tabulate the result",
    "Work out the steps to regress {y_column} on {x_column} ({regression}) using {table}, then do it",
    "Prepare a plan for a {regression} model of {y_column} versus {x_column} in {table} and export the fit",
), {"regression": REGRESSIONS, "x_column": COLUMNS, "y_column": COLUMNS, "table": TABLES})

SUMMARY_STAT = Request("pc_summary_statistic", (
    "Plan how to compute the {statistic} of {column} across {table}, then compute it and report the value",
    "Make a step-by-step plan to get the {statistic} of {column} in {table} and carry it out",
    "Organise the analysis of {table}: clean it, then report the {statistic} of {column}",
    "Devise and execute a plan that measures the {statistic} of the {column} column of {table}",
), {"statistic": STATISTICS, "column": COLUMNS, "table": TABLES})

REVIEW_FIGURE = Request("pc_review_and_figure", (
    "Review recent work on {topic} and reproduce its key figure",
    "Summarise the literature about {topic}, then recreate the main plot",
    "Survey what is known on {topic} and make a figure that illustrates it",
    "Read up on {topic}, write a review and produce its headline figure",
), {"topic": REVIEW_TOPICS})

IDEAS = Request("research_ideas", (
    "Suggest {n_ideas} possible research projects about {area}",
    "List {n_ideas} fresh project ideas concerning {area}, with critiques",
    "What are {n_ideas} promising research questions in {area}?",
    "Think up {n_ideas} new directions for work on {area} and pick the best",
    "Draft {n_ideas} candidate proposals in the field of {area}",
), {"n_ideas": IDEA_COUNTS, "area": IDEA_AREAS})

SURVEY_MAP = Request("approved_survey_map", (
    "Once I approve the plan, map the {quantity} across the {survey} footprint",
    "Propose a plan for a sky map of {quantity} in {survey} and wait for my approval before running it",
    "With my sign-off on each plan, produce a HEALPix map of {quantity} over {survey}",
    "Draft the steps to chart {quantity} over the {survey} area; I will confirm before execution",
), {"quantity": MAP_QUANTITIES, "survey": SURVEYS})

BEHAVIOURS: tuple[Behaviour, ...] = (
    one_shot("histogram_plot", HISTOGRAM, code_cycle("codebase/histogram_{run}.py", "data/histogram_{run}.png")),
    one_shot("scatter_plot", SCATTER, code_cycle("codebase/scatter_{run}.py", "data/scatter_{run}.png")),
    one_shot("column_correlation", CORRELATION,
             code_cycle("codebase/correlation_{run}.py", "data/pearson_{run}.txt")),
    one_shot("concept_explainer", EXPLAINER, code_cycle("data/explainer_{run}.md", lead="researcher"),
             lead="researcher", retry_share=0.0),
    one_shot("light_curve_fit", LIGHT_CURVE_FIT,
             code_cycle("codebase/fit_{run}.py", "data/fit_params_{run}.csv"), retry_share=0.55),
    one_shot("doc_lookup_camb", Request("doc_lookup_camb", DOC_LOOKUP, {"setting": CODE_SETTINGS},
                                        {"code": "CAMB"}),
             retrieval_cycle("retrieve_camb_docs", "data/camb_note_{run}.md"), lead="researcher", retry_share=0.0),
    one_shot("doc_lookup_class", Request("doc_lookup_class", DOC_LOOKUP, {"setting": CODE_SETTINGS},
                                         {"code": "CLASS"}),
             retrieval_cycle("retrieve_class_docs", "data/class_note_{run}.md"), lead="researcher",
             retry_share=0.0),
    planned("pc_python_module", MODULE, (
        ("engineer", code_cycle("codebase/design_{run}.py")),
        ("engineer", code_cycle("codebase/module_{run}.py")))),
    planned("pc_regression_table", REGRESSION, (
        ("engineer", code_cycle("codebase/prepare_{run}.py")),
        ("engineer", code_cycle("codebase/regress_{run}.py", "data/coefficients_{run}.csv"))),
        retry_step=2, retry_share=0.55),
    planned("pc_summary_statistic", SUMMARY_STAT, (
        ("engineer", code_cycle("codebase/prepare_{run}.py")),
        ("engineer", code_cycle("codebase/statistic_{run}.py", "data/statistic_{run}.txt")))),
    planned("pc_review_and_figure", REVIEW_FIGURE, (
        ("researcher", code_cycle("data/review_{run}.md", lead="researcher")),
        ("engineer", code_cycle("codebase/figure_{run}.py", "data/figure_{run}.png"))), retry_step=2),
    Behaviour("research_ideas", "idea_generation", "idea_maker", IDEAS, (
        Node("planning", "planning", "planner", before=(
            Turn("planner"), Turn("planner_response_formatter"),
            Turn("plan_recorder", tool="record_plan", outputs=("planning/final_plan.json",)))),
        Node("step_1", "agent", "idea_maker", before=(
            Turn("control_starter", tool="record_status_starter"), Turn("idea_maker"), Turn("idea_maker_nest"))),
        Node("step_2", "agent", "idea_hater", before=(
            Turn("control", tool="record_status"), Turn("idea_hater"), Turn("idea_hater_response_formatter"))),
        Node("step_3", "agent", "idea_maker", before=(
            Turn("control", tool="record_status"), Turn("idea_maker"), Turn("idea_maker_nest"),
            Turn("idea_saver", tool="record_ideas", outputs=("control/ideas_{run}.json",)))),
        TERMINATE), retry_share=0.0),
    planned("approved_survey_map", SURVEY_MAP, (
        ("engineer", code_cycle("codebase/skymap_{run}.py", "data/skymap_{run}.png")),),
        retry_step=1, mode="human_in_the_loop", approval=True),
)

BY_ID = {b.skill_id: b for b in BEHAVIOURS}
