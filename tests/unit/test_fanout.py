"""The work queue's shard message: one type, built by ``to_body`` and read by ``parse`` (issue 31)."""

from __future__ import annotations

import pytest

from annotation_reconciler.fanout import ShardMessage
from annotation_reconciler.rules.scope import Scope


def test_a_retry_message_round_trips() -> None:
    message = ShardMessage(Scope(dataset_id=7, run_ids=(1, 2))).retry(["b/", "a/", "a/"], 2)
    body = message.to_body()
    assert body == {"type": "scan_shard", "dataset_id": 7, "run_ids": [1, 2], "prefixes": ["a/", "b/"], "attempt": 2}
    assert ShardMessage.parse(body) == message
    assert ShardMessage.parse({"type": "scan_shard", "dataset_id": 7}) == ShardMessage(Scope(dataset_id=7))


def test_a_continuation_keeps_a_retrys_prefixes_and_attempt_and_a_plain_shard_has_neither() -> None:
    shard = ShardMessage(Scope(dataset_id=7))
    assert shard.continued("p/a/").to_body() == {"type": "scan_shard", "dataset_id": 7, "resume_after": "p/a/"}
    retried = shard.retry(["p/b/", "p/a/"], 1).continued("p/a/")
    assert retried.to_body() == {
        "type": "scan_shard",
        "dataset_id": 7,
        "resume_after": "p/a/",
        "prefixes": ["p/a/", "p/b/"],
        "attempt": 1,
    }
    assert ShardMessage.parse(retried.to_body()) == retried


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"type": "inventory_shard"}, r"^not a shard message \(type='inventory_shard'\); expected type 'scan_shard'$"),
        ({"dataset_id": "7"}, "integer dataset_id"),
        ({"dataset_id": True}, "integer dataset_id"),
        ({"run_ids": [1, "2"]}, "run_ids must be a list of integers"),
        ({"run_ids": 1}, "run_ids must be a list of integers"),
        ({"resume_after": 3}, "^shard message resume_after must be a string$"),
        ({"attempt": -1}, "attempt must be a whole number"),
        ({"attempt": True}, "attempt must be a whole number"),
        ({"prefixes": []}, "non-empty list of prefixes"),
        ({"prefixes": "a/"}, "non-empty list of prefixes"),
        ({"prefixes": ["a/", ""]}, "non-empty list of prefixes"),
    ],
)
def test_malformed_shard_messages_are_refused(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ShardMessage.parse({"type": "scan_shard", "dataset_id": 7, **change})
