"""initial capture store

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=100), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_active_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=50), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=True),
        sa.Column("resource_limits", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
    )
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.create_index("idx_sessions_user_status", ["user_id", "status"], unique=False)

    op.create_table(
        "workflow_runs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("session_id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=True),
        sa.Column("mode", sa.String(length=100), nullable=True),
        sa.Column("agent", sa.String(length=100), nullable=True),
        sa.Column("model", sa.String(length=100), nullable=True),
        sa.Column("status", sa.String(length=50), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("checkpoint_frequency_minutes", sa.Integer(), nullable=True),
        sa.Column("task_description", sa.Text(), nullable=True),
        sa.Column("meta", sa.JSON(), nullable=True),
        sa.Column("branch_parent_id", sa.String(length=36), nullable=True),
        sa.Column("is_branch", sa.Boolean(), nullable=False),
        sa.Column("branch_depth", sa.Integer(), nullable=False),
        sa.Column("parent_run_id", sa.String(length=36), nullable=True),
        sa.Column("stage_number", sa.Integer(), nullable=True),
        sa.Column("stage_name", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(
            ["parent_run_id"],
            ["workflow_runs.id"],
            name=op.f("fk_workflow_runs_parent_run_id_workflow_runs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_workflow_runs_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_runs")),
    )
    with op.batch_alter_table("workflow_runs", schema=None) as batch_op:
        batch_op.create_index("idx_runs_agent_status", ["agent", "status"], unique=False)
        batch_op.create_index("idx_runs_session_status", ["session_id", "status"], unique=False)
        batch_op.create_index(batch_op.f("ix_workflow_runs_parent_run_id"), ["parent_run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_workflow_runs_session_id"), ["session_id"], unique=False)

    op.create_table(
        "dag_nodes",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("session_id", sa.String(length=36), nullable=False),
        sa.Column("parent_node_id", sa.String(length=36), nullable=True),
        sa.Column("node_type", sa.String(length=50), nullable=False),
        sa.Column("agent", sa.String(length=100), nullable=True),
        sa.Column("status", sa.String(length=50), nullable=False),
        sa.Column("order_index", sa.Integer(), nullable=False),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["parent_node_id"],
            ["dag_nodes.id"],
            name=op.f("fk_dag_nodes_parent_node_id_dag_nodes"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["workflow_runs.id"],
            name=op.f("fk_dag_nodes_run_id_workflow_runs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name=op.f("fk_dag_nodes_session_id_sessions"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dag_nodes")),
    )
    with op.batch_alter_table("dag_nodes", schema=None) as batch_op:
        batch_op.create_index("idx_nodes_run_order", ["run_id", "order_index"], unique=False)
        batch_op.create_index("idx_nodes_type_status", ["node_type", "status"], unique=False)
        batch_op.create_index(batch_op.f("ix_dag_nodes_parent_node_id"), ["parent_node_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_dag_nodes_run_id"), ["run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_dag_nodes_session_id"), ["session_id"], unique=False)

    op.create_table(
        "dag_edges",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("from_node_id", sa.String(length=36), nullable=False),
        sa.Column("to_node_id", sa.String(length=36), nullable=False),
        sa.Column("dependency_type", sa.String(length=50), nullable=False),
        sa.Column("condition", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["from_node_id"],
            ["dag_nodes.id"],
            name=op.f("fk_dag_edges_from_node_id_dag_nodes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["to_node_id"],
            ["dag_nodes.id"],
            name=op.f("fk_dag_edges_to_node_id_dag_nodes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dag_edges")),
    )
    with op.batch_alter_table("dag_edges", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dag_edges_from_node_id"), ["from_node_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_dag_edges_to_node_id"), ["to_node_id"], unique=False)

    op.create_table(
        "execution_events",
        sa.Column(
            "seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("node_id", sa.String(length=36), nullable=True),
        sa.Column("step_id", sa.String(length=36), nullable=True),
        sa.Column("session_id", sa.String(length=36), nullable=False),
        sa.Column("parent_event_id", sa.String(length=36), nullable=True),
        sa.Column("event_type", sa.String(length=50), nullable=False),
        sa.Column("event_subtype", sa.String(length=50), nullable=True),
        sa.Column("agent_name", sa.String(length=100), nullable=True),
        sa.Column("agent_role", sa.String(length=50), nullable=True),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("inputs", sa.JSON(), nullable=True),
        sa.Column("outputs", sa.JSON(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("meta", sa.JSON(), nullable=True),
        sa.Column("execution_order", sa.Integer(), nullable=False),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=50), nullable=False),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["dag_nodes.id"],
            name=op.f("fk_execution_events_node_id_dag_nodes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["parent_event_id"],
            ["execution_events.id"],
            name=op.f("fk_execution_events_parent_event_id_execution_events"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["workflow_runs.id"],
            name=op.f("fk_execution_events_run_id_workflow_runs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_execution_events_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_execution_events")),
        sa.UniqueConstraint("id", name=op.f("uq_execution_events_id")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("execution_events", schema=None) as batch_op:
        batch_op.create_index("idx_events_node_order", ["node_id", "execution_order"], unique=False)
        batch_op.create_index("idx_events_parent", ["parent_event_id"], unique=False)
        batch_op.create_index("idx_events_run_order", ["run_id", "execution_order"], unique=False)
        batch_op.create_index("idx_events_session_timestamp", ["session_id", "timestamp"], unique=False)
        batch_op.create_index("idx_events_type_subtype", ["event_type", "event_subtype"], unique=False)
        batch_op.create_index(batch_op.f("ix_execution_events_agent_name"), ["agent_name"], unique=False)
        batch_op.create_index(batch_op.f("ix_execution_events_step_id"), ["step_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_execution_events_timestamp"), ["timestamp"], unique=False)

    op.create_table(
        "cost_records",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("session_id", sa.String(length=36), nullable=True),
        sa.Column("step_id", sa.String(length=36), nullable=True),
        sa.Column("node_id", sa.String(length=36), nullable=True),
        sa.Column("event_id", sa.String(length=36), nullable=True),
        sa.Column("model", sa.String(length=100), nullable=True),
        sa.Column("agent_name", sa.String(length=100), nullable=True),
        sa.Column("parent_run_id", sa.String(length=36), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("total_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Numeric(precision=12, scale=6), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["execution_events.id"],
            name=op.f("fk_cost_records_event_id_execution_events"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["node_id"], ["dag_nodes.id"], name=op.f("fk_cost_records_node_id_dag_nodes"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["workflow_runs.id"],
            name=op.f("fk_cost_records_run_id_workflow_runs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_cost_records_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cost_records")),
    )
    with op.batch_alter_table("cost_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cost_records_event_id"), ["event_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_cost_records_node_id"), ["node_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_cost_records_run_id"), ["run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_cost_records_session_id"), ["session_id"], unique=False)

    op.create_table(
        "files",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("session_id", sa.String(length=36), nullable=True),
        sa.Column("step_id", sa.String(length=36), nullable=True),
        sa.Column("event_id", sa.String(length=36), nullable=True),
        sa.Column("node_id", sa.String(length=36), nullable=True),
        sa.Column("file_path", sa.Text(), nullable=False),
        sa.Column("file_type", sa.String(length=50), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("workflow_phase", sa.String(length=50), nullable=True),
        sa.Column("is_final_output", sa.Boolean(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=True),
        sa.Column("generating_agent", sa.String(length=100), nullable=True),
        sa.Column("generating_code_hash", sa.String(length=64), nullable=True),
        sa.Column("priority", sa.String(length=20), nullable=True),
        sa.Column("meta", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["execution_events.id"],
            name=op.f("fk_files_event_id_execution_events"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["node_id"], ["dag_nodes.id"], name=op.f("fk_files_node_id_dag_nodes"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["workflow_runs.id"], name=op.f("fk_files_run_id_workflow_runs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name=op.f("fk_files_session_id_sessions"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_files")),
    )
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.create_index("idx_files_event", ["event_id"], unique=False)
        batch_op.create_index("idx_files_node", ["node_id"], unique=False)
        batch_op.create_index("idx_files_path", ["file_path"], unique=False)
        batch_op.create_index("idx_files_run_final", ["run_id", "is_final_output"], unique=False)
        batch_op.create_index("idx_files_run_phase", ["run_id", "workflow_phase"], unique=False)
        batch_op.create_index("idx_files_run_type", ["run_id", "file_type"], unique=False)
        batch_op.create_index(batch_op.f("ix_files_content_hash"), ["content_hash"], unique=False)
        batch_op.create_index(batch_op.f("ix_files_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_files_session_id"), ["session_id"], unique=False)

    op.create_table(
        "messages",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("session_id", sa.String(length=36), nullable=True),
        sa.Column("step_id", sa.String(length=36), nullable=True),
        sa.Column("event_id", sa.String(length=36), nullable=True),
        sa.Column("node_id", sa.String(length=36), nullable=True),
        sa.Column("sender", sa.String(length=100), nullable=True),
        sa.Column("recipient", sa.String(length=100), nullable=True),
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=True),
        sa.Column("meta", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["execution_events.id"],
            name=op.f("fk_messages_event_id_execution_events"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["node_id"], ["dag_nodes.id"], name=op.f("fk_messages_node_id_dag_nodes"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["workflow_runs.id"],
            name=op.f("fk_messages_run_id_workflow_runs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name=op.f("fk_messages_session_id_sessions"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index("idx_messages_event", ["event_id"], unique=False)
        batch_op.create_index("idx_messages_node", ["node_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_messages_run_id"), ["run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_messages_session_id"), ["session_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_messages_session_id"))
        batch_op.drop_index(batch_op.f("ix_messages_run_id"))
        batch_op.drop_index("idx_messages_node")
        batch_op.drop_index("idx_messages_event")

    op.drop_table("messages")
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_files_session_id"))
        batch_op.drop_index(batch_op.f("ix_files_created_at"))
        batch_op.drop_index(batch_op.f("ix_files_content_hash"))
        batch_op.drop_index("idx_files_run_type")
        batch_op.drop_index("idx_files_run_phase")
        batch_op.drop_index("idx_files_run_final")
        batch_op.drop_index("idx_files_path")
        batch_op.drop_index("idx_files_node")
        batch_op.drop_index("idx_files_event")

    op.drop_table("files")
    with op.batch_alter_table("cost_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cost_records_session_id"))
        batch_op.drop_index(batch_op.f("ix_cost_records_run_id"))
        batch_op.drop_index(batch_op.f("ix_cost_records_node_id"))
        batch_op.drop_index(batch_op.f("ix_cost_records_event_id"))

    op.drop_table("cost_records")
    with op.batch_alter_table("execution_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_execution_events_timestamp"))
        batch_op.drop_index(batch_op.f("ix_execution_events_step_id"))
        batch_op.drop_index(batch_op.f("ix_execution_events_agent_name"))
        batch_op.drop_index("idx_events_type_subtype")
        batch_op.drop_index("idx_events_session_timestamp")
        batch_op.drop_index("idx_events_run_order")
        batch_op.drop_index("idx_events_parent")
        batch_op.drop_index("idx_events_node_order")

    op.drop_table("execution_events")
    with op.batch_alter_table("dag_edges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dag_edges_to_node_id"))
        batch_op.drop_index(batch_op.f("ix_dag_edges_from_node_id"))

    op.drop_table("dag_edges")
    with op.batch_alter_table("dag_nodes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dag_nodes_session_id"))
        batch_op.drop_index(batch_op.f("ix_dag_nodes_run_id"))
        batch_op.drop_index(batch_op.f("ix_dag_nodes_parent_node_id"))
        batch_op.drop_index("idx_nodes_type_status")
        batch_op.drop_index("idx_nodes_run_order")

    op.drop_table("dag_nodes")
    with op.batch_alter_table("workflow_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_workflow_runs_session_id"))
        batch_op.drop_index(batch_op.f("ix_workflow_runs_parent_run_id"))
        batch_op.drop_index("idx_runs_session_status")
        batch_op.drop_index("idx_runs_agent_status")

    op.drop_table("workflow_runs")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index("idx_sessions_user_status")

    op.drop_table("sessions")
