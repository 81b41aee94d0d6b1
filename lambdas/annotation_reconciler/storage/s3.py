"""The S3 adapter: list keys, read JSON, and raise on every failure.

"Could not look" is never returned as "nothing there": a throttle, a 5xx, a 403 or a
network error raises :class:`StorageError` after botocore's retries with backoff::

    storage = S3Storage(make_s3_client(), "cryoet-data-portal-public")
    keys = set(storage.list_keys("10001/TS_026/Reconstructions/VoxelSpacing13.480/Annotations/"))

Many prefixes at once go through a bounded pool of threads (boto3 clients are thread-safe);
the answers come back sorted, and a failure stays a :class:`StorageError` next to its prefix::

    listings = storage.list_many(prefixes, concurrency=32)   # prefix -> frozenset of keys | StorageError
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any, TypeVar

from botocore import UNSIGNED
from botocore.exceptions import BotoCoreError, ClientError

from annotation_reconciler.aws import make_client
from annotation_reconciler.errors import PageLimitError, StorageError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ZARR_MARK = ".zarr/"
# Greater than any character in a real key: listing after "<zarr>/" + this skips the zarr's chunks.
_AFTER_ALL = "\U0010ffff"
T = TypeVar("T")
#: botocore's own default connection pool size; :func:`make_s3_client` raises it to the concurrency used.
DEFAULT_MAX_POOL_CONNECTIONS = 10


def make_s3_client(
    *,
    anonymous: bool = False,
    endpoint_url: str | None = None,
    region: str | None = None,
    max_pool_connections: int = DEFAULT_MAX_POOL_CONNECTIONS,
) -> S3Client:
    """An S3 client with connect and read timeouts and standard retries (backoff on throttles, 5xx, timeouts).

    ``max_pool_connections`` should be at least the number of requests sent at once
    (``RECONCILER_S3_CONCURRENCY``), or urllib3 opens and discards a connection per extra request.
    """
    client: S3Client = make_client(
        "s3",
        endpoint_url=endpoint_url,
        region=region,
        signature_version=UNSIGNED if anonymous else None,
        max_pool_connections=max(max_pool_connections, 1),
    )
    return client


class S3Storage:
    """Read-only access to one bucket."""

    def __init__(self, client: S3Client, bucket: str) -> None:
        self.client = client
        self.bucket = bucket
        self._pool: ThreadPoolExecutor | None = None
        self._pool_size = 0
        self._pool_lock = threading.Lock()

    def _threads(self, workers: int) -> ThreadPoolExecutor:
        """The storage's own pool of request threads, kept between calls (a shard's listings, its evidence, a
        whole Lambda container's life): starting and joining ``RECONCILER_S3_CONCURRENCY`` threads per call cost a
        few milliseconds a shard. Grown, never shrunk; only this object's calls use it, and none of them waits on
        another inside it (a call runs one request and returns)."""
        with self._pool_lock:
            if self._pool is None or self._pool_size < workers:
                old, self._pool = self._pool, ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3")
                self._pool_size = workers
                if old is not None:
                    old.shutdown(wait=False)
            return self._pool

    def list_keys(self, prefix: str, *, skip_zarr_chunks: bool = True, max_pages: int | None = None) -> Iterator[str]:
        """Yield every key under ``prefix`` in order, raising :class:`StorageError` on any failure.

        With ``skip_zarr_chunks`` a page that ends inside a ``.zarr/`` prefix resumes after that
        prefix, so a zarr of a million chunks costs one page, not a thousand. Keys inside a zarr
        are data files, never annotation metadata, so nothing the reconciler needs is skipped.
        A prefix that needs more than ``max_pages`` pages raises :class:`PageLimitError`.
        """
        token: str | None = None
        start_after: str | None = None
        pages = 0
        while True:
            if max_pages is not None and pages >= max_pages:
                raise PageLimitError(self.bucket, prefix, max_pages)
            pages += 1
            params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": 1000}
            if token:
                params["ContinuationToken"] = token
            elif start_after:
                params["StartAfter"] = start_after
            page = self._list_page(prefix, params)
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

    def list_folders(self, prefix: str, *, max_pages: int | None = None) -> frozenset[str]:
        """The folders directly in ``prefix`` (full prefixes ending in ``/``): a LIST with a delimiter, paginated,
        raising :class:`StorageError` on any failure and :class:`PageLimitError` beyond ``max_pages`` pages."""
        folders: set[str] = set()
        token: str | None = None
        pages = 0
        while True:
            if max_pages is not None and pages >= max_pages:
                raise PageLimitError(self.bucket, prefix, max_pages)
            pages += 1
            params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "Delimiter": "/", "MaxKeys": 1000}
            if token:
                params["ContinuationToken"] = token
            page = self._list_page(prefix, params)
            folders.update(p["Prefix"] for p in page.get("CommonPrefixes", []))
            if not page.get("IsTruncated"):
                return frozenset(folders)
            token = page.get("NextContinuationToken")
            if not token:
                raise StorageError("ListObjectsV2", self.bucket, prefix, RuntimeError("truncated page without a token"))

    def folders_many(
        self, prefixes: Iterable[str], *, concurrency: int, max_pages: int | None = None
    ) -> dict[str, frozenset[str] | StorageError]:
        """:meth:`list_folders` of every prefix, ``concurrency`` at a time: prefix -> its folders, or the error."""
        return self._run_many(
            sorted(set(prefixes)),
            lambda prefix: self.list_folders(prefix, max_pages=max_pages),
            concurrency=concurrency,
            remaining_seconds=None,
            margin_s=0.0,
        )

    def first_key(self, prefix: str, *, start_after: str | None = None) -> str | None:
        """The first key under ``prefix`` (after ``start_after``), or None: one LIST of one key."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": 1}
        if start_after:
            params["StartAfter"] = start_after
        contents = self._list_page(prefix, params).get("Contents", [])
        return contents[0]["Key"] if contents else None

    def _list_page(self, prefix: str, params: dict[str, Any]) -> Any:
        """One ListObjectsV2 call; every failure is a :class:`StorageError` naming the prefix."""
        try:
            return self.client.list_objects_v2(**params)
        except (ClientError, BotoCoreError) as exc:
            raise StorageError("ListObjectsV2", self.bucket, prefix, exc) from exc

    def holds_other_than(self, folder: str, inner: str) -> bool:
        """Does ``folder`` hold any object outside its sub-prefix ``inner``? One or two LISTs of one key."""
        first = self.first_key(folder)
        if first is None:
            return False
        if not first.startswith(inner):
            return True
        return self.first_key(folder, start_after=inner + _AFTER_ALL) is not None

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

    # --- many requests at once ------------------------------------------------------------

    def list_many(
        self,
        prefixes: Iterable[str],
        *,
        concurrency: int,
        remaining_seconds: Callable[[], float] | None = None,
        margin_s: float = 0.0,
        max_pages: int | None = None,
        then: Callable[[str, frozenset[str] | StorageError], Iterable[Callable[[], object]]] | None = None,
    ) -> dict[str, frozenset[str] | StorageError]:
        """List every prefix, ``concurrency`` at a time: prefix -> its keys, or the :class:`StorageError`.

        The result is in sorted prefix order whatever order the answers came in. An error at one
        prefix is that prefix's value (its state is unknown) and never stops the others.

        With ``remaining_seconds``, no new listing starts once fewer than ``margin_s`` seconds are
        left; the listings in flight finish. Listings start in sorted order from one thread, so the
        prefixes left out of the result are always the largest ones: a caller resumes after the
        last prefix it got.

        ``then(prefix, answer)``, called in this thread as each answer arrives, returns the requests that answer
        calls for (zero-argument callables that keep their own results and errors); they run in the same window,
        before the prefixes not yet started, and always (the budget only stops new listings).
        """
        return self._run_many(
            sorted(set(prefixes)),
            lambda prefix: frozenset(self.list_keys(prefix, max_pages=max_pages)),
            concurrency=concurrency,
            remaining_seconds=remaining_seconds,
            margin_s=margin_s,
            then=then,
        )

    def get_json_many(self, keys: Iterable[str], *, concurrency: int) -> dict[str, Any]:
        """:meth:`get_json` of every key, ``concurrency`` at a time: key -> the document, or the StorageError."""
        return self._run_many(
            sorted(set(keys)), self.get_json, concurrency=concurrency, remaining_seconds=None, margin_s=0.0
        )

    def run_all(self, calls: Sequence[Callable[[], object]], *, concurrency: int) -> None:
        """Run these requests, ``concurrency`` at a time; each keeps its own answer (or error) where it put it."""
        self._run_many(
            [str(n) for n in range(len(calls))],
            lambda n: calls[int(n)](),
            concurrency=concurrency,
            remaining_seconds=None,
            margin_s=0.0,
        )

    def _run_many(
        self,
        items: list[str],
        call: Callable[[str], T],
        *,
        concurrency: int,
        remaining_seconds: Callable[[], float] | None,
        margin_s: float,
        then: Callable[[str, T | StorageError], Iterable[Callable[[], object]]] | None = None,
    ) -> dict[str, T | StorageError]:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")

        def time_left() -> bool:
            return remaining_seconds is None or remaining_seconds() >= margin_s

        answers: dict[str, T | StorageError] = {}

        def one(item: str) -> None:
            try:
                answers[item] = call(item)
            except StorageError as exc:
                answers[item] = exc

        def follow_ups(item: str) -> list[Callable[[], object]]:
            return list(then(item, answers[item])) if then is not None else []

        if concurrency == 1 or (len(items) <= 1 and then is None):
            for item in items:
                if not time_left():
                    break
                one(item)
                for extra in follow_ups(item):
                    extra()
        else:
            # A sliding window fed from this thread: at most `concurrency` requests in flight; the items
            # start in sorted order, the budget checked before each start. An answer's follow-up requests
            # (``then``, asked here as each answer arrives) take the next free slots before the items left,
            # so they share the window's waves instead of costing a wave of their own after it.
            todo, extras = deque(items), deque[Callable[[], object]]()
            pool = self._threads(concurrency)
            in_flight: dict[Future[object], str | None] = {}
            out_of_time = False
            while True:
                while len(in_flight) < concurrency and (extras or (todo and not out_of_time)):
                    if extras:
                        in_flight[pool.submit(extras.popleft())] = None
                    elif time_left():
                        item = todo.popleft()
                        in_flight[pool.submit(one, item)] = item
                    else:
                        out_of_time = True
                if not in_flight:
                    break
                finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in finished:
                    done = in_flight.pop(future)
                    future.result()  # anything but a StorageError is a bug: raise it here
                    if done is not None:
                        extras.extend(follow_ups(done))
        return {item: answers[item] for item in items if item in answers}
