"""Operator commands on the same core as the Lambda handlers: scan, purge, status, approve, release, restore."""

from __future__ import annotations

import json
import shlex
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine

from annotation_reconciler import inventory_shards, operators
from annotation_reconciler.cli.common import db_options, dry_run_from, engine_from, operator_name, settings_from
from annotation_reconciler.ledger.exemptions import Released
from annotation_reconciler.reconcile import Reconciler
from annotation_reconciler.scope import Scope
from annotation_reconciler.shards import plan_shards
from annotation_reconciler.storage import S3Storage, make_s3_client

console = Console()


def reconciler_from(
    db_url: str | None,
    db_secret_arn: str | None,
    bucket: str | None,
    s3_prefix: str | None,
    dry_run: bool | None,
    endpoint_url: str | None,
) -> tuple[Reconciler, Engine]:
    settings = settings_from(
        {
            "RECONCILER_BUCKET": ("--bucket", bucket),
            "RECONCILER_S3_PREFIX": ("--s3-prefix", s3_prefix),
            "RECONCILER_DRY_RUN": ("--dry-run", dry_run),
            "RECONCILER_DB_URL": ("--db-url", db_url),
            "RECONCILER_DB_SECRET_ARN": ("--db-secret-arn", db_secret_arn),
        },
        require_db=True,
    )
    engine = engine_from(settings.db_url, settings.db_secret_arn)
    storage = S3Storage(
        make_s3_client(endpoint_url=endpoint_url, max_pool_connections=settings.s3_concurrency), settings.bucket
    )
    return Reconciler(engine, storage, settings), engine


def common_options(fn: Any) -> Any:
    for option in reversed(
        [
            click.option("--bucket", help="The portal bucket (default: $RECONCILER_BUCKET)."),
            click.option("--s3-prefix", help="The prefix stored paths use (default: s3://BUCKET/)."),
            click.option("--endpoint-url", envvar="AWS_ENDPOINT_URL", help="S3-compatible endpoint (local tests)."),
        ]
    ):
        fn = option(fn)
    return db_options(fn)


