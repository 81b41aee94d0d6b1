"""db_import/finders.MetadataFileFinder: the metadata documents under a voxel spacing's ``Annotations/``, and the
problems that keep the importer from cleaning the scope up, each naming the scope and the key it is about. moto S3."""

from __future__ import annotations

import json
from typing import Any

from botocore.stub import Stubber

from annotation_reconciler.db_import.base import FoundItem, ImportProblem
from annotation_reconciler.db_import.finders import MetadataFileFinder
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
