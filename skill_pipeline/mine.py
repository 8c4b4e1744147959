"""Running ``mine_skills_job`` in-process with the real resources, a persistent instance and a readable summary."""

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import dagster as dg

from capture.store.capture_store import CaptureStore
from capture.store.db import StoreError


@dataclass
class MineOptions:
    """What ``skillmine mine`` was asked to use (``None`` = configured default)."""

    url: str | None = None
    warehouse: str | None = None
    library: str | None = None
    min_support: int | None = None
    overlap: int = 1000
    quiet: bool = False


def _metadata(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    out = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        out[mat.asset_key.to_user_string()] = {k: v.value for k, v in mat.metadata.items()}
    return out


def summary(result: dg.ExecuteInProcessResult, library_path: Path) -> str:
    """What the run did, in a few lines."""
    meta = _metadata(result)
    events, clusters = meta.get("raw_agent_events", {}), meta.get("sequence_clusters", {})
    templates, release = meta.get("skill_templates", {}), meta.get("skill_library_release", {})
    outcomes = meta.get("run_outcomes", {})
    changes = ", ".join(f"{k.removeprefix('skills_')} {v}" for k, v in sorted(release.items())
                        if k.startswith("skills_")) or "none"
    failed_checks = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
    lines = [
        f"mining run {result.run_id}: {'succeeded' if result.success else 'FAILED'}",
        (f"  events: {events.get('rows_inserted', 0):,} new, {events.get('dagster/row_count', 0):,} in the "
         f"warehouse (HWM {events.get('hwm', 0):,})"),
        (f"  clusters: {clusters.get('n_clusters', 0)} (silhouette {clusters.get('silhouette', 0.0):.3f}, "
         f"coverage {clusters.get('coverage', 0.0):.1%}); overall success rate "
         f"{outcomes.get('success_rate', 0.0):.1%}"),
        (f"  templates: {templates.get('dagster/row_count', 0)} mined, {templates.get('publishable', 0)} "
         f"publishable (support >= {templates.get('min_support', '?')})"),
        (f"  library release {release.get('release', 0)} ({'new' if release.get('created') else 'unchanged'}): "
         f"{changes}"),
        f"  library: {library_path}",
        "  UI: run `skillmine ui` and open http://127.0.0.1:3000 (runs of `skillmine mine` are listed there)",
    ]
    if failed_checks:
        lines.append(f"  failed checks: {', '.join(sorted(failed_checks))}")
    return "\n".join(lines)


def mine_now(options: MineOptions, *, home: Path, out: TextIO = sys.stdout) -> int:
    """Run the job; returns a process exit code (0 ok, 1 run failed, 2 bad configuration)."""
    from skill_pipeline.definitions import defs
    from skill_pipeline.resources import (
        EventStoreResource,
        MiningSettings,
        SkillLibraryResource,
        WarehouseResource,
    )

    store_resource = EventStoreResource(database_url=options.url)
    try:
        CaptureStore.open(store_resource.url()).close()
    except StoreError as exc:
        print(f"skillmine mine: {exc}", file=sys.stderr)
        return 2
    library = SkillLibraryResource(path=options.library)
    resources = {"event_store": store_resource, "warehouse_db": WarehouseResource(path=options.warehouse),
                 "skill_library": library, "mining_settings": MiningSettings(min_support=options.min_support)}
    run_config = {"ops": {"extracted_tables": {"config": {"overlap": options.overlap}}},
                  "loggers": {"console": {"config": {"log_level": "ERROR" if options.quiet else "INFO"}}}}
    os.environ["DAGSTER_HOME"] = str(home)
    with dg.DagsterInstance.get() as instance:
        result = defs.resolve_job_def("mine_skills_job").execute_in_process(
            resources=resources, instance=instance, run_config=run_config, raise_on_error=False)
    print(summary(result, library.resolved_path()), file=out)
    for event in result.all_events:
        if event.is_step_failure:
            print(f"  step {event.step_key} failed: {event.event_specific_data.error.message.strip()}", file=out)
    return 0 if result.success else 1
