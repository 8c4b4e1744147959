"""A seed's simulation is pinned: the store it writes and its ground truth hash to the values the fast engine
gave before its write path was reworked (issue 20), so a faster producer can never change what is simulated.

The expected digests were taken from the engine as it stood at commit 13d3a4f (40 runs, seed 5). A change that
is meant to alter the simulated runs must say so and re-pin them; anything else that moves them is a bug.
"""

import hashlib
from pathlib import Path

from sqlalchemy import create_engine, text

from capture.importers.merge import fingerprint
from capture.store.capture_store import CaptureStore
from workloads.simulate import simulate

PINNED_TABLES = {
    "sessions": (1, "696a0b8d7e09be4422f40912e3f3ab5c83d6565a63416a2533a400bcd3068661"),
    "workflow_runs": (40, "531e3a5021b1e426d7e5d855a59f1aebbb079bce489e3fdf90da5519e56864e4"),
    "dag_nodes": (159, "be56662e70955ae46984642a636a9880853e06d02e5ebaf9f78b90261bbdef6c"),
    "dag_edges": (119, "95179ef36cfaddf8799694eb9ef04b52db71874667f12ccebd1f37f04696ade5"),
    "execution_events": (6773, "ca252e1c591e72481474c65da363ea1f596ec2082f90a8cd6377d60c1087b97e"),
    "files": (144, "ff137937f900e0683ed4dca3596742a9babf9697509c1de4b81d2100d1ac8af9"),
    "messages": (2684, "b8f1a196a25edca6689b0f71dc985fb5bf88525336ffe917869e5c1e065065a2"),
    "cost_records": (755, "88fa90cc4f60d57dc426162960f8bfe0d66ef3258d82f63b9cd47a526955737a"),
}
PINNED_GROUND_TRUTH = "12b744d54893d23d904b080cefa81cde617434a7cd54b6f16be5a4a603296afd"
PINNED_SEQ_ORDER = "71a636d226b2341cbc5d0c5abe722e9624182052bffd0e54924c4f88b6f6da8d"


def _seq_order(url: str) -> str:
    """sha256 of the event ids in the order the store sequenced them (what incremental extraction reads by)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            ids = conn.execute(text("SELECT id FROM execution_events ORDER BY seq")).scalars().all()
    finally:
        engine.dispose()
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


def test_seed_5_writes_the_pinned_store_and_ground_truth(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'capture.db'}"
    truth = tmp_path / "truth.jsonl"
    summary = simulate(runs=40, seed=5, url=url, ground_truth=truth)
    assert (summary.runs, summary.events) == (40, 6773)
    store = CaptureStore.open(url)
    try:
        assert fingerprint(store) == PINNED_TABLES
    finally:
        store.close()
    assert hashlib.sha256(truth.read_bytes()).hexdigest() == PINNED_GROUND_TRUTH
    assert _seq_order(url) == PINNED_SEQ_ORDER
