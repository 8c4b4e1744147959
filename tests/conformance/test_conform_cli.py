"""``skillmine conform``: one run of a real store against a library mined from it, as text and as JSON."""
import json

import pytest
from sqlalchemy import create_engine

from skill_pipeline.verification.runs import store_report
from skillmine.cli import main
from tests.conformance.plot_runs import mine_plot_runs


@pytest.fixture(scope="module")
def mined(tmp_path_factory):
    return mine_plot_runs(tmp_path_factory.mktemp("conform"))


def test_json_answer_names_best_skill_fitness_and_deviations(mined, capsys):
    url, library, runs = mined
    completed = [r for r, s in runs.items() if s == "completed"]
    fitting = 0
    for run_id in completed[:10]:
        assert main(["conform", run_id[:8], "--url", url, "--library", str(library), "--json"]) == 0
        answer = json.loads(capsys.readouterr().out)
        assert answer["run_id"] == run_id and answer["status"] == "completed"
        best = answer["best"]
        assert best["skill"].startswith("one_shot") and 0.0 <= best["fitness"] <= 1.0
        assert answer["fits"] == (best["fitness"] >= 0.8)
        assert (best["fitness"] == 1.0) == (best["deviations"] == [])
        fitting += best["fitness"] == 1.0
    assert fitting >= 7


def test_a_failed_run_deviates_and_the_text_answer_lists_its_deviations(mined, capsys):
    url, library, runs = mined
    failed = next(r for r, s in runs.items() if s == "failed")
    engine = create_engine(url)
    answer = store_report(engine, failed, library)
    engine.dispose()
    assert answer["best"]["deviations"], answer
    assert main(["conform", failed, "--url", url, "--library", str(library)]) == 0
    out = capsys.readouterr().out
    assert f"run {failed} (failed)" in out and answer["best"]["deviations"][0]["kind"] in out


def test_unknown_run_and_missing_library(mined, tmp_path, capsys):
    url, library, runs = mined
    assert main(["conform", "no-such-run", "--url", url, "--library", str(library)]) == 2
    assert "not found" in capsys.readouterr().err
    run_id = next(iter(runs))
    assert main(["conform", run_id, "--url", url, "--library", str(tmp_path / "none")]) == 0
    assert "no active skill" in capsys.readouterr().out
