"""Run by an interpreter that has AG2 v1 (``ag2>=1.2``), not by pytest: load an Agent Skills tree the way AG2's
``SkillsToolkit`` and ``SkillPlugin`` do and print, as JSON, what they see (``python ag2v1_probe.py DIR``)."""

import asyncio
import dataclasses
import json
import sys

from ag2.tools.skills import SkillPlugin, SkillsToolkit
from ag2.tools.skills.runtime import LocalRuntime


def probe(root: str) -> dict[str, object]:
    """Every skill the toolkit lists, its loaded body, its resources and its round-tripped reference document."""
    runtime = LocalRuntime(root)
    toolkit = SkillsToolkit(runtime)
    plugin = SkillPlugin(runtime)
    skills = {}
    for entry in toolkit.discover_skills():
        name = entry["name"]
        skill = next(s for s in toolkit.merged_skills() if s.name == name)
        reference = asyncio.run(runtime.read_resource(name, "references/skill.json", None))
        skills[name] = {"description": entry["description"], "body": asyncio.run(runtime.read(name, None)),
                        "resources": sorted(r.name for r in skill.resources),
                        "metadata": dataclasses.asdict(skill.metadata), "reference": json.loads(reference)}
    return {"skills": skills, "plugin_prompt": "\n".join(str(p) for p in plugin._system_prompt),
            "plugin_tools": sorted(t.name for t in plugin._tools)}


if __name__ == "__main__":
    print(json.dumps(probe(sys.argv[1])))
