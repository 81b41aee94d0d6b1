"""The S3 Inventory reconciliation, sharded through the work queue like the LIST path.

The schedule reads the inventory report once and finds the *candidates*: annotations whose
metadata key the report lacks (it may be a day old, so none of them is decided yet). It queues
them in slices, one ``inventory_shard`` message each. The work Lambda confirms a slice against
S3 within its time budget: a key confirmed absent is quarantined, a key found present is
released, and what the budget did not reach is queued again as a continuation message::

    plan = plan_inventory(ctx, "s3://inventory-bucket/cryoet-data-portal-public/daily/")
    bodies = shard_messages(plan)                        # -> the work queue
    result = confirm_shard(ctx, read_shard(body), remaining_seconds=budget)
    if result.remaining:                                 # -> the work queue again
        bodies = [continuation(read_shard(body), result.remaining)]

Before anything is written, each candidate is read again from the database: an annotation
deleted or re-pointed since the plan is skipped, never quarantined on the plan's word.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from annotation_reconciler.errors import InventoryError, InventoryTooLarge
from annotation_reconciler.ledger import Source, event_order, quarantines, untracked
from annotation_reconciler.ledger.quarantines import Opening
from annotation_reconciler.portal import annotation_rows
from annotation_reconciler.rules import lifecycle, ordering
from annotation_reconciler.rules.lifecycle import AnnotationRef
from annotation_reconciler.rules.listings import metadata_folder
from annotation_reconciler.rules.paths import KeyKind, classify_key
from annotation_reconciler.rules.scope import Scope
from annotation_reconciler.service import survey
from annotation_reconciler.service.context import SAFETY_MARGIN_S, Context
from annotation_reconciler.service.results import InventoryResult, InventorySliceResult
from annotation_reconciler.storage import inventory

MESSAGE_TYPE = "inventory_shard"
#: At most this many candidates per message, and at most this many bytes of keys (SQS takes 256 KiB).
SLICE_SIZE = 500
SLICE_BYTES = 150_000
#: How many times the candidates S3 could not confirm are asked about again, each in a message of their own.
MAX_RETRIES = 3


@dataclass
class InventoryPlan:
    """What the report says: the candidates to confirm, in key order."""

    manifest: str
    report_time: datetime.datetime
    annotations: int = 0
    inventory_metadata_keys: int = 0
    candidates: list[tuple[int, str]] = field(default_factory=list)  # (annotation id, metadata key)
    unknown: list[lifecycle.Unknown] = field(default_factory=list)
    untracked: list[str] = field(default_factory=list)  # metadata keys in the report that no row points to


@dataclass(frozen=True)
class InventoryShard:
    """One ``inventory_shard`` message, validated."""

    manifest: str
    report_time: datetime.datetime
    candidates: tuple[tuple[int, str], ...]
    attempt: int = 0  # 0: the plan's slice or its continuation; n: the n-th retry of candidates S3 could not confirm


def plan_inventory(
    ctx: Context,
    manifest_url: str,
    *,
    inventory_client: Any = None,
    remaining_seconds: Callable[[], float] | None = None,
) -> InventoryPlan:
    """Read the newest report under ``manifest_url`` and list the annotations it lacks.

    The report is read in one invocation, as a stream; when ``remaining_seconds`` runs low first, it stops
    with :class:`InventoryTooLarge` (a clear log line, instead of Lambda's own timeout). A report older than
    ``RECONCILER_INVENTORY_MAX_AGE_HOURS`` is refused with :class:`inventory.InventoryStale`.
    """
    client = inventory_client or ctx.storage.client
    location = inventory.find_manifest(client, manifest_url)
    manifest = inventory.read_manifest(client, location)
    if manifest.source_bucket != ctx.layout.bucket:
        raise InventoryError(f"{location.url} inventories bucket {manifest.source_bucket!r}, not {ctx.layout.bucket!r}")
    inventory.check_fresh(manifest, now=ctx.clock(), max_age=ctx.settings.inventory_max_age)
    present: set[str] = set()
    for n, key in enumerate(inventory.iter_present_keys(client, manifest)):
        if n % 10_000 == 0 and remaining_seconds is not None and remaining_seconds() < SAFETY_MARGIN_S:
            raise InventoryTooLarge(
                f"{location.url}: read {n} of its rows ({len(manifest.files)} files) before the time budget ran "
                "out; nothing was queued. Give the schedule Lambda more time or memory, or reconcile with LISTs "
                "(unset inventory_manifest)"
            )
        if classify_key(key) is KeyKind.METADATA:
            present.add(key)
    with ctx.engine.connect() as conn:
        refs = annotation_rows.annotations_in_scope(conn, Scope())
    plan = InventoryPlan(
        manifest=location.url, report_time=manifest.created, annotations=len(refs), inventory_metadata_keys=len(present)
    )
    for ref in refs:
        resolved = lifecycle.resolve(ref, ctx.layout)
        if isinstance(resolved, lifecycle.Unknown):
            plan.unknown.append(resolved)
        elif resolved not in present:
            plan.candidates.append((ref.id, resolved))
    # keys of one Annotations/ folder side by side: one LIST confirms them together
    plan.candidates.sort(key=lambda c: (c[1], c[0]))
    tracked = {r for ref in refs if isinstance(r := lifecycle.resolve(ref, ctx.layout), str)}
    plan.untracked = sorted(present - tracked)
    listed: dict[str, list[str]] = {}
    for key in plan.untracked:
        listed.setdefault(metadata_folder(key), []).append(key)
    with ctx.engine.begin() as conn:  # the report covers the bucket: every other open row is tracked or gone
        untracked.record(conn, listed, dataset_id=None, now=ctx.clock(), whole_bucket=True)
    return plan


def _message(
    manifest: str, report_time: datetime.datetime, candidates: Sequence[tuple[int, str]], attempt: int = 0
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": MESSAGE_TYPE,
        "manifest": manifest,
        "report_time": report_time.isoformat(),
        "candidates": [[annotation_id, key] for annotation_id, key in candidates],
    }
    if attempt:
        body["attempt"] = attempt
    return body


def shard_messages(
    plan: InventoryPlan, *, slice_size: int = SLICE_SIZE, slice_bytes: int = SLICE_BYTES
) -> list[dict[str, Any]]:
    """The plan's candidates as ``inventory_shard`` message bodies, each within SQS's size limit."""
    bodies: list[dict[str, Any]] = []
    current: list[tuple[int, str]] = []
    size = 0
    for annotation_id, key in plan.candidates:
        weight = len(key.encode()) + 16
        if current and (len(current) >= slice_size or size + weight > slice_bytes):
            bodies.append(_message(plan.manifest, plan.report_time, current))
            current, size = [], 0
        current.append((annotation_id, key))
        size += weight
    if current:
        bodies.append(_message(plan.manifest, plan.report_time, current))
    return bodies


def continuation(shard: InventoryShard, remaining: Sequence[tuple[int, str]]) -> dict[str, Any]:
    """The message that carries on where a shard's time budget ran out."""
    return _message(shard.manifest, shard.report_time, remaining, shard.attempt)


def retry(shard: InventoryShard, unknown: Sequence[lifecycle.Unknown]) -> dict[str, Any] | None:
    """The message that asks S3 again about the candidates it could not confirm (each under the key it was
    checked under), or None when they have had their retries (then they wait, counted as unknown, for the
    next report: nothing was decided for them)."""
    if shard.attempt >= MAX_RETRIES or not unknown:
        return None
    return _message(
        shard.manifest, shard.report_time, [(u.ref.id, _checked_key(u)) for u in unknown], shard.attempt + 1
    )


def _checked_key(unknown: lifecycle.Unknown) -> str:
    if unknown.key is None:
        raise ValueError(f"annotation {unknown.ref.id} has no metadata key to confirm again: {unknown.why}")
    return unknown.key


def read_shard(body: Mapping[str, Any]) -> InventoryShard:
    """Validate an ``inventory_shard`` message; raises ValueError naming what is wrong."""
    if body.get("type") != MESSAGE_TYPE:
        raise ValueError(f"not an inventory shard (type={body.get('type')!r}); expected type {MESSAGE_TYPE!r}")
    manifest = body.get("manifest")
    if not isinstance(manifest, str) or not manifest.startswith("s3://"):
        raise ValueError(f"inventory shard needs the manifest's s3:// URL, got {manifest!r}")
    raw_time = body.get("report_time")
    try:
        report_time = datetime.datetime.fromisoformat(str(raw_time))
    except ValueError:
        raise ValueError(f"inventory shard report_time must be an ISO 8601 time, got {raw_time!r}") from None
    if report_time.tzinfo is None:
        raise ValueError(f"inventory shard report_time must carry a time zone, got {raw_time!r}")
    attempt = body.get("attempt", 0)
    if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 0:
        raise ValueError(f"inventory shard attempt must be a whole number >= 0, got {attempt!r}")
    raw = body.get("candidates")
    if not isinstance(raw, list) or not raw:
        raise ValueError("inventory shard needs a non-empty list of [annotation_id, key] candidates")
    candidates: list[tuple[int, str]] = []
    for item in raw:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not isinstance(item[0], int)
            or isinstance(item[0], bool)
            or not isinstance(item[1], str)
            or classify_key(item[1]) is not KeyKind.METADATA
        ):
            raise ValueError(f"inventory shard candidate {item!r} is not [annotation_id, metadata key]")
        candidates.append((item[0], item[1]))
    return InventoryShard(manifest, report_time, tuple(candidates), attempt)


