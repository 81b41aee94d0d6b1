"""Count the S3 requests a client sends, by operation (a botocore event hook)::

counter = RequestCounter.attach(client)
...
counter.counts  # {"ListObjectsV2": 3, "HeadObject": 0}
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class RequestCounter:
    """Counts every request (retries included) a boto3 client sends, from any number of threads."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    @classmethod
    def attach(cls, client: Any) -> RequestCounter:
        counter = cls()
        client.meta.events.register("before-send", counter._on_send)
        return counter

    def _on_send(self, event_name: str = "", **kwargs: Any) -> None:
        # event_name is "before-send.<service>.<Operation>"; retries send again and count again.
        with self._lock:
            self.counts[event_name.rsplit(".", 1)[-1]] += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def reset(self) -> None:
        self.counts.clear()
