"""One run per real run: each source's view of a run is a :class:`Contribution`, merged into the stored run.

The same real run can reach the store from several sources (a MARS database row, its session folder, a task
output folder). Importers give it the same canonical id (:mod:`capture.importers.identity`), and the
:class:`MergeWriter` folds each source's contribution into that one run, in one transaction, so that the result
depends only on the *set* of contributions, never on their order:

- the run row: per column, the value of the highest-precedence source (``rank``, then label) that has one; each
  source's own run columns are kept in ``meta.import_sources[label]`` so the row can be recomputed on every merge;
  ``meta`` is the highest-precedence source's own meta (cut to :data:`MAX_OWN_META_BYTES`, the task text kept
  per source to :data:`MAX_TASK_BYTES`, so that the bookkeeping always fits the store's payload limit);
- events and messages: from the richest source only (most events; ties by precedence), named in
  ``meta.events_from``; a richer source replaces the others' events, a poorer one adds none;
- cost records: from the source with the most detailed costs (linked to events, then to nodes, then count), named
  in ``meta.costs_from``: sources of one run report the same spend at different granularity, so summing them
  would count it twice;
- nodes, edges and files: the union over sources (canonical ids by short node name and relative file path);
  where two sources describe the same node or file, the higher-precedence one's row is kept; a session row is
  kept from the highest-ranked source (ties: its content digest).

Every contribution carries a content hash: the same content again is "unchanged", different content under the
same label replaces that source's part ("updated"). Rows are redacted with the capture redactor before hashing
and storing, so nothing an importer writes escapes the secret masking of capture.
"""

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.exc import DBAPIError

from capture.core.payload import clip_text, encode_payload
from capture.core.redaction import Redactor
from capture.core.settings import CaptureSettings
from capture.store.capture_store import Batch, CaptureStore, StoreTransaction
from capture.store.db import StoreError, safe_url
from capture.store.models import COSTS, EDGES, EVENTS, FILES, MESSAGES, NODES, RUNS, SESSIONS, Base
from capture.store.records import to_utc

SOURCES_KEY = "import_sources"
BOOKKEEPING = (SOURCES_KEY, "sources", "events_from", "costs_from")
MAX_OWN_META_BYTES = 32 * 1024
MAX_TASK_BYTES = 16 * 1024
RUN_TIME_FIELDS = ("started_at", "completed_at", "last_heartbeat_at")
# Run columns merged by precedence (``id`` is the canonical id; ``meta`` is merged separately).
RUN_FIELDS = ("session_id", "project_id", "mode", "agent", "model", "status", "started_at", "completed_at",
              "last_heartbeat_at", "checkpoint_frequency_minutes", "task_description", "branch_parent_id",
              "is_branch", "branch_depth", "parent_run_id", "stage_number", "stage_name")


@dataclass
class Contribution:
    """One source's view of one run: its rows (``batch.runs[0]`` is the run) and how it ranks against others.

    ``label`` names the source record (file or folder and the record in it); ``rank`` orders sources where they
    disagree (a structured database row outranks a parsed log); ``session`` is the session row written with the
    run (in the same transaction, so a failed import leaves no empty session behind).
    """

    run_id: str
    label: str
    rank: int
    batch: Batch
    session: dict[str, Any]
    redacted: bool = False  # the batch already passed through the merge writer's redactor (a read-ahead child)


@dataclass
class MergeOutcome:
    """What one merge did to its run."""

    state: str  # "new", "merged" (another source's run gained this one), "updated", "unchanged"
    events: int = 0
    costs: int = 0
    files: int = 0
    nodes: int = 0
    edges: int = 0
    messages: int = 0


# Values no redactor changes (only strings and containers hold text): a bulk import meets millions of them, so the
# redaction walk skips them without a call.
_NO_TEXT = frozenset({int, float, bool, type(None), datetime})


def _plain_scalar(value: Any) -> Any:
    """A value JSON has no form for, as content hashes write it: times as ISO strings, decimals as strings."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value.normalize())
    return str(value)


def _plain(value: Any) -> Any:
    """A JSON-ready, order-stable form of row values, dict keys as strings (for dicts the encoder cannot sort)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float)):
        return value
    return _plain_scalar(value)


