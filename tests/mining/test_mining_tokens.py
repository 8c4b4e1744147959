from skill_pipeline.mining.tokens import (
    canonical_sequence,
    event_token,
    node_sequences,
    order_events,
    parse_token,
    run_sequences,
    token_events,
)


def ev(seq, etype, agent, eo=None, run="r1", node="n1", sub=None, **meta):
    return {"run_id": run, "node_id": node, "seq": seq, "execution_order": eo if eo is not None else seq,
            "event_type": etype, "event_subtype": sub, "agent_name": agent, "status": "completed",
            "meta": meta, "inputs": {}, "outputs": {}}


EVENTS = [
    ev(1, "agent_call", "engineer", sub="start"),
    ev(2, "llm_call", "engineer"),
    ev(3, "message", "engineer"),
    ev(4, "agent_call", "engineer", sub="complete"),
    ev(5, "handoff", "engineer"),
    ev(6, "code_exec", "executor", sub="start"),
    ev(7, "code_exec", "executor", sub="complete", exit_code=1),
    ev(8, "error", "executor"),
    ev(9, "code_exec", "executor", exit_code=0),
    ev(10, "file_gen", "executor", file_type="plot"),
    ev(11, "tool_call", "control", tool_name="record_status_closure"),
    ev(12, "agent_call", None, node=None),
    ev(13, "weird_type", "system"),
]


def test_standard_tokens_pair_start_and_complete_and_mark_failures():
    seqs = run_sequences(EVENTS)
    assert seqs == {"r1": ["agent_call:engineer", "code_exec:executor:fail", "error:executor",
                           "code_exec:executor:ok", "tool_call:control:record_status", "agent_call:unknown"]}


def test_granularities():
    assert run_sequences(EVENTS, "coarse")["r1"] == ["agent_call:engineer", "agent_call:unknown"]
    fine = run_sequences(EVENTS, "fine")["r1"]
    assert "file_gen:executor:plot" in fine and "handoff:engineer" in fine and "weird_type:system" in fine
    assert not any(t.startswith(("llm_call", "message")) for t in fine)


def test_ordering_by_execution_order_with_gaps_then_seq():
    evs = [ev(1, "agent_call", "b", eo=20), ev(2, "agent_call", "a", eo=5), ev(3, "agent_call", "c", eo=None)]
    evs[2]["execution_order"] = None  # inherits 5 from the event stored just before it (seq 2)
    assert [e["agent_name"] for e in order_events(evs)] == ["a", "c", "b"]
    assert [t for t, _ in token_events(evs)] == ["agent_call:a", "agent_call:c", "agent_call:b"]


def test_node_sequences_and_events_without_node():
    ns = node_sequences(EVENTS)
    assert ns[("r1", None)] == ["agent_call:unknown"]
    assert ns[("r1", "n1")][0] == "agent_call:engineer"


def test_token_helpers():
    assert parse_token("tool_call:control:record_status") == ("tool_call", "control", "record_status")
    assert event_token({"event_type": "agent_call", "agent_name": "my agent"}) == "agent_call:my_agent"
    assert event_token({"event_type": "message", "agent_name": "x"}) is None
    assert canonical_sequence(["code_exec:executor:fail", "error:executor", "code_exec:executor:ok"]) == [
        "code_exec:executor", "code_exec:executor"]
