"""Where the AG2 capture overhead's CPU goes: the probes behind "AG2 capture overhead: why CPU is not instructions" in
``benchmarks/RESULTS.md``. Same scenario as ``bench_capture_overhead.py`` (whose ``build`` it uses).

    .venv/bin/python benchmarks/probe_capture_overhead.py threads [--repeats 30]
        off / capture / capture_hot / capture_drop interleaved: the agents' thread CPU, its minor page faults and
        context switches (``getrusage(RUSAGE_THREAD)``) and the collector's collections and CPU inside the chat.
        ``capture_drop`` is capture_hot whose queue keeps only its last item: the same hot path, nothing retained.
        ``--variants off,capture_hot,no_reply,no_transition,no_send,no_llm,no_cost,no_tool``: ablations, capture_hot
        with one piece of the Classic adapter switched off for the run (see ``_without``).
    .venv/bin/python benchmarks/probe_capture_overhead.py isolated [--traced]
        The Classic adapter's per-round wrappers (reply, send, fan-out, LLM create) called in a loop on real agents
        with stubbed originals, one run's mix (41 / 41 / 41 / 30) at a time: their CPU with hot caches. With
        ``--traced`` the mixes run inside ``sys.call_tracing`` for ``valgrind --tool=callgrind
        --toggle-collect=sys_call_tracing`` (instructions per mix = "Collected" / mixes).
    .venv/bin/python benchmarks/probe_capture_overhead.py cold [--calls 400]
        The same wrappers (and an empty function) timed call by call, back to back and with unrelated work between
        calls that takes the caches and branch history elsewhere: what running cold costs them.
    .venv/bin/python benchmarks/probe_capture_overhead.py api
        The public API's calls alone in a hot loop (queue dropping items): the floor under the adapter, per call.
    perf record -e cpu-clock -F 1000 -D -1 --control=fifo:CTL,ACK -o OUT -- env PERF_CTL=CTL PERF_ACK=ACK \\
        .venv/bin/python benchmarks/probe_capture_overhead.py perf --variant capture_hot [--repeats 400]
        One variant's chats with perf sampling enabled only inside them (CTL and ACK made with ``mkfifo``).
    .venv/bin/python benchmarks/probe_capture_overhead.py join OFF.callgrind VAR.callgrind OFF.perf VAR.perf RUNS
        (a perf argument may name several files, comma-separated, RUNS chats in all) Per C function: callgrind's instructions per run (``--traced`` runs of 6 repeats) beside perf's CPU per run,
        and the functions whose instructions the variant leaves unchanged (AG2's own), to see whether they slow down.
"""

import argparse
import collections
import gc
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from autogen.io import IOStream
from bench_capture_overhead import build
from overhead_common import finish_capture, start_capture

import capture
from capture.store.migrate import upgrade
from workloads.scripted_llm import SilentStream

THREAD_MODES = ("off", "capture", "capture_hot", "capture_drop")


def _without(piece: str) -> list[tuple[Any, str, Any]]:
    """The (owner, attribute, value) patches that switch one piece of the Classic adapter off for an ablation run
    (``no_<piece>``: capture_hot without it)."""
    from capture import api
    from capture.adapters.ag2_classic import agent

    def silent_hook(owner: Any) -> Callable[..., Any]:
        return lambda sender=None, message=None, recipient=None, silent=False: message

    def without_wrapper(name: str) -> tuple[Any, str, Any]:
        return agent, "_WRAPPERS", tuple(entry for entry in agent._WRAPPERS if entry[0] != name)

    return {
        "reply": [without_wrapper("generate_reply")],  # the agent_call spans and the transitions
        "transition": [(agent, "record_transition", lambda *args: None)],
        "send": [(agent, "_send_hook", silent_hook)],
        "llm": [(agent, "_instrument_client", lambda *args: None)],  # llm_call spans and cost rows
        "cost": [(api, "record_cost", lambda **kwargs: None)],
        "tool": [without_wrapper("execute_function")],
    }[piece]