def _current_refs(ctx: Context, ids: Sequence[int]) -> dict[int, AnnotationRef]:
    with ctx.engine.connect() as conn:
        return annotation_rows.annotations_by_ids(conn, ids)


def confirm_shard(
    ctx: Context,
    shard: InventoryShard,
    *,
    remaining_seconds: Callable[[], float] | None = None,
) -> InventorySliceResult:
    """Confirm a slice's candidates against S3, one ``Annotations/`` folder at a time, until the
    time budget runs low; quarantine what is confirmed absent, release what is present."""
    result = InventorySliceResult()
    started = ordering.Stamp(ctx.clock())  # the listings below are evidence only for what came before
    presence: dict[str, bool | None] = {}
    done: list[tuple[int, str]] = []
    folders = [list(g) for _, g in groupby(shard.candidates, key=lambda c: metadata_folder(c[1]))]
    for n, folder in enumerate(folders):
        if remaining_seconds is not None and remaining_seconds() < SAFETY_MARGIN_S:
            result.remaining = [c for rest in folders[n:] for c in rest]
            break
        presence.update(survey.check_presence(ctx, [key for _, key in folder]))
        done += folder
    result.checked = len(done)
    if not done:
        return result
    current = _current_refs(ctx, [annotation_id for annotation_id, _ in done])
    missing: list[tuple[AnnotationRef, str | None]] = []
    present: list[int] = []
    for annotation_id, key in done:
        ref = current.get(annotation_id)
        if ref is None or lifecycle.resolve(ref, ctx.layout) != key:
            result.skipped.append(annotation_id)
        elif presence.get(key) is False:
            missing.append((ref, key))
        elif presence.get(key) is True:
            present.append(annotation_id)
        else:
            result.unknown.append(lifecycle.Unknown(ref, "S3 could not say", key))
    now = ctx.clock()
    with ctx.engine.begin() as conn:
        rows = event_order.newest_rows(conn, [ref.id for ref, _ in missing])
        missing = [(ref, key) for ref, key in missing if ordering.may_quarantine(rows.get(ref.id), started)]
        result.quarantined = quarantines.quarantine(
            conn,
            missing,
            Opening(
                Source.SCAN,
                f"missing from the S3 Inventory of {shard.report_time:%Y-%m-%d %H:%M} and confirmed absent",
                now,
                ctx.settings.grace_period,
            ),
        )
        event_order.stamp_open_rows(conn, [(ref.id, started) for ref, _ in missing])
        result.released = event_order.release_older(
            conn, [(i, started) for i in present], now=now, resolution="metadata present (inventory check)"
        )
    return result


def reconcile_inventory(ctx: Context, manifest_url: str, *, inventory_client: Any = None) -> InventoryResult:
    """Plan from the newest report and confirm every candidate in this process: the same two steps the
    schedule and the work queue take, without the queue (an operator's command has no Lambda time limit)."""
    plan = plan_inventory(ctx, manifest_url, inventory_client=inventory_client)
    done = confirm_shard(ctx, InventoryShard(plan.manifest, plan.report_time, tuple(plan.candidates)))
    return InventoryResult(
        manifest=plan.manifest,
        report_time=plan.report_time,
        annotations=plan.annotations,
        inventory_metadata_keys=plan.inventory_metadata_keys,
        candidates=len(plan.candidates),
        quarantined=done.quarantined,
        released=done.released,
        untracked=plan.untracked,
        unknown=plan.unknown + done.unknown,
    )


def message_size(body: Mapping[str, Any]) -> int:
    """Bytes the body takes on the queue (for tests and the slice limit's check)."""
    return len(json.dumps(body).encode())
