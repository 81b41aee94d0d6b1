"""Benchmark 5: reconciliation from an S3 Inventory report, beside the LIST scan.

The report is written in AWS's CSV layout (``local.inventory_writer.write_inventory``) into an inventory
bucket of the same S3 (moto or the double) *after* the 1% of metadata files were deleted, so it must
find exactly the stale set the LIST scan and the baseline find. Its requests are a fixed cost (one
LIST for the newest report, one GET for the manifest, one GET per CSV file) plus one confirmation per
``Annotations/`` prefix holding a candidate (HEAD for a lone candidate, LIST for several).

It runs inside ``bench_scan`` (same database, same bucket, same run), which imports this module (never the
other way round); inventory mode alone::

    .venv/bin/python -m bench.bench_scan --sizes 100k --approaches scan,inventory --no-sweeps
"""

from __future__ import annotations

import datetime
from typing import Any

from annotation_reconciler.local.inventory_writer import write_inventory
from annotation_reconciler.service.reconciler import Reconciler
from bench.portal import BUCKET, INVENTORY_BUCKET, REGION
from bench.report import Section, fmt_s, size_label
from bench.s3double import modelled_s3_seconds

#: An hour old when the bench starts: the reconciler refuses a report older than
#: RECONCILER_INVENTORY_MAX_AGE_HOURS (48 h), so a fixed date would stop working two days later.
REPORT_TIME = datetime.datetime.now(datetime.UTC).replace(second=0, microsecond=0) - datetime.timedelta(hours=1)
INVENTORY_PREFIX = "inventory"
#: Rows per CSV file of the report we write (AWS decides this itself; it only changes the fixed GET count).
ROWS_PER_FILE = 250_000


def write_report(client: Any, keys: list[str]) -> str:
    """Write an inventory of ``keys`` into the inventory bucket; returns the prefix URL the reconciler is given."""
    if hasattr(client, "load"):
        client.create_bucket(Bucket=INVENTORY_BUCKET)
    else:
        client.create_bucket(Bucket=INVENTORY_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    write_inventory(
        client,
        source_bucket=BUCKET,
        destination_bucket=INVENTORY_BUCKET,
        prefix=INVENTORY_PREFIX,
        keys=keys,
        created=REPORT_TIME,
        rows_per_file=ROWS_PER_FILE,
    )
    return f"s3://{INVENTORY_BUCKET}/{INVENTORY_PREFIX}/{BUCKET}/daily/"


def scan(reconciler: Reconciler, url: str, client: Any) -> dict[str, Any]:
    result = reconciler.reconcile_inventory(url, inventory_client=client)
    return {
        "stale": result.quarantined,
        "candidates": result.candidates,
        "inventory_keys": result.inventory_metadata_keys,
        "unknown": len(result.unknown),
        "errors": [],
    }


def section(results: list[dict[str, Any]]) -> Section:
    """Inventory runs next to the LIST scan of the same size and S3."""
    out = Section(
        "inventory",
        "5. S3 Inventory mode beside the LIST scan (1% of metadata files deleted)",
        [
            "annotations",
            "S3",
            "mode",
            "wall (measured)",
            "S3 requests",
            "fixed (report)",
            "confirmations",
            "requests / annotation",
            "modelled S3 time",
            "stale found",
        ],
    )
    for r in results:
        n = r["annotations"]
        counts = r["s3"]
        total = sum(counts.values())
        if r["approach"] == "inventory":
            fixed = r["inventory_fixed"]
            confirmations = str(total - fixed)
            fixed_cell = str(fixed)
            mode = f"inventory ({r['candidates']:,} candidates)"
        else:
            fixed_cell = confirmations = "—"
            mode = "LIST scan"
        out.add(
            size_label(n),
            r["backend"],
            mode,
            fmt_s(r["wall"]),
            f"{total:,}",
            fixed_cell,
            confirmations,
            f"{total / n:.4f}",
            fmt_s(modelled_s3_seconds(counts)),
            f"{len(r['stale']):,}",
        )
    out.notes.append(
        "Inventory mode runs up to 100k annotations: at 1M, writing and reading the 6M-row report would take minutes "
        "of the 20-minute budget of make bench (its requests would be the same few fixed ones plus one per prefix "
        "holding a candidate). "
        "fixed = 1 LIST (newest report under the prefix) + 1 GET (manifest.json) + 1 GET per CSV.gz file "
        f"({ROWS_PER_FILE:,} rows a file); confirmations = 1 request per Annotations/ prefix that holds a candidate."
    )
    return out
