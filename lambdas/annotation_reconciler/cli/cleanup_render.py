"""The spec's text report of ``cleanup-stale-annotations``."""

from __future__ import annotations

from collections import defaultdict

from annotation_reconciler.rules.plural import count
from annotation_reconciler.service.results import CleanupResult, Stale


def count_of(n: int, kind: str = "") -> str:
    """``1 stale annotation``, ``2 stale annotations``."""
    return count(n, f"{kind}annotation")


#: annotation ids listed per dataset in the confirmation
IDS_SHOWN = 20


def what_would_go(report: CleanupResult) -> list[str]:
    """Per dataset, what a confirmed deletion would remove (held ones apart), for the confirmation prompt."""
    by_dataset: dict[int | None, list[Stale]] = defaultdict(list)
    for item in report.stale:
        by_dataset[item.ref.dataset_id].append(item)
    lines = ["What would go:"]
    for dataset_id in sorted(by_dataset, key=lambda d: (d is None, d or 0)):
        items = by_dataset[dataset_id]
        ordinary = [s.ref.id for s in items if not s.held]
        held = [s.ref.id for s in items if s.held]
        parts = []
        if ordinary:
            more = f" and {len(ordinary) - IDS_SHOWN} more" if len(ordinary) > IDS_SHOWN else ""
            parts.append(f"{count_of(len(ordinary))} {ordinary[:IDS_SHOWN]}{more}")
        if held:
            more = f" and {len(held) - IDS_SHOWN} more" if len(held) > IDS_SHOWN else ""
            parts.append(f"{len(held)} held (only if approved) {held[:IDS_SHOWN]}{more}")
        lines.append(f"  dataset {dataset_id}: " + "; ".join(parts))
    return lines


def render_text(report: CleanupResult) -> str:
    """The spec's report: the total, then per run each annotation id and its stored path."""
    lines = [f"Found {count_of(len(report.stale), 'stale ')}:" if report.stale else "Found 0 stale annotations."]
    by_run: dict[int | None, list[Stale]] = defaultdict(list)
    for item in report.stale:
        by_run[item.ref.run_id].append(item)
    for run_id in sorted(by_run, key=lambda r: (r is None, r or 0)):
        items = by_run[run_id]
        lines.append(f"  Run ID {run_id}: {count_of(len(items))}")
        lines += [f"    - Annotation ID {s.ref.id}: {s.ref.stored_path}" + (" (held)" if s.held else "") for s in items]
    if report.stale_held:
        lines.append("")
        lines.append(
            f"{len(report.stale_held)} of them {'is' if len(report.stale_held) == 1 else 'are'} held (suspicious): "
            f"{report.stale_held[0].reason}"
        )
    if report.unknown:
        lines.append("")
        lines.append(f"{count_of(len(report.unknown))} could not be verified and are never deleted:")
        lines += [f"    - Annotation ID {u.ref.id}: {u.why}" for u in report.unknown]
    requests = ", ".join(f"{n} {op}" for op, n in sorted(report.s3_requests.items())) or "none"
    lines.append("")
    lines.append(
        f"Checked {count_of(report.annotations)} under "
        f"{count(report.prefixes_listed, 'Annotations/ prefix', 'Annotations/ prefixes')} "
        f"of s3://{report.bucket} (S3 requests: {requests})."
    )
    return "\n".join(lines)
