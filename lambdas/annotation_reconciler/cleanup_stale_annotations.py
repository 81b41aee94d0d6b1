"""``cleanup-stale-annotations``: the spec's Phase 1 script, on the reconciler's core.

Existence is decided from listings of the scope's ``Annotations/`` prefixes (a few paginated
LISTs, never a HEAD per annotation, ``--s3-concurrency`` of them in flight at once). A stored
path that does not map into ``--s3-bucket`` is *unverifiable* and never deleted; an S3 error
stops the command before anything is deleted.
Deletion goes through the shared routine (children first, one transaction per batch, an
``annotation_quarantine`` row with source ``cli``)::

    python -m annotation_reconciler.cleanup_stale_annotations --run-id 123 \\
        --s3-bucket cryoet-data-portal-staging --s3-prefix "s3://cryoet-data-portal-staging/"
"""

from __future__ import annotations

import json
import logging
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import click
from sqlalchemy import Engine

from annotation_reconciler.cli.common import UsageError, engine_from
from annotation_reconciler.ledger.models import Source
from annotation_reconciler.ledger.repository import Scope
from annotation_reconciler.lifecycle import AnnotationRef, Unverifiable
from annotation_reconciler.paths import BucketLayout
from annotation_reconciler.portal.deletion import delete_annotations
from annotation_reconciler.reconcile import Reconciler
from annotation_reconciler.settings import DEFAULT_S3_CONCURRENCY, MAX_S3_CONCURRENCY, Settings, validate_bucket
from annotation_reconciler.storage import S3Storage, make_s3_client
from annotation_reconciler.storage.counting import RequestCounter

log = logging.getLogger("annotation_reconciler.cleanup")

BATCH_SIZE = 500
REASON = "metadata not found in S3 (cleanup-stale-annotations)"


class CleanupError(click.ClickException):
    """A failure that stops the command before any deletion (exit code 1)."""

    exit_code = 1


@dataclass(frozen=True, slots=True)
class Stale:
    """An annotation whose metadata a complete listing did not contain."""

    ref: AnnotationRef
    key: str
    empty_prefix: bool  # its whole Annotations/ prefix listed no metadata at all


@dataclass
class CleanupReport:
    """What the command found, and (without dry run) what it deleted."""

    bucket: str
    s3_prefix: str
    scope: Scope
    dry_run: bool
    annotations: int = 0
    prefixes_listed: int = 0
    stale: list[Stale] = field(default_factory=list)
    unverifiable: list[Unverifiable] = field(default_factory=list)
    reappeared: list[int] = field(default_factory=list)  # stale at the survey, present at the re-check
    deleted: list[int] = field(default_factory=list)
    rows_deleted: dict[str, int] = field(default_factory=dict)
    s3_requests: dict[str, int] = field(default_factory=dict)

    @property
    def nothing_found(self) -> bool:
        """Every listed prefix held no metadata at all: more likely a wrong bucket or prefix than a deletion."""
        return bool(self.stale) and all(s.empty_prefix for s in self.stale) and self.prefixes_listed > 0

    def to_json(self) -> dict[str, Any]:
        scope = {k: v for k, v in vars(self.scope).items() if v is not None}
        return {
            "bucket": self.bucket,
            "s3_prefix": self.s3_prefix,
            "scope": scope,
            "dry_run": self.dry_run,
            "annotations_checked": self.annotations,
            "prefixes_listed": self.prefixes_listed,
            "s3_requests": self.s3_requests,
            "stale": [
                {
                    "annotation_id": s.ref.id,
                    "run_id": s.ref.run_id,
                    "dataset_id": s.ref.dataset_id,
                    "s3_metadata_path": s.ref.stored_path,
                    "key": s.key,
                    "empty_prefix": s.empty_prefix,
                }
                for s in self.stale
            ],
            "unverifiable": [
                {"annotation_id": u.ref.id, "run_id": u.ref.run_id, "s3_metadata_path": u.ref.stored_path, "why": u.why}
                for u in self.unverifiable
            ],
            "reappeared": self.reappeared,
            "deleted": self.deleted,
            "rows_deleted": self.rows_deleted,
        }


