"""db_import/finders.sized_listing: every object under a prefix with its size, over every page of the listing, and
nothing for an empty prefix (the sizes the importer writes into ``annotation_file.file_size``). moto S3."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.stub import Stubber

from annotation_reconciler.db_import.finders import list_folders, sized_listing
from annotation_reconciler.errors import StorageError
from annotation_reconciler.storage.s3 import S3Storage
from support.world import BUCKET


def test_a_listing_of_more_than_one_page_keeps_every_page(s3: Any) -> None:
    prefix = "10001/TS_000/Reconstructions/VoxelSpacing13.480/Annotations/100/ribosome.zarr/"
    chunks = [(f"{prefix}0/{i:05d}", i % 7 + 1) for i in range(1003)]  # one LIST page holds 1,000 keys
    for key, size in chunks:
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"x" * size)
    s3.put_object(Bucket=BUCKET, Key="10001/elsewhere", Body=b"no")
    assert sized_listing(S3Storage(s3, BUCKET), prefix) == chunks


def test_an_empty_prefix_lists_nothing(s3: Any) -> None:
    assert sized_listing(S3Storage(s3, BUCKET), "10001/nothing/here/") == []


def test_a_failed_listing_is_a_storage_error_that_names_the_request_the_bucket_and_the_prefix(s3: Any) -> None:
    prefix = "10001/TS_000/Reconstructions/VoxelSpacing13.480/Annotations/100/"
    with Stubber(s3) as stub:
        stub.add_client_error("list_objects_v2", service_error_code="SlowDown", http_status_code=503)
        with pytest.raises(StorageError) as failed:
            sized_listing(S3Storage(s3, BUCKET), prefix)
    assert (failed.value.operation, failed.value.bucket, failed.value.key, failed.value.code) == (
        "ListObjectsV2",
        BUCKET,
        prefix,
        "SlowDown",
    )
    assert str(failed.value).startswith(f"S3 ListObjectsV2 failed for s3://{BUCKET}/{prefix}: SlowDown")


def test_the_folders_under_a_prefix_are_named_whole_over_every_page(s3: Any) -> None:
    """list_folders: one LIST with a delimiter, its pages of 1,000 common prefixes all kept; a name is cut only of
    its trailing slash (a folder named ``TS_X`` keeps its ``X``)."""
    names = [f"TS_{i:04d}" for i in range(1001)] + ["TS_X"]
    for name in names:
        s3.put_object(Bucket=BUCKET, Key=f"10001/{name}/meta.json", Body=b"{}")
    s3.put_object(Bucket=BUCKET, Key="10001/dataset_metadata.json", Body=b"{}")  # an object, not a folder
    assert list_folders(S3Storage(s3, BUCKET), "10001/") == names
