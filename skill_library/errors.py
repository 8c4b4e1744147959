"""Exceptions raised by the skill library; every message names the file, skill or field at fault."""

from __future__ import annotations


class SkillLibraryError(Exception):
    """Base class of every error the skill library raises on purpose."""


class SkillValidationError(SkillLibraryError, ValueError):
    """A skill document or candidate does not satisfy the schema; ``errors`` lists ``field: problem``."""

    def __init__(self, subject: str, errors: list[str]):
        self.subject = subject
        self.errors = list(errors)
        super().__init__(f"{subject} is invalid: " + "; ".join(self.errors))


class IntegrityError(SkillLibraryError):
    """A stored file is missing, truncated or does not match its recorded hash."""

    def __init__(self, path: str, problem: str):
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class LibraryNotFoundError(SkillLibraryError):
    """The library path does not exist or holds no release yet."""


class SkillNotFoundError(SkillLibraryError, KeyError):
    """No skill (or no version of it) matches the request."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0])


class ParameterError(SkillLibraryError, ValueError):
    """Parameters given to ``instantiate`` are missing, unknown or of the wrong type."""


class VersionSpecError(SkillLibraryError, ValueError):
    """A version or version range string cannot be parsed."""


class BundleError(SkillLibraryError):
    """An export bundle cannot be written, read or imported."""
