"""Inject S3 faults at the HTTP layer, below botocore's retry handler, so retries are exercised for real."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from botocore.awsrequest import AWSResponse


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
        body = f"<Error><Code>{self.code}</Code><Message>injected</Message></Error>".encode()
        return AWSResponse(request.url, self.status, {"Content-Type": "application/xml"}, _Raw(body))


def inject(client: Any, operation: str, remaining: int, *, status: int = 503, code: str = "SlowDown") -> Faults:
    faults = Faults(operation, remaining, status, code)
    client.meta.events.register_first(f"before-send.s3.{operation}", faults)
    return faults
