"""An S3 stand-in that answers like S3 in the region: the same answers as S3, after the same latency.

:class:`S3Double` plugs in where a boto3 S3 client goes (``list_objects_v2`` with Prefix, Delimiter,
MaxKeys, ContinuationToken and StartAfter; ``head_object`` raising a 404 ``ClientError``; ``get_object``;
``put_object``; ``delete_object``; ``get_paginator("list_objects_v2")``), answers LIST by bisecting sorted
keys and HEAD/GET from a dict, and counts every request under botocore's operation names.

Each request sleeps as long as S3 would take to answer it (:class:`Latency`): the sleep happens in the
calling thread and releases the GIL, so requests sent from N threads overlap exactly as N requests in
flight to S3 do, and concurrency and request counts both show in *measured* wall time. The double
also records the most requests it saw in flight at once.

:func:`modelled_s3_seconds` (requests x latency / concurrency) is kept only as a cross-check.
"""

from __future__ import annotations

import base64
import bisect
import io
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError


@dataclass(frozen=True)
class Latency:
    """Seconds S3 takes to answer one request, as seen from a client in the bucket's region."""

    list_page_ms: float = 30.0  # first byte of a ListObjectsV2 page
    list_per_key_ms: float = 0.02  # then the page body: ~250 bytes of XML per key returned
    request_ms: float = 20.0  # HEAD, GET of a small object, PUT, DELETE

    def seconds(self, operation: str, keys: int = 0) -> float:
        if operation == "ListObjectsV2":
            return (self.list_page_ms + self.list_per_key_ms * keys) / 1000.0
        return self.request_ms / 1000.0

    @property
    def describe(self) -> str:
        return (
            f"LIST page {self.list_page_ms:g} ms + {self.list_per_key_ms:g} ms per key returned, "
            f"HEAD/GET/PUT {self.request_ms:g} ms"
        )


#: S3 in the region (the source is in BENCHMARKS.md and LATENCY_SOURCE).
REGIONAL = Latency()
#: Answers in microseconds: setup, and the benchmarks that measure the code's own time.
INSTANT = Latency(0.0, 0.0, 0.0)
LATENCY_SOURCE = (
    "AWS, 'Best Practices Design Patterns: Optimizing Amazon S3 Performance', section 'Timeouts and Retries for "
    "Latency-Sensitive Applications' (https://docs.aws.amazon.com/whitepapers/latest/"
    "s3-optimizing-performance-best-practices/timeouts-and-retries-for-latency-sensitive-applications.html): "
    "for small requests (under 512 KB) 'median latencies are often in the tens of milliseconds range'. We take "
    "20 ms for HEAD/GET of a small object and 30 ms for the first byte of a LIST page, plus 0.02 ms per key for "
    "the page's body (about 250 bytes of XML a key, so a full page of 1,000 keys takes 50 ms). AWS publishes no "
    "per-key figure: that one is our assumption."
)


def modelled_s3_seconds(counts: Mapping[str, int], concurrency: float = 1.0, latency: Latency = REGIONAL) -> float:
    """The cross-check: requests x first-byte latency / requests in flight at once (page bodies left out)."""
    total = sum(n * latency.seconds(op) for op, n in counts.items())
    return total / max(concurrency, 1.0)


def s3_brief(counts: Mapping[str, int]) -> str:
    """``LIST 50 · HEAD 0 · GET 0`` (other operations appended when present)."""
    names = {"ListObjectsV2": "LIST", "HeadObject": "HEAD", "GetObject": "GET"}
    parts = [f"{short} {counts.get(op, 0):,}" for op, short in names.items()]
    parts += [f"{op} {n:,}" for op, n in sorted(counts.items()) if op not in names and n]
    return " · ".join(parts)


class _Events:
    """What ``RequestCounter.attach`` registers on a real client's ``meta.events``: the double counts itself."""

    def register(self, *_: Any, **__: Any) -> None:
        return None

    register_first = register


class _Meta:
    def __init__(self) -> None:
        self.events = _Events()


_AFTER_ALL = "\U0010ffff"


def _client_error(code: str, status: int, operation: str, message: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}},
        operation,
    )


@dataclass
class _DoubleBucket:
    objects: dict[str, bytes | None] = field(default_factory=dict)  # None: an empty body (data-file noise)
    keys: list[str] = field(default_factory=list)  # sorted


class _Paginator:
    def __init__(self, double: S3Double) -> None:
        self.double = double

    def paginate(self, **params: Any) -> Iterator[dict[str, Any]]:
        params = dict(params)
        while True:
            page = self.double.list_objects_v2(**params)
            yield page
            if not page.get("IsTruncated"):
                return
            params["ContinuationToken"] = page["NextContinuationToken"]


