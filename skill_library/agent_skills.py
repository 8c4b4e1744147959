"""Export a library release as Agent Skills folders (``SKILL.md`` + references + evals) and verify such a tree.

The export holds the skills consumers are served (``promotion.served_check``: those that passed replay, or all of
a library that verifies none), candidates too only when asked.

The Agent Skills format is what coding agents and AG2's ``SkillsToolkit`` read: one folder per skill, named as
the skill, holding ``SKILL.md`` (YAML frontmatter with ``name`` and ``description``, optionally ``license``,
``compatibility`` and a string-to-string ``metadata`` map, then a Markdown body). Each exported folder adds
``references/skill.json`` (the full skillmine document, so a program can round-trip it) and ``evals/evals.json``
(the format's evaluation convention: ``{"skill_name", "evals": [{"id", "prompt", "expected_output", "files",
"assertions"}]}``).

Folder names: a skillmine name (``[a-z0-9_]``, single underscores) becomes its Agent Skills name by turning
``_`` into ``-``; a name longer than 64 characters is cut to 55 and given ``-`` plus 8 hex digits of its sha256,
so the mapping is stable across releases and never depends on the other skills. The tree is deterministic (the
same release gives the same bytes) and ends with ``skillmine-export.json``, written last, which lists every
file's sha256; ``verify_export`` checks a tree against it. The frontmatter is written as YAML by hand (every
string double-quoted in JSON syntax, which YAML reads as the same string), so no YAML library is needed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import promotion, store
from .document import sha256_hex
from .errors import BundleError, IntegrityError
from .instantiate import render
from .values import placeholders
from .verify import VerifyReport, check_release_signature, verify_source

EXPORT_MANIFEST = "skillmine-export.json"
EXPORT_FORMAT = "skillmine.agent-skills/1"
SKILL_MD = "SKILL.md"
REFERENCE = "references/skill.json"
EVALS = "evals/evals.json"
RELEASE_DIR = ".skillmine-release"  # the release manifest (and signature) the export was made from
MAX_NAME = 64
MAX_DESCRIPTION = 1024
MAX_COMPATIBILITY = 500
MAX_BODY_LINES = 500
MAX_HOTSPOTS = 5  # also the most repeated groups whose recovery is described
MAX_PARAMETER_ROWS = 40
DESCRIPTION_AGENTS = 6
_AGENT_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_DASHES = re.compile(r"-(?=--)")


@dataclass(frozen=True)
class AgentSkillsExport:
    """What an export wrote: the tree, the release it came from and the skillmine -> Agent Skills names."""

    path: Path
    release: int
    names: dict[str, str]
    files: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "release": self.release, "skills": self.names, "files": self.files}


def agent_skill_name(name: str) -> str:
    """The Agent Skills folder and frontmatter name of a skillmine skill name (see the module docstring)."""
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if len(base) <= MAX_NAME and _AGENT_NAME.match(base):
        return base
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return f"{base[:MAX_NAME - 9].rstrip('-')}-{digest}".lstrip("-")


def _yaml_string(text: str) -> str:
    """A YAML double-quoted scalar: JSON string syntax is a subset YAML reads as the same text. Characters YAML
    readers refuse raw (controls, unassigned code points) are escaped, and a dash starting ``---`` is written
    ``\\u002d``: frontmatter readers split the file at the first ``---`` wherever it stands."""
    quoted = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}"
                     for c in json.dumps(text, ensure_ascii=False))
    return _DASHES.sub(r"\\u002d", quoted)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 3].rstrip() + "..."


def _percent(rate: float) -> str:
    return f"{rate * 100:.0f}%"


def _steps_phrase(doc: dict[str, Any], limit: int | None = None) -> str:
    """The agents of the required steps in order of first appearance (the first ``limit`` of them)."""
    agents = list(dict.fromkeys(s["agent"] for s in doc["steps"] if not s.get("optional")))
    shown = agents if limit is None or len(agents) <= limit else [*agents[:limit], f"{len(agents) - limit} more agents"]
    return " -> ".join(shown)


def _outputs_phrase(doc: dict[str, Any]) -> str:
    kinds = []
    for step in doc["steps"]:
        for out in step.get("expected_outputs", []):
            kinds.append(out["type"] + (f" ({out['format']})" if out.get("format") else ""))
    return ", ".join(dict.fromkeys(kinds))


def skill_description(doc: dict[str, Any]) -> str:
    """What the skill does and when to use it, from its title, template, steps and statistics (no run ids)."""
    stats = doc["statistics"]
    template = doc["task_template"]
    mode = f" in {doc['category']} workflows" if doc.get("category") not in (None, "", "general") else ""
    parts = [f"{doc['title'].rstrip('.')}.",
             f"Use when a task reads like \"{_cut(template, 300)}\"{mode}.",
             f"{len(doc['steps'])} steps by {_steps_phrase(doc, DESCRIPTION_AGENTS)}."]
    if outputs := _outputs_phrase(doc):
        parts.append(f"Produces {outputs}.")
    parts.append(f"Mined from {stats['support']} runs, {_percent(stats['success_rate'])} succeeded.")
    return _cut(" ".join(" ".join(parts).split()), MAX_DESCRIPTION)


def _compatibility(doc: dict[str, Any]) -> str:
    agents = ", ".join(dict.fromkeys(s["agent"] for s in doc["steps"]))
    tools = ", ".join(dict.fromkeys(s["tool"] for s in doc["steps"] if s.get("tool")))
    text = f"Multi-agent (AG2-style) workflow with the agents {agents}" + (f"; tools {tools}" if tools else "")
    return _cut(" ".join(text.split()) + ".", MAX_COMPATIBILITY)


def _metadata(doc: dict[str, Any], release: int, watermark: Any) -> dict[str, str]:
    stats = doc["statistics"]
    meta = {"skillmine-name": doc["name"], "skillmine-id": doc["id"], "version": doc["version"],
            "content-hash": doc["content_hash"], "support": str(stats["support"]),
            "success-rate": f"{stats['success_rate']:.4f}", "release": str(release)}
    if wilson := stats.get("success_wilson"):
        meta["success-wilson-95"] = f"{wilson[0]:.4f}-{wilson[1]:.4f}"
    if watermark is not None:
        meta["source-watermark"] = str(watermark)
    return meta


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text.replace("|", "\\|").replace("\n", " ")


def _repeat_groups(steps: list[dict[str, Any]]) -> dict[int, tuple[int, int]]:
    """Step index -> (first, last) index of the run of consecutive steps sharing the same repeat marker."""
    groups: dict[int, tuple[int, int]] = {}
    i = 0
    while i < len(steps):
        j = i
        if "repeat" in steps[i]:
            while j + 1 < len(steps) and steps[j + 1].get("repeat") == steps[i]["repeat"]:
                j += 1
            for k in range(i, j + 1):
                groups[k] = (i, j)
        i = j + 1
    return groups


def _step_line(number: int, step: dict[str, Any], group: tuple[int, int] | None) -> str:
    line = f"{number}. **{step['agent']}**: {step['action']}"
    if step.get("tool"):
        line += f" (tool `{step['tool']}`)"
    if step.get("description"):
        line += f": {step['description']}"
    markers = []
    if step.get("optional"):
        markers.append("optional")
    if group is not None:
        rep = step["repeat"]
        span = f"steps {group[0] + 1}-{group[1] + 1}" if group[0] != group[1] else "this step"
        markers.append(f"{span} repeat {rep['min']}-{rep['max']} times" +
                       (f" until {rep['until']}" if rep.get("until") else ""))
    if outputs := step.get("expected_outputs"):
        markers.append("produces " + ", ".join(o["type"] + (f"/{o['format']}" if o.get("format") else "")
                                               for o in outputs))
    return line + (f" [{'; '.join(markers)}]" if markers else "")


def _statistics_lines(stats: dict[str, Any]) -> list[str]:
    line = f"- Support: {stats['support']} runs; success rate {_percent(stats['success_rate'])}"
    if wilson := stats.get("success_wilson"):
        line += f" (95% Wilson interval {_percent(wilson[0])}-{_percent(wilson[1])})"
    lines = [line]
    if "repeatability" in stats:
        lines.append(f"- Repeatability (mean step-sequence similarity of the runs): {stats['repeatability']:.2f}")
    for key, label, unit in (("duration_s", "Duration", " s"), ("cost_usd", "Cost", " USD")):
        if values := stats.get(key):
            lines.append(f"- {label}: " + ", ".join(f"{k} {v:g}{unit}" for k, v in values.items()))
    if retries := stats.get("retries"):
        lines.append(f"- Retries per run: mean {retries.get('mean', 0):g}, max {retries.get('max', 0)}")
    return lines


def _failure_lines(doc: dict[str, Any], groups: dict[int, tuple[int, int]]) -> list[str]:
    steps, stats = doc["steps"], doc["statistics"]
    hotspots = sorted(stats.get("failure_hotspots", []), key=lambda h: (-h["failure_rate"], h["step"]))
    lines = []
    for spot in hotspots[:MAX_HOTSPOTS]:
        index = spot["step"]
        where = f"step {index + 1} ({steps[index]['agent']}: {steps[index]['action']})" if index < len(steps) \
            else f"step {index + 1}"
        lines.append(f"- {where}: {_percent(spot['failure_rate'])} of runs stopped here"
                     + (f" ({spot['agent']})" if spot.get("agent") else "")
                     + (f"; error: {_cut(spot['error'], 200)}" if spot.get("error") else ""))
    if not lines:
        lines.append("- No step stands out where runs stopped.")
    recoveries = sorted(set(groups.values()))
    for first, last in recoveries[:MAX_HOTSPOTS]:
        rep = steps[first]["repeat"]
        lines.append(f"- Recovery: runs that failed in steps {first + 1}-{last + 1} retried them "
                     f"(up to {rep['max']} times{' until ' + rep['until'] if rep.get('until') else ''})")
    if retries := stats.get("retries"):
        lines.append(f"- Retries observed: mean {retries.get('mean', 0):g} per run, at most {retries.get('max', 0)}")
    return lines


def skill_body(doc: dict[str, Any]) -> str:
    """The Markdown body of ``SKILL.md``: task, parameters, ordered steps, statistics, failures (<= 500 lines)."""
    groups = _repeat_groups(doc["steps"])
    head = [f"# {doc['title']}", "", doc["description"], "", "## Task", "", f"`{doc['task_template']}`", ""]
    if params := list(doc["parameters"].items()):
        head += ["| Parameter | Type | Required | Default | Examples |", "|---|---|---|---|---|"]
        head += [f"| `{n}` | {p['type']} | {'yes' if p['required'] else 'no'} | "
                 f"{_cell(p['default']) if 'default' in p else ''} | "
                 f"{', '.join(_cell(e) for e in p.get('examples', [])[:3])} |" for n, p in params[:MAX_PARAMETER_ROWS]]
        if len(params) > MAX_PARAMETER_ROWS:
            head.append(f"| ... {len(params) - MAX_PARAMETER_ROWS} more in `{REFERENCE}` | | | | |")
        head.append("")
    if doc.get("preconditions"):
        head += ["Preconditions: " + "; ".join(doc["preconditions"]), ""]
    tail = ["", "## Statistics", "", *_statistics_lines(doc["statistics"]), "",
            "## Failure hot-spots and recovery", "", *_failure_lines(doc, groups), "",
            "## Use", "",
            ("Fill the parameters and follow the steps in order; optional steps may be skipped and repeated groups "
             "retried. `references/skill.json` holds the full skillmine document; "
             f"`skillmine skills instantiate {doc['name']} --params '{{...}}'` returns the filled plan.")]
    room = MAX_BODY_LINES - len(head) - len(tail) - 4
    lines = [_step_line(i + 1, s, groups.get(i)) for i, s in enumerate(doc["steps"])]
    if len(lines) > room:
        lines = lines[:room - 1] + [f"{room}. ... {len(doc['steps']) - room + 1} more steps in `{REFERENCE}`"]
    # One list item, one line: mined text may hold line breaks of any kind (\r, \u2028 ...).
    return "\n".join(" ".join(line.split()) for line in head + ["## Steps", ""] + lines + tail) + "\n"


def skill_markdown(doc: dict[str, Any], name: str, release: int, watermark: Any) -> str:
    """The whole ``SKILL.md``: frontmatter holding only the fields the format allows, then the body."""
    front = [f"name: {name}", f"description: {_yaml_string(skill_description(doc))}",
             f"compatibility: {_yaml_string(_compatibility(doc))}", "metadata:"]
    front += [f"  {key}: {_yaml_string(value)}" for key, value in _metadata(doc, release, watermark).items()]
    return "---\n" + "\n".join(front) + "\n---\n\n" + skill_body(doc)


def _expectations(doc: dict[str, Any]) -> list[str]:
    out = [f"The run produces a {kind} output" for kind in _outputs_phrase(doc).split(", ") if kind]
    out.append("The agents act in the skill's order: " + _steps_phrase(doc))
    return out


def skill_evals(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """Eval cases from the skill's source runs (their task text) or, when the document keeps none, its defaults."""
    examples = doc["provenance"].get("source_examples") or []
    cases = [render(doc["task_template"], {p: e["values"].get(p, f"{{{p}}}") for p in
                                           placeholders(doc["task_template"])}) for e in examples]
    if not cases:
        values = {p: spec.get("default", (spec.get("examples") or [f"{{{p}}}"])[0])
                  for p, spec in doc["parameters"].items()}
        cases = [render(doc["task_template"], {p: values.get(p, f"{{{p}}}")
                                               for p in placeholders(doc["task_template"])})]
    outputs = _outputs_phrase(doc)
    expected = (f"Outputs: {outputs}. " if outputs else "") + f"Steps followed in order: {_steps_phrase(doc)}."
    return {"skill_name": name,
            "evals": [{"id": i + 1, "prompt": prompt, "expected_output": expected, "files": [],
                       "assertions": _expectations(doc)} for i, prompt in enumerate(dict.fromkeys(cases))]}


