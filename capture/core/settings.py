"""Recorder configuration, read from ``SKILLMINE_*`` environment variables.

One frozen object holds every knob the recorder reads, so a test or a workload simulator can build one directly
(``CaptureSettings(database_url=..., sample_rate=0.0)``) and the process-wide recorder can be rebuilt from it.
"""

import importlib.util
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from capture.core import config
from capture.core.payload import DEFAULT_MAX_PAYLOAD_BYTES

FULL_POLICIES = ("block", "spill")
SINKS = ("store", "otlp", "store+otlp")  # where the recorder's batches go (capture.sinks.configured)
OTLP_PROTOCOLS = ("http/protobuf", "http/json")
_TRUE = {"1", "true", "on", "yes"}
_FALSE = {"0", "false", "off", "no"}


class SettingsError(ValueError):
    """A configuration value that cannot be used; the message names the variable."""


def _importable(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (a missing parent package means no)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _default_database_url() -> str:
    return config.database_url()


def _default_spool_dir() -> Path:
    return config.home() / "spool"


@dataclass(frozen=True)
class CaptureSettings:
    """Everything the recorder is configured with (see the module docstring)."""

    enabled: bool = True
    database_url: str = field(default_factory=_default_database_url)
    sample_rate: float = 1.0
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    redact_patterns: tuple[str, ...] = ()
    batch_size: int = 2000
    flush_interval_s: float = 0.2
    queue_size: int = 100_000
    full_policy: str = "spill"
    spool_dir: Path = field(default_factory=_default_spool_dir)
    sink: str = "store"
    otlp_endpoint: str | None = None  # an OTLP/HTTP traces URL (.../v1/traces) for the otlp sinks
    otlp_protocol: str = "http/protobuf"
    otlp_content: bool = False  # export message content (redacted) with the live OTLP sink

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.sample_rate) <= 1.0:
            raise SettingsError(f"sample_rate must be between 0 and 1, got {self.sample_rate!r}")
        if self.full_policy not in FULL_POLICIES:
            raise SettingsError(f"full_policy must be one of {FULL_POLICIES}, got {self.full_policy!r}")
        for name in ("max_payload_bytes", "batch_size", "queue_size"):
            if int(getattr(self, name)) < 1:
                raise SettingsError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if float(self.flush_interval_s) <= 0:
            raise SettingsError(f"flush_interval_s must be positive, got {self.flush_interval_s!r}")
        if self.sink not in SINKS:
            raise SettingsError(f"sink must be one of {SINKS}, got {self.sink!r}")
        if "otlp" in self.sink and not self.otlp_endpoint:
            raise SettingsError(f"sink {self.sink!r} needs otlp_endpoint (SKILLMINE_OTLP_ENDPOINT)")
        if "otlp" in self.sink and not _importable("opentelemetry.sdk"):
            raise SettingsError(f"sink {self.sink!r} needs the OpenTelemetry SDK: pip install 'skillmine[otel]'")
        if self.otlp_protocol not in OTLP_PROTOCOLS:
            raise SettingsError(f"otlp_protocol must be one of {OTLP_PROTOCOLS}, got {self.otlp_protocol!r}")
        object.__setattr__(self, "spool_dir", Path(self.spool_dir))
        object.__setattr__(self, "redact_patterns", tuple(self.redact_patterns))

    @classmethod
    def from_env(cls, **overrides: Any) -> "CaptureSettings":
        """Settings from the environment, with keyword ``overrides`` taking precedence."""
        values: dict[str, Any] = {}
        for name, var, parse in _ENV:
            raw = config.env(var)
            if raw is not None:
                values[name] = parse(raw, config.ENV_PREFIX + var)
        values.update(overrides)
        return cls(**values)

    def with_overrides(self, **overrides: Any) -> "CaptureSettings":
        """A copy with some fields changed (unknown names are a clear error)."""
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise SettingsError(f"unknown capture setting(s) {sorted(unknown)}; known: {sorted(known)}")
        return replace(self, **overrides)


def _bool(raw: str, var: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingsError(f"{var}={raw!r}: expected on/off, 1/0, true/false")


def _number(kind: type) -> Any:
    def parse(raw: str, var: str) -> Any:
        try:
            return kind(raw.strip())
        except ValueError:
            raise SettingsError(f"{var}={raw!r}: expected {kind.__name__}") from None
    return parse


def _patterns(raw: str, _var: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in raw.replace("\n", ",").split(",") if p.strip())


def _text(raw: str, _var: str) -> str:
    return raw.strip()


def _path(raw: str, _var: str) -> Path:
    return Path(raw.strip()).expanduser()


_ENV = (
    ("enabled", "CAPTURE", _bool),
    ("database_url", "DATABASE_URL", _text),
    ("sample_rate", "SAMPLE_RATE", _number(float)),
    ("max_payload_bytes", "MAX_PAYLOAD_BYTES", _number(int)),
    ("redact_patterns", "REDACT_PATTERNS", _patterns),
    ("batch_size", "BATCH_SIZE", _number(int)),
    ("flush_interval_s", "FLUSH_INTERVAL", _number(float)),
    ("queue_size", "QUEUE_SIZE", _number(int)),
    ("full_policy", "QUEUE_FULL_POLICY", _text),
    ("spool_dir", "SPOOL_DIR", _path),
    ("sink", "SINK", _text),
    ("otlp_endpoint", "OTLP_ENDPOINT", _text),
    ("otlp_protocol", "OTLP_PROTOCOL", _text),
    ("otlp_content", "OTLP_CONTENT", _bool),
)

__all__ = ["FULL_POLICIES", "OTLP_PROTOCOLS", "SINKS", "CaptureSettings", "SettingsError"]
