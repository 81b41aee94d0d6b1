"""Every deployment setting, read from CDK context with safe defaults (dry run on, 72 hours' grace)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aws_cdk as cdk


@dataclass(frozen=True)
class StackConfig:
    bucket_name: str = "cryoet-data-portal-public"
    key_prefix: str = ""  # the portal's objects under this key prefix ("" = the whole bucket)
    stored_path_prefix: str = ""  # RECONCILER_S3_PREFIX ("" = s3://{bucket}/)
    db_secret: str = "annotation-reconciler/portal-db"  # a Secrets Manager secret name or ARN (RDS secret JSON)
    vpc_id: str | None = None
    subnet_ids: tuple[str, ...] = ()
    availability_zones: tuple[str, ...] = ()
    security_group_id: str | None = None
    dry_run: bool = True
    grace_period_hours: float = 72.0
    max_purge_fraction: float = 0.1
    purge_schedule: str = "rate(1 hour)"
    reconcile_schedule: str = "rate(1 day)"
    events_batch_size: int = 100
    events_batching_window_s: int = 20
    events_max_concurrency: int = 5
    work_max_concurrency: int = 2
    inventory_manifest: str | None = None
    alarm_email: str | None = None
    log_retention_days: int = 90
    owned_bucket: bool = False  # create the bucket here and use direct S3 notifications (tests, sandboxes)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_context(cls, scope: cdk.App | cdk.Stack) -> StackConfig:
        node = scope.node

        def get(name: str, default: Any) -> Any:
            value = node.try_get_context(name)
            return default if value is None else value

        def as_bool(name: str, default: bool) -> bool:
            value = get(name, default)
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "false"):
                return str(value).lower() == "true"
            raise ValueError(f"context {name}={value!r} must be true or false")

        def as_list(name: str) -> tuple[str, ...]:
            value = get(name, [])
            return tuple(value.split(",") if isinstance(value, str) else value)

        config = cls(
            bucket_name=str(get("bucket_name", cls.bucket_name)),
            key_prefix=str(get("key_prefix", "")),
            stored_path_prefix=str(get("stored_path_prefix", "")),
            db_secret=str(get("db_secret", cls.db_secret)),
            vpc_id=get("vpc_id", None),
            subnet_ids=as_list("subnet_ids"),
            availability_zones=as_list("availability_zones"),
            security_group_id=get("security_group_id", None),
            dry_run=as_bool("dry_run", True),
            grace_period_hours=float(get("grace_period_hours", 72)),
            max_purge_fraction=float(get("max_purge_fraction", 0.1)),
            purge_schedule=str(get("purge_schedule", cls.purge_schedule)),
            reconcile_schedule=str(get("reconcile_schedule", cls.reconcile_schedule)),
            events_batch_size=int(get("events_batch_size", 100)),
            events_batching_window_s=int(get("events_batching_window_s", 20)),
            events_max_concurrency=int(get("events_max_concurrency", 5)),
            work_max_concurrency=int(get("work_max_concurrency", 2)),
            inventory_manifest=get("inventory_manifest", None),
            alarm_email=get("alarm_email", None),
            log_retention_days=int(get("log_retention_days", 90)),
            owned_bucket=as_bool("owned_bucket", False),
        )
        config.validate()
        return config

    def validate(self) -> None:
        problems = []
        if self.grace_period_hours < 1:
            problems.append("grace_period_hours must be at least 1 in a deployment")
        if not 0 < self.max_purge_fraction <= 1:
            problems.append("max_purge_fraction must be in (0, 1]")
        if self.vpc_id and (not self.subnet_ids or len(self.subnet_ids) != len(self.availability_zones)):
            problems.append("vpc_id needs subnet_ids and availability_zones of the same length")
        if self.vpc_id and not self.security_group_id:
            problems.append("vpc_id needs security_group_id (the group the portal database admits)")
        if not 1 <= self.events_batch_size <= 10000:
            problems.append("events_batch_size must be within 1..10000")
        if self.inventory_manifest and not self.inventory_manifest.startswith("s3://"):
            problems.append("inventory_manifest must be an s3:// URL")
        if problems:
            raise ValueError("invalid CDK context: " + "; ".join(problems))