def skill_files(doc: dict[str, Any], name: str, release: int, watermark: Any) -> dict[str, bytes]:
    """The files of one exported skill folder, by path relative to the export: a pure function of its inputs."""
    return {f"{name}/{SKILL_MD}": skill_markdown(doc, name, release, watermark).encode("utf-8"),
            f"{name}/{REFERENCE}": store.skill_file_bytes(doc),
            f"{name}/{EVALS}": store.skill_file_bytes(skill_evals(doc, name))}


def _export_files(library: store.Release, include_candidates: bool) -> tuple[dict[str, bytes], dict[str, str]]:
    """Every file of the export by relative path, and the skillmine -> Agent Skills name mapping: the active skills
    that consumers are served (``promotion.served_check``), candidates too when asked."""
    served = promotion.served_check(library.location)
    files: dict[str, bytes] = {}
    names: dict[str, str] = {}
    for rel in (store.manifest_path(library.release), store.signature_path(library.release)):
        if library.source.exists(rel):
            files[f"{RELEASE_DIR}/{rel}"] = library.source.read(rel)
    for skill, entry in sorted(library.manifest["skills"].items()):
        if entry["status"] != "active" or not (include_candidates or served(skill, entry["version"])):
            continue
        version = next(v for v in entry["versions"] if v["version"] == entry["version"])
        doc = store.read_skill(library.source, version, skill)
        name = agent_skill_name(skill)
        if name in names.values():
            raise BundleError(f"{library.location}: skills {skill!r} and "
                              f"{next(k for k, v in names.items() if v == name)!r} both export as {name!r}")
        names[skill] = name
        files.update(skill_files(doc, name, library.release, library.manifest.get("source_watermark")))
    return files, names


