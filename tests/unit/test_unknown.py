"""One type for "unknown": every result reports its unknown rows as ``lifecycle.Unknown`` (the row, why, and
the key it was checked under), built from the decision that found them (issue 31)."""

from __future__ import annotations

import datetime

import pytest

from annotation_reconciler.rules.lifecycle import AnnotationRef, Decision, Decisions, Unknown, Verdict
from annotation_reconciler.service import inventory
from annotation_reconciler.service.deletions import DeletionResult
from support.candidates import candidate

KEY = "10001/TS_1/Reconstructions/VoxelSpacing10.000/Annotations/100/obj-1.0.json"
SHARD = inventory.InventoryShard("s3://inv/manifest.json", datetime.datetime(2024, 5, 1, tzinfo=datetime.UTC), ())


def test_a_decision_reports_its_row_reason_and_key_as_unknown() -> None:
    row = candidate(3, f"s3://b/{KEY}", 10001, 7, quarantine_id=30)
    assert Decision(row, Verdict.UNKNOWN, KEY, "throttled").as_unknown() == Unknown(
        AnnotationRef(3, f"s3://b/{KEY}", 10001, 7), "throttled", KEY
    )


def test_a_deletion_outcome_reports_only_its_unknown_decisions_as_unknown() -> None:
    decisions = Decisions(
        [
            Decision(candidate(1, "p1"), Verdict.STALE, "k1", "absent"),
            Decision(candidate(2, "p2"), Verdict.UNKNOWN, None, "unmappable"),
            Decision(candidate(3, "p3"), Verdict.RELEASE, "k3", "present"),
            Decision(candidate(4, "p4"), Verdict.UNKNOWN, "k4", "listing failed"),
        ]
    )
    unknown = DeletionResult(decisions).unknown
    assert [(u.ref.id, u.ref.stored_path, u.why, u.key) for u in unknown] == [
        (2, "p2", "unmappable", None),
        (4, "p4", "listing failed", "k4"),
    ]


def test_an_inventory_retry_asks_again_under_each_unknowns_key() -> None:
    unknown = [Unknown(AnnotationRef(5, f"s3://b/{KEY}"), "S3 could not say", KEY)]
    body = inventory.retry(SHARD, unknown)
    assert body is not None and body["candidates"] == [[5, KEY]] and body["attempt"] == 1
    assert inventory.read_shard(body).candidates == ((5, KEY),)


def test_an_inventory_retry_refuses_an_unknown_without_a_key_rather_than_drop_it() -> None:
    with pytest.raises(ValueError, match="annotation 5 has no metadata key"):
        inventory.retry(SHARD, [Unknown(AnnotationRef(5, "s3://elsewhere/x.json"), "unmappable")])
