"""AG2 capture overhead: a scripted zero-latency GroupChat, with capture off, with skillmine capture, with AG2's own
sqlite runtime logging, and with AG2's own OpenTelemetry instrumentation, interleaved (ABCABC...).

Usage: .venv/bin/python benchmarks/bench_capture_overhead.py [--repeats 15] [--cycles 10] [--variants off,capture]

``ag2_otel`` is ``autogen.opentelemetry.instrument_agent`` on every agent of the run plus
``instrument_llm_wrapper``, spans through the SDK's ``BatchSpanProcessor`` into an in-memory exporter (no network;
flushed, untimed, after each run). ``instrument_llm_wrapper`` patches ``OpenAIWrapper.create`` for the whole
process, so ``ag2_otel`` runs in a process of its own (this script run again with ``--variants off,ag2_otel``) with
its own ``off`` runs, between which the unpatched ``create`` is put back; its table is printed after the others.

Instruction counts (deterministic on a loaded machine): one variant per process, its measured chats run inside
``sys.call_tracing`` so that callgrind counts only them (not imports, warm-up or flushes), e.g.
``valgrind --tool=callgrind --toggle-collect=sys_call_tracing .venv/bin/python benchmarks/bench_capture_overhead.py
--variants off --repeats 2 --traced``; per run = "Collected" / repeats; capture's cost = the capture variant's per
run minus off's.

Both wall time and the CPU time of the agents' thread (``time.thread_time``) are reported: on a shared machine the
CPU time is the steadier measure of the work capture adds to the agents' own thread.

Two capture variants: ``capture`` with the recorder's default settings (its writer thread wakes every 500 events
and competes for the GIL during the run) and ``capture_hot`` with the writer deferred until the run ends (batch size
and flush interval larger than a run), which isolates the work done on the agents' own thread.

Each cycle is four rounds: planner (LLM) -> engineer (LLM, proposes a tool call) -> executor (runs it) -> reviewer
(LLM). Agents are rebuilt outside the timed region before every run; only ``initiate_chat`` is timed. The capture
writer drains to SQLite in the background and is flushed (untimed) after each captured run, so no backlog carries
over. Per-event hot-path cost = (capture run time - paired off run time) / ``execution_events`` rows that run stored.
"""

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autogen import ConversableAgent, GroupChat, GroupChatManager, register_function, runtime_logging
from autogen.io import IOStream
from overhead_common import finish_capture, interleaved, report, start_capture

import capture
from capture.store.migrate import upgrade
from workloads.scripted_llm import Script, SilentStream, ToolCall, Turn, scripted_llm_config, use_script

logging.getLogger("autogen.oai.client").setLevel(logging.WARNING)
ORDER = ["planner", "engineer", "executor", "reviewer"]


def lookup(key: str) -> str:
    """The benchmark's only tool."""
    return f"value of {key}"


def build(cycles: int) -> tuple[ConversableAgent, GroupChatManager]:
    """Fresh agents and scripts for one run of ``cycles`` x 4 rounds."""
    def agent(name: str, turns: list) -> ConversableAgent:
        made = ConversableAgent(name, llm_config=scripted_llm_config(f"m-{name}"), human_input_mode="NEVER")
        return use_script(made, Script(turns, name=name))

    planner = agent("planner", [Turn(f"Plan {i}.", prompt_tokens=100, completion_tokens=10, cost_usd=0.001)
                                for i in range(cycles)])
    engineer = agent("engineer", [Turn(tool_calls=(ToolCall("lookup", {"key": f"k{i}"}, id=f"c{i}"),),
                                       prompt_tokens=120, completion_tokens=12, cost_usd=0.001)
                                  for i in range(cycles)])
    reviewer = agent("reviewer", [Turn(f"Reviewed {i}.", prompt_tokens=140, completion_tokens=8, cost_usd=0.001)
                                  for i in range(cycles)])
    executor = ConversableAgent("executor", llm_config=False, human_input_mode="NEVER")
    register_function(lookup, caller=engineer, executor=executor, description="Look a key up.")
    position = iter(range(10**9))
    chat = GroupChat(agents=[planner, engineer, executor, reviewer], messages=[], max_round=4 * cycles + 1,
                     speaker_selection_method=lambda last, gc: gc.agent_by_name(ORDER[next(position) % 4]))
    manager = GroupChatManager(groupchat=chat, llm_config=False)
    user = ConversableAgent("user", llm_config=False, human_input_mode="NEVER")
    return user, manager


MODES = ("off", "capture", "capture_hot", "ag2_sqlite", "ag2_otel")
OWN_PROCESS = "ag2_otel"  # patches a class for the whole process: measured in a process of its own