def render_text(report: CleanupReport) -> str:
    """The spec's report: the total, then per run each annotation id and its stored path."""
    lines = [f"Found {len(report.stale)} stale annotations:" if report.stale else "Found 0 stale annotations."]
    by_run: dict[int | None, list[Stale]] = defaultdict(list)
    for item in report.stale:
        by_run[item.ref.run_id].append(item)
    for run_id in sorted(by_run, key=lambda r: (r is None, r or 0)):
        items = by_run[run_id]
        lines.append(f"  Run ID {run_id}: {len(items)} annotations")
        lines += [f"    - Annotation ID {s.ref.id}: {s.ref.stored_path}" for s in items]
    if report.unverifiable:
        lines.append("")
        lines.append(f"{len(report.unverifiable)} annotations could not be verified and are never deleted:")
        lines += [f"    - Annotation ID {u.ref.id}: {u.why}" for u in report.unverifiable]
    requests = ", ".join(f"{n} {op}" for op, n in sorted(report.s3_requests.items())) or "none"
    lines.append("")
    lines.append(
        f"Checked {report.annotations} annotations under {report.prefixes_listed} Annotations/ prefixes "
        f"of s3://{report.bucket} (S3 requests: {requests})."
    )
    return "\n".join(lines)


def survey_scope(reconciler: Reconciler, report: CleanupReport) -> None:
    """Fill the report's stale and unverifiable annotations; raise CleanupError on any S3 error."""
    found = reconciler.survey(report.scope)
    if found.errors:
        first = found.errors[0]
        raise CleanupError(
            f"S3 error, nothing deleted: {first.operation} s3://{first.bucket}/{first.key} failed "
            f"({first.code or type(first.cause).__name__}: {first.cause})"
            + (f"; and {len(found.errors) - 1} more prefixes" if len(found.errors) > 1 else "")
        )
    survey = found.survey
    report.annotations = found.annotations
    report.prefixes_listed = found.prefixes_listed
    stale = [Stale(ref, key, False) for ref, key in survey.missing]
    stale += [Stale(ref, key, True) for ref, key in survey.suspicious]
    report.stale = sorted(stale, key=lambda s: (s.ref.run_id or 0, s.ref.id))
    report.unverifiable = sorted(survey.unverifiable, key=lambda u: u.ref.id)


def delete_stale(reconciler: Reconciler, engine: Engine, report: CleanupReport) -> None:
    """Re-check S3 for the stale keys, then delete what is still absent, one transaction per batch."""
    presence = reconciler.check_presence(s.key for s in report.stale)
    unknown = [s for s in report.stale if presence.get(s.key) is None]
    if unknown:
        raise CleanupError(
            f"S3 error at the re-check, nothing deleted: {len(unknown)} keys could not be checked, "
            f"e.g. s3://{report.bucket}/{unknown[0].key}"
        )
    report.reappeared = [s.ref.id for s in report.stale if presence[s.key]]
    for annotation_id in report.reappeared:
        log.warning("annotation %d kept: its metadata is back in S3", annotation_id)
    victims = [s for s in report.stale if presence[s.key] is False]
    totals: dict[str, int] = defaultdict(int)
    for start in range(0, len(victims), BATCH_SIZE):
        batch = victims[start : start + BATCH_SIZE]
        with engine.begin() as conn:
            result = delete_annotations(
                conn, [s.ref.id for s in batch], source=Source.CLI, reason=REASON, metadata_keys=_keys(batch)
            )
        for table, count in result.rows.items():
            totals[table] += count
        for item in batch:
            if item.ref.id in result.annotation_ids:
                log.info("deleted annotation %d (run %s): %s", item.ref.id, item.ref.run_id, item.ref.stored_path)
        report.deleted += result.annotation_ids
    report.rows_deleted = dict(totals)


def _keys(batch: list[Stale]) -> dict[int, str | None]:
    return {s.ref.id: s.key for s in batch}


def _confirm(question: str) -> bool:
    return click.confirm(question, default=False, err=True)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--dataset-id", type=int, help="Cleanup annotations for specific dataset")
