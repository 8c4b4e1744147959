"""AG2 v1 capture overhead: a scripted zero-latency v1 agent, with capture off and with skillmine capture,
interleaved (ABAB...) in one process. Runs in the AG2 v1 environment:

    "$(scripts/ag2v1_env.sh)" benchmarks/bench_capture_overhead_v1.py [--repeats 15] [--cycles 30]

One run is one ``ask``: the model asks for the ``lookup`` tool ``--cycles`` times (one call per response), then
answers; its responses carry token usage, so capture computes costs. Agents and scripts are rebuilt outside the
timed region before every run; only ``ask`` is timed. Wall time and the CPU time of the agent's thread
(``time.thread_time``; the tool is async, so the whole turn runs on that thread) are reported. ``capture`` uses the
recorder's default settings; ``capture_hot`` defers the writer thread to after the run (batch size and flush interval
larger than a run) to isolate the work done on the agent's own thread. Every captured run is flushed (untimed) and
checked for errors and drops. Per-event cost = (capture run - paired off run) / ``execution_events`` rows stored.
"""

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ag2 import Agent
from ag2.events import ModelMessage, ModelResponse, ToolCallEvent, ToolCallsEvent, Usage
from ag2.testing import TestConfig
from overhead_common import finish_capture, interleaved, report, start_capture

import capture
from capture.store.migrate import upgrade

MODES = ("off", "capture", "capture_hot")


async def lookup(key: str) -> str:
    """The benchmark's only tool."""
    return f"value of {key}"


def build(cycles: int) -> Agent:
    """A fresh agent whose model asks for ``lookup`` ``cycles`` times, then answers."""
    usage = Usage(prompt_tokens=120, completion_tokens=12)
    turns = [ModelResponse(tool_calls=ToolCallsEvent([ToolCallEvent("lookup", id=f"c{i}", arguments=f'{{"key": "k{i}"}}')]),
                           usage=usage, model="gpt-4o-mini") for i in range(cycles)]
    turns.append(ModelResponse(ModelMessage("done"), usage=usage, model="gpt-4o-mini"))
    return Agent("engineer", config=TestConfig(*turns), tools=[lookup])


def timed_run(cycles: int, mode: str, tmp: Path) -> tuple[float, float, int]:
    """Wall seconds and the agent's thread CPU seconds for one ask in ``mode``, and the capture events it stored."""
    agent = build(cycles)
    before = start_capture(mode, tmp, agent)
    loop = asyncio.new_event_loop()
    try:
        started, cpu_started = time.perf_counter(), time.thread_time()
        loop.run_until_complete(agent.ask("Look the keys up."))
        elapsed, cpu = time.perf_counter() - started, time.thread_time() - cpu_started
    finally:
        loop.close()
    return elapsed, cpu, finish_capture(agent, tmp, before)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--cycles", type=int, default=30)
    args = parser.parse_args(argv)
    import ag2

    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        upgrade(f"sqlite:///{tmp / 'capture.db'}")
        wall, cpu, events = interleaved(MODES, args.repeats, lambda mode, _warm_up: timed_run(args.cycles, mode, tmp))
        capture.shutdown()
    print(f"ag2 {ag2.__version__}; tool round trips per run: {args.cycles}  repeats: {args.repeats}  capture events "
          f"stored per run: {events['capture'][0]}  (every run flushed; errors and drops checked: 0)  "
          f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    report(MODES, wall, cpu, events, "CPU time of the agent's thread")
    print(f"AG2 v1 itself: {statistics.median(wall['off']) / args.cycles * 1e6:.0f} us per tool round trip "
          "(median wall, off)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
