"""Inject S3 faults at the HTTP layer, below botocore's retry handler, so retries are exercised for real,
and record the backoff botocore asks for without sleeping it."""

from __future__ import annotations

import io
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from botocore.awsrequest import AWSResponse
from botocore.retries.standard import ExponentialBackoff
from sqlalchemy import Engine, event, text

from annotation_reconciler.ledger import event_batch

ALL_OPERATIONS = "*"
#: Every fault injected in this process, by kind (tests/reliability/conftest.py prints it after the run).
INJECTED: Counter[str] = Counter()


class _Raw(io.BytesIO):
    def stream(self, amt: int = 1024, decode_content: bool | None = None) -> Any:
        while chunk := self.read(amt):
            yield chunk


@dataclass
class Faults:
    """Answer the next ``remaining`` calls of ``operation`` with an HTTP error (``remaining=-1``: always)."""

    operation: str
    remaining: int
    status: int = 503
    code: str = "SlowDown"
    injected: int = 0

    def __call__(self, request: Any, **kwargs: Any) -> AWSResponse | None:
        if self.remaining == 0:
            return None
        self.remaining -= 1 if self.remaining > 0 else 0
        self.injected += 1
        INJECTED[f"S3 {self.status} {self.code} responses"] += 1
        body = f"<Error><Code>{self.code}</Code><Message>injected</Message></Error>".encode()
        return AWSResponse(request.url, self.status, {"Content-Type": "application/xml"}, _Raw(body))

    def heal(self) -> None:
        """S3 is back: let every later request through."""
        self.remaining = 0


def inject(client: Any, operation: str, remaining: int, *, status: int = 503, code: str = "SlowDown") -> Faults:
    """Fail ``operation`` (``ALL_OPERATIONS``: every S3 operation) of ``client`` ``remaining`` times."""
    faults = Faults(operation, remaining, status, code)
    event = "before-send.s3" if operation == ALL_OPERATIONS else f"before-send.s3.{operation}"
    client.meta.events.register_first(event, faults)
    return faults


def record_backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record every delay botocore's standard retry mode computes (at the top of its random jitter, so the
    exponential growth shows) and return 0 instead, so that tests keep the retries but not the sleeps."""
    asked: list[float] = []
    compute = ExponentialBackoff.delay_amount

    def delay_amount(self: ExponentialBackoff, context: Any) -> float:
        jitter, self._random = self._random, lambda: 1.0  # type: ignore[attr-defined]
        try:
            asked.append(compute(self, context))
        finally:
            self._random = jitter  # type: ignore[attr-defined]
        return 0

    monkeypatch.setattr(ExponentialBackoff, "delay_amount", delay_amount)
    return asked


class ConnectionKiller:
    """After the ``occurrence``-th statement containing ``statement_start``, terminate that connection's
    server process, as a database failover or a network cut would::

        with ConnectionKiller(engine, "DELETE FROM annotation_shape") as killer:
            ...
        assert killer.killed == 1
    """

    def __init__(self, engine: Engine, statement_start: str, occurrence: int = 1) -> None:
        self.engine, self.statement_start, self.occurrence = engine, statement_start, occurrence
        self.seen = self.killed = 0

    def __enter__(self) -> ConnectionKiller:
        event.listen(self.engine, "after_cursor_execute", self._after)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "after_cursor_execute", self._after)

    def _after(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if self.statement_start in statement:
            self.seen += 1
            if self.seen == self.occurrence:
                pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
                with self.engine.connect() as admin:
                    admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                self.killed += 1
                INJECTED["database connections killed mid-transaction"] += 1


class ShortContext:
    """A Lambda context whose remaining time drops under the handlers' safety margin after ``allowed`` checks."""

    function_name = "annotation-reconciler-local"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-west-2:000000000000:function:annotation-reconciler-local"
    aws_request_id = "short-context"

    def __init__(self, allowed: int = 1) -> None:
        self.allowed = allowed
        self.checks = 0

    def get_remaining_time_in_millis(self) -> int:
        self.checks += 1
        if self.checks == self.allowed + 1:
            INJECTED["Lambda time budgets run out"] += 1
        return 120_000 if self.checks <= self.allowed else 10_000


@dataclass
class TargetedFaults:
    """Answer with an HTTP error every request of ``operation`` whose ``Prefix`` (LIST) or key (HEAD/GET) is
    one of ``targets``; every other request goes through."""

    operation: str
    targets: frozenset[str]
    status: int = 403
    code: str = "AccessDenied"
    injected: int = 0

    def __call__(self, request: Any, **kwargs: Any) -> AWSResponse | None:
        parts = urlsplit(request.url)
        names = set(parse_qs(parts.query).get("prefix", [])) | {unquote(parts.path)}
        if not any(name == t or name.endswith("/" + t) for name in names for t in self.targets):
            return None
        self.injected += 1
        INJECTED[f"S3 {self.status} {self.code} responses at chosen keys"] += 1
        body = f"<Error><Code>{self.code}</Code><Message>injected</Message></Error>".encode()
        return AWSResponse(request.url, self.status, {"Content-Type": "application/xml"}, _Raw(body))


def inject_at(
    client: Any, operation: str, *targets: str, status: int = 403, code: str = "AccessDenied"
) -> TargetedFaults:
    """Fail ``operation`` of ``client`` for these prefixes or keys only (403: not retried by botocore)."""
    faults = TargetedFaults(operation, frozenset(targets), status, code)
    client.meta.events.register_first(f"before-send.s3.{operation}", faults)
    return faults


class InFlight:
    """Holds each request of a client until ``gather`` requests are in flight together (or ``timeout_s`` passed),
    and records the most that ever were: a busy machine's slow thread starts cannot hide real concurrency, and
    a client that never sends ``gather`` at once only waits for the timeout."""

    def __init__(self, gather: int, timeout_s: float = 2.0) -> None:
        self.gather, self.timeout_s = gather, timeout_s
        self.now = self.peak = self.total = 0
        self._changed = threading.Condition()

    @classmethod
    def attach(cls, client: Any, gather: int, timeout_s: float = 2.0) -> InFlight:
        probe = cls(gather, timeout_s)
        client.meta.events.register_first("before-send.s3", probe)
        return probe

    def __call__(self, **kwargs: Any) -> None:
        with self._changed:
            self.now += 1
            self.total += 1
            self.peak = max(self.peak, self.now)
            self._changed.notify_all()
            deadline = time.monotonic() + self.timeout_s
            while self.peak < self.gather and (left := deadline - time.monotonic()) > 0:
                self._changed.wait(left)
            self.now -= 1


def break_changes_of(monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    """Make the ledger refuse any batch of changes that holds ``key`` (its mapping raises); other batches apply."""
    original = event_batch.map_metadata

    def breaks(conn: Any, stored_paths: Any, **kwargs: Any) -> Any:
        if any(path.endswith(key) for path in stored_paths):
            raise RuntimeError("simulated failure for one key")
        return original(conn, stored_paths, **kwargs)

    monkeypatch.setattr(event_batch, "map_metadata", breaks)
