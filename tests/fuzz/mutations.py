"""Hypothesis strategies that damage real inputs: bytes (truncation, flips, insertions, cut ranges), JSON values
(wrong types, huge strings, deep nesting, removed keys), SQLite cells, tables and columns, and the one check every
importer must pass."""

import contextlib
import json
import sqlite3
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from capture.importers import SourceError
from capture.store.capture_store import CaptureStore
from tests.fuzz.conftest import fingerprint

DEPTH = 20_000
DEEP_JSON = "[" * DEPTH + "]" * DEPTH
HUGE = "x" * 500_000
_DEEP, _HUGE = "\x00deep\x00", "\x00huge\x00"

# -- bytes ----------------------------------------------------------------------------------------------------


@st.composite
def damaged_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` truncated, with bytes flipped, inserted or a range cut out (one to three damages)."""
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, max(0, len(data) - 1)))
        kind = draw(st.sampled_from(["truncate", "flip", "insert", "cut"]))
        if kind == "truncate":
            data = data[:at]
        elif kind == "flip" and data:
            data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
        elif kind == "insert":
            data = data[:at] + draw(st.binary(min_size=1, max_size=16)) + data[at:]
        else:
            data = data[:at] + data[at + draw(st.integers(1, 4096)):]
    return data


# -- JSON -----------------------------------------------------------------------------------------------------

WRONG_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2 ** 70), 2 ** 70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(),
                                                                                max_size=3),
    st.sampled_from([_DEEP, _HUGE, "", "2026-13-45T99:99:99", "NaN", "-1", "{", "Calling nobody...\n"]))


def _paths(value: Any, prefix: tuple = (), limit: int = 5000) -> list[tuple]:
    out: list[tuple] = []
    stack = [(prefix, value)]
    while stack and len(out) < limit:
        path, node = stack.pop()
        out.append(path)
        if isinstance(node, dict):
            stack.extend((path + (k,), v) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((path + (i,), v) for i, v in enumerate(node))
    return out


def _set(doc: Any, path: tuple, value: Any, delete: bool) -> Any:
    if not path:
        return value
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


@st.composite
def damaged_json(draw: st.DrawFn, doc: Any) -> bytes:
    """``doc`` (parsed JSON) with one to three values replaced by a wrong type, a huge string or a deeply nested
    list, or removed; serialised back to bytes."""
    doc = json.loads(json.dumps(doc))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(sorted(_paths(doc), key=repr)))
        doc = _set(doc, path, draw(WRONG_VALUES), draw(st.booleans()))
    text = json.dumps(doc)
    return text.replace(json.dumps(_DEEP), DEEP_JSON).replace(json.dumps(_HUGE), json.dumps(HUGE)).encode()



@st.composite
def damaged_document(draw: st.DrawFn, data: bytes, structural: bool) -> bytes:
    """A JSON document ``data`` with its values damaged (``structural``, see :func:`damaged_json`) or its bytes
    damaged (see :func:`damaged_bytes`)."""
    return draw(damaged_json(json.loads(data)) if structural else damaged_bytes(data))


@st.composite
def damaged_jsonl(draw: st.DrawFn, data: bytes, structural: bool) -> bytes:
    """JSON Lines ``data`` with one line's JSON damaged (``structural``, see :func:`damaged_json`) or the whole
    text's bytes damaged (see :func:`damaged_bytes`)."""
    if not structural:
        return draw(damaged_bytes(data))
    lines = data.splitlines(keepends=True)
    index = draw(st.integers(0, len(lines) - 1))
    lines[index] = draw(damaged_json(json.loads(lines[index]))) + b"\n"
    return b"".join(lines)

# -- SQLite ---------------------------------------------------------------------------------------------------

CELL_VALUES = st.one_of(
    st.none(), st.integers(-(2 ** 63), 2 ** 63 - 1), st.floats(allow_nan=False), st.text(max_size=30),
    st.binary(max_size=20),
    st.sampled_from(["", "{", "[1, 2", "null", "[]", '{"a": 1}', "not json", "2026-13-45 99:99:99", HUGE,
                     DEEP_JSON, '{"content": ' + DEEP_JSON + "}", "NaN", "-1"]))


@st.composite
def damaged_sqlite(draw: st.DrawFn, source: Path, target: Path) -> str:
    """Copy ``source`` to ``target`` and damage it: a column (in one row or all) set to a wrong value, a table or a
    column dropped, or the file's bytes damaged. Returns what was done, for the failure report."""
    target.write_bytes(source.read_bytes())
    kind = draw(st.sampled_from(["cell", "column", "all_rows", "drop_table", "drop_column", "bytes"]))
    if kind == "bytes":
        target.write_bytes(draw(damaged_bytes(target.read_bytes())))
        return kind
    conn = sqlite3.connect(target)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                             "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        table = draw(st.sampled_from(tables))
        columns = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
        if kind == "drop_table":
            conn.execute(f'DROP TABLE "{table}"')
            return f"dropped table {table}"
        column = draw(st.sampled_from(columns))
        if kind == "drop_column":
            try:
                conn.execute(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')
            except sqlite3.OperationalError:  # a key or indexed column cannot be dropped: empty it instead
                with contextlib.suppress(sqlite3.DatabaseError):
                    conn.execute(f'UPDATE "{table}" SET "{column}" = NULL')
            return f"dropped {table}.{column}"
        value = draw(CELL_VALUES)
        rows = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
        where = "" if kind == "all_rows" or not rows else \
            f' WHERE rowid = (SELECT rowid FROM "{table}" LIMIT 1 OFFSET {draw(st.integers(0, rows - 1))})'
        try:
            conn.execute(f'UPDATE "{table}" SET "{column}" = ?{where}', (value,))
        except sqlite3.DatabaseError:  # the column's own constraint refused it: the file stays as it was
            pass
        return f"{table}.{column} = {value!r:.60}"
    finally:
        conn.commit()
        conn.close()


# -- the property ---------------------------------------------------------------------------------------------


def check_import(importer: Any, path: Path, store: CaptureStore) -> str:
    """Import ``path`` into ``store``: it imports, or fails with one :class:`SourceError` line naming the input;
    a failure leaves the store exactly as it was, except for whole runs it reports as written before the bad place.
    Any other exception propagates (that is the bug the fuzzing looks for)."""
    before = fingerprint(store)
    try:
        importer(path, store, quiet=True)
    except SourceError as exc:
        message = str(exc)
        assert str(path) in message or path.name in message, message
        assert "\n" not in message and "Traceback" not in message, message
        assert len(message) > len(str(path)) + 8, message  # says what is wrong, and where
        written = exc.report.runs_written if exc.report is not None else 0
        after = fingerprint(store)
        if not written:
            assert after == before, f"failed import changed the store: {message}"
        else:
            assert after["workflow_runs"][0] - before["workflow_runs"][0] == exc.report.runs_new
        return "refused"
    return "imported"
