"""Benchmark 1: full reconciliation with 1% of metadata files deleted, our sharded scan versus the spec's algorithm,
with S3's latency in the measured wall time.

For each size the portal's rows are bulk-loaded into a fresh database (``ANALYZE``d) at the portal's density
(5 annotations per voxel spacing), 1% of the metadata files (a seeded uniform sample) are left out of the
bucket, and each approach runs in a fresh interpreter (``--worker``) against the S3 double, which answers
every request after S3's latency (``bench.s3double``):

- ``scan``: ``plan_shards`` + ``Reconciler.scan_shard`` per shard, one shard at a time, each shard's LISTs
  ``RECONCILER_S3_CONCURRENCY`` in flight;
- ``baseline``: the spec's Phase 1 detection, literally (``bench.baseline.detect_stale``: ORM load per
  dataset, one HEAD per annotation, one after another). Its time is the sum of its per-dataset times; to
  fit 2,000 s of sleeping into the budget, datasets run in ``lanes`` threads at 10k and beyond (each
  dataset still one HEAD after another), and the 1k row, run in one lane, is the cross-check;
- ``inventory``: ``inventory_shards.reconcile_inventory`` from an S3 Inventory report (benchmark 5).

Every approach must find exactly the expected stale set (asserted). At 1k the same approaches also run on
moto (no latency; the script asserts moto and the double were sent the same requests). Sweeps: requests in
flight (1, 4, 16, 64) at 10k, annotations per voxel spacing (5, 20, 100) at 2k, and one shard in a fresh
interpreter on moto for peak RSS::

    .venv/bin/python -m bench.bench_scan --sizes 1k,10k --moto-sizes 1k

The loaded portals and the moto server are ``bench.portal``'s; the tables are built by ``bench.scan_report``.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from typing import Any

from sqlalchemy import Engine, text

from annotation_reconciler.db import make_engine
from annotation_reconciler.local.synthetic import PortalSpec
from annotation_reconciler.names import Env
from annotation_reconciler.rules.scope import Scope
from annotation_reconciler.service.context import Context
from annotation_reconciler.service.plan import plan_shards
from annotation_reconciler.service.reconciler import Reconciler
from annotation_reconciler.settings import DEFAULT_S3_CONCURRENCY, Settings
from annotation_reconciler.storage import S3Storage
from annotation_reconciler.storage.counting import RequestCounter
from bench import baseline, bench_inventory
from bench.measure import Meter, RssSampler, SqlCounter, maxrss_mb, rss_mb, worker_args
from bench.portal import BUCKET, LoadedPortal, MotoServer, bucket_keys, moto_client, portal_spec, postgres, present_keys
from bench.report import BenchContext, Section, parse_sizes
from bench.s3double import INSTANT, REGIONAL, S3Double
from bench.scan_report import (
    concurrency_section,
    density_section,
    record_facts,
    scan_section,
    shard_section,
    speedup_section,
)

FRACTION = 0.01
APPROACHES = ("scan", "baseline", "inventory")
#: The portal's density: voxel spacings hold a few annotations each.
PORTAL_DENSITY = 5
#: Inventory mode runs up to this size (its target was at 100k).
INVENTORY_MAX_SIZE = 100_000
#: Threads the baseline's datasets are spread over beyond 1k (each dataset one HEAD after another).
BASELINE_LANES = 40
#: Shards the deployment scans at once (the CDK stack's ``work_max_concurrency`` default).
SHARD_CONCURRENCY = 2
SWEEP_CONCURRENCY = (1, 4, 16, 64)
SWEEP_CONCURRENCY_SIZE = 10_000
SWEEP_SHARD_SIZES = (100, 1000, 5000)
SWEEP_DENSITY = (5, 20, 100)
SWEEP_DENSITY_SIZE = 2_000
#: The module each worker runs (``python -m bench.bench_scan --worker JSON``): this one.
WORKER = "bench.bench_scan"


def _settings(db_url: str, concurrency: int) -> Settings:
    return Settings.from_env(
        {
            Env.DB_URL: db_url,
            Env.BUCKET: BUCKET,
            Env.DRY_RUN: "true",
            Env.S3_CONCURRENCY: str(concurrency),
        }
    )


# --- the worker: one approach in a fresh interpreter --------------------------------------------------------------


def worker(args: dict[str, Any]) -> dict[str, Any]:
    spec = PortalSpec(**args["spec"])
    approach, backend = args["approach"], args["backend"]
    concurrency = int(args.get("concurrency", DEFAULT_S3_CONCURRENCY))
    lanes = int(args.get("lanes", 1))
    setup_started = time.perf_counter()
    engine = make_engine(args["db_url"], pool_size=max(2, lanes))
    sql = SqlCounter.attach(engine)
    client: Any
    if backend == "double":
        double = S3Double(INSTANT)  # filled without latency; S3's latency from the first measured request on
        double.load(BUCKET, present_keys(spec, args["fraction"]))
        client, counts = double, (lambda: double.counts)
    else:
        client = moto_client(args["endpoint"])
        counter = RequestCounter.attach(client)
        counts = lambda: counter.counts  # noqa: E731
    out: dict[str, Any] = {
        "approach": approach,
        "backend": backend,
        "annotations": spec.annotations,
        "density": spec.annotations_per_voxel_spacing,
        "concurrency": concurrency if approach in ("scan", "shard", "inventory") else 1,
        "lanes": lanes,
    }
    url = ""
    if approach == "inventory":
        present = double.buckets[BUCKET].keys if backend == "double" else sorted(present_keys(spec, args["fraction"]))
        url = bench_inventory.write_report(client, list(present))
        out["inventory_fixed"] = 2 + math.ceil(len(present) / bench_inventory.ROWS_PER_FILE)
    if backend == "double":
        double.latency = REGIONAL
        double.reset_counts()
    else:
        counter.reset()
    reconciler = Reconciler(Context(engine, S3Storage(client, BUCKET), _settings(args["db_url"], concurrency)))
    with engine.connect() as conn:  # open the pool's connection before measuring, for every approach alike
        conn.execute(text("SELECT 1"))
    gc.collect()
    out["setup_s"] = time.perf_counter() - setup_started
    out["rss_setup_mb"] = rss_mb()
    with RssSampler() as rss, Meter(sql, counts) as measured:
        if approach == "scan":
            out.update(_scan_all(reconciler, sql))
        elif approach == "shard":
            out.update(_scan_one(reconciler, sql, Scope(dataset_id=args["dataset_id"])))
        elif approach == "baseline":
            out.update(_baseline(engine, client, lanes))
        elif approach == "inventory":
            out.update(bench_inventory.scan(reconciler, url, client))
        else:
            raise ValueError(f"unknown approach {approach}")
    out.update(asdict(measured))
    # The time the approach takes run as written: the baseline's per-dataset times added up (one after another).
    out["time"] = out.get("sequential_s", out["wall"])
    out["peak_in_flight"] = double.peak_in_flight if backend == "double" else None
    out["rss_peak_mb"] = rss.peak_mb
    out["rss_growth_mb"] = rss.growth_mb
    out["maxrss_mb"] = maxrss_mb()
    engine.dispose()
    return out


def _baseline(engine: Engine, client: Any, lanes: int) -> dict[str, Any]:
    """The spec's detection, dataset by dataset; with ``lanes`` > 1 several datasets at once, each timed alone."""

    def one(dataset_id: int) -> tuple[float, list[int]]:
        started = time.perf_counter()
        found = baseline.detect_stale(engine, client, BUCKET, [dataset_id])
        return time.perf_counter() - started, found

    datasets = baseline.dataset_ids(engine)
    if lanes <= 1:
        done = [one(d) for d in datasets]
    else:
        with ThreadPoolExecutor(max_workers=lanes) as pool:
            done = list(pool.map(one, datasets))
    return {
        "stale": sorted(i for _, found in done for i in found),
        "errors": [],
        "sequential_s": sum(t for t, _ in done),
        "datasets": len(datasets),
    }


