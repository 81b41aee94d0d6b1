"""Run every benchmark on one throwaway PostgreSQL, print the tables, and optionally write them into BENCHMARKS.md.

    .venv/bin/python -m bench.run_all                                # what `make bench` runs
    .venv/bin/python -m bench.run_all --sizes 1k --moto-sizes 1k     # a quick pass while developing
    .venv/bin/python -m bench.run_all --only scan --sizes 100k --markdown BENCHMARKS.md

``--markdown FILE`` replaces the part of FILE between ``<!-- bench-results:begin -->`` and
``<!-- bench-results:end -->`` (appending the markers if missing) with this run's command, machine,
targets and tables; the prose around them is left alone.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import (
    bench_cleanup,
    bench_coldstart,
    bench_events,
    bench_importer,
    bench_purge,
    bench_scan,
    bench_snapshot,
)
from bench.portal import postgres
from bench.report import BenchContext, Section, fmt_s, machine, parse_sizes, size_label
from bench.s3double import LATENCY_SOURCE, REGIONAL

BEGIN, END = "<!-- bench-results:begin -->", "<!-- bench-results:end -->"
ORDER = (
    "scan",
    "speedup",
    "concurrency",
    "density",
    "shard",
    "cleanup",
    "snapshot",
    "coldstart",
    "events",
    "purge",
    "importer",
    "inventory",
)
RUNNERS: dict[str, Callable[[BenchContext], Any]] = {
    "coldstart": bench_coldstart.run,
    "snapshot": bench_snapshot.run,
    "cleanup": bench_cleanup.run,
    "events": bench_events.run,
    "purge": bench_purge.run,
    "importer": bench_importer.run,
    "scan": bench_scan.run,
}


def targets(facts: dict[str, Any]) -> Section:
    """The issues' targets against this run's figures; an unmet one says what stands in the way."""
    out = Section("targets", "Targets (2-core machine, ratios within this run)", ["target", "this run", "met"])

    def row(target: str, figure: str, ok: bool | None) -> None:
        out.add(target, figure, "—" if ok is None else ("yes" if ok else "**no**"))

    cleanup = facts.get("cleanup")
    if cleanup:
        c = bench_cleanup.DEFAULT_S3_CONCURRENCY
        x = cleanup["ratios"][c]
        row(
            "cleanup-stale-annotations dry run, 1,000 annotations at 100 per voxel spacing with data-file noise: "
            ">= 50x faster than the spec's algorithm (measured, S3 latency)",
            f"{x:.1f}x ({fmt_s(cleanup['baseline_s'])} / {fmt_s(cleanup['walls'][c])}, {c} in flight; "
            f"{cleanup['ratios'][1]:.1f}x at 1 in flight)",
            x >= 50,
        )
    scans = facts.get("scan", {})
    on_double = {n: f for (n, backend), f in scans.items() if backend == "double" and "measured" in f}
    if on_double:
        n = 100_000 if 100_000 in on_double else max(on_double)
        f = on_double[n]
        # The spec's algorithm ran in lanes at this size; the conservative figure prices its HEADs at the time per
        # annotation of the smallest size, which ran strictly one after another (no lane contention at all).
        sequential = [(m, g) for m, g in sorted(on_double.items()) if g.get("baseline_lanes") == 1]
        conservative = None
        figure = f"{f['measured']:.1f}x ({fmt_s(f['baseline_s'])} / {fmt_s(f['scan_s'])}"
        if sequential and f.get("baseline_lanes", 1) > 1:
            m, g = sequential[0]
            conservative = g["baseline_s"] / m * n / f["scan_s"]
            figure += f"; {conservative:.1f}x at the {size_label(m)} one-after-another time per annotation"
        figure += f", {f['concurrency']} LISTs in flight per shard); modelled cross-check {f['modelled']:.1f}x"
        row(
            f"full reconciliation at {size_label(n)}, 5 annotations per voxel spacing: >= 20x the spec's algorithm, "
            "one shard at a time (measured, S3 latency)",
            figure,
            min(f["measured"], conservative or f["measured"]) >= 20,
        )
    snapshot = facts.get("snapshot")
    if snapshot:
        row(
            "the deletion routine's snapshot without planner statistics within 2x of its time with them "
            "(delete_annotations, 1,000 annotations)",
            f"{snapshot['ratio']:.2f}x ({fmt_s(snapshot['without'])} without / {fmt_s(snapshot['with'])} with)",
            snapshot["ratio"] <= 2,
        )
    cold = facts.get("coldstart")
    if cold:
        ok = cold["median"] < 1.0
        figure = f"{fmt_s(cold['median'])} median, {fmt_s(cold['max'])} max (CPU {fmt_s(cold['cpu'])})"
        if not ok:
            figure += (
                f"; in the way: load average {cold['load']:.1f} on 2 cores while measuring (wall time is mostly "
                "waiting for a core), and the imports themselves: boto3, SQLAlchemy's ORM, aws_xray_sdk"
            )
        row("Lambda cold start (import the handlers, build the runtime) under 1 s", figure, ok)
    sweep = facts.get("concurrency_sweep", {})
    if sweep:
        row(
            "concurrency sweep (full reconciliation at 10k, 5 per voxel spacing)",
            ", ".join(f"{c} in flight {fmt_s(t)}" for c, t in sorted(sweep.items())),
            None,
        )
    for (n, backend), f in sorted(scans.items()):
        if backend == "moto" and "measured" in f:
            row(
                f"… measured on moto at {size_label(n)} (no latency; request check only)", f"{f['measured']:.2f}x", None
            )
    if scans:
        worst = max(f["req_per_annotation"] for f in scans.values())
        row("at most 0.2 S3 requests per annotation (LIST scan, every size)", f"{worst:.3f}", worst <= 0.2)
        per_shard = sorted({s for f in scans.values() for s in f["shard_statements"]})
        sweep_rss = facts.get("shard", [])
        sizes = sorted({s["shard"] for s in sweep_rss} | {s for f in scans.values() for s in f["shard_sizes"]})
        statements = sorted(set(per_shard) | {s["sql"] for s in sweep_rss})
        # 3: the shard's rows, the quarantine insert, the release update; 2 when a shard has nothing to quarantine.
        row(
            "SQL statements per shard do not grow with the shard's annotations (at most 3)",
            f"{', '.join(map(str, statements))} statements for shards of {', '.join(f'{s:,}' for s in sizes)}",
            max(statements) <= 3,
        )
    rates = facts.get("events_per_s", {})
    hundred = [rate for (_stream, batch), rate in rates.items() if batch == 100]
    if hundred:
        row(
            "event path >= 1,000 events/s with SQS batches of 100",
            " / ".join(f"{r:,.0f}" for r in hundred) + " events/s (metadata / whole folders)",
            min(hundred) >= 1000,
        )
    purge = facts.get("purge_speedup", {})
    labels = {
        "delete_annotations": "purge >= 20x faster than ORM cascades (delete_annotations, the set-based routine)",
        # The whole path now pays its S3 re-check at S3's latency, which the ORM cascade (no S3 step) does not:
        # a figure to read, not the target's comparison.
        "Reconciler.purge": "… the whole purge path (Reconciler.purge, its S3 re-check at S3's latency included; "
        "the ORM cascade makes no S3 request)",
    }
    for method, label in labels.items():
        found = {size: x for (size, m), x in purge.items() if m == method}
        if found:
            figure = ", ".join(f"{x:.1f}x at {size_label(size)}" for size, x in sorted(found.items()))
            row(label, figure, min(found.values()) >= 20 if method == "delete_annotations" else None)
    shards = facts.get("shard", [])
    largest_portal = max((s["portal"] for s in shards), default=0)
    at = [s for s in shards if s["portal"] == 100_000] or [s for s in shards if s["portal"] == largest_portal]
    if at:
        s = at[0]
        row(
            f"peak RSS of a shard scan under 256 MB at {size_label(s['portal'])} (fresh process)",
            f"{s['peak_mb']:.0f} MB ({s['shard']:,}-annotation shard)",
            s["peak_mb"] < 256,
        )
    biggest = max(shards, key=lambda s: s["shard"], default=None)
    if biggest and biggest is not (at[0] if at else None):
        row(
            f"… the largest shard plan_shards makes ({biggest['shard']:,} annotations)",
            f"{biggest['peak_mb']:.0f} MB",
            biggest["peak_mb"] < 256,
        )
    inventory = {
        n: f for (n, backend), f in scans.items() if backend == "double" and "inventory_req_per_annotation" in f
    }
    if inventory:
        n = 100_000 if 100_000 in inventory else max(inventory)
        x = inventory[n]["inventory_req_per_annotation"]
        row(f"S3 Inventory mode at {size_label(n)}: < 0.01 S3 requests per annotation", f"{x:.4f}", x < 0.01)
    return out


def write_markdown(path: Path, sections: list[Section], header: list[str]) -> None:
    order = {key: i for i, key in enumerate(ORDER)}
    ordered = sorted(sections, key=lambda s: (s.key != "targets", order.get(s.key, len(order))))
    block = "\n".join([BEGIN, "", *header, "", *(s.markdown() for s in ordered), END])
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        before, rest = text.split(BEGIN, 1)
        after = rest.split(END, 1)[1]
        text = before + block + after
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="1k,10k,100k", help="annotation counts for benchmarks 1 and 5 (the others have fixed sizes)"
    )
    parser.add_argument("--moto-sizes", default="1k", help="sizes also run on moto (the request check)")
    parser.add_argument("--only", default=",".join(RUNNERS), help=f"a subset of {','.join(RUNNERS)}")
    parser.add_argument("--markdown", type=Path, help="write the results into this file (BENCHMARKS.md)")
    args = parser.parse_args()
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(only) - set(RUNNERS))
    if unknown:
        parser.error(f"unknown benchmarks {unknown}; choose from {sorted(RUNNERS)}")
    started_at = datetime.datetime.now(datetime.UTC)
    load = os.getloadavg()
    started = time.perf_counter()
    timings: list[str] = []
    with postgres() as factory:
        ctx = BenchContext(factory, parse_sizes(args.sizes), parse_sizes(args.moto_sizes))
        info = machine()
        ctx.console.rule("annotation-reconciler benchmarks")
        ctx.console.print(", ".join(f"{k}: {v}" for k, v in info.items()))
        for name in only:
            ctx.console.rule(name)
            t0 = time.perf_counter()
            RUNNERS[name](ctx)
            timings.append(f"{name} {fmt_s(time.perf_counter() - t0)}")
        summary = targets(ctx.facts)
        ctx.emit(summary)
    elapsed = time.perf_counter() - started
    end_load = os.getloadavg()
    ctx.console.print(f"total {fmt_s(elapsed)} ({', '.join(timings)})")
    if args.markdown:
        command = " ".join([".venv/bin/python", "-m", "bench.run_all", *sys.argv[1:]])
        via_make = " (what `make bench` runs)" if sys.argv[1:] == ["--markdown", "BENCHMARKS.md"] else ""
        header = [
            f"Produced by `{command}`{via_make}, started {started_at:%Y-%m-%d %H:%M} UTC, "
            f"took **{elapsed / 60:.1f} min** ({', '.join(timings)}). Other work shared the machine: the load "
            "averages below were taken at the start and at the end.",
            "",
            "| machine | |",
            "|---|---|",
            *(f"| {k} | {v} |" for k, v in info.items()),
            f"| load average at start (1/5/15 min) | {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} |",
            f"| load average at the end (1/5/15 min) | {end_load[0]:.2f} / {end_load[1]:.2f} / {end_load[2]:.2f} |",
            "",
            f"S3 latency of the double: {REGIONAL.describe}. Source: {LATENCY_SOURCE}",
        ]
        write_markdown(args.markdown, ctx.sections, header)
        ctx.console.print(f"wrote {args.markdown}")


if __name__ == "__main__":
    main()