def export_agent_skills(library: store.Release, destination: str | os.PathLike[str], *,
                        include_candidates: bool = False) -> AgentSkillsExport:
    """Write every served skill of ``library`` (verified first; candidates only with ``include_candidates``, see
    ``promotion``) as Agent Skills folders under ``destination``.

    ``destination`` may hold other skills: only the folders of a previous skillmine export (listed in its
    manifest) are replaced; a folder in the way that is not ours is an error naming it.
    """
    report = verify_source(library.source, library.release, library.location)
    if not report.ok:
        raise BundleError(f"{library.location} does not verify, not exporting: {report.errors[0]}")
    root = Path(destination)
    if root.exists() and not root.is_dir():
        raise BundleError(f"{root}: exists and is not a directory")
    files, names = _export_files(library, include_candidates)
    previous = _previous_folders(root)
    for folder in sorted((set(names.values()) | {RELEASE_DIR}) - previous):
        if os.path.lexists(root / folder):
            raise BundleError(f"{root / folder}: already exists and is not part of a skillmine export")
    (root / EXPORT_MANIFEST).unlink(missing_ok=True)  # the tree is unverifiable until the new manifest lands
    for folder in sorted(previous):
        if (root / folder).is_symlink():  # never follow a link planted in place of one of our folders
            (root / folder).unlink()
        else:
            shutil.rmtree(root / folder, ignore_errors=True)
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    manifest = {"format": EXPORT_FORMAT, "release": library.release,
                "manifest_hash": library.manifest["manifest_hash"],
                "source_watermark": library.manifest.get("source_watermark"),
                "skills": {name: {"skillmine_name": skill, "folder": name} for skill, name in names.items()},
                "files": {rel: sha256_hex(data) for rel, data in sorted(files.items())}}
    store.write_atomic(root, EXPORT_MANIFEST, store.skill_file_bytes(manifest))
    return AgentSkillsExport(root, library.release, names, len(files) + 1)