@click.option("--run-id", type=int, help="Cleanup annotations for specific run")
@click.option("--voxel-spacing-id", type=int, help="Cleanup annotations for specific voxel spacing")
@click.option("--dry-run/--no-dry-run", default=True, help="Show what would be deleted without deleting")
@click.option("--db-uri", type=str, help="Database URI (default: $RECONCILER_DB_URL)")
@click.option("--s3-bucket", type=str, required=True, help="S3 bucket to check for files")
@click.option("--s3-prefix", type=str, default="", help="S3 prefix of stored paths (s3://BUCKET/ or BUCKET/ or ROOT/)")
@click.option("--anonymous", is_flag=True, default=False, help="Use anonymous S3 access")
@click.option(
    "--s3-concurrency",
    type=click.IntRange(1, MAX_S3_CONCURRENCY),
    envvar="RECONCILER_S3_CONCURRENCY",
    default=DEFAULT_S3_CONCURRENCY,
    show_default=True,
    help="S3 requests in flight at once (default: $RECONCILER_S3_CONCURRENCY)",
)
@click.option("--yes", is_flag=True, default=False, help="Do not ask for confirmation (automation)")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", help="Report format")
def cleanup_stale_annotations(
    dataset_id: int | None,
    run_id: int | None,
    voxel_spacing_id: int | None,
    dry_run: bool,
    db_uri: str | None,
    s3_bucket: str,
    s3_prefix: str,
    anonymous: bool,
    s3_concurrency: int,
    yes: bool,
    output: str,
) -> None:
    """Identify and delete stale annotations whose metadata files no longer exist in S3."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    log.setLevel(logging.INFO)  # every deletion is logged; botocore's chatter is not
    try:
        validate_bucket("--s3-bucket", s3_bucket)
        BucketLayout.from_prefix(s3_bucket, s3_prefix)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    scope = Scope(dataset_id=dataset_id, run_id=run_id, voxel_spacing_id=voxel_spacing_id)
    if scope.is_everything:
        click.echo("Warning: no --dataset-id, --run-id or --voxel-spacing-id: every annotation is checked.", err=True)
        if not yes and not _confirm("Scan every annotation in the database?"):
            raise click.Abort()
    engine = engine_from(db_uri, option="--db-uri")
    client = make_s3_client(anonymous=anonymous, max_pool_connections=s3_concurrency)
    counter = RequestCounter.attach(client)
    settings = Settings(bucket=s3_bucket, s3_prefix=s3_prefix, dry_run=dry_run, s3_concurrency=s3_concurrency)
    reconciler = Reconciler(engine, S3Storage(client, s3_bucket), settings)
    report = CleanupReport(bucket=s3_bucket, s3_prefix=s3_prefix, scope=scope, dry_run=dry_run)
    try:
        survey_scope(reconciler, report)
        report.s3_requests = dict(counter.counts)
        if output == "text":
            click.echo(render_text(report))
        if report.stale and not dry_run:
            _confirm_deletion(report, yes)
            delete_stale(reconciler, engine, report)
            report.s3_requests = dict(counter.counts)
    finally:
        engine.dispose()
    if output == "json":
        click.echo(json.dumps(report.to_json(), indent=2))
    elif dry_run and report.stale:
        click.echo("\nDry run mode: No deletions performed.\nRun with --no-dry-run to perform deletions.")
    elif not dry_run and report.stale:
        kept = f" ({len(report.reappeared)} kept: their metadata is back in S3)" if report.reappeared else ""
        rows = ", ".join(f"{n} {t}" for t, n in sorted(report.rows_deleted.items()))
        click.echo(f"\nDeleted {len(report.deleted)} stale annotations{kept}: {rows or 'no rows'}.")


def _confirm_deletion(report: CleanupReport, yes: bool) -> None:
    click.echo(
        "Warning: back up the database before deleting (e.g. pg_dump); deleted rows are also kept as JSON "
        "snapshots in annotation_quarantine.",
        err=True,
    )
    if report.nothing_found:
        # Every prefix listed empty: a wrong --s3-bucket/--s3-prefix looks exactly like this.
        click.echo(
            f"Warning: none of the {report.prefixes_listed} Annotations/ prefixes holds any metadata in "
            f"s3://{report.bucket}: check --s3-bucket and --s3-prefix. This needs an answer at the prompt.",
            err=True,
        )
        if yes or not _confirm(f"Delete all {len(report.stale)} annotations of the scope?"):
            raise CleanupError("nothing deleted: no metadata found under any prefix of the scope")
        return
    if not yes and not _confirm(f"Delete {len(report.stale)} stale annotations and all their children?"):
        raise click.Abort()


if __name__ == "__main__":
    cleanup_stale_annotations()
