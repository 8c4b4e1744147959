"""Names and ids shared by the OTLP export (``capture.read.otlp_export``) and ingest (``capture.importers.otlp``).

A run is a trace and an event is a span. A run id that is a UUID *is* its trace id (16 bytes), so a run exported
and ingested elsewhere keeps its id; an event's span id is the first 8 bytes of the sha256 of its id (stable, and
the original id travels in ``skillmine.event.id``). Stdlib only: no OpenTelemetry package is needed to read this.
"""

import hashlib
import uuid

# Operation names of the GenAI semantic conventions (and AG2's own, for ingest).
WORKFLOW_OPS = frozenset({"invoke_workflow", "conversation", "initiate_chats", "multi_conversation"})
AGENT_OPS = frozenset({"invoke_agent", "create_agent"})
LLM_OPS = frozenset({"chat", "text_completion", "generate_content"})
TOOL_OPS = frozenset({"execute_tool"})
CODE_OPS = frozenset({"execute_code"})
HANDOFF_OPS = frozenset({"speaker_selection", "handoff"})
HUMAN_OPS = frozenset({"await_human_input"})

# skillmine's own facts, under its namespace.
RUN = "skillmine.run."
EVENT = "skillmine.event."
NODES = "skillmine.nodes"
FILES = "skillmine.files"
COSTS = "skillmine.costs"
EXIT_CODE = "skillmine.code.exit_code"
HANDOFF_FROM = "skillmine.handoff.from"
HANDOFF_TO = "skillmine.handoff.to"
FILE_TYPE = "skillmine.file.type"
SESSION = "skillmine.session.id"
SCOPE = "skillmine"


def trace_id_of(run_id: str) -> bytes:
    """The 16-byte trace id of a run: the UUID's bytes, else a sha256 prefix of the id."""
    try:
        return uuid.UUID(str(run_id)).bytes
    except ValueError:
        return hashlib.sha256(str(run_id).encode()).digest()[:16]


def run_id_of(trace_id: bytes) -> str:
    """The run id of a trace (inverse of :func:`trace_id_of` for UUID run ids)."""
    return str(uuid.UUID(bytes=bytes(trace_id)))


def span_id_of(event_id: str) -> bytes:
    """The 8-byte span id of an event (or of a run's workflow span, from the run id)."""
    digest = hashlib.sha256(str(event_id).encode()).digest()
    return digest[:8] if any(digest[:8]) else digest[8:16]
