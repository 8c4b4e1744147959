"""The ``skill_pipeline`` code location: every asset, check, job, schedule, sensor and resource, assembled once.

Runs use the in-process executor: every step opens the one DuckDB file, and separate step processes would
fight over its lock (and start slower). ``mine_mode_job`` (mining by mode, ``defs/by_mode.py``) is the exception:
one run per mode partition, each step in its own process, run side by side on a DuckLake warehouse.
"""

import dagster as dg

from skill_pipeline.defs import automation, by_mode
from skill_pipeline.defs.conformance import assets as conformance_assets
from skill_pipeline.defs.conformance import checks as conformance_checks
from skill_pipeline.defs.conformance.settings import ConformanceSettings, ReplayResource
from skill_pipeline.defs.extract import assets as extract_assets
from skill_pipeline.defs.extract import checks as extract_checks
from skill_pipeline.defs.library import assets as library_assets
from skill_pipeline.defs.library import checks as library_checks
from skill_pipeline.defs.mining import assets as mining_assets
from skill_pipeline.defs.mining import checks as mining_checks
from skill_pipeline.resources import (
    EventStoreResource,
    MiningSettings,
    SkillLibraryResource,
    WarehouseResource,
)


def resources() -> dict[str, dg.ConfigurableResource]:
    """Resources configured from the environment (see :mod:`skill_pipeline.resources`)."""
    return {"event_store": EventStoreResource(), "warehouse_db": WarehouseResource(),
            "skill_library": SkillLibraryResource(), "mining_settings": MiningSettings(),
            "conformance_settings": ConformanceSettings(), "replays": ReplayResource()}


defs = dg.Definitions(
    assets=dg.load_assets_from_modules([extract_assets, mining_assets, library_assets, conformance_assets,
                                        by_mode]),
    asset_checks=dg.load_asset_checks_from_modules([extract_checks, mining_checks, library_checks,
                                                    conformance_checks]),
    jobs=[automation.mine_skills_job, conformance_assets.verify_skills_job, by_mode.mine_mode_job,
          by_mode.publish_by_mode_job],
    schedules=[automation.mine_skills_schedule],
    sensors=[automation.new_events_sensor, by_mode.new_modes_sensor],
    resources=resources(),
    executor=dg.in_process_executor,
)
