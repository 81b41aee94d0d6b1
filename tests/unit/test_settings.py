"""settings.py: defaults, strict parsing, and one clear message per problem."""

from __future__ import annotations

import re

import pytest

from annotation_reconciler.errors import SettingsError
from annotation_reconciler.settings import DEFAULT_S3_CONCURRENCY, Settings

BASE = {
    "RECONCILER_DB_URL": "postgresql+pg8000://u:hunter2@db/portal",
    "RECONCILER_BUCKET": "cryoet-data-portal-public",
}


def test_defaults() -> None:
    s = Settings.from_env(BASE)
    assert (s.dry_run, s.grace_period_hours, s.max_purge_fraction) == (True, 72.0, 0.1)
    assert s.s3_prefix == "s3://cryoet-data-portal-public/"
    assert s.s3_concurrency == DEFAULT_S3_CONCURRENCY
    assert Settings.from_env({**BASE, "RECONCILER_S3_CONCURRENCY": " 4 "}).s3_concurrency == 4
    assert s.inventory_max_age_hours == 48.0 and s.inventory_max_age.total_seconds() == 48 * 3600
    assert Settings.from_env({**BASE, "RECONCILER_INVENTORY_MAX_AGE_HOURS": "30"}).inventory_max_age_hours == 30
    assert "hunter2" not in str(s.redacted()) and "***" in str(s.redacted())


@pytest.mark.parametrize(
    ("raw", "value"), [("true", True), ("FALSE", False), ("0", False), ("yes", True), ("Off", False)]
)
def test_dry_run_values(raw: str, value: bool) -> None:
    assert Settings.from_env({**BASE, "RECONCILER_DRY_RUN": raw}).dry_run is value


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RECONCILER_DRY_RUN": "flase"}, "RECONCILER_DRY_RUN='flase' is not a boolean"),
        ({"RECONCILER_GRACE_PERIOD_HOURS": "-1"}, "is negative"),
        ({"RECONCILER_GRACE_PERIOD_HOURS": "0.5"}, "RECONCILER_ALLOW_SHORT_GRACE=true"),
        ({"RECONCILER_GRACE_PERIOD_HOURS": "nan"}, "not a finite number"),
        ({"RECONCILER_GRACE_PERIOD_HOURS": "3 days"}, "is not a number"),
        ({"RECONCILER_GRACE_PERIOD_HOURS": "1e8"}, "is more than a year: use a number of hours from 1 to 8760"),
        ({"RECONCILER_GRACE_PERIOD_HOURS": "1e308"}, "is more than a year"),
        ({"RECONCILER_MAX_PURGE_FRACTION": "0"}, "out of range"),
        ({"RECONCILER_MAX_PURGE_FRACTION": "1.5"}, "out of range"),
        ({"RECONCILER_BUCKET": "s3://cryoet-data-portal-public"}, "is not an S3 bucket name"),
        ({"RECONCILER_BUCKET": ""}, "RECONCILER_BUCKET is not set"),
        ({"RECONCILER_DB_URL": ""}, "no database configured"),
        ({"RECONCILER_S3_PREFIX": "s3://other-bucket/"}, "names another bucket"),
        ({"RECONCILER_WORK_QUEUE_URL": "my-queue"}, "is not a queue URL"),
        ({"RECONCILER_INVENTORY_MANIFEST": "/tmp/manifest.json"}, "must be an s3:// URL"),
        ({"RECONCILER_SCAN_PAGE_LIMIT": "0"}, "positive number"),
        ({"RECONCILER_S3_CONCURRENCY": "0"}, "RECONCILER_S3_CONCURRENCY=0 is out of range: use a number"),
        ({"RECONCILER_S3_CONCURRENCY": "1000"}, "from 1 to 128"),
        ({"RECONCILER_S3_CONCURRENCY": "many"}, "RECONCILER_S3_CONCURRENCY='many' is not a whole number"),
        ({"RECONCILER_INVENTORY_MAX_AGE_HOURS": "0"}, "RECONCILER_INVENTORY_MAX_AGE_HOURS=0 is out of range"),
        ({"RECONCILER_INVENTORY_MAX_AGE_HOURS": "1000"}, "from 1 to 168"),
        ({"RECONCILER_INVENTORY_MAX_AGE_HOURS": "two days"}, "'two days' is not a number"),
    ],
)
def test_bad_values_are_refused_with_what_to_fix(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({**BASE, **env})
    assert message in str(info.value)


def test_short_grace_allowed_when_asked() -> None:
    env = {**BASE, "RECONCILER_GRACE_PERIOD_HOURS": "0.001", "RECONCILER_ALLOW_SHORT_GRACE": "true"}
    assert Settings.from_env(env).grace_period.total_seconds() == pytest.approx(3.6)


def test_every_problem_reported_at_once() -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"RECONCILER_DRY_RUN": "maybe", "RECONCILER_GRACE_PERIOD_HOURS": "-3"})
    problems = info.value.problems
    assert len(problems) == 4
    assert problems[0].startswith("RECONCILER_BUCKET is not set")
    assert problems[1].startswith("no database configured: set RECONCILER_DB_URL")
    assert problems[2] == "RECONCILER_DRY_RUN='maybe' is not a boolean: set it to 'true' or 'false'"
    assert problems[3] == "RECONCILER_GRACE_PERIOD_HOURS=-3 is negative: use a number of hours >= 1"
    assert str(info.value) == "invalid configuration: " + "; ".join(problems)


