"""What benchmark 1 (``bench_scan``) reports: its tables, built from the workers' results, and the headline
figures it records for ``run_all``'s targets table (``ctx.facts``). Pure formatting: nothing here runs a worker.

- :func:`scan_section` (1), :func:`speedup_section` (1a), :func:`shard_section` (1b), :func:`density_section` (1c),
  :func:`concurrency_section` (1d);
- :func:`record_facts`: ``facts["scan"]`` keyed by (size, backend), ``facts["concurrency_sweep"]`` and
  ``facts["shard"]``.
"""

from __future__ import annotations

from typing import Any

from annotation_reconciler.names import Env
from annotation_reconciler.settings import DEFAULT_S3_CONCURRENCY
from bench.report import BenchContext, Section, fmt_s, size_label
from bench.s3double import REGIONAL, modelled_s3_seconds, s3_brief


def _label(r: dict[str, Any]) -> str:
    if r["approach"] == "baseline":
        return "spec's algorithm (ORM + HEAD each, one at a time)"
    return {"scan": f"sharded scan, {r['concurrency']} in flight", "inventory": "inventory"}[r["approach"]]


def scan_section(results: list[dict[str, Any]], baseline_lanes: int) -> Section:
    """Benchmark 1's main table: every scan and baseline run; ``baseline_lanes``: the baseline's threads beyond 1k."""
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
        f"budget, so its datasets run {baseline_lanes} at once in threads, each dataset timed alone and still one HEAD "
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


def concurrency_section(sweep: list[dict[str, Any]], main: list[dict[str, Any]], n: int) -> Section:
    """The concurrency sweep at ``n`` annotations, against ``main`` (the runs of that size on the double)."""
    base = next((r for r in main if r["approach"] == "baseline"), None)
    out = Section(
        "concurrency",
        f"1d. Concurrency sweep: LISTs in flight per shard, {size_label(n)} annotations at 5 per voxel spacing, "
        "one shard at a time",
        [f"in flight ({Env.S3_CONCURRENCY})", "time (measured)", "peak in flight", "S3 requests", "CPU",
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


def density_section(n: int, runs: list[tuple[int, dict[str, Any], dict[str, Any], dict[str, Any]]]) -> Section:
    """The density sweep at ``n`` annotations: per annotations-per-voxel-spacing k, the scan at 1 in flight, at the
    default, and the baseline."""
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
    for k, one, many, base in runs:
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


def record_facts(
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
