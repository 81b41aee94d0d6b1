"""Scans find missing annotation data files (and their return) in the listings they already made.

A data file (an ``annotation_file`` row: ``…/Annotations/NNN/…ndjson`` or a ``….zarr`` folder) is
*missing* only when every listing that could show it is complete and none holds it in any spelling
(``spelling.spelling_form``: case, Unicode form and percent/plus-encoding, as for metadata keys);
*present* when its own listing holds it (a zarr: any key inside it). Anything else says nothing.
Recorded like the events do (``missing_annotation_file``); a missing file never deletes anything::

    missing, present = judge_files(rows, survey.listings, layout)
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence

from sqlalchemy import Connection

from annotation_reconciler.ledger import missing_files
from annotation_reconciler.portal.annotation_rows import FileRow
from annotation_reconciler.rules.listings import Listings, Seen, metadata_folder
from annotation_reconciler.rules.paths import BucketLayout


def judge_files(
    files: Sequence[FileRow], listings: Mapping[str, frozenset[str] | BaseException], layout: BucketLayout
) -> tuple[list[tuple[FileRow, str]], list[int]]:
    """(missing files with their key, ids of present files); a file under no complete listing, or one
    spelled differently from a listed key, is in neither."""
    missing: list[tuple[FileRow, str]] = []
    present: list[int] = []
    listed = Listings.of(listings)  # each prefix indexed once, for every file judged
    for row in files:
        key = layout.to_key(row.s3_path)
        if key is None or not metadata_folder(key).endswith("/Annotations/"):
            continue
        presence = listed.presence(key, inside=True)
        if presence.seen is Seen.LISTED:
            present.append(row.file_id)
        elif presence.seen is Seen.ABSENT:
            missing.append((row, key))
    return missing, present


def record_files(
    conn: Connection,
    rows: Sequence[FileRow],
    listings: Mapping[str, frozenset[str] | BaseException],
    layout: BucketLayout,
    now: datetime.datetime,
) -> tuple[int, int]:
    """Record which of these data files (:func:`files_of`, read before the listings started or after) are missing,
    and resolve those back: (newly missing, resolved). A file row deleted or given another path since it was read is
    not reported (``missing_files.RECORD_SQL`` checks it at the insert).

    A report closes only when the removed keys it names are listed again: a zarr whose listing shows some
    keys (its chunks are not listed) does not close the report of a removed chunk."""
    missing, present = judge_files(rows, listings, layout)
    recorded = missing_files.record_missing_files(
        conn, [(row.file_id, row.annotation_id, row.s3_path, key) for row, key in missing], now=now
    )
    back = [row for row in rows if row.reported]  # mostly none: nothing to resolve
    return recorded, missing_files.resolve_missing_keys(
        conn, listed_keys(back, set(present), listings, layout), now=now
    )


def listed_keys(
    rows: Sequence[FileRow],
    present: set[int],
    listings: Mapping[str, frozenset[str] | BaseException],
    layout: BucketLayout,
) -> list[str]:
    """The keys the listings show of the present files: the file's own key (a zarr's folder key counts as
    shown when anything inside it is listed) and every key listed inside its zarr."""
    keys: list[str] = []
    for row in rows:
        key = layout.to_key(row.s3_path) if row.file_id in present else None
        own = listings.get(metadata_folder(key)) if key else None
        if key and isinstance(own, frozenset):
            keys += [key, *sorted(k for k in own if k.startswith(key + "/"))]
    return keys
