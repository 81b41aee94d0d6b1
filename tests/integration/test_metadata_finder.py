"""db_import/finders: the metadata documents the importer finds (a dataset's, its runs', a voxel spacing's
annotations), and the problems that keep it from cleaning a scope up, each naming the scope and the key or prefix it
is about. moto S3."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.stub import Stubber

from annotation_reconciler.db_import.base import FoundItem, ImportProblem
from annotation_reconciler.db_import.finders import (
    DatasetFinder,
    MetadataFileFinder,
    RunFinder,
    VoxelSpacingFinder,
    list_folders,
)
from annotation_reconciler.errors import StorageError
from annotation_reconciler.storage.s3 import S3Storage
from support.world import BUCKET

PREFIX = "10001/TS_000/Reconstructions/VoxelSpacing13.480/Annotations/"


def test_a_failed_listing_is_one_problem_of_the_prefix_which_is_the_scope_unless_one_is_given(s3: Any) -> None:
    with Stubber(s3) as stub:
        stub.add_client_error("list_objects_v2", service_error_code="AccessDenied", http_status_code=403)
        found = MetadataFileFinder(S3Storage(s3, BUCKET), PREFIX, {}).find()
    assert found.items == [] and found.listings == {} and len(found.problems) == 1
    problem = found.problems[0]
    assert (problem.scope, problem.key) == (PREFIX, PREFIX)
    assert problem.message.startswith(
        f"listing failed: S3 ListObjectsV2 failed for s3://{BUCKET}/{PREFIX}: AccessDenied"
    )
    assert str(problem) == f"{PREFIX}: {problem.message}"  # the key is the scope: named once


def test_an_unreadable_document_is_a_problem_of_the_given_scope_naming_its_key_and_the_others_are_found(
    s3: Any,
) -> None:
    good, bad = f"{PREFIX}100/ribosome-1.0.json", f"{PREFIX}101/membrane-1.0.json"
    s3.put_object(Bucket=BUCKET, Key=good, Body=json.dumps({"annotation_object": {"name": "ribosome"}}))
    s3.put_object(Bucket=BUCKET, Key=bad, Body=b"[1, 2]")  # JSON, but not an object
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}100/ribosome.ndjson", Body=b"{}")  # a data file: not read
    scope = "voxel spacing 7"
    found = MetadataFileFinder(S3Storage(s3, BUCKET), PREFIX, {"run_id": 3}, scope=scope).find()
    assert found.items == [FoundItem({"annotation_object": {"name": "ribosome"}}, {"run_id": 3}, good)]
    assert found.problems == [
        ImportProblem(
            scope, f"S3 ParseJSON failed for s3://{BUCKET}/{bad}: ValueError: the document is not a JSON object", bad
        )
    ]
    assert found.listings == {PREFIX: frozenset({good, bad, f"{PREFIX}100/ribosome.ndjson"})}


def test_a_datasets_metadata_is_found_with_its_key_and_its_absence_is_a_problem_naming_the_key(s3: Any) -> None:
    storage, key = S3Storage(s3, BUCKET), "10001/dataset_metadata.json"
    missing = DatasetFinder(storage, "", 10001).find()
    assert [(p.scope, p.key) for p in missing.problems] == [("dataset 10001", key)] and missing.items == []
    assert missing.problems[0].message.startswith(f"S3 GetObject failed for s3://{BUCKET}/{key}: NoSuchKey")
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps({"dataset_identifier": 10001}))
    found = DatasetFinder(storage, "", 10001).find()
    assert found.items == [FoundItem({"dataset_identifier": 10001}, {"dataset_id": 10001, "prefix": "10001/"}, key)]


def test_a_failed_listing_of_a_datasets_runs_is_a_problem_naming_the_dataset_folder(s3: Any) -> None:
    with Stubber(s3) as stub:
        stub.add_client_error("list_objects_v2", service_error_code="SlowDown", http_status_code=503)
        found = RunFinder(S3Storage(s3, BUCKET), "", 10001).find()
    assert found.items == [] and [(p.scope, p.key) for p in found.problems] == [("dataset 10001", "10001/")]
    assert found.problems[0].message.startswith(f"S3 ListObjectsV2 failed for s3://{BUCKET}/10001/: SlowDown")


def test_a_failed_folder_listing_is_a_storage_error_naming_the_request(s3: Any) -> None:
    with Stubber(s3) as stub:
        stub.add_client_error("list_objects_v2", service_error_code="AccessDenied", http_status_code=403)
        with pytest.raises(StorageError) as failed:
            list_folders(S3Storage(s3, BUCKET), "10001/")
    assert (failed.value.operation, failed.value.key, failed.value.code) == ("ListObjectsV2", "10001/", "AccessDenied")


def test_a_datasets_runs_are_its_folders_with_run_metadata_and_an_unreadable_one_is_a_problem(s3: Any) -> None:
    """``Images/`` has no run_metadata.json: not a run, no problem. ``TS_000``'s is not a JSON object: a problem
    naming its key, and the runs after it are still found."""
    s3.put_object(Bucket=BUCKET, Key="10001/Images/preview.png", Body=b"png")
    s3.put_object(Bucket=BUCKET, Key="10001/TS_000/run_metadata.json", Body=b"[1]")
    for name in ("TS_001", "TS_002"):
        s3.put_object(Bucket=BUCKET, Key=f"10001/{name}/run_metadata.json", Body=json.dumps({"run_name": name}))
    found = RunFinder(S3Storage(s3, BUCKET), "", 10001).find()
    bad = "10001/TS_000/run_metadata.json"
    message = f"S3 ParseJSON failed for s3://{BUCKET}/{bad}: ValueError: the document is not a JSON object"
    assert found.problems == [ImportProblem("dataset 10001", message, bad)]
    assert found.items == [
        FoundItem(
            {"run_name": name},
            {"dataset_id": 10001, "name": name, "prefix": f"10001/{name}/", "aliased": False},
            f"10001/{name}/run_metadata.json",
        )
        for name in ("TS_001", "TS_002")
    ]


def test_a_named_run_without_run_metadata_is_a_problem_naming_its_key(s3: Any) -> None:
    found = RunFinder(S3Storage(s3, BUCKET), "", 10001, run_name="TS_009").find()
    key = "10001/TS_009/run_metadata.json"
    assert found.items == [] and [(p.scope, p.key) for p in found.problems] == [("dataset 10001", key)]
    assert found.problems[0].message.startswith(f"S3 GetObject failed for s3://{BUCKET}/{key}: NoSuchKey")


def test_a_failed_listing_of_a_runs_voxel_spacings_is_a_problem_naming_its_reconstructions_folder(s3: Any) -> None:
    with Stubber(s3) as stub:
        stub.add_client_error("list_objects_v2", service_error_code="InternalError", http_status_code=500)
        found = VoxelSpacingFinder(S3Storage(s3, BUCKET), "10001/TS_000/", run_id=3).find()
    folder = "10001/TS_000/Reconstructions/"
    assert found.items == [] and [(p.scope, p.key) for p in found.problems] == [(f"run {folder}", folder)]
    assert found.problems[0].message.startswith(f"S3 ListObjectsV2 failed for s3://{BUCKET}/{folder}: InternalError")


def test_voxel_spacing_folders_that_read_as_one_spacing_at_the_portals_precision_are_aliased_for_the_whole_run(
    s3: Any,
) -> None:
    """The portal rounds a voxel spacing to 3 decimals: ``VoxelSpacing13.4804`` is ``VoxelSpacing13.480``'s twin.
    The twin's spacing is found once, marked ``twin``; every spacing of the run is marked ``aliased``."""
    run = "10001/TS_000/"
    for folder in ("VoxelSpacing13.480", "VoxelSpacing13.4804", "VoxelSpacing7.000", "NotASpacing"):
        s3.put_object(Bucket=BUCKET, Key=f"{run}Reconstructions/{folder}/Tomograms/100/t.mrc", Body=b"")
    storage, folder = S3Storage(s3, BUCKET), f"{run}Reconstructions/"
    found = VoxelSpacingFinder(storage, run, run_id=3).find()

    def item(spacing: float, name: str, twin: bool) -> FoundItem:
        prefix = f"{folder}{name}/"
        return FoundItem(
            {"voxel_spacing": spacing}, {"run_id": 3, "prefix": prefix, "aliased": True, "twin": twin}, prefix
        )

    assert found.items == [item(7.0, "VoxelSpacing7.000", False), item(13.48, "VoxelSpacing13.480", True)]
    assert [(p.scope, p.message.split(";")[0]) for p in found.problems] == [
        (
            f"run {folder}",
            "aliased folders: VoxelSpacing13.480/ and VoxelSpacing13.4804/ both map to voxel spacing 13.48",
        )
    ]
    one = VoxelSpacingFinder(storage, run, run_id=3, voxel_spacing=13.4801).find()  # asked at another precision
    assert one.items == [item(13.48, "VoxelSpacing13.480", True)]
