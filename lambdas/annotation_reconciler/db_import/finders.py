"""Finders: read the portal's layout from S3 (boto3 LIST and GET) and say whether they saw it all.

Every S3 error, throttle or malformed JSON becomes an :class:`ImportProblem` of the finder's
scope, so the importer knows the scope was not read completely::

    found = MetadataFileFinder(storage, "10001/TS_001/Reconstructions/VoxelSpacing13.480/Annotations/",
                               {"run_id": 3, "tomogram_voxel_spacing_id": 7}).find()
    found.complete   # False if the LIST or any metadata GET failed
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from annotation_reconciler.db_import.base import FindResult, FoundItem, ImportProblem
from annotation_reconciler.errors import StorageError
from annotation_reconciler.rules.listings import canonical
from annotation_reconciler.rules.paths import KeyKind, classify_key
from annotation_reconciler.storage import S3Storage

NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})
_VOXEL_FOLDER_RE = re.compile(r"^VoxelSpacing(?P<spacing>[0-9]+(?:\.[0-9]+)?)$")


def list_folders(storage: S3Storage, prefix: str) -> list[str]:
    """The names of the folders directly under ``prefix`` (LIST with a ``/`` delimiter), or StorageError."""
    names: list[str] = []
    try:
        for page in storage.client.get_paginator("list_objects_v2").paginate(
            Bucket=storage.bucket, Prefix=prefix, Delimiter="/"
        ):
            names += [p["Prefix"][len(prefix) :].rstrip("/") for p in page.get("CommonPrefixes", []) if "Prefix" in p]
    except (ClientError, BotoCoreError) as exc:
        raise StorageError("ListObjectsV2", storage.bucket, prefix, exc) from exc
    return names


def sized_listing(storage: S3Storage, prefix: str) -> list[tuple[str, int]]:
    """Every object under ``prefix`` (zarr chunks included) with its size, in key order; StorageError on any
    failure."""
    objects: list[tuple[str, int]] = []
    try:
        for page in storage.client.get_paginator("list_objects_v2").paginate(Bucket=storage.bucket, Prefix=prefix):
            objects += [(obj["Key"], int(obj.get("Size", 0))) for obj in page.get("Contents", [])]
    except (ClientError, BotoCoreError) as exc:
        raise StorageError("ListObjectsV2", storage.bucket, prefix, exc) from exc
    return sorted(objects)


def total_under(objects: list[tuple[str, int]], prefix: str) -> int:
    """The total size of the objects of a sorted :func:`sized_listing` whose keys start with ``prefix`` (0 when
    none do): ``annotation_file.file_size`` as the portal stores it, a file or every chunk of a zarr."""
    keys = [key for key, _ in objects]
    first = bisect.bisect_left(keys, prefix)
    last = bisect.bisect_left(keys, prefix + "\U0010ffff", lo=first)
    return sum(size for _, size in objects[first:last])


def file_sizes(
    storage: S3Storage, file_keys: Iterable[str], listed: str, *, workers: int
) -> dict[str, int | StorageError]:
    """The portal's ``file_size`` of each file key, or the error that kept S3 from telling it.

    The portal LISTs each file's path; here the files under ``listed`` (a voxel spacing's ``Annotations/``,
    where the portal puts them) cost one paginated LIST of that prefix together, and only files elsewhere
    cost a LIST each, ``workers`` at a time.
    """
    wanted = sorted(set(file_keys))
    inside = [key for key in wanted if key.startswith(listed)]
    outside = [key for key in wanted if not key.startswith(listed)]
    sizes: dict[str, int | StorageError] = {}
    if inside:
        try:
            objects = sized_listing(storage, listed)
            sizes.update({key: total_under(objects, key) for key in inside})
        except StorageError as exc:
            sizes.update(dict.fromkeys(inside, exc))

    def one(prefix: str) -> int | StorageError:
        try:
            return total_under(sized_listing(storage, prefix), prefix)
        except StorageError as exc:
            return exc

    if outside:
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(outside)))) as pool:
            sizes.update(zip(outside, pool.map(one, outside), strict=True))
    return sizes


def read_document(storage: S3Storage, key: str) -> dict[str, Any]:
    """A JSON object from S3; StorageError on S3 errors, malformed JSON or a non-object document."""
    document = storage.get_json(key)
    if not isinstance(document, dict):
        raise StorageError("ParseJSON", storage.bucket, key, ValueError("the document is not a JSON object"))
    return document


class DatasetFinder:
    """``{root}{dataset_id}/dataset_metadata.json``."""

    def __init__(self, storage: S3Storage, root: str, dataset_id: int) -> None:
        self.storage, self.dataset_id = storage, dataset_id
        self.prefix = f"{root}{dataset_id}/"

    def find(self) -> FindResult:
        key = f"{self.prefix}dataset_metadata.json"
        try:
            document = read_document(self.storage, key)
        except StorageError as exc:
            return FindResult(problems=[ImportProblem(f"dataset {self.dataset_id}", str(exc), key)])
        return FindResult([FoundItem(document, {"dataset_id": self.dataset_id, "prefix": self.prefix}, key)])


class RunFinder:
    """The dataset's run folders, each with its ``run_metadata.json`` (folders without one are not runs)."""

    def __init__(self, storage: S3Storage, root: str, dataset_id: int, run_name: str | None = None) -> None:
        self.storage, self.dataset_id, self.run_name = storage, dataset_id, run_name
        self.prefix = f"{root}{dataset_id}/"

    def find(self) -> FindResult:
        result = FindResult()
        scope = f"dataset {self.dataset_id}"
        if self.run_name is not None:
            names = [self.run_name]
        else:
            try:
                names = list_folders(self.storage, self.prefix)
            except StorageError as exc:
                return FindResult(problems=[ImportProblem(scope, str(exc), self.prefix)])
        spellings: dict[str, list[str]] = {}
        for name in names:
            spellings.setdefault(canonical(name), []).append(name)
        for named in spellings.values():
            if len(named) > 1:
                result.problems.append(ImportProblem(scope, aliased(named, "one run (names equal but for spelling)")))
        for name in names:
            key = f"{self.prefix}{name}/run_metadata.json"
            try:
                document = read_document(self.storage, key)
            except StorageError as exc:
                if exc.code in NOT_FOUND and self.run_name is None:
                    continue  # a dataset-level folder such as Images/, not a run
                result.problems.append(ImportProblem(scope, str(exc), key))
                continue
            context = {
                "dataset_id": self.dataset_id,
                "name": name,
                "prefix": f"{self.prefix}{name}/",
                "aliased": len(spellings[canonical(name)]) > 1,
            }
            result.items.append(FoundItem(document, context, key))
        return result


