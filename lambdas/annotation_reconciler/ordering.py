"""The order of what the reconciler learns about one key: S3 events and listings. Pure: no I/O.

An event carries (eventTime, sequencer). S3 defines the sequencer only among the events of one key:
hexadecimal strings compared after left-padding the shorter with zeros. A listing has a time (when it
started) and no sequencer, so at an equal time it ties with an event. Whatever is not newer than what a
ledger row has already seen changes nothing::

    >>> from datetime import datetime, UTC
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> newer(Stamp(t, "0A"), Stamp(t, "9"))
    True
    >>> newer(Stamp(t, None), Stamp(t, "01")), newer(Stamp(t, "01"), Stamp(t, None))   # a tie either way
    (False, False)
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass, field

from annotation_reconciler.events import ChangeKind, ObjectChange

#: Sequencers are padded to this width (SQL pads the same way); a longer one is not a sequencer.
SEQUENCER_WIDTH = 64


@dataclass(frozen=True, slots=True)
class Stamp:
    """When something was learnt about a key: an event's (eventTime, sequencer) or a listing's start."""

    time: datetime.datetime
    sequencer: str | None = None

    def sort_key(self) -> tuple[datetime.datetime, str]:
        return self.time, (self.sequencer or "").upper().rjust(SEQUENCER_WIDTH, "0")


def newer(a: Stamp, b: Stamp) -> bool:
    """Is ``a`` strictly later than ``b``? Time first, then the sequencer when both have one (same key only);
    at an equal time without two sequencers to compare, neither is newer."""
    if a.time != b.time or a.sequencer is None or b.sequencer is None:
        return a.time > b.time
    return a.sort_key() > b.sort_key()


def stamp_of(change: ObjectChange, received: datetime.datetime) -> Stamp:
    """An event's stamp; one without an eventTime counts as received now (real S3 events always carry one)."""
    return Stamp(change.event_time or received, change.sequencer)


@dataclass(frozen=True, slots=True)
class RowState:
    """What a key's newest ledger row has seen: its status and the stamp of the event or listing that set it
    (``None`` for rows written before stamps were kept, or by an operator)."""

    status: str
    stamp: Stamp | None


def latest_per_key(changes: Iterable[ObjectChange], received: datetime.datetime) -> dict[str, tuple[ChangeKind, Stamp]]:
    """Each key's last change in event order (a duplicate or an older event of a key changes nothing)."""
    latest: dict[str, tuple[ChangeKind, Stamp]] = {}
    for change in changes:
        stamp = stamp_of(change, received)
        seen = latest.get(change.key)
        if seen is None or not newer(seen[1], stamp):
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
