"""events.py: every event shape, key decoding, and malformed input reported per message."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from annotation_reconciler.errors import EventShapeError
from annotation_reconciler.rules.notifications import (
    MAX_RECORDS_PER_MESSAGE,
    ChangeKind,
    Skip,
    parse_event,
    parse_message_body,
)

B = "cryoet-data-portal-public"
KEY = "10001/TS_026/Reconstructions/VoxelSpacing13.480/Annotations/100/ribosome-1.0.json"


def s3_body(key: str, name: str = "ObjectRemoved:Delete", **obj: Any) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": name,
                "eventTime": "2026-01-02T03:04:05.678Z",
                "s3": {"bucket": {"name": B}, "object": {"key": key, **obj}},
            }
        ]
    }


def bridge(key: str, detail_type: str = "Object Deleted", **detail: Any) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "same",
        "source": "aws.s3",
        "detail-type": detail_type,
        "time": "2026-01-02T03:04:05Z",
        "detail": {"bucket": {"name": B}, "object": {"key": key}, **detail},
    }


def sqs(*bodies: Any) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m{i}",
                "receiptHandle": "r",
                "eventSource": "aws:sqs",
                "body": b if isinstance(b, str) else json.dumps(b),
            }
            for i, b in enumerate(bodies)
        ]
    }


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("ObjectRemoved:Delete", ChangeKind.REMOVED),
        ("ObjectRemoved:DeleteMarkerCreated", ChangeKind.REMOVED),
        ("LifecycleExpiration:Delete", ChangeKind.REMOVED),
        ("ObjectCreated:Put", ChangeKind.CREATED),
        ("ObjectCreated:CompleteMultipartUpload", ChangeKind.CREATED),
        ("ObjectCreated:Copy", ChangeKind.CREATED),
    ],
)
def test_s3_event_names(name: str, kind: ChangeKind) -> None:
    [change] = parse_event(sqs(s3_body(quote_plus(KEY), name, sequencer="00ab"))).changes
    assert (change.bucket, change.key, change.kind, change.source, change.sequencer) == (B, KEY, kind, "s3", "00AB")
    assert change.event_time is not None and change.event_time.isoformat() == "2026-01-02T03:04:05.678000+00:00"


@pytest.mark.parametrize(
    ("encoded", "key"),
    [
        ("10001/a+b.json", "10001/a b.json"),
        ("10001/a%2Bb.json", "10001/a+b.json"),
        ("10001%2Fx.json", "10001/x.json"),
        ("10001/%C3%A9t%C3%A9.json", "10001/été.json"),
        ("10001/100%25.json", "10001/100%.json"),
    ],
)
def test_s3_keys_are_url_decoded(encoded: str, key: str) -> None:
    assert parse_event(s3_body(encoded)).changes[0].key == key


def test_eventbridge_keys_are_not_decoded_and_delete_markers_are_removals() -> None:
    parsed = parse_event(bridge("10001/a+b%20c.json", **{"deletion-type": "Delete Marker Created"}))
    [change] = parsed.changes
    assert (parsed.kind, change.key, change.kind, change.source) == (
        "eventbridge",
        "10001/a+b%20c.json",
        ChangeKind.REMOVED,
        "eventbridge",
    )
    assert parse_event(bridge(KEY, "Object Created")).changes[0].kind is ChangeKind.CREATED


def test_sqs_mixes_shapes_and_a_poisoned_message_fails_alone() -> None:
    parsed = parse_event(
        sqs(
            s3_body(quote_plus(KEY)),
            bridge(KEY),
            "{truncated",
            {"Service": "Amazon S3", "Event": "s3:TestEvent"},
            {"Type": "Notification", "Message": json.dumps(s3_body(KEY))},
        )
    )
    assert parsed.kind == "sqs" and len(parsed.changes) == 3
    assert [m.message_id for m in parsed.messages if m.error] == ["m2"]
    assert [s.reason for s in parsed.skips] == ["test_event"]
    assert parsed.errors[0][1].startswith("body is not valid JSON")


def test_one_message_with_many_records() -> None:
    body = s3_body(quote_plus(KEY))
    body["Records"] = body["Records"] * 3 + s3_body("10001/b.json", "ObjectCreated:Put")["Records"]
    assert [c.kind for c in parse_message_body(json.dumps(body), "m").changes] == [ChangeKind.REMOVED] * 3 + [
        ChangeKind.CREATED
    ]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("[]", "expected an object"),
        ('{"Records": []}', "non-empty 'Records'"),
        (json.dumps({"Records": [{"eventSource": "aws:sqs"}]}), "expected eventSource 'aws:s3'"),
        (json.dumps(s3_body("")), "non-empty string"),
        (json.dumps({**bridge(KEY), "source": "aws.ec2"}), "from source 'aws.ec2', expected 'aws.s3'"),
        ('{"hello": 1}', "not an S3 notification"),
    ],
)
def test_malformed_bodies_say_what_is_wrong(body: str, fragment: str) -> None:
    result = parse_message_body(body, "m")
    assert result.error is not None and fragment in result.error and result.changes == ()


@pytest.mark.parametrize("key", ["10001/../x.json", "10001/a%0Ab.json", "10001/a%00b.json", "%2F10001/a.json"])
def test_keys_s3_accepts_but_the_reconciler_will_not_reason_about_are_skipped_not_failed(key: str) -> None:
    """Issue 27: such a key is valid in S3; failing its message would retry it forever, then park it in the DLQ.
    The other records of the message are still parsed."""
    body = s3_body(key)
    body["Records"] += s3_body(quote_plus(KEY))["Records"]
    result = parse_message_body(json.dumps(body), "m")
    assert result.error is None and [c.key for c in result.changes] == [KEY]
    assert [s.reason for s in result.skips] == ["unsafe_key"]
    direct = parse_event(bridge(unquote_plus(key)))
    assert direct.changes == [] and [s.reason for s in direct.skips] == ["unsafe_key"]


def test_unsupported_event_types_are_skips_that_name_the_type() -> None:
    """An S3 eventName or EventBridge detail-type the reconciler does not act on (a restore, tags) is no change:
    nothing is quarantined or released on it; it is counted as a skip naming the type."""
    parsed = parse_event(
        sqs(
            s3_body(KEY, "ObjectRestore:Completed"),
            bridge(KEY, "Object Restore Completed"),
            bridge(KEY, "Object Tags Added"),
        )
    )
    assert parsed.changes == [] and parsed.errors == []
    assert parsed.skips == [
        Skip("unsupported_event", "ObjectRestore:Completed"),
        Skip("unsupported_event", "Object Restore Completed"),
        Skip("unsupported_event", "Object Tags Added"),
    ]


#: the ``s3`` of an S3 record or the ``detail`` of an EventBridge event, lacking the bucket's name or the object
WITHOUT_BUCKET_OR_OBJECT = [
    "not an object",
    {"object": {"key": KEY}},
    {"bucket": {"name": B}},
    {"bucket": {"name": ""}, "object": {"key": KEY}},
    {"bucket": {"name": 123}, "object": {"key": KEY}},
    {"bucket": {"name": B}, "object": KEY},
]


@pytest.mark.parametrize("detail", WITHOUT_BUCKET_OR_OBJECT)
def test_an_eventbridge_event_without_bucket_name_or_object_is_malformed(detail: Any) -> None:
    result = parse_message_body(json.dumps({**bridge(KEY), "detail": detail}), "m")
    assert result.error == "EventBridge S3 event lacks detail.bucket.name or detail.object"
    assert result.changes == () and result.skips == ()


@pytest.mark.parametrize(
    ("raw", "when"),
    [
        ("2026-01-02T03:04:05", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),  # no offset: read as UTC
        ("2026-01-02T05:04:05+02:00", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),  # an offset is kept, not replaced
        ("yesterday", None),
        (None, None),
    ],
)
def test_event_times_are_aware_and_a_bad_one_is_none(raw: Any, when: datetime | None) -> None:
    body = s3_body(KEY)
    body["Records"][0]["eventTime"] = raw
    [change] = parse_event(body).changes
    assert change.event_time == when and (when is None or change.event_time.utcoffset() is not None)


@pytest.mark.parametrize(("raw", "sequencer"), [("00ab", "00AB"), ("", None), (123, None), (None, None)])
def test_a_sequencer_is_an_upper_case_string_or_none(raw: Any, sequencer: str | None) -> None:
    assert parse_event(s3_body(KEY, sequencer=raw)).changes[0].sequencer == sequencer


def test_a_message_holds_at_most_the_record_limit() -> None:
    body = s3_body(KEY)
    body["Records"] = body["Records"] * MAX_RECORDS_PER_MESSAGE
    assert len(parse_message_body(json.dumps(body), "m").changes) == MAX_RECORDS_PER_MESSAGE == 1000
    body["Records"] = body["Records"] * 2
    assert parse_message_body(json.dumps(body), "m").error == "too many records in one message (2000 > 1000)"


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([], "an S3 notification needs a non-empty 'Records' list"),
        ([{"eventSource": "aws:sqs"}], "record from 'aws:sqs', expected eventSource 'aws:s3'"),
        (["a record as text"], "record from 'str', expected eventSource 'aws:s3'"),
        ([{**s3_body(KEY)["Records"][0], "eventName": ""}], "S3 record has no eventName"),
        ([{**s3_body(KEY)["Records"][0], "eventName": 5}], "S3 record has no eventName"),
    ],
)
def test_a_malformed_s3_record_gets_the_exact_message(records: list[Any], message: str) -> None:
    result = parse_message_body(json.dumps({"Records": records}), "m")
    assert result.error == message and result.changes == () and result.skips == ()


def test_an_sqs_message_without_a_string_body_fails_alone() -> None:
    event = sqs(s3_body(KEY), s3_body(KEY))
    del event["Records"][0]["body"]
    event["Records"][1]["body"] = 7
    parsed = parse_event(event)
    assert parsed.errors == [("m0", "SQS message has no string body"), ("m1", "SQS message has no string body")]
    assert parsed.changes == []


def test_a_json_body_that_is_no_object_names_its_type() -> None:
    assert parse_message_body("[1]", "m").error == "body is JSON list, expected an object"
    assert parse_message_body('"text"', "m").error == "body is JSON str, expected an object"


@pytest.mark.parametrize("event", [None, [], {}, "text"])
def test_an_event_that_is_no_json_object_is_refused_with_what_is_expected(event: Any) -> None:
    with pytest.raises(EventShapeError) as raised:
        parse_event(event)
    assert str(raised.value) == "the event must be a non-empty JSON object (an SQS, S3 or EventBridge event)"


@pytest.mark.parametrize("event", [None, [], {}, "text", {"Records": "x"}, {"source": "aws.ec2", "detail-type": "x"}])
def test_direct_events_of_no_known_shape_raise(event: Any) -> None:
    with pytest.raises(EventShapeError):
        parse_event(event)


@pytest.mark.parametrize("s3", WITHOUT_BUCKET_OR_OBJECT)
def test_an_s3_record_without_bucket_name_or_object_is_malformed(s3: Any) -> None:
    result = parse_message_body(json.dumps({"Records": [{**s3_body(KEY)["Records"][0], "s3": s3}]}), "m")
    assert result.error == "S3 record lacks s3.bucket.name or s3.object"
    assert result.changes == () and result.skips == ()


def test_an_unsupported_record_is_skipped_and_the_next_record_still_read() -> None:
    body = {"Records": s3_body(KEY, "ObjectRestore:Post")["Records"] + s3_body(KEY)["Records"]}
    result = parse_message_body(json.dumps(body), "m")
    assert result.skips == (Skip("unsupported_event", "ObjectRestore:Post"),)
    assert [(c.key, c.kind) for c in result.changes] == [(KEY, ChangeKind.REMOVED)]


def test_an_eventbridge_change_keeps_its_time_and_sequencer() -> None:
    body = bridge(KEY)
    body["detail"]["object"]["sequencer"] = "00ab"
    [change] = parse_event(body).changes
    assert change.event_time == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC) and change.sequencer == "00AB"


@pytest.mark.parametrize(
    ("body", "skip"),
    [
        ({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": B}, Skip("test_event", B)),
        ({"Service": "Amazon S3", "Event": "s3:TestEvent"}, Skip("test_event", "")),
    ],
)
def test_the_s3_test_event_is_a_skip_naming_its_bucket(body: dict[str, Any], skip: Skip) -> None:
    assert parse_message_body(json.dumps(body), "m").skips == (skip,)
    parsed = parse_event(body)  # sent directly, not through SQS
    assert (parsed.kind, parsed.skips, parsed.changes) == ("s3", [skip], [])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        # an SNS subscription confirmation is no notification: its Message is not read
        (
            {"Type": "SubscriptionConfirmation", "Message": "You have chosen to subscribe"},
            "not an S3 notification, an EventBridge S3 event, an SNS envelope or an s3:TestEvent",
        ),
        ({"source": "aws.ec2"}, "EventBridge event from source 'aws.ec2', expected 'aws.s3'"),
        ({"detail-type": "Object Deleted"}, "EventBridge event from source None, expected 'aws.s3'"),
    ],
)
def test_a_body_is_read_by_its_shape(body: dict[str, Any], message: str) -> None:
    assert parse_message_body(json.dumps(body), "m").error == message


def test_a_direct_event_says_its_kind() -> None:
    assert parse_event(s3_body(KEY)).kind == "s3"
    assert parse_event(bridge(KEY)).kind == "eventbridge"
    assert parse_event(sqs(s3_body(KEY))).kind == "sqs"


key_text = st.lists(
    st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=10).filter(
        lambda s: "/" not in s and s not in (".", "..")
    ),
    min_size=1,
    max_size=4,
)


@given(key_text)
def test_quote_plus_round_trip(segments: list[str]) -> None:
    key = "10001/" + "/".join(segments)
    assert parse_event(sqs(s3_body(quote_plus(key)))).changes[0].key == key
    assert parse_event(bridge(key)).changes[0].key == key
