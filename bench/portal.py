"""The benchmarks' data: PostgreSQL, the synthetic portal's layout and rows, the keys of its bucket, moto.

- :func:`postgres` starts a throwaway server (``local.postgres``) and yields a :class:`DatabaseFactory`.
- :func:`portal_spec` lays out a portal of N annotations with realistic data-file noise, and
  :func:`load_rows` bulk-loads its rows in chunks of datasets (``local.synthetic_rows.write_rows``).
- :class:`MotoBucket` fills a moto bucket through moto's backend (no HTTP per key); :class:`MotoServer` is one
  moto server for a whole run, emptied and refilled between uses.
- :class:`LoadedPortal` is one loaded database with the stale set its workers must find; :func:`truncate_ledger`
  empties the reconciler's ledger between two workers on the same rows.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import random
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, replace
from typing import Any

from botocore.exceptions import ClientError
from sqlalchemy import Engine, text

from annotation_reconciler.db import make_engine
from annotation_reconciler.local.databases import DatabaseFactory
from annotation_reconciler.local.moto_server import use_dummy_credentials
from annotation_reconciler.local.postgres import LocalPostgres
from annotation_reconciler.local.synthetic import PortalSpec, SyntheticPortal, build_portal
from annotation_reconciler.local.synthetic_rows import write_rows
from annotation_reconciler.names import Env
from bench.measure import run_worker
from bench.report import BenchContext, fmt_s, size_label
from bench.s3double import s3_brief

BUCKET = "cryoet-data-portal-public"
INVENTORY_BUCKET = "portal-inventory"
REGION = "us-west-2"
SEED = 9

use_dummy_credentials()  # nothing here may ever reach real AWS
os.environ.pop("AWS_ENDPOINT_URL", None)


# --- PostgreSQL ---------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def postgres() -> Iterator[DatabaseFactory]:
    """A private PostgreSQL server for the run (``RECONCILER_BENCH_DATABASE_URL`` to use an existing one)."""
    given = os.environ.get(Env.BENCH_DATABASE_URL)
    if given:
        yield DatabaseFactory(given, template="bench_template")
        return
    with LocalPostgres() as server:
        yield DatabaseFactory(server.url, template="bench_template")


def copy_database(factory: DatabaseFactory, source: str, name: str) -> str:
    """A new database ``name`` copied from ``source`` (CREATE DATABASE … TEMPLATE); returns its URL."""
    factory._recreate(name, source)
    return factory.url_for(name)


def truncate_ledger(url: str) -> None:
    """Empty the reconciler's ledger (quarantine and missing data files), leaving the portal's rows as loaded."""
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text("TRUNCATE annotation_reconciler.annotation_quarantine, annotation_reconciler.missing_annotation_file")
        )
    engine.dispose()


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


def load_rows(engine: Engine, spec: PortalSpec, *, with_statistics: bool = True) -> dict[str, int]:
    """Bulk-load the portal's rows (COPY, chunk by chunk), then ANALYZE unless ``with_statistics`` is False;
    returns metadata key -> annotation id."""
    ids: dict[str, int] = {}
    for chunk in portal_chunks(spec):
        ids.update(write_rows(engine, chunk))
    if with_statistics:
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


class MotoServer:
    """One ThreadedMotoServer for the run, emptied between uses."""

    def __init__(self) -> None:
        from annotation_reconciler.local.moto_server import LocalMotoServer

        self.server = LocalMotoServer().start()
        self.endpoint = self.server.endpoint_url

    def fill(self, keys: Any) -> int:
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")).close()
        gc.collect()
        return MotoBucket(moto_client(self.endpoint)).load(keys)

    def stop(self) -> None:
        self.server.stop()


def moto_client(endpoint_url: str | None = None) -> Any:
    """A boto3 S3 client with the reconciler's retry settings, for moto (in-process or a server)."""
    from annotation_reconciler.storage import make_s3_client

    return make_s3_client(endpoint_url=endpoint_url, region=REGION)


def judged_paths(conn: Any, victims: list[int]) -> dict[int, str]:
    """The victims' current stored paths (the deletion routine deletes a row only on the path it was judged on)."""
    rows = conn.execute(
        text("SELECT id, s3_metadata_path FROM annotation WHERE id = ANY(CAST(:ids AS integer[]))"), {"ids": victims}
    )
    return {r[0]: r[1] for r in rows}


class LoadedPortal:
    """A database loaded with one layout's rows, and the stale set a worker must find in it: the annotations (a
    seeded ``fraction``) whose metadata files the bucket leaves out. :meth:`run` runs one worker of the benchmark
    module ``worker`` (``python -m WORKER --worker JSON``) on a fresh ledger."""

    def __init__(self, ctx: BenchContext, name: str, spec: PortalSpec, *, fraction: float, worker: str) -> None:
        self.ctx, self.name, self.spec = ctx, name, spec
        self.fraction, self.worker = fraction, worker
        started = time.perf_counter()
        self.url = ctx.factory.fresh(name)
        engine = make_engine(self.url)
        self.ids = load_rows(engine, spec)
        engine.dispose()
        keys = metadata_keys(spec)
        self.removed = {keys[i] for i in stale_indices(spec.annotations, fraction)}
        self.expected = sorted(self.ids[k] for k in self.removed)
        self.load_s = time.perf_counter() - started
        ctx.console.print(
            f"[dim]{size_label(spec.annotations)} at {spec.annotations_per_voxel_spacing}/voxel spacing: "
            f"{spec.datasets} datasets, {objects_per_annotation(spec)} objects per annotation; "
            f"rows loaded in {fmt_s(self.load_s)}"
        )

    def run(
        self, approach: str, backend: str = "double", endpoint: str = "", *, whole: bool = True, **extra: Any
    ) -> dict[str, Any]:
        """One worker's result; with ``whole`` (a run over the whole portal) it must report no error and exactly
        the expected stale set (a run over part of the portal checks its own)."""
        truncate_ledger(self.url)
        args = {
            "approach": approach,
            "backend": backend,
            "endpoint": endpoint,
            "db_url": self.url,
            "spec": asdict(self.spec),
            "fraction": self.fraction,
            **extra,
        }
        result = run_worker(self.worker, args)
        if whole:
            if result["errors"]:
                raise AssertionError(f"{approach} on {backend}: {result['errors'][:5]}")
            if sorted(result["stale"]) != self.expected:
                found = set(result["stale"])
                raise AssertionError(
                    f"{approach} on {backend} found {len(found)} stale, expected {len(self.expected)}: "
                    f"missed {sorted(set(self.expected) - found)[:10]}, extra {sorted(found - set(self.expected))[:10]}"
                )
        lanes = f" ({result['lanes']} lanes, {fmt_s(result['wall'])} elapsed)" if result["lanes"] > 1 else ""
        self.ctx.console.print(
            f"[dim]  {approach:9} {backend:6} c={result['concurrency']:<3} {fmt_s(result['time']):>9}{lanes}  "
            f"{s3_brief(result['s3'])}  SQL {result['statements']:,}  peak RSS {result['maxrss_mb']:.0f} MB"
        )
        return result

    def drop(self) -> None:
        self.ctx.factory.drop(self.name)


def run_alone(run: Callable[[BenchContext], object], doc: str) -> None:
    """A benchmark's ``main()`` when it runs on its own: its docstring's first line as ``--help``, and a
    throwaway PostgreSQL for the run (``run_all`` passes its own)."""
    argparse.ArgumentParser(description=doc.splitlines()[0]).parse_args()
    with postgres() as factory:
        run(BenchContext(factory, [], []))
