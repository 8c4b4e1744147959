"""SQLAlchemy 2.0 models of the capture store.

Columns follow the reference system (CMBAgent/MARS, ``shared/reference/cmbagent.md`` §2 and §7) so that its
databases import without loss. One deliberate difference: ``execution_events`` has a store-assigned integer
primary key ``seq`` (monotonic, never reused) used for incremental extraction; the reference's UUID ``id`` stays,
unique and indexed, and every foreign key points at it.
"""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from capture.core.vocabulary import RECIPIENT_CHARS

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# A big integer on PostgreSQL, the rowid alias on SQLite (where only INTEGER PRIMARY KEY autoincrements).
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    """Timezone-aware now in UTC (the store's only clock)."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base with a stable constraint naming convention (Alembic needs names for SQLite batches)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, datetime: DateTime(timezone=True)}


class Session(Base):
    """An isolation boundary: every repository query filters by session, as in the reference."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str | None] = mapped_column(String(100))
    name: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_active_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(50), default="active")
    meta: Mapped[dict[str, Any] | None]
    resource_limits: Mapped[dict[str, Any] | None]

    runs: Mapped[list["WorkflowRun"]] = relationship(back_populates="session", cascade="all, delete-orphan",
                                                     passive_deletes=True)

    __table_args__ = (Index("idx_sessions_user_status", "user_id", "status"),)


class WorkflowRun(Base):
    """One workflow execution (a chat, a plan, a simulated or imported run)."""

    __tablename__ = "workflow_runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[str | None] = mapped_column(String(36))
    mode: Mapped[str | None] = mapped_column(String(100))
    agent: Mapped[str | None] = mapped_column(String(100))
    model: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(50), default="executing")
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    last_heartbeat_at: Mapped[datetime | None]
    checkpoint_frequency_minutes: Mapped[int | None] = mapped_column(Integer, default=10)
    task_description: Mapped[str | None] = mapped_column(Text)
    meta: Mapped[dict[str, Any] | None]
    branch_parent_id: Mapped[str | None] = mapped_column(String(36))
    is_branch: Mapped[bool] = mapped_column(Boolean, default=False)
    branch_depth: Mapped[int] = mapped_column(Integer, default=0)
    parent_run_id: Mapped[str | None] = mapped_column(ForeignKey("workflow_runs.id", ondelete="SET NULL"),
                                                      index=True)
    stage_number: Mapped[int | None] = mapped_column(Integer)
    stage_name: Mapped[str | None] = mapped_column(String(100))
    # Set by a database trigger (migration 0002), never by writers: the store's MAX(execution_events.seq) when the
    # row last changed, so incremental extraction re-reads a run only when it changed since its last read.
    updated_seq: Mapped[int | None] = mapped_column(BigInteger)

    session: Mapped[Session] = relationship(back_populates="runs")
    nodes: Mapped[list["DagNode"]] = relationship(back_populates="run", cascade="all, delete-orphan",
                                                  passive_deletes=True)

    __table_args__ = (
        Index("idx_runs_session_status", "session_id", "status"),
        Index("idx_runs_agent_status", "agent", "status"),
        Index("idx_runs_updated_seq", "updated_seq"),
    )


class DagNode(Base):
    """A coarse stage of a run (planning, step_N, terminator, ...); ``meta.execution_summary`` is ours."""

    __tablename__ = "dag_nodes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("workflow_runs.id", ondelete="CASCADE"), index=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    parent_node_id: Mapped[str | None] = mapped_column(ForeignKey("dag_nodes.id", ondelete="SET NULL"),
                                                       index=True)
    node_type: Mapped[str] = mapped_column(String(50), default="agent")
    agent: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(50), default="pending")
    order_index: Mapped[int] = mapped_column(Integer, default=0)
    depth: Mapped[int] = mapped_column(Integer, default=0)
    meta: Mapped[dict[str, Any] | None]

    run: Mapped[WorkflowRun] = relationship(back_populates="nodes")

    __table_args__ = (
        Index("idx_nodes_run_order", "run_id", "order_index"),
        Index("idx_nodes_type_status", "node_type", "status"),
    )


class DagEdge(Base):
    """A dependency between two nodes of one run."""

    __tablename__ = "dag_edges"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    from_node_id: Mapped[str] = mapped_column(ForeignKey("dag_nodes.id", ondelete="CASCADE"), index=True)
    to_node_id: Mapped[str] = mapped_column(ForeignKey("dag_nodes.id", ondelete="CASCADE"), index=True)
    dependency_type: Mapped[str] = mapped_column(String(50), default="sequential")
    condition: Mapped[str | None] = mapped_column(Text)


