"""workflow_runs.updated_seq: a change stamp for incremental extraction

A run's row changes after its events (its status, end time, meta), often with no new event at all (an abandoned
human-in-the-loop run stays open for good). Extraction used to re-read every open run on every pass; with this
stamp it re-reads a run only when the row changed since the last pass.

The stamp is the store's ``MAX(execution_events.seq)`` at the time of the change, set by a trigger, so every
writer (recorder, importers, OTLP ingest, the simulator, an ORM session) stamps without knowing of it, and no clock
is involved: a change made after an extraction read the run gets a stamp >= that extraction's high-water mark
(SQLite writers are serial; on PostgreSQL a change committed late is inside the extraction's overlap window like
a late event). A heartbeat is not a change. Existing rows get no stamp (stamping them all would make the next
extraction re-read every run): a change made before the upgrade that no extraction has read yet is picked up only
with the run's next event or change, so mine once before upgrading a store whose runs are still changing.

SQLite batch migrations that recreate ``workflow_runs`` drop its triggers: such a migration must create them again
(``create_triggers``).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRIGGER = "workflow_runs_change_stamp"
FUNCTION = "skillmine_stamp_run_change"
STAMP = "(SELECT coalesce(max(seq), 0) FROM execution_events)"
# Every column but the stamp itself and the heartbeat.
WATCHED = ("id", "session_id", "project_id", "mode", "agent", "model", "status", "started_at", "completed_at",
           "checkpoint_frequency_minutes", "task_description", "meta", "branch_parent_id", "is_branch",
           "branch_depth", "parent_run_id", "stage_number", "stage_name")


def create_triggers() -> None:
    """The stamping trigger for the connection's dialect (SQLite: AFTER UPDATE, since its triggers cannot assign
    NEW; the trigger's own update touches only the stamp, which it does not watch)."""
    columns = ", ".join(WATCHED)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ "
                   f"BEGIN NEW.updated_seq := {STAMP}; RETURN NEW; END $$")
        op.execute(f"CREATE TRIGGER {TRIGGER} BEFORE UPDATE OF {columns} ON workflow_runs "
                   f"FOR EACH ROW EXECUTE FUNCTION {FUNCTION}()")
    else:
        op.execute(f"CREATE TRIGGER {TRIGGER} AFTER UPDATE OF {columns} ON workflow_runs FOR EACH ROW "
                   f"BEGIN UPDATE workflow_runs SET updated_seq = {STAMP} WHERE id = NEW.id; END")


def drop_triggers() -> None:
    op.execute(f"DROP TRIGGER IF EXISTS {TRIGGER}" +
               (" ON workflow_runs" if op.get_bind().dialect.name == "postgresql" else ""))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}()")


def upgrade() -> None:
    with op.batch_alter_table("workflow_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("updated_seq", sa.BigInteger(), nullable=True))
        batch_op.create_index("idx_runs_updated_seq", ["updated_seq"], unique=False)
    create_triggers()


def downgrade() -> None:
    drop_triggers()
    with op.batch_alter_table("workflow_runs", schema=None) as batch_op:
        batch_op.drop_index("idx_runs_updated_seq")
        batch_op.drop_column("updated_seq")
