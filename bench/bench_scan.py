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
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import sys
import time
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from typing import Any

from sqlalchemy import Engine, text

from annotation_reconciler.db import make_engine
from annotation_reconciler.local.synthetic import PortalSpec
from annotation_reconciler.names import Env
from annotation_reconciler.reconcile import Reconciler
from annotation_reconciler.scope import Scope
from annotation_reconciler.settings import DEFAULT_S3_CONCURRENCY, Settings
from annotation_reconciler.shards import plan_shards
from annotation_reconciler.storage import S3Storage
from annotation_reconciler.storage.counting import RequestCounter
from bench import baseline, bench_inventory
from bench.measure import Meter, RssSampler, SqlCounter, maxrss_mb, rss_mb, run_worker, worker_args
from bench.portal import (
    BUCKET,
    MotoBucket,
    bucket_keys,
    load_rows,
    metadata_keys,
    moto_client,
    objects_per_annotation,
    portal_spec,
    postgres,
    present_keys,
    stale_indices,
)
from bench.report import BenchContext, Section, fmt_s, parse_sizes, size_label
from bench.s3double import INSTANT, REGIONAL, S3Double, modelled_s3_seconds, s3_brief

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
    reconciler = Reconciler(engine, S3Storage(client, BUCKET), _settings(args["db_url"], concurrency))
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


class MotoServer:
    """One ThreadedMotoServer for the run, emptied between uses."""

    def __init__(self) -> None:
        from annotation_reconciler.local.moto_server import LocalMotoServer

        self.server = LocalMotoServer().start()
        self.endpoint = self.server.endpoint_url

    def fill(self, keys: Any) -> int:
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")).close()
        gc.collect()
        return MotoBucket(moto_client(self.endpoint)).load(keys)

    def stop(self) -> None:
        self.server.stop()


def _truncate_ledger(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text("TRUNCATE annotation_reconciler.annotation_quarantine, annotation_reconciler.missing_annotation_file")
        )
    engine.dispose()


class Portal:
    """A loaded database for one layout, with the expected stale set."""

    def __init__(self, ctx: BenchContext, name: str, spec: PortalSpec) -> None:
        self.ctx, self.name, self.spec = ctx, name, spec
        started = time.perf_counter()
        self.url = ctx.factory.fresh(name)
        engine = make_engine(self.url)
        self.ids = load_rows(engine, spec)
        engine.dispose()
        keys = metadata_keys(spec)
        self.missing = {keys[i] for i in stale_indices(spec.annotations, FRACTION)}
        self.expected = sorted(self.ids[k] for k in self.missing)
        self.load_s = time.perf_counter() - started
        ctx.console.print(
            f"[dim]{size_label(spec.annotations)} at {spec.annotations_per_voxel_spacing}/voxel spacing: "
            f"{spec.datasets} datasets, {objects_per_annotation(spec)} objects per annotation; "
            f"rows loaded in {fmt_s(self.load_s)}"
        )

    def run(self, approach: str, backend: str = "double", endpoint: str = "", **extra: Any) -> dict[str, Any]:
        _truncate_ledger(self.url)
        args = {
            "approach": approach,
            "backend": backend,
            "endpoint": endpoint,
            "db_url": self.url,
            "spec": asdict(self.spec),
            "fraction": FRACTION,
            **extra,
        }
        result = run_worker("bench.bench_scan", args)
        if approach != "shard":
            if result["errors"]:
                raise AssertionError(f"{approach} on {backend}: {result['errors'][:5]}")
            if sorted(result["stale"]) != self.expected:
                found = set(result["stale"])
                raise AssertionError(
                    f"{approach} on {backend} found {len(found)} stale, expected {len(self.expected)}: "
                    f"missed {sorted(set(self.expected) - found)[:10]}, extra {sorted(found - set(self.expected))[:10]}"
                )
        lanes = f" ({result['lanes']} lanes, {fmt_s(result['wall'])} elapsed)" if result["lanes"] > 1 else ""
        self.ctx.console.print(
            f"[dim]  {approach:9} {backend:6} c={result['concurrency']:<3} {fmt_s(result['time']):>9}{lanes}  "
            f"{s3_brief(result['s3'])}  SQL {result['statements']:,}  peak RSS {result['maxrss_mb']:.0f} MB"
        )
        return result

    def drop(self) -> None:
        self.ctx.factory.drop(self.name)


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
            portal = Portal(ctx, f"scan_{size}", portal_spec(size, per_voxel_spacing=PORTAL_DENSITY))
            backends = (["moto"] if moto and size in ctx.moto_sizes else []) + ["double"]
            for backend in backends:
                if backend == "moto":
                    assert moto is not None
                    moto.fill(bucket_keys(portal.spec, portal.missing))
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
            sections += [scan_section(results), speedup_section(results)]
        if "inventory" in approaches:
            sections.append(bench_inventory.section([r for r in results if r["approach"] in ("scan", "inventory")]))
        if concurrency:
            main = [r for r in results if r["annotations"] == SWEEP_CONCURRENCY_SIZE and r["backend"] == "double"]
            sections.append(concurrency_section(concurrency + [r for r in main if r["approach"] == "scan"], main))
        if sweeps:
            sections.append(_density_sweep(ctx))
        if sweeps and moto:
            single += _shard_sweep(ctx, moto)
            sections.append(shard_section(single))
    finally:
        if moto:
            moto.stop()
    _facts(ctx, results, single, concurrency)
    for s in sections:
        ctx.emit(s)
    return results, sections


