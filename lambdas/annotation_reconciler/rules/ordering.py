"""The order of what the reconciler learns about one key: S3 events and listings. Pure: no I/O.

An event carries (eventTime, sequencer). Its time is a moment of a given precision: an S3 notification's has
milliseconds, so it means the interval [t, t + 1 ms); an EventBridge event's has whole seconds, [t, t + 1 s). A
listing starts at an instant and is evidence only for what ended before it began. S3 defines the sequencer
only among the events of one key: hexadecimal strings compared after left-padding the shorter with zeros; it
orders two events whose intervals overlap. Without it, overlapping stamps tie, and a tie between a removal and
anything else favours the removal (the purge re-checks S3 before deleting anything)::

    >>> from datetime import datetime, timedelta, UTC
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> newer(Stamp(t, "0A"), Stamp(t, "9"))
    True
    >>> newer(Stamp(t, None), Stamp(t, "01")), newer(Stamp(t, "01"), Stamp(t, None))   # a tie either way
    (False, False)
    >>> removed = Stamp(t, None, t + timedelta(seconds=1))          # EventBridge: some time in that second
    >>> newer(Stamp(t + timedelta(milliseconds=500)), removed)      # a listing begun within it: not after it
    False
    >>> newer(Stamp(t + timedelta(seconds=1)), removed)
    True
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from annotation_reconciler.rules.notifications import ChangeKind, ObjectChange

#: Now, in UTC: what the reconciler's operations take as their clock (tests give another).
Clock = Callable[[], datetime.datetime]


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


#: Sequencers are padded to this width (SQL pads the same way); a longer one is not a sequencer.
SEQUENCER_WIDTH = 64


#: How long the moment an event's time names lasts, by where the event came from (its time's precision).
EVENT_SPANS = {"s3": datetime.timedelta(milliseconds=1), "eventbridge": datetime.timedelta(seconds=1)}


@dataclass(frozen=True, slots=True)
class Stamp:
    """When something was learnt about a key: an event's (eventTime, sequencer) and the end of the interval its
    time means (None: an instant, as a listing's start), or a listing's start."""

    time: datetime.datetime
    sequencer: str | None = None
    until: datetime.datetime | None = None

    @property
    def end(self) -> datetime.datetime:
        return self.until or self.time

    def sort_key(self) -> tuple[datetime.datetime, str]:
        return self.time, (self.sequencer or "").upper().rjust(SEQUENCER_WIDTH, "0")


def _after(a: Stamp, b: Stamp) -> bool:
    """``a`` began once ``b`` was over (and strictly after ``b`` began): certainly later, whatever the sequencers."""
    return a.time >= b.end and a.time > b.time


def newer(a: Stamp, b: Stamp) -> bool:
    """Is ``a`` strictly later than ``b``? Certainly so when ``a`` began once ``b`` was over; when their
    intervals overlap, only the sequencers can tell (same key only); without two of them, neither is newer."""
    if _after(a, b):
        return True
    if _after(b, a) or a.sequencer is None or b.sequencer is None:
        return False
    return a.sort_key()[1] > b.sort_key()[1]


def stamp_of(change: ObjectChange, received: datetime.datetime) -> Stamp:
    """An event's stamp: its time, sequencer and the end of the interval its time means; one without an eventTime
    counts as received now, an instant (real S3 events always carry one)."""
    if change.event_time is None:
        return Stamp(received, change.sequencer)
    span = EVENT_SPANS.get(change.source, EVENT_SPANS["eventbridge"])
    return Stamp(change.event_time, change.sequencer, change.event_time + span)


@dataclass(frozen=True, slots=True)
class RowState:
    """What a key's newest ledger row has seen: its status and the stamp of the event or listing that set it
    (``None`` for rows written before stamps were kept, or by an operator)."""

    status: str
    stamp: Stamp | None


def latest_per_key(changes: Iterable[ObjectChange], received: datetime.datetime) -> dict[str, tuple[ChangeKind, Stamp]]:
    """Each key's last change in event order (a duplicate or an older event of a key changes nothing). When the
    order cannot be told (overlapping times, no two sequencers), a removal wins over a creation, and of two
    changes of one kind the one whose interval ends last is kept."""
    latest: dict[str, tuple[ChangeKind, Stamp]] = {}
    for change in changes:
        stamp = stamp_of(change, received)
        seen = latest.get(change.key)
        if seen is None or newer(stamp, seen[1]):
            latest[change.key] = (change.kind, stamp)
        elif newer(seen[1], stamp):
            continue
        elif change.kind is not seen[0]:
            if change.kind is ChangeKind.REMOVED:
                latest[change.key] = (change.kind, stamp)
        elif stamp.end >= seen[1].end:
            latest[change.key] = (change.kind, stamp)
    return latest


@dataclass
class KeyStates:
    """The last state of each key a batch of events touched, in event order."""

    removed: set[str] = field(default_factory=set)
    created: set[str] = field(default_factory=set)


def last_states(changes: Iterable[ObjectChange], received: datetime.datetime) -> KeyStates:
    """The keys whose last change (by :func:`latest_per_key`) removed them, and those it created."""
    states = KeyStates()
    for key, (kind, _) in latest_per_key(changes, received).items():
        (states.removed if kind is ChangeKind.REMOVED else states.created).add(key)
    return states


def may_quarantine(row: RowState | None, stamp: Stamp) -> bool:
    """A removal (seen by an event or a listing at ``stamp``) may open a row unless the newest row was
    closed by something strictly newer: a Created event, or a listing that saw the key, after the removal.

    A tie quarantines (the purge re-checks S3 before it deletes anything), while a release needs a strictly
    newer stamp: when the order cannot be told, the key is looked at again rather than forgotten."""
    if row is None or row.stamp is None or row.status in ("quarantined", "held"):
        return True
    return not newer(row.stamp, stamp)
