"""``skillmine skills ...``: list, show, search, diff, instantiate, export, import, verify, publish, keygen, sign.

Tables for people by default, ``--json`` for programs. The library is ``--library PATH``, else
``$SKILLMINE_LIBRARY``, else ``$SKILLMINE_HOME/library`` (``SKILLMINE_HOME`` defaults to
``.skillmine`` in the working directory). Errors print one line naming the path and exit 1.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import promotion, signing, store
from .agent_skills import is_export, verify_export
from .bundle import import_bundle
from .errors import SkillLibraryError
from .library import Library, open_library
from .publish import publish
from .verify import quick_check, verify


def library_location(explicit: str | None) -> Path:
    """Where the library is, by the precedence documented above."""
    if explicit:
        return Path(explicit)
    if os.environ.get("SKILLMINE_LIBRARY"):
        return Path(os.environ["SKILLMINE_LIBRARY"])
    return Path(os.environ.get("SKILLMINE_HOME") or ".skillmine") / "library"


def _emit_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def _table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    """Print a table through :mod:`skillmine.console` (a rich-only leaf, imported here so the library stays light)."""
    from skillmine.console import console, table

    console().print(table(headers, rows))


def _open(args: argparse.Namespace) -> Library:
    return open_library(library_location(args.library), release=getattr(args, "release", None))


def _warn_if_unverified(library: Library, command: str) -> None:
    """Listing and searching read only the manifest: say so on stderr when the files or the signature disagree."""
    if problems := quick_check(library.source, library.release, library.manifest):
        print(f"skillmine skills {command}: warning: {library.location} does not verify ({len(problems)} "
              f"problem{'s' if len(problems) > 1 else ''}; first: {problems[0]}); run `skillmine skills verify`",
              file=sys.stderr)


def cmd_list(args: argparse.Namespace) -> int:
    library = _open(args)
    if args.releases:
        rows = library.releases()
        if args.json:
            _emit_json(rows)
        else:
            _table([(r["release"], r["created_at"], r["skills"], len(r["changes"]), r["pipeline_run_id"])
                    for r in rows], ["RELEASE", "CREATED", "SKILLS", "CHANGES", "PIPELINE RUN"])
        return 0
    verifies = promotion.verifying(library.location)
    rows = []
    for r in library.skills(include_deprecated=args.all):
        replay = promotion.status(library.location, r["name"], r["version"])
        rows.append({**r, "replay": replay, "served": r["status"] == "active" and promotion.served(verifies, replay)})
    _warn_if_unverified(library, "list")
    if args.json:
        _emit_json({"release": library.release, "skills": rows})
    else:
        print(f"{library.location}  release {library.release}")
        _table([(r["name"], r["version"], r["status"], r["replay"], "yes" if r["served"] else "no", r["category"],
                 r["support"], f"{r['success_rate']:.2f}", r["title"]) for r in rows],
               ["NAME", "VERSION", "STATUS", "REPLAY", "SERVED", "CATEGORY", "SUPPORT", "SUCCESS", "TITLE"])
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    library = _open(args)
    doc = library.get(args.name, args.version)
    if args.json:
        _emit_json(doc)
        return 0
    stats, prov = doc["statistics"], doc["provenance"]
    print(f"{doc['name']} {doc['version']} ({doc['status']})  {doc['title']}")
    print(f"  id {doc['id']}  hash {doc['content_hash'][:12]}  category {doc['category']}  "
          f"tags {', '.join(doc['tags']) or '-'}")
    print(f"  {doc['description']}")
    print(f"  task: {doc['task_template']}")
    print(f"  versions: {', '.join(library.versions(args.name))}")
    print(f"  support {stats['support']}  success {stats['success_rate']:.2f}  "
          f"source runs {len(prov['source_runs'])}  cluster {prov.get('cluster_id')}  "
          f"pipeline run {prov.get('pipeline_run_id')}")
    print()
    _table([(i, s["agent"], s["action"], s.get("tool") or "-",
             ("optional " if s.get("optional") else "") + (f"repeat {s['repeat']['min']}-{s['repeat']['max']}"
                                                          if "repeat" in s else ""),
             ", ".join(o["type"] + (f"/{o['format']}" if "format" in o else "") for o in s.get("expected_outputs", [])))
            for i, s in enumerate(doc["steps"])], ["#", "AGENT", "ACTION", "TOOL", "MARKERS", "OUTPUTS"])
    if doc["parameters"]:
        print()
        _table([(n, p["type"], "yes" if p["required"] else "no", json.dumps(p["default"]) if "default" in p else "",
                 p.get("description", "")) for n, p in doc["parameters"].items()],
               ["PARAMETER", "TYPE", "REQUIRED", "DEFAULT", "DESCRIPTION"])
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    library = _open(args)
    hits = library.search(" ".join(args.query), limit=args.limit, include_deprecated=args.all,
                          include_candidates=args.all)
    _warn_if_unverified(library, "search")
    if args.json:
        _emit_json([h.to_dict() for h in hits])
    elif not hits:
        print("no matching skills")
    else:
        _table([(h.name, h.version, f"{h.score:.2f}", ", ".join(h.outputs), h.title) for h in hits],
               ["NAME", "VERSION", "SCORE", "OUTPUTS", "TITLE"])
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    diff = _open(args).diff(args.name, args.v1, args.v2)
    if args.json:
        _emit_json(diff)
        return 0
    print(f"{diff['name']} {diff['from']} -> {diff['to']}: {diff['bump']}")
    _table([(c["bump"], c["change"], c["path"], json.dumps(c.get("old")) if "old" in c else "",
             json.dumps(c.get("new")) if "new" in c else "") for c in diff["changes"]],
           ["BUMP", "CHANGE", "FIELD", "OLD", "NEW"])
    return 0


def _params(args: argparse.Namespace, spec: dict[str, Any]) -> dict[str, Any]:
    """``--params JSON`` merged with ``-p name=value`` (value taken as JSON unless the type is string)."""
    params = json.loads(args.params) if args.params else {}
    for item in args.param:
        name, sep, raw = item.partition("=")
        if not sep:
            raise SkillLibraryError(f"-p {item!r}: expected name=value")
        if spec.get(name, {}).get("type") == "string":
            params[name] = raw
        else:
            try:
                params[name] = json.loads(raw)
            except json.JSONDecodeError:
                params[name] = raw
    return params


def cmd_instantiate(args: argparse.Namespace) -> int:
    library = _open(args)
    doc = library.get(args.name, args.version)
    plan = library.instantiate(args.name, _params(args, doc["parameters"]), version=doc["version"])
    if args.json:
        _emit_json(plan)
        return 0
    print(f"{plan['skill']} {plan['version']}: {plan['task']}")
    _table([(s["index"], s["agent"], s["action"], s["tool"] or "-", s.get("task", "")) for s in plan["steps"]],
           ["#", "AGENT", "ACTION", "TOOL", "TASK"])
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    library = _open(args)
    if args.format == "agent-skills":
        export = library.export_agent_skills(args.destination, include_candidates=args.include_candidates)
        result = export.to_dict()
        message = f"exported {len(export.names)} skills of release {library.release} to {export.path}"
    else:
        path = library.export(args.destination)
        result = {"bundle": str(path), "release": library.release}
        message = f"exported release {library.release} to {path}"
    _emit_json(result) if args.json else print(message)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    target = library_location(args.library)
    release = import_bundle(args.bundle, target)
    result = {"library": str(target), "release": release}
    _emit_json(result) if args.json else print(f"{target} is now at release {release}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    location = Path(args.path) if args.path else library_location(args.library)
    report = (verify_export(location, trusted=args.trust) if is_export(location)
              else verify(location, trusted=args.trust))
    if args.json:
        _emit_json(report.to_dict())
    else:
        for line in report.errors:
            print(f"ERROR {line}")
        for line in report.warnings:
            print(f"warning {line}")
        if report.signature:
            print(f"release {report.release}: {report.signature}")
        print(f"{report.location}: release {report.release}, {report.manifests_checked} manifests, "
              f"{report.skill_files_checked} skill files: {'OK' if report.ok else 'FAILED'}")
    return 0 if report.ok else 1


def cmd_keygen(args: argparse.Namespace) -> int:
    public = signing.generate_key(args.key)
    result = {"private_key": args.key, "public_key": public, "key_id": signing.key_id(base64.b64decode(public))}
    if args.json:
        _emit_json(result)
    else:
        print(f"wrote {args.key} (keep it private); public key {public} (key {result['key_id']})")
        print(f"publishers: export {signing.KEY_ENV}={args.key}; readers: export {signing.TRUST_ENV}={public}")
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    """Sign the latest release of a library directory (after checking it) with the publisher's key."""
    key = signing.load_key(args.key, args.signer) if args.key else signing.configured_key()
    if key is None:
        raise SkillLibraryError(f"no signing key: pass --key PATH or set {signing.KEY_ENV}")
    root = library_location(args.library)
    with store.locked(root):
        library = open_library(root)
        report = verify(root, trusted="")  # the files must hold; an old signature is replaced either way
        if [e for e in report.errors if "signature" not in e]:
            raise SkillLibraryError(f"{root} does not verify, not signing: {report.errors[0]}")
        record = signing.write_signature(root, key, library.release, library.manifest["manifest_hash"])
    result = {"library": str(root), "release": library.release, "signer": record["signer"], "key_id": record["key_id"]}
    _emit_json(result) if args.json else print(f"signed release {library.release} of {root} as {record['signer']} "
                                               f"(key {record['key_id']})")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    """Input: a JSON list of candidates, or ``{"candidates": [...], "pipeline_run_id", "source_watermark"}``."""
    path = Path(args.candidates)
    try:
        data = json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise SkillLibraryError(f"{path}: not valid JSON: {exc}") from None
    options = data if isinstance(data, dict) else {"candidates": data}
    if not isinstance(options.get("candidates"), list):
        raise SkillLibraryError(f"{path}: expected a list of candidate skills or an object with 'candidates'")
    result = publish(library_location(args.library), options["candidates"],
                     pipeline_run_id=args.pipeline_run_id or options.get("pipeline_run_id"),
                     source_watermark=args.source_watermark or options.get("source_watermark"))
    if args.json:
        _emit_json(result.to_dict())
        return 0
    print(f"release {result.release}" + ("" if result.created else " (unchanged, nothing published)"))
    _table([(o.name, o.outcome, o.previous_version or "-", o.version) for o in result.outcomes],
           ["NAME", "OUTCOME", "FROM", "TO"])
    return 0


