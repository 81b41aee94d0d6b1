"""AWS clients with timeouts and standard retries: no call waits on an unreachable endpoint until Lambda's timeout.

sqs = make_client("sqs")
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

#: Seconds to open a connection to an AWS endpoint, and to wait for a response once connected.
CONNECT_TIMEOUT = 5
READ_TIMEOUT = 30
#: Attempts per call in botocore's "standard" retry mode (backoff with jitter on throttling, 5xx, timeouts).
MAX_ATTEMPTS = 6


def client_config(**overrides: Any) -> Config:
    """The botocore configuration every client of the package uses (``overrides`` added on top)."""
    return Config(
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
        **overrides,
    )


def make_client(service: str, *, endpoint_url: str | None = None, region: str | None = None, **config: Any) -> Any:
    """A boto3 client of ``service`` with :func:`client_config`."""
    session: Any = boto3  # the module-level default session; typed loosely: service is any name
    return session.client(service, endpoint_url=endpoint_url, region_name=region, config=client_config(**config))
