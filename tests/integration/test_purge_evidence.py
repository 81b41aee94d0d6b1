"""The purge deletes only on proof that the row's current metadata key is absent (the ways a review once
deleted valid annotations, issue 13): an S3 error, a key spelled differently in S3, a wrong prefix setting
are unknown; a stored path rewritten since the quarantine is judged as it is now. Real PostgreSQL, moto S3."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.stub import Stubber
from sqlalchemy import Engine, text

from annotation_reconciler.local.synthetic import PortalSpec
from annotation_reconciler.rules.scope import Scope
from support.world import BUCKET, World, make_world, removed


def rewrite_path(world: World, annotation_id: int, stored_path: str) -> None:
    """What the portal's own importer does when metadata moves: the row now points at the new key."""
    with world.engine.begin() as conn:
        conn.execute(
            text("UPDATE annotation SET s3_metadata_path = :p WHERE id = :id"), {"p": stored_path, "id": annotation_id}
        )


def test_s3_error_at_purge_recheck_deletes_nothing(world: World) -> None:
    key = world.portal.metadata_keys[0]
    world.delete(key)
    world.reconciler().apply_changes(removed(key))
    world.clock.advance(hours=2)
    failing = boto3.client("s3", region_name="us-west-2")  # its one LIST fails with a 503 (SlowDown)
    with Stubber(failing) as stub:
        stub.add_client_error("list_objects_v2", service_error_code="SlowDown", http_status_code=503)
        result = world.reconciler(s3=failing).purge()
        stub.assert_no_pending_responses()
    assert result.deleted == [] and [u.ref.id for u in result.unknown] == [world.ids[key]]
    assert world.ids[key] in world.annotation_ids() and world.ledger()[world.ids[key]] == "quarantined"


def test_purge_judges_the_current_row_not_the_ledger_copy(world: World) -> None:
    """Metadata moved to another Annotations/NNN/ folder; the row was rewritten after the Removed event."""
    old = world.portal.metadata_keys[0]
    victim = world.ids[old]
    new = old.replace("/Annotations/100/", "/Annotations/177/")
    world.s3.copy_object(Bucket=BUCKET, Key=new, CopySource={"Bucket": BUCKET, "Key": old})
    world.delete(old)
    reconciler = world.reconciler()
    assert reconciler.apply_changes(removed(old)).quarantined == [victim]
    rewrite_path(world, victim, f"s3://{BUCKET}/{new}")
    world.clock.advance(hours=2)
    result = reconciler.purge()
    assert result.deleted == [] and result.released == [victim]
    assert victim in world.annotation_ids()
    with world.engine.connect() as conn:
        resolution = conn.execute(
            text("SELECT resolution FROM annotation_reconciler.annotation_quarantine")
        ).scalar_one()
    assert "stored path changed" in resolution and new in resolution


def test_purge_never_deletes_on_a_key_spelled_differently_in_s3(engine: Engine, s3: Any, db_url: str) -> None:
    """The row holds …/ribosome-protéine-1.0.json in NFC; S3 holds the NFD spelling of the same name."""
    world = make_world(engine, s3, db_url, PortalSpec(datasets=1, runs_per_dataset=1))
    key = world.portal.metadata_keys[0]
    victim = world.ids[key]
    folder = key.rsplit("/", 1)[0]
    nfc, nfd = f"{folder}/ribosome-prot\u00e9ine-1.0.json", f"{folder}/ribosome-prote\u0301ine-1.0.json"
    rewrite_path(world, victim, f"s3://{BUCKET}/{nfc}")
    world.delete(key)
    world.restore(nfd)
    reconciler = world.reconciler()
    scan = reconciler.scan_shard(Scope(dataset_id=world.portal.dataset_ids[0]))
    assert victim not in scan.quarantined and any("differs only in spelling" in u.why for u in scan.unknown)
    reconciler.apply_changes(removed(nfc))  # an event for the NFC key (as if it had existed): quarantined
    world.clock.advance(hours=2)
    result = reconciler.purge()
    assert result.deleted == [] and [u.ref.id for u in result.unknown] == [victim] and victim in world.annotation_ids()


def test_a_wrong_prefix_setting_deletes_nothing_quarantined_under_the_right_one(
    engine: Engine, s3: Any, db_url: str
) -> None:
    """Rows with relative stored paths, quarantined under the right root; then RECONCILER_S3_PREFIX is changed."""
    world = make_world(engine, s3, db_url, PortalSpec(datasets=1, runs_per_dataset=2, path_style="relative"))
    key = world.portal.metadata_keys[0]
    victim = world.ids[key]
    world.delete(key)
    assert world.reconciler().apply_changes(removed(key)).quarantined == [victim]
    world.clock.advance(hours=2)
    wrong = world.reconciler(RECONCILER_S3_PREFIX=f"s3://{BUCKET}/staging/")
    result = wrong.purge()
    assert result.deleted == [] and [u.ref.id for u in result.unknown] == [victim] and victim in world.annotation_ids()
    assert world.ledger()[victim] == "quarantined"
    assert world.reconciler().purge().deleted == [victim]  # the right setting purges it


def test_a_moved_key_that_goes_missing_is_quarantined_again_under_its_new_path(world: World) -> None:
    """Quarantined under the old key, the row rewritten to a new key that then disappears as well: the next
    finding re-quarantines under the new key (fresh grace), so the purge can act on the right evidence."""
    old = world.portal.metadata_keys[0]
    victim = world.ids[old]
    new = old.replace("/Annotations/100/", "/Annotations/150/")
    world.delete(old)
    reconciler = world.reconciler()
    reconciler.apply_changes(removed(old))
    rewrite_path(world, victim, f"s3://{BUCKET}/{new}")  # the metadata moved; its new copy is gone too
    scan = reconciler.scan_shard(Scope(dataset_id=world.portal.annotations[0].dataset_id))
    assert victim in scan.quarantined
    with world.engine.connect() as conn:
        row = conn.execute(text("SELECT metadata_key, status FROM annotation_reconciler.annotation_quarantine")).one()
    assert tuple(row) == (new, "quarantined")
    world.clock.advance(hours=2)
    assert reconciler.purge().deleted == [victim]
