"""Evidence from S3 beyond the listings: what the dataset folder of an empty ``Annotations/`` prefix holds.

``lifecycle.decide`` holds a fresh candidate whose prefix lists no metadata unless it knows the dataset
folder still holds other objects (``Evidence.neighbours``). Every path that judges fresh candidates (the
scan, the cleanup CLI, the importer) asks here, only for those prefixes: one or two LISTs of one key each::

    neighbours = dataset_neighbours(storage, listings, concurrency=32)
"""

from __future__ import annotations

from collections.abc import Mapping

from annotation_reconciler import guards
from annotation_reconciler.storage import S3Storage


def dataset_neighbours(
    storage: S3Storage, listings: Mapping[str, frozenset[str] | BaseException], *, concurrency: int
) -> dict[str, bool | BaseException]:
    """For each completely listed ``Annotations/`` prefix without metadata: does its dataset folder hold
    any other object (True / False), or the error that stopped S3 from saying."""
    folders = {p: guards.dataset_folder(p) for p in guards.empty_prefixes(listings)}
    return dict(storage.holds_other_many(folders, concurrency=concurrency))
