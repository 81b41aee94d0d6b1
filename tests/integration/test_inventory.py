"""Reconciliation from an S3 Inventory report (AWS's CSV layout, written into moto)."""

from __future__ import annotations

import datetime
import gzip
import json
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from annotation_reconciler.local.inventory_writer import write_inventory
from annotation_reconciler.storage.counting import RequestCounter
from annotation_reconciler.storage.inventory import (
    InventoryError,
    find_manifest,
    iter_present_keys,
    read_manifest,
)
from support.inventory import INVENTORY_BUCKET, MANIFEST
from support.inventory import report as write_report
from support.world import World

REPORT = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


@pytest.fixture
def world(world: World, s3: Any) -> World:
    """The shared world, with a bucket for its inventory reports."""
    s3.create_bucket(Bucket=INVENTORY_BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    return world


def report(world: World, keys: list[str], created: datetime.datetime = REPORT) -> str:
    write_report(world.s3, keys, created=created)
    return MANIFEST


def test_candidates_are_confirmed_before_quarantine(world: World) -> None:
    keys = sorted(world.portal.all_keys())
    gone = world.portal.metadata_keys[:2]  # deleted before the report: absent from it and from S3
    late = world.portal.metadata_keys[2]  # created after the report: absent from it, present in S3
    world.delete(*gone)
    url = report(world, [k for k in keys if k not in gone and k != late])
    counter = RequestCounter.attach(world.s3)
    result = world.reconciler().reconcile_inventory(url)
    assert result.candidates == 3
    assert result.quarantined == sorted(world.ids[k] for k in gone)
    assert world.ids[late] not in world.ledger()
    # 1 LIST finds the newest report, 1 GET reads the manifest, 4 GETs its CSV files (171 rows, 50 a file),
    # and the three candidates share one Annotations/ prefix: one LIST confirms them all; the two absent keys share
    # it too, so one LIST with a delimiter per folder level (5, the root for the dataset folder) rules out a spelling
    # twin of their folders
    assert counter.counts == {"ListObjectsV2": 2 + 5, "GetObject": 5}


def test_newest_report_is_used(world: World) -> None:
    keys = sorted(world.portal.all_keys())
    report(world, keys, created=REPORT - datetime.timedelta(days=1))
    url = report(world, keys[:10], created=REPORT)
    location = find_manifest(world.s3, url)
    assert location.key.endswith("2026-01-01T00-00Z/manifest.json")
    assert list(iter_present_keys(world.s3, read_manifest(world.s3, location))) == keys[:10]


def test_keys_with_spaces_plus_and_unicode_round_trip(world: World) -> None:
    odd = ["10001/TS 1+2 é/a b.json", "10001/x%y/ü+.json"]
    url = report(world, odd)
    assert list(iter_present_keys(world.s3, read_manifest(world.s3, find_manifest(world.s3, url)))) == odd


def test_inventory_of_another_bucket_is_refused(world: World) -> None:
    write_inventory(
        world.s3,
        source_bucket="another-bucket",
        destination_bucket=INVENTORY_BUCKET,
        prefix="inv",
        keys=[],
        created=REPORT,
    )
    with pytest.raises(InventoryError, match="inventories bucket 'another-bucket'"):
        world.reconciler().reconcile_inventory(f"s3://{INVENTORY_BUCKET}/inv/another-bucket/daily/")
    assert world.ledger() == {}


def test_corrupt_file_aborts_before_anything(world: World) -> None:
    url = report(world, sorted(world.portal.all_keys()))
    location = find_manifest(world.s3, url)
    manifest = json.loads(world.s3.get_object(Bucket=INVENTORY_BUCKET, Key=location.key)["Body"].read())
    world.s3.put_object(Bucket=INVENTORY_BUCKET, Key=manifest["files"][0]["key"], Body=gzip.compress(b"tampered"))
    with pytest.raises(InventoryError, match="MD5 does not match"):
        world.reconciler().reconcile_inventory(url)
    assert world.ledger() == {}


def test_missing_report_is_a_clear_error(world: World) -> None:
    with pytest.raises(InventoryError, match="no inventory report"):
        world.reconciler().reconcile_inventory(f"s3://{INVENTORY_BUCKET}/nothing-here/")


def test_s3_error_during_confirmation_quarantines_nothing(world: World) -> None:
    keys = sorted(world.portal.all_keys())
    gone = world.portal.metadata_keys[0]
    world.delete(gone)
    url = report(world, [k for k in keys if k != gone])
    failing = boto3.client("s3", region_name="us-west-2")
    stub = Stubber(failing)  # the confirmation's one LIST of the key's prefix fails
    stub.add_client_error("list_objects_v2", service_error_code="SlowDown", http_status_code=503)
    with stub:
        result = world.reconciler(s3=failing).reconcile_inventory(url, inventory_client=world.s3)
        stub.assert_no_pending_responses()
    assert result.candidates == 1 and len(result.unknown) == 1 and result.quarantined == []
    assert result.unknown[0].why == "S3 could not say"
    assert world.ledger() == {}
