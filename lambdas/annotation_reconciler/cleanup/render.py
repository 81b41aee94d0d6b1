"""The spec's text report of ``cleanup-stale-annotations``."""

from __future__ import annotations

from collections import defaultdict

from annotation_reconciler.cleanup.report import CleanupReport, Stale


def render_text(report: CleanupReport) -> str:
    """The spec's report: the total, then per run each annotation id and its stored path."""
    lines = [f"Found {len(report.stale)} stale annotations:" if report.stale else "Found 0 stale annotations."]
    by_run: dict[int | None, list[Stale]] = defaultdict(list)
    for item in report.stale:
        by_run[item.ref.run_id].append(item)
    for run_id in sorted(by_run, key=lambda r: (r is None, r or 0)):
        items = by_run[run_id]
        lines.append(f"  Run ID {run_id}: {len(items)} annotations")
        lines += [f"    - Annotation ID {s.ref.id}: {s.ref.stored_path}" + (" (held)" if s.held else "") for s in items]
    if report.held:
        lines.append("")
        lines.append(f"{len(report.held)} of them are held (suspicious): {report.held[0].reason}")
    if report.unknown:
        lines.append("")
        lines.append(f"{len(report.unknown)} annotations could not be verified and are never deleted:")
        lines += [f"    - Annotation ID {u.ref.id}: {u.why}" for u in report.unknown]
    requests = ", ".join(f"{n} {op}" for op, n in sorted(report.s3_requests.items())) or "none"
    lines.append("")
    lines.append(
        f"Checked {report.annotations} annotations under {report.prefixes_listed} Annotations/ prefixes "
        f"of s3://{report.bucket} (S3 requests: {requests})."
    )
    return "\n".join(lines)
