"""Every command builds its settings one way (``cli.common.settings_from``): the environment, with the options
the user gave in place of their variables, validated by ``Settings.from_env``, refused with the option's name."""

from __future__ import annotations

import pytest

from annotation_reconciler.cli.common import UsageError, settings_from


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "RECONCILER_BUCKET",
        "RECONCILER_DRY_RUN",
        "RECONCILER_S3_CONCURRENCY",
        "RECONCILER_GRACE_PERIOD_HOURS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RECONCILER_BUCKET", "env-bucket")
    monkeypatch.setenv("RECONCILER_DRY_RUN", "false")


def test_a_given_option_replaces_its_variable_and_none_keeps_the_environment() -> None:
    settings = settings_from(
        {"RECONCILER_BUCKET": ("--bucket", "cli-bucket"), "RECONCILER_DRY_RUN": ("--dry-run", None)}
    )
    assert settings.bucket == "cli-bucket" and settings.dry_run is False
    settings = settings_from({"RECONCILER_DRY_RUN": ("--dry-run", True), "RECONCILER_S3_CONCURRENCY": ("--s3", 7)})
    assert settings.bucket == "env-bucket" and settings.dry_run is True and settings.s3_concurrency == 7


def test_every_problem_is_refused_at_once_naming_the_option_or_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILER_GRACE_PERIOD_HOURS", "-2")
    with pytest.raises(UsageError) as info:
        settings_from({"RECONCILER_S3_CONCURRENCY": ("--s3-concurrency", 0)})
    message = info.value.message
    first, second = message.split("; ")
    assert first == "RECONCILER_GRACE_PERIOD_HOURS=-2 is negative: use a number of hours >= 1"
    assert second.startswith("--s3-concurrency (RECONCILER_S3_CONCURRENCY)=0 is out of range: use a number")


def test_the_database_is_required_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECONCILER_DB_URL", raising=False)
    monkeypatch.delenv("RECONCILER_DB_SECRET_ARN", raising=False)
    assert settings_from({}).db_url is None
    with pytest.raises(UsageError, match="no database configured"):
        settings_from({}, require_db=True)
