"""Every AWS event shape the events Lambda receives, turned into plain :class:`ObjectChange` values.

Pure: no boto3, no SQL. Supported: SQS events whose bodies are S3 notifications, EventBridge
S3 events, SNS envelopes of either, or the ``s3:TestEvent``; direct S3 notifications; direct
EventBridge events::

    >>> parsed = parse_event({"source": "aws.s3", "detail-type": "Object Deleted",
    ...     "detail": {"bucket": {"name": "b"}, "object": {"key": "10001/a b+c.json"}}})
    >>> [(c.bucket, c.key, c.kind.value) for c in parsed.changes]
    [('b', '10001/a b+c.json', 'removed')]
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import SQSEvent

from annotation_reconciler.errors import EventShapeError
from annotation_reconciler.rules.paths import is_safe_key

MAX_RECORDS_PER_MESSAGE = 1000
_HEX_RE = re.compile(r"[0-9A-Fa-f]+")
_REMOVED_PREFIXES = ("ObjectRemoved:", "LifecycleExpiration:")
_CREATED_PREFIX = "ObjectCreated:"


class ChangeKind(StrEnum):
    REMOVED = "removed"
    CREATED = "created"


@dataclass(frozen=True, slots=True)
class ObjectChange:
    """One object created or removed in a bucket."""

    bucket: str
    key: str  # decoded
    kind: ChangeKind
    source: str  # "s3" (S3 notification) or "eventbridge"
    event_time: datetime | None = None
    sequencer: str | None = None


@dataclass(frozen=True, slots=True)
class Skip:
    """Something deliberately not acted on, counted: a test event, an event type we ignore."""

    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class MessageResult:
    """What one SQS message (or a direct event) held."""

    message_id: str | None
    changes: tuple[ObjectChange, ...] = ()
    skips: tuple[Skip, ...] = ()
    error: str | None = None  # set: the message is malformed and must be reported as failed


@dataclass(frozen=True, slots=True)
class ParsedEvent:
    kind: str  # "sqs", "s3" or "eventbridge"
    messages: tuple[MessageResult, ...]

    @property
    def changes(self) -> list[ObjectChange]:
        return [c for m in self.messages for c in m.changes]

    @property
    def skips(self) -> list[Skip]:
        return [s for m in self.messages for s in m.skips]

    @property
    def errors(self) -> list[tuple[str | None, str]]:
        return [(m.message_id, m.error) for m in self.messages if m.error]


class _Malformed(ValueError):
    pass


class _Unreasonable(ValueError):
    """A key S3 accepts but the reconciler will not reason about (control characters, '.'/'..' segments, a
    leading '/'): its event is counted and skipped, never retried (it could never succeed)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _time(raw: Any) -> datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _key(raw: Any, *, encoded: bool) -> str:
    if not isinstance(raw, str) or not raw:
        raise _Malformed(f"object key must be a non-empty string, got {raw!r}")
    key = unquote_plus(raw) if encoded else raw
    if not is_safe_key(key):
        raise _Unreasonable(key)
    return key


def _unreasonable(exc: _Unreasonable) -> Skip:
    return Skip("unsafe_key", f"{exc.key[:300]!r} has control characters, '.'/'..' segments or a leading '/'")


def _s3_records(body: Mapping[str, Any]) -> tuple[list[ObjectChange], list[Skip]]:
    records = body.get("Records")
    if not isinstance(records, list) or not records:
        raise _Malformed("an S3 notification needs a non-empty 'Records' list")
    if len(records) > MAX_RECORDS_PER_MESSAGE:
        raise _Malformed(f"too many records in one message ({len(records)} > {MAX_RECORDS_PER_MESSAGE})")
    changes: list[ObjectChange] = []
    skips: list[Skip] = []
    for record in records:
        if not isinstance(record, Mapping) or record.get("eventSource") != "aws:s3":
            source = record.get("eventSource") if isinstance(record, Mapping) else type(record).__name__
            raise _Malformed(f"record from {source!r}, expected eventSource 'aws:s3'")
        name = record.get("eventName")
        if not isinstance(name, str) or not name:
            raise _Malformed("S3 record has no eventName")
        if name.startswith(_REMOVED_PREFIXES):
            kind = ChangeKind.REMOVED
        elif name.startswith(_CREATED_PREFIX):
            kind = ChangeKind.CREATED
        else:
            skips.append(Skip("unsupported_event", name))
            continue
        try:
            changes.append(_object_change(record.get("s3"), kind, "s3", record.get("eventTime")))
        except _Unreasonable as exc:
            skips.append(_unreasonable(exc))
    return changes, skips


