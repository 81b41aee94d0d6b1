"""Database URLs: a password with URL-reserved characters is refused unescaped and never shown, whole or in part."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from annotation_reconciler.cli.main import cli
from annotation_reconciler.db import mask_password, normalize_url, show_url
from annotation_reconciler.errors import DatabaseUrlError, SettingsError
from annotation_reconciler.settings import Settings

#: Unescaped: the parser would take "ss-word@127.0.0.1" for the host and print it.
RAW = "postgresql+pg8000://rec:Pa@ss-word@127.0.0.1:1/portal"
ESCAPED = "postgresql+pg8000://rec:Pa%40ss-word@127.0.0.1:1/portal"


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (RAW, "postgresql+pg8000://***@127.0.0.1:1/portal"),
        (ESCAPED, "postgresql+pg8000://***@127.0.0.1:1/portal"),
        ("postgresql://rec@db.internal/portal", "postgresql://***@db.internal/portal"),
        ("rec:a@b@db.internal/portal", "***@db.internal/portal"),
        ("postgresql+pg8000://db.internal/portal", "postgresql+pg8000://db.internal/portal"),
    ],
)
def test_everything_between_the_scheme_and_the_last_at_is_masked(url: str, masked: str) -> None:
    assert mask_password(url) == masked


@pytest.mark.parametrize("password", ["Pa@ss-word", "a/b", "what?", "#1", "50%off", "x%4"])
def test_an_unescaped_reserved_character_is_refused_with_how_to_escape_it(password: str) -> None:
    with pytest.raises(DatabaseUrlError) as info:
        normalize_url(f"postgresql+pg8000://rec:{password}@db.internal:5432/portal")
    message = str(info.value)
    assert "not percent-encoded" in message and "%40" in message and "--db-secret-arn" in message
    assert password not in message and "***@db.internal:5432/portal" in message


def test_an_escaped_password_is_read_whole_and_shown_masked() -> None:
    url = normalize_url(ESCAPED)
    assert (url.username, url.password, url.host, url.port) == ("rec", "Pa@ss-word", "127.0.0.1", 1)
    assert show_url(url) == "postgresql+pg8000://***@127.0.0.1:1/portal"
    assert normalize_url("postgresql://rec:p%25ct%3Aok@h/db").password == "p%ct:ok"


@pytest.mark.parametrize("url", [RAW, ESCAPED])
def test_the_cli_never_prints_any_part_of_the_password(url: str) -> None:
    result = CliRunner().invoke(cli, ["status", "--db-url", url])
    assert result.exit_code == 2, result.output
    for part in ("Pa@ss", "ss-word", "Pa%40", "rec:"):
        assert part not in result.output
    assert "***@127.0.0.1:1/portal" in result.output
    expected = "not percent-encoded" if url == RAW else "cannot connect to the database"
    assert expected in result.output


def test_settings_redact_an_unescaped_password_whole() -> None:
    settings = Settings.from_env({"RECONCILER_DB_URL": RAW, "RECONCILER_BUCKET": "cryoet-data-portal-public"})
    assert "ss-word" not in str(settings.redacted()) and "Pa" not in str(settings.redacted()["db_url"])


def test_a_ca_bundle_that_is_not_a_file_is_refused(tmp_path: Path) -> None:
    env = {"RECONCILER_DB_URL": ESCAPED, "RECONCILER_BUCKET": "cryoet-data-portal-public"}
    with pytest.raises(SettingsError, match=r"RECONCILER_DB_CA_BUNDLE=.* is not a file"):
        Settings.from_env({**env, "RECONCILER_DB_CA_BUNDLE": str(tmp_path / "absent.pem")})
    bundle = tmp_path / "global-bundle.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    assert Settings.from_env({**env, "RECONCILER_DB_CA_BUNDLE": str(bundle)}).db_ca_bundle == str(bundle)