class AG2Tracing:
    """AG2's OpenTelemetry instrumentation for the ``ag2_otel`` runs: one SDK tracer provider with a batch processor
    and an in-memory exporter, and the two ``OpenAIWrapper.create`` functions (traced and plain) swapped in turn."""

    def __init__(self) -> None:
        from autogen.oai.client import OpenAIWrapper
        from autogen.opentelemetry import instrument_llm_wrapper
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        self.wrapper = OpenAIWrapper
        self.plain = OpenAIWrapper.create
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(BatchSpanProcessor(self.exporter))
        instrument_llm_wrapper(tracer_provider=self.provider)
        self.traced = OpenAIWrapper.create
        self.wrapper.create = self.plain

    def start(self, agents: list) -> None:
        """Trace ``agents`` (every agent of one run) and the LLM wrapper."""
        from autogen.opentelemetry import instrument_agent

        for agent in agents:
            instrument_agent(agent, tracer_provider=self.provider)
        self.wrapper.create = self.traced

    def finish(self) -> int:
        """Put the plain ``create`` back, flush the batch processor (untimed) and return the spans of the run."""
        self.wrapper.create = self.plain
        if not self.provider.force_flush(60_000):
            raise RuntimeError("the OpenTelemetry batch processor did not flush")
        spans = len(self.exporter.get_finished_spans())
        self.exporter.clear()
        return spans


def timed_run(cycles: int, mode: str, tmp: Path, traced: bool = False, tracing: AG2Tracing | None = None,
              ) -> tuple[float, float, int]:
    """Wall seconds and the agents' thread CPU seconds for one chat in ``mode``, and the capture events it stored
    (``ag2_otel``: the spans it exported); ``traced`` runs the chat inside ``sys.call_tracing`` (callgrind's
    collection toggle, see the module doc)."""
    user, manager = build(cycles)
    before = start_capture(mode, tmp, [user, manager])
    if mode == "ag2_sqlite":
        runtime_logging.start(config={"dbname": str(tmp / "ag2.db")})
    if mode == "ag2_otel":
        tracing.start([user, manager, *manager.groupchat.agents])
    with IOStream.set_default(SilentStream()):
        started, cpu_started = time.perf_counter(), time.thread_time()
        if traced:
            sys.call_tracing(lambda: user.initiate_chat(manager, message="Start.", silent=True), ())
        else:
            user.initiate_chat(manager, message="Start.", silent=True)
        elapsed, cpu = time.perf_counter() - started, time.thread_time() - cpu_started
    if mode == "ag2_sqlite":
        runtime_logging.stop()
    if mode == "ag2_otel":
        return elapsed, cpu, tracing.finish()
    return elapsed, cpu, finish_capture([user, manager], tmp, before)


def own_process(args: argparse.Namespace) -> int:
    """Measure ``ag2_otel`` against its own ``off`` runs in a fresh process (this script again) and print its
    report."""
    command = [sys.executable, __file__, "--variants", f"off,{OWN_PROCESS}", "--repeats", str(args.repeats),
               "--cycles", str(args.cycles)]
    shown = " ".join([Path(__file__).name, *command[2:]])
    print(f"\n## {OWN_PROCESS}, in a process of its own (`{shown}`)\n", flush=True)
    return subprocess.run(command, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--variants", default=",".join(MODES), help=f"comma-separated subset of {MODES} (off first)")
    parser.add_argument("--traced", action="store_true",
                        help="run the measured chats inside sys.call_tracing, for callgrind (one variant per process)")
    args = parser.parse_args(argv)
    modes = [m for m in args.variants.split(",") if m]
    if not set(modes) <= set(MODES) or (modes[0] != "off" and not (args.traced and len(modes) == 1)):
        parser.error(f"--variants {args.variants!r}: must start with 'off' (or be one variant with --traced) and "
                     f"name only {MODES}")
    elsewhere = OWN_PROCESS in modes and len(set(modes) - {"off", OWN_PROCESS}) > 0
    if elsewhere:
        modes.remove(OWN_PROCESS)
    tracing = AG2Tracing() if OWN_PROCESS in modes else None
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        upgrade(f"sqlite:///{tmp / 'capture.db'}")
        wall, cpu, events = interleaved(modes, args.repeats, lambda mode, warm_up: timed_run(
            args.cycles, mode, tmp, args.traced and not warm_up, tracing))
        capture.shutdown()
    rounds = 4 * args.cycles
    made = next((events[m][0] for m in modes if m.startswith("capture")), 0)
    spans = f"  OpenTelemetry spans per run: {events[OWN_PROCESS][0]}" if OWN_PROCESS in modes else ""
    print(f"rounds per run: {rounds}  repeats: {args.repeats}  capture events stored per run: {made}{spans}  "
          f"(every run flushed; errors and drops checked: 0)  load average: {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    if "off" in modes:  # else a --traced variant alone: its instruction count is the measure
        report(modes, wall, cpu, events, "CPU time of the agents' thread")
        print(f"AG2 itself: {statistics.median(wall['off']) / rounds * 1e6:.0f} us per round (median wall, off)")
    return own_process(args) if elsewhere else 0


if __name__ == "__main__":
    sys.exit(main())