class S3Double:  # parameter names are boto3's (Bucket, Key, …)
    """An S3 client stand-in: LIST in O(log n + page) from sorted keys, HEAD/GET from a dict, S3's latency.

    :attr:`counts` holds every request by operation, :attr:`peak_in_flight` the most requests that were
    being answered at once. ``latency`` may be changed between uses (setup runs at :data:`INSTANT`).
    """

    def __init__(self, latency: Latency = REGIONAL) -> None:
        self.buckets: dict[str, _DoubleBucket] = {}
        self.counts: Counter[str] = Counter()
        self.latency = latency
        self.meta = _Meta()
        self.in_flight = 0
        self.peak_in_flight = 0
        self._lock = threading.Lock()

    def reset_counts(self) -> None:
        with self._lock:
            self.counts.clear()
            self.peak_in_flight = 0

    def _answer(self, operation: str, keys: int = 0) -> None:
        """Wait as long as S3 takes to answer (released GIL: threads overlap as requests in flight do)."""
        delay = self.latency.seconds(operation, keys)
        if delay <= 0:
            return
        with self._lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            time.sleep(delay)
        finally:
            with self._lock:
                self.in_flight -= 1

    # setup, not counted
    def create_bucket(self, Bucket: str, **_: Any) -> None:
        self.buckets.setdefault(Bucket, _DoubleBucket())

    def load(self, bucket: str, keys: Iterable[str], bodies: Mapping[str, bytes] | None = None) -> int:
        """Add many objects at once (bodies default to empty); returns the bucket's object count."""
        store = self.buckets.setdefault(bucket, _DoubleBucket())
        if store.objects:
            store.objects.update(dict.fromkeys(keys))
        else:
            store.objects = dict.fromkeys(keys)
        if bodies:
            store.objects.update(bodies)
        store.keys = sorted(store.objects)
        return len(store.keys)

    def _count(self, operation: str) -> None:
        with self._lock:
            self.counts[operation] += 1

    def _bucket(self, name: str, operation: str) -> _DoubleBucket:
        store = self.buckets.get(name)
        if store is None:
            raise _client_error("NoSuchBucket", 404, operation, f"The specified bucket {name} does not exist")
        return store

    def list_objects_v2(
        self,
        *,
        Bucket: str,
        Prefix: str = "",
        Delimiter: str | None = None,
        MaxKeys: int = 1000,
        ContinuationToken: str | None = None,
        StartAfter: str | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        self._count("ListObjectsV2")
        store = self._bucket(Bucket, "ListObjectsV2")
        keys = store.keys
        start = bisect.bisect_left(keys, Prefix)
        if ContinuationToken:
            after = base64.urlsafe_b64decode(ContinuationToken.encode()).decode()
            start = max(start, bisect.bisect_right(keys, after))
        elif StartAfter:
            start = max(start, bisect.bisect_right(keys, StartAfter))
        contents: list[dict[str, Any]] = []
        prefixes: list[dict[str, str]] = []
        i, last = start, ""
        while i < len(keys) and keys[i].startswith(Prefix) and len(contents) + len(prefixes) < MaxKeys:
            key = keys[i]
            cut = key.find(Delimiter, len(Prefix)) if Delimiter else -1
            if cut >= 0:
                common = key[: cut + len(Delimiter or "")]
                prefixes.append({"Prefix": common})
                last = common + _AFTER_ALL
                i = bisect.bisect_right(keys, last, lo=i)
                continue
            body = store.objects[key]
            contents.append({"Key": key, "Size": len(body or b""), "StorageClass": "STANDARD"})
            last = key
            i += 1
        truncated = i < len(keys) and keys[i].startswith(Prefix)
        page: dict[str, Any] = {
            "Name": Bucket,
            "Prefix": Prefix,
            "MaxKeys": MaxKeys,
            "KeyCount": len(contents) + len(prefixes),
            "IsTruncated": truncated,
        }
        if contents:
            page["Contents"] = contents
        if prefixes:
            page["CommonPrefixes"] = prefixes
        if Delimiter:
            page["Delimiter"] = Delimiter
        if truncated:
            page["NextContinuationToken"] = base64.urlsafe_b64encode(last.encode()).decode()
        self._answer("ListObjectsV2", len(contents) + len(prefixes))
        return page

    def head_object(self, *, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        self._count("HeadObject")
        self._answer("HeadObject")
        store = self._bucket(Bucket, "HeadObject")
        if Key not in store.objects:
            raise _client_error("404", 404, "HeadObject", "Not Found")
        return {"ContentLength": len(store.objects[Key] or b""), "ResponseMetadata": {"HTTPStatusCode": 200}}

    def get_object(self, *, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        self._count("GetObject")
        self._answer("GetObject")
        store = self._bucket(Bucket, "GetObject")
        if Key not in store.objects:
            raise _client_error("NoSuchKey", 404, "GetObject", "The specified key does not exist.")
        body = store.objects[Key] or b""
        return {"Body": io.BytesIO(body), "ContentLength": len(body)}

    def put_object(self, *, Bucket: str, Key: str, Body: bytes = b"", **_: Any) -> dict[str, Any]:
        self._count("PutObject")
        self._answer("PutObject")
        store = self._bucket(Bucket, "PutObject")
        if Key not in store.objects:
            bisect.insort(store.keys, Key)
        store.objects[Key] = bytes(Body)
        return {"ETag": '"0"'}

    def delete_object(self, *, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        self._count("DeleteObject")
        self._answer("DeleteObject")
        store = self._bucket(Bucket, "DeleteObject")
        if store.objects.pop(Key, 0) != 0:
            del store.keys[bisect.bisect_left(store.keys, Key)]
        return {}

    def get_paginator(self, name: str) -> _Paginator:
        if name != "list_objects_v2":
            raise NotImplementedError(f"S3Double has no paginator for {name}")
        return _Paginator(self)
