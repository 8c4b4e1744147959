"""The release check: the published library verifies (every manifest and skill file hash-checked and valid)."""

import dagster as dg

from skill_library.verify import verify
from skill_pipeline.resources import SkillLibraryResource


@dg.asset_check(asset="skill_library_release", description="skill_library verify passes on the whole library.")
def release_verifies(skill_library: SkillLibraryResource) -> dg.AssetCheckResult:
    path = skill_library.resolved_path()
    if not (path / "LATEST").exists():
        return dg.AssetCheckResult(passed=True, metadata={"note": "nothing published yet (no template had enough "
                                                                  "support)"})
    report = verify(path)
    return dg.AssetCheckResult(passed=report.ok, metadata={
        "release": report.release or 0, "manifests_checked": report.manifests_checked,
        "skill_files_checked": report.skill_files_checked, "errors": "\n".join(report.errors[:20]),
        "warnings": len(report.warnings)})
