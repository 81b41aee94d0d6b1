"""The synthetic portal's bucket: every object's body, and its upload to S3.

Metadata documents are JSON as the portal's ingestion writes them; data files hold a byte::

    write_bucket(s3_client, build_portal(PortalSpec()))
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from annotation_reconciler.local.synthetic import DATASET_DESCRIPTION, DATE, SyntheticAnnotation, SyntheticPortal

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def metadata_document(portal: SyntheticPortal, ann: SyntheticAnnotation) -> dict[str, Any]:
    """The annotation metadata JSON, as the portal's ingestion writes it."""
    date = DATE.date().isoformat()
    return {
        "annotation_ingest_id": ann.ingest_id,
        "annotation_object": {
            "id": f"GO:{ann.number:07d}",
            "name": ann.object_name,
            "description": None,
            "state": None,
        },
        "dates": {"deposition_date": date, "release_date": date, "last_modified_date": date},
        "annotation_method": "template matching",
        "method_type": "hybrid",
        "annotation_publications": "EMPIAR-10499",
        "ground_truth_status": False,
        "annotation_software": "pyTOM",
        "is_curator_recommended": True,
        "object_count": ann.number % 17,
        "deposition_id": portal.spec.deposition_id,
        "version": ann.version,
        "confidence": {"precision": 0.9, "recall": 0.8, "ground_truth_used": None},
        "authors": [
            {
                "name": "Ada Author",
                "ORCID": "0000-0002-1825-0097",
                "primary_author_status": True,
                "corresponding_author_status": False,
            },
            {"name": "Bo Builder", "email": "bo@example.org", "corresponding_author_status": True},
        ],
        "files": [
            {
                "format": f.format,
                "path": f.key,
                "shape": f.shape,
                "is_visualization_default": f.is_visualization_default,
            }
            for f in ann.files
        ],
        "method_links": [
            {"link": "https://github.com/example/picker", "link_type": "source_code", "custom_name": "picker"}
        ],
        "last_updated_at": 1728675800,
    }


def documents(portal: SyntheticPortal) -> Iterator[tuple[str, bytes]]:
    """Every object (key, body) of the bucket."""
    spec = portal.spec
    for dataset_id in portal.dataset_ids:
        body = {
            "dataset_identifier": dataset_id,
            "dataset_title": f"Synthetic dataset {dataset_id}",
            "dataset_description": DATASET_DESCRIPTION,
            "dates": {
                "deposition_date": "2024-01-15",
                "release_date": "2024-01-15",
                "last_modified_date": "2024-01-15",
            },
            "deposition_id": spec.deposition_id,
            "authors": [{"name": "Ada Author"}],
            "organism": {"name": "Escherichia coli", "taxonomy_id": 562},
        }
        yield f"{dataset_id}/dataset_metadata.json", json.dumps(body).encode()
    for run in portal.runs:
        body = {"run_name": run.name, "deposition_id": spec.deposition_id}
        yield f"{run.dataset_id}/{run.name}/run_metadata.json", json.dumps(body).encode()
    for ann in portal.annotations:
        yield ann.metadata_key, json.dumps(metadata_document(portal, ann)).encode()
        for data_file in ann.files:
            if not data_file.is_prefix:
                yield data_file.key, b"x"
        for key in ann.noise_keys:
            yield key, b"{}" if key.endswith(".json") else b"\0"


def write_bucket(s3: S3Client, portal: SyntheticPortal, *, create: bool = True, threads: int = 8) -> int:
    """Upload every object of the portal; returns the number of objects written."""
    bucket = portal.spec.bucket
    if create:
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})

    def put(item: tuple[str, bytes]) -> None:
        s3.put_object(Bucket=bucket, Key=item[0], Body=item[1])

    count = 0
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for _ in pool.map(put, documents(portal)):
            count += 1
    return count
