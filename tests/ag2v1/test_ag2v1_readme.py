"""The README's "Capture AG2 v1" example runs as written in the AG2 v1 environment and stores what it says."""

import re
import subprocess
from pathlib import Path

import pytest
from v1_store import Captured

pytestmark = pytest.mark.ag2v1

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    section = README.read_text().split("## Capture AG2 v1\n", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "README's 'Capture AG2 v1' section has no python example"
    return match.group(1)


def test_readme_v1_example_runs_and_is_captured(ag2v1_python: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(readme_example())
    result = subprocess.run([ag2v1_python, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.strip() == "7 squared is 49."

    captured = Captured(f"sqlite:///{tmp_path / '.skillmine' / 'capture.db'}", {})
    (run,) = captured.rows("SELECT * FROM workflow_runs")
    assert (run["mode"], run["task_description"], run["status"]) == ("one_shot", "Square 7", "completed")
    (tool,) = captured.events("tool_call")
    assert (tool["inputs"]["call_id"], tool["outputs"]["content"]) == ("call_1", "49")
    (code,) = captured.events("code_exec")
    assert (code["inputs"]["call_id"], code["outputs"]["exit_code"], code["outputs"]["output"]) == ("call_2", 0, "49")
    llm = captured.events("llm_call")
    assert len(llm) == 3
    assert all(e["meta"]["cost_usd"] == pytest.approx((60 * 0.50 + 8 * 1.50) / 1e6) for e in llm)
    assert {e["meta"]["cost_source"] for e in llm} == {"computed"}
