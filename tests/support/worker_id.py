"""The ``worker_id`` fixture when pytest-xdist is not loaded (``-p no:xdist``, as under ``make mutate``).

``tests/conftest.py`` registers this module as a plugin only then: a conftest fixture of the same name would
shadow xdist's own. It answers "master", as xdist itself does outside its workers. When
RECONCILER_TEST_WORKER_SLOTS names a directory, each process takes a free numbered slot there instead
(``slot0``, ``slot1``, …), so that processes sharing one PostgreSQL server (mutmut's concurrent forks, all
pointed at RECONCILER_TEST_DATABASE_URL) never share a database name.
"""

from __future__ import annotations

import fcntl
import itertools
import os
from pathlib import Path

import pytest

WORKER_SLOTS_ENV = "RECONCILER_TEST_WORKER_SLOTS"

_claimed: dict[tuple[int, Path], str] = {}  # (pid, directory) -> worker id (a fork must claim its own slot)
_locked_fds: list[int] = []  # kept open: closing one would release its slot


def claim_slot(directory: Path) -> str:
    """``slotN`` for the first file ``directory/slotN`` this process can flock; the lock lasts until the
    process exits (a killed process frees its slot too)."""
    mine = (os.getpid(), directory.resolve())
    if mine in _claimed:
        return _claimed[mine]
    directory.mkdir(parents=True, exist_ok=True)
    for n in itertools.count():
        fd = os.open(directory / f"slot{n}", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            # a lock taken by the parent before a fork is shared with the child, so the child skips it
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        _locked_fds.append(fd)
        _claimed[mine] = f"slot{n}"
        return _claimed[mine]
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def worker_id() -> str:
    slots = os.environ.get(WORKER_SLOTS_ENV)
    return claim_slot(Path(slots)) if slots else "master"