class ExecutionEvent(Base):
    """One fine-grained thing that happened: an agent call, LLM call, tool call, code run, file, message ..."""

    __tablename__ = "execution_events"

    seq: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    # Only the indexes a query of the store needs (DESIGN.md, the capture store: each index, its query, its insert
    # cost; migration 0003): every read of events is scoped by id, run, node or parent.
    run_id: Mapped[str] = mapped_column(ForeignKey("workflow_runs.id", ondelete="CASCADE"))
    node_id: Mapped[str | None] = mapped_column(ForeignKey("dag_nodes.id", ondelete="CASCADE"))
    step_id: Mapped[str | None] = mapped_column(String(36))
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    parent_event_id: Mapped[str | None] = mapped_column(
        ForeignKey("execution_events.id", ondelete="SET NULL"))
    event_type: Mapped[str] = mapped_column(String(50))
    event_subtype: Mapped[str | None] = mapped_column(String(50))
    agent_name: Mapped[str | None] = mapped_column(String(100))
    agent_role: Mapped[str | None] = mapped_column(String(50))
    timestamp: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    inputs: Mapped[dict[str, Any] | None]
    outputs: Mapped[dict[str, Any] | None]
    error_message: Mapped[str | None] = mapped_column(Text)
    meta: Mapped[dict[str, Any] | None]
    execution_order: Mapped[int] = mapped_column(Integer, default=0)
    depth: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(50), default="completed")

    children: Mapped[list["ExecutionEvent"]] = relationship(back_populates="parent", passive_deletes=True)
    parent: Mapped["ExecutionEvent | None"] = relationship(back_populates="children", remote_side=[id])

    __table_args__ = (
        Index("idx_events_run_order", "run_id", "execution_order"),
        Index("idx_events_node_order", "node_id", "execution_order"),
        Index("idx_events_parent", "parent_event_id"),
        {"sqlite_autoincrement": True},
    )


class File(Base):
    """A file produced during a run, with content hash and provenance (event, node, agent)."""

    __tablename__ = "files"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("workflow_runs.id", ondelete="CASCADE"))
    session_id: Mapped[str | None] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    step_id: Mapped[str | None] = mapped_column(String(36))
    event_id: Mapped[str | None] = mapped_column(ForeignKey("execution_events.id", ondelete="SET NULL"))
    node_id: Mapped[str | None] = mapped_column(ForeignKey("dag_nodes.id", ondelete="CASCADE"))
    file_path: Mapped[str] = mapped_column(Text)
    file_type: Mapped[str] = mapped_column(String(50), default="other")
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    workflow_phase: Mapped[str | None] = mapped_column(String(50))
    is_final_output: Mapped[bool] = mapped_column(Boolean, default=False)
    content_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    generating_agent: Mapped[str | None] = mapped_column(String(100))
    generating_code_hash: Mapped[str | None] = mapped_column(String(64))
    priority: Mapped[str | None] = mapped_column(String(20))
    meta: Mapped[dict[str, Any] | None]

    __table_args__ = (
        Index("idx_files_run_type", "run_id", "file_type"),
        Index("idx_files_event", "event_id"),
        Index("idx_files_node", "node_id"),
        Index("idx_files_run_phase", "run_id", "workflow_phase"),
        Index("idx_files_run_final", "run_id", "is_final_output"),
        Index("idx_files_path", "file_path"),
    )


class Message(Base):
    """A message between agents, linked to the event that sent it and its node."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("workflow_runs.id", ondelete="CASCADE"), index=True)
    session_id: Mapped[str | None] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    step_id: Mapped[str | None] = mapped_column(String(36))
    event_id: Mapped[str | None] = mapped_column(ForeignKey("execution_events.id", ondelete="SET NULL"))
    node_id: Mapped[str | None] = mapped_column(ForeignKey("dag_nodes.id", ondelete="CASCADE"))
    sender: Mapped[str | None] = mapped_column(String(100))
    recipient: Mapped[str | None] = mapped_column(String(RECIPIENT_CHARS))
    content: Mapped[str | None] = mapped_column(Text)
    timestamp: Mapped[datetime] = mapped_column(default=utcnow)
    tokens: Mapped[int | None] = mapped_column(Integer)
    meta: Mapped[dict[str, Any] | None]

    __table_args__ = (
        Index("idx_messages_event", "event_id"),
        Index("idx_messages_node", "node_id"),
    )


class CostRecord(Base):
    """Tokens and USD per LLM call or per agent, as the reference records them."""

    __tablename__ = "cost_records"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("workflow_runs.id", ondelete="CASCADE"), index=True)
    session_id: Mapped[str | None] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    step_id: Mapped[str | None] = mapped_column(String(36))
    node_id: Mapped[str | None] = mapped_column(ForeignKey("dag_nodes.id", ondelete="CASCADE"), index=True)
    event_id: Mapped[str | None] = mapped_column(ForeignKey("execution_events.id", ondelete="SET NULL"),
                                                 index=True)
    model: Mapped[str | None] = mapped_column(String(100))
    agent_name: Mapped[str | None] = mapped_column(String(100))
    parent_run_id: Mapped[str | None] = mapped_column(String(36))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    total_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(12, 6), default=Decimal(0))
    timestamp: Mapped[datetime] = mapped_column(default=utcnow)


# Table handles for Core (non-ORM) statements: the write path, the read side and the importers share these.
SESSIONS: Table = Session.__table__
RUNS: Table = WorkflowRun.__table__
NODES: Table = DagNode.__table__
EDGES: Table = DagEdge.__table__
EVENTS: Table = ExecutionEvent.__table__
FILES: Table = File.__table__
MESSAGES: Table = Message.__table__
COSTS: Table = CostRecord.__table__
