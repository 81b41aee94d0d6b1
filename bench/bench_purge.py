"""Benchmark 3: purging 1k and 10k quarantined annotations with all their children.

A 20k-annotation portal is loaded once; for each purge size the annotations of a seeded sample of voxel
spacings (whole voxel spacings, as a retraction removes them) are quarantined (grace period over) and their
metadata files are left out of the S3 double. Each method
then runs on its own copy of that database (``CREATE DATABASE … TEMPLATE``):

- ``delete_annotations``: the shared set-based routine alone, one transaction (snapshots + ledger);
- ``Reconciler.purge``: the whole purge path (claim batches of 500 ``FOR UPDATE SKIP LOCKED``,
  S3 re-check, mass-deletion guard, ``delete_annotations``), S3 on the double;
- ``ORM cascade``: the spec's Phase 1 step 5 (``bench.baseline.delete_cascade``: ``session.delete``
  per annotation through ``cascade="all, delete-orphan"``, one commit).

Every method must leave exactly the victims gone, their children gone and no orphans::

    .venv/bin/python -m bench.bench_purge --sizes 1k
"""

from __future__ import annotations

import argparse
import datetime
import random
import time
from typing import Any

from sqlalchemy import Engine, text

from annotation_reconciler.db import make_engine
from annotation_reconciler.ledger import quarantines
from annotation_reconciler.ledger.models import Source
from annotation_reconciler.names import Env
from annotation_reconciler.portal import annotation_rows
from annotation_reconciler.portal.deletion import count_orphans, delete_annotations
from annotation_reconciler.rules.scope import Scope
from annotation_reconciler.service.context import Context
from annotation_reconciler.service.reconciler import Reconciler
from annotation_reconciler.settings import Settings
from annotation_reconciler.storage import S3Storage
from bench import baseline
from bench.measure import Meter, SqlCounter
from bench.portal import BUCKET, SEED, bucket_keys, copy_database, judged_paths, load_rows, portal_spec, postgres
from bench.report import BenchContext, Section, fmt_s, parse_sizes, size_label
from bench.s3double import S3Double, modelled_s3_seconds, s3_brief

PORTAL_SIZE = 20_000
PURGE_SIZES = (1_000, 10_000)
DETECTED = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
GRACE = datetime.timedelta(hours=1)
TABLES = ("annotation", "annotation_shape", "annotation_file", "annotation_author", "annotation_method_link")
METHODS = ("delete_annotations", "Reconciler.purge", "ORM cascade")
#: The ORM cascade runs up to this size: at 10k it took a large part of make bench's time on the shared 2-core machine,
#: and its time per annotation does not fall with size.
ORM_MAX_SIZE = 1_000


def whole_voxel_spacings(ids: dict[str, int], size: int) -> list[int]:
    """``size`` annotations to purge, whole voxel spacings at a time (a seeded sample of them), as a retraction
    removes them: the purge's re-check is priced for rows that share voxel spacings (issue 30's target)."""
    folders: dict[str, list[int]] = {}
    for key, annotation_id in sorted(ids.items()):
        folders.setdefault(key.rsplit("/", 2)[0], []).append(annotation_id)
    order = sorted(folders)
    random.Random(SEED).shuffle(order)
    victims: list[int] = []
    for folder in order:
        victims += folders[folder][: size - len(victims)]
        if len(victims) == size:
            return sorted(victims)
    raise ValueError(f"the portal has fewer than {size} annotations")


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}  # noqa: S608


def orphans(engine: Engine) -> int:
    with engine.connect() as conn:
        return count_orphans(conn)


def _quarantine(url: str, victims: set[int]) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        refs = [r for r in annotation_rows.annotations_in_scope(conn, Scope()) if r.id in victims]
        quarantines.quarantine(
            conn,
            [(r, r.stored_path.removeprefix(f"s3://{BUCKET}/")) for r in refs],
            quarantines.Opening(Source.EVENT, "metadata object removed (S3 event)", DETECTED, GRACE),
        )
    engine.dispose()


def _settings(url: str) -> Settings:
    return Settings.from_env(
        {
            Env.DB_URL: url,
            Env.BUCKET: BUCKET,
            Env.DRY_RUN: "false",
            Env.MAX_PURGE_FRACTION: "1",
        }
    )


def _run_method(method: str, url: str, victims: list[int], double: S3Double) -> tuple[Any, int]:
    engine = make_engine(url)
    sql = SqlCounter.attach(engine)
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    double.counts.clear()
    with Meter(sql, lambda: double.counts) as measured:
        if method == "delete_annotations":
            with engine.begin() as conn:
                deleted = len(
                    delete_annotations(conn, judged_paths(conn, victims), source=Source.CLI, reason="benchmark").deleted
                )
        elif method == "Reconciler.purge":
            reconciler = Reconciler(
                Context(engine, S3Storage(double, BUCKET), _settings(url), clock=lambda: DETECTED + 2 * GRACE)
            )
            result = reconciler.purge()
            if result.held or result.unknown or result.released:
                raise AssertionError(f"purge held {len(result.held)}, unknown {len(result.unknown)}")
            deleted = len(result.deleted)
        else:
            deleted = baseline.delete_cascade(engine, victims)
    engine.dispose()
    return measured, deleted


