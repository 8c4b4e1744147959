"""Importer ids: ``stable_id`` is uuid5 exactly (changing an id would re-import everything under new ids);
``member_id`` is as stable, and keeps the rows of one owner together in the id index."""

import uuid

from capture.importers.common import IMPORT_NAMESPACE, member_id, stable_id

PARTS = [("xes", "bpic2012.xes.gz", "173688", 1), ("mars-task", None), ("x",), (), ("é☃ 日本", 3.5, True),
         ("a\x1fb", "c"), ("mars-stage", "5b0c1e2d-1111-4222-8333-444455556666", "stage 2")]


def test_stable_id_is_uuid5_of_the_joined_parts() -> None:
    for parts in PARTS:
        expected = str(uuid.uuid5(IMPORT_NAMESPACE, "\x1f".join(str(p) for p in parts)))
        assert stable_id(*parts) == expected
    assert len({stable_id(*parts) for parts in PARTS}) == len(PARTS)


def test_member_id_is_stable_distinct_and_keeps_an_owners_rows_together() -> None:
    run_a, run_b = stable_id("xes", "log.xes", "case 1", 1), stable_id("xes", "log.xes", "case 2", 1)
    ids_a = [member_id(run_a, order) for order in range(300)]
    ids_b = [member_id(run_b, order) for order in range(300)]
    assert ids_a == [member_id(run_a, order) for order in range(300)]  # the same input, the same id
    assert len(set(ids_a) | set(ids_b)) == 600
    assert len({i[:18] for i in ids_a}) == 1 and len({i[:18] for i in ids_b}) == 1  # one prefix per owner
    assert ids_a[0][:18] != ids_b[0][:18]
    for made in ids_a[:5]:
        parsed = uuid.UUID(made)
        assert str(parsed) == made and parsed.version == 8 and parsed.variant == uuid.RFC_4122
    assert member_id(run_a, 1) != member_id(run_a, "1", "")