def _facts(
    ctx: BenchContext, results: list[dict[str, Any]], single: list[dict[str, Any]], sweep: list[dict[str, Any]]
) -> None:
    """Headline figures for run_all's targets table."""
    by_key = {(r["annotations"], r["backend"], r["approach"]): r for r in results}
    scans = ctx.facts.setdefault("scan", {})
    for (n, backend, approach), r in by_key.items():
        if approach != "scan":
            continue
        fact: dict[str, Any] = {
            "req_per_annotation": sum(r["s3"].values()) / n,
            "shard_statements": r["shard_statements"],
            "shard_sizes": r["shard_sizes"],
            "rss_growth_mb": r["rss_growth_mb"],
            "scan_s": r["time"],
            "concurrency": r["concurrency"],
        }
        base = by_key.get((n, backend, "baseline"))
        if base:
            fact["baseline_s"] = base["time"]
            fact["baseline_lanes"] = base["lanes"]
            fact["measured"] = base["time"] / r["time"]
            if backend == "double":
                fact["modelled"] = modelled_s3_seconds(base["s3"]) / modelled_s3_seconds(r["s3"], r["concurrency"])
        inventory = by_key.get((n, backend, "inventory"))
        if inventory:
            fact["inventory_req_per_annotation"] = sum(inventory["s3"].values()) / n
        scans[(n, backend)] = fact
    ctx.facts["concurrency_sweep"] = {r["concurrency"]: r["time"] for r in sweep}
    ctx.facts.setdefault("shard", []).extend(
        {"portal": r["portal_size"], "shard": r["shard_sizes"][0], "peak_mb": r["maxrss_mb"], "sql": r["statements"]}
        for r in single
    )


def _same_requests(results: list[dict[str, Any]], size: int) -> None:
    """moto and the double must have been sent exactly the same requests by every approach."""
    for approach in APPROACHES:
        seen = {r["backend"]: r["s3"] for r in results if r["annotations"] == size and r["approach"] == approach}
        if len(seen) == 2 and seen["moto"] != seen["double"]:
            raise AssertionError(f"{approach} at {size}: moto saw {seen['moto']}, the double {seen['double']}")


def _one_shard(portal: Portal, moto: MotoServer, dataset_id: int, portal_size: int) -> dict[str, Any]:
    """One shard in a fresh interpreter with a real botocore client, moto holding that dataset's keys."""
    spec = portal.spec
    one = replace(spec, datasets=1, first_dataset_id=dataset_id)
    moto.fill(bucket_keys(one, portal.missing))
    result = portal.run("shard", "moto", moto.endpoint, dataset_id=dataset_id)
    result["portal_size"] = portal_size
    result["expected_in_shard"] = sum(1 for k in portal.missing if k.startswith(f"{dataset_id}/"))
    if len(result["stale"]) != result["expected_in_shard"]:
        raise AssertionError(f"one shard found {len(result['stale'])} stale, expected {result['expected_in_shard']}")
    return result


