"""``status`` as text, from the report's JSON form (``ledger.status.as_json``): the same rendering whether the
report was read from the database or returned by the schedule Lambda (``--via-lambda``).

Every line is printed whole (``soft_wrap``): a key is never cut or wrapped, whatever the terminal's width; the
counts are a table only on a terminal wide enough for it."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from annotation_reconciler.cli.terminal import line, print_rows
from annotation_reconciler.rules.plural import count

#: How many datasets the text lists before "and N more", and how many waiting rows of each.
DATASETS_SHOWN = 20
ROWS_SHOWN = 5
#: How many annotations of each kind the text lists before "and N more" (JSON has them all).
LISTED_SHOWN = 20
KINDS = ("held", "failed", "unknown", "overdue")
STATUSES = ("quarantined", "held", "released", "purged", "restored")
#: What each listed kind means and the command that moves it on, in the order listed.
LISTED = {
    "quarantined": "purged once its grace period is over unless its metadata comes back; keep one: "
    "annotation-reconciler release --annotation-id ID",
    "unknown": "the purge could not decide it and keeps it; once S3 answers: annotation-reconciler scan --dataset-id N",
    "held": "held by the mass-deletion guard; let them go: annotation-reconciler approve --dataset-id N (or keep one: "
    "release --annotation-id ID)",
    "exempt": "released or restored by an operator: not quarantined again until its metadata or stored path changes; "
    "end it: annotation-reconciler release --clear --annotation-id ID",
}


def say(console: Console, text: str) -> None:
    """A line with markup, never wrapped."""
    console.print(text, soft_wrap=True)


def render(report: dict[str, Any], console: Console, *, datasets: int = DATASETS_SHOWN, rows: int = ROWS_SHOWN) -> None:
    counts = report["by_status"]
    table = Table("status", "annotations", title=_scope(report))
    for name in STATUSES:
        table.add_row(name, str(counts.get(name, 0)))
    lines = [f"{_scope(report)}: " + ", ".join(f"{counts.get(name, 0)} {name}" for name in STATUSES)]
    print_rows(console, table, lines)
    o = report.get("oldest_quarantined")
    if o:
        say(
            console,
            f"oldest quarantined: annotation {o['annotation_id']} since {o['detected_at']} "
            f"(purge after {o['purge_after']})",
        )
    _listed(report.get("annotations", []), console)
    _waiting(report.get("waiting", []), console, datasets, rows)
    if report.get("note"):
        say(console, f"[yellow]{escape(report['note'])}")
    for b in report.get("blind_prefixes", []):
        say(
            console,
            f"[red]blind prefix:[/red] {escape(b['prefix'])} (dataset {b['dataset_id']}) could not be listed since "
            f"{b['since']} ({count(b['days'], 'time')}); last error: {escape(b['last_error'])}; next: "
            f"{escape(b['next_command'])}",
        )
    missing = report.get("annotations_with_missing_files", {})
    for annotation_id, files in list(missing.items())[:datasets]:
        say(console, f"annotation {annotation_id}: {count(files, 'data file')} missing from S3")
    if len(missing) > datasets:
        say(console, f"... and {count(len(missing) - datasets, 'more annotation')} with missing data files")
    for u in report.get("untracked_metadata", []):
        if u["moved_annotation_id"] is not None:
            say(
                console,
                f"[yellow]annotation {u['moved_annotation_id']} moved to {escape(u['metadata_key'])}[/yellow] (it "
                f"carries the annotation's natural key; its own key is gone); re-point it: {escape(u['ingest'])}",
            )
            continue
        say(
            console,
            f"[yellow]untracked metadata: {escape(u['metadata_key'])}[/yellow] (no annotation row points to it; "
            f"seen since {u['first_seen_at']}); ingest it: {escape(u['ingest'])}",
        )
    for item in report.get("resurrected", []):
        say(
            console,
            f"[red]purged annotation {item['annotation_id']} has its metadata back in S3[/red] "
            f"({escape(item['metadata_key'])}, found by {item['found_by']} at {item['found_at']}); re-ingest it: "
            f"{escape(item['reingest'])}",
        )


def _scope(report: dict[str, Any]) -> str:
    one = report.get("dataset_id")
    return "ledger" if one is None else f"dataset {one}"


def _listed(items: list[dict[str, Any]], console: Console) -> None:
    """The annotations to act on, by kind: id, key, since and reason, one line each (the first
    :data:`LISTED_SHOWN` of each kind)."""
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in items:
        by_kind[item["kind"]].append(item)
    for kind, hint in LISTED.items():
        found = by_kind.get(kind, [])
        if not found:
            continue
        line(console, f"{kind}: {count(len(found), 'annotation')} ({hint})")
        for a in found[:LISTED_SHOWN]:
            line(console, f"  {kind} {a['annotation_id']} {a['key']} since {a['since']}: {a['reason']}")
        if len(found) > LISTED_SHOWN:
            line(console, f"  and {len(found) - LISTED_SHOWN} more {kind} (all of them: --output json)")


def _waiting(items: list[dict[str, Any]], console: Console, datasets: int, rows: int) -> None:
    """Per dataset: how many rows wait of each kind, then the first ``rows`` of them explained."""
    if not items:
        return
    by_dataset: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for item in items:
        by_dataset[item["dataset_id"]].append(item)
    say(
        console,
        f"[yellow]{count(len(items), 'annotation')} {'waits' if len(items) == 1 else 'wait'}[/yellow] "
        "(held, failed, unknown or overdue):",
    )
    for n, (dataset_id, waiting) in enumerate(by_dataset.items()):
        if n == datasets:
            rest = sum(len(w) for w in list(by_dataset.values())[datasets:])
            say(
                console,
                f"... and {count(len(by_dataset) - datasets, 'more dataset')} ({count(rest, 'row')}): "
                "--output json has all",
            )
            break
        kinds = Counter(w["kind"] for w in waiting)
        overdue = sum(1 for w in waiting if w["overdue"])
        summary = ", ".join(f"{kinds[k]} {k}" for k in KINDS if kinds[k] and k != "overdue")
        summary = ", ".join(x for x in (summary, f"{overdue} overdue" if overdue else "") if x)
        say(console, f"dataset {dataset_id}: {summary}")
        for w in waiting[:rows]:
            say(
                console,
                f"  {w['kind']}: annotation {w['annotation_id']} ({escape(w['key'])}): {escape(w['reason'])}; "
                f"next: {escape(w['next_command'])}",
            )
        if len(waiting) > rows:
            say(console, f"  ... and {len(waiting) - rows} more")
