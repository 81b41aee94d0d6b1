"""What every benchmark shares: PostgreSQL, the synthetic portal, S3 (moto or a double), counters, tables.

- :func:`postgres` starts a throwaway server (``local.postgres``) and yields a :class:`DatabaseFactory`.
- :func:`portal_spec` lays out a portal of N annotations with realistic data-file noise, and
  :func:`load_rows` bulk-loads its rows in chunks of datasets (``local.synthetic.write_rows``).
- :class:`S3Double` answers LIST from sorted keys (bisect) and HEAD/GET from a dict, and counts its
  own requests; :class:`MotoBucket` fills a moto bucket through moto's backend (no HTTP per key).
- :class:`SqlCounter` counts SQL statements, round trips and database time with engine events;
  :class:`RssSampler` samples the process's RSS; :func:`modelled_s3_seconds` turns request counts
  into S3 time with the latencies of :data:`LATENCY_MS`.
- :class:`Section` is one results table, printed with rich and rendered as markdown.
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import io
import json
import os
import platform
import random
import resource
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil
from botocore.exceptions import ClientError
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, event, text
from sqlalchemy.engine.interfaces import ExecuteStyle

from annotation_reconciler.local.databases import DatabaseFactory
from annotation_reconciler.local.moto_server import use_dummy_credentials
from annotation_reconciler.local.postgres import LocalPostgres
from annotation_reconciler.local.synthetic import PortalSpec, SyntheticPortal, build_portal, write_rows

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "cryoet-data-portal-public"
INVENTORY_BUCKET = "portal-inventory"
REGION = "us-west-2"
SEED = 9

use_dummy_credentials()  # nothing here may ever reach real AWS
os.environ.pop("AWS_ENDPOINT_URL", None)

# --- the latency model --------------------------------------------------------------------------------------------

#: Per-request S3 latency (ms) used for every modelled figure, the same for every approach.
LATENCY_MS: dict[str, float] = {"ListObjectsV2": 30.0, "HeadObject": 20.0, "GetObject": 20.0, "PutObject": 20.0}
LATENCY_SOURCE = (
    "AWS, 'Best Practices Design Patterns: Optimizing Amazon S3 Performance', section 'Timeouts and Retries for "
    "Latency-Sensitive Applications' (https://docs.aws.amazon.com/whitepapers/latest/"
    "s3-optimizing-performance-best-practices/timeouts-and-retries-for-latency-sensitive-applications.html): "
    "for small requests 'median latencies are often in the tens of milliseconds range'. We take the top of the "
    "usual in-region 10-30 ms range for a LIST page (it returns up to 1,000 keys of XML) and 20 ms for HEAD/GET "
    "of small objects."
)


def modelled_s3_seconds(counts: Mapping[str, int], concurrency: float = 1.0) -> float:
    """S3 time: requests x per-request latency, divided by the number of requests in flight at once."""
    total_ms = sum(n * LATENCY_MS.get(op, 20.0) for op, n in counts.items())
    return total_ms / 1000.0 / max(concurrency, 1.0)


# --- PostgreSQL ---------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def postgres() -> Iterator[DatabaseFactory]:
    """A private PostgreSQL server for the run (``RECONCILER_BENCH_DATABASE_URL`` to use an existing one)."""
    given = os.environ.get("RECONCILER_BENCH_DATABASE_URL")
    if given:
        yield DatabaseFactory(given, template="bench_template")
        return
    with LocalPostgres() as server:
        yield DatabaseFactory(server.url, template="bench_template")


def copy_database(factory: DatabaseFactory, source: str, name: str) -> str:
    """A new database ``name`` copied from ``source`` (CREATE DATABASE … TEMPLATE); returns its URL."""
    factory._recreate(name, source)
    return factory.url_for(name)


class SqlCounter:
    """Counts what an engine sends: statements (cursor executions), round trips and database time.

    ``round_trips`` counts an executemany as one round trip per parameter set (pg8000 runs them
    one by one) and an "insertmanyvalues" batch as one; ``seconds`` is the time spent inside cursor
    executions as seen by the client.
    """

    def __init__(self) -> None:
        self.statements = 0
        self.round_trips = 0
        self.seconds = 0.0
        self._started: dict[int, float] = {}

    @classmethod
    def attach(cls, engine: Engine) -> SqlCounter:
        counter = cls()
        event.listen(engine, "before_cursor_execute", counter._before)
        event.listen(engine, "after_cursor_execute", counter._after)
        return counter

    def _before(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        self.statements += 1
        # an "insertmanyvalues" batch is one INSERT … VALUES (…), (…) sent once, though flagged executemany
        batched = getattr(context, "execute_style", None) is ExecuteStyle.INSERTMANYVALUES
        self.round_trips += len(parameters) if executemany and parameters and not batched else 1
        self._started[id(cursor)] = time.perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        started = self._started.pop(id(cursor), None)
        if started is not None:
            self.seconds += time.perf_counter() - started

    def snapshot(self) -> tuple[int, int, float]:
        return self.statements, self.round_trips, self.seconds


def analyze(engine: Engine) -> None:
    """Planner statistics, as a production database has them after a bulk load."""
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()


# --- the synthetic portal -----------------------------------------------------------------------------------------

#: Annotations per voxel spacing (one ``Annotations/`` prefix) and runs per dataset of the default layout.
PER_VOXEL_SPACING = 20
RUNS_PER_DATASET = 50


def zarr_chunks_for(annotations: int) -> int:
    """Data-file noise: 16 zarr chunks (21 objects per annotation) up to 10k annotations, 1 chunk (6) beyond."""
    return 16 if annotations <= 10_000 else 1


def objects_per_annotation(spec: PortalSpec) -> int:
    """Metadata + ndjson + mrc + .zattrs + caption JSON + the zarr chunks."""
    return 5 + spec.zarr_chunks_per_annotation


def portal_spec(
    annotations: int,
    *,
    per_voxel_spacing: int = PER_VOXEL_SPACING,
    runs_per_dataset: int = RUNS_PER_DATASET,
    zarr_chunks: int | None = None,
    first_dataset_id: int = 10001,
) -> PortalSpec:
    """A portal of exactly ``annotations`` annotations: datasets of ``runs_per_dataset`` runs, one voxel spacing
    per run, ``per_voxel_spacing`` annotations in each."""
    if annotations % per_voxel_spacing:
        raise ValueError(f"{annotations} annotations is not a multiple of {per_voxel_spacing} per voxel spacing")
    runs = annotations // per_voxel_spacing
    per_dataset = min(runs_per_dataset, runs)
    if runs % per_dataset:
        raise ValueError(f"{runs} runs do not split into datasets of {per_dataset}")
    return PortalSpec(
        bucket=BUCKET,
        datasets=runs // per_dataset,
        runs_per_dataset=per_dataset,
        voxel_spacings_per_run=1,
        annotations_per_voxel_spacing=per_voxel_spacing,
        zarr_chunks_per_annotation=zarr_chunks_for(annotations) if zarr_chunks is None else zarr_chunks,
        first_dataset_id=first_dataset_id,
    )


def portal_chunks(spec: PortalSpec, datasets_per_chunk: int = 50) -> Iterator[SyntheticPortal]:
    """The portal of ``spec`` built a few datasets at a time (the same annotations in the same order)."""
    for start in range(0, spec.datasets, datasets_per_chunk):
        count = min(datasets_per_chunk, spec.datasets - start)
        yield build_portal(replace(spec, datasets=count, first_dataset_id=spec.first_dataset_id + start))


def load_rows(engine: Engine, spec: PortalSpec) -> dict[str, int]:
    """Bulk-load the portal's rows (COPY, chunk by chunk), ANALYZE; returns metadata key -> annotation id."""
    ids: dict[str, int] = {}
    for chunk in portal_chunks(spec):
        ids.update(write_rows(engine, chunk))
    analyze(engine)
    return ids


