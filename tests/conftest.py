"""Shared fixtures: a real PostgreSQL (started once per session), fresh databases, moto S3/SQS."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.loaders
import botocore.session
import hypothesis
import pytest
from sqlalchemy import Engine

from annotation_reconciler.db import make_engine
from annotation_reconciler.local.databases import DatabaseFactory
from annotation_reconciler.local.moto_server import LocalMotoServer, use_dummy_credentials
from annotation_reconciler.local.postgres import LocalPostgres
from annotation_reconciler.local.synthetic import PortalSpec
from support.fresh_databases import FreshDatabases
from support.wired import Wired, wire
from support.world import World, make_world

BUCKET = "cryoet-data-portal-public"
REGION = "us-west-2"

use_dummy_credentials()
os.environ.pop("AWS_ENDPOINT_URL", None)

# The property tests check what is decided, not how fast: on 2 shared cores one example can take 300 ms for reasons
# of its neighbours (a deadline failure there is noise, and Hypothesis reports it as a flaky test).
hypothesis.settings.register_profile("shared-cores", deadline=None)
hypothesis.settings.load_profile("shared-cores")


def _share_botocore_service_models() -> None:
    """One botocore loader for every session of the test process. moto drops boto3's default session at each
    ``mock_aws``, so every test built its clients from a new session, which parsed the service models' JSON again:
    0.2-0.8 s for each first S3 client of a test on the shared 2-core machine, 25 ms with the models loaded once.
    The loader only reads botocore's data files (the same ones for every session), so sharing it changes no
    client's behaviour; the Lambdas themselves build one session per cold start anyway."""
    loader = botocore.loaders.create_loader()

    def register_data_loader(session: botocore.session.Session) -> None:
        session._components.lazy_register_component("data_loader", lambda: loader)

    botocore.session.Session._register_data_loader = register_data_loader  # type: ignore[method-assign]


_share_botocore_service_models()


def pytest_configure(config: pytest.Config) -> None:
    """Without xdist (``-p no:xdist``, as under ``make mutate``) the ``worker_id`` fixture comes from
    support/worker_id.py; with xdist, from xdist (a fixture defined here would shadow it)."""
    if not config.pluginmanager.hasplugin("xdist"):
        import support.worker_id

        config.pluginmanager.register(support.worker_id, "reconciler-worker-id")


#: The longest tests (the model-based test takes about 4 of the suite's 8 minutes on one worker): collected
#: last, they would start when the other worker is nearly done and the suite would wait on them alone.
LONGEST_FIRST = (
    "tests/reliability/test_model.py",
    "tests/e2e/test_demo.py",
    "tests/infra/test_bundling.py",
    "tests/e2e/test_local_command.py",  # 16 s, its subprocess's fixed --duration 12 most of it
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the longest tests first, so that under xdist the other worker takes the many short ones meanwhile.

    Under ``make mutate``, a mutant's session stops at its first failing test (``-x``): there the shortest tests
    run first, by the durations mutmut recorded in its stats run, so a mutant a unit test kills costs that test
    only (the verdicts do not depend on the order; the time does)."""
    durations = _mutmut_durations() if "__mutmut_" in os.environ.get("MUTANT_UNDER_TEST", "") else {}
    if durations:
        items.sort(key=lambda item: durations.get(item.nodeid, float("inf")))
        return
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


def _mutmut_durations() -> dict[str, float]:
    """Each test's duration in mutmut's stats run (its mutmut-stats.json, beside the mutated code), if any."""
    import json

    for path in ("mutmut-stats.json", "mutants/mutmut-stats.json"):
        try:
            with open(path) as stats:
                found = json.load(stats).get("duration_by_test", {})
        except (OSError, ValueError):
            continue
        return {k: float(v) for k, v in found.items() if isinstance(v, int | float)}
    return {}


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """RECONCILER_TEST_DATABASE_URL if set, else a throwaway server started for this session."""
    given = os.environ.get("RECONCILER_TEST_DATABASE_URL")
    if given:
        yield given
        return
    with LocalPostgres() as server:
        yield server.url


@pytest.fixture(scope="session")
def db_factory(pg_server_url: str, worker_id: str) -> DatabaseFactory:
    return DatabaseFactory(pg_server_url, template=f"reconciler_template_{worker_id}")


@pytest.fixture(scope="session")
def fresh_databases(db_factory: DatabaseFactory) -> Iterator[FreshDatabases]:
    databases = FreshDatabases(db_factory)
    yield databases
    databases.close()


@pytest.fixture
def db_url(fresh_databases: FreshDatabases, worker_id: str) -> str:
    """A fresh database (portal schema + our migrations) for each test, made while the test before it ran."""
    return fresh_databases.take(f"test_{worker_id}")


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """In-process moto for S3, SQS, EventBridge and Secrets Manager."""
    from moto import mock_aws

    # an earlier test (the demo, the local stack) may have pointed boto3 at a moto server now gone
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield


@pytest.fixture
def s3(aws: None) -> Any:
    client = boto3.client("s3", region_name=REGION)
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    return client


@pytest.fixture(scope="session")
def moto_server() -> Iterator[LocalMotoServer]:
    """A real-HTTP moto server on 127.0.0.1, shared by the session (reset per test by users)."""
    with LocalMotoServer() as server:
        yield server


@pytest.fixture
def moto_endpoint(moto_server: LocalMotoServer) -> str:
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{moto_server.endpoint_url}/moto-api/reset", method="POST"))
    return moto_server.endpoint_url


@pytest.fixture
def world_spec() -> PortalSpec | None:
    """The synthetic portal of the ``world`` fixture; a test module overrides it for another shape."""
    return None


@pytest.fixture
def world(engine: Engine, s3: Any, db_url: str, world_spec: PortalSpec | None) -> World:
    """The synthetic portal in moto S3 and in a fresh database, with a clock the test controls."""
    return make_world(engine, s3, db_url, world_spec)


@pytest.fixture
def small(engine: Engine, s3: Any, db_url: str) -> World:
    """Two datasets of five runs, one annotation per voxel spacing: the portal's common shape."""
    return make_world(engine, s3, db_url, PortalSpec(datasets=2, runs_per_dataset=5, annotations_per_voxel_spacing=1))


@pytest.fixture
def wired(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[Wired]:
    """The world wired to the handlers' runtime, as Lambda runs them (``support/wired.py``)."""
    base = wire(world, monkeypatch)
    yield base
    base.runtime.engine.dispose()


@pytest.fixture
def no_stray_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process moto needs boto3's default endpoint; a test that exported AWS_ENDPOINT_URL must not leak here."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
