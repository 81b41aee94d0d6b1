"""A bad prefix is isolated: a shard that could not list some prefixes goes on (its continuation is queued
first), and the failed prefixes alone are retried in their own message, a few times; a prefix that still
fails is *blind* (reported by a metric, an alarm and ``status``) and the next day's scan tries it again.

Pure: the decision (the message is ``fanout.ShardMessage.retry``); the handler queues, the ledger records::

    >>> retry, blind = split_failures(["p/a/", "p/b/"], attempt=MAX_PREFIX_RETRIES)
    >>> retry, blind
    ([], ['p/a/', 'p/b/'])
"""

from __future__ import annotations

from collections.abc import Sequence

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
