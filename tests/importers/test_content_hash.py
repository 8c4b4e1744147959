"""``content_hash``: the encoder's one-pass form is the hash of the rows as ``_plain`` writes them, so a re-import of
unchanged content is recognised whichever path hashed it."""

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from capture.importers.merge import _plain, content_hash
from capture.store.capture_store import Batch

scalars = (st.text(max_size=20) | st.integers() | st.floats(allow_nan=False) | st.booleans() | st.none()
           | st.datetimes(timezones=st.just(UTC)) | st.decimals(allow_nan=False, places=3))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)
rows = st.lists(st.dictionaries(st.sampled_from(["id", "run_id", "meta", "inputs", "timestamp", "cost_usd"]),
                                values, min_size=1), max_size=5)


def walked(batch: Batch) -> str:
    """The hash as the rows walked by ``_plain`` first give it."""
    table = {name: _plain(getattr(batch, name)) for name in ("runs", "nodes", "edges", "events", "files",
                                                             "messages", "costs")}
    return hashlib.sha256(json.dumps(table, sort_keys=True, default=str).encode()).hexdigest()


@settings(max_examples=300, deadline=None)
@given(events=rows, runs=rows)
def test_the_one_pass_hash_is_the_walked_hash(events: list[dict], runs: list[dict]) -> None:
    batch = Batch(runs=runs, events=events)
    assert content_hash(batch) == walked(batch)


def test_keys_the_encoder_cannot_sort_take_the_walk_and_still_hash() -> None:
    mixed = Batch(events=[{"id": "e", "meta": {1: "a", "b": 2}}])
    assert content_hash(mixed) == walked(mixed)
    assert content_hash(mixed) != content_hash(Batch(events=[{"id": "e", "meta": {1: "a", "b": 3}}]))


def test_times_and_decimals_hash_as_their_text() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert content_hash(Batch(events=[{"t": at, "c": Decimal("1.50")}])) == \
        content_hash(Batch(events=[{"t": at.isoformat(), "c": "1.5"}]))
