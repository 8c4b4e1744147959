"""What the scale tests compare: the skills a library release published."""

import json
from pathlib import Path


def released_skills(library: Path) -> dict[str, str]:
    """Skill name -> content hash of every published skill document."""
    docs = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(library.rglob("*.json"))
            if "skills" in p.relative_to(library).parts]
    return {doc["name"]: doc["content_hash"] for doc in docs}
