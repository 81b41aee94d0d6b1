"""Timeouts everywhere: PostgreSQL connections give up after the connect timeout, every AWS client has connect and
read timeouts and standard retries."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from annotation_reconciler import aws as clients
from annotation_reconciler.db import CONNECT_TIMEOUT, DatabaseSecret, connection_failure, make_engine
from annotation_reconciler.service.runtime import build_runtime
from annotation_reconciler.storage import make_s3_client
from support.world import BUCKET


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word (a server hung behind a firewall rule)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def test_a_silent_database_server_fails_after_the_connect_timeout(silent_server: int) -> None:
    assert CONNECT_TIMEOUT == 10
    engine = make_engine(f"postgresql+pg8000://rec@127.0.0.1:{silent_server}/portal", connect_timeout=1)
    started = time.monotonic()
    with pytest.raises(Exception) as info:
        engine.connect()
    elapsed = time.monotonic() - started
    engine.dispose()
    assert elapsed < 5  # not Lambda's 15 minutes: one second, and SQLAlchemy gives up without retrying
    message = connection_failure(info.value, engine.url)
    assert message.startswith(f"cannot connect to the database at postgresql+pg8000://***@127.0.0.1:{silent_server}")
    assert "timed out" in message or "timeout" in message, message


def expected_config(client: Any) -> None:
    config = client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (clients.CONNECT_TIMEOUT, clients.READ_TIMEOUT) == (5, 30)
    assert config.retries == {"mode": "standard", "total_max_attempts": clients.MAX_ATTEMPTS + 1}  # 6 retries


@pytest.mark.usefixtures("aws")
def test_every_aws_client_has_timeouts_and_standard_retries(db_url: str) -> None:
    expected_config(make_s3_client())
    expected_config(make_s3_client(anonymous=True))
    runtime = build_runtime({"RECONCILER_DB_URL": db_url, "RECONCILER_BUCKET": BUCKET})
    expected_config(runtime.sqs)
    expected_config(runtime.reconciler.storage.client)
    runtime.engine.dispose()
    secret = DatabaseSecret("arn:aws:secretsmanager:us-west-2:123456789012:secret:portal-db")
    expected_config(secret.provider.client)
