"""Mine a capture store with the production job run (what ``skillmine mine`` runs) into a library under a folder."""

import io
from pathlib import Path

import pytest

from skill_pipeline.instance import dagster_home
from skill_pipeline.mine import MineOptions, mine_now


def mine_library(url: str, root: Path, *, min_support: int = 5) -> Path:
    """Mine ``url`` in-process with its Dagster home (the CLI's instance settings), warehouse and library under
    ``root``; returns the library."""
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:  # mine_now points DAGSTER_HOME at its instance
        patch.setenv("SKILLMINE_HOME", str(root))
        patch.setenv("DAGSTER_HOME", str(root / "dagster"))
        code = mine_now(MineOptions(url=url, warehouse=str(root / "warehouse.duckdb"), library=str(root / "library"),
                                    min_support=min_support, quiet=True), home=dagster_home(), out=out)
    assert code == 0, out.getvalue()
    return root / "library"
