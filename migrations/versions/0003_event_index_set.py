"""execution_events: the index set chosen by measurement

Every secondary index costs each inserted event a B-tree insert (and, on SQLite, the pages it dirties are
written to the WAL again by every batch). Five of the nine served no query the store runs: ``step_id``,
``agent_name`` and ``timestamp`` alone, ``(event_type, event_subtype)`` and ``(session_id, timestamp)`` (every
read of events is scoped by run, node, parent or id, which the kept indexes serve). They are dropped here.
DESIGN.md (the capture store) lists the indexes kept, the query each serves, and what each one costs an insert.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DROPPED = {
    "ix_execution_events_step_id": ["step_id"],
    "ix_execution_events_agent_name": ["agent_name"],
    "ix_execution_events_timestamp": ["timestamp"],
    "idx_events_type_subtype": ["event_type", "event_subtype"],
    "idx_events_session_timestamp": ["session_id", "timestamp"],
}


def upgrade() -> None:
    for name in DROPPED:
        op.drop_index(name, table_name="execution_events")


def downgrade() -> None:
    for name, columns in DROPPED.items():
        op.create_index(name, "execution_events", columns, unique=False)