def run(ctx: BenchContext, purge_sizes: tuple[int, ...] = PURGE_SIZES) -> list[Section]:
    spec = portal_spec(PORTAL_SIZE)
    base = "purge_template"
    url = ctx.factory.fresh(base)
    engine = make_engine(url)
    ids = load_rows(engine, spec)
    before = counts(engine)
    engine.dispose()
    by_id = {v: k for k, v in ids.items()}
    out = Section(
        "purge",
        f"3. Purge: deleting quarantined annotations with all their children ({PORTAL_SIZE:,}-annotation portal)",
        [
            "annotations purged",
            "method",
            "wall (measured)",
            "CPU",
            "SQL statements",
            "round trips",
            "DB time",
            "S3 requests",
            "modelled S3 time",
            "rows deleted",
            "vs ORM cascade",
        ],
    )
    try:
        for size in purge_sizes:
            victims = whole_voxel_spacings(ids, size)
            template = f"purge_{size}"
            copy_database(ctx.factory, base, template)
            _quarantine(ctx.factory.url_for(template), set(victims))
            double = S3Double()
            double.load(BUCKET, bucket_keys(spec, {by_id[v] for v in victims}))
            rows: list[tuple[str, Any, int]] = []
            for method in METHODS:
                if method == "ORM cascade" and size > ORM_MAX_SIZE:
                    continue
                name = f"purge_{size}_run"
                run_url = copy_database(ctx.factory, template, name)
                started = time.perf_counter()
                measured, deleted = _run_method(method, run_url, victims, double)
                check = make_engine(run_url)
                after, left = counts(check), orphans(check)
                with check.connect() as conn:
                    survivors = conn.execute(
                        text("SELECT count(*) FROM annotation WHERE id = ANY(CAST(:ids AS integer[]))"),
                        {"ids": victims},
                    ).scalar_one()
                check.dispose()
                ctx.factory.drop(name)
                removed = sum(before[t] - after[t] for t in TABLES)
                if deleted != size or survivors or left or before["annotation"] - after["annotation"] != size:
                    raise AssertionError(
                        f"{method} at {size}: deleted {deleted}, {survivors} survivors, {left} orphans"
                    )
                rows.append((method, measured, removed))
                ctx.console.print(
                    f"[dim]  purge {size:,} {method:40} {fmt_s(measured.wall)} "
                    f"({fmt_s(time.perf_counter() - started)} with checks)"
                )
            # S3 requests per purged annotation, and how many voxel spacings the purged rows lie in (run_all.targets)
            spacings = {by_id[v].partition("/Annotations/")[0] for v in victims}
            for method, m, _ in rows:
                if method == "Reconciler.purge":
                    ctx.facts.setdefault("purge_s3", {})[size] = {
                        "label": f"{size_label(size)} sampled from {size_label(PORTAL_SIZE)}",
                        "requests": sum(m.s3.values()),
                        "purged": size,
                        "voxel_spacings": len(spacings),
                    }
            orm_wall = next((m.wall for method, m, _ in rows if method == "ORM cascade"), None)
            if orm_wall is not None:
                speedups = ctx.facts.setdefault("purge_speedup", {})
                speedups.update({(size, method): orm_wall / m.wall for method, m, _ in rows})
            for method, m, removed in rows:
                out.add(
                    size_label(size),
                    method,
                    fmt_s(m.wall),
                    fmt_s(m.cpu),
                    f"{m.statements:,}",
                    f"{m.round_trips:,}",
                    fmt_s(m.db_seconds),
                    s3_brief(m.s3) if m.s3 else "0",
                    fmt_s(modelled_s3_seconds(m.s3)) if m.s3 else "—",
                    f"{removed:,}",
                    "1x" if method == "ORM cascade" else f"{orm_wall / m.wall:.1f}x faster" if orm_wall else "—",
                )
            ctx.factory.drop(template)
    finally:
        ctx.factory.drop(base)
    out.notes += [
        "Measured against PostgreSQL (no S3 in delete_annotations and ORM cascade). Reconciler.purge also re-checks "
        "S3 (one LIST without a delimiter per run folder of its due rows, which holds their Annotations/ listing and "
        "the run's folder levels for the twin check, plus one LIST with a delimiter per dataset folder and of the "
        f"bucket's root; {Env.S3_CONCURRENCY} of them in flight) on the S3 double answering with S3's latency, so "
        "its wall time includes S3; the modelled S3 time column (requests x latency, one at a time) is the "
        "cross-check.",
        "The purged annotations are whole voxel spacings (20 annotations each), a seeded sample of them.",
        f"The ORM cascade runs up to {ORM_MAX_SIZE:,} annotations only: its time per annotation does not fall with "
        "size, and at 10k it would take a large part of make bench's time.",
        "Rows deleted: the annotations and their shapes, files, authors and method links (8 rows per annotation). "
        "delete_annotations also writes a JSON snapshot of every deleted row to the ledger; the ORM cascade writes "
        "nothing. Round trips count an executemany as one per parameter set (pg8000 sends them one by one).",
    ]
    return [ctx.emit(out)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1k,10k", help="annotations to purge, e.g. 1k,10k")
    args = parser.parse_args()
    with postgres() as factory:
        run(BenchContext(factory, [], []), tuple(parse_sizes(args.sizes)))


if __name__ == "__main__":
    main()
