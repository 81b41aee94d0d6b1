"""Logs an operator can follow: one JSON format and one correlation id on every line of an invocation.

The Lambda handlers log through a powertools ``Logger``; the package's modules log through stdlib
loggers (``annotation_reconciler.service.purge``, ``….deletions``, …). For the length of an invocation,
:func:`package_logs` sends those through the powertools logger's handler (same JSON, same keys, the
correlation id included) instead of the root logger; afterwards they are as they were::

    logger.set_correlation_id(correlation_id(event, context))
    with package_logs(logger):
        ...
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from aws_lambda_powertools import Logger

PACKAGE = "annotation_reconciler"


def correlation_id(event: Mapping[str, Any], context: Any = None) -> str | None:
    """The id an operator finds the invocation by: the SQS message id (the first of a batch), the
    EventBridge event id, the S3 request id of a direct notification, else Lambda's request id."""
    records = event.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], Mapping):
        first = records[0]
        if first.get("messageId"):
            return str(first["messageId"])
        response = first.get("responseElements")
        if isinstance(response, Mapping) and response.get("x-amz-request-id"):
            return str(response["x-amz-request-id"])
    if event.get("id") and event.get("detail-type"):
        return str(event["id"])
    request = getattr(context, "aws_request_id", None)
    return str(request) if request else None


@contextlib.contextmanager
def package_logs(logger: Logger) -> Iterator[None]:
    """Route the package's stdlib loggers through ``logger``'s handlers for the duration of the block."""
    logger.append_keys(name="%(name)s")  # which module wrote the line
    package = logging.getLogger(PACKAGE)
    saved = (list(package.handlers), package.propagate, package.level)
    package.handlers = list(logger.handlers)
    package.propagate = False  # Lambda's root handler would print each line a second time, as plain text
    package.setLevel(logger.log_level)
    try:
        yield
    finally:
        package.handlers, package.propagate = saved[0], saved[1]
        package.setLevel(saved[2])
