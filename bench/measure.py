"""Measuring a block: wall and CPU time, SQL statements and round trips, S3 requests, RSS; fresh-interpreter workers.

- :class:`SqlCounter` counts SQL statements, round trips and database time with engine events;
- :class:`Meter` times a block and takes the differences of the SQL and S3 counters over it;
- :class:`RssSampler` samples the process's RSS; :func:`maxrss_mb` reads its peak (VmHWM);
- :func:`run_worker` runs ``python -m module --worker JSON`` in a fresh interpreter.
"""

from __future__ import annotations

import contextlib
import json
import resource
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import Engine, event
from sqlalchemy.engine.interfaces import ExecuteStyle

ROOT = Path(__file__).resolve().parents[1]


class SqlCounter:
    """Counts what an engine sends: statements (cursor executions), round trips and database time.

    ``round_trips`` counts an executemany as one round trip per parameter set (pg8000 runs them
    one by one) and an "insertmanyvalues" batch as one; ``seconds`` is the time spent inside cursor
    executions as seen by the client.
    """

    def __init__(self) -> None:
        self.statements = 0
        self.round_trips = 0
        self.seconds = 0.0
        self._started: dict[int, float] = {}

    @classmethod
    def attach(cls, engine: Engine) -> SqlCounter:
        counter = cls()
        event.listen(engine, "before_cursor_execute", counter._before)
        event.listen(engine, "after_cursor_execute", counter._after)
        return counter

    def _before(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        self.statements += 1
        # an "insertmanyvalues" batch is one INSERT … VALUES (…), (…) sent once, though flagged executemany
        batched = getattr(context, "execute_style", None) is ExecuteStyle.INSERTMANYVALUES
        self.round_trips += len(parameters) if executemany and parameters and not batched else 1
        self._started[id(cursor)] = time.perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        started = self._started.pop(id(cursor), None)
        if started is not None:
            self.seconds += time.perf_counter() - started

    def snapshot(self) -> tuple[int, int, float]:
        return self.statements, self.round_trips, self.seconds


# --- measuring ----------------------------------------------------------------------------------------------------


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def maxrss_mb() -> float:
    """Peak RSS of this process: VmHWM, the high-water mark of its own address space.

    Not ``ru_maxrss``: Linux keeps that across fork and execve, so a worker started by a parent
    holding moto's buckets would report the parent's peak.
    """
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def rss_mb() -> float:
    return float(psutil.Process().memory_info().rss) / 2**20


class RssSampler:
    """The highest RSS of this process seen every ``period`` seconds while the block runs."""

    def __init__(self, period: float = 0.01) -> None:
        self.period = period
        self.start_mb = 0.0
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.peak_mb = max(self.peak_mb, rss_mb())

    def __enter__(self) -> RssSampler:
        self.start_mb = self.peak_mb = rss_mb()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_mb = max(self.peak_mb, rss_mb())

    @property
    def growth_mb(self) -> float:
        return self.peak_mb - self.start_mb


@dataclass
class Measurement:
    """What one timed block cost."""

    wall: float = 0.0
    cpu: float = 0.0
    statements: int = 0
    round_trips: int = 0
    db_seconds: float = 0.0
    s3: dict[str, int] = field(default_factory=dict)

    @property
    def s3_total(self) -> int:
        return sum(self.s3.values())


class Meter:
    """Time a block and take the differences of the SQL and S3 counters over it."""

    def __init__(self, sql: SqlCounter | None = None, s3: Callable[[], Mapping[str, int]] | None = None) -> None:
        self.sql, self.s3 = sql, s3
        self.result = Measurement()

    def __enter__(self) -> Measurement:
        self._sql0 = self.sql.snapshot() if self.sql else (0, 0, 0.0)
        self._s30 = Counter(self.s3()) if self.s3 else Counter()
        self._cpu0 = cpu_seconds()
        self._t0 = time.perf_counter()
        return self.result

    def __exit__(self, *exc: object) -> None:
        r = self.result
        r.wall = time.perf_counter() - self._t0
        r.cpu = cpu_seconds() - self._cpu0
        if self.sql:
            s, t, d = self.sql.snapshot()
            r.statements, r.round_trips, r.db_seconds = s - self._sql0[0], t - self._sql0[1], d - self._sql0[2]
        if self.s3:
            after = Counter(self.s3())
            after.subtract(self._s30)
            r.s3 = {k: v for k, v in after.items() if v}


# --- subprocess workers -------------------------------------------------------------------------------------------


def run_worker(module: str, args: Mapping[str, Any], timeout: float = 1800) -> dict[str, Any]:
    """Run ``python -m module --worker JSON`` in a fresh interpreter; returns the JSON it prints last."""
    command = [sys.executable, "-m", module, "--worker", json.dumps(dict(args))]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"worker {module} {args.get('approach', '')} failed:\n{done.stderr[-4000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return dict(json.loads(lines[-1]))


def worker_args(argv: Sequence[str]) -> dict[str, Any] | None:
    """The worker's arguments when the script was started as ``--worker JSON``, else None."""
    if len(argv) >= 3 and argv[1] == "--worker":
        return dict(json.loads(argv[2]))
    return None
