"""Every deployment setting, read from CDK context with safe defaults (dry run on, 72 hours' grace), and
checked: a context that cannot work is refused at synth, naming every key to fix.

Where the context comes from (an environment file, ``-c key=value``, ``build_app(context)`` in tests) is
``infra/environment.py``'s.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aws_cdk as cdk

#: ``db_ca_bundle`` value that means "the Lambda runtime's own CAs" (a database certificate from a public CA).
SYSTEM_CAS = "system"
#: Connections one Lambda container may hold: annotation_reconciler.db.make_engine's pool_size + max_overflow
#: (tests/infra check the two agree).
CONNECTIONS_PER_CONTAINER = 4
#: The schedule function's reserved concurrency (an hourly purge and the daily fan-out may overlap).
SCHEDULE_CONCURRENCY = 2
#: Services the Lambdas call from inside the VPC; each needs an endpoint there unless a NAT is routed.
ENDPOINT_SERVICES = ("s3", "sqs", "secretsmanager")

_ID_PATTERNS = {
    "vpc_id": re.compile(r"^vpc-[0-9a-f]{8,17}$"),
    "subnet_ids": re.compile(r"^subnet-[0-9a-f]{8,17}$"),
    "route_table_ids": re.compile(r"^rtb-[0-9a-f]{8,17}$"),
    "security_group_id": re.compile(r"^sg-[0-9a-f]{8,17}$"),
    "db_security_group_id": re.compile(r"^sg-[0-9a-f]{8,17}$"),
    "kms_key_arns": re.compile(
        r"^arn:aws[a-z-]*:kms:[a-z]{2}(-gov)?-[a-z]+-\d:\d{12}:key/(mrk-[0-9a-f]{32}|[0-9a-f-]{36})$"
    ),
}


class ContextError(ValueError):
    """The CDK context cannot be deployed; the message names every key to fix."""


@dataclass(frozen=True)
class StackConfig:
    bucket_name: str = "cryoet-data-portal-public"
    key_prefix: str = ""  # the portal's objects under this key prefix ("" = the whole bucket)
    stored_path_prefix: str = ""  # RECONCILER_S3_PREFIX ("" = s3://{bucket}/)
    db_secret: str = "annotation-reconciler/portal-db"  # a Secrets Manager secret name or ARN (RDS secret JSON)
    events_db_secret: str | None = None  # the events Lambda's own secret (a role without DELETE), else db_secret
    # A PEM file (path from the repository's top) of the CAs that sign the database's certificate, bundled into
    # the Lambda asset as RECONCILER_DB_CA_BUNDLE: for RDS, the global bundle (the runbook downloads it);
    # "system": the runtime's own CAs (a certificate from a public CA). Required with a vpc_id.
    db_ca_bundle: str | None = None
    # The database's max_connections left for the reconciler: the synth refuses a concurrency that could exceed it.
    db_max_connections: int | None = None
    # Customer managed KMS keys (full key ARNs) that encrypt the secrets or the inventory: kms:Decrypt on exactly
    # these, through Secrets Manager and S3 only.
    kms_key_arns: tuple[str, ...] = ()
    vpc_id: str | None = None
    vpc_cidr: str | None = None  # the VPC's CIDR: the interface endpoints (private DNS for the whole VPC) admit it
    subnet_ids: tuple[str, ...] = ()
    availability_zones: tuple[str, ...] = ()
    route_table_ids: tuple[str, ...] = ()  # the subnets' route tables, for the S3 gateway endpoint
    security_group_id: str | None = None  # an existing group to attach as well (e.g. one the database admits)
    db_security_group_id: str | None = None  # the database's group: the stack adds an ingress rule from the Lambdas
    db_port: int = 5432
    allow_no_vpc: bool = False  # sandboxes and tests only: the Lambdas run outside any VPC
    vpc_has_nat: bool = False  # the subnets route to a NAT: no endpoints are created
    existing_endpoints: tuple[str, ...] = ()  # endpoints the VPC already has (s3, sqs, secretsmanager)
    dry_run: bool = True
    grace_period_hours: float = 72.0
    max_purge_fraction: float = 0.1
    purge_schedule: str = "rate(1 hour)"
    reconcile_schedule: str = "rate(1 day)"
    events_batch_size: int = 100
    events_batching_window_s: int = 20
    events_max_concurrency: int = 5
    work_max_concurrency: int = 2
    reserve_concurrency: bool = True  # reserved concurrency per function (needs an account limit above 10)
    inventory_manifest: str | None = None
    alarm_email: str | None = None
    log_retention_days: int = 90
    owned_bucket: bool = False  # create the bucket here (tests, sandboxes); its events go through EventBridge too
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_context(cls, scope: cdk.App | cdk.Stack) -> StackConfig:
        node = scope.node
        problems: list[str] = []

        def get(name: str, default: Any) -> Any:
            value = node.try_get_context(name)
            return default if value is None else value

        def as_bool(name: str, default: bool) -> bool:
            value = get(name, default)
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "false"):
                return str(value).lower() == "true"
            problems.append(f"context {name}={value!r} must be true or false")
            return default

        def as_list(name: str) -> tuple[str, ...]:
            value = get(name, [])
            items = value.split(",") if isinstance(value, str) else value
            return tuple(str(v).strip() for v in items if str(v).strip())

        def as_number(name: str, default: float, kind: type[int] | type[float] = float) -> Any:
            value = get(name, default)
            try:
                return kind(value)
            except (TypeError, ValueError):
                problems.append(f"context {name}={value!r} must be a {'whole ' if kind is int else ''}number")
                return default

        def as_text(name: str) -> str | None:
            value = get(name, None)
            return None if value is None or str(value).strip() == "" else str(value).strip()

        config = cls(
            bucket_name=str(get("bucket_name", cls.bucket_name)),
            key_prefix=str(get("key_prefix", "")),
            stored_path_prefix=str(get("stored_path_prefix", "")),
            db_secret=str(get("db_secret", cls.db_secret)),
            events_db_secret=as_text("events_db_secret"),
            db_ca_bundle=as_text("db_ca_bundle"),
            db_max_connections=(
                None if get("db_max_connections", None) is None else as_number("db_max_connections", 0, int)
            ),
            kms_key_arns=as_list("kms_key_arns"),
            vpc_id=as_text("vpc_id"),
            vpc_cidr=as_text("vpc_cidr"),
            subnet_ids=as_list("subnet_ids"),
            availability_zones=as_list("availability_zones"),
            route_table_ids=as_list("route_table_ids"),
            security_group_id=as_text("security_group_id"),
            db_security_group_id=as_text("db_security_group_id"),
            db_port=as_number("db_port", 5432, int),
            allow_no_vpc=as_bool("allow_no_vpc", False),
            vpc_has_nat=as_bool("vpc_has_nat", False),
            existing_endpoints=tuple(e.lower() for e in as_list("existing_endpoints")),
            dry_run=as_bool("dry_run", True),
            grace_period_hours=as_number("grace_period_hours", 72.0),
            max_purge_fraction=as_number("max_purge_fraction", 0.1),
            purge_schedule=str(get("purge_schedule", cls.purge_schedule)),
            reconcile_schedule=str(get("reconcile_schedule", cls.reconcile_schedule)),
            events_batch_size=as_number("events_batch_size", 100, int),
            events_batching_window_s=as_number("events_batching_window_s", 20, int),
            events_max_concurrency=as_number("events_max_concurrency", 5, int),
            work_max_concurrency=as_number("work_max_concurrency", 2, int),
            reserve_concurrency=as_bool("reserve_concurrency", True),
            inventory_manifest=as_text("inventory_manifest"),
            alarm_email=as_text("alarm_email"),
            log_retention_days=as_number("log_retention_days", 90, int),
            owned_bucket=as_bool("owned_bucket", False),
        )
        config.validate(problems)
        return config

    @property
    def bundles_ca(self) -> bool:
        """Whether a CA bundle file goes into the asset (``db_ca_bundle`` set, and not ``"system"``)."""
        return bool(self.db_ca_bundle) and self.db_ca_bundle != SYSTEM_CAS

    @property
    def ca_bundle_path(self) -> Path:
        """The CA bundle file (``db_ca_bundle`` relative to the repository's top, or absolute)."""
        path = Path(self.db_ca_bundle or "")
        return path if path.is_absolute() else Path(__file__).resolve().parent.parent / path

    @property
    def peak_connections(self) -> int:
        """The most connections the three functions can open at once (each container's pool, full)."""
        total = self.events_max_concurrency + self.work_max_concurrency + SCHEDULE_CONCURRENCY
        return total * CONNECTIONS_PER_CONTAINER

    @property
    def endpoints_to_create(self) -> tuple[str, ...]:
        """The VPC endpoints this stack creates (none outside a VPC or behind a NAT)."""
        if not self.vpc_id or self.vpc_has_nat:
            return ()
        return tuple(s for s in ENDPOINT_SERVICES if s not in self.existing_endpoints)

    def validate(self, problems: list[str] | None = None) -> None:
        problems = list(problems or [])
        if self.grace_period_hours < 1:
            problems.append("grace_period_hours must be at least 1 in a deployment")
        if not 0 < self.max_purge_fraction <= 1:
            problems.append("max_purge_fraction must be in (0, 1]")
        if not self.vpc_id and not self.allow_no_vpc:
            problems.append(
                "vpc_id is not set: the Lambdas must run in the portal database's VPC; give vpc_id, subnet_ids, "
                "availability_zones and route_table_ids (infra/env/*.json), or set allow_no_vpc=true for a sandbox "
                "whose database is reachable without one"
            )
        if self.vpc_id:
            self._validate_network(problems)
        pattern = _ID_PATTERNS["kms_key_arns"]
        for arn in self.kms_key_arns:
            if not pattern.match(arn):
                problems.append(
                    f"kms_key_arns holds {arn!r}, which is not a key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID; an alias "
                    "grants nothing)"
                )
        if self.vpc_id and not self.db_ca_bundle:
            problems.append(
                "db_ca_bundle is not set: the Lambdas verify the database's certificate, and RDS signs it with its "
                "own CA; download the RDS global bundle (curl -o infra/certs/rds-global-bundle.pem "
                "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem) and set db_ca_bundle to "
                'infra/certs/rds-global-bundle.pem, or "system" for a certificate from a public CA'
            )
        if self.bundles_ca and not self.ca_bundle_path.is_file():
            problems.append(
                f"db_ca_bundle={self.db_ca_bundle!r} is not a file: download the RDS global bundle first, e.g. "
                "curl -o infra/certs/rds-global-bundle.pem https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
            )
        if not 1 <= self.events_batch_size <= 10000:
            problems.append("events_batch_size must be within 1..10000")
        if not 0 <= self.events_batching_window_s <= 300:
            problems.append("events_batching_window_s must be within 0..300 seconds")
        for name in ("events_max_concurrency", "work_max_concurrency"):
            if not 2 <= getattr(self, name) <= 1000:
                problems.append(f"{name} must be within 2..1000 (the SQS event source's limits)")
        if self.db_max_connections is not None and self.peak_connections > self.db_max_connections:
            problems.append(
                f"events_max_concurrency + work_max_concurrency + {SCHEDULE_CONCURRENCY} (schedule) = "
                f"{self.peak_connections // CONNECTIONS_PER_CONTAINER} containers x {CONNECTIONS_PER_CONTAINER} "
                f"connections each = {self.peak_connections}, above db_max_connections={self.db_max_connections}: "
                "lower events_max_concurrency or work_max_concurrency, or raise db_max_connections if the database "
                "has room (SHOW max_connections, less what the portal itself uses)"
            )
        if self.db_max_connections is not None and self.db_max_connections < 1:
            problems.append("db_max_connections must be a positive number of connections")
        if self.inventory_manifest and not self.inventory_manifest.startswith("s3://"):
            problems.append("inventory_manifest must be an s3:// URL")
        if self.alarm_email and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", self.alarm_email):
            problems.append(f"alarm_email={self.alarm_email!r} is not an email address")
        if problems:
            raise ContextError("invalid CDK context: " + "; ".join(problems))

    def _validate_network(self, problems: list[str]) -> None:
        for name, pattern in _ID_PATTERNS.items():
            if name == "kms_key_arns":
                continue  # checked with or without a VPC
            value = getattr(self, name)
            for item in value if isinstance(value, tuple) else [value] if value else []:
                if not pattern.match(item):
                    problems.append(f"{name} holds {item!r}, which is not an id of the form {pattern.pattern}")
        if not self.subnet_ids or len(self.subnet_ids) != len(self.availability_zones):
            problems.append("vpc_id needs subnet_ids and availability_zones of the same length (one zone per subnet)")
        unknown = sorted(set(self.existing_endpoints) - set(ENDPOINT_SERVICES))
        if unknown:
            problems.append(f"existing_endpoints may name {', '.join(ENDPOINT_SERVICES)}, not {', '.join(unknown)}")
        if "s3" in self.endpoints_to_create and len(self.route_table_ids) != len(self.subnet_ids):
            problems.append(
                "route_table_ids must give each subnet's route table (same length as subnet_ids) for the S3 "
                "gateway endpoint; or list s3 in existing_endpoints, or set vpc_has_nat=true"
            )
        if not 1 <= self.db_port <= 65535:
            problems.append("db_port must be a TCP port")
        if self.vpc_cidr is not None:
            try:
                ipaddress.IPv4Network(self.vpc_cidr)
            except ValueError:
                problems.append(f"vpc_cidr={self.vpc_cidr!r} is not an IPv4 CIDR block such as 10.0.0.0/16")
        interface = [e for e in self.endpoints_to_create if e != "s3"]
        if interface and not self.vpc_cidr:
            problems.append(
                f"vpc_cidr is not set: the {' and '.join(interface)} interface endpoints this stack creates take over "
                "those services' names for the whole VPC (private DNS), so their security group must admit the "
                "VPC's CIDR (aws ec2 describe-vpcs --vpc-ids VPC --query Vpcs[0].CidrBlock); or list them in "
                "existing_endpoints, or set vpc_has_nat=true"
            )
