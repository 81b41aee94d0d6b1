"""lifecycle.py: the pure decisions (listing plan, verdicts, purge plan and guard, event collapsing)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from annotation_reconciler.lifecycle import (
    AnnotationRef,
    DueRow,
    judge,
    last_states,
    metadata_folder,
    plan_listing,
    plan_purge,
)
from annotation_reconciler.paths import BucketLayout

B = "cryoet-data-portal-public"
LAYOUT = BucketLayout.from_prefix(B, f"s3://{B}/")
VS = "10001/TS_1/Reconstructions/VoxelSpacing10.000/Annotations/"


def key(n: int, vs: str = VS) -> str:
    return f"{vs}{100 + n}/obj{n}-1.0.json"


def test_plan_groups_by_annotations_prefix_and_flags_unmappable() -> None:
    refs = [
        AnnotationRef(1, f"s3://{B}/{key(0)}"),
        AnnotationRef(2, key(1)),
        AnnotationRef(3, f"{B}/{key(2, '10001/TS_2/Reconstructions/VoxelSpacing10.000/Annotations/')}"),
        AnnotationRef(4, f"s3://other/{key(3)}"),
        AnnotationRef(
            5, f"s3://{B}/10001/TS_1/Reconstructions/VoxelSpacing10.000/Annotations/100/x_globalcaption.json"
        ),
    ]
    plan = plan_listing(refs, LAYOUT)
    assert sorted(plan.by_prefix) == [VS, "10001/TS_2/Reconstructions/VoxelSpacing10.000/Annotations/"]
    assert [i.ref.id for i in plan.unverifiable] == [4, 5]
    assert "does not map" in plan.unverifiable[0].why and "not an annotation metadata key" in plan.unverifiable[1].why


def test_judge_present_missing_failed_and_empty() -> None:
    vs2 = "10001/TS_2/Reconstructions/VoxelSpacing10.000/Annotations/"
    vs3 = "10001/TS_3/Reconstructions/VoxelSpacing10.000/Annotations/"
    refs = [
        AnnotationRef(1, key(0)),
        AnnotationRef(2, key(1)),
        AnnotationRef(3, key(0, vs2)),
        AnnotationRef(4, key(0, vs3)),
    ]
    plan = plan_listing(refs, LAYOUT)
    listings = {
        VS: frozenset({key(0), f"{VS}101/101-obj1-1.0_point.ndjson"}),
        vs2: RuntimeError("SlowDown"),
        vs3: frozenset({f"{vs3}100/100-obj0-1.0_point.ndjson"}),  # data files but no metadata at all
    }
    survey = judge(plan, listings)
    assert [r.id for r, _ in survey.present] == [1]
    assert [r.id for r, _ in survey.missing] == [2]
    assert [u.ref.id for u in survey.unverifiable] == [3] and "SlowDown" in survey.unverifiable[0].why
    assert [r.id for r, _ in survey.suspicious] == [4]


def test_unlisted_prefix_is_unverifiable_not_missing() -> None:
    survey = judge(plan_listing([AnnotationRef(1, key(0))], LAYOUT), {})
    assert survey.missing == [] and [u.ref.id for u in survey.unverifiable] == [1]


def due(qid: int, dataset: int | None = 1, k: str | None = "k", approved: bool = False) -> DueRow:
    return DueRow(qid, 100 + qid, dataset, k if k != "k" else f"key{qid}", approved)


def test_purge_plan_release_delete_unknown() -> None:
    rows = [due(1), due(2), due(3), due(4, k=None)]
    plan = plan_purge(rows, {"key1": True, "key2": False}, {1: 2}, {1: 100}, max_fraction=0.1)
    assert [r.quarantine_id for r in plan.release] == [1]
    assert [r.quarantine_id for r in plan.delete] == [2]
    assert [r.quarantine_id for r in plan.unknown] == [3, 4]


@pytest.mark.parametrize(("open_rows", "total", "held"), [(10, 100, False), (11, 100, True), (1, 0, True)])
def test_guard_threshold(open_rows: int, total: int, held: bool) -> None:
    plan = plan_purge([due(1)], {"key1": False}, {1: open_rows}, {1: total}, max_fraction=0.1)
    assert bool(plan.hold) is held and bool(plan.delete) is not held


def test_guard_lets_approved_rows_through() -> None:
    plan = plan_purge(
        [due(1, approved=True), due(2)], {"key1": False, "key2": False}, {1: 50}, {1: 60}, max_fraction=0.1
    )
    assert [r.quarantine_id for r in plan.delete] == [1] and [r.quarantine_id for r in plan.hold] == [2]
    assert plan.held_datasets == {1: (50, 60)}


def test_guard_is_per_dataset() -> None:
    plan = plan_purge(
        [due(1, dataset=1), due(2, dataset=2)],
        {"key1": False, "key2": False},
        {1: 1, 2: 9},
        {1: 100, 2: 10},
        max_fraction=0.1,
    )
    assert [r.quarantine_id for r in plan.delete] == [1] and [r.quarantine_id for r in plan.hold] == [2]


def test_metadata_folder() -> None:
    assert metadata_folder(key(0)) == VS


@given(st.lists(st.tuples(st.sampled_from("abc"), st.booleans(), st.integers(0, 5)), max_size=30))
def test_last_states_follow_the_latest_event(events: list[tuple[str, bool, int]]) -> None:
    triples = [(k, r, (f"2026-01-01T00:00:0{t}", "")) for k, r, t in events]
    states = last_states(triples)
    assert not states.removed & states.created
    for k in {k for k, _, _ in events}:
        latest = max(t for kk, _, t in events if kk == k)
        last = [r for kk, r, t in events if kk == k and t == latest][-1]
        assert (k in states.removed) is last and (k in states.created) is not last


def test_last_states_ignore_delivery_order_for_distinct_times() -> None:
    events = [
        ("a", True, ("2026-01-01T00:00:01", "")),
        ("a", False, ("2026-01-01T00:00:02", "")),
        ("b", False, ("2026-01-01T00:00:01", "")),
        ("b", True, ("2026-01-01T00:00:03", "")),
    ]
    forward, backward = last_states(events), last_states(list(reversed(events)))
    assert forward.removed == backward.removed == {"b"} and forward.created == backward.created == {"a"}


def test_sequencer_breaks_ties_within_the_same_second() -> None:
    events = [
        ("a", False, ("t", "0000000000000000000000000000000A")),
        ("a", True, ("t", "0000000000000000000000000000000B")),
    ]
    assert last_states(list(reversed(events))).removed == {"a"}
