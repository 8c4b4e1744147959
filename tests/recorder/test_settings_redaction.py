"""Configuration from SKILLMINE_* variables and the redaction patterns."""

from pathlib import Path

import pytest

from capture.core.redaction import Redactor
from capture.core.settings import CaptureSettings, SettingsError


def test_settings_from_env(monkeypatch, tmp_path):
    for name, value in {"CAPTURE": "off", "DATABASE_URL": "sqlite:///x.db", "SAMPLE_RATE": "0.25",
                        "MAX_PAYLOAD_BYTES": "1024", "REDACT_PATTERNS": "foo[0-9]+, bar\nbaz", "BATCH_SIZE": "50",
                        "FLUSH_INTERVAL": "0.5", "QUEUE_SIZE": "10", "QUEUE_FULL_POLICY": "block",
                        "SPOOL_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(f"SKILLMINE_{name}", value)
    assert CaptureSettings.from_env() == CaptureSettings(
        enabled=False, database_url="sqlite:///x.db", sample_rate=0.25, max_payload_bytes=1024,
        redact_patterns=("foo[0-9]+", "bar", "baz"), batch_size=50, flush_interval_s=0.5, queue_size=10,
        full_policy="block", spool_dir=tmp_path)


def test_settings_defaults_live_in_the_data_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("SKILLMINE_DATABASE_URL", raising=False)
    monkeypatch.delenv("SKILLMINE_SPOOL_DIR", raising=False)
    monkeypatch.setenv("SKILLMINE_HOME", str(tmp_path))
    settings = CaptureSettings.from_env()
    assert settings.database_url == f"sqlite:///{tmp_path / 'capture.db'}"
    assert settings.spool_dir == Path(tmp_path) / "spool"
    assert (settings.enabled, settings.sample_rate, settings.max_payload_bytes, settings.batch_size,
            settings.flush_interval_s, settings.queue_size, settings.full_policy) == \
        (True, 1.0, 65536, 2000, 0.2, 100_000, "spill")


@pytest.mark.parametrize(("name", "value", "message"), [
    ("CAPTURE", "maybe", "SKILLMINE_CAPTURE='maybe'"),
    ("SAMPLE_RATE", "lots", "SKILLMINE_SAMPLE_RATE='lots'"),
    ("SAMPLE_RATE", "1.5", "sample_rate must be between 0 and 1"),
    ("QUEUE_FULL_POLICY", "drop", "full_policy must be one of"),
])
def test_bad_settings_name_the_variable(monkeypatch, name, value, message):
    monkeypatch.setenv(f"SKILLMINE_{name}", value)
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace("'", "'")):
        CaptureSettings.from_env()


@pytest.mark.parametrize(("text", "expected"), [
    ("key sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX1234 here", "key *** here"),
    ("anthropic sk-ant-api03-abcdefghijklmnopqrstuv", "anthropic ***"),
    ("aws AKIAABCDEFGHIJKLMNOP", "aws ***"),
    ("gh ghp_abcdefghijklmnopqrstuvwxyz0123456789", "gh ***"),
    ("slack xoxb-1234567890-abcdefghij", "slack ***"),
    ("google AIzaSyA1234567890abcdefghijklmnopqrstuv", "google ***"),
    ("Authorization: Bearer abc.def-ghijklmnop", "Authorization: Bearer ***"),
    ("authorization: Basic dXNlcjpwYXNz", "authorization: ***"),
    ("postgresql://bob:hunter2@db:5432/x", "postgresql://bob:***@db:5432/x"),
    ("call?api_key=abcd1234xyz&x=1", "call?api_key=***&x=1"),
    ('{"api_key": "zzzzzzzz", "n": 1}', '{"api_key": "***", "n": 1}'),
    ("password=s3cret! secret: xyz token=t0k3n", "password=*** secret: *** token=***"),
    ("tokens used: 123, a task-list", "tokens used: 123, a task-list"),
    ("short", "short"),
])
def test_redaction_patterns(text, expected):
    assert Redactor().text(text) == expected


def test_redaction_of_nested_values_and_extra_patterns():
    redactor = Redactor(["internal-[0-9]{4}"])
    value = {"llm_config": {"api_key": "abc", "model": "gpt"}, "items": ["id internal-1234", 5], "password": ""}
    assert redactor.value(value) == {"llm_config": {"api_key": "***", "model": "gpt"}, "items": ["id ***", 5],
                                     "password": ""}
    with pytest.raises(ValueError, match=r"redaction pattern '\(\[' is not a valid regular expression"):
        Redactor(["(["])


def test_an_otlp_sink_without_the_sdk_is_a_settings_error_that_names_the_extra(monkeypatch, tmp_path):
    """Without the ``otel`` extra no ``opentelemetry`` package exists at all, and looking up its ``sdk`` submodule
    raises instead of answering None: the settings still say what to install."""
    import importlib.util

    def missing(name: str, *args, **kwargs):
        raise ModuleNotFoundError(f"No module named {name.split('.')[0]!r}")

    monkeypatch.setattr(importlib.util, "find_spec", missing)
    with pytest.raises(SettingsError, match=r"needs the OpenTelemetry SDK: pip install 'skillmine\[otel\]'"):
        CaptureSettings(database_url=f"sqlite:///{tmp_path / 'c.db'}", sink="otlp",
                        otlp_endpoint="http://127.0.0.1:4318/v1/traces")