class VoxelSpacingFinder:
    """The run's ``Reconstructions/VoxelSpacing{spacing}/`` folders."""

    def __init__(self, storage: S3Storage, run_prefix: str, run_id: int, voxel_spacing: float | None = None) -> None:
        self.storage, self.run_id, self.voxel_spacing = storage, run_id, voxel_spacing
        self.prefix = f"{run_prefix}Reconstructions/"

    def find(self) -> FindResult:
        try:
            names = list_folders(self.storage, self.prefix)
        except StorageError as exc:
            return FindResult(problems=[ImportProblem(f"run {self.prefix}", str(exc), self.prefix)])
        result = FindResult()
        folders: dict[float, list[str]] = {}
        for name in names:
            match = _VOXEL_FOLDER_RE.match(name)
            if match:
                folders.setdefault(round(float(match["spacing"]), 3), []).append(name)
        run_aliased = any(len(named) > 1 for named in folders.values())
        for spacing, named in sorted(folders.items()):
            if len(named) > 1:
                # Two folders that read as one voxel spacing (VoxelSpacing13.48/ beside VoxelSpacing13.480/):
                # either could be the stray one, so neither may prove the other's annotations gone.
                result.problems.append(ImportProblem(f"run {self.prefix}", aliased(named, f"voxel spacing {spacing}")))
            if self.voxel_spacing is not None and spacing != round(self.voxel_spacing, 3):
                continue
            prefix = f"{self.prefix}{named[0]}/"
            context = {"run_id": self.run_id, "prefix": prefix, "aliased": run_aliased, "twin": len(named) > 1}
            result.items.append(FoundItem({"voxel_spacing": spacing}, context, prefix))
        return result


ALIASED = "aliased folders"


def aliased(names: list[str], what: str) -> str:
    folders = " and ".join(f"{n}/" for n in sorted(names))
    return (
        f"{ALIASED}: {folders} both map to {what}; nothing is imported from them and sibling cleanup of this run "
        "is skipped (remove or rename the stray folder, then ingest again)"
    )


class MetadataFileFinder:
    """Annotation metadata (``Annotations/*/*[0-9].json``) under one prefix, read in parallel.

    The LIST must finish and every document must be read and be a JSON object; anything else is
    a problem, and the problems are what keep the importer from cleaning up the scope.
    """

    def __init__(
        self, storage: S3Storage, prefix: str, context: Mapping[str, Any], *, scope: str = "", workers: int = 8
    ) -> None:
        self.storage, self.prefix, self.context = storage, prefix, dict(context)
        self.scope = scope or prefix
        self.workers = max(1, workers)

    def find(self) -> FindResult:
        try:
            listing = frozenset(self.storage.list_keys(self.prefix))
        except StorageError as exc:
            return FindResult(problems=[ImportProblem(self.scope, f"listing failed: {exc}", self.prefix)])
        keys = sorted(k for k in listing if classify_key(k) is KeyKind.METADATA)
        result = FindResult(listings={self.prefix: listing})
        with ThreadPoolExecutor(max_workers=min(self.workers, max(1, len(keys)))) as pool:
            for key, outcome in zip(keys, pool.map(self._read, keys), strict=True):
                if isinstance(outcome, StorageError):
                    result.problems.append(ImportProblem(self.scope, str(outcome), key))
                else:
                    result.items.append(FoundItem(outcome, self.context, key))
        return result

    def _read(self, key: str) -> dict[str, Any] | StorageError:
        try:
            return read_document(self.storage, key)
        except StorageError as exc:
            return exc