def content_hash(batch: Batch) -> str:
    """sha256 of a contribution's rows: what "the same content" means for re-imports.

    The JSON of the rows as :func:`_plain` would make them, written by the C encoder in one pass with times and
    decimals converted as met (a bulk import hashes every row, and a Python walk first cost twice the encoding).
    Dict keys that are not all strings (which the encoder cannot sort) take the walk."""
    rows = {name: getattr(batch, name) for name in ("runs", "nodes", "edges", "events", "files", "messages", "costs")}
    try:
        text = json.dumps(rows, sort_keys=True, default=_plain_scalar)
    except TypeError:
        text = json.dumps(_plain(rows), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def redact_batch(batch: Batch, redactor: Redactor) -> Batch:
    """The batch with every string value (text columns and JSON payloads) passed through ``redactor``."""
    def rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: (v if type(v) in _NO_TEXT or k.endswith("id") else redactor.value(v)) for k, v in row.items()}
                for row in items]
    return Batch(runs=rows(batch.runs), nodes=rows(batch.nodes), edges=list(batch.edges), events=rows(batch.events),
                 files=rows(batch.files), messages=rows(batch.messages), costs=rows(batch.costs))


def _precedence(label: str, info: dict[str, Any]) -> tuple[int, str]:
    return int(info.get("rank", 0)), label


def _owner(sources: dict[str, dict[str, Any]], key: str) -> str | None:
    """The source whose ``key`` richness is highest (ties: precedence); None when no source has any."""
    candidates = [(tuple(info.get(key) or (0,)), _precedence(label, info), label)
                  for label, info in sources.items() if any(info.get(key) or (0,))]
    return max(candidates)[2] if candidates else None


def _merged_run(run_id: str, sources: dict[str, dict[str, Any]], own_meta: dict[str, Any]) -> dict[str, Any]:
    """The run row recomputed from every source's own columns (highest precedence first) and the
    highest-precedence source's ``own_meta``."""
    ordered = sorted(sources.items(), key=lambda item: _precedence(*item), reverse=True)
    row: dict[str, Any] = {"id": run_id}
    for name in RUN_FIELDS:
        for _, info in ordered:
            value = info["run"].get(name)
            if value is not None:
                row[name] = to_utc(value, field=name) if name in RUN_TIME_FIELDS else value
                break
    meta = dict(own_meta)
    meta[SOURCES_KEY] = sources
    meta["sources"] = sorted(sources)
    meta["events_from"] = _owner(sources, "event_richness")
    meta["costs_from"] = _owner(sources, "cost_richness")
    row["meta"] = meta
    return row


def _source_info(contribution: Contribution, digest: str, batch: Batch) -> dict[str, Any]:
    costs = batch.costs
    run = {k: v for k, v in batch.runs[0].items() if k not in ("id", "meta")}
    if run.get("task_description") is not None:
        run["task_description"] = clip_text(str(run["task_description"]), MAX_TASK_BYTES)
    return {"hash": digest, "rank": contribution.rank,
            "event_richness": [len(batch.events)],
            "cost_richness": [sum(1 for c in costs if c.get("event_id")), sum(1 for c in costs if c.get("node_id")),
                              len(costs)],
            "run": _plain(run)}


def _own_meta(batch: Batch) -> dict[str, Any]:
    """A contribution's own run meta as stored (cut the same way whatever the import order)."""
    meta = encode_payload(batch.runs[0].get("meta") or {}, MAX_OWN_META_BYTES)
    return meta if isinstance(meta, dict) else {"value": meta}


