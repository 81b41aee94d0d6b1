"""AWS clients with timeouts and standard retries: no call waits on an unreachable endpoint until Lambda's timeout.

sqs = make_client("sqs")
"""

from __future__ import annotations

import threading
from typing import Any

import botocore.session
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


_session: botocore.session.Session | None = None
_session_lock = threading.Lock()


def make_client(service: str, *, endpoint_url: str | None = None, region: str | None = None, **config: Any) -> Any:
    """A client of ``service`` with :func:`client_config`, from one botocore session (the credentials and region
    boto3's default session would find: botocore resolves both; boto3 itself, ~0.1 s of a cold start, is not
    imported)."""
    global _session
    with _session_lock:  # creating clients from one session is not thread-safe
        if _session is None:
            _session = botocore.session.get_session()
        return _session.create_client(
            service, endpoint_url=endpoint_url, region_name=region, config=client_config(**config)
        )
