"""Benchmark 6: ``cleanup-stale-annotations --dry-run`` over one dataset of 1,000 annotations, 100 per voxel spacing,
with data-file noise, against the spec's Phase 1 algorithm, both measured against the S3 double with S3's latency.

The command runs in this process as an operator would run it (click, its own engine, ``--output json``), with
``make_s3_client`` handing it the double; the spec's algorithm is ``bench.baseline.detect_stale`` over the
same dataset (ORM load, one HEAD per annotation, one after another). Both must report exactly the stale
set (asserted); the command runs at 1, 4, 16, 32 and 64 requests in flight::

    .venv/bin/python -m bench.bench_cleanup
"""

from __future__ import annotations

import json
import statistics
import time

from click.testing import CliRunner

from annotation_reconciler.cli import cleanup_stale_annotations as cleanup
from annotation_reconciler.db import make_engine
from annotation_reconciler.settings import DEFAULT_S3_CONCURRENCY
from bench import baseline
from bench.portal import BUCKET, load_rows, metadata_keys, portal_spec, present_keys, run_alone, stale_indices
from bench.report import BenchContext, Section, fmt_s
from bench.s3double import INSTANT, REGIONAL, S3Double, modelled_s3_seconds, s3_brief

ANNOTATIONS = 1_000
PER_VOXEL_SPACING = 100
FRACTION = 0.01
CONCURRENCY = (1, 4, 16, DEFAULT_S3_CONCURRENCY, 64)
REPEATS = 3


def _dry_run(url: str, dataset_id: int, double: S3Double, concurrency: int) -> tuple[float, list[int], dict[str, int]]:
    """One ``cleanup-stale-annotations --dry-run``: wall time, the stale ids it reported, the requests it sent."""
    original = cleanup.make_s3_client
    cleanup.make_s3_client = lambda **_: double  # type: ignore[assignment]
    double.reset_counts()
    args = ["--dataset-id", str(dataset_id), "--dry-run", "--db-uri", url, "--s3-bucket", BUCKET]
    args += ["--s3-concurrency", str(concurrency), "--output", "json"]
    try:
        started = time.perf_counter()
        result = CliRunner().invoke(cleanup.cleanup_stale_annotations, args, catch_exceptions=False)
        wall = time.perf_counter() - started
    finally:
        cleanup.make_s3_client = original  # type: ignore[assignment]
    if result.exit_code != 0:
        raise AssertionError(f"cleanup-stale-annotations exited {result.exit_code}: {result.output[-2000:]}")
    report = json.loads(result.stdout[result.stdout.index("{") :])
    return wall, sorted(s["annotation_id"] for s in report["stale"]), dict(double.counts)


def run(ctx: BenchContext) -> list[Section]:
    spec = portal_spec(ANNOTATIONS, per_voxel_spacing=PER_VOXEL_SPACING, runs_per_dataset=10, zarr_chunks=16)
    url = ctx.factory.fresh("cleanup")
    engine = make_engine(url)
    ids = load_rows(engine, spec)
    engine.dispose()
    keys = metadata_keys(spec)
    expected = sorted(ids[keys[i]] for i in stale_indices(spec.annotations, FRACTION))
    double = S3Double(INSTANT)
    objects = double.load(BUCKET, present_keys(spec, FRACTION))
    double.latency = REGIONAL
    dataset_id = spec.first_dataset_id

    rows: list[tuple[str, float, dict[str, int], int, int]] = []
    for concurrency in CONCURRENCY:
        walls = []
        for _ in range(REPEATS):
            wall, stale, counts = _dry_run(url, dataset_id, double, concurrency)
            if stale != expected:
                raise AssertionError(f"cleanup at {concurrency} in flight found {stale}, expected {expected}")
            walls.append(wall)
        rows.append((f"cleanup-stale-annotations --dry-run, {concurrency} in flight", statistics.median(walls), counts,
                     double.peak_in_flight, concurrency))  # fmt: skip
        ctx.console.print(f"[dim]  cleanup c={concurrency:<3} {fmt_s(statistics.median(walls))}  {s3_brief(counts)}")

    double.reset_counts()
    started = time.perf_counter()
    engine = make_engine(url)
    found = baseline.detect_stale(engine, double, BUCKET, [dataset_id])
    engine.dispose()
    base_wall = time.perf_counter() - started
    if sorted(found) != expected:
        raise AssertionError(f"the spec's algorithm found {sorted(found)}, expected {expected}")
    base_counts = dict(double.counts)
    ctx.console.print(f"[dim]  spec's algorithm {fmt_s(base_wall)}  {s3_brief(base_counts)}")

    out = Section(
        "cleanup",
        f"6. cleanup-stale-annotations dry run: one dataset of {ANNOTATIONS:,} annotations, {PER_VOXEL_SPACING} per "
        "voxel spacing, with data-file noise, measured with S3 latency",
        ["approach", "time (measured)", "S3 requests", "peak in flight", "vs the spec's algorithm",
         "modelled S3 time (cross-check)", "same stale set"],
    )  # fmt: skip
    ratios: dict[int, float] = {}
    for label, wall, counts, peak, concurrency in rows:
        ratios[concurrency] = base_wall / wall
        out.add(
            label + (" (default)" if concurrency == DEFAULT_S3_CONCURRENCY else ""),
            fmt_s(wall),
            s3_brief(counts),
            str(peak),
            f"{base_wall / wall:.1f}x faster",
            fmt_s(modelled_s3_seconds(counts, concurrency)),
            f"yes ({len(expected)})",
        )
    out.add(
        "spec's algorithm (ORM load, one HEAD per annotation, one at a time)",
        fmt_s(base_wall),
        s3_brief(base_counts),
        "1",
        "1x",
        fmt_s(modelled_s3_seconds(base_counts)),
        f"yes ({len(expected)})",
    )
    out.notes += [
        f"The bucket holds {objects:,} objects: per annotation the metadata JSON, ndjson, mrc, a caption JSON and a "
        "zarr of .zattrs + 16 chunks (the listing skips each zarr's chunks). 1% of the metadata files are gone.",
        f"The command's time is the median of {REPEATS} runs of the whole command in this process (click, engine, "
        "one query, the listings, the report as JSON); the spec's algorithm runs once. Both against the S3 double "
        f"answering after S3's latency ({REGIONAL.describe}).",
    ]
    ctx.facts["cleanup"] = {"ratios": ratios, "baseline_s": base_wall, "walls": {c: w for _, w, _, _, c in rows}}
    ctx.factory.drop("cleanup")
    return [ctx.emit(out)]


def main() -> None:
    run_alone(run, __doc__)


if __name__ == "__main__":
    main()