def stale_indices(annotations: int, fraction: float, seed: int = SEED) -> list[int]:
    """Which annotations (by position) lose their metadata file: a seeded uniform sample."""
    count = round(annotations * fraction)
    return sorted(random.Random(seed).sample(range(annotations), count))


def metadata_keys(spec: PortalSpec) -> list[str]:
    return [a.metadata_key for chunk in portal_chunks(spec) for a in chunk.annotations]


def present_keys(spec: PortalSpec, fraction: float, seed: int = SEED) -> Iterator[str]:
    """Every object key of the bucket once ``fraction`` of the metadata files are gone (one pass over the portal)."""
    stale = set(stale_indices(spec.annotations, fraction, seed))
    offset = 0
    for chunk in portal_chunks(spec):
        gone = {a.metadata_key for i, a in enumerate(chunk.annotations, offset) if i in stale}
        offset += len(chunk.annotations)
        yield from (key for key in chunk.all_keys() if key not in gone)


def bucket_keys(spec: PortalSpec, missing: set[str] | frozenset[str] = frozenset()) -> Iterator[str]:
    """Every object key of the portal's bucket except ``missing``."""
    for chunk in portal_chunks(spec):
        for key in chunk.all_keys():
            if key not in missing:
                yield key


# --- S3: an in-process double -------------------------------------------------------------------------------------

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
    """An S3 client stand-in for scale: LIST in O(log n + page) from sorted keys, HEAD/GET from a dict.

    It plugs in where a boto3 S3 client goes (``list_objects_v2`` with Prefix, Delimiter, MaxKeys,
    ContinuationToken and StartAfter; ``head_object`` raising a 404 ``ClientError``; ``get_object``;
    ``put_object``; ``delete_object``; ``get_paginator("list_objects_v2")``) and counts every request
    in :attr:`counts` under botocore's operation names.
    """

    def __init__(self) -> None:
        self.buckets: dict[str, _DoubleBucket] = {}
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

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
        return page

    def head_object(self, *, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        self._count("HeadObject")
        store = self._bucket(Bucket, "HeadObject")
        if Key not in store.objects:
            raise _client_error("404", 404, "HeadObject", "Not Found")
        return {"ContentLength": len(store.objects[Key] or b""), "ResponseMetadata": {"HTTPStatusCode": 200}}

    def get_object(self, *, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        self._count("GetObject")
        store = self._bucket(Bucket, "GetObject")
        if Key not in store.objects:
            raise _client_error("NoSuchKey", 404, "GetObject", "The specified key does not exist.")
        body = store.objects[Key] or b""
        return {"Body": io.BytesIO(body), "ContentLength": len(body)}

    def put_object(self, *, Bucket: str, Key: str, Body: bytes = b"", **_: Any) -> dict[str, Any]:
        self._count("PutObject")
        store = self._bucket(Bucket, "PutObject")
        if Key not in store.objects:
            bisect.insort(store.keys, Key)
        store.objects[Key] = bytes(Body)
        return {"ETag": '"0"'}

    def delete_object(self, *, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        self._count("DeleteObject")
        store = self._bucket(Bucket, "DeleteObject")
        if store.objects.pop(Key, 0) != 0:
            del store.keys[bisect.bisect_left(store.keys, Key)]
        return {}

    def get_paginator(self, name: str) -> _Paginator:
        if name != "list_objects_v2":
            raise NotImplementedError(f"S3Double has no paginator for {name}")
        return _Paginator(self)


# --- S3: moto ---------------------------------------------------------------------------------------------------


class MotoBucket:
    """Fill a bucket of the moto running in this process (``mock_aws`` or a ``ThreadedMotoServer``).

    Objects go straight into moto's backend: a PUT through boto3 costs ~1 ms a key, the backend
    ~30 µs, and what is measured afterwards is moto answering LIST/HEAD/GET like S3 would.
    """

    def __init__(self, client: Any, bucket: str = BUCKET) -> None:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        self.bucket = bucket
        with contextlib.suppress(ClientError):
            client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        self.backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]

    def load(self, keys: Iterable[str], bodies: Mapping[str, bytes] | None = None) -> int:
        bodies = bodies or {}
        count = 0
        for key in keys:
            self.backend.put_object(self.bucket, key, bodies.get(key, b""), disable_notification=True)
            count += 1
        return count

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.backend.delete_object(self.bucket, key)


def moto_client(endpoint_url: str | None = None) -> Any:
    """A boto3 S3 client with the reconciler's retry settings, for moto (in-process or a server)."""
    from annotation_reconciler.storage import make_s3_client

    return make_s3_client(endpoint_url=endpoint_url, region=REGION)


# --- measuring ----------------------------------------------------------------------------------------------------


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def maxrss_mb() -> float:
    """Peak RSS of this process: VmHWM, the high-water mark of its own address space.

    Not ``ru_maxrss``: Linux keeps that across fork and execve, so a worker started by a parent
    holding moto's buckets would report the parent's peak.
    """
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def rss_mb() -> float:
    return float(psutil.Process().memory_info().rss) / 2**20


class RssSampler:
    """The highest RSS of this process seen every ``period`` seconds while the block runs."""

    def __init__(self, period: float = 0.01) -> None:
        self.period = period
        self.start_mb = 0.0
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.peak_mb = max(self.peak_mb, rss_mb())

    def __enter__(self) -> RssSampler:
        self.start_mb = self.peak_mb = rss_mb()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_mb = max(self.peak_mb, rss_mb())

    @property
    def growth_mb(self) -> float:
        return self.peak_mb - self.start_mb


@dataclass
class Measurement:
    """What one timed block cost."""

    wall: float = 0.0
    cpu: float = 0.0
    statements: int = 0
    round_trips: int = 0
    db_seconds: float = 0.0
    s3: dict[str, int] = field(default_factory=dict)

    @property
    def s3_total(self) -> int:
        return sum(self.s3.values())


class Meter:
    """Time a block and take the differences of the SQL and S3 counters over it."""

    def __init__(self, sql: SqlCounter | None = None, s3: Callable[[], Mapping[str, int]] | None = None) -> None:
        self.sql, self.s3 = sql, s3
        self.result = Measurement()

    def __enter__(self) -> Measurement:
        self._sql0 = self.sql.snapshot() if self.sql else (0, 0, 0.0)
        self._s30 = Counter(self.s3()) if self.s3 else Counter()
        self._cpu0 = cpu_seconds()
        self._t0 = time.perf_counter()
        return self.result

    def __exit__(self, *exc: object) -> None:
        r = self.result
        r.wall = time.perf_counter() - self._t0
        r.cpu = cpu_seconds() - self._cpu0
        if self.sql:
            s, t, d = self.sql.snapshot()
            r.statements, r.round_trips, r.db_seconds = s - self._sql0[0], t - self._sql0[1], d - self._sql0[2]
        if self.s3:
            after = Counter(self.s3())
            after.subtract(self._s30)
            r.s3 = {k: v for k, v in after.items() if v}


def s3_brief(counts: Mapping[str, int]) -> str:
    """``LIST 50 · HEAD 0 · GET 0`` (other operations appended when present)."""
    names = {"ListObjectsV2": "LIST", "HeadObject": "HEAD", "GetObject": "GET"}
    parts = [f"{short} {counts.get(op, 0):,}" for op, short in names.items()]
    parts += [f"{op} {n:,}" for op, n in sorted(counts.items()) if op not in names and n]
    return " · ".join(parts)


# --- subprocess workers -------------------------------------------------------------------------------------------


def run_worker(module: str, args: Mapping[str, Any], timeout: float = 1800) -> dict[str, Any]:
    """Run ``python -m module --worker JSON`` in a fresh interpreter; returns the JSON it prints last."""
    command = [sys.executable, "-m", module, "--worker", json.dumps(dict(args))]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"worker {module} {args.get('approach', '')} failed:\n{done.stderr[-4000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return dict(json.loads(lines[-1]))


def worker_args(argv: Sequence[str]) -> dict[str, Any] | None:
    """The worker's arguments when the script was started as ``--worker JSON``, else None."""
    if len(argv) >= 3 and argv[1] == "--worker":
        return dict(json.loads(argv[2]))
    return None


# --- tables -------------------------------------------------------------------------------------------------------


@dataclass
class Section:
    """One table of results: printed with rich as it is made, rendered as markdown for BENCHMARKS.md."""

    key: str
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: Any) -> None:
        self.rows.append([str(c) for c in cells])

    def numeric(self, index: int) -> bool:
        """Right-align a column whose cells all start like a figure."""
        cells = [row[index] for row in self.rows if index < len(row)]
        return bool(cells) and all(c[:1].isdigit() or c[:1] in "—-+" for c in cells)

    def print(self, console: Console) -> None:
        table = Table(title=self.title, title_justify="left", show_lines=False)
        for i, column in enumerate(self.columns):
            table.add_column(column, justify="right" if self.numeric(i) else "left", overflow="fold")
        for row in self.rows:
            table.add_row(*row)
        console.print(table)
        for note in self.notes:
            console.print(f"[dim]{note}")

    def markdown(self) -> str:
        def cell(value: str) -> str:
            return value.replace("|", "\\|")

        lines = [f"#### {self.title}", ""]
        lines.append("| " + " | ".join(cell(c) for c in self.columns) + " |")
        lines.append("|" + "|".join("---:" if self.numeric(i) else "---" for i in range(len(self.columns))) + "|")
        lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"{note}  " for note in self.notes]
        return "\n".join(lines) + "\n"


