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

from annotation_reconciler.cli.common import UsageError, engine_from, settings_from
from annotation_reconciler.deletions import Policy, delete_stale
from annotation_reconciler.ledger.models import Source
from annotation_reconciler.lifecycle import AnnotationRef, Candidate, Unverifiable, Verdict, prefixes_to_list
from annotation_reconciler.paths import BucketLayout
from annotation_reconciler.portal import annotation_rows
from annotation_reconciler.reconcile import Reconciler, utcnow
from annotation_reconciler.scope import Scope
from annotation_reconciler.settings import DEFAULT_S3_CONCURRENCY, MAX_S3_CONCURRENCY, validate_bucket
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
    held: bool  # stale but suspicious (its prefix listed no metadata at all, or the guard): needs an answer
    reason: str


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
    held_back: list[int] = field(default_factory=list)  # held, not approved: recorded as held, not deleted
    rows_deleted: dict[str, int] = field(default_factory=dict)
    s3_requests: dict[str, int] = field(default_factory=dict)

    @property
    def held(self) -> list[Stale]:
        return [s for s in self.stale if s.held]

    def to_json(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "s3_prefix": self.s3_prefix,
            "scope": self.scope.describe(),
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
                    "held": s.held,
                    "reason": s.reason,
                }
                for s in self.stale
            ],
            "unverifiable": [
                {"annotation_id": u.ref.id, "run_id": u.ref.run_id, "s3_metadata_path": u.ref.stored_path, "why": u.why}
                for u in self.unverifiable
            ],
            "reappeared": self.reappeared,
            "deleted": self.deleted,
            "held_back": self.held_back,
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
        lines += [f"    - Annotation ID {s.ref.id}: {s.ref.stored_path}" + (" (held)" if s.held else "") for s in items]
    if report.held:
        lines.append("")
        lines.append(f"{len(report.held)} of them are held (suspicious): {report.held[0].reason}")
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


def survey_scope(reconciler: Reconciler, report: CleanupReport, max_fraction: float | None) -> None:
    """Fill the report's stale and unverifiable annotations; raise CleanupError on any S3 error."""
    found = reconciler.survey(report.scope, max_fraction=max_fraction)
    if found.errors:
        first = found.errors[0]
        raise CleanupError(
            f"S3 error, nothing deleted: {first.operation} s3://{first.bucket}/{first.key} failed "
            f"({first.code or type(first.cause).__name__}: {first.cause})"
            + (f"; and {len(found.errors) - 1} more prefixes" if len(found.errors) > 1 else "")
        )
    report.annotations = found.annotations
    report.prefixes_listed = found.prefixes_listed
    stale = []
    for d in found.decisions.items:
        if d.verdict in (Verdict.DELETE, Verdict.HELD) and d.key is not None:
            c = d.candidate
            ref = AnnotationRef(c.annotation_id, c.stored_path or "", c.dataset_id, c.run_id)
            stale.append(Stale(ref, d.key, d.verdict is Verdict.HELD, d.reason))
        elif d.verdict is Verdict.UNKNOWN:
            c = d.candidate
            report.unverifiable.append(
                Unverifiable(AnnotationRef(c.annotation_id, c.stored_path or "", None, c.run_id), d.reason)
            )
    report.stale = sorted(stale, key=lambda s: (s.ref.run_id or 0, s.ref.id))
    report.unverifiable.sort(key=lambda u: u.ref.id)


def delete_stale_annotations(
    reconciler: Reconciler, engine: Engine, report: CleanupReport, *, approve_held: bool, max_fraction: float | None
) -> None:
    """List the stale keys' prefixes again, then hand each batch, read afresh in its own transaction, to
    the one deletion flow: whatever came back is kept, what is still absent is deleted (held rows only
    when the operator approved them; otherwise they are recorded as held in the ledger)."""
    targets = list(report.stale)
    listings, _ = reconciler.list_prefixes(prefixes_to_list(s.key for s in targets))
    failed = [p for p, answer in listings.items() if isinstance(answer, BaseException)]
    if failed:
        raise CleanupError(
            f"S3 error at the re-check, nothing deleted: {len(failed)} prefixes could not be listed, "
            f"e.g. s3://{report.bucket}/{failed[0]}: {listings[failed[0]]}"
        )
    neighbours = reconciler.neighbours(listings)  # an empty prefix in a healthy dataset is ordinary
    totals: dict[str, int] = defaultdict(int)
    policy = Policy(max_fraction)
    for start in range(0, len(targets), BATCH_SIZE):
        batch = targets[start : start + BATCH_SIZE]
        approved = {s.ref.id for s in batch if s.held and approve_held}
        with engine.begin() as conn:
            current = annotation_rows.annotations_by_ids(conn, [s.ref.id for s in batch])
            candidates = [
                Candidate(r.id, r.stored_path, r.dataset_id, r.run_id, approved=r.id in approved)
                for r in (current[i] for i in sorted(current))
            ]
            outcome = delete_stale(
                conn,
                candidates,
                listings,
                reconciler.layout,
                policy,
                source=Source.CLI,
                reason=REASON,
                now=utcnow(),
                neighbours=neighbours,
            )
        for table, count in outcome.rows_deleted.items():
            totals[table] += count
        by_id = {s.ref.id: s for s in batch}
        for annotation_id in outcome.deleted:
            item = by_id[annotation_id]
            log.info("deleted annotation %d (run %s): %s", annotation_id, item.ref.run_id, item.ref.stored_path)
        present = [d.candidate.annotation_id for d in outcome.decisions.of(Verdict.RELEASE)]
        for annotation_id in present:
            log.warning("annotation %d kept: its metadata is back in S3", annotation_id)
        report.reappeared += present
        report.deleted += outcome.deleted
        report.held_back += outcome.held
        report.unverifiable += [
            Unverifiable(AnnotationRef(d.candidate.annotation_id, d.candidate.stored_path or ""), d.reason)
            for d in outcome.unknown
        ]
    report.rows_deleted = dict(totals)


