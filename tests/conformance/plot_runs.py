"""40 simulated one-shot plotting runs (seed 3: completed and failed ones) and the library skillmine mines from
them: what ``skillmine conform`` and the trace API's conformance answer are tested on."""
from pathlib import Path

from sqlalchemy import create_engine, text

from skill_pipeline.lib.mining_steps import mine_store
from workloads.simulate import simulate


def mine_plot_runs(root: Path) -> tuple[str, Path, dict[str, str]]:
    """Simulate and mine under ``root``: (store URL, library, {run id: status})."""
    url = f"sqlite:///{root / 'capture.db'}"
    simulate(runs=40, seed=3, engine="fast", url=url, modes=("one_shot",), families=("plot_function",),
             ground_truth=root / "truth.jsonl")
    mine_store(url, root / "warehouse.duckdb", library=root / "library")
    engine = create_engine(url)
    with engine.connect() as conn:
        runs = dict(conn.execute(text("SELECT id, status FROM workflow_runs ORDER BY id")).all())
    engine.dispose()
    return url, root / "library", runs