@dataclass
class BenchContext:
    """What run_all hands every benchmark: the database server, the sizes and the console."""

    factory: DatabaseFactory
    sizes: list[int]
    moto_sizes: list[int]
    console: Console = field(default_factory=lambda: Console(width=None if sys.stdout.isatty() else 200))
    sections: list[Section] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)  # headline figures for the targets table

    def emit(self, section: Section) -> Section:
        section.print(self.console)
        self.sections.append(section)
        return section


def fmt_s(seconds: float) -> str:
    if seconds >= 100:
        return f"{seconds:,.0f} s"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1000:.1f} ms"


def fmt_n(n: float) -> str:
    return f"{n:,.0f}"


def size_label(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def parse_sizes(raw: str) -> list[int]:
    """``1k,10k,100k,1M`` or ``1000,10000`` -> [1000, 10000, …]."""
    sizes = []
    for part in raw.split(","):
        part = part.strip().lower()
        if not part:
            continue
        factor = 1_000_000 if part.endswith("m") else 1000 if part.endswith("k") else 1
        sizes.append(int(float(part.rstrip("mk")) * factor))
    return sizes


def machine() -> dict[str, str]:
    """Cores, nproc, CPU model, memory and Python version of this machine."""
    model = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip()
    return {
        "cpu": model,
        "cores (os.cpu_count)": str(os.cpu_count()),
        "nproc": nproc,
        "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
