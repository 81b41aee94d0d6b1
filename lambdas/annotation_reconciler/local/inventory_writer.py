"""Write an S3 Inventory report in AWS's CSV layout (manifest.json and its CSV.gz files), for tests, the demo
and benchmarks; ``storage/inventory.py`` reads it back as it reads a real one::

    location = write_inventory(client, source_bucket=bucket, destination_bucket="inventory", prefix="reports",
                               keys=keys, created=now)
"""

from __future__ import annotations

import csv
import datetime
import gzip
import hashlib
import io
import json
from typing import Any
from urllib.parse import quote

from annotation_reconciler.storage.inventory import ManifestLocation


def write_inventory(
    client: Any,
    *,
    source_bucket: str,
    destination_bucket: str,
    prefix: str,
    keys: list[str],
    created: datetime.datetime,
    rows_per_file: int = 100_000,
) -> ManifestLocation:
    """Write an inventory report in AWS's CSV layout (for tests, the demo and benchmarks)."""
    stamp = created.strftime("%Y-%m-%dT%H-%MZ")
    base = f"{prefix.rstrip('/')}/{source_bucket}/daily/"
    files = []
    for n in range(0, max(len(keys), 1), rows_per_file):
        out = io.StringIO()
        writer = csv.writer(out, quoting=csv.QUOTE_ALL)
        for key in keys[n : n + rows_per_file]:
            writer.writerow([source_bucket, quote(key, safe="/"), "1", "2024-01-15T00:00:00.000Z"])
        body = gzip.compress(out.getvalue().encode())
        data_key = f"{base}data/{n // rows_per_file:05d}.csv.gz"
        client.put_object(Bucket=destination_bucket, Key=data_key, Body=body)
        files.append(
            {"key": data_key, "size": len(body), "MD5checksum": hashlib.md5(body, usedforsecurity=False).hexdigest()}
        )
    manifest = {
        "sourceBucket": source_bucket,
        "destinationBucket": f"arn:aws:s3:::{destination_bucket}",
        "version": "2016-11-30",
        "creationTimestamp": str(int(created.timestamp() * 1000)),
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size, LastModifiedDate",
        "files": files,
    }
    key = f"{base}{stamp}/manifest.json"
    client.put_object(Bucket=destination_bucket, Key=key, Body=json.dumps(manifest).encode())
    return ManifestLocation(destination_bucket, key)


__all__ = ["write_inventory"]
