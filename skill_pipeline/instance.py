"""The Dagster instance that ``skillmine mine`` and ``skillmine ui`` share: its home under ``SKILLMINE_HOME``, its
settings (``deploy/dagster.yaml``, plus PostgreSQL storage when ``SKILLMINE_DAGSTER_PG_URL`` is set) and the
variables it reads. A leaf both the CLI and the in-process job runner (``mine.py``) import."""

from pathlib import Path

from sqlalchemy.engine import make_url

from capture.core import config

PACKAGE_DIR = Path(__file__).resolve().parent
INSTANCE_TEMPLATE = PACKAGE_DIR / "deploy" / "dagster.yaml"
POSTGRES_STORAGE = PACKAGE_DIR / "deploy" / "postgres_storage.yaml"


def instance_environment(home: Path) -> dict[str, str]:
    """Variables the instance reads: ``DAGSTER_HOME`` and, when set, ``SKILLMINE_DAGSTER_PG_URL`` with the
    psycopg2 driver that dagster-postgres needs (its ``NOTIFY`` statements fail under psycopg 3)."""
    env = {"DAGSTER_HOME": str(home)}
    pg_url = config.env("DAGSTER_PG_URL")
    if pg_url:
        url = make_url(pg_url)
        if url.get_backend_name() != "postgresql":
            raise ValueError(f"SKILLMINE_DAGSTER_PG_URL={pg_url!r} is not a PostgreSQL URL")
        env["SKILLMINE_DAGSTER_PG_URL"] = url.set(drivername="postgresql+psycopg2").render_as_string(
            hide_password=False)
    return env


def instance_settings() -> str:
    """The instance's dagster.yaml: our settings, plus PostgreSQL storage when SKILLMINE_DAGSTER_PG_URL is set."""
    text = INSTANCE_TEMPLATE.read_text(encoding="utf-8")
    return text + "\n" + POSTGRES_STORAGE.read_text(encoding="utf-8") if config.env("DAGSTER_PG_URL") else text


def dagster_home() -> Path:
    """The shared, absolute Dagster home, created with our instance settings."""
    home = config.home() / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    settings = instance_settings()
    if not target.exists() or target.read_text(encoding="utf-8") != settings:
        target.write_text(settings, encoding="utf-8")
    return home
