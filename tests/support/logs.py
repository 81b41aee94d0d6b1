"""What the Lambda handlers' JSON logger writes, captured for a test."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager

from annotation_reconciler import handlers


@contextmanager
def handler_logs(buffer: io.StringIO | None = None) -> Iterator[io.StringIO]:
    """Every line the handlers' structured logger writes inside the block (into ``buffer``, or a new one), at the
    deployed level (INFO).

    The logger's stream is swapped by assignment: ``setStream`` flushes the old stream first, and a stream an
    earlier test in this process left behind (pytest's capture) may be closed by now."""
    buffer = buffer if buffer is not None else io.StringIO()
    handler = handlers.logger.registered_handler
    previous, handler.stream = handler.stream, buffer
    level = handlers.logger.log_level
    handlers.logger.setLevel("INFO")  # a LocalStack earlier in this process may have quietened it
    try:
        yield buffer
    finally:
        handlers.logger.setLevel(level)
        handler.stream = previous