def _scan_all(reconciler: Reconciler, sql: SqlCounter) -> dict[str, Any]:
    shards = plan_shards(reconciler.engine)
    stale: list[int] = []
    per_shard: list[int] = []
    sizes: list[int] = []
    errors: list[str] = []
    for shard in shards:  # one shard at a time
        before = sql.statements
        result = reconciler.scan_shard(shard)
        per_shard.append(sql.statements - before)
        sizes.append(result.annotations)
        stale += result.quarantined
        errors += result.errors + [u.why for u in result.unknown]
        if result.held:
            errors.append(f"{len(result.held)} annotations held in {shard}")
    return {
        "stale": sorted(stale),
        "errors": errors,
        "shards": len(shards),
        "shard_statements": [min(per_shard), max(per_shard)],
        "shard_sizes": [min(sizes), max(sizes)],
    }


def _scan_one(reconciler: Reconciler, sql: SqlCounter, scope: Scope) -> dict[str, Any]:
    before = sql.statements
    result = reconciler.scan_shard(scope)
    return {
        "stale": sorted(result.quarantined),
        "errors": result.errors + [u.why for u in result.unknown],
        "shards": 1,
        "shard_statements": [sql.statements - before] * 2,
        "shard_sizes": [result.annotations] * 2,
    }


