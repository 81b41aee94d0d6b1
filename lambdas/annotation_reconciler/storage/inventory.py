"""Read an S3 Inventory report (manifest.json and its CSV.gz files, as AWS writes them).

An inventory lists a bucket's objects once a day, for the price of reading a few files instead
of LISTing every prefix. It may be a day old: callers treat "not in the inventory" only as a
candidate, to be confirmed against S3 itself::

    location = find_manifest(client, "s3://inventory-bucket/cryoet-data-portal-public/daily/")
    manifest = read_manifest(client, location)
    keys = set(iter_present_keys(client, manifest))
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import gzip
import hashlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, cast
from urllib.parse import unquote

from botocore.exceptions import BotoCoreError, ClientError

from annotation_reconciler.errors import InventoryError, InventoryStale, StorageError
from annotation_reconciler.names import Env
from annotation_reconciler.storage.s3 import S3Storage

_STAMP_RE = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}Z)/$")


def check_fresh(manifest: Manifest, *, now: datetime.datetime, max_age: datetime.timedelta) -> None:
    """Refuse a report created more than ``max_age`` before ``now`` (delivery stopped, or a fixed manifest)."""
    age = now - manifest.created
    if age > max_age:
        raise InventoryStale(
            f"{manifest.location.url} was created {manifest.created:%Y-%m-%d %H:%M} UTC, "
            f"{age.total_seconds() / 3600:.0f} h ago (more than {max_age.total_seconds() / 3600:g} h): "
            f"check that the S3 Inventory configuration still delivers, and that {Env.INVENTORY_MANIFEST} "
            "names its prefix rather than one fixed manifest.json"
        )


@dataclass(frozen=True)
class ManifestLocation:
    bucket: str
    key: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class Manifest:
    location: ManifestLocation
    source_bucket: str
    file_format: str
    schema: tuple[str, ...]
    files: tuple[tuple[str, str | None], ...]  # (key in the destination bucket, MD5 hex)
    created: datetime.datetime

    @property
    def destination_bucket(self) -> str:
        return self.location.bucket


def _split(url: str) -> tuple[str, str]:
    if not url.startswith("s3://"):
        raise InventoryError(f"inventory location {url!r} must be an s3:// URL")
    bucket, _, key = url[len("s3://") :].partition("/")
    if not bucket:
        raise InventoryError(f"inventory location {url!r} names no bucket")
    return bucket, key


def find_manifest(client: Any, url: str) -> ManifestLocation:
    """The manifest at ``url`` (``…/manifest.json``), or the newest one under a configuration prefix."""
    bucket, key = _split(url)
    if key.endswith("manifest.json"):
        return ManifestLocation(bucket, key)
    prefix = key.rstrip("/") + "/" if key else ""
    stamps: list[str] = []
    token: str | None = None
    while True:
        params: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "Delimiter": "/"}
        if token:
            params["ContinuationToken"] = token
        try:
            page = client.list_objects_v2(**params)
        except Exception as exc:
            raise StorageError("ListObjectsV2", bucket, prefix, exc) from exc
        stamps += [p["Prefix"] for p in page.get("CommonPrefixes", []) if _STAMP_RE.search(p["Prefix"])]
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated"):
            break
    if not stamps:
        raise InventoryError(f"no inventory report (YYYY-MM-DDTHH-MMZ/manifest.json) under s3://{bucket}/{prefix}")
    return ManifestLocation(bucket, max(stamps) + "manifest.json")


def read_manifest(client: Any, location: ManifestLocation) -> Manifest:
    raw = S3Storage(client, location.bucket).get_json(location.key)
    try:
        schema = tuple(field.strip() for field in str(raw["fileSchema"]).split(","))
        files = tuple((str(f["key"]), f.get("MD5checksum")) for f in raw["files"])
        created = datetime.datetime.fromtimestamp(int(raw["creationTimestamp"]) / 1000, tz=datetime.UTC)
        manifest = Manifest(location, str(raw["sourceBucket"]), str(raw["fileFormat"]).upper(), schema, files, created)
    except (KeyError, TypeError, ValueError) as exc:
        raise InventoryError(f"{location.url} is not an S3 Inventory manifest: {exc!r}") from None
    if "Key" not in manifest.schema:
        raise InventoryError(f"{location.url}: the inventory schema has no Key field ({raw['fileSchema']})")
    if manifest.file_format != "CSV":
        raise InventoryError(f"{location.url}: inventory format {manifest.file_format} is not supported; use CSV")
    return manifest


def iter_present_keys(client: Any, manifest: Manifest) -> Iterator[str]:
    """Every key the inventory lists as present (latest version, not a delete marker), decoded."""
    storage = S3Storage(client, manifest.destination_bucket)
    fields = manifest.schema
    key_at = fields.index("Key")
    latest_at = fields.index("IsLatest") if "IsLatest" in fields else None
    marker_at = fields.index("IsDeleteMarker") if "IsDeleteMarker" in fields else None
    for file_key, md5 in manifest.files:
        with _open_stream(storage, file_key) as raw:
            digest = _Md5Reader(raw)
            gz = file_key.endswith(".gz")
            binary = cast(IO[bytes], gzip.GzipFile(fileobj=digest, mode="rb") if gz else io.BufferedReader(digest))
            try:
                for row in csv.reader(io.TextIOWrapper(binary, encoding="utf-8", newline="")):
                    if len(row) != len(fields):
                        raise InventoryError(f"{file_key}: a row has {len(row)} fields, the schema {len(fields)}")
                    if latest_at is not None and row[latest_at].lower() != "true":
                        continue
                    if marker_at is not None and row[marker_at].lower() == "true":
                        continue
                    # AWS URL-encodes keys in CSV inventories (spaces as '+', like form encoding)
                    yield unquote(row[key_at].replace("+", " "))
            except (InventoryError, OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
                digest.drain()  # a file that is not what the manifest says: say so, rather than how it breaks
                if md5 and digest.hexdigest() != md5:
                    raise _md5_mismatch(manifest, file_key) from None
                if isinstance(exc, InventoryError):
                    raise
                raise InventoryError(f"{file_key}: not a readable CSV inventory file: {exc}") from None
            digest.drain()
        # checked when the file ends: callers act only once every file is read, so a bad file changes nothing
        if md5 and digest.hexdigest() != md5:
            raise _md5_mismatch(manifest, file_key)


def _md5_mismatch(manifest: Manifest, file_key: str) -> InventoryError:
    return InventoryError(f"s3://{manifest.destination_bucket}/{file_key}: MD5 does not match the manifest")


class _Md5Reader(io.RawIOBase):
    """A readable stream that hashes what passes through it."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._md5 = hashlib.md5(usedforsecurity=False)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._raw.read(len(buffer))
        self._md5.update(chunk)
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def drain(self) -> None:
        """Read (and hash) whatever the reader above left, such as gzip's trailer."""
        while chunk := self._raw.read(1 << 16):
            self._md5.update(chunk)

    def hexdigest(self) -> str:
        return self._md5.hexdigest()


@contextlib.contextmanager
def _open_stream(storage: S3Storage, key: str) -> Iterator[Any]:
    """The object's body as a stream (never read whole into memory); S3 errors as :class:`StorageError`."""
    try:
        body = storage.client.get_object(Bucket=storage.bucket, Key=key)["Body"]
    except (ClientError, BotoCoreError) as exc:
        raise StorageError("GetObject", storage.bucket, key, exc) from exc
    try:
        yield body
    except (ClientError, BotoCoreError) as exc:
        raise StorageError("GetObject", storage.bucket, key, exc) from exc
    finally:
        body.close()
