"""Fewer garbage collections during bulk work.

A bulk import or simulation allocates millions of short-lived rows, none of them cyclic. Python's collector runs a
gen-0 pass every 700 net allocations, and each pass over the live heap (SQLAlchemy's objects, the rows of the group
being written) cost 15% of an XES import's CPU and 13% of the fast simulator's (benchmarks/RESULTS.md, "Write path,
second session of 2026-12-05"). Inside :func:`fewer_collections` the passes run 50,000 allocations apart.
"""

import gc
from collections.abc import Iterator
from contextlib import contextmanager

BULK_GC_THRESHOLD = 50_000


@contextmanager
def fewer_collections(threshold: int = BULK_GC_THRESHOLD) -> Iterator[None]:
    """Let the cyclic garbage collector run less often inside the block; the previous thresholds come back at its
    end. The setting is the whole process's: other threads collect less often too while the block runs."""
    before = gc.get_threshold()
    gc.set_threshold(max(threshold, before[0]), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
