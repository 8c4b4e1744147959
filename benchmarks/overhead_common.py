"""The measuring and reporting shared by the two capture overhead benchmarks (``bench_capture_overhead.py`` for AG2
classic, ``bench_capture_overhead_v1.py`` for AG2 v1). Imports neither AG2 line, so that both environments (the v1
one has no ``autogen``) can use it; the benchmarks import it as a sibling module (their own folder is on
``sys.path`` when run as scripts)."""

import sqlite3
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import capture

Samples = dict[str, list[float]]


def stored_events(tmp: Path) -> int:
    """``execution_events`` rows in the capture database (a span's start and completion are one row)."""
    with sqlite3.connect(tmp / "capture.db") as db:
        return db.execute("SELECT count(*) FROM execution_events").fetchone()[0]


def start_capture(mode: str, tmp: Path, target: Any) -> int | None:
    """For a capture mode, configure the recorder on ``tmp``'s database (``capture_hot`` defers the writer thread to
    after the run: batch size and flush interval larger than a run) and instrument ``target``; the events stored
    before the run. ``None`` for a mode without capture."""
    if not mode.startswith("capture"):
        return None
    deferred = {"batch_size": 10**6, "flush_interval_s": 3600.0} if mode == "capture_hot" else {}
    capture.configure(database_url=f"sqlite:///{tmp / 'capture.db'}", spool_dir=tmp / "spool", **deferred)
    capture.instrument(target)
    return stored_events(tmp)


def finish_capture(target: Any, tmp: Path, before: int | None) -> int:
    """After a run ``start_capture`` began: uninstrument ``target``, flush (untimed, so no backlog carries over),
    fail on any error or drop, and return the events the run stored (0 for a run without capture)."""
    if before is None:
        return 0
    capture.uninstrument(target)
    if not capture.flush(60.0) or capture.stats()["errors"] or capture.stats()["dropped"]:
        raise RuntimeError(f"capture lost or failed events: {capture.stats()}")
    return stored_events(tmp) - before


def interleaved(modes: Sequence[str], repeats: int, run: Callable[[str, bool], tuple[float, float, int]],
                ) -> tuple[Samples, Samples, dict[str, list[int]]]:
    """Wall seconds, CPU seconds and stored events per run of each mode: one untimed warm-up per mode (imports,
    first-call caches, table creation), then ``repeats`` rounds of the modes in turn (ABAB...), so that a change in
    the machine's load falls on all of them alike. ``run(mode, warm_up)`` does one run."""
    wall: Samples = {m: [] for m in modes}
    cpu: Samples = {m: [] for m in modes}
    events: dict[str, list[int]] = {m: [] for m in modes}
    for mode in modes:
        run(mode, True)
    for _ in range(repeats):
        for mode in modes:
            elapsed, used, made = run(mode, False)
            wall[mode].append(elapsed)
            cpu[mode].append(used)
            events[mode].append(made)
    return wall, cpu, events


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values`` by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(modes: Sequence[str], wall: Samples, cpu: Samples, events: dict[str, list[int]], cpu_label: str) -> None:
    """Print the min/median tables (wall and CPU) relative to ``off``, and the per-event cost of each mode that
    counts events (capture: the events a run stored; a tracer: the spans it exported): (run - paired off run) / the
    events of that run."""
    for label, times in (("wall time", wall), (cpu_label, cpu)):
        print(f"\n{label}\n")
        print("| variant | min ms | median ms | ratio to off (min) | ratio to off (median) |")
        print("|---|---:|---:|---:|---:|")
        base_min, base_med = min(times["off"]), statistics.median(times["off"])
        for mode in modes:
            low, mid = min(times[mode]), statistics.median(times[mode])
            print(f"| {mode} | {low * 1e3:.2f} | {mid * 1e3:.2f} | {low / base_min:.3f} | {mid / base_med:.3f} |")
    print()
    for mode in (m for m in modes if m != "off" and events[m][0]):
        for label, times in (("wall", wall), ("cpu", cpu)):
            per_event = [(c - o) / n * 1e6 for c, o, n in zip(times[mode], times["off"], events[mode], strict=True)]
            print(f"per-event cost, {mode}, {label} ((run - paired off run) / events): median "
                  f"{statistics.median(per_event):.1f} us, p99 {percentile(per_event, 0.99):.1f} us, "
                  f"min-to-min {(min(times[mode]) - min(times['off'])) / events[mode][0] * 1e6:.1f} us")
