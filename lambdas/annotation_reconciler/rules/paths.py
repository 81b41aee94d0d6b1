"""Stored paths and bucket keys: the pure rules that map one to the other.

The portal stores ``s3_metadata_path`` in several forms (``s3://bucket/key``, ``bucket/key``
or a key relative to the portal's root). :class:`BucketLayout` turns any of them into a key
of the configured bucket, or says it cannot (``None``): such a path is *unmappable* and can
never be proven missing::

    >>> layout = BucketLayout.from_prefix("cryoet-data-portal-public", "s3://cryoet-data-portal-public/")
    >>> layout.to_key("s3://cryoet-data-portal-public/10001/TS_1/run_metadata.json")
    '10001/TS_1/run_metadata.json'
    >>> layout.to_key("s3://another-bucket/10001/TS_1/run_metadata.json") is None
    True
    >>> classify_key("10001/TS_1/Reconstructions/VoxelSpacing13.480/Annotations/100/ribosome-1.0.json")
    <KeyKind.METADATA: 'metadata'>
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

_METADATA_RE = re.compile(r"(?:^|/)Annotations/[^/]+/[^/]*[0-9]\.json$")
_DATA_RE = re.compile(r"(?:^|/)Annotations/[^/]+/.+")
_VOXEL_RE = re.compile(r"^(?P<vs>(?P<run>(?P<ds>[^/]+)/[^/]+)/Reconstructions/VoxelSpacing[^/]+/)Annotations/")
_DATASET_RE = re.compile(r"^[0-9]+/")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
SCHEME = "s3://"


class KeyKind(StrEnum):
    """What an object in the bucket is, for the reconciler."""

    METADATA = "metadata"  # an annotation metadata file: Annotations/*/*[0-9].json
    DATA_FILE = "data_file"  # any other object inside an annotation folder (zarr chunks included)
    OTHER = "other"


def classify_key(key: str) -> KeyKind:
    """Classify a bucket key by the portal's layout.

    Caption JSON files such as ``100-foo-1.0_globalcaption.json`` end in ``.json`` but not in a
    digit before it, so they are data files, not metadata.
    """
    if key.endswith(".json") and _METADATA_RE.search(key):  # the cheap test first: most keys are data files
        return KeyKind.METADATA
    if _DATA_RE.search(key):
        return KeyKind.DATA_FILE
    return KeyKind.OTHER


def is_metadata_key(key: str) -> bool:
    """``classify_key(key) is KeyKind.METADATA``, for loops over whole listings (one cheap test for most keys)."""
    return key.endswith(".json") and _METADATA_RE.search(key) is not None


def is_safe_key(key: str) -> bool:
    """A key we are willing to reason about: non-empty, no control characters, no ``.``/``..`` segments."""
    if not key or key.startswith("/") or _CONTROL_RE.search(key):
        return False
    return all(segment not in (".", "..") for segment in key.split("/"))


def voxel_spacing_prefix(metadata_key: str) -> str | None:
    """The voxel spacing folder (``{dataset}/{run}/Reconstructions/VoxelSpacing…/``) of an annotation key."""
    match = _VOXEL_RE.match(metadata_key)
    return match.group("vs") if match else None


def annotations_prefix(voxel_spacing_key_prefix: str) -> str:
    """The ``Annotations/`` folder under a voxel spacing's key prefix."""
    return voxel_spacing_key_prefix.rstrip("/") + "/Annotations/"


def is_within(key: str, file_key: str) -> bool:
    """True if ``key`` is the data file ``file_key`` itself or an object inside it (zarr prefixes)."""
    file_key = file_key.rstrip("/")
    return key == file_key or key.startswith(file_key + "/")


@dataclass(frozen=True, slots=True)
class BucketLayout:
    """The configured bucket and the key root under which the portal's objects live."""

    bucket: str
    root: str = ""  # "" or a key prefix ending in "/"

    @classmethod
    def from_prefix(cls, bucket: str, s3_prefix: str = "") -> BucketLayout:
        """Read ``s3_prefix`` in either form: ``s3://bucket/root/`` or plain ``bucket/root/`` or ``root/``.

        Raises ValueError when the prefix names another bucket.
        """
        prefix = s3_prefix.strip()
        if prefix.startswith(SCHEME):
            rest = prefix[len(SCHEME) :]
            named, _, root = rest.partition("/")
            if named != bucket:
                raise ValueError(f"the S3 prefix {s3_prefix!r} names bucket {named!r}, not {bucket!r}")
        elif prefix == bucket or prefix.startswith(bucket + "/"):
            root = prefix[len(bucket) + 1 :]
        else:
            root = prefix.lstrip("/")
        root = root.strip("/")
        return cls(bucket=bucket, root=root + "/" if root else "")

    def to_key(self, stored_path: str | None) -> str | None:
        """Map a stored path in any form to a key in this bucket, or None if it cannot be mapped."""
        if not stored_path:
            return None
        path = stored_path.strip()
        if path != stored_path or ("://" in path and not path.startswith(SCHEME)):
            return None
        if path.startswith(SCHEME):
            named, _, key = path[len(SCHEME) :].partition("/")
            if named != self.bucket:
                return None
        elif path.startswith(self.bucket + "/"):
            key = path[len(self.bucket) + 1 :]
        else:
            # A bare path is relative to the root and must start at a dataset folder ("10001/..."):
            # anything else (another bucket's name, a stray word) cannot be placed in this bucket.
            relative = path[len(self.root) :] if self.root and path.startswith(self.root) else path
            if not _DATASET_RE.match(relative):
                return None
            key = self.root + relative
        if not is_safe_key(key) or not key.startswith(self.root):
            return None
        return key

    def stored_forms(self, key: str) -> list[str]:
        """Every stored path form that :meth:`to_key` maps to ``key`` (for one IN-list lookup)."""
        forms = [f"{SCHEME}{self.bucket}/{key}", f"{self.bucket}/{key}", key]
        if self.root and key.startswith(self.root):
            forms.append(key[len(self.root) :])
        return forms

    def s3_path(self, key: str) -> str:
        """The canonical stored form of a key."""
        return f"{SCHEME}{self.bucket}/{key}"
