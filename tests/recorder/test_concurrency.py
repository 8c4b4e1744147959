"""Nesting stays right with 8 runs in threads and 8 runs as asyncio tasks, each with concurrent child spans."""

import asyncio
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import capture
from capture.core.context import bind

from .conftest import settle


def _check(fetch, url, expected_runs):
    events = fetch(url, "SELECT id, run_id, parent_event_id, depth, execution_order, agent_name, event_type "
                        "FROM execution_events")
    by_id = {e["id"]: e for e in events}
    assert len(events) == sum(len(v) for v in expected_runs.values())
    for run_id, spans in expected_runs.items():
        for event_id, (parent_id, depth, agent) in spans.items():
            row = by_id[event_id]
            assert (row["run_id"], row["parent_event_id"], row["depth"], row["agent_name"]) == \
                (run_id, parent_id, depth, agent)
            if parent_id is not None:
                assert by_id[parent_id]["run_id"] == run_id
    for run_id in expected_runs:
        orders = sorted(e["execution_order"] for e in events if e["run_id"] == run_id)
        assert orders == list(range(1, len(expected_runs[run_id]) + 1))


def test_eight_runs_in_threads_with_pool_children(recorder, url, fetch):
    expected: dict[str, dict] = {}
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def one_run(index: int) -> None:
        seen = {}
        with capture.run(f"thread-{index}") as run:
            barrier.wait()
            with capture.span("agent_call", agent_name=f"agent{index}") as top:
                seen[top.id] = (None, 0, f"agent{index}")

                def child(k: int) -> None:
                    with capture.span("tool_call", agent_name=f"tool{index}.{k}") as tool:
                        seen[tool.id] = (top.id, 1, f"tool{index}.{k}")
                        leaf = capture.record_event("info", "debug", agent_name=f"leaf{index}.{k}")
                        seen[leaf] = (tool.id, 2, f"leaf{index}.{k}")

                with ThreadPoolExecutor(4) as pool:
                    list(pool.map(bind(child), range(6)))
                explicit = {}

                def explicit_child() -> None:  # a bare thread: no context, parent given explicitly
                    with capture.span("llm_call", agent_name=f"llm{index}", parent_event_id=top.id) as llm:
                        explicit["id"] = llm.id
                thread = threading.Thread(target=explicit_child)
                thread.start()
                thread.join()
                seen[explicit["id"]] = (top.id, 1, f"llm{index}")
        with lock:
            expected[run.id] = seen

    threads = [threading.Thread(target=one_run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert capture.flush(10)
    assert len(expected) == 8
    _check(fetch, url, expected)


def test_eight_runs_in_asyncio_gather_with_nested_children(recorder, url, fetch):
    expected: dict[str, dict] = defaultdict(dict)

    async def leaf(run_id: str, parent: str, name: str) -> None:
        await asyncio.sleep(0)
        with capture.span("tool_call", agent_name=name) as tool:
            expected[run_id][tool.id] = (parent, 2, name)
            await asyncio.sleep(0.001)
            event = capture.record_event("info", "trace", agent_name=name + ".done")
            expected[run_id][event] = (tool.id, 3, name + ".done")

    async def child(run_id: str, parent: str, name: str) -> None:
        with capture.span("llm_call", agent_name=name) as llm:
            expected[run_id][llm.id] = (parent, 1, name)
            await asyncio.gather(*(leaf(run_id, llm.id, f"{name}.{k}") for k in range(3)))

    async def one_run(index: int) -> None:
        with capture.run(f"async-{index}") as run:
            with capture.span("agent_call", agent_name=f"agent{index}") as top:
                expected[run.id][top.id] = (None, 0, f"agent{index}")
                await asyncio.gather(*(child(run.id, top.id, f"a{index}.c{k}") for k in range(3)))

    async def main() -> None:
        await asyncio.gather(*(one_run(i) for i in range(8)))

    asyncio.run(main())
    assert capture.flush(10)
    assert len(expected) == 8
    assert all(len(spans) == 1 + 3 + 9 + 9 for spans in expected.values())
    _check(fetch, url, dict(expected))


def test_forked_child_records_its_own_events_and_never_rewrites_the_parents(recorder, url, fetch):
    import multiprocessing

    with capture.run("parent") as run:
        before = capture.record_event("info", "trace", agent_name="parent")  # queued, not yet written

        def child() -> None:
            ids = [capture.record_event("info", "trace", agent_name="child") for _ in range(3)]
            assert capture.flush(10)
            assert settle() and capture.stats()["enqueued"] == 3 and len(ids) == 3

        process = multiprocessing.get_context("fork").Process(target=child)
        process.start()
        process.join(30)
        assert process.exitcode == 0
        assert settle()
    rows = fetch(url, "SELECT agent_name, run_id FROM execution_events ORDER BY agent_name")
    assert [(r["agent_name"], r["run_id"]) for r in rows] == [("child", run.id)] * 3 + [("parent", run.id)]
    assert fetch(url, "SELECT count(*) AS n FROM execution_events WHERE id = :i", i=before) == [{"n": 1}]
