"""Fresh test databases made one test ahead: the next test's copy of the template is created while this test runs.

``CREATE DATABASE … TEMPLATE`` (and dropping the copy before it) costs 0.2-1 s of waiting on the server for each
test, most of it while the test's own process sits idle; made in a background thread during the previous test, the
database is ready when the next test asks. Each test still gets a database no other test has touched: two names
alternate, and the one a test gets is the one the test before its predecessor used, dropped and created anew from the
template after that test ended::

    databases = FreshDatabases(factory)
    url = databases.take("test_gw0")   # ready at once from the second test on

A forked process (mutmut's forks) never waits on its parent's thread: it makes its database itself, then prefetches
in a thread of its own.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor

from annotation_reconciler.local.databases import DatabaseFactory


class FreshDatabases:
    def __init__(self, factory: DatabaseFactory) -> None:
        self.factory = factory
        self._pid = -1
        self._pool: ThreadPoolExecutor | None = None
        self._next: tuple[str, Future[str]] | None = None
        self._turn = 0

    def take(self, prefix: str) -> str:
        """The URL of a new database (the portal schema and our migrations, no rows) named ``prefix_0`` or
        ``prefix_1``; the other of the two is made ready for the next call."""
        if self._pid != os.getpid():  # first call, or a fork: the parent's thread and its future are not ours
            self._pid, self._pool, self._next = os.getpid(), ThreadPoolExecutor(1, "fresh-database"), None
        assert self._pool is not None
        pending, self._next = self._next, None
        name = f"{prefix}_{self._turn}"
        url = pending[1].result() if pending and pending[0] == name else self.factory.fresh(name)
        self._turn = 1 - self._turn
        following = f"{prefix}_{self._turn}"
        self._next = (following, self._pool.submit(self.factory.fresh, following))
        return url

    def close(self) -> None:
        if self._pool is not None and self._pid == os.getpid():
            self._pool.shutdown(wait=True)
        self._pool, self._next = None, None
