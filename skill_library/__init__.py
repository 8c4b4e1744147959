"""Versioned skill library: immutable, content-addressed publishing and a consumer API.

Only the standard library is imported up front (lazily: ``jsonschema`` for validation, ``cryptography`` for release
signatures), so consumers can ``from skill_library import open_library`` cheaply. ``Library.export_agent_skills``
writes Agent Skills folders (``agent_skills``); ``skill_library.ag2`` puts skills into AG2 Classic chats.
"""

from .bundle import export_bundle, import_bundle
from .document import CandidateSkill, SkillDocument, content_hash, validate_skill
from .errors import (
    BundleError,
    IntegrityError,
    LibraryNotFoundError,
    ParameterError,
    SkillLibraryError,
    SkillNotFoundError,
    SkillValidationError,
    VersionSpecError,
)
from .library import Library, open_library
from .publish import PublishResult, SkillOutcome, publish
from .query import SearchHit
from .verify import VerifyReport, verify

__all__ = [
    "BundleError", "CandidateSkill", "IntegrityError", "Library", "LibraryNotFoundError", "ParameterError",
    "PublishResult", "SearchHit", "SkillDocument", "SkillLibraryError", "SkillNotFoundError", "SkillOutcome",
    "SkillValidationError", "VerifyReport", "VersionSpecError", "content_hash", "export_bundle", "import_bundle",
    "open_library", "publish", "validate_skill", "verify",
]
