"""An S3 Inventory report of the test's portal bucket, as AWS delivers it (``local/inventory_writer``)."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

from annotation_reconciler.local.inventory_writer import write_inventory
from support.world import BUCKET, EVENT_TIME

INVENTORY_BUCKET = "portal-inventory"
#: where the reports of the portal bucket land; RECONCILER_INVENTORY_MANIFEST names this prefix
MANIFEST = f"s3://{INVENTORY_BUCKET}/inventory/{BUCKET}/daily/"


def report(s3: Any, keys: Iterable[str], *, created: datetime.datetime = EVENT_TIME, rows_per_file: int = 50) -> Any:
    """Write a report of ``keys`` (sorted) created at ``created``; returns where its manifest is."""
    keys = sorted(keys)
    return write_inventory(
        s3,
        source_bucket=BUCKET,
        destination_bucket=INVENTORY_BUCKET,
        prefix="inventory",
        keys=keys,
        created=created,
        rows_per_file=rows_per_file,
    )