def _read_export_manifest(root: Path) -> dict[str, Any] | None:
    path = root / EXPORT_MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != EXPORT_FORMAT:
        raise BundleError(f"{path}: not a skillmine Agent Skills export manifest")
    return manifest


def _previous_folders(root: Path) -> set[str]:
    """The folders a previous export wrote here (to be replaced); a manifest naming anything else is refused, so a
    doctored one can never make a re-export delete outside the export."""
    manifest = _read_export_manifest(root)
    if not manifest:
        return set()
    folders = set(manifest.get("skills", {}))
    if bad := sorted(f for f in folders if not (isinstance(f, str) and _AGENT_NAME.match(f) and len(f) <= MAX_NAME)):
        raise BundleError(f"{root / EXPORT_MANIFEST}: names folders that no export writes: {bad!r}; not replacing")
    return folders | {RELEASE_DIR}


def is_export(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a directory written by ``export_agent_skills``."""
    return (Path(path) / EXPORT_MANIFEST).is_file()


def verify_export(path: str | os.PathLike[str], *, trusted: str | None = None) -> VerifyReport:
    """Check an exported tree: every listed file present with its sha256 and nothing added inside a skill folder;
    the release manifest it was made from intact (and signed by a trusted key, as ``verify`` requires); each
    ``references/skill.json`` the very file that release publishes; ``SKILL.md`` and ``evals.json`` exactly what
    that document renders to. An edited skill is caught even when the export's own manifest was re-hashed."""
    root = Path(path)
    report = VerifyReport(str(root))
    try:
        manifest = _read_export_manifest(root)
    except BundleError as exc:
        report.errors.append(str(exc))
        return report
    if manifest is None:
        report.errors.append(f"{root / EXPORT_MANIFEST}: missing; not an Agent Skills export")
        return report
    report.release = manifest.get("release")
    listed: dict[str, str] = manifest.get("files", {})
    for rel, digest in sorted(listed.items()):
        file = root / rel
        if not file.is_file():
            report.errors.append(f"{file}: listed in the export manifest but missing")
        elif sha256_hex(file.read_bytes()) != digest:
            report.errors.append(f"{file}: bytes do not match the sha256 in the export manifest")
    for folder in sorted([*manifest.get("skills", {}), RELEASE_DIR]):
        if (root / folder).is_symlink():
            report.errors.append(f"{root / folder}: is a symbolic link, not a folder the export wrote")
            continue
        present = {p.relative_to(root).as_posix() for p in (root / folder).rglob("*") if p.is_file()}
        report.errors += [f"{root / rel}: not part of the export (added after it)" for rel in sorted(present - set(listed))]
    release_source = store.DirSource(root / RELEASE_DIR)
    try:
        release = store.read_manifest(release_source, manifest["release"], manifest["manifest_hash"])
    except IntegrityError as exc:
        report.errors.append(str(exc))
        return report
    report.manifests_checked = 1
    check_release_signature(report, release_source, release["release"], release["manifest_hash"], trusted)
    for folder, info in sorted(manifest.get("skills", {}).items()):
        report.skill_files_checked += 1
        report.errors += _check_skill_folder(root, folder, info["skillmine_name"], release)
    return report


def _check_skill_folder(root: Path, folder: str, skill: str, release: dict[str, Any]) -> list[str]:
    """The folder holds the release's own skill file and exactly what it renders to."""
    entry = release["skills"].get(skill)
    reference = root / folder / REFERENCE
    if entry is None:
        return [f"{root / folder}: skill {skill!r} is not in release {release['release']}"]
    if not reference.is_file():
        return []  # reported as missing above
    data = reference.read_bytes()
    version = entry["versions"][-1]
    if sha256_hex(data) != version["sha256"]:
        return [f"{reference}: is not {skill} {version['version']} as release {release['release']} publishes it"]
    expected = skill_files(json.loads(data), folder, release["release"], release.get("source_watermark"))
    return [f"{root / rel}: differs from what {skill} {version['version']} renders to"
            for rel, content in expected.items() if (root / rel).is_file() and (root / rel).read_bytes() != content]
