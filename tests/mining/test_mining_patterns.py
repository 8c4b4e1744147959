from skill_pipeline.mining.patterns import describe_pattern, mine_pattern

E = ["agent_call:engineer", "agent_call:executor", "code_exec:executor:ok"]
F = ["agent_call:engineer", "agent_call:executor", "code_exec:executor:fail", "error:executor"]
HEAD = ["agent_call:planner"]
TAIL = ["agent_call:control", "agent_call:terminator"]


def members():
    seqs = []
    for i, attempts in enumerate([1, 1, 1, 2, 3, 4, 1, 1, 2, 1]):
        mid = ["tool_call:control:record_status"] if i < 3 else []  # present in 30% -> optional
        seqs.append(HEAD + F * (attempts - 1) + E + mid + TAIL)
    return seqs


def test_consensus_with_optional_step_and_repeat_block():
    p = mine_pattern(members())
    toks = [s.token for s in p.steps]
    assert toks == ["agent_call:planner", "agent_call:engineer", "agent_call:executor", "code_exec:executor",
                    "tool_call:control:record_status", "agent_call:control", "agent_call:terminator"]
    opt = {s.token: s.optional for s in p.steps}
    assert opt["tool_call:control:record_status"] and not opt["agent_call:planner"]
    assert len(p.blocks) == 1
    b = p.blocks[0]
    assert (b.start, b.end, b.min, b.max, b.until) == (1, 4, 1, 4, "success")
    assert b.counts == {1: 6, 2: 2, 3: 1, 4: 1}
    assert [rc[0] for rc in p.repeat_counts] == [1, 1, 1, 2, 3, 4, 1, 1, 2, 1]
    assert p.exact_share == 1.0 and p.mean_similarity == 1.0 or p.mean_similarity > 0.8
    assert "repeated 1-4 times until success" in describe_pattern(p)
    assert p.matches(HEAD + F + E + TAIL)
    assert not p.matches(HEAD + TAIL)


def test_rare_insertions_are_dropped_and_frequent_ones_kept():
    base = HEAD + E + TAIL
    seqs = [list(base) for _ in range(10)]
    seqs[0] = HEAD + ["agent_call:noise"] + E + TAIL  # 10% -> dropped
    for i in range(1, 5):  # 40% -> optional step
        seqs[i] = HEAD + E + ["agent_call:installer"] + TAIL
    p = mine_pattern(seqs)
    toks = [s.token for s in p.steps]
    assert "agent_call:noise" not in toks
    inst = next(s for s in p.steps if s.token == "agent_call:installer")
    assert inst.optional and abs(inst.frequency - 0.4) < 1e-9
    assert toks.index("agent_call:installer") == toks.index("code_exec:executor") + 1
    assert p.fits.count(False) == 1