# --- the parent ---------------------------------------------------------------------------------------------------


def _portal(ctx: BenchContext, name: str, spec: PortalSpec) -> LoadedPortal:
    """A loaded portal whose workers are this module's (:func:`worker`), FRACTION of its metadata files gone."""
    return LoadedPortal(ctx, name, spec, fraction=FRACTION, worker=WORKER)


def run(
    ctx: BenchContext, approaches: Sequence[str] = APPROACHES, sweeps: bool = True
) -> tuple[list[dict[str, Any]], list[Section]]:
    moto = MotoServer() if ctx.moto_sizes else None
    results: list[dict[str, Any]] = []
    single: list[dict[str, Any]] = []
    concurrency: list[dict[str, Any]] = []
    sections: list[Section] = []
    try:
        for size in ctx.sizes:
            portal = _portal(ctx, f"scan_{size}", portal_spec(size, per_voxel_spacing=PORTAL_DENSITY))
            backends = (["moto"] if moto and size in ctx.moto_sizes else []) + ["double"]
            for backend in backends:
                if backend == "moto":
                    assert moto is not None
                    moto.fill(bucket_keys(portal.spec, portal.removed))
                for approach in approaches:
                    if approach == "inventory" and size > INVENTORY_MAX_SIZE:
                        continue
                    lanes = BASELINE_LANES if approach == "baseline" and size > 1000 and backend == "double" else 1
                    results.append(portal.run(approach, backend, moto.endpoint if moto else "", lanes=lanes))
            _same_requests(results, size)
            if sweeps and size == SWEEP_CONCURRENCY_SIZE:
                concurrency = [portal.run("scan", concurrency=c) for c in SWEEP_CONCURRENCY]
            if sweeps and moto:
                single.append(_one_shard(portal, moto, portal.spec.first_dataset_id, size))
            portal.drop()
        if "baseline" in approaches:
            sections += [scan_section(results, BASELINE_LANES), speedup_section(results)]
        if "inventory" in approaches:
            sections.append(bench_inventory.section([r for r in results if r["approach"] in ("scan", "inventory")]))
        if concurrency:
            main = [r for r in results if r["annotations"] == SWEEP_CONCURRENCY_SIZE and r["backend"] == "double"]
            scans = [r for r in main if r["approach"] == "scan"]
            sections.append(concurrency_section(concurrency + scans, main, SWEEP_CONCURRENCY_SIZE))
        if sweeps:
            sections.append(density_section(SWEEP_DENSITY_SIZE, _density_sweep(ctx)))
        if sweeps and moto:
            single += _shard_sweep(ctx, moto)
            sections.append(shard_section(single))
    finally:
        if moto:
            moto.stop()
    record_facts(ctx, results, single, concurrency)
    for s in sections:
        ctx.emit(s)
    return results, sections


