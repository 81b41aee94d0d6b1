"""One typed, validated settings object built from the environment.

Every problem is collected and reported at once, each naming the variable and what to set::

    >>> settings = Settings.from_env({"RECONCILER_DB_URL": "postgresql+pg8000://u@h/db",
    ...                               "RECONCILER_BUCKET": "cryoet-data-portal-public"})
    >>> settings.dry_run, settings.grace_period_hours, settings.s3_prefix
    (True, 72.0, 's3://cryoet-data-portal-public/')
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from annotation_reconciler.errors import SettingsError
from annotation_reconciler.names import Env, names_of

T = TypeVar("T")

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
#: The longest grace period accepted (a year); a larger one is a typo, and would overflow dates.
MAX_GRACE_HOURS = 8760
#: S3 requests in flight at once (listings, HEADs) by default: chosen from BENCHMARKS.md's concurrency sweep.
DEFAULT_S3_CONCURRENCY = 32
#: The most accepted: a Lambda's threads and sockets are finite, and S3 answers 503 SlowDown above
#: about 5,500 GET/HEAD/LIST a second per prefix partition.
MAX_S3_CONCURRENCY = 128
#: An S3 Inventory report older than this many hours is refused (AWS writes one a day).
DEFAULT_INVENTORY_MAX_AGE_HOURS = 48.0
#: the mass-deletion guard shipped in settings and in infra/env/examples/*.json
DEFAULT_MAX_PURGE_FRACTION = 0.1
#: The most accepted: a week-old report would leave a week of lost events unseen.
MAX_INVENTORY_AGE_HOURS = 168
#: Every ``RECONCILER_*`` variable the project reads: the settings below, then the local and test tools' own.
KNOWN_VARIABLES = frozenset(names_of(Env))
#: Closed ledger history (released, purged, restored rows and closed reports) is kept this many days, then pruned.
DEFAULT_LEDGER_RETENTION_DAYS = 400.0
MAX_LEDGER_RETENTION_DAYS = 36_600
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


def parse_bool(name: str, raw: str) -> bool:
    """Read a strict boolean: true/false, 1/0, yes/no, on/off (any case); anything else is refused."""
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{name}={raw!r} is not a boolean: set it to 'true' or 'false'")


def unknown_variables(env: Mapping[str, str]) -> list[str]:
    """One problem per ``RECONCILER_*`` variable of ``env`` the project does not read, naming the closest known
    one (a misspelled ``RECONCILER_DRYRUN=false`` would otherwise be ignored and the run stay a dry run)."""
    problems = []
    for name in sorted(n for n in env if n.startswith("RECONCILER_") and n not in KNOWN_VARIABLES):
        close = difflib.get_close_matches(name, sorted(KNOWN_VARIABLES), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else "no such setting"
        problems.append(f"{name} is not a setting of the reconciler ({hint}): rename or unset it")
    return problems


def validate_bucket(name: str, raw: str) -> str:
    """Check an S3 bucket name (no scheme, no slash)."""
    if not _BUCKET_RE.match(raw) or ".." in raw:
        raise ValueError(
            f"{name}={raw!r} is not an S3 bucket name: give the bare name, e.g. 'cryoet-data-portal-public'"
        )
    return raw


@dataclass(frozen=True)
class Settings:
    """What the reconciler needs to run; build it with :meth:`from_env`."""

    bucket: str
    db_url: str | None = None
    db_secret_arn: str | None = None
    s3_prefix: str = ""
    dry_run: bool = True
    grace_period_hours: float = 72.0
    allow_short_grace: bool = False
    max_purge_fraction: float = 0.1
    work_queue_url: str | None = None
    inventory_manifest: str | None = None
    scan_page_limit: int = 200
    resurrection_days: float = 30.0
    importer_cleanup: bool = True
    db_ca_bundle: str | None = None
    db_tls_server_name: str | None = None
    s3_concurrency: int = DEFAULT_S3_CONCURRENCY
    inventory_max_age_hours: float = DEFAULT_INVENTORY_MAX_AGE_HOURS
    ledger_retention_days: float = DEFAULT_LEDGER_RETENTION_DAYS

    @property
    def grace_period(self) -> timedelta:
        return timedelta(hours=self.grace_period_hours)

    @property
    def inventory_max_age(self) -> timedelta:
        """An inventory report older than this is refused; the schedule LISTs instead."""
        return timedelta(hours=self.inventory_max_age_hours)

    @property
    def ledger_retention(self) -> timedelta:
        """How long closed ledger history (released, purged, restored rows; closed reports) is kept."""
        return timedelta(days=self.ledger_retention_days)

    @property
    def resurrection_window(self) -> timedelta:
        """How far back a purge counts when its metadata key shows up in S3 again."""
        return timedelta(days=self.resurrection_days)

    def redacted(self) -> dict[str, object]:
        """The settings as a dict fit for logs: the database URL loses its password."""
        from annotation_reconciler.db.urls import mask_password

        # everything between :// and the last @ (an unescaped @ in a password would split it anywhere else)
        url = mask_password(self.db_url) if self.db_url else None
        return {
            "bucket": self.bucket,
            "db_url": url,
            "db_secret_arn": self.db_secret_arn,
            "s3_prefix": self.s3_prefix,
            "dry_run": self.dry_run,
            "grace_period_hours": self.grace_period_hours,
            "max_purge_fraction": self.max_purge_fraction,
            "work_queue_url": self.work_queue_url,
            "inventory_manifest": self.inventory_manifest,
            "db_ca_bundle": self.db_ca_bundle,
            "db_tls_server_name": self.db_tls_server_name,
            "s3_concurrency": self.s3_concurrency,
            "inventory_max_age_hours": self.inventory_max_age_hours,
            "ledger_retention_days": self.ledger_retention_days,
        }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, require_db: bool = True) -> Settings:
        """Build and validate settings from ``env`` (default: ``os.environ``).

        Raises :class:`SettingsError` listing every problem found, each ``RECONCILER_*`` variable the project
        does not read among them (the Lambdas' only check).
        """
        env = os.environ if env is None else env
        # a misspelled variable would otherwise leave its setting at the default, unseen (a grace of 72 hours, a
        # dry run forever): refused like any bad value, naming the closest known variable
        problems: list[str] = unknown_variables(env)

        def get(name: str, parse: Callable[[str, str], T], default: T) -> T:
            raw = env.get(name)
            if raw is None or raw.strip() == "":
                return default
            try:
                return parse(name, raw.strip())
            except ValueError as exc:
                problems.append(str(exc))
                return default

        bucket = env.get(Env.BUCKET, "").strip()
        if not bucket:
            problems.append(f"{Env.BUCKET} is not set: set it to the portal bucket's name")
        else:
            try:
                validate_bucket(Env.BUCKET, bucket)
            except ValueError as exc:
                problems.append(str(exc))

        db_url = env.get(Env.DB_URL, "").strip() or None
        db_secret_arn = env.get(Env.DB_SECRET_ARN, "").strip() or None
        if require_db and not db_url and not db_secret_arn:
            problems.append(
                f"no database configured: set {Env.DB_URL} (postgresql+pg8000://user@host:port/db) "
                f"or {Env.DB_SECRET_ARN} (a Secrets Manager RDS secret)"
            )

        s3_prefix = env.get(Env.S3_PREFIX, "").strip() or (f"s3://{bucket}/" if bucket else "")
        if bucket and s3_prefix.startswith("s3://") and not s3_prefix.startswith(f"s3://{bucket}/"):
            problems.append(
                f"{Env.S3_PREFIX}={s3_prefix!r} names another bucket than {Env.BUCKET}={bucket!r}: "
                f"use 's3://{bucket}/' or a prefix inside it"
            )

        dry_run = get(Env.DRY_RUN, parse_bool, True)
        allow_short = get(Env.ALLOW_SHORT_GRACE, parse_bool, False)
        grace = get(Env.GRACE_PERIOD_HOURS, _parse_number, 72.0)
        if grace < 0:
            problems.append(f"{Env.GRACE_PERIOD_HOURS}={grace:g} is negative: use a number of hours >= 1")
        elif grace > MAX_GRACE_HOURS:
            problems.append(
                f"{Env.GRACE_PERIOD_HOURS}={grace:g} is more than a year: use a number of hours "
                f"from 1 to {MAX_GRACE_HOURS}"
            )
        elif grace < 1 and not allow_short:
            problems.append(
                f"{Env.GRACE_PERIOD_HOURS}={grace:g} is under one hour: use >= 1, "
                f"or set {Env.ALLOW_SHORT_GRACE}=true for tests and demos"
            )
        fraction = get(Env.MAX_PURGE_FRACTION, _parse_number, DEFAULT_MAX_PURGE_FRACTION)
        if not 0 < fraction <= 1:
            problems.append(
                f"{Env.MAX_PURGE_FRACTION}={fraction:g} is out of range: use a fraction in (0, 1], e.g. 0.1"
            )
        page_limit = get(Env.SCAN_PAGE_LIMIT, _parse_int, 200)
        if page_limit < 1:
            problems.append(f"{Env.SCAN_PAGE_LIMIT}={page_limit} must be a positive number of LIST pages")
        resurrection_days = get(Env.RESURRECTION_DAYS, _parse_number, 30.0)
        if not 0 < resurrection_days <= 3660:
            problems.append(
                f"{Env.RESURRECTION_DAYS}={resurrection_days:g} is out of range: use a number of days "
                "from 1 to 3660 (how far back a purged annotation whose metadata reappears is reported)"
            )
        importer_cleanup = get(Env.IMPORTER_CLEANUP, parse_bool, True)
        s3_concurrency = get(Env.S3_CONCURRENCY, _parse_int, DEFAULT_S3_CONCURRENCY)
        if not 1 <= s3_concurrency <= MAX_S3_CONCURRENCY:
            problems.append(
                f"{Env.S3_CONCURRENCY}={s3_concurrency} is out of range: use a number of S3 requests in flight "
                f"at once from 1 to {MAX_S3_CONCURRENCY} (default {DEFAULT_S3_CONCURRENCY})"
            )
        work_queue_url = env.get(Env.WORK_QUEUE_URL, "").strip() or None
        if work_queue_url and not work_queue_url.startswith(("https://", "http://")):
            problems.append(f"{Env.WORK_QUEUE_URL}={work_queue_url!r} is not a queue URL (https://...)")
        inventory = env.get(Env.INVENTORY_MANIFEST, "").strip() or None
        if inventory and not inventory.startswith("s3://"):
            problems.append(
                f"{Env.INVENTORY_MANIFEST}={inventory!r} must be an s3:// URL of a manifest.json "
                "or of the inventory prefix"
            )
        max_age = get(Env.INVENTORY_MAX_AGE_HOURS, _parse_number, DEFAULT_INVENTORY_MAX_AGE_HOURS)
        if not 1 <= max_age <= MAX_INVENTORY_AGE_HOURS:
            problems.append(
                f"{Env.INVENTORY_MAX_AGE_HOURS}={max_age:g} is out of range: use a number of hours from 1 to "
                f"{MAX_INVENTORY_AGE_HOURS} (an older S3 Inventory report is refused and the scan LISTs instead; "
                f"default {DEFAULT_INVENTORY_MAX_AGE_HOURS:g})"
            )
        retention = get(Env.LEDGER_RETENTION_DAYS, _parse_number, DEFAULT_LEDGER_RETENTION_DAYS)
        if not 1 <= retention <= MAX_LEDGER_RETENTION_DAYS:
            problems.append(
                f"{Env.LEDGER_RETENTION_DAYS}={retention:g} is out of range: use a number of days from 1 to "
                f"{MAX_LEDGER_RETENTION_DAYS} (closed ledger history older than this is pruned by the purge; "
                f"default {DEFAULT_LEDGER_RETENTION_DAYS:g})"
            )
        elif retention < resurrection_days:
            problems.append(
                f"{Env.LEDGER_RETENTION_DAYS}={retention:g} is shorter than {Env.RESURRECTION_DAYS}="
                f"{resurrection_days:g}: a purged row must be kept at least as long as its key is watched"
            )
        ca_bundle = env.get(Env.DB_CA_BUNDLE, "").strip() or None
        if ca_bundle and not os.path.isfile(ca_bundle):
            problems.append(
                f"{Env.DB_CA_BUNDLE}={ca_bundle!r} is not a file: give the path of the PEM bundle of the CAs "
                "that sign the database's certificate (for RDS: "
                "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem)"
            )
        server_name = env.get(Env.DB_TLS_SERVER_NAME, "").strip() or None
        if server_name:
            from annotation_reconciler.db.urls import check_server_name

            try:
                check_server_name(server_name)
            except ValueError as exc:
                problems.append(str(exc))
        if problems:
            raise SettingsError(problems)
        return cls(
            bucket=bucket,
            db_url=db_url,
            db_secret_arn=db_secret_arn,
            s3_prefix=s3_prefix,
            dry_run=dry_run,
            grace_period_hours=grace,
            allow_short_grace=allow_short,
            max_purge_fraction=fraction,
            work_queue_url=work_queue_url,
            inventory_manifest=inventory,
            scan_page_limit=page_limit,
            resurrection_days=resurrection_days,
            importer_cleanup=importer_cleanup,
            db_ca_bundle=ca_bundle,
            db_tls_server_name=server_name,
            s3_concurrency=s3_concurrency,
            inventory_max_age_hours=max_age,
            ledger_retention_days=retention,
        )


def _parse_number(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{name}={raw!r} is not a finite number")
    return value


def _parse_int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number") from None
