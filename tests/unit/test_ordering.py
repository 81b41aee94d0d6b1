"""ordering.py, prefix_retry.py and the inventory freshness check: pure decisions, no I/O."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from annotation_reconciler.rules import ordering, prefix_retry
from annotation_reconciler.rules.notifications import ChangeKind, ObjectChange, parse_event
from annotation_reconciler.rules.ordering import RowState, Stamp, latest_per_key, may_quarantine, newer
from annotation_reconciler.storage import inventory

T = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
LATER = T + datetime.timedelta(milliseconds=1)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (Stamp(LATER, "01"), Stamp(T, "FF"), True),  # time decides first
        (Stamp(T, "FF"), Stamp(LATER, "01"), False),
        (Stamp(T, "0A"), Stamp(T, "9"), True),  # padded to equal length: "0A" > "09"
        (Stamp(T, "A"), Stamp(T, "0B"), False),  # "0A" < "0B" although "A" > "0B" as plain strings
        (Stamp(T, "0a"), Stamp(T, "0A"), False),  # hex case does not matter
        (Stamp(T, "01"), Stamp(T, None), False),  # an event and a listing at the same instant: a tie
        (Stamp(T, None), Stamp(T, "01"), False),
        (Stamp(T, None), Stamp(T, None), False),  # equal is not newer
    ],
)
def test_newer_compares_time_then_padded_sequencer(a: Stamp, b: Stamp, expected: bool) -> None:
    assert newer(a, b) is expected


def _change(kind: ChangeKind, when: datetime.datetime | None, seq: str | None, key: str = "k") -> ObjectChange:
    return ObjectChange("b", key, kind, "s3", when, seq)


def test_latest_per_key_keeps_each_keys_newest_event_whatever_the_arrival_order() -> None:
    changes = [
        _change(ChangeKind.REMOVED, T, "0C"),
        _change(ChangeKind.CREATED, T, "0B"),  # arrives later, happened earlier
        _change(ChangeKind.CREATED, T, "0A", key="other"),
        _change(ChangeKind.REMOVED, T, "0C"),  # duplicate
    ]
    assert latest_per_key(changes, LATER) == {
        "k": (ChangeKind.REMOVED, Stamp(T, "0C", LATER)),  # an S3 notification's time: [T, T + 1 ms)
        "other": (ChangeKind.CREATED, Stamp(T, "0A", LATER)),
    }
    assert latest_per_key(list(reversed(changes)), LATER)["k"] == (ChangeKind.REMOVED, Stamp(T, "0C", LATER))


def test_an_event_without_an_event_time_counts_as_received_now() -> None:
    changes = [_change(ChangeKind.REMOVED, T, "0C"), _change(ChangeKind.CREATED, None, None)]
    assert latest_per_key(changes, LATER) == {"k": (ChangeKind.CREATED, Stamp(LATER, None))}
    assert ordering.last_states(changes, LATER).created == {"k"}


@given(st.lists(st.tuples(st.sampled_from("abc"), st.booleans(), st.integers(0, 5)), max_size=30))
def test_last_states_follow_the_latest_event(events: list[tuple[str, bool, int]]) -> None:
    """Data-file changes are collapsed in the same event order as metadata changes (a tie: the removal, issue 27)."""
    changes = [
        _change(ChangeKind.REMOVED if r else ChangeKind.CREATED, T + datetime.timedelta(seconds=t), None, key=k)
        for k, r, t in events
    ]
    states = ordering.last_states(changes, LATER)
    assert not states.removed & states.created
    for k in {k for k, _, _ in events}:
        latest = max(t for kk, _, t in events if kk == k)
        last = any(r for kk, r, t in events if kk == k and t == latest)
        assert (k in states.removed) is last and (k in states.created) is not last


def test_last_states_ignore_delivery_order_and_break_ties_by_sequencer() -> None:
    changes = [
        _change(ChangeKind.REMOVED, T, None, key="a"),
        _change(ChangeKind.CREATED, T + datetime.timedelta(seconds=1), None, key="a"),
        _change(ChangeKind.CREATED, T, "0A", key="b"),
        _change(ChangeKind.REMOVED, T, "0B", key="b"),  # same second: the sequencer orders them
    ]
    forward, backward = ordering.last_states(changes, LATER), ordering.last_states(changes[::-1], LATER)
    assert forward == backward == ordering.KeyStates(removed={"b"}, created={"a"})


def test_an_event_without_time_counts_as_received_now() -> None:
    assert ordering.stamp_of(_change(ChangeKind.CREATED, None, None), LATER) == Stamp(LATER, None)


@pytest.mark.parametrize(
    ("row", "stamp", "expected"),
    [
        (None, Stamp(T), True),  # no row yet
        (RowState("released", None), Stamp(T), True),  # a row written without a stamp (an operator) never blocks
        (RowState("quarantined", Stamp(LATER)), Stamp(T), True),  # open: quarantine is idempotent
        (RowState("held", Stamp(LATER)), Stamp(T), True),
        (RowState("released", Stamp(LATER, "01")), Stamp(T, "02"), False),  # released by something newer
        (RowState("released", Stamp(T, None)), Stamp(T, None), True),  # a tie: looked at again, never forgotten
        (RowState("released", Stamp(T, "05")), Stamp(T, None), True),  # a listing in the instant of the event
        (RowState("released", Stamp(T, "01")), Stamp(LATER), True),  # a removal seen after the release
        (RowState("purged", Stamp(T)), Stamp(LATER), True),
    ],
)
def test_may_quarantine(row: RowState | None, stamp: Stamp, expected: bool) -> None:
    assert may_quarantine(row, stamp) is expected


@pytest.mark.parametrize(
    ("raw", "parsed"), [("00ab", "00AB"), ("a", "A"), ("f" * 64, "F" * 64), ("xyz", None), ("", None), ("1" * 65, None)]
)
def test_only_hex_sequencers_are_kept(raw: str, parsed: str | None) -> None:
    record = {
        "eventSource": "aws:s3",
        "eventName": "ObjectRemoved:Delete",
        "eventTime": "2026-01-01T00:00:00Z",
        "s3": {"bucket": {"name": "b"}, "object": {"key": "k", "sequencer": raw}},
    }
    (change,) = parse_event({"Records": [record]}).changes
    assert change.sequencer == parsed


# --- prefix retries -------------------------------------------------------------------------------


def test_failed_prefixes_are_retried_then_blind() -> None:
    for attempt in range(prefix_retry.MAX_PREFIX_RETRIES):
        assert prefix_retry.split_failures(["b/", "a/", "a/"], attempt) == (["a/", "b/"], [])
    assert prefix_retry.split_failures(["b/", "a/"], prefix_retry.MAX_PREFIX_RETRIES) == ([], ["a/", "b/"])


# --- inventory freshness --------------------------------------------------------------------------


def _manifest(created: datetime.datetime) -> inventory.Manifest:
    location = inventory.ManifestLocation("inv", "p/b/daily/2026-01-01T00-00Z/manifest.json")
    return inventory.Manifest(location, "b", "CSV", ("Bucket", "Key"), (), created)


def test_an_inventory_older_than_the_limit_is_refused() -> None:
    limit = datetime.timedelta(hours=48)
    inventory.check_fresh(_manifest(T - limit), now=T, max_age=limit)  # exactly at the limit: used
    with pytest.raises(inventory.InventoryStale, match=r"49 h ago \(more than 48 h\).*still delivers"):
        inventory.check_fresh(_manifest(T - datetime.timedelta(hours=49)), now=T, max_age=limit)


def test_a_stale_inventory_says_when_it_was_made_and_what_to_fix() -> None:
    """The whole message: a setting naming one fixed manifest.json, a year old."""
    with pytest.raises(inventory.InventoryStale) as info:
        inventory.check_fresh(_manifest(T - datetime.timedelta(days=365)), now=T, max_age=datetime.timedelta(hours=48))
    assert str(info.value) == (
        "s3://inv/p/b/daily/2026-01-01T00-00Z/manifest.json was created 2025-01-01 00:00 UTC, 8760 h ago "
        "(more than 48 h): check that the S3 Inventory configuration still delivers, and that "
        "RECONCILER_INVENTORY_MANIFEST names its prefix rather than one fixed manifest.json"
    )


def test_sequencers_equal_but_for_leading_zeros_tie() -> None:
    """S3 pads the shorter sequencer with zeros: "A" and "0A" are the same position, so neither is newer."""
    assert not newer(Stamp(T, "A"), Stamp(T, "0A")) and not newer(Stamp(T, "0A"), Stamp(T, "A"))
    assert newer(Stamp(T, "0b"), Stamp(T, "A")) and not newer(Stamp(T, "a"), Stamp(T, "0B"))


# --- whole seconds (issue 27) ------------------------------------------------------------------------------


def _bridge(kind: ChangeKind, when: datetime.datetime, key: str = "k") -> ObjectChange:
    return ObjectChange("b", key, kind, "eventbridge", when, None)


@pytest.mark.parametrize(
    ("listing_after", "evidence"),
    [(0, False), (0.5, False), (0.999, False), (1, True), (1.5, True)],
)
def test_a_listing_is_evidence_only_for_what_ended_before_it_began(listing_after: float, evidence: bool) -> None:
    """An EventBridge removal stamped T happened somewhere in [T, T + 1 s): a listing begun within that second
    may have come before it, and proves nothing about it."""
    removal = ordering.stamp_of(_bridge(ChangeKind.REMOVED, T), LATER)
    listing = Stamp(T + datetime.timedelta(seconds=listing_after))
    assert newer(listing, removal) is evidence
    assert not newer(removal, listing) or not evidence
    # the S3-notification shape has milliseconds: a listing 0.5 s later comes after it
    assert newer(Stamp(T + datetime.timedelta(seconds=0.5)), ordering.stamp_of(_change(ChangeKind.REMOVED, T, None), T))


@pytest.mark.parametrize("created_after", [0, 0.001, 0.3, 0.999])
def test_both_shapes_in_one_second_keep_the_removal(created_after: float) -> None:
    """A removal known to the second (EventBridge) and a creation with milliseconds (S3) in that second: which
    came first cannot be told, and the removal wins, whatever the delivery order."""
    removed = _bridge(ChangeKind.REMOVED, T)
    created = _change(ChangeKind.CREATED, T + datetime.timedelta(seconds=created_after), None)
    for changes in ([removed, created], [created, removed]):
        assert ordering.last_states(changes, LATER) == ordering.KeyStates(removed={"k"})
    # and the other way round: an S3 removal within an EventBridge creation's second
    s3_removed = _change(ChangeKind.REMOVED, T + datetime.timedelta(seconds=created_after), None)
    assert ordering.last_states([s3_removed, _bridge(ChangeKind.CREATED, T)], LATER).removed == {"k"}
    # a creation in the next second comes after the removal
    later = _change(ChangeKind.CREATED, T + datetime.timedelta(seconds=1), None)
    assert ordering.last_states([later, removed], LATER) == ordering.KeyStates(created={"k"})


@pytest.mark.parametrize("tie", [0, 0.2])
def test_a_release_seen_within_a_removals_second_does_not_block_the_removal(tie: float) -> None:
    row = RowState("released", Stamp(T + datetime.timedelta(seconds=tie)))  # a listing saw the key then
    assert may_quarantine(row, ordering.stamp_of(_bridge(ChangeKind.REMOVED, T), LATER))


def test_an_event_without_a_time_counts_as_received_now_and_keeps_its_sequencer() -> None:
    now = datetime.datetime(2026, 12, 7, 12, tzinfo=datetime.UTC)
    stamp = ordering.stamp_of(_change(ChangeKind.REMOVED, None, "0A1B"), now)
    assert (stamp.time, stamp.sequencer, stamp.end) == (now, "0A1B", now)


def test_an_event_of_an_unknown_source_spans_a_second_as_eventbridge_times_do() -> None:
    at = datetime.datetime(2026, 12, 7, 12, tzinfo=datetime.UTC)
    stamp = ordering.stamp_of(ObjectChange("b", "k", ChangeKind.REMOVED, "replay", at, None), at)
    assert stamp.end == at + datetime.timedelta(seconds=1)


def test_a_stamp_without_a_sequencer_sorts_before_one_with_at_the_same_time() -> None:
    at = datetime.datetime(2026, 12, 7, 12, tzinfo=datetime.UTC)
    assert Stamp(at, None).sort_key() < Stamp(at, "00A").sort_key() < Stamp(at, "00b").sort_key()


def test_of_two_creations_in_unknown_order_the_one_whose_interval_ends_last_is_kept() -> None:
    """EventBridge times are to the second and carry no sequencer: overlapping creations cannot be ordered."""
    at = datetime.datetime(2026, 12, 7, 12, tzinfo=datetime.UTC)
    first = ObjectChange("b", "k", ChangeKind.CREATED, "eventbridge", at + datetime.timedelta(milliseconds=500), None)
    second = ObjectChange("b", "k", ChangeKind.CREATED, "eventbridge", at, None)
    for changes in ([first, second], [second, first]):
        kind, stamp = latest_per_key(changes, at)["k"]
        assert kind is ChangeKind.CREATED and stamp.time == at + datetime.timedelta(milliseconds=500)
