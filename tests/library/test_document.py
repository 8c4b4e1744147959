"""Skill documents: schema, validation errors naming fields, content hash."""

from __future__ import annotations

import json

import pytest
from conftest import plot_candidate

from skill_library import SkillValidationError, content_hash, open_library, publish, validate_skill
from skill_library.document import schema


@pytest.fixture
def doc(tmp_path):
    publish(tmp_path, [plot_candidate()])
    return json.loads(json.dumps(open_library(tmp_path).get("plot_function")))


def test_published_document_is_valid_and_carries_identity(doc):
    assert validate_skill(doc) == []
    assert doc["schema"] == "skillmine.skill/1"
    assert doc["version"] == "1.0.0"
    assert len(doc["content_hash"]) == 64
    assert schema()["$schema"].endswith("2020-12/schema")


def test_validation_names_the_field(doc):
    doc["steps"][1].pop("agent")
    doc["parameters"]["x_min"]["type"] = "decimal"
    errors = validate_skill(doc)
    assert any(e.startswith("steps[1]: 'agent' is a required property") for e in errors)
    assert any(e.startswith("parameters.x_min.type:") for e in errors)


def test_semantic_checks(doc):
    doc["task_template"] = "Plot {function} with {colour}"
    doc["parameters"]["x_min"]["default"] = "zero"
    doc["content_hash"] = content_hash(doc)
    assert validate_skill(doc) == [
        "task_template: placeholder {colour} is not a declared parameter",
        "parameters.x_min.default: expected number, got string 'zero'",
    ]


def test_content_hash_ignores_volatile_fields_only(doc):
    original = doc["content_hash"]
    doc["provenance"]["extracted_at"] = "2030-01-01T00:00:00Z"
    doc["provenance"]["pipeline_run_id"] = "another-run"
    doc["version"] = "9.9.9"
    assert content_hash(doc) == original
    doc["statistics"]["support"] += 1
    assert content_hash(doc) != original
    assert validate_skill(doc) == ["content_hash: does not match the document content"]


def test_bad_candidate_rejected_before_anything_is_written(tmp_path):
    bad = plot_candidate(steps=[{"agent": "engineer"}])
    with pytest.raises(SkillValidationError) as err:
        publish(tmp_path / "lib", [plot_candidate(name="ok"), bad])
    assert "candidate[1] ('Plot function')" in str(err.value)
    assert "steps[0]: 'action' is a required property" in str(err.value)
    assert not (tmp_path / "lib").exists()


def test_candidate_may_not_carry_identity(tmp_path):
    with pytest.raises(SkillValidationError, match="version: assigned by the library"):
        publish(tmp_path, [plot_candidate(version="2.0.0")])
