"""ledger/purge_claims: the purge's lease on due rows (real PostgreSQL)."""

from __future__ import annotations

import dataclasses
import datetime

import pytest
from sqlalchemy import text

from annotation_reconciler.ledger import purge_claims
from annotation_reconciler.local.synthetic import PortalSpec
from annotation_reconciler.service.purge import CLAIM_LEASE
from support.world import BUCKET, World, removed


@pytest.fixture
def world_spec() -> PortalSpec:
    return PortalSpec(datasets=1, runs_per_dataset=1, annotations_per_voxel_spacing=2)


def test_a_claim_leases_the_due_rows_until_its_lease_runs_out(world: World) -> None:
    """Found by make mutate (a lease ending before it began survived): a purge that dies after claiming keeps
    other purges off its rows for exactly CLAIM_LEASE, then anyone may take them."""
    keys = world.portal.metadata_keys[:2]
    world.delete(*keys)
    world.reconciler().apply_changes(removed(*keys))
    now = world.clock() + datetime.timedelta(hours=2)

    def claim(at: datetime.datetime) -> list[int]:
        with world.engine.begin() as conn:
            return [c.annotation_id for c in purge_claims.claim_due(conn, now=at, limit=10, lease=CLAIM_LEASE)]

    assert sorted(claim(now)) == sorted(world.ids[k] for k in keys)
    assert claim(now + CLAIM_LEASE - datetime.timedelta(microseconds=1)) == []
    assert sorted(claim(now + CLAIM_LEASE)) == sorted(world.ids[k] for k in keys)


def _ledger_ids(world: World) -> dict[int, int]:
    with world.engine.connect() as conn:
        rows = conn.execute(text("SELECT annotation_id, id FROM annotation_reconciler.annotation_quarantine")).all()
    return {r[0]: r[1] for r in rows}


def test_a_claim_and_its_lock_carry_the_rows_ledger_state_exactly(world: World) -> None:
    """What the purge judges a row on, should it be gone from the portal: its ledger id, dataset, quarantined path
    and key, and whether an operator approved it (as the lock reads it again)."""
    keys = world.portal.metadata_keys[:2]
    world.delete(*keys)
    reconciler = world.reconciler()
    reconciler.apply_changes(removed(*keys))
    ledger = _ledger_ids(world)
    dataset = world.portal.dataset_ids[0]
    expected = [
        purge_claims.Claim(ledger[world.ids[k]], world.ids[k], dataset, f"s3://{BUCKET}/{k}", k, False)
        for k in sorted(keys, key=lambda k: ledger[world.ids[k]])
    ]
    now = world.clock() + datetime.timedelta(hours=2)
    with world.engine.begin() as conn:
        claims = purge_claims.claim_due(conn, now=now, limit=10, lease=CLAIM_LEASE)
    assert claims == expected
    with world.engine.begin() as conn:  # an operator's approval meanwhile, as the ledger records it
        conn.execute(text("UPDATE annotation_reconciler.annotation_quarantine SET approved_at = :t"), {"t": now})
        locked = purge_claims.lock_claims(conn, claims)
    assert locked == [dataclasses.replace(c, approved=True) for c in expected]


def test_the_purge_keeps_the_first_2000_characters_of_an_error_or_of_why_a_row_is_unknown(world: World) -> None:
    key = world.portal.metadata_keys[0]
    world.delete(key)
    world.reconciler().apply_changes(removed(key))
    row = _ledger_ids(world)[world.ids[key]]
    long = "".join(str(i % 10) for i in range(2500))
    with world.engine.begin() as conn:
        purge_claims.mark_failed(conn, row, error=long, now=world.clock())
        purge_claims.mark_unknown(conn, [(row, long[::-1])])
    with world.engine.connect() as conn:
        error, why = conn.execute(
            text("SELECT purge_error, unknown_reason FROM annotation_reconciler.annotation_quarantine WHERE id = :i"),
            {"i": row},
        ).one()
    assert error == long[:2000] and why == long[::-1][:2000]
