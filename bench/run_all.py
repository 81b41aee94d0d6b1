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

from bench import bench_events, bench_importer, bench_purge, bench_scan
from bench.common import BenchContext, Section, fmt_s, machine, parse_sizes, postgres, size_label

BEGIN, END = "<!-- bench-results:begin -->", "<!-- bench-results:end -->"
ORDER = ("scan", "speedup", "shard", "layout", "events", "purge", "importer", "inventory")
RUNNERS: dict[str, Callable[[BenchContext], Any]] = {
    "events": bench_events.run,
    "purge": bench_purge.run,
    "importer": bench_importer.run,
    "scan": bench_scan.run,
}


def _pick(facts: dict[Any, Any], size: int) -> tuple[int, Any] | None:
    """The fact at ``size`` on the double, else at the largest size that ran."""
    on_double = {n: f for (n, backend), f in facts.items() if backend == "double"}
    if not on_double:
        return None
    n = size if size in on_double else max(on_double)
    return n, on_double[n]


def targets(facts: dict[str, Any]) -> Section:
    """The issue's targets against this run's figures."""
    out = Section("targets", "Targets (2-core machine)", ["target", "this run", "met"])

    def row(target: str, figure: str, ok: bool | None) -> None:
        out.add(target, figure, "—" if ok is None else ("yes" if ok else "**no**"))

    scans = facts.get("scan", {})
    picked = _pick(scans, 100_000)
    if picked:
        n, f = picked
        if "modelled_1" in f:
            row(
                f"full reconciliation at {size_label(n)}: >= 20x faster than the baseline "
                "(modelled, same latencies, one shard at a time)",
                f"{f['modelled_1']:.1f}x",
                f["modelled_1"] >= 20,
            )
            row(
                f"… with {bench_scan.SHARD_CONCURRENCY} shards at once (the stack's work_max_concurrency)",
                f"{f['modelled_2']:.1f}x",
                f["modelled_2"] >= 20,
            )
            row(
                f"… measured on the S3 double at {size_label(n)} (no S3 latency at all)",
                f"{f['measured']:.1f}x",
                None,
            )
    for (n, backend), f in sorted(scans.items()):
        if backend == "moto" and "measured" in f:
            row(f"… measured on moto at {size_label(n)}", f"{f['measured']:.2f}x", None)
    if scans:
        worst = max(f["req_per_annotation"] for f in scans.values())
        row("at most 0.2 S3 requests per annotation (LIST scan, every size)", f"{worst:.3f}", worst <= 0.2)
        per_shard = sorted({s for f in scans.values() for s in f["shard_statements"]})
        sweep = facts.get("shard", [])
        sizes = sorted({s["shard"] for s in sweep} | {s for f in scans.values() for s in f["shard_sizes"]})
        statements = sorted(set(per_shard) | {s["sql"] for s in sweep})
        row(
            "SQL statements per shard do not grow with the shard's annotations",
            f"{', '.join(map(str, statements))} statements for shards of {', '.join(f'{s:,}' for s in sizes)}",
            len(statements) == 1,
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
        "Reconciler.purge": "… the whole purge path (Reconciler.purge; S3 latency left out)",
    }
    for method, label in labels.items():
        found = {size: x for (size, m), x in purge.items() if m == method}
        if found:
            figure = ", ".join(f"{x:.1f}x at {size_label(size)}" for size, x in sorted(found.items()))
            row(label, figure, min(found.values()) >= 20)
    sweep = facts.get("shard", [])
    largest_portal = max((s["portal"] for s in sweep), default=0)
    at = [s for s in sweep if s["portal"] == 100_000] or [s for s in sweep if s["portal"] == largest_portal]
    if at:
        s = at[0]
        row(
            f"peak RSS of a shard scan under 256 MB at {size_label(s['portal'])} (fresh process)",
            f"{s['peak_mb']:.0f} MB ({s['shard']:,}-annotation shard)",
            s["peak_mb"] < 256,
        )
    biggest = max(sweep, key=lambda s: s["shard"], default=None)
    if biggest and biggest is not (at[0] if at else None):
        row(
            f"… the largest shard plan_shards makes ({biggest['shard']:,} annotations)",
            f"{biggest['peak_mb']:.0f} MB",
            biggest["peak_mb"] < 256,
        )
    inventory = {k: f for k, f in scans.items() if "inventory_req_per_annotation" in f}
    picked = _pick(inventory, 100_000)
    if picked:
        n, f = picked
        x = f["inventory_req_per_annotation"]
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
        "--sizes", default="1k,10k,100k,1M", help="annotation counts for benchmarks 1 and 5 (2-4 have fixed sizes)"
    )
    parser.add_argument("--moto-sizes", default="1k,10k", help="sizes also measured on moto")
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
    ctx.console.print(f"total {fmt_s(elapsed)} ({', '.join(timings)})")
    if args.markdown:
        command = " ".join([".venv/bin/python", "-m", "bench.run_all", *sys.argv[1:]])
        via_make = " (what `make bench` runs)" if sys.argv[1:] == ["--markdown", "BENCHMARKS.md"] else ""
        header = [
            f"Produced by `{command}`{via_make}, started {started_at:%Y-%m-%d %H:%M} UTC, "
            f"took **{elapsed / 60:.1f} min** ({', '.join(timings)}). Other work may share the machine: the load "
            "average below was taken at the start.",
            "",
            "| machine | |",
            "|---|---|",
            *(f"| {k} | {v} |" for k, v in info.items()),
            f"| load average at start (1/5/15 min) | {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} |",
        ]
        write_markdown(args.markdown, ctx.sections, header)
        ctx.console.print(f"wrote {args.markdown}")


if __name__ == "__main__":
    main()
