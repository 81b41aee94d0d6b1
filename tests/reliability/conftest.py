"""After a run of the reliability tests in one process, say how many faults were injected, by kind (the figures
of RELIABILITY.md). Under xdist each worker keeps its own count and nothing is printed."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from annotation_reconciler.local.databases import DatabaseFactory
from annotation_reconciler.local.postgres import LocalPostgres, embedded_bindir
from support.faults import INJECTED


@pytest.fixture(scope="session")
def newest_db_factory(worker_id: str) -> Iterator[DatabaseFactory]:
    """A second server for the database-boundary tests: the newest PostgreSQL the dev extras ship (18), where role
    membership and default privileges follow the rules of 16 and later; the suite's own server is the machine's
    (15). Started once per session, only by the tests that ask for it."""
    with LocalPostgres(bindir=embedded_bindir()) as server:
        yield DatabaseFactory(server.url, template=f"newest_template_{worker_id}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Hand the faults injected to tools/reliability_figures.py (``make docs``) when it asks
    (ANNOTATION_RECONCILER_FIGURES_JSON, outside the RECONCILER_ names the settings check): it writes them into
    RELIABILITY.md with their commit."""
    path = os.environ.get("ANNOTATION_RECONCILER_FIGURES_JSON")
    if path and INJECTED and exitstatus == 0:
        figures = json.loads(Path(path).read_text()) if Path(path).exists() else {}
        Path(path).write_text(json.dumps({**figures, "faults": dict(INJECTED)}))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not INJECTED:
        return
    terminalreporter.section("faults injected")
    for kind, count in sorted(INJECTED.items()):
        terminalreporter.write_line(f"{count:6d}  {kind}")
    terminalreporter.write_line(f"{sum(INJECTED.values()):6d}  in all")
