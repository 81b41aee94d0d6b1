"""Where the integration tests start from: the reconciler at the shipped guard default, a key removed by its event,
three of a dataset's five purged, one annotation quarantined past its grace period; and the ledger's rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, text

from annotation_reconciler.service.reconciler import Reconciler
from annotation_reconciler.service.results import PurgeResult
from support.world import World, removed

#: The shipped default of the mass-deletion guard (settings.py, infra/env/examples/*.json).
DEFAULTS = {"RECONCILER_MAX_PURGE_FRACTION": "0.1"}


def reconciler(world: World, **env: str) -> Reconciler:
    return world.reconciler(**{**DEFAULTS, **env})


def removed_by_event(world: World, index: int, **env: str) -> tuple[str, int, Reconciler]:
    """``world.portal.metadata_keys[index]`` deleted and its Removed event applied: (key, annotation id, reconciler)."""
    key = world.portal.metadata_keys[index]
    world.delete(key)
    r = reconciler(world, **env)
    r.apply_changes(removed(key))
    return key, world.ids[key], r


def ledger_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT * FROM annotation_reconciler.annotation_quarantine ORDER BY id")).all())


def three_of_five_purged(small: World) -> tuple[list[str], Reconciler, PurgeResult]:
    """Three of dataset 10001's five metadata files removed (their events delivered), then the purge."""
    stale_keys = [a.metadata_key for a in small.portal.annotations if a.dataset_id == 10001][:3]
    small.delete(*stale_keys)
    r = reconciler(small)
    r.apply_changes(removed(*stale_keys))
    small.clock.advance(hours=2)
    return stale_keys, r, r.purge()


def quarantined_past_grace(world: World) -> tuple[Reconciler, str, int]:
    """The first annotation's metadata deleted, its Removed event applied, the grace period over."""
    key = world.portal.metadata_keys[0]
    world.delete(key)
    r = world.reconciler()
    r.apply_changes(removed(key))
    world.clock.advance(hours=2)
    return r, key, world.ids[key]
