"""Importer ids: ``stable_id`` is uuid5 exactly (changing an id would re-import everything under new ids)."""

import uuid

from capture.importers.common import IMPORT_NAMESPACE, stable_id

PARTS = [("xes", "bpic2012.xes.gz", "173688", 1), ("mars-task", None), ("x",), (), ("é☃ 日本", 3.5, True),
         ("a\x1fb", "c"), ("mars-stage", "5b0c1e2d-1111-4222-8333-444455556666", "stage 2")]


def test_stable_id_is_uuid5_of_the_joined_parts() -> None:
    for parts in PARTS:
        expected = str(uuid.uuid5(IMPORT_NAMESPACE, "\x1f".join(str(p) for p in parts)))
        assert stable_id(*parts) == expected
    assert len({stable_id(*parts) for parts in PARTS}) == len(PARTS)
