"""Build the reconciler from the environment once per process (a Lambda container, a CLI run)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from annotation_reconciler.aws import make_client
from annotation_reconciler.db import cached_engine, cached_secret_engine
from annotation_reconciler.service.context import Context
from annotation_reconciler.service.reconciler import Reconciler
from annotation_reconciler.settings import Settings
from annotation_reconciler.storage import S3Storage, make_s3_client

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    reconciler: Reconciler
    sqs: SQSClient | Any


def build_runtime(env: Mapping[str, str] | None = None) -> Runtime:
    """Validate the settings (raising SettingsError with every problem) and wire the parts."""
    settings = Settings.from_env(env)
    if settings.db_url:
        engine = cached_engine(settings.db_url)
    else:
        assert settings.db_secret_arn is not None
        # credentials read with a max age, and read again when the server refuses them (a rotation)
        engine = cached_secret_engine(settings.db_secret_arn)
    storage = S3Storage(make_s3_client(max_pool_connections=settings.s3_concurrency), settings.bucket)
    return Runtime(settings, engine, Reconciler(Context(engine, storage, settings)), make_client("sqs"))


@lru_cache(maxsize=1)
def cached_runtime() -> Runtime:
    """The process-wide runtime (Lambda reuses it across invocations of a warm container)."""
    return build_runtime()