class Client:
    """A stand-in for ``OpenAIWrapper`` in the isolated probe: its usage summary, weakly referenceable."""

    def __init__(self) -> None:
        self.actual_usage_summary = {"total_cost": 0.1, "m": {"cost": 0.1}}


class Collections:
    """The collector's collections, full ones among them, and their CPU (this thread) while ``on``; a
    ``gc.callbacks`` entry."""

    def __init__(self) -> None:
        self.on, self.count, self.full, self.cpu, self._started = False, 0, 0, 0.0, 0.0
        gc.callbacks.append(self)

    def __call__(self, phase: str, info: dict) -> None:
        if not self.on:
            return
        if phase == "start":
            self._started = time.thread_time()
        else:
            self.count += 1
            self.full += info["generation"] == 2
            self.cpu += time.thread_time() - self._started


def chat(mode: str, tmp: Path, inside: Callable[[Callable[[], Any]], Any] = lambda run: run()) -> int | None:
    """Build the agents, start capture for ``mode`` and run one chat through ``inside``; the ``start_capture``
    mark (``finish_capture`` takes it)."""
    patches = _without(mode[3:]) if mode.startswith("no_") else []
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    for owner, name, value in patches:
        setattr(owner, name, value)
    try:
        return _chat(mode, tmp, inside)
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


def _chat(mode: str, tmp: Path, inside: Callable[[Callable[[], Any]], Any]) -> int | None:
    user, manager = build(10)
    variant = "capture_hot" if mode == "capture_drop" or mode.startswith("no_") else mode
    before = start_capture(variant, tmp, [user, manager])
    recorder = capture.get_recorder() if before is not None else None
    if mode == "capture_drop":
        recorder._q = collections.deque(maxlen=1)
    with IOStream.set_default(SilentStream()):
        inside(lambda: user.initiate_chat(manager, message="Start.", silent=True))
    if mode == "capture_drop":
        recorder._q = collections.deque()
        capture.uninstrument([user, manager])
        return None
    finish_capture([user, manager], tmp, before)
    return before


