"""The synthetic portal writes the layout and the rows it claims."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any
from urllib.parse import quote_plus

import boto3
import pytest
from sqlalchemy import Engine, text

from annotation_reconciler.local.synthetic import PortalSpec, build_portal
from annotation_reconciler.local.synthetic_bucket import documents, write_bucket
from annotation_reconciler.local.synthetic_rows import write_rows
from annotation_reconciler.rules.paths import BucketLayout, KeyKind, classify_key
from support.seed import in_process_backend, put_objects
from support.world import PORTAL_TABLES, table_counts

SPEC = PortalSpec(
    datasets=2,
    runs_per_dataset=3,
    voxel_spacings_per_run=2,
    annotations_per_voxel_spacing=3,
    zarr_chunks_per_annotation=2,
    odd_run_names=True,
)


def _all_keys(s3: Any, bucket: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def test_bucket_layout(s3: Any) -> None:
    portal = build_portal(SPEC)
    written = write_bucket(s3, portal)
    keys = _all_keys(s3, SPEC.bucket)
    annotations = 2 * 3 * 2 * 3
    # per annotation: metadata + ndjson + mrc + .zattrs + caption decoy + 2 zarr chunks = 7
    assert len(keys) == written == 2 + 2 * 3 + annotations * 7
    kinds = Counter(classify_key(k) for k in keys)
    assert kinds[KeyKind.METADATA] == annotations
    assert kinds[KeyKind.DATA_FILE] == annotations * 6
    assert sum(k.endswith("_globalcaption.json") for k in keys) == annotations
    assert "10001/TS 1+2 é/run_metadata.json" in keys
    doc = json.loads(s3.get_object(Bucket=SPEC.bucket, Key=portal.annotations[0].metadata_key)["Body"].read())
    assert doc["annotation_ingest_id"] == "100-ribosome-1.0"
    assert {f["shape"] for f in doc["files"]} == {"Point", "SegmentationMask"}
    for f in doc["files"]:
        if f["format"] != "zarr":
            assert f["path"] in keys


def _listing(s3: Any, bucket: str) -> list[tuple[str, int, str, str, bytes]]:
    """Every object as the S3 API shows it: key, size, ETag, storage class and body."""
    return [
        (o["Key"], o["Size"], o["ETag"], o["StorageClass"], s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read())
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in page.get("Contents", [])
    ]


def test_the_tests_fast_seeding_fills_the_bucket_as_the_s3_api_does(s3: Any) -> None:
    """support/seed.py writes straight into in-process moto: what the S3 API then shows must be what write_bucket's
    PutObjects give, object for object (the same keys, sizes, ETags, storage classes and bodies), and a seeded
    object's deletion must notify as the API's would (moto reads the deleted object's ETag for the event)."""
    portal = build_portal(PortalSpec(datasets=1, runs_per_dataset=2, odd_run_names=True))
    write_bucket(s3, portal)
    by_api = _listing(s3, SPEC.bucket)
    s3.create_bucket(Bucket="seeded", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    sqs = boto3.client("sqs", region_name="us-west-2")
    queue = sqs.create_queue(QueueName="seeded-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket="seeded",
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectRemoved:*"]}]},
    )
    assert in_process_backend(s3, "seeded") is not None  # the fast path is the one taken
    assert put_objects(s3, "seeded", documents(portal)) == len(by_api) > 1
    key, _size, etag, _class, _body = by_api[0]
    s3.delete_object(Bucket="seeded", Key=key)  # before anything reads the seeded objects
    bodies = [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]]
    removed = [r["s3"]["object"] for b in bodies for r in b.get("Records", [])]
    assert [(o["key"], o["eTag"]) for o in removed] == [(quote_plus(key), etag.strip('"'))]
    assert _listing(s3, "seeded") == by_api[1:]


@pytest.mark.parametrize("style", ["s3", "relative", "bucket", "mixed"])
def test_rows(engine: Engine, style: str) -> None:
    spec = PortalSpec(
        datasets=2,
        runs_per_dataset=2,
        annotations_per_voxel_spacing=4,
        path_style=style,  # type: ignore[arg-type]
        legacy_every=4,
    )
    portal = build_portal(spec)
    ids = write_rows(engine, portal)
    layout = BucketLayout.from_prefix(spec.bucket)
    counts = table_counts(engine, PORTAL_TABLES)
    with engine.connect() as conn:
        paths = dict(conn.execute(text("SELECT id, s3_metadata_path FROM annotation")).all())
        legacy = conn.execute(text("SELECT count(*) FROM annotation WHERE tomogram_voxel_spacing_id IS NULL")).scalar()
    assert counts == {
        "dataset": 2,
        "run": 4,
        "tomogram_voxel_spacing": 4,
        "annotation": 16,
        "annotation_shape": 32,
        "annotation_file": 48,
        "annotation_author": 32,
        "annotation_method_link": 16,
    }
    assert legacy == 4
    assert {layout.to_key(p): i for i, p in paths.items()} == ids
    prefixes = {p.split("10001/")[0] for p in paths.values() if "10001/" in p}
    expected = {
        "s3": {"s3://cryoet-data-portal-public/"},
        "relative": {""},
        "bucket": {"cryoet-data-portal-public/"},
    }.get(style)
    assert prefixes == (expected or {"s3://cryoet-data-portal-public/", "", "cryoet-data-portal-public/"})


def test_rows_twice_appends_with_new_ids(engine: Engine) -> None:
    first = write_rows(engine, build_portal(PortalSpec(datasets=1, runs_per_dataset=1)))
    second = write_rows(engine, build_portal(PortalSpec(datasets=1, runs_per_dataset=1, first_dataset_id=20001)))
    assert not set(first.values()) & set(second.values())