@click.command()
@common_options
@click.option("--dataset-id", type=int, help="Reconcile one dataset (default: every dataset, shard by shard).")
@click.option("--inventory", help="Use this S3 Inventory (s3://…/manifest.json or its prefix) instead of LISTs.")
@click.option("--output", type=click.Choice(["text", "json"]), default="text")
def scan(
    db_url: str | None,
    db_secret_arn: str | None,
    bucket: str | None,
    s3_prefix: str | None,
    endpoint_url: str | None,
    dataset_id: int | None,
    inventory: str | None,
    output: str,
) -> None:
    """Full reconciliation: LIST annotation prefixes, quarantine what is missing, release what is back."""
    reconciler, engine = reconciler_from(db_url, db_secret_arn, bucket, s3_prefix, None, endpoint_url)
    if inventory:
        found = inventory_shards.reconcile_inventory(reconciler, inventory)
        engine.dispose()
        if output == "json":
            click.echo(
                json.dumps(
                    {
                        "manifest": found.manifest,
                        "report_time": found.report_time.isoformat(),
                        "annotations": found.annotations,
                        "candidates": found.candidates,
                        "quarantined": found.quarantined,
                        "unknown": [{"annotation_id": u.ref.id, "why": u.why} for u in found.unknown],
                        "untracked": found.untracked,
                    },
                    indent=2,
                )
            )
            return
        for key in found.untracked:
            console.print(f"[yellow]untracked metadata: {key} (no annotation row points to it)", soft_wrap=True)
        console.print(
            f"{found.manifest} ({found.report_time:%Y-%m-%d %H:%M}): {found.annotations} annotations, "
            f"{found.candidates} missing from the inventory, {len(found.quarantined)} confirmed absent "
            f"and quarantined, {len(found.unknown)} unknown"
        )
        return
    shards = [Scope(dataset_id=dataset_id)] if dataset_id is not None else plan_shards(engine)
    table = Table("shard", "annotations", "present", "missing", "quarantined", "released", "held", "unknown")
    errors = 0
    shard_reports: list[dict[str, Any]] = []
    for shard in shards:
        r = reconciler.scan_shard(shard)
        errors += len(r.errors)
        shard_reports.append(
            {
                "dataset_id": shard.dataset_id,
                "run_ids": list(shard.run_ids) if shard.run_ids else None,
                "annotations": r.annotations,
                "present": r.present,
                "missing": r.missing,
                "quarantined": r.quarantined,
                "released": r.released,
                "held": r.held,
                "unknown": [{"annotation_id": u.ref.id, "why": u.why} for u in r.unknown],
                "untracked": r.untracked,
                "moved": [{"annotation_id": i, "metadata_key": k, "ingest": reingest_command(k)} for i, k in r.moved],
                "errors": r.errors,
            }
        )
        if output == "json":
            continue
        label = f"dataset {shard.dataset_id}" + (f" runs {list(shard.run_ids)}" if shard.run_ids else "")
        table.add_row(
            label,
            *(
                str(v)
                for v in (
                    r.annotations,
                    r.present,
                    r.missing,
                    len(r.quarantined),
                    len(r.released),
                    len(r.held),
                    len(r.unknown),
                )
            ),
        )
        for error in r.errors:
            console.print(f"[red]S3 error: {error}")
        for prefix in r.over_page_limit:
            console.print(f"[yellow]unknown: {prefix} needs more LIST pages than RECONCILER_SCAN_PAGE_LIMIT")
        if r.missing_files or r.restored_files:
            console.print(f"{label}: {r.missing_files} data files newly missing, {r.restored_files} back (see status)")
        for annotation_id, key in r.moved:
            console.print(
                f"[yellow]annotation {annotation_id} moved to {key}; re-point it: {reingest_command(key)}",
                soft_wrap=True,
            )
        for key in r.untracked:
            console.print(
                f"[yellow]untracked metadata: {key} (no annotation row points to it); ingest it: "
                f"{reingest_command(key)}",
                soft_wrap=True,
            )
    engine.dispose()
    if output == "json":
        click.echo(json.dumps({"shards": shard_reports}, indent=2))
    else:
        console.print(table)
    if errors:
        raise SystemExit(1)


@click.command()
@common_options
@click.option("--dry-run/--no-dry-run", default=None, help="Override RECONCILER_DRY_RUN (default: dry run).")
def purge(
    db_url: str | None,
    db_secret_arn: str | None,
    bucket: str | None,
    s3_prefix: str | None,
    endpoint_url: str | None,
    dry_run: bool | None,
) -> None:
    """Delete quarantined annotations past their grace period, after re-checking S3."""
    dry = dry_run_from(dry_run, default=True)
    reconciler, engine = reconciler_from(db_url, db_secret_arn, bucket, s3_prefix, dry.on, endpoint_url)
    r = reconciler.purge()
    engine.dispose()
    verb = "would purge" if r.dry_run else "purged"
    console.print(
        f"claimed {r.claimed}: {verb} {len(r.would_delete if r.dry_run else r.deleted)}, "
        f"released {len(r.released)}, held {len(r.held)}, unknown {len(r.unknown)}"
    )
    console.print(str(dry), soft_wrap=True)
    for annotation_id, new_key in r.moved:
        console.print(
            f"[yellow]annotation {annotation_id} moved to {new_key} (it carries the annotation's natural key); "
            f"not deleted. Re-point it: {reingest_command(new_key)}",
            soft_wrap=True,
        )
    for dataset_id, (open_rows, total) in r.held_datasets.items():
        console.print(
            f"[yellow]held: dataset {dataset_id} would lose {open_rows} of {total} annotations; "
            f"check, then run `annotation-reconciler approve --dataset-id {dataset_id}`"
        )


