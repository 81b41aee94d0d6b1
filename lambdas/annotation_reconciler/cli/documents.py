"""The JSON documents of ``scan``, ``purge`` and ``ingest --output json``: one document on stdout, whole."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from annotation_reconciler.db_import import IngestResult
from annotation_reconciler.ledger.status import reingest_command
from annotation_reconciler.service.results import PurgeResult, ScanResult


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, default=str)


def scan_shard(r: ScanResult) -> dict[str, Any]:
    return {
        "dataset_id": r.scope.dataset_id,
        "run_ids": list(r.scope.run_ids) if r.scope.run_ids else None,
        "annotations": r.annotations,
        "prefixes_listed": r.prefixes_listed,
        "present": r.present,
        "stale": r.stale,
        "quarantined": r.quarantined,
        "released": r.released,
        "held": r.held,
        "unknown": [
            {"annotation_id": u.ref.id, "s3_metadata_path": u.ref.stored_path, "why": u.why} for u in r.unknown
        ],
        "resurrected": [{"annotation_id": a, "metadata_key": k} for a, k in r.resurrected],
        "untracked": r.untracked,
        "moved": [{"annotation_id": i, "metadata_key": k, "ingest": reingest_command(k)} for i, k in r.moved],
        "errors": r.errors,
        "over_page_limit": r.over_page_limit,
        "missing_files": r.missing_files,
        "restored_files": r.restored_files,
        "complete": r.complete,
    }


def purge(r: PurgeResult) -> dict[str, Any]:
    return {
        "dry_run": r.dry_run,
        "claimed": r.claimed,
        "deleted": r.deleted,
        "would_delete": r.would_delete,
        "released": r.released,
        "held": r.held,
        "unknown": [u.ref.id for u in r.unknown],
        "held_datasets": {
            str(d): {"open": open_rows, "total": total, "approve": f"annotation-reconciler approve --dataset-id {d}"}
            for d, (open_rows, total) in r.held_datasets.items()
        },
        "moved": [{"annotation_id": i, "metadata_key": k, "ingest": reingest_command(k)} for i, k in r.moved],
        "rows_deleted": dict(r.rows_deleted),
        "errors": r.errors,
    }


def ingest(r: IngestResult) -> dict[str, Any]:
    return {
        "dataset_id": r.dataset_id,
        "dry_run": r.dry_run,
        "ok": r.ok,
        "inserted": dict(r.inserted),
        "updated": dict(r.updated),
        "removed": dict(r.removed),
        "deleted": r.deleted,
        "voxel_spacings": [
            {
                "voxel_spacing_id": v.voxel_spacing_id,
                "prefix": v.prefix,
                "metadata_read": v.metadata_read,
                "cleanup_done": v.cleanup_done,
                "cleanup_off": v.cleanup_off,
                "deleted": v.deleted,
                "held": v.held,
                "left_in_place": [{"annotation_id": a, "why": why} for a, why in v.left_in_place],
                "problems": [str(p) for p in v.problems],
            }
            for v in r.voxel_spacings
        ],
        "skipped_scopes": r.skipped_scopes,
        "legacy": [{**dataclasses.asdict(row), "reason": row.reason} for row in r.legacy],
        "problems": [{"scope": p.scope, "key": p.key, "message": p.message} for p in r.problems],
    }