def thread_probe(modes: list[str], repeats: int, tmp: Path) -> None:
    """Print per mode the medians of the agents' thread CPU, minor faults, context switches and collections."""
    collected = Collections()
    rows: dict[str, list[tuple[float, ...]]] = {m: [] for m in modes}

    def measured(run: Callable[[], Any]) -> tuple[float, ...]:
        collected.on, collected.count, collected.full, collected.cpu = True, 0, 0, 0.0
        usage, cpu = resource.getrusage(resource.RUSAGE_THREAD), time.thread_time()
        run()
        cpu, after = time.thread_time() - cpu, resource.getrusage(resource.RUSAGE_THREAD)
        collected.on = False
        return (cpu * 1e3, after.ru_minflt - usage.ru_minflt, after.ru_nvcsw - usage.ru_nvcsw,
                after.ru_nivcsw - usage.ru_nivcsw, collected.count, collected.full, collected.cpu * 1e3)

    for mode in modes:
        chat(mode, tmp)
    for _ in range(repeats):
        for mode in modes:
            chat(mode, tmp, lambda run, mode=mode: rows[mode].append(measured(run)))
    print(f"load average {os.getloadavg()[0]:.2f}, {repeats} interleaved runs each; medians, the collector's "
          f"figures means\n")
    print("| variant | CPU ms | / off | minor faults | voluntary switches | involuntary | collections | full | "
          "GC CPU ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    base = statistics.median(r[0] for r in rows["off"])
    for mode in modes:
        cpu, faults, vol, invol = (statistics.median(r[i] for r in rows[mode]) for i in range(4))
        count, full, gc_cpu = (statistics.mean(r[i] for r in rows[mode]) for i in (4, 5, 6))
        print(f"| {mode} | {cpu:.3f} | {cpu / base:.3f} | {faults:.0f} | {vol:.0f} | {invol:.0f} | {count:.2f} | "
              f"{full:.3f} | {gc_cpu:.3f} |")


def wrapper_calls() -> dict[str, Callable[[], Any]]:
    """The Classic adapter's per-round wrappers on real, instrumented agents with stubbed originals (the queue drops
    items): one call each of a reply, a send, a round's fan-out (three sends) and an LLM create. Call inside a run and
    a span."""
    from capture.adapters import patching
    from capture.adapters.ag2_classic import agent as adapter

    user, manager = build(10)
    planner, engineer, executor, reviewer = manager.groupchat.agents
    capture.instrument([user, manager])
    capture.get_recorder()._q = collections.deque(maxlen=1)
    message = {"content": "Plan 3.", "role": "assistant", "name": "planner"}
    manager.groupchat.messages.append(message)
    manager._last_speaker = planner
    reply = dict(adapter._WRAPPERS)["generate_reply"](engineer, lambda *a, **k: {"content": "done", "role": "assistant"})
    fan_out, send = adapter._send_hook(manager), adapter._send_hook(planner)
    client = Client()
    response = SimpleNamespace(usage=SimpleNamespace(prompt_tokens=100, completion_tokens=10), cost=0.001, model="m",
                               choices=[SimpleNamespace(message=SimpleNamespace(content="Plan 1.", tool_calls=None))])
    patching.activate(client)
    create = adapter._wrap_client_create(planner, client, lambda **config: response)

    def round_fan_out() -> None:
        for recipient in (engineer, executor, reviewer):
            fan_out(sender=manager, message=message, recipient=recipient, silent=True)

    return {"reply": lambda: reply(sender=manager),
            "send": lambda: send(sender=planner, message=message, recipient=manager, silent=False),
            "fan-out (3 sends)": round_fan_out, "LLM create": lambda: create(messages=[message], agent=planner)}


def isolated_probe(traced: bool, mixes: int) -> None:
    """Time (or, traced, count) one run's mix of the adapter's per-round wrappers, hot."""
    with capture.run("isolated"), capture.span("agent_call", agent_name="chat_manager"):
        calls = wrapper_calls()

        def mix() -> None:
            for _ in range(41):
                calls["reply"]()
                calls["send"]()
                calls["fan-out (3 sends)"]()
            for _ in range(30):
                calls["LLM create"]()

        for _ in range(3):
            mix()
        started = time.thread_time()
        if traced:
            sys.call_tracing(lambda: [mix() for _ in range(mixes)], ())
        else:
            for _ in range(mixes):
                mix()
        per_mix = (time.thread_time() - started) / mixes
    capture.get_recorder()._q = collections.deque()
    print(f"one run's mix of reply/send/fan-out/create wrappers, hot: {per_mix * 1e6:.1f} us CPU per mix "
          f"({mixes} mixes{', traced' if traced else ''}; load average {os.getloadavg()[0]:.2f})")


def cold_probe(calls_each: int) -> None:
    """Each wrapper call timed on its own (``perf_counter_ns``), back to back (hot) and with unrelated work between
    calls (a 4 MB copy and a JSON round trip of a nested document: caches and branch history go to other code, as
    AG2's work does between capture's calls in a chat), twice each, alternated; medians of the per-call means."""
    import json

    big = bytearray(4 * 1024 * 1024)
    document = {f"k{i}": [{"a": i, "b": str(i) * 3, "c": [1.5, None, True]} for _ in range(5)] for i in range(200)}

    def elsewhere() -> None:
        bytes(big)
        json.loads(json.dumps(document))

    means: dict[tuple[str, bool], list[float]] = collections.defaultdict(list)
    with capture.run("cold"), capture.span("agent_call", agent_name="chat_manager"):
        calls = wrapper_calls()
        calls["an empty function"] = lambda: None
        for between in (False, True, False, True, False, True):
            spent: collections.Counter = collections.Counter()
            for _ in range(calls_each):
                for name, call in calls.items():
                    if between:
                        elsewhere()
                    started = time.perf_counter_ns()
                    call()
                    spent[name] += time.perf_counter_ns() - started
            for name in calls:
                means[name, between].append(spent[name] / calls_each)
    capture.get_recorder()._q = collections.deque()
    print(f"load average {os.getloadavg()[0]:.2f}; {calls_each} calls each, 3 rounds of each kind, alternated\n")
    print("| call | back to back, us | with other work between calls, us | ratio |")
    print("|---|---:|---:|---:|")
    for name in calls:
        hot, cold = (statistics.median(means[name, between]) / 1e3 for between in (False, True))
        print(f"| {name} | {hot:.2f} | {cold:.2f} | {cold / hot:.1f} |")


def api_probe() -> None:
    """Print the hot-loop CPU of each public API call the adapter makes per event, and one run's worth of them."""
    import timeit

    from capture import api

    recorder = capture.get_recorder()
    recorder._q = collections.deque(maxlen=1)

    def span() -> None:
        api.span("llm_call", agent_name="a", owned=True, inputs={"messages": 3}).__enter__().__exit__(None, None, None)

    calls = {
        "span (enter + exit: 2 items)": (81, span),
        "record_message": (82, lambda: api.record_message("a", "b", "hello", meta={"silent": False}, owned=True)),
        "record_event": (41, lambda: api.record_event("handoff", "speaker_selection", agent_name="a", owned=True,
                                                      inputs={"from": "b", "to": "a"}, meta={"method": "m"})),
        "record_cost": (30, lambda: api.record_cost(agent_name="a", model="m", prompt_tokens=1, completion_tokens=2,
                                                    cost_usd=0.1, event_id="e")),
    }
    total = 0.0
    with capture.run("api"), capture.span("agent_call", agent_name="chat_manager"):
        for name, (per_run, call) in calls.items():
            each = min(timeit.repeat(call, number=50_000, repeat=5)) / 50_000
            total += each * per_run
            print(f"| {name} | {each * 1e9:.0f} ns | x {per_run} a run |")
    recorder._q = collections.deque()
    print(f"one run's calls (as the benchmark's chat makes them): {total * 1e6:.0f} us, hot "
          f"(load average {os.getloadavg()[0]:.2f})")


def perf_probe(variant: str, repeats: int, tmp: Path) -> None:
    """Run ``variant``'s chats with perf's sampling switched on (PERF_CTL / PERF_ACK fifos) only inside them."""
    control = os.open(os.environ["PERF_CTL"], os.O_WRONLY)
    ack = os.open(os.environ["PERF_ACK"], os.O_RDONLY)

    def sampled(run: Callable[[], Any]) -> float:
        os.write(control, b"enable\n")
        os.read(ack, 16)
        started = time.thread_time()
        run()
        used = time.thread_time() - started
        os.write(control, b"disable\n")
        os.read(ack, 16)
        return used

    for _ in range(3):
        chat(variant, tmp)
    used: list[float] = []
    for _ in range(repeats):
        chat(variant, tmp, lambda run: used.append(sampled(run)))
    print(f"{variant}: {repeats} chats sampled, CPU median {statistics.median(used) * 1e3:.3f} ms "
          f"(load average {os.getloadavg()[0]:.2f})")


def callgrind_per_run(path: str, runs: int) -> collections.Counter:
    """Instructions per run of each C function (its own, recursion levels summed) in a callgrind output."""
    out = subprocess.run(["callgrind_annotate", "--threshold=100", path], capture_output=True, text=True,
                         check=True).stdout
    counts: collections.Counter = collections.Counter()
    for line in out.splitlines():
        found = re.match(r"\s*([\d,]+) \([^)]*\)\s+(\S+)", line)
        if found and "PROGRAM" not in line:
            counts[found.group(2).split(":")[-1].split("'")[0]] += int(found.group(1).replace(",", "")) / runs
    return counts


def perf_us_per_run(paths: str, runs: int, hz: int) -> collections.Counter:
    """Microseconds of CPU per run of each C function, from the ``perf script`` samples at ``hz`` of the
    comma-separated ``paths`` (``runs`` chats in all)."""
    counts: collections.Counter = collections.Counter()
    for path in paths.split(","):
        out = subprocess.run(["perf", "script", "-i", path, "-F", "ip,sym"], capture_output=True, text=True,
                             check=True).stdout
        for line in out.splitlines():
            fields = line.split()
            if fields:
                counts[fields[1] if len(fields) > 1 else "?"] += 1e6 / hz / runs
    return counts


def join(args: argparse.Namespace) -> None:
    """Print instructions beside CPU per function for off and the variant, and AG2's unchanged functions."""
    ir_off, ir_var = callgrind_per_run(args.off_callgrind, 6), callgrind_per_run(args.variant_callgrind, 6)
    us_off, us_var = (perf_us_per_run(path, args.runs, args.hz) for path in (args.off_perf, args.variant_perf))
    print(f"per run: instructions {sum(ir_off.values()) / 1e6:.2f} M -> {sum(ir_var.values()) / 1e6:.2f} M, "
          f"CPU {sum(us_off.values()):.0f} -> {sum(us_var.values()):.0f} us\n")
    print("| function | off M instr | off us | ns/instr | variant M instr | variant us | ns/instr |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in sorted(set(ir_off) | set(ir_var), key=lambda n: -(ir_off[n] + ir_var[n]))[:args.top]:
        cells = [f"{ir / 1e6:.2f} | {us:.0f} | {us / ir * 1e3 if ir else 0:.3f}"
                 for ir, us in ((ir_off[name], us_off[name]), (ir_var[name], us_var[name]))]
        print(f"| {name} | {cells[0]} | {cells[1]} |")
    same = [n for n in ir_off if ir_off[n] > 2e5 and abs(ir_var[n] - ir_off[n]) <= 0.01 * ir_off[n]]
    print(f"\nfunctions whose instructions the variant leaves unchanged (+-1%, > 0.2 M a run; {len(same)}): "
          f"{sum(ir_off[n] for n in same) / 1e6:.2f} M instructions, CPU {sum(us_off[n] for n in same):.0f} -> "
          f"{sum(us_var[n] for n in same):.0f} us per run")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="probe", required=True)
    threads = sub.add_parser("threads")
    threads.add_argument("--repeats", type=int, default=30)
    threads.add_argument("--variants", default=",".join(THREAD_MODES))
    isolated = sub.add_parser("isolated")
    isolated.add_argument("--traced", action="store_true")
    isolated.add_argument("--mixes", type=int, default=20)
    sub.add_parser("api")
    cold = sub.add_parser("cold")
    cold.add_argument("--calls", type=int, default=400)
    perf = sub.add_parser("perf")
    perf.add_argument("--variant", default="capture_hot", choices=THREAD_MODES)
    perf.add_argument("--repeats", type=int, default=400)
    joined = sub.add_parser("join")
    for name in ("off_callgrind", "variant_callgrind", "off_perf", "variant_perf"):
        joined.add_argument(name)
    joined.add_argument("runs", type=int)
    joined.add_argument("--hz", type=int, default=1000)
    joined.add_argument("--top", type=int, default=20)
    args = parser.parse_args(argv)
    if args.probe == "join":
        join(args)
        return 0
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        upgrade(f"sqlite:///{tmp / 'capture.db'}")
        capture.configure(database_url=f"sqlite:///{tmp / 'capture.db'}", spool_dir=tmp / "spool",
                          batch_size=10**6, flush_interval_s=3600.0)
        if args.probe == "threads":
            thread_probe(args.variants.split(","), args.repeats, tmp)
        elif args.probe == "isolated":
            isolated_probe(args.traced, args.mixes)
        elif args.probe == "api":
            api_probe()
        elif args.probe == "cold":
            cold_probe(args.calls)
        else:
            perf_probe(args.variant, args.repeats, tmp)
        capture.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
