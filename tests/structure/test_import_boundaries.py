"""Import boundaries: no import cycles between project modules, and the directions DESIGN.md draws between packages
and between the rooms of ``capture/``.

Imports are read with :mod:`ast` from every module, including imports inside functions and ``TYPE_CHECKING``
blocks: a cycle hidden behind a local import is still a cycle. ``from package import name`` is an import of
``package.name`` when that is a module, else of ``package`` (its ``__init__``). Importing ``a.b.c`` is not counted
as importing the packages ``a`` and ``a.b`` (Python runs their ``__init__`` first, but they are parents, not
dependencies).
"""

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("capture", "skill_library", "skill_pipeline", "workloads", "skillmine", "migrations")
HEAVY = ("dagster", "duckdb", "sklearn")  # never imported by capture or skill_library (DESIGN.md)

# The rooms of capture/ and what each may import besides itself (DESIGN.md, "Capture rooms"). Longest prefix wins.
CAPTURE_ROOMS: dict[str, frozenset[str]] = {
    "capture.core": frozenset(),
    "capture.store": frozenset({"capture.core"}),
    "capture.otel": frozenset({"capture.core"}),
    "capture.sinks": frozenset({"capture.core", "capture.store", "capture.otel"}),
    "capture.recorder": frozenset({"capture.core", "capture.sinks"}),
    "capture.api": frozenset({"capture.core", "capture.recorder"}),
    "capture.adapters": frozenset({"capture.core", "capture.api"}),
    "capture.importers": frozenset({"capture.core", "capture.store"}),
    "capture.read": frozenset({"capture.core", "capture.store", "capture.otel"}),
    "capture": frozenset({"capture.core", "capture.api", "capture.adapters"}),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    """Every module of the project's packages, by dotted name."""
    return {_module_name(p): p for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))}


def imports_of(path: Path, name: str, modules: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import in the file, third-party ones included."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            for alias in node.names:
                yield (f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base), node.lineno


def import_graph() -> dict[str, dict[str, int]]:
    """module -> {imported project module: line of the first such import}."""
    modules = project_modules()
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        edges = graph.setdefault(name, {})
        for target, line in imports_of(path, name, modules):
            if target in modules and target != name:
                edges.setdefault(target, line)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _room(module: str) -> str | None:
    matches = [room for room in CAPTURE_ROOMS if module == room or module.startswith(room + ".")]
    return max(matches, key=len) if matches else None


def test_the_checks_see_a_cycle_hidden_in_a_function(tmp_path):
    assert cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b": 1}, "b": {}}) == []
    snippet = tmp_path / "snippet.py"
    snippet.write_text("def f():\n    from capture.core import clock\n    from . import api\n")
    assert list(imports_of(snippet, "capture.snippet", project_modules())) == [("capture.core.clock", 2),
                                                                              ("capture.api", 3)]


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles (imports inside functions included):\n" + "\n".join(
        " <-> ".join(c) for c in found)


def test_capture_and_skill_library_never_import_dagster_duckdb_or_sklearn():
    modules = project_modules()
    bad = [f"{path.relative_to(REPO)}:{line} imports {target}"
           for name, path in modules.items() if name.split(".")[0] in ("capture", "skill_library")
           for target, line in imports_of(path, name, modules) if target.split(".")[0] in HEAVY]
    assert not bad, "\n".join(bad)


def test_capture_rooms_import_in_one_direction():
    """Each room imports only the rooms below it; a room's ``cli`` module is an entry point (it may read any room,
    and nothing in capture imports it); capture never imports the packages built on it."""
    graph = import_graph()
    modules = project_modules()
    bad = []
    for name, edges in graph.items():
        room = _room(name)
        if room is None:
            continue
        for target, line in edges.items():
            where = f"{modules[name].relative_to(REPO)}:{line} imports {target}"
            other = _room(target)
            if target.split(".")[0] in ("skill_library", "skill_pipeline", "workloads"):
                bad.append(f"{where} (built on capture)")
            elif other is not None and target.rpartition(".")[2] == "cli":
                bad.append(f"{where} (a cli module is an entry point)")
            elif other not in (None, room) and other not in CAPTURE_ROOMS[room] and name.rpartition(".")[2] != "cli":
                bad.append(f"{where} ({room} -> {other})")
    assert not bad, "\n".join(bad)


def test_import_capture_and_instrument_load_no_sqlalchemy():
    code = ("import sys, capture\n"
            "assert 'sqlalchemy' not in sys.modules, 'import capture'\n"
            "from autogen import ConversableAgent\n"
            "agent = ConversableAgent('a', llm_config=False, human_input_mode='NEVER')\n"
            "capture.instrument(agent)\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'alembic'))\n"
            "assert not heavy, heavy[:5]\n")
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                         check=False)
    assert run.returncode == 0, run.stderr[-2000:]


def test_terminal_output_is_one_leaf_that_capture_and_skill_library_load_only_to_print():
    """``skillmine.console`` imports nothing of the project; ``capture`` and ``skill_library`` reach ``rich`` only
    through it, and what an agent process, an importer, the CLI's registration or a skill consumer imports loads no
    ``rich`` (DESIGN.md, "One CLI")."""
    modules = project_modules()
    leaf = [target for target, _ in imports_of(modules["skillmine.console"], "skillmine.console", modules)
            if target.split(".")[0] in PACKAGES]
    assert not leaf, leaf
    bad = [f"{path.relative_to(REPO)}:{line} imports {target}"
           for name, path in modules.items() if name.split(".")[0] in ("capture", "skill_library")
           for target, line in imports_of(path, name, modules)
           if target.split(".")[0] == "rich" or (target.split(".")[0] == "skillmine" and target != "skillmine.console")]
    assert not bad, "\n".join(bad)
    code = ("import sys, capture, capture.importers.common, capture.importers.cli, capture.store.cli\n"
            "import capture.read.trace_api.cli, skill_library, skill_library.cli\n"
            "assert not [m for m in sys.modules if m.split('.')[0] == 'rich'], 'rich loaded'\n")
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                         check=False)
    assert run.returncode == 0, run.stderr[-2000:]
