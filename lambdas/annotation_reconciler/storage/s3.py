"""The S3 adapter: list keys, check existence, read JSON, and raise on every failure.

"Could not look" is never returned as "nothing there": a throttle, a 5xx, a 403 or a
network error raises :class:`StorageError` after botocore's retries with backoff::

    storage = S3Storage(make_s3_client(), "cryoet-data-portal-public")
    keys = set(storage.list_keys("10001/TS_026/Reconstructions/VoxelSpacing13.480/Annotations/"))
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from botocore import UNSIGNED
from botocore.exceptions import BotoCoreError, ClientError

from annotation_reconciler.aws import make_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ZARR_MARK = ".zarr/"
# Greater than any character in a real key: listing after "<zarr>/" + this skips the zarr's chunks.
_AFTER_ALL = "\U0010ffff"


class StorageError(RuntimeError):
    """S3 could not answer; the state of the object is unknown."""

    def __init__(self, operation: str, bucket: str, key: str, cause: BaseException) -> None:
        self.operation, self.bucket, self.key, self.cause = operation, bucket, key, cause
        code = ""
        if isinstance(cause, ClientError):
            code = str(cause.response.get("Error", {}).get("Code", ""))
        self.code = code
        super().__init__(f"S3 {operation} failed for s3://{bucket}/{key}: {code or type(cause).__name__}: {cause}")


def make_s3_client(*, anonymous: bool = False, endpoint_url: str | None = None, region: str | None = None) -> S3Client:
    """An S3 client with connect and read timeouts and standard retries (backoff on throttles, 5xx, timeouts)."""
    client: S3Client = make_client(
        "s3", endpoint_url=endpoint_url, region=region, signature_version=UNSIGNED if anonymous else None
    )
    return client


class S3Storage:
    """Read-only access to one bucket."""

    def __init__(self, client: S3Client, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def list_keys(self, prefix: str, *, skip_zarr_chunks: bool = True) -> Iterator[str]:
        """Yield every key under ``prefix`` in order, raising :class:`StorageError` on any failure.

        With ``skip_zarr_chunks`` a page that ends inside a ``.zarr/`` prefix resumes after that
        prefix, so a zarr of a million chunks costs one page, not a thousand. Keys inside a zarr
        are data files, never annotation metadata, so nothing the reconciler needs is skipped.
        """
        token: str | None = None
        start_after: str | None = None
        while True:
            params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": 1000}
            if token:
                params["ContinuationToken"] = token
            elif start_after:
                params["StartAfter"] = start_after
            try:
                page = self.client.list_objects_v2(**params)
            except (ClientError, BotoCoreError) as exc:
                raise StorageError("ListObjectsV2", self.bucket, prefix, exc) from exc
            contents = page.get("Contents", [])
            for obj in contents:
                yield obj["Key"]
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")
            last = contents[-1]["Key"] if contents else None
            if skip_zarr_chunks and last and ZARR_MARK in last[len(prefix) :]:
                zarr = last[: last.index(ZARR_MARK, len(prefix)) + len(ZARR_MARK)]
                token, start_after = None, zarr + _AFTER_ALL
            elif not token:
                raise StorageError("ListObjectsV2", self.bucket, prefix, RuntimeError("truncated page without a token"))

    def exists(self, key: str) -> bool:
        """HEAD one key: True, False on 404, :class:`StorageError` on anything else."""
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound"):
                return False
            raise StorageError("HeadObject", self.bucket, key, exc) from exc
        except BotoCoreError as exc:
            raise StorageError("HeadObject", self.bucket, key, exc) from exc
        return True

    def get_bytes(self, key: str) -> bytes:
        try:
            body: bytes = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise StorageError("GetObject", self.bucket, key, exc) from exc
        return body

    def get_json(self, key: str) -> Any:
        """Read and parse a JSON object; malformed JSON is a :class:`StorageError` too."""
        raw = self.get_bytes(key)
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StorageError("ParseJSON", self.bucket, key, exc) from exc
