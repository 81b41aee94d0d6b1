"""``status`` as text, from the report's JSON form (``ledger.status.as_json``): the same rendering whether the
report was read from the database or returned by the schedule Lambda (``--via-lambda``)."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

#: How many datasets the text lists before "and N more", and how many waiting rows of each.
DATASETS_SHOWN = 20
ROWS_SHOWN = 5
KINDS = ("held", "failed", "unknown", "overdue")


def render(report: dict[str, Any], console: Console, *, datasets: int = DATASETS_SHOWN, rows: int = ROWS_SHOWN) -> None:
    table = Table("status", "annotations")
    for name in ("quarantined", "held", "released", "purged", "restored"):
        table.add_row(name, str(report["by_status"].get(name, 0)))
    console.print(table)
    o = report.get("oldest_quarantined")
    if o:
        console.print(
            f"oldest quarantined: annotation {o['annotation_id']} since {o['detected_at']} "
            f"(purge after {o['purge_after']})"
        )
    _waiting(report.get("waiting", []), console, datasets, rows)
    if report.get("note"):
        console.print(f"[yellow]{escape(report['note'])}")
    for b in report.get("blind_prefixes", []):
        console.print(
            f"[red]blind prefix:[/red] {escape(b['prefix'])} (dataset {b['dataset_id']}) could not be listed since "
            f"{b['since']} ({b['days']} time(s)); last error: {escape(b['last_error'])}; next: "
            f"{escape(b['next_command'])}",
            soft_wrap=True,
        )
    missing = report.get("annotations_with_missing_files", {})
    for annotation_id, count in list(missing.items())[:datasets]:
        console.print(f"annotation {annotation_id}: {count} data files missing from S3")
    if len(missing) > datasets:
        console.print(f"... and {len(missing) - datasets} more annotations with missing data files")
    for e in report.get("released_by_operator", []):
        console.print(
            f"released by {escape(str(e['by']))}: annotation {e['annotation_id']} (dataset {e['dataset_id']}), "
            f"exempt while its stored path is {escape(e['s3_metadata_path'])}; end it: release --clear "
            f"--annotation-id {e['annotation_id']}",
            soft_wrap=True,
        )
    for u in report.get("untracked_metadata", []):
        if u["moved_annotation_id"] is not None:
            console.print(
                f"[yellow]annotation {u['moved_annotation_id']} moved to {escape(u['metadata_key'])}[/yellow] (it "
                f"carries the annotation's natural key; its own key is gone); re-point it: {escape(u['ingest'])}",
                soft_wrap=True,
            )
            continue
        console.print(
            f"[yellow]untracked metadata: {escape(u['metadata_key'])}[/yellow] (no annotation row points to it; "
            f"seen since {u['first_seen_at']}); ingest it: {escape(u['ingest'])}",
            soft_wrap=True,
        )
    for item in report.get("resurrected", []):
        console.print(
            f"[red]purged annotation {item['annotation_id']} has its metadata back in S3[/red] "
            f"({escape(item['metadata_key'])}, found by {item['found_by']} at {item['found_at']}); re-ingest it: "
            f"{escape(item['reingest'])}",
            soft_wrap=True,
        )


def _waiting(items: list[dict[str, Any]], console: Console, datasets: int, rows: int) -> None:
    """Per dataset: how many rows wait of each kind, then the first ``rows`` of them explained."""
    if not items:
        return
    by_dataset: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for item in items:
        by_dataset[item["dataset_id"]].append(item)
    console.print(f"[yellow]{len(items)} annotations wait[/yellow] (held, failed, unknown or overdue):")
    for n, (dataset_id, waiting) in enumerate(by_dataset.items()):
        if n == datasets:
            rest = sum(len(w) for w in list(by_dataset.values())[datasets:])
            console.print(f"... and {len(by_dataset) - datasets} more datasets ({rest} rows): --output json has all")
            break
        kinds = Counter(w["kind"] for w in waiting)
        overdue = sum(1 for w in waiting if w["overdue"])
        summary = ", ".join(f"{kinds[k]} {k}" for k in KINDS if kinds[k] and k != "overdue")
        summary = ", ".join(x for x in (summary, f"{overdue} overdue" if overdue else "") if x)
        console.print(f"dataset {dataset_id}: {summary}")
        for w in waiting[:rows]:
            console.print(
                f"  {w['kind']}: annotation {w['annotation_id']} ({escape(w['key'])}): {escape(w['reason'])}; "
                f"next: {escape(w['next_command'])}",
                soft_wrap=True,
            )
        if len(waiting) > rows:
            console.print(f"  ... and {len(waiting) - rows} more")
