"""Run every benchmark on one throwaway PostgreSQL, print the tables, and optionally write them into BENCHMARKS.md.

    .venv/bin/python -m bench.run_all                                # what `make bench` runs
    .venv/bin/python -m bench.run_all --sizes 1k --moto-sizes 1k     # a quick pass while developing
    .venv/bin/python -m bench.run_all --only scan --sizes 100k --markdown BENCHMARKS.md

``--markdown FILE`` replaces the part of FILE between ``<!-- bench-results:begin -->`` and
``<!-- bench-results:end -->`` (appending the markers if missing) with this run's command, commit, machine,
load, targets and tables; the prose around them is left alone. It refuses (exit 2) while ``lambdas/`` or
``bench/`` hold uncommitted changes, so that the figures are those of the commit they name.
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

from tools.docblock import DirtyTree, require_clean, write_block

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
from bench.report import BenchContext, Section, fmt_s, machine, parse_sizes
from bench.s3double import LATENCY_SOURCE, REGIONAL
from bench.targets import targets

BLOCK = "bench-results"  # <!-- bench-results:begin --> … <!-- bench-results:end -->
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


#: The code a benchmark figure is of: ``--markdown`` refuses to write while these differ from the commit.
MEASURED_PATHS = ("lambdas", "bench")


def write_markdown(path: Path, sections: list[Section], header: list[str]) -> None:
    order = {key: i for i, key in enumerate(ORDER)}
    ordered = sorted(sections, key=lambda s: (s.key != "targets", order.get(s.key, len(order))))
    write_block(path, BLOCK, "\n".join(["", *header, "", *(s.markdown() for s in ordered)]))


def header_lines(
    *,
    command: str,
    via_make: str,
    commit: str,
    started_at: datetime.datetime,
    elapsed: float,
    timings: list[str],
    info: dict[str, str],
    load: tuple[float, float, float],
    end_load: tuple[float, float, float],
) -> list[str]:
    """The generated block's head: the command, the commit measured, when, how long, the machine and its load."""
    return [
        f"Produced by `{command}`{via_make} at commit `{commit}` (its `lambdas/` and `bench/` unchanged), started "
        f"{started_at:%Y-%m-%d %H:%M} UTC, took **{elapsed / 60:.1f} min** ({', '.join(timings)}). Other work may "
        "have shared the machine: the load averages below were taken at the start and at the end.",
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in info.items()),
        f"| load average at start (1/5/15 min) | {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} |",
        f"| load average at the end (1/5/15 min) | {end_load[0]:.2f} / {end_load[1]:.2f} / {end_load[2]:.2f} |",
        "",
        f"S3 latency of the double: {REGIONAL.describe}. Source: {LATENCY_SOURCE}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="1k,10k,100k", help="annotation counts for benchmarks 1 and 5 (the others have fixed sizes)"
    )
    parser.add_argument("--moto-sizes", default="1k", help="sizes also run on moto (the request check)")
    parser.add_argument("--only", default=",".join(RUNNERS), help=f"a subset of {','.join(RUNNERS)}")
    parser.add_argument(
        "--markdown",
        type=Path,
        help="write the results into this file (BENCHMARKS.md); refused while lambdas/ or bench/ have uncommitted "
        "changes",
    )
    args = parser.parse_args()
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(only) - set(RUNNERS))
    if unknown:
        parser.error(f"unknown benchmarks {unknown}; choose from {sorted(RUNNERS)}")
    commit = None
    if args.markdown:
        try:
            commit = require_clean(MEASURED_PATHS, f"figures written into {args.markdown}")
        except DirtyTree as err:
            print(f"bench: {err}", file=sys.stderr)
            sys.exit(2)
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
    if args.markdown and commit:
        # the tree must still be the commit measured (nothing committed or edited during the run)
        try:
            if require_clean(MEASURED_PATHS, f"figures written into {args.markdown}") != commit:
                raise DirtyTree(f"HEAD moved from {commit} during the run: run make bench again")
        except DirtyTree as err:
            print(f"bench: {err}", file=sys.stderr)
            sys.exit(2)
        command = " ".join([".venv/bin/python", "-m", "bench.run_all", *sys.argv[1:]])
        via_make = " (what `make bench` runs)" if sys.argv[1:] == ["--markdown", "BENCHMARKS.md"] else ""
        header = header_lines(
            command=command,
            via_make=via_make,
            commit=commit,
            started_at=started_at,
            elapsed=elapsed,
            timings=timings,
            info=info,
            load=load,
            end_load=end_load,
        )
        write_markdown(args.markdown, ctx.sections, header)
        ctx.console.print(f"wrote {args.markdown}")


if __name__ == "__main__":
    main()