@click.command()
@db_options
@click.option("--output", type=click.Choice(["text", "json"]), default="text")
def status(db_url: str | None, db_secret_arn: str | None, output: str) -> None:
    """Quarantine counts by status and dataset, oldest quarantined, held datasets, missing files."""
    engine = engine_from(db_url, db_secret_arn)
    found = operators.status(engine)
    engine.dispose()
    oldest = found.oldest_quarantined
    report: dict[str, Any] = {
        "by_status": found.by_status,
        "by_dataset": [{"dataset_id": d, "status": s, "count": c} for d, s, c in found.by_dataset],
        "oldest_quarantined": None
        if oldest is None
        else {
            "annotation_id": oldest.annotation_id,
            "s3_metadata_path": oldest.s3_metadata_path,
            "detected_at": oldest.detected_at.isoformat(),
            "purge_after": oldest.purge_after.isoformat(),
        },
        "held_datasets": {str(d): c for d, c in found.held_datasets},
        "annotations_with_missing_files": {str(a): c for a, c in found.missing_files},
        "released_by_operator": [
            {
                "annotation_id": e.annotation_id,
                "dataset_id": e.dataset_id,
                "s3_metadata_path": e.s3_metadata_path,
                "by": e.released_by,
                "at": e.released_at.isoformat() if e.released_at else None,
            }
            for e in found.released
        ],
        "resurrected": [
            {
                "annotation_id": r.annotation_id,
                "metadata_key": r.metadata_key,
                "purged_at": r.purged_at.isoformat(),
                "found_at": r.found_at.isoformat(),
                "found_by": r.found_by,
                "reingest": reingest_command(r.metadata_key),
            }
            for r in found.resurrected
        ],
        "blind_prefixes": [
            {
                "prefix": b.prefix,
                "dataset_id": b.dataset_id,
                "since": b.first_failed_at.isoformat(),
                "last_failed_at": b.last_failed_at.isoformat(),
                "days": b.failures,
                "last_error": b.last_error,
            }
            for b in found.blind
        ],
        "untracked_metadata": [
            {
                "metadata_key": u.metadata_key,
                "dataset_id": u.dataset_id,
                "first_seen_at": u.first_seen_at.isoformat(),
                "last_seen_at": u.last_seen_at.isoformat(),
                "moved_annotation_id": u.moved_annotation_id,
                "ingest": reingest_command(u.metadata_key),
            }
            for u in found.untracked
        ],
    }
    if output == "json":
        click.echo(json.dumps(report, indent=2))
        return
    table = Table("status", "annotations")
    for name in ("quarantined", "held", "released", "purged", "restored"):
        table.add_row(name, str(found.by_status.get(name, 0)))
    console.print(table)
    if report["oldest_quarantined"]:
        o = report["oldest_quarantined"]
        console.print(
            f"oldest quarantined: annotation {o['annotation_id']} since {o['detected_at']} "
            f"(purge after {o['purge_after']})"
        )
    for dataset_id, count in found.held_datasets:
        console.print(f"[yellow]held: dataset {dataset_id}: {count} annotations await `approve --dataset-id`")
    for annotation_id, count in found.missing_files:
        console.print(f"annotation {annotation_id}: {count} data files missing from S3")
    for e in found.released:
        console.print(
            f"released by {e.released_by}: annotation {e.annotation_id} (dataset {e.dataset_id}), exempt while "
            f"its stored path is {e.s3_metadata_path}; end it: release --clear --annotation-id {e.annotation_id}",
            soft_wrap=True,
        )
    for b in found.blind:
        console.print(
            f"[red]blind prefix: {b.prefix} (dataset {b.dataset_id}) could not be listed since "
            f"{b.first_failed_at.isoformat()} ({b.failures} day(s)); last error: {b.last_error}",
            soft_wrap=True,
        )
    for u in found.untracked:
        if u.moved_annotation_id is not None:
            console.print(
                f"[yellow]annotation {u.moved_annotation_id} moved to {u.metadata_key} (it carries the annotation's "
                f"natural key; its own key is gone); re-point it: {reingest_command(u.metadata_key)}",
                soft_wrap=True,
            )
            continue
        console.print(
            f"[yellow]untracked metadata: {u.metadata_key} (no annotation row points to it; seen since "
            f"{u.first_seen_at.isoformat()}); ingest it: {reingest_command(u.metadata_key)}",
            soft_wrap=True,
        )
    for item in report["resurrected"]:
        console.print(
            f"[red]purged annotation {item['annotation_id']} has its metadata back in S3 "
            f"({item['metadata_key']}, found by {item['found_by']} at {item['found_at']}); re-ingest it: "
            f"{item['reingest']}",
            soft_wrap=True,
        )