def _guarded(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn expected failures into one line on stderr and exit status 1."""
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (SkillLibraryError, OSError, json.JSONDecodeError) as exc:
            print(f"skillmine skills {args.skills_command}: error: {exc}", file=sys.stderr)
            return 1

    return run


def register(subparsers: Any) -> None:
    """Mount ``skills`` and its subcommands on the top-level CLI."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--library", metavar="PATH", help="library directory or .zip bundle "
                        "(default: $SKILLMINE_LIBRARY, else $SKILLMINE_HOME/library)")
    common.add_argument("--json", action="store_true", help="machine-readable JSON output")
    at_release = argparse.ArgumentParser(add_help=False)
    at_release.add_argument("--release", type=int, help="read this release instead of the latest")

    skills = subparsers.add_parser("skills", help="browse, query and publish the versioned skill library",
                                   description=__doc__)
    sub = skills.add_subparsers(dest="skills_command", required=True, metavar="SUBCOMMAND")

    def leaf(name: str, handler: Callable[[argparse.Namespace], int], help_: str,
             release: bool = True) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, help=help_, parents=[common] + ([at_release] if release else []))
        parser.set_defaults(handler=_guarded(handler))
        return parser

    p = leaf("list", cmd_list, "list skills with their replay status and whether consumers are served them "
             "(or releases)")
    p.add_argument("--all", action="store_true", help="include deprecated skills")
    p.add_argument("--releases", action="store_true", help="list releases instead of skills")
    p = leaf("show", cmd_show, "show one skill version")
    p.add_argument("name")
    p.add_argument("--version", default="latest", help="version or range: 1.2.0, ^1, ~1.2, '>=1.0,<2'")
    p = leaf("search", cmd_search, "search the skills served to consumers by words")
    p.add_argument("query", nargs="+")
    p.add_argument("--limit", type=int, default=10)
    p.add_argument("--all", action="store_true", help="include deprecated skills and candidates not verified by replay")
    p = leaf("diff", cmd_diff, "differences between two versions of a skill")
    p.add_argument("name")
    p.add_argument("v1")
    p.add_argument("v2", nargs="?", default="latest")
    p = leaf("instantiate", cmd_instantiate, "fill a skill's parameters into a concrete plan")
    p.add_argument("name")
    p.add_argument("--version", default="latest")
    p.add_argument("--params", help="parameters as a JSON object")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    p = leaf("export", cmd_export, "write the library as a .zip bundle or as Agent Skills folders")
    p.add_argument("destination", help="the .zip file, or the directory for --format agent-skills")
    p.add_argument("--format", choices=("zip", "agent-skills"), default="zip",
                   help="zip: the whole library as one bundle (default); agent-skills: one SKILL.md folder "
                        "per served skill, with references/skill.json and evals/evals.json")
    p.add_argument("--include-candidates", action="store_true",
                   help="agent-skills: export candidates that have not passed replay too")
    p = leaf("import", cmd_import, "fast-forward the library from a .zip bundle", release=False)
    p.add_argument("bundle")
    p = leaf("verify", cmd_verify, "check every file of a library, bundle or Agent Skills export against its hash, "
             "and the release signature", release=False)
    p.add_argument("path", nargs="?", help="what to verify (default: the library)")
    p.add_argument("--trust", metavar="KEYS", help=f"trusted public keys, comma-separated (default ${signing.TRUST_ENV})")
    p = leaf("keygen", cmd_keygen, "make an ed25519 key pair for signing releases", release=False)
    p.add_argument("key", help="where to write the private key (PEM, mode 0600)")
    p = leaf("sign", cmd_sign, "sign the library's latest release", release=False)
    p.add_argument("--key", help=f"private key file (default ${signing.KEY_ENV})")
    p.add_argument("--signer", help=f"name the signature carries (default ${signing.SIGNER_ENV})")
    p = leaf("publish", cmd_publish, "publish a JSON file of candidate skills as a new release", release=False)
    p.add_argument("candidates", help="JSON file: a list of candidates or {candidates, pipeline_run_id, ...}")
    p.add_argument("--pipeline-run-id")
    p.add_argument("--source-watermark")