class MergeWriter:
    """Merges contributions into ``store``, one transaction each (see the module docstring for the rules)."""

    def __init__(self, store: CaptureStore, redactor: Redactor | None = None) -> None:
        self.store = store
        self.redactor = redactor or Redactor(CaptureSettings.from_env().redact_patterns)
        self._sessions: dict[str, tuple[int, str]] = {}  # session id -> the best key this writer has settled

    def write(self, contribution: Contribution) -> MergeOutcome:
        """Merge one contribution; raises :class:`StoreError` naming the store when it cannot be written."""
        batch, digest = self._redacted(contribution)
        session_key = None
        try:
            with self.store.transaction() as tx:
                session_key = self._settle_session(tx, contribution)
                outcome = self._merge(tx, contribution, batch, digest)
                if outcome.state in ("updated", "merged"):
                    tx.forget_known()  # events may have been replaced
        except DBAPIError as exc:
            self.store.forget_known()
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
            raise StoreError(f"cannot write to the store {safe_url(str(self.store.engine.url))}: {reason}") \
                from None
        if session_key is not None:
            self._sessions[contribution.session["id"]] = session_key
        return outcome

    def write_many(self, contributions: list[Contribution]) -> list[MergeOutcome]:
        """Merge several contributions in one transaction (a bulk import's unit), with the result of writing them one
        by one: runs the store does not hold yet are inserted together (one run insert, one event insert), the others
        merged as :meth:`write` does. If anything in the group is refused, nothing of it is kept and the error is
        raised (the caller may then write the group one by one to keep the runs before the bad one)."""
        sessions_before = dict(self._sessions)
        try:
            staged = [(c, *self._redacted(c)) for c in contributions]
            with self.store.transaction() as tx:
                for contribution in contributions:
                    key = self._settle_session(tx, contribution)
                    if key is not None:
                        self._sessions[contribution.session["id"]] = key
                outcomes = self._merge_many(tx, staged)
                if any(o.state in ("updated", "merged") for o in outcomes):
                    tx.forget_known()
        except BaseException:
            self._sessions = sessions_before
            self.store.forget_known()
            raise
        return outcomes

    def _redacted(self, contribution: Contribution) -> tuple[Batch, str]:
        batch = contribution.batch if contribution.redacted else redact_batch(contribution.batch, self.redactor)
        return batch, content_hash(batch)

    def _merge_many(self, tx: StoreTransaction, staged: list[tuple[Contribution, Batch, str]]
                    ) -> list[MergeOutcome]:
        """Runs that are new (absent from the store, once in the group) and bring no nodes, edges or files (rows
        other runs' sources may share) go in bulk; every other contribution through :meth:`_merge`, in order.
        Returns the outcomes in the order of ``staged``."""
        ids = [c.run_id for c, _, _ in staged]
        stored: set[str] = set()
        for start in range(0, len(ids), 900):
            stored.update(tx.conn.execute(select(RUNS.c.id).where(RUNS.c.id.in_(ids[start:start + 900]))).scalars())
        first = {run_id: index for index, run_id in reversed(list(enumerate(ids)))}
        outcomes: dict[int, MergeOutcome] = {}
        write = Batch()
        for index, (contribution, batch, digest) in enumerate(staged):
            if contribution.run_id in stored or first[contribution.run_id] != index or \
                    batch.nodes or batch.edges or batch.files:
                continue
            run = _merged_run(contribution.run_id, {contribution.label: _source_info(contribution, digest, batch)},
                              _own_meta(batch))
            write.runs.append(run)
            take_events = run["meta"]["events_from"] == contribution.label
            take_costs = run["meta"]["costs_from"] == contribution.label
            events, messages = (batch.events, batch.messages) if take_events else ([], [])
            costs = batch.costs if take_costs else []
            write.events += events
            write.messages += messages
            write.costs += costs
            outcomes[index] = MergeOutcome("new", events=len(events), costs=len(costs), messages=len(messages))
        if write.runs:
            tx.write(write)
        for index, (contribution, batch, digest) in enumerate(staged):
            if index not in outcomes:
                outcomes[index] = self._merge(tx, contribution, batch, digest)
        return [outcomes[i] for i in range(len(staged))]

    def _settle_session(self, tx: StoreTransaction, contribution: Contribution) -> tuple[int, str] | None:
        """Write the contribution's session row unless the store holds one that outranks it (rank, then content
        digest: the same winner in any order); returns the key settled, None when nothing was checked."""
        row = contribution.session
        key = (contribution.rank, hashlib.sha256(json.dumps(_plain(row), sort_keys=True).encode()).hexdigest())
        settled = self._sessions.get(row["id"])
        if settled is not None and settled >= key:
            return None
        stored = tx.conn.execute(select(SESSIONS.c.meta).where(SESSIONS.c.id == row["id"])).first()
        meta = (stored.meta if stored is not None else None) or {}
        stored_key = (int(meta.get("import_rank", -1)), str(meta.get("import_digest", "")))
        if stored is not None and stored_key >= key:
            return stored_key
        tx.write(Batch(sessions=[{**row, "meta": {**(row.get("meta") or {}), "import_rank": key[0],
                                                  "import_digest": key[1]}}]))
        return key

    def _merge(self, tx: StoreTransaction, contribution: Contribution, batch: Batch, digest: str) -> MergeOutcome:
        run_id = contribution.run_id
        conn = tx.conn
        stored = conn.execute(select(RUNS.c.meta).where(RUNS.c.id == run_id)).first()
        meta = (stored.meta if stored is not None else None) or {}
        sources: dict[str, dict[str, Any]] = dict(meta.get(SOURCES_KEY) or {})
        previous = sources.get(contribution.label)
        if previous is not None and previous.get("hash") == digest:
            return MergeOutcome("unchanged")
        state = "new" if stored is None else ("updated" if previous is not None else "merged")
        sources[contribution.label] = _source_info(contribution, digest, batch)
        top = max(sources.items(), key=lambda item: _precedence(*item))[0]
        own_meta = _own_meta(batch) if top == contribution.label else \
            {k: v for k, v in meta.items() if k not in BOOKKEEPING}
        run = _merged_run(run_id, sources, own_meta)
        old_events, old_costs = meta.get("events_from"), meta.get("costs_from")
        for key, old in (("events_from", old_events), ("costs_from", old_costs)):
            if state == "updated" and old == contribution.label:
                run["meta"][key] = old  # an owner stays owner when it shrinks: the others' rows are not stored
        take_events = run["meta"]["events_from"] == contribution.label
        take_costs = run["meta"]["costs_from"] == contribution.label
        if take_events and (old_events is not None or state == "updated"):
            self._drop_events(conn, run_id)
        if take_costs and (old_costs is not None or state == "updated"):
            conn.execute(delete(COSTS).where(COSTS.c.run_id == run_id))
        nodes = self._winning(conn, NODES, batch.nodes, contribution)
        files = self._winning(conn, FILES, batch.files, contribution)
        edges = self._new_edges(conn, batch.edges)
        write = Batch(runs=[run], nodes=nodes, edges=edges, events=batch.events if take_events else [],
                      files=files, messages=batch.messages if take_events else [],
                      costs=batch.costs if take_costs else [])
        tx.write(write)
        return MergeOutcome(state, events=len(write.events), costs=len(write.costs), files=len(files),
                            nodes=len(nodes), edges=len(edges), messages=len(write.messages))

    @staticmethod
    def _drop_events(conn: Connection, run_id: str) -> None:
        """Remove a run's events and messages (a richer or newer source replaces them); links to them go."""
        ids = select(EVENTS.c.id).where(EVENTS.c.run_id == run_id).scalar_subquery()
        for table in (FILES, COSTS, MESSAGES):
            conn.execute(update(table).where(table.c.event_id.in_(ids)).values(event_id=None))
        conn.execute(update(EVENTS).where(EVENTS.c.run_id == run_id).values(parent_event_id=None))
        conn.execute(delete(MESSAGES).where(MESSAGES.c.run_id == run_id))
        conn.execute(delete(EVENTS).where(EVENTS.c.run_id == run_id))

    @staticmethod
    def _winning(conn: Connection, table: Any, rows: list[dict[str, Any]],
                 contribution: Contribution) -> list[dict[str, Any]]:
        """Rows of ``contribution`` that are new or outrank the stored row with the same id."""
        if not rows:
            return []
        stored = {r.id: r.meta or {} for r in conn.execute(
            select(table.c.id, table.c.meta).where(table.c.id.in_([r["id"] for r in rows])))}
        mine = (contribution.rank, contribution.label)
        out = []
        for row in rows:
            theirs = stored.get(row["id"])
            if theirs is not None and (int(theirs.get("import_rank", 0)), str(theirs.get("import_source"))) > mine:
                continue
            out.append({**row, "meta": {**(row.get("meta") or {}), "import_source": contribution.label,
                                        "import_rank": contribution.rank}})
        return out

    @staticmethod
    def _new_edges(conn: Connection, edges: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Edges whose (from, to) pair is not stored yet."""
        edges = list(edges)
        if not edges:
            return []
        stored = {(r.from_node_id, r.to_node_id) for r in conn.execute(
            select(EDGES.c.from_node_id, EDGES.c.to_node_id)
            .where(EDGES.c.from_node_id.in_({e["from_node_id"] for e in edges})))}
        out, seen = [], set(stored)
        for edge in edges:
            pair = (edge["from_node_id"], edge["to_node_id"])
            if pair not in seen:
                seen.add(pair)
                out.append(edge)
        return out


# Columns the store assigns (sequence numbers, integer keys, a run's change stamp) or fills with the time of writing
# when a source has none (a session's creation): not part of what two imports must agree on.
STORE_ASSIGNED = {"execution_events": {"seq"}, "dag_edges": {"id"}, "messages": {"id"}, "cost_records": {"id"},
                  "sessions": {"created_at"}, "workflow_runs": {"updated_seq"}}
FINGERPRINT_TABLES = ("sessions", "workflow_runs", "dag_nodes", "dag_edges", "execution_events", "files",
                      "messages", "cost_records")


def fingerprint(store: CaptureStore) -> dict[str, tuple[int, str]]:
    """(row count, sha256 of the sorted rows) per table, without store-assigned columns: two stores that hold the
    same runs have the same fingerprint, whatever order their imports ran in."""
    out = {}
    with store.engine.connect() as conn:
        for name in FINGERPRINT_TABLES:
            table = Base.metadata.tables[name]
            cols = [c for c in table.columns if c.name not in STORE_ASSIGNED.get(name, set())]
            rows = sorted(json.dumps(_plain(dict(zip([c.name for c in cols], r, strict=True))), sort_keys=True,
                                     default=str) for r in conn.execute(select(*cols)))
            out[name] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest())
    return out
