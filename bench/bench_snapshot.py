"""Benchmark 7: the deletion routine on a database without planner statistics, beside the same database ANALYZEd.

Right after a restore or a bulk load PostgreSQL has no statistics, and the plans it picks then are the plans
production gets. A 20k-annotation portal is bulk-loaded *without* ``ANALYZE`` (autovacuum off on its tables,
so that nothing gathers statistics behind the benchmark's back). Each run copies it
(``CREATE DATABASE … TEMPLATE``), ANALYZEs the copy or not, and calls
``portal.deletion.delete_annotations`` on 1,000 annotations as a black box in one transaction. The
statement that builds the snapshots is also timed on its own (engine events; "—" if the routine has none).
Every run must delete exactly the victims and leave no orphans::

    .venv/bin/python -m bench.bench_snapshot
"""

from __future__ import annotations

import random
import statistics
import time
from typing import Any

from sqlalchemy import Engine, event, text

from annotation_reconciler.db import make_engine
from annotation_reconciler.ledger.models import Source
from annotation_reconciler.portal.deletion import count_orphans, delete_annotations
from annotation_reconciler.portal.models import PORTAL_TABLES
from bench.portal import SEED, analyze, copy_database, judged_paths, load_rows, portal_spec, run_alone
from bench.report import BenchContext, Section, fmt_s

PORTAL_SIZE = 20_000
VICTIMS = 1_000
REPEATS = 3
#: The snapshot is built by the statement that mentions this (the routine's temporary snapshot table).
SNAPSHOT_MARK = "snapshot"


class StatementTimer:
    """Time spent in statements that mention ``mark`` (case-insensitive) and begin with CREATE or WITH."""

    def __init__(self, engine: Engine, mark: str) -> None:
        self.mark, self.seconds, self.count = mark.lower(), 0.0, 0
        self._started: float | None = None
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        head = statement.lstrip()[:12].upper()
        wanted = self.mark in statement.lower() and head.startswith(("CREATE", "WITH"))
        self._started = time.perf_counter() if wanted else None

    def _after(self, *args: Any) -> None:
        if self._started is not None:
            self.seconds += time.perf_counter() - self._started
            self.count += 1
            self._started = None


def _statistics(engine: Engine) -> int:
    """Rows of pg_stats about the portal's tables: 0 means the planner has nothing but defaults."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM pg_stats WHERE schemaname = 'public' AND tablename = ANY(:t)"),
                {"t": list(PORTAL_TABLES)},
            ).scalar_one()
        )


def _one(url: str, victims: list[int]) -> tuple[float, float | None, int]:
    engine = make_engine(url)
    timer = StatementTimer(engine, SNAPSHOT_MARK)
    stats = _statistics(engine)
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    started = time.perf_counter()
    with engine.begin() as conn:
        result = delete_annotations(conn, judged_paths(conn, victims), source=Source.CLI, reason="benchmark")
    wall = time.perf_counter() - started
    with engine.connect() as conn:
        left = conn.execute(
            text("SELECT count(*) FROM annotation WHERE id = ANY(CAST(:ids AS integer[]))"), {"ids": victims}
        ).scalar_one()
        orphans = count_orphans(conn)
    engine.dispose()
    if sorted(result.deleted) != victims or left or orphans:
        raise AssertionError(f"deleted {len(result.deleted)} of {len(victims)}, {left} left, {orphans} orphans")
    return wall, (timer.seconds if timer.count else None), stats


def run(ctx: BenchContext) -> list[Section]:
    spec = portal_spec(PORTAL_SIZE)
    raw = "snapshot_raw"
    url = ctx.factory.fresh(raw)
    engine = make_engine(url)
    with engine.begin() as conn:
        for table in PORTAL_TABLES:
            conn.execute(text(f'ALTER TABLE "{table}" SET (autovacuum_enabled = false)'))
    ids = load_rows(engine, spec, with_statistics=False)
    engine.dispose()
    victims = sorted(random.Random(SEED).sample(sorted(ids.values()), VICTIMS))
    figures: dict[str, list[tuple[float, float | None, int]]] = {"without": [], "with": []}
    try:
        for _ in range(REPEATS):
            for case in ("without", "with"):
                run_url = copy_database(ctx.factory, raw, "snapshot_run")
                if case == "with":
                    run_engine = make_engine(run_url)
                    analyze(run_engine)
                    run_engine.dispose()
                figures[case].append(_one(run_url, victims))
                ctx.factory.drop("snapshot_run")
    finally:
        ctx.factory.drop(raw)
    out = Section(
        "snapshot",
        f"7. The deletion routine without planner statistics: delete_annotations on {VICTIMS:,} annotations "
        f"({PORTAL_SIZE:,}-annotation portal)",
        ["database", "pg_stats rows (portal tables)", "delete_annotations (median)", "runs", "snapshot statement",
         "vs with statistics"],
    )  # fmt: skip
    medians: dict[str, float] = {}
    for case in ("without", "with"):
        runs = figures[case]
        medians[case] = statistics.median(w for w, _, _ in runs)
        snaps = [s for _, s, _ in runs if s is not None]
        out.add(
            "fresh bulk load, never ANALYZEd" if case == "without" else "the same, ANALYZEd",
            str(runs[0][2]),
            fmt_s(medians[case]),
            ", ".join(fmt_s(w) for w, _, _ in runs),
            fmt_s(statistics.median(snaps)) if snaps else "—",
            "",
        )
    ratio = medians["without"] / medians["with"]
    out.rows[0][-1] = f"{ratio:.2f}x"
    out.rows[1][-1] = "1x"
    out.notes.append(
        "The whole routine (snapshots into the ledger, children first, the ledger rows) in one transaction, on a "
        "fresh copy of the loaded database for each run, measured as a black box from the client. 'snapshot "
        "statement' is the time of the statement(s) that build the snapshots, from SQLAlchemy's cursor events."
    )
    ctx.facts["snapshot"] = {"without": medians["without"], "with": medians["with"], "ratio": ratio}
    return [ctx.emit(out)]


def main() -> None:
    run_alone(run, __doc__)


if __name__ == "__main__":
    main()