def _same_requests(results: list[dict[str, Any]], size: int) -> None:
    """moto and the double must have been sent exactly the same requests by every approach."""
    for approach in APPROACHES:
        seen = {r["backend"]: r["s3"] for r in results if r["annotations"] == size and r["approach"] == approach}
        if len(seen) == 2 and seen["moto"] != seen["double"]:
            raise AssertionError(f"{approach} at {size}: moto saw {seen['moto']}, the double {seen['double']}")


def _one_shard(portal: LoadedPortal, moto: MotoServer, dataset_id: int, portal_size: int) -> dict[str, Any]:
    """One shard in a fresh interpreter with a real botocore client, moto holding that dataset's keys."""
    spec = portal.spec
    one = replace(spec, datasets=1, first_dataset_id=dataset_id)
    moto.fill(bucket_keys(one, portal.removed))
    result = portal.run("shard", "moto", moto.endpoint, whole=False, dataset_id=dataset_id)
    result["portal_size"] = portal_size
    result["expected_in_shard"] = sum(1 for k in portal.removed if k.startswith(f"{dataset_id}/"))
    if len(result["stale"]) != result["expected_in_shard"]:
        raise AssertionError(f"one shard found {len(result['stale'])} stale, expected {result['expected_in_shard']}")
    return result


def _shard_sweep(ctx: BenchContext, moto: MotoServer) -> list[dict[str, Any]]:
    """Shards of 100, 1,000 and 5,000 annotations (5,000 is plan_shards' largest): statements and RSS."""
    out = []
    for n in SWEEP_SHARD_SIZES:
        spec = portal_spec(n, runs_per_dataset=n // 20, zarr_chunks=16)
        portal = _portal(ctx, f"shard_{n}", spec)
        out.append({**_one_shard(portal, moto, spec.first_dataset_id, n), "sweep": True})
        portal.drop()
    return out


def _density_sweep(ctx: BenchContext) -> list[tuple[int, dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """Annotations per voxel spacing at a fixed size: the scan one request at a time and at the default, the
    baseline, all measured against the same double."""
    runs = []
    for k in SWEEP_DENSITY:
        portal = _portal(ctx, f"density_{k}", portal_spec(SWEEP_DENSITY_SIZE, per_voxel_spacing=k))
        one = portal.run("scan", concurrency=1)
        many = portal.run("scan", concurrency=DEFAULT_S3_CONCURRENCY)
        base = portal.run("baseline", lanes=BASELINE_LANES)
        portal.drop()
        runs.append((k, one, many, base))
    return runs


def main() -> None:
    if given := worker_args(sys.argv):
        print(json.dumps(worker(given)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1k,10k", help="annotation counts, e.g. 1k,10k,100k")
    parser.add_argument("--moto-sizes", default="1k", help="sizes also run on moto (request check)")
    parser.add_argument("--approaches", default=",".join(APPROACHES), help=f"a subset of {','.join(APPROACHES)}")
    parser.add_argument("--no-sweeps", action="store_true", help="skip the concurrency, density and shard sweeps")
    parsed = parser.parse_args()
    approaches = [a.strip() for a in parsed.approaches.split(",") if a.strip()]
    if unknown := sorted(set(approaches) - set(APPROACHES)):
        parser.error(f"unknown approaches {unknown}; choose from {list(APPROACHES)}")
    with postgres() as factory:
        ctx = BenchContext(factory, parse_sizes(parsed.sizes), parse_sizes(parsed.moto_sizes))
        run(ctx, approaches=approaches, sweeps=not parsed.no_sweeps)


if __name__ == "__main__":
    main()
