"""ledger/purge_claims: the purge's lease on due rows (real PostgreSQL)."""

from __future__ import annotations

import datetime

import pytest

from annotation_reconciler.ledger import purge_claims
from annotation_reconciler.local.synthetic import PortalSpec
from annotation_reconciler.service.purge import CLAIM_LEASE
from support.world import World, removed


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
