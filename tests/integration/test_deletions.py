"""deletions.delete_stale, the one deletion flow: what it records for each verdict (real PostgreSQL, moto S3)."""

from __future__ import annotations

import datetime
import logging
from typing import Any

import pytest
from sqlalchemy import text

from annotation_reconciler.ledger.models import Source
from annotation_reconciler.local.synthetic import PortalSpec
from annotation_reconciler.rules.lifecycle import Candidate, Decision, Verdict
from annotation_reconciler.rules.listings import canonical, metadata_folder
from annotation_reconciler.rules.paths import BucketLayout
from annotation_reconciler.service.deletions import LOG_IDS, Policy, delete_stale, ids_of
from annotation_reconciler.service.evidence import Surroundings, folder_siblings
from annotation_reconciler.storage import S3Storage
from support.candidates import candidate
from support.world import BUCKET, World

WHEN = datetime.datetime(2030, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)  # not "now": the flow must use the time given
LAYOUT = BucketLayout(BUCKET)


@pytest.fixture
def world_spec() -> PortalSpec:
    return PortalSpec(datasets=1, runs_per_dataset=2, annotations_per_voxel_spacing=3)


def rows(world: World) -> dict[int, Any]:
    with world.engine.connect() as conn:
        found = conn.execute(
            text("""SELECT annotation_id, status, source, reason, resolution, resolved_at, run_id, dataset_id,
                           metadata_key, metadata_key_folded FROM
                                   annotation_reconciler.annotation_quarantine ORDER BY id""")
        ).all()
    return {r.annotation_id: r for r in found}


def test_each_verdict_is_carried_out_and_recorded_with_the_time_given(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    in_first = [a for a in world.portal.annotations if a.run_name == "TS_000"]
    in_second = [a for a in world.portal.annotations if a.run_name == "TS_001"]
    doomed, moved = in_first[0], in_first[1]
    world.delete(doomed.metadata_key, *(a.metadata_key for a in in_second))  # the second run's prefix: no metadata
    with world.engine.begin() as conn:  # an open ledger row for `moved`, under an older stored path
        conn.execute(
            text("""INSERT INTO annotation_reconciler.annotation_quarantine (annotation_id,
                    s3_metadata_path, metadata_key, source, reason,
                                                       status, detected_at, purge_after)
                    VALUES (:id, 's3://b/old-1.0.json', 'old-1.0.json', 'event', 'r', 'quarantined', now(), now())"""),
            {"id": world.ids[moved.metadata_key]},
        )
        qid = conn.execute(text("SELECT id FROM annotation_reconciler.annotation_quarantine")).scalar_one()
        runs = dict(conn.execute(text("SELECT id, run_id FROM annotation")).all())
    held = in_second[0]
    storage = S3Storage(world.s3, BUCKET)
    listings: dict[str, frozenset[str] | BaseException] = {
        p: frozenset(storage.list_keys(p))
        for p in {metadata_folder(doomed.metadata_key), metadata_folder(held.metadata_key)}
    }
    unlisted = candidate(
        999_999,
        "s3://cryoet-data-portal-public/1/TS/Reconstructions/VoxelSpacing1.000/Annotations/100/x-1.0.json",
        1,
        1,
    )

    def fresh(annotation: Any) -> Candidate:
        aid = world.ids[annotation.metadata_key]
        return candidate(aid, LAYOUT.s3_path(annotation.metadata_key), 10001, runs[aid])

    aid_moved = world.ids[moved.metadata_key]
    candidates = [
        fresh(doomed),
        fresh(held),
        candidate(
            aid_moved,
            LAYOUT.s3_path(moved.metadata_key),
            10001,
            runs[aid_moved],
            quarantine_id=qid,
            quarantined_path="s3://b/old-1.0.json",
            quarantined_key="old-1.0.json",
        ),
        unlisted,
    ]
    caplog.set_level(logging.INFO, logger="annotation_reconciler.service.deletions")
    with world.engine.begin() as conn:
        outcome = delete_stale(
            conn,
            candidates,
            listings,
            LAYOUT,
            Policy(None),
            source=Source.IMPORTER,
            reason="gone",
            now=WHEN,
            # no twin beside their folders (the dataset folder's neighbours not asked: the empty prefix is held)
            neighbours=Surroundings(siblings=folder_siblings(storage, listings, concurrency=1)),
        )

    ledger = rows(world)
    gone, kept, released = world.ids[doomed.metadata_key], world.ids[held.metadata_key], aid_moved
    assert outcome.deleted == [gone] and outcome.held == [kept] and outcome.released == [released]
    assert [u.ref.id for u in outcome.unknown] == [999_999]
    assert (ledger[gone].status, ledger[gone].source, ledger[gone].resolved_at) == ("purged", "importer", WHEN)
    assert ledger[gone].metadata_key == doomed.metadata_key
    assert ledger[gone].metadata_key_folded == canonical(doomed.metadata_key)
    assert (ledger[kept].status, ledger[kept].run_id, ledger[kept].dataset_id) == ("held", runs[kept], 10001)
    assert ledger[kept].metadata_key == held.metadata_key and "no annotation metadata" in ledger[kept].reason
    assert (ledger[released].status, ledger[released].resolved_at) == ("released", WHEN)
    assert "stored path changed" in ledger[released].resolution
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        m.startswith("1 annotation left in place, S3 or the configuration could not say (999999); first: ")
        and "not under a completely listed prefix" in m
        for m in messages
    )
    assert any(m.startswith(f"annotation {released} released: stored path changed") for m in messages)
    assert any(m.startswith(f"held 1 annotation for an operator ({kept}): suspicious") for m in messages)


def test_ids_of_names_the_first_ids_and_counts_the_rest() -> None:
    def decision(aid: int) -> Decision:
        return Decision(candidate(aid, "p"), Verdict.UNKNOWN, None, "r")

    assert ids_of([decision(3), decision(1)]) == "3, 1"
    many = [decision(i) for i in range(LOG_IDS + 5)]
    assert ids_of(many) == ", ".join(str(i) for i in range(LOG_IDS)) + " and 5 more"
    assert ids_of([decision(i) for i in range(LOG_IDS)]) == ", ".join(str(i) for i in range(LOG_IDS))
