"""Filling a moto bucket before a test: straight into in-process moto's backend when the client is mocked in
process, through the S3 API otherwise.

Each PutObject through boto3 costs 2-5 ms of CPU (botocore serialising the request, moto parsing it, both building
the response) and a world of 176 objects cost 0.3-0.5 s of every test's setup; moto's backend takes the same objects
in about 10 ms. The objects are the same (key, body, size, ETag, LastModified, storage class); only the CRC32
checksum botocore adds to a PutObject is absent, and nothing in the package reads it. The code under test still
reads the bucket through the S3 API, and a client on a real-HTTP moto server (``moto_endpoint``) is filled through
the API as before::

    put_objects(s3, BUCKET, ((f"{folder}extra-{i:04d}", b"") for i in range(1001)))
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from annotation_reconciler.local.synthetic import SyntheticPortal
from annotation_reconciler.local.synthetic_bucket import documents, write_bucket


def in_process_backend(s3: Any, bucket: str) -> Any | None:
    """moto's S3 backend that holds ``bucket``, if ``s3`` is answered by in-process moto; else None."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.core.models import botocore_stubber
    from moto.s3.models import s3_backends

    host = urlsplit(s3.meta.endpoint_url).hostname or ""
    if not botocore_stubber.enabled or not host.endswith(".amazonaws.com"):
        return None
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    return backend if bucket in backend.buckets else None


def put_objects(s3: Any, bucket: str, items: Iterable[tuple[str, bytes]]) -> int:
    """Put every (key, body) of ``items`` into ``bucket``; returns how many."""
    backend = in_process_backend(s3, bucket)
    count = 0
    for key, body in items:
        if backend is None:
            s3.put_object(Bucket=bucket, Key=key, Body=body)
        else:
            # the ETag now, as PutObject's response does: moto computes it lazily, from a buffer a delete closes
            _ = backend.put_object(bucket, key, body).etag
        count += 1
    return count


def seed_bucket(s3: Any, portal: SyntheticPortal) -> int:
    """Every object of the synthetic portal, in its (existing) bucket; returns how many."""
    if in_process_backend(s3, portal.spec.bucket) is None:
        return write_bucket(s3, portal, create=False)
    return put_objects(s3, portal.spec.bucket, documents(portal))
