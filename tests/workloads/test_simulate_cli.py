"""``skillmine simulate``: arguments, summary, default ground-truth location, progress, repeat safety."""

import io
import json

from sqlalchemy import create_engine, text

from skillmine.cli import main
from workloads.simulate import simulate


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_cli_writes_store_and_default_ground_truth(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SKILLMINE_HOME", str(tmp_path / "home"))
    url = f"sqlite:///{tmp_path / 'c.db'}"
    code = main(["simulate", "--runs", "6", "--seed", "9", "--url", url, "--modes", "one_shot",
                 "--families", "plot_function,fit_model", "--quiet"])
    out = capsys.readouterr().out
    truth_path = tmp_path / "home" / "ground_truth" / "simulation-9.jsonl"
    records = [json.loads(line) for line in truth_path.read_text().splitlines()]
    assert code == 0
    assert [r["index"] for r in records] == list(range(6))
    assert {r["mode"] for r in records} == {"one_shot"}
    assert {r["family"] for r in records} <= {"plot_function", "fit_model"}
    assert f"ground truth: {truth_path}" in out and "simulated 6 runs with the fast engine" in out
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM workflow_runs")).scalar_one() == 6
    engine.dispose()


def test_cli_names_bad_input(tmp_path, capsys) -> None:
    code = main(["simulate", "--runs", "2", "--url", f"sqlite:///{tmp_path / 'x.db'}", "--modes",
                 "idea_generation", "--families", "plot_function", "--quiet"])
    assert code == 2
    assert "no family among ['plot_function'] runs in any mode of ['idea_generation']" in capsys.readouterr().err
    assert not (tmp_path / "x.db").exists()
    assert main(["simulate", "--runs", "-1", "--quiet"]) == 2
    assert "--runs must be >= 0, got -1" in capsys.readouterr().err


def _counts(url: str) -> list[int]:
    engine = create_engine(url)
    with engine.connect() as conn:
        counts = [conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                  for t in ("execution_events", "dag_edges", "messages", "files", "cost_records")]
    engine.dispose()
    return counts


def test_repeating_a_seed_adds_nothing(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    first = simulate(runs=8, seed=4, url=url, ground_truth=tmp_path / "a.jsonl")
    before = _counts(url)
    second = simulate(runs=8, seed=4, url=url, ground_truth=tmp_path / "b.jsonl")
    assert before[0] == first.events and before[2:] == [first.messages, first.files, first.costs]
    assert before[1] > 0
    assert _counts(url) == before
    assert (second.events, second.already_stored, second.runs) == (0, 8, 8)
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()


def test_progress_only_on_a_terminal(tmp_path, monkeypatch) -> None:
    """A simulation draws runs done, events and their rate on a terminal's stderr; nothing in a pipe or when quiet."""
    for name, stream, quiet in (("tty", _Terminal(), False), ("pipe", io.StringIO(), False),
                                ("quiet", _Terminal(), True)):
        monkeypatch.setattr("sys.stderr", stream)
        done = simulate(runs=5, seed=3, url=f"sqlite:///{tmp_path / name}.db", ground_truth=tmp_path / f"{name}.jsonl",
                        quiet=quiet)
        shown = stream.getvalue()
        if name == "tty":
            assert "5/5" in shown and f"{done.events:,} events (" in shown and "/s)" in shown
        else:
            assert shown == "", name


def test_an_interrupted_simulation_keeps_the_previous_ground_truth(tmp_path) -> None:
    from workloads.ground_truth import GroundTruth, GroundTruthWriter, read_ground_truth
    from workloads.script import build_run_script

    path = tmp_path / "truth.jsonl"
    simulate(runs=3, seed=1, url=f"sqlite:///{tmp_path / 'c.db'}", ground_truth=path)
    writer = GroundTruthWriter(path)
    writer.write(GroundTruth.from_script(build_run_script(1, 7), "fast"))
    writer.close(complete=False)
    assert [t.index for t in read_ground_truth(path)] == [0, 1, 2]
    assert [t.index for t in read_ground_truth(writer.partial)] == [7]