#: Where each delivery holds ``bucket.name`` and ``object``: (what the message is, the field holding them).
_HOLDERS = {"s3": ("S3 record", "s3"), "eventbridge": ("EventBridge S3 event", "detail")}


def _object_change(holder: Any, kind: ChangeKind, via: str, when: Any) -> ObjectChange:
    """The change an S3 record's ``s3`` (``via="s3"``: its key is URL-encoded) or an EventBridge event's
    ``detail`` (``via="eventbridge"``) describes; both hold ``bucket.name`` and ``object`` (key, sequencer)."""
    bucket = holder.get("bucket", {}).get("name") if isinstance(holder, Mapping) else None
    obj = holder.get("object") if isinstance(holder, Mapping) else None
    if not isinstance(bucket, str) or not bucket or not isinstance(obj, Mapping):
        what, field = _HOLDERS[via]
        raise _Malformed(f"{what} lacks {field}.bucket.name or {field}.object")
    return ObjectChange(
        bucket, _key(obj.get("key"), encoded=via == "s3"), kind, via, _time(when), _sequencer(obj.get("sequencer"))
    )


def _sequencer(raw: Any) -> str | None:
    """S3's sequencer (hex, compared after left-padding); anything else is no sequencer at all."""
    if not isinstance(raw, str) or not 0 < len(raw) <= 64 or not _HEX_RE.fullmatch(raw):
        return None
    return raw.upper()


def _eventbridge(body: Mapping[str, Any]) -> tuple[list[ObjectChange], list[Skip]]:
    if body.get("source") != "aws.s3":
        raise _Malformed(f"EventBridge event from source {body.get('source')!r}, expected 'aws.s3'")
    detail_type = body.get("detail-type")
    if detail_type == "Object Deleted":
        kind = ChangeKind.REMOVED
    elif detail_type == "Object Created":
        kind = ChangeKind.CREATED
    else:
        return [], [Skip("unsupported_event", str(detail_type))]
    try:
        change = _object_change(body.get("detail"), kind, "eventbridge", body.get("time"))
    except _Unreasonable as exc:
        return [], [_unreasonable(exc)]
    return [change], []


def _classify(body: Mapping[str, Any]) -> tuple[list[ObjectChange], list[Skip]]:
    if body.get("Event") == "s3:TestEvent":
        return [], [Skip("test_event", str(body.get("Bucket", "")))]
    if body.get("Type") == "Notification" and isinstance(body.get("Message"), str):
        return _classify(_json(body["Message"]))
    if "detail-type" in body or "source" in body:
        return _eventbridge(body)
    if "Records" in body:
        return _s3_records(body)
    raise _Malformed("not an S3 notification, an EventBridge S3 event, an SNS envelope or an s3:TestEvent")


def _json(raw: str) -> Mapping[str, Any]:
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, TypeError) as exc:
        raise _Malformed(f"body is not valid JSON ({exc})") from None
    if not isinstance(value, Mapping):
        raise _Malformed(f"body is JSON {type(value).__name__}, expected an object")
    return value


def parse_message_body(body: str, message_id: str | None) -> MessageResult:
    """One SQS message body; a malformed one comes back with ``error`` set, never raised."""
    try:
        changes, skips = _classify(_json(body))
    except _Malformed as exc:
        return MessageResult(message_id, error=str(exc))
    return MessageResult(message_id, tuple(changes), tuple(skips))


def parse_event(event: Any) -> ParsedEvent:
    """Parse a Lambda event of any supported shape.

    Per-message problems in an SQS batch are reported on that message; an event that is no
    supported shape at all raises :class:`EventShapeError`.
    """
    if not isinstance(event, Mapping) or not event:
        raise EventShapeError("the event must be a non-empty JSON object (an SQS, S3 or EventBridge event)")
    records = event.get("Records")
    if (
        isinstance(records, list)
        and records
        and all(isinstance(r, Mapping) and r.get("eventSource") == "aws:sqs" for r in records)
    ):
        messages = tuple(
            parse_message_body(r.body, r.message_id)
            if isinstance(r.raw_event.get("body"), str)
            else MessageResult(r.message_id, error="SQS message has no string body")
            for r in SQSEvent(dict(event)).records
        )
        return ParsedEvent("sqs", messages)
    try:
        changes, skips = _classify(event)
    except _Malformed as exc:
        raise EventShapeError(str(exc)) from None
    kind = "s3" if "Records" in event else "eventbridge" if "source" in event else "s3"
    return ParsedEvent(kind, (MessageResult(None, tuple(changes), tuple(skips)),))
