"""Benchmark 4: the importer re-ingesting one voxel spacing of 1,000 annotations of which 10% are stale.

S3 is moto in process (``mock_aws``), filled through its backend with the synthetic portal's real
documents (metadata JSON) and data-file noise (21 objects per annotation). For each size:

1. the voxel spacing is ingested into an empty database (the rows as the importer writes them);
2. 10% of the metadata files (a seeded sample) are deleted from the bucket;
3. the voxel spacing is ingested again (``ingest(..., run_name=..., voxel_spacing=...)``): it must
   remove exactly the stale annotations, with all their children, and touch nothing else.

100 annotations are run too, to show that the statement count does not grow with the voxel spacing::

    .venv/bin/python -m bench.bench_importer
"""

from __future__ import annotations

import random
from typing import Any

from sqlalchemy import text

from annotation_reconciler.db import make_engine
from annotation_reconciler.db_import import ingest
from annotation_reconciler.local.synthetic import build_portal
from annotation_reconciler.local.synthetic_bucket import documents
from annotation_reconciler.local.synthetic_rows import write_deposition
from annotation_reconciler.rules.paths import BucketLayout
from annotation_reconciler.storage import S3Storage
from annotation_reconciler.storage.counting import RequestCounter
from bench.measure import Meter, SqlCounter
from bench.portal import BUCKET, SEED, MotoBucket, moto_client, portal_spec, run_alone
from bench.report import BenchContext, Section, fmt_s
from bench.s3double import REGIONAL, s3_brief

SIZES = (100, 1_000)
STALE = 0.10
WORKERS = 8  # ingest()'s default: metadata GETs in parallel


def modelled_ingest_s3(counts: dict[str, int]) -> float:
    """LISTs one after another, metadata GETs ``WORKERS`` at a time (as ``MetadataFileFinder`` reads them)."""
    lists = counts.get("ListObjectsV2", 0) * REGIONAL.seconds("ListObjectsV2")
    reads = sum(n * REGIONAL.seconds(op) for op, n in counts.items() if op != "ListObjectsV2")
    return lists + reads / WORKERS


def run(ctx: BenchContext, sizes: tuple[int, ...] = SIZES) -> list[Section]:
    from moto import mock_aws

    out = Section(
        "importer",
        "4. Importer: one voxel spacing, re-ingested after 10% of its metadata files were deleted",
        [
            "annotations",
            "step",
            "wall (measured, moto)",
            "CPU",
            "SQL statements",
            "round trips",
            "DB time",
            "S3 requests",
            "modelled S3 time",
            "rows +/~/-",
            "annotations removed",
        ],
    )
    for size in sizes:
        spec = portal_spec(size, per_voxel_spacing=size, runs_per_dataset=1, zarr_chunks=16)
        portal = build_portal(spec)
        ann = portal.annotations[0]
        name = f"importer_{size}"
        url = ctx.factory.fresh(name)
        engine = make_engine(url)
        write_deposition(engine, spec)  # the importer refuses annotations whose deposition the database lacks
        sql = SqlCounter.attach(engine)
        with mock_aws():
            client = moto_client()
            bucket = MotoBucket(client)
            docs = dict(documents(portal))
            bucket.load(docs, docs)
            counter = RequestCounter.attach(client)
            storage = S3Storage(client, BUCKET)
            options: dict[str, Any] = {
                "dataset_id": ann.dataset_id,
                "run_name": ann.run_name,
                "voxel_spacing": ann.voxel_spacing,
                "https_prefix": spec.https_prefix,
                "workers": WORKERS,
            }
            layout = BucketLayout(BUCKET)
            with Meter(sql, lambda c=counter: c.counts) as first:
                initial = ingest(engine, storage, layout, **options)
            if not initial.ok or initial.inserted["annotation"] != size:
                raise AssertionError(f"initial import of {size}: {initial.problems[:3]}, {dict(initial.inserted)}")
            stale = random.Random(SEED).sample([a.metadata_key for a in portal.annotations], round(size * STALE))
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT id, s3_metadata_path FROM annotation")).all()
            expected = sorted(i for i, path in rows if path.removeprefix(f"s3://{BUCKET}/") in set(stale))
            bucket.delete(stale)
            with Meter(sql, lambda c=counter: c.counts) as again:
                second = ingest(engine, storage, layout, **options)
        with engine.connect() as conn:
            left = conn.execute(text("SELECT count(*) FROM annotation")).scalar_one()
            purged = conn.execute(
                text("SELECT count(*) FROM annotation_reconciler.annotation_quarantine WHERE status = 'purged'")
            ).scalar_one()
        engine.dispose()
        ctx.factory.drop(name)
        if second.deleted != expected or left != size - len(stale) or purged != len(stale):
            raise AssertionError(
                f"re-ingest of {size}: removed {len(second.deleted)}, expected {len(expected)}; "
                f"{left} annotations left, {purged} ledger rows"
            )
        for step, measured, result in (("first import", first, initial), ("re-ingest, 10% stale", again, second)):
            changes = (
                f"{sum(result.inserted.values()):,} / {sum(result.updated.values()):,} / "
                f"{sum(result.removed.values()):,}"
            )
            out.add(
                f"{size:,}",
                step,
                fmt_s(measured.wall),
                fmt_s(measured.cpu),
                f"{measured.statements:,}",
                f"{measured.round_trips:,}",
                fmt_s(measured.db_seconds),
                s3_brief(measured.s3),
                fmt_s(modelled_ingest_s3(measured.s3)),
                changes,
                f"{len(result.deleted):,}",
            )
    out.notes += [
        "Measured in one process against PostgreSQL and in-process moto (its CPU is in the CPU column). modelled S3 "
        f"time: LIST pages one after another (30 ms), metadata GETs {WORKERS} at a time (20 ms each), as the importer "
        "reads them. rows +/~/- = rows inserted / updated / removed over every table.",
        "Removal goes through the shared set-based routine (children first, snapshots to the ledger), in the voxel "
        "spacing's one transaction; round trips count each executemany parameter set (the UPDATE of changed rows).",
    ]
    return [ctx.emit(out)]


def main() -> None:
    run_alone(run, __doc__)


if __name__ == "__main__":
    main()