def test_a_year_of_grace_is_the_longest_accepted() -> None:
    assert Settings.from_env({**BASE, "RECONCILER_GRACE_PERIOD_HOURS": "8760"}).grace_period.days == 365


def test_the_tls_server_name_must_be_a_host_name() -> None:
    base = {"RECONCILER_DB_URL": "postgresql+pg8000://u@localhost:5432/db", "RECONCILER_BUCKET": "b-1"}
    name = "portal.cluster-abc.us-west-2.rds.amazonaws.com"
    assert Settings.from_env({**base, "RECONCILER_DB_TLS_SERVER_NAME": name}).db_tls_server_name == name
    with pytest.raises(SettingsError, match="RECONCILER_DB_TLS_SERVER_NAME='db:5432' is not a host name"):
        Settings.from_env({**base, "RECONCILER_DB_TLS_SERVER_NAME": "db:5432"})


def test_an_unknown_variable_is_refused_naming_the_closest_known_one() -> None:
    """The Lambdas build their settings with ``from_env`` alone: a misspelled variable there must stop them, not
    leave them running on the default (a misspelled grace period would run with 72 hours, a misspelled dry run
    would stay a dry run forever, and nobody would be told)."""
    with pytest.raises(SettingsError) as info:
        Settings.from_env({**BASE, "RECONCILER_GRACE_PERIOD": "1", "RECONCILER_DRYRUN": "false"})
    assert info.value.problems == [
        "RECONCILER_DRYRUN is not a setting of the reconciler (did you mean RECONCILER_DRY_RUN?): rename or unset it",
        "RECONCILER_GRACE_PERIOD is not a setting of the reconciler (did you mean RECONCILER_GRACE_PERIOD_HOURS?): "
        "rename or unset it",
    ]
    # other variables (POWERTOOLS_*, AWS_*) are none of the reconciler's business
    assert Settings.from_env({**BASE, "POWERTOOLS_SERVICE_NAME": "x", "AWS_REGION": "us-west-2"}).bucket


def test_every_variable_the_stack_and_the_scripts_set_is_known() -> None:
    """Every ``RECONCILER_*`` name the CDK stack gives the Lambdas (and the deploy scripts export) is one the
    settings know, or the Lambdas would refuse to start (read from the sources: no synthesis)."""
    from pathlib import Path

    from annotation_reconciler.names import Env
    from annotation_reconciler.settings import KNOWN_VARIABLES

    root = Path(__file__).resolve().parents[2]
    sources = [*sorted((root / "infra").glob("*.py")), *sorted((root / "infra" / "env" / "examples").glob("*.json"))]

    def names_in(text: str) -> set[str]:  # spelled out (the deploy scripts' JSON), or names.Env's (the stack)
        spelled = set(re.findall(r"\bRECONCILER_[A-Z0-9_]*[A-Z0-9]\b", text))
        return spelled | {getattr(Env, member) for member in re.findall(r"\bEnv\.([A-Z0-9_]+)\b", text)}

    named = {n for path in sources for n in names_in(path.read_text())}
    environment = names_in((root / "infra" / "functions.py").read_text())  # where the stack builds it
    assert {"RECONCILER_BUCKET", "RECONCILER_DB_SECRET_ARN", "RECONCILER_WORK_QUEUE_URL"} <= environment
    assert named - KNOWN_VARIABLES == set()
