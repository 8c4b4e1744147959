"""Property-based Agent Skills rendering: whatever text a mined skill carries (quotes, colons, ``---``, newlines,
control characters, any script) and however many steps it has, the exported folder passes the ``skills-ref``
validator, its frontmatter reads back to exactly the description and metadata written, the body stays within 500
lines, and the export verifies."""

import tempfile
from pathlib import Path

from conftest import plot_candidate
from hypothesis import given, settings
from hypothesis import strategies as st
from skills_ref.parser import read_properties
from skills_ref.validator import validate

from skill_library import open_library, publish
from skill_library.agent_skills import MAX_BODY_LINES, skill_description, verify_export

TEXT = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=120).filter(lambda t: t.strip())
TRICKY = st.sampled_from(["a --- b", "---", "key: value # not a comment", '"quoted" \\ back', "line\nbreak", "\t",
                          "{{literal}}", "---\nname: evil\n---", "\u2028", "é中文😀"])
WORDS = st.one_of(TEXT, TRICKY)


@settings(max_examples=25, deadline=None)
@given(title=WORDS, words=WORDS, agents=st.lists(WORDS, min_size=1, max_size=4), steps=st.integers(1, 600),
       category=WORDS)
def test_any_text_and_any_length_export_valid_agent_skills(title: str, words: str, agents: list[str], steps: int,
                                                           category: str) -> None:
    template = words.replace("{", "{{").replace("}", "}}") + " {function}"
    candidate = plot_candidate(title=title, description=words, category=category, task_template=template,
                               steps=[{"agent": agents[i % len(agents)], "action": words, "tool": None}
                                      for i in range(steps)])
    with tempfile.TemporaryDirectory() as tmp:
        publish(Path(tmp) / "lib", [candidate])
        library = open_library(Path(tmp) / "lib")
        doc = library.get("plot_function")
        root = library.export_agent_skills(Path(tmp) / "skills").path
        folder = root / "plot-function"
        assert validate(folder) == []
        props = read_properties(folder)
        assert props.description == skill_description(doc).strip()
        assert props.metadata["skillmine-name"] == "plot_function"
        assert props.metadata["content-hash"] == doc["content_hash"]
        body = (folder / "SKILL.md").read_text("utf-8").split("\n---\n", 1)[1]
        assert len(body.splitlines()) <= MAX_BODY_LINES
        assert verify_export(root).ok
