"""status as text (cli/status_view.py), from the report's JSON form: caps with "and N more", nothing lost."""

from __future__ import annotations

import io
import json

from rich.console import Console

from annotation_reconciler.cli import status_view


def _row(dataset: int, annotation: int, kind: str = "held", overdue: bool = False) -> dict[str, object]:
    return {
        "kind": kind,
        "annotation_id": annotation,
        "dataset_id": dataset,
        "key": f"{dataset}/r/Reconstructions/VoxelSpacing1/Annotations/1/a-{annotation}.json",
        "reason": "why",
        "next_command": f"annotation-reconciler approve --dataset-id {dataset}",
        "since": "2026-01-01T00:00:00+00:00",
        "overdue": overdue,
    }


def _render(report: dict[str, object], **caps: int) -> str:
    out = io.StringIO()
    status_view.render(report, Console(file=out, width=400), **caps)
    return out.getvalue()


def test_waiting_rows_are_summarised_by_dataset_with_caps() -> None:
    waiting = [
        _row(d, d * 100 + n, "failed" if n == 0 else "held", overdue=n == 0) for d in range(1, 6) for n in range(4)
    ]
    text = _render({"by_status": {"held": 15}, "waiting": waiting}, datasets=3, rows=2)
    assert "20 annotations wait" in text
    assert "dataset 1: 3 held, 1 failed, 1 overdue" in text
    assert "failed: annotation 100 (1/r/" in text and "next: annotation-reconciler approve --dataset-id 1" in text
    assert text.count("  ... and 2 more") == 3  # each shown dataset: 2 of its 4 rows
    assert "... and 2 more datasets (8 rows): --output json has all" in text
    assert "dataset 4:" not in text


def test_blind_prefixes_name_their_command() -> None:
    blind = {
        "prefix": "10001/r/Reconstructions/VoxelSpacing1/Annotations/",
        "dataset_id": 10001,
        "since": "2026-01-01T00:00:00+00:00",
        "days": 2,
        "last_error": "more than 1 LIST pages (RECONCILER_SCAN_PAGE_LIMIT=1)",
        "next_command": "raise RECONCILER_SCAN_PAGE_LIMIT, then: annotation-reconciler scan --dataset-id 10001",
    }
    text = _render({"by_status": {}, "blind_prefixes": [blind]})
    assert "blind prefix: 10001/r/Reconstructions/VoxelSpacing1/Annotations/ (dataset 10001)" in text
    assert "next: raise RECONCILER_SCAN_PAGE_LIMIT, then: annotation-reconciler scan --dataset-id 10001" in text


def test_a_status_answer_too_large_for_lambda_keeps_the_first_rows_and_says_so() -> None:
    from annotation_reconciler.handlers.operator import fit_answer

    report = {
        "by_status": {"held": 3000},
        "gauges": {"HeldWaiting": 3000},
        "waiting": [_row(1, n) for n in range(3000)],
    }
    fitted = fit_answer(report, limit=100_000)
    assert 0 < len(fitted["waiting"]) < 3000 and fitted["waiting_total"] == 3000
    assert fitted["waiting"] == report["waiting"][: len(fitted["waiting"])] and fitted["gauges"] == report["gauges"]
    assert len(json.dumps(fitted).encode()) <= 100_000 and "more rows than a Lambda answer holds" in fitted["note"]
    assert fit_answer(report) is report  # under Lambda's limit: whole


def test_a_table_is_drawn_only_on_a_terminal_wide_enough_for_it() -> None:
    from rich.table import Table

    from annotation_reconciler.cli.terminal import print_rows

    key = "10001/" + "TS_long-run-name" * 8 + "/Reconstructions/VoxelSpacing13.480/Annotations/100/ribosome-1.0.json"
    table = Table("annotation", "key")
    table.add_row("7", key)
    lines = [f"annotation 7: {key}"]

    def shown(console: Console) -> str:
        print_rows(console, table, lines)
        assert isinstance(console.file, io.StringIO)
        return console.file.getvalue()

    wide = shown(Console(file=io.StringIO(), force_terminal=True, width=len(key) + 40))
    assert "┃" in wide and key in wide  # drawn, the key whole in its cell
    for console in (
        Console(file=io.StringIO(), force_terminal=True, width=80),  # a terminal narrower than the table
        Console(file=io.StringIO(), force_terminal=False, width=len(key) + 40),  # piped
    ):
        assert shown(console) == f"annotation 7: {key}\n"
