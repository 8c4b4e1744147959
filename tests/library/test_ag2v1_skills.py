"""AG2 v1 (``ag2>=1.2``) reads the Agent Skills export: its ``SkillsToolkit`` lists every exported skill, loads its
body and its ``references/skill.json``, and ``SkillPlugin`` puts every skill in its catalogue prompt.

AG2 v1 and AG2 Classic share the distribution name ``ag2``, so v1 lives in its own environment, the one the
``tests/ag2v1`` capture tests use: ``export SKILLMINE_AG2V1_PYTHON="$(scripts/ag2v1_env.sh)"``. The probe runs
there (it needs nothing but AG2 v1); without the variable the test is skipped locally and fails in CI.
"""

import json
import subprocess
from pathlib import Path

import pytest

from skill_library import open_library
from skill_library.agent_skills import agent_skill_name

PROBE = Path(__file__).with_name("ag2v1_probe.py")


@pytest.mark.ag2v1
def test_ag2_v1_skills_toolkit_and_plugin_read_every_exported_skill(mined: tuple[str, Path], tmp_path: Path,
                                                                    ag2v1_python: str) -> None:
    library = open_library(mined[1])
    root = library.export_agent_skills(tmp_path / ".agents" / "skills").path
    result = subprocess.run([ag2v1_python, str(PROBE), str(root)], capture_output=True, text=True, check=False,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    expected = {agent_skill_name(s["name"]): library.get(s["name"]) for s in library.skills(include_deprecated=False)}
    assert sorted(seen["skills"]) == sorted(expected)
    for name, doc in expected.items():
        skill = seen["skills"][name]
        assert skill["reference"] == doc
        assert skill["resources"] == ["evals/evals.json", "references/skill.json"]
        assert skill["metadata"]["name"] == name and skill["description"].startswith(doc["title"])
        assert "## Steps" in skill["body"] and doc["task_template"] in skill["body"]
        assert f"<name>{name}</name>" in seen["plugin_prompt"]
    assert seen["plugin_tools"] == ["load_skill", "read_skill_resource"]