def _shard_sweep(ctx: BenchContext, moto: MotoServer) -> list[dict[str, Any]]:
    """Shards of 100, 1,000 and 5,000 annotations (5,000 is plan_shards' largest): statements and RSS."""
    out = []
    for n in SWEEP_SHARD_SIZES:
        spec = portal_spec(n, runs_per_dataset=n // 20, zarr_chunks=16)
        portal = Portal(ctx, f"shard_{n}", spec)
        out.append({**_one_shard(portal, moto, spec.first_dataset_id, n), "sweep": True})
        portal.drop()
    return out


def _density_sweep(ctx: BenchContext) -> Section:
    """Annotations per voxel spacing at a fixed size: the scan one request at a time and at the default, the
    baseline, all measured against the same double."""
    n = SWEEP_DENSITY_SIZE
    out = Section(
        "density",
        f"1c. Density sweep: annotations per voxel spacing, {size_label(n)} annotations, measured with S3 latency",
        [
            "annotations / voxel spacing",
            "scan S3 requests",
            "baseline",
            "scan, 1 in flight",
            f"scan, {DEFAULT_S3_CONCURRENCY} in flight",
            "speedup at 1 in flight",
            f"speedup at {DEFAULT_S3_CONCURRENCY} in flight",
            "modelled speedup (cross-check)",
            "same stale set",
        ],
    )
    for k in SWEEP_DENSITY:
        portal = Portal(ctx, f"density_{k}", portal_spec(n, per_voxel_spacing=k))
        one = portal.run("scan", concurrency=1)
        many = portal.run("scan", concurrency=DEFAULT_S3_CONCURRENCY)
        base = portal.run("baseline", lanes=BASELINE_LANES)
        portal.drop()
        modelled = modelled_s3_seconds(base["s3"]) / modelled_s3_seconds(many["s3"], DEFAULT_S3_CONCURRENCY)
        out.add(
            k,
            s3_brief(many["s3"]),
            fmt_s(base["time"]),
            fmt_s(one["time"]),
            fmt_s(many["time"]),
            f"{base['time'] / one['time']:.1f}x",
            f"{base['time'] / many['time']:.1f}x",
            f"{modelled:.1f}x",
            f"yes ({len(many['stale']):,})",
        )
    out.notes.append(
        "Every figure measured against the S3 double with S3's latency, one shard at a time. Data-file noise: 21 "
        "objects per annotation (16 zarr chunks, skipped by the listing). The scan needs about one LIST page per "
        "Annotations/ prefix, so its requests per annotation fall as 1/k; the baseline makes one HEAD per annotation "
        "whatever the layout. With few annotations per prefix, requests in flight are what keeps the scan ahead. "
        "modelled speedup = the baseline's requests x latency / the scan's requests x latency / concurrency."
    )
    return out


# --- tables -------------------------------------------------------------------------------------------------------


def _label(r: dict[str, Any]) -> str:
    if r["approach"] == "baseline":
        return "spec's algorithm (ORM + HEAD each, one at a time)"
    return {"scan": f"sharded scan, {r['concurrency']} in flight", "inventory": "inventory"}[r["approach"]]


def scan_section(results: list[dict[str, Any]]) -> Section:
    out = Section(
        "scan",
        "1. Full reconciliation, 1% of metadata files deleted, 5 annotations per voxel spacing: sharded scan vs the "
        "spec's Phase 1 algorithm, S3 latency measured",
        [
            "annotations",
            "S3",
            "approach",
            "time (measured)",
            "CPU",
            "S3 requests",
            "req / annotation",
            "peak in flight",
            "SQL statements",
            "SQL / shard",
            "DB time",
            "peak RSS (growth)",
            "modelled S3 time (cross-check)",
        ],
    )
    for r in results:
        if r["approach"] not in ("scan", "baseline"):
            continue
        n = r["annotations"]
        per_shard = "—"
        if r["approach"] == "scan":
            lo, hi = r["shard_statements"]
            per_shard = f"{lo}" if lo == hi else f"{lo}-{hi}"
        measured = fmt_s(r["time"])
        if r["lanes"] > 1:
            measured += f" (Σ of {r['datasets']} datasets, {r['lanes']} at once: {fmt_s(r['wall'])} elapsed)"
        elif r["approach"] == "baseline":
            measured += " (one after another)"
        out.add(
            size_label(n),
            r["backend"] if r["backend"] == "moto" else "double + latency",
            _label(r),
            measured,
            fmt_s(r["cpu"]),
            s3_brief(r["s3"]),
            f"{sum(r['s3'].values()) / n:.3f}",
            "—" if r["peak_in_flight"] is None else str(r["peak_in_flight"]),
            f"{r['statements']:,}",
            per_shard,
            fmt_s(r["db_seconds"]),
            f"{r['maxrss_mb']:.0f} MB (+{r['rss_growth_mb']:.0f})",
            fmt_s(modelled_s3_seconds(r["s3"], r["concurrency"])) if r["backend"] == "double" else "—",
        )
    out.notes += [
        "time, CPU, SQL statements, DB time and RSS are measured, each approach in a fresh interpreter against the S3 "
        f"double answering after S3's latency ({REGIONAL.describe}); 'moto' rows are moto over HTTP on 127.0.0.1 (no "
        "latency; run only to check that moto and the double were sent exactly the same requests).",
        "The spec's algorithm makes one HEAD after another; at 10k and beyond, 2,000 s of it would not fit the "
        f"budget, so its datasets run {BASELINE_LANES} at once in threads, each dataset timed alone and still one HEAD "
        "after another: its time is the sum of the per-dataset times (what one sequential run takes). The 1k row "
        "runs the datasets one after another: compare its time per annotation with the larger rows'.",
        "peak in flight = the most requests the double was answering at once. modelled S3 time = requests x "
        "first-byte latency / requests in flight, the old model, kept as a cross-check. Peak RSS is the worker's "
        "VmHWM, including the double's keys; CPU is the worker's, not PostgreSQL's.",
    ]
    return out


def speedup_section(results: list[dict[str, Any]]) -> Section:
    out = Section(
        "speedup",
        "1a. Full reconciliation: the spec's algorithm's time / the sharded scan's time (one shard at a time)",
        [
            "annotations",
            "S3",
            "measured",
            "baseline time per annotation",
            "modelled (cross-check)",
            "scan S3 req / annotation",
            "same stale set",
        ],
    )
    by_key = {(r["annotations"], r["backend"], r["approach"]): r for r in results}
    for (n, backend, approach), ours in by_key.items():
        if approach != "scan" or (n, backend, "baseline") not in by_key:
            continue
        base = by_key[(n, backend, "baseline")]
        measured = f"{base['time'] / ours['time']:.1f}x ({fmt_s(base['time'])} / {fmt_s(ours['time'])})"
        modelled = "—"
        if backend == "double":
            m = modelled_s3_seconds(base["s3"]) / modelled_s3_seconds(ours["s3"], ours["concurrency"])
            modelled = f"{m:.1f}x"
        out.add(
            size_label(n),
            backend if backend == "moto" else "double + latency",
            measured,
            f"{base['time'] / n * 1000:.1f} ms",
            modelled,
            f"{sum(ours['s3'].values()) / n:.3f}",
            f"yes ({len(ours['stale']):,})",
        )
    out.notes.append(
        "moto rows have no S3 latency at all (moto's ListObjects walks every key of the bucket on every call): they "
        "say little about S3 and are kept only for the request check."
    )
    return out


def concurrency_section(sweep: list[dict[str, Any]], main: list[dict[str, Any]]) -> Section:
    n = SWEEP_CONCURRENCY_SIZE
    base = next((r for r in main if r["approach"] == "baseline"), None)
    out = Section(
        "concurrency",
        f"1d. Concurrency sweep: LISTs in flight per shard, {size_label(n)} annotations at 5 per voxel spacing, "
        "one shard at a time",
        ["in flight (RECONCILER_S3_CONCURRENCY)", "time (measured)", "peak in flight", "S3 requests", "CPU",
         "vs 1 in flight", "vs the spec's algorithm", "same stale set"],
    )  # fmt: skip
    one = next((r["time"] for r in sweep if r["concurrency"] == 1), None)
    for r in sorted(sweep, key=lambda r: r["concurrency"]):
        out.add(
            f"{r['concurrency']}" + (" (default)" if r["concurrency"] == DEFAULT_S3_CONCURRENCY else ""),
            fmt_s(r["time"]),
            str(r["peak_in_flight"]),
            s3_brief(r["s3"]),
            fmt_s(r["cpu"]),
            f"{one / r['time']:.1f}x" if one else "—",
            f"{base['time'] / r['time']:.1f}x" if base else "—",
            f"yes ({len(r['stale']):,})",
        )
    out.notes.append(
        "A shard is a dataset: 50 runs, one Annotations/ prefix each, so at most 50 LISTs can be in flight in one "
        "shard whatever the setting. Requests in flight are threads sleeping in the double (GIL released); the CPU "
        "column shows what the threads cost this process."
    )
    return out


def shard_section(results: list[dict[str, Any]]) -> Section:
    out = Section(
        "shard",
        "1b. One shard in a fresh interpreter (real botocore client, moto on 127.0.0.1 holding the shard's keys)",
        [
            "case",
            "portal annotations",
            "shard annotations",
            "wall (measured)",
            "S3 requests",
            "SQL statements",
            "DB time",
            "peak RSS (VmHWM)",
            "RSS growth during scan",
            "stale found",
        ],
    )
    for r in results:
        out.add(
            "shard-size sweep" if r.get("sweep") else "first shard of the portal",
            size_label(r["portal_size"]),
            f"{r['shard_sizes'][0]:,}",
            fmt_s(r["wall"]),
            s3_brief(r["s3"]),
            f"{r['statements']:,}",
            fmt_s(r["db_seconds"]),
            f"{r['maxrss_mb']:.0f} MB",
            f"{r['rss_growth_mb']:.1f} MB",
            f"{len(r['stale']):,}",
        )
    out.notes.append(
        "The whole process (Python, SQLAlchemy, boto3, the reconciler) as a work Lambda would run one shard message; "
        "5,000 annotations is the largest shard plan_shards makes."
    )
    return out


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