def reingest_command(metadata_key: str) -> str:
    """The ``annotation-reconciler ingest`` command that brings back the annotation of a metadata key."""
    parts = metadata_key.split("/")
    if len(parts) < 5 or parts[2] != "Reconstructions" or not parts[3].startswith("VoxelSpacing"):
        return f"annotation-reconciler ingest --bucket BUCKET  # for {metadata_key}"
    dataset, run, spacing = parts[0], parts[1], parts[3][len("VoxelSpacing") :]
    return (
        f"annotation-reconciler ingest --bucket $RECONCILER_BUCKET --dataset-id {dataset} "
        f"--run-name {shlex.quote(run)} --voxel-spacing {spacing}"
    )


@click.command()
@db_options
@click.option("--dataset-id", type=int, required=True, help="The dataset whose held deletions may proceed.")
@click.option("--by", default=operator_name, help="Who approves (for the audit; default $USER).")
def approve(db_url: str | None, db_secret_arn: str | None, dataset_id: int, by: str) -> None:
    """Let the mass-deletion guard's held rows of a dataset be purged (S3 is still checked first)."""
    engine = engine_from(db_url, db_secret_arn)
    count = operators.approve(engine, dataset_id, by=by)
    engine.dispose()
    click.echo(f"approved {count} held annotations of dataset {dataset_id}; the next purge re-checks S3 and deletes")


@click.command()
@db_options
@click.option("--annotation-id", type=int, required=True)
@click.option("--by", default=operator_name, help="Who releases (for the audit; default $USER).")
@click.option("--clear", is_flag=True, help="End an earlier release: scans and events judge the annotation again.")
def release(db_url: str | None, db_secret_arn: str | None, annotation_id: int, by: str, clear: bool) -> None:
    """Release one annotation from quarantine: it is not purged, and no scan or event quarantines it again
    until its metadata is seen in S3 again or its stored path changes (or `release --clear`)."""
    engine = engine_from(db_url, db_secret_arn)
    if clear:
        cleared = operators.clear_release(engine, annotation_id, by=by)
        engine.dispose()
        if not cleared:
            raise click.ClickException(f"annotation {annotation_id} has no release to clear")
        click.echo(f"cleared the release of annotation {annotation_id}: the next scan or event judges it again")
        return
    done = operators.release(engine, annotation_id, by=by)
    kept = operators.exemption(engine, annotation_id) if done is Released.ALREADY else None
    engine.dispose()
    if not done:
        raise click.ClickException(f"annotation {annotation_id} has no open quarantine row (nothing changed)")
    if kept is not None:
        click.echo(
            f"annotation {annotation_id} is already released by {kept.released_by} (at {kept.released_at}), exempt "
            f"while its stored path is {kept.s3_metadata_path}: the release is kept, nothing changed"
        )
        return
    click.echo(
        f"released annotation {annotation_id} (by {by}); exempt until its metadata or stored path changes, "
        f"or `annotation-reconciler release --clear --annotation-id {annotation_id}`"
    )
