"""A bad prefix is isolated: a shard that could not list some prefixes goes on (its continuation is queued
first), and the failed prefixes alone are retried in their own message, a few times; a prefix that still
fails is *blind* (reported by a metric, an alarm and ``status``) and the next day's scan tries it again.

Pure: the message shapes and the decision; the handler queues, the ledger records::

    >>> retry, blind = split_failures(["p/a/", "p/b/"], attempt=MAX_PREFIX_RETRIES)
    >>> retry, blind
    ([], ['p/a/', 'p/b/'])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from annotation_reconciler.scope import Scope

#: How many times a prefix that failed to list is retried (each in a message of its own) before it is blind.
MAX_PREFIX_RETRIES = 3
#: How long a retry message waits on the queue (SQS allows up to 900 s): S3 throttling needs time to pass.
RETRY_DELAY_S = 300


def split_failures(failed: Sequence[str], attempt: int) -> tuple[list[str], list[str]]:
    """(prefixes to retry, prefixes now blind) after a run that was retry number ``attempt`` (0: the first run)."""
    prefixes = sorted(set(failed))
    if attempt >= MAX_PREFIX_RETRIES:
        return [], prefixes
    return prefixes, []


def retry_message(scope: Scope, prefixes: Sequence[str], attempt: int) -> dict[str, Any]:
    """The shard message that lists only ``prefixes`` again (retry number ``attempt``)."""
    body: dict[str, Any] = {"type": "scan_shard", "dataset_id": scope.dataset_id}
    if scope.run_ids is not None:
        body["run_ids"] = list(scope.run_ids)
    body["prefixes"] = sorted(set(prefixes))
    body["attempt"] = attempt
    return body


def read_retry(body: Mapping[str, Any]) -> tuple[list[str] | None, int]:
    """The prefixes a shard message is limited to (None: all of the shard's) and its retry number;
    raises ValueError naming what is wrong."""
    prefixes = body.get("prefixes")
    attempt = body.get("attempt", 0)
    if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 0:
        raise ValueError(f"shard message attempt must be a whole number >= 0, got {attempt!r}")
    if prefixes is None:
        return None, attempt
    if not isinstance(prefixes, list) or not prefixes or not all(isinstance(p, str) and p for p in prefixes):
        raise ValueError(f"shard message prefixes must be a non-empty list of prefixes, got {prefixes!r}")
    return list(prefixes), attempt
