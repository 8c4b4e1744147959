"""Parameter values of a run read back from a mined task template (``"Fit a {model} model to {data_file}"``).

Slot inference looks at a sample of a cluster's runs; every other member's values come from matching the mined
template against its task description.
"""

import re
from functools import lru_cache

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@lru_cache(maxsize=256)
def template_regex(template: str) -> re.Pattern[str] | None:
    """An anchored regex with one named group per placeholder (None when a name repeats or none exist)."""
    parts = PLACEHOLDER.split(template)
    names = parts[1::2]
    if not names or len(set(names)) != len(names):
        return None
    body = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.+?)" for i, p in enumerate(parts))
    return re.compile(f"^{body}$", re.DOTALL)


def values_from_task(template: str, task: str) -> dict[str, str]:
    """Slot values of ``task`` under ``template`` ({} when it does not match)."""
    regex = template_regex(template)
    found = regex.match(task.strip()) if regex else None
    return {k: v.strip() for k, v in found.groupdict().items()} if found else {}
