"""Moves: a row whose metadata key is gone while another listed metadata file in its voxel spacing carries its
natural key (run, deposition, ``annotation_ingest_id``) was *moved* (renamed, or copied to another folder and the
original deleted), never deleted (``lifecycle.decide``, ``Evidence.moved``).

The pure part, :func:`match_moves`, pairs the rows with the documents read; :func:`find_moves` reads them: for the
rows absent from their complete listing only, one GET per untracked metadata key of the row's ``Annotations/``
prefix (its voxel spacing)::

    moved = find_moves(conn, storage, layout, [(annotation_id, key), ...], listings, concurrency=32)
    # annotation id -> the key that carries its natural key, or the error that kept a candidate move unread
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection

from annotation_reconciler.portal import annotation_rows
from annotation_reconciler.rules.listings import metadata_folder, untracked_metadata
from annotation_reconciler.rules.paths import BucketLayout
from annotation_reconciler.storage import S3Storage

NaturalKey = tuple[int, str]  # (deposition_id, annotation_ingest_id); the run is the voxel spacing's


def natural_key_of(document: Any) -> NaturalKey | None:
    """The natural key a metadata document names, as the importer reads it; None when it names none.

    >>> natural_key_of({"deposition_id": "301", "annotation_ingest_id": "101-membrane-1.0"})
    (301, '101-membrane-1.0')
    >>> natural_key_of({"annotation_ingest_id": "x"}) is None, natural_key_of([]) is None
    (True, True)
    """
    if not isinstance(document, dict):
        return None
    ingest_id, deposition = document.get("annotation_ingest_id"), document.get("deposition_id")
    if not isinstance(ingest_id, str) or not ingest_id or not isinstance(deposition, int | str):
        return None
    if isinstance(deposition, bool):
        return None
    try:
        return int(deposition), ingest_id
    except (TypeError, ValueError):
        return None


def match_moves(
    rows: Mapping[int, tuple[str, NaturalKey | None]],
    documents: Mapping[str, NaturalKey | BaseException | None],
) -> dict[int, str | BaseException]:
    """Each row (annotation id -> its ``Annotations/`` prefix and natural key) whose natural key an untracked
    document of its prefix carries -> that document's key (the first in key order); a row of a prefix where a
    document could not be read and none matched -> the error (it may be the move: unknown, never missing).

    >>> docs = {"a/Annotations/117/m-1.0.json": (1, "x"), "a/Annotations/118/n-1.0.json": (1, "y")}
    >>> match_moves({5: ("a/Annotations/", (1, "y")), 6: ("a/Annotations/", (1, "z"))}, docs)
    {5: 'a/Annotations/118/n-1.0.json'}
    """
    moved: dict[int, str | BaseException] = {}
    for annotation_id, (prefix, natural) in sorted(rows.items()):
        failure: BaseException | None = None
        for key in sorted(k for k in documents if metadata_folder(k) == prefix):
            found = documents[key]
            if isinstance(found, BaseException):
                failure = failure or found
            elif natural is not None and found == natural:
                moved[annotation_id] = key
                break
        else:
            if failure is not None:
                moved[annotation_id] = failure
    return moved


def find_moves(
    conn: Connection,
    storage: S3Storage,
    layout: BucketLayout,
    suspects: Sequence[tuple[int, str]],
    listings: Mapping[str, frozenset[str] | BaseException],
    *,
    concurrency: int,
    tracked: Iterable[str] = (),
) -> dict[int, str | BaseException]:
    """For the rows ``suspects`` (annotation id, its metadata key) whose key their complete listing lacks: the
    untracked metadata keys of their prefixes, read (one GET each), matched against the rows' natural keys.
    ``tracked``: keys the caller knows a row stores in one of ``layout.stored_forms`` (what the lookup would find),
    left out of the lookup."""
    absent = [
        (i, k)
        for i, k in suspects
        if isinstance(listing := listings.get(metadata_folder(k)), frozenset) and k not in listing
    ]
    if not absent:
        return {}
    prefixes = {metadata_folder(k) for _, k in absent}
    found = untracked_metadata({p: listings[p] for p in prefixes}, tracked)
    keys = sorted({k for ks in found.values() for k in ks})
    if not keys:
        return {}
    forms = [form for k in keys for form in layout.stored_forms(k)]
    rows = {layout.to_key(r.stored_path) for r in annotation_rows.annotations_by_paths(conn, forms)}
    keys = [k for k in keys if k not in rows]
    if not keys:
        return {}
    naturals = annotation_rows.natural_keys(conn, [i for i, _ in absent])
    documents: dict[str, NaturalKey | BaseException | None] = {
        k: (doc if isinstance(doc, BaseException) else natural_key_of(doc))
        for k, doc in storage.get_json_many(keys, concurrency=concurrency).items()
    }
    return match_moves({i: (metadata_folder(k), naturals.get(i)) for i, k in absent}, documents)
