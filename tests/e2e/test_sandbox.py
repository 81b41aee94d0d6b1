"""``annotation-reconciler local up`` / ``local down``: a sandbox that outlives the command, to try commands on."""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner

from annotation_reconciler.cli.main import cli
from annotation_reconciler.cli.sandbox import STATE, alive


def exported(stdout: str) -> dict[str, str]:
    """The variables of the ``export A=1 B=2`` lines of ``stdout``."""
    found = {}
    for line in stdout.splitlines():
        assert line.startswith("export "), line
        for pair in line.removeprefix("export ").split():
            name, _, value = pair.partition("=")
            found[name] = value
    return found


def listening(url: str) -> bool:
    where = urlsplit(url)
    with socket.socket() as sock:
        return sock.connect_ex((where.hostname or "", where.port or 0)) == 0


def test_local_up_keeps_a_sandbox_running_until_local_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILER_LOCAL_DIR", str(tmp_path))
    runner = CliRunner()
    started = runner.invoke(cli, ["local", "up"])
    state_file = tmp_path / STATE
    try:
        assert started.exit_code == 0, started.output
        assert "sandbox started (pid " in started.stderr
        env = exported(started.stdout)
        assert set(env) >= {"RECONCILER_DB_URL", "RECONCILER_BUCKET", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION"}
        pid = json.loads(state_file.read_text())["pid"]
        assert alive(pid) and listening(env["RECONCILER_DB_URL"]) and listening(env["AWS_ENDPOINT_URL"])
        # the command has returned; the sandbox answers the next commands, as the printed variables say
        again = runner.invoke(cli, ["local", "up"])
        assert again.exit_code == 0 and f"already running (pid {pid})" in again.stderr
        assert exported(again.stdout) == env
        status = runner.invoke(cli, ["status", "--output", "json"], env=env)
        assert status.exit_code == 0, status.output
        assert json.loads(status.stdout)["by_status"] == {}
        scan = runner.invoke(cli, ["scan", "--dataset-id", "10001"], env=env)
        assert scan.exit_code == 0, scan.output
        assert scan.stdout.startswith("dataset 10001: 9 annotations, 9 present, 0 stale")
        stopped = runner.invoke(cli, ["local", "down"])
        assert stopped.exit_code == 0 and stopped.stdout == f"sandbox stopped (pid {pid})\n"
        assert not alive(pid) and not state_file.exists()
        assert not listening(env["RECONCILER_DB_URL"]) and not listening(env["AWS_ENDPOINT_URL"])
        assert runner.invoke(cli, ["local", "down"]).stdout == "no sandbox running\n"
    finally:
        if state_file.exists():  # a failed assertion: stop the sandbox this test started
            os.kill(json.loads(state_file.read_text())["pid"], signal.SIGTERM)


def test_local_without_up_or_its_options_says_what_to_give() -> None:
    result = CliRunner().invoke(cli, ["local"])
    assert result.exit_code == 2 and "local needs --endpoint-url and --bucket (or `local up`" in result.stderr