def _confirm(question: str) -> bool:
    return click.confirm(question, default=False, err=True)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--dataset-id", type=int, help="Cleanup annotations for specific dataset")
@click.option("--run-id", type=int, help="Cleanup annotations for specific run")
@click.option("--voxel-spacing-id", type=int, help="Cleanup annotations for specific voxel spacing")
@click.option("--dry-run/--no-dry-run", default=True, help="Show what would be deleted without deleting")
@click.option("--db-uri", type=str, help="Database URI, password percent-encoded (default: $RECONCILER_DB_URL)")
@click.option(
    "--db-secret-arn",
    envvar="RECONCILER_DB_SECRET_ARN",
    help="Secrets Manager secret (RDS JSON) with the credentials (default: $RECONCILER_DB_SECRET_ARN)",
)
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
@click.option(
    "--approve-held",
    is_flag=True,
    default=False,
    help="Also delete the held (suspicious) annotations without asking; --yes alone leaves them held",
)
@click.option(
    "--max-purge-fraction",
    type=click.FloatRange(0, 1, min_open=True),
    default=1.0,
    show_default=True,
    help="Hold a dataset's deletions when they exceed this fraction of its annotations (the purge uses 0.1)",
)
@click.option("--output", type=click.Choice(["text", "json"]), default="text", help="Report format")
def cleanup_stale_annotations(
    dataset_id: int | None,
    run_id: int | None,
    voxel_spacing_id: int | None,
    dry_run: bool,
    db_uri: str | None,
    db_secret_arn: str | None,
    s3_bucket: str,
    s3_prefix: str,
    anonymous: bool,
    s3_concurrency: int,
    yes: bool,
    approve_held: bool,
    max_purge_fraction: float,
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
    settings = settings_from(
        {
            "RECONCILER_BUCKET": ("--s3-bucket", s3_bucket),
            "RECONCILER_S3_PREFIX": ("--s3-prefix", s3_prefix),
            "RECONCILER_DRY_RUN": ("--dry-run", dry_run),
            "RECONCILER_S3_CONCURRENCY": ("--s3-concurrency", s3_concurrency),
        }
    )
    scope = Scope.of(dataset_id=dataset_id, run_id=run_id, voxel_spacing_id=voxel_spacing_id)
    if scope.is_everything:
        click.echo("Warning: no --dataset-id, --run-id or --voxel-spacing-id: every annotation is checked.", err=True)
        if not yes and not _confirm("Scan every annotation in the database?"):
            raise click.Abort()
    engine = engine_from(db_uri, db_secret_arn, option="--db-uri")
    client = make_s3_client(anonymous=anonymous, max_pool_connections=s3_concurrency)
    counter = RequestCounter.attach(client)
    reconciler = Reconciler(engine, S3Storage(client, s3_bucket), settings)
    report = CleanupReport(bucket=s3_bucket, s3_prefix=s3_prefix, scope=scope, dry_run=dry_run)
    try:
        survey_scope(reconciler, report, max_purge_fraction)
        report.s3_requests = dict(counter.counts)
        if output == "text":
            click.echo(render_text(report))
        if report.stale and not dry_run:
            approve = _confirm_deletion(report, yes, approve_held)
            delete_stale_annotations(reconciler, engine, report, approve_held=approve, max_fraction=max_purge_fraction)
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
        if report.held_back:
            click.echo(
                f"{len(report.held_back)} held annotations were not deleted; they are recorded as held: "
                "check them, then `annotation-reconciler approve --dataset-id N` (or run again with --approve-held)."
            )


def _confirm_deletion(report: CleanupReport, yes: bool, approve_held: bool) -> bool:
    """Ask before deleting; returns whether the held annotations are approved too."""
    click.echo(
        "Warning: back up the database before deleting (e.g. pg_dump); deleted rows are also kept as JSON "
        "snapshots in annotation_quarantine.",
        err=True,
    )
    held = report.held
    ordinary = len(report.stale) - len(held)
    if ordinary and not yes and not _confirm(f"Delete {ordinary} stale annotations and all their children?"):
        raise click.Abort()
    if not held:
        return False
    click.echo(
        f"Warning: {len(held)} annotations are held as suspicious ({held[0].reason}); a wrong --s3-bucket or "
        "--s3-prefix looks exactly like this: check --s3-bucket and --s3-prefix.",
        err=True,
    )
    if approve_held:
        return True
    if yes:
        if not ordinary:
            raise CleanupError(
                f"nothing deleted: all {len(held)} stale annotations are held; answer the prompt (without --yes) "
                "or pass --approve-held"
            )
        return False
    if _confirm(f"Delete the {len(held)} held annotations too?"):
        return True
    if not ordinary:
        raise CleanupError("nothing deleted: the held annotations were not approved")
    return False


if __name__ == "__main__":
    cleanup_stale_annotations()
