"""``annotation-reconciler local up`` / ``local down``: a PostgreSQL and a moto server holding the synthetic portal,
kept running in the background between commands, to try every command on (``make demo`` tears its own down).

``up`` starts a detached server process (``python -m annotation_reconciler.cli.sandbox DIR``), waits until it has
written ``DIR/state.json`` (its pid, the database URL and the endpoint), and prints the variables to export.
``down`` sends that pid SIGTERM: the server stops PostgreSQL (removing its data) and moto, then removes the state.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import click

from annotation_reconciler.cli.common import UsageError
from annotation_reconciler.names import Env
from annotation_reconciler.rules.plural import count

STATE = "state.json"
LOG = "server.log"
#: how long ``up`` waits for the server to be ready (starting PostgreSQL and writing the portal take seconds)
READY_SECONDS = 180.0
SANDBOX_SPEC = {"datasets": 2, "runs_per_dataset": 3, "annotations_per_voxel_spacing": 3}


def state_dir() -> Path:
    """``$RECONCILER_LOCAL_DIR``, else a directory of this user's under the temp dir."""
    given = os.environ.get(Env.LOCAL_DIR)
    return Path(given) if given else Path(tempfile.gettempdir()) / f"annotation-reconciler-local-{os.getuid()}"


def read_state(directory: Path) -> dict[str, Any] | None:
    """The running server's state, or ``None`` when none is running (a stale file is removed)."""
    path = directory / STATE
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not alive(int(state.get("pid", 0))):
        path.unlink(missing_ok=True)
        return None
    return state


def alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def exports(state: dict[str, Any]) -> list[str]:
    """The shell lines that point the commands at the sandbox."""
    return [
        f"export {Env.DB_URL}={state['db_url']}",
        f"export {Env.BUCKET}={state['bucket']}",
        f"export AWS_ENDPOINT_URL={state['endpoint_url']}",
        "export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-west-2",
    ]


@click.command("up")
def up() -> None:
    """Start PostgreSQL and moto with the synthetic portal in the background; print the variables to export."""
    directory = state_dir()
    state = read_state(directory)
    if state is None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with (directory / LOG).open("w") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "annotation_reconciler.cli.sandbox", str(directory)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # survives this command and the terminal's Ctrl-C
            )
        deadline = time.monotonic() + READY_SECONDS
        while (state := read_state(directory)) is None:
            if process.poll() is not None or time.monotonic() > deadline:
                if process.poll() is None:
                    process.terminate()
                tail = (directory / LOG).read_text().strip().splitlines()[-1:] or ["no output"]
                raise click.ClickException(f"the sandbox did not start: {tail[0]} (log: {directory / LOG})")
            time.sleep(0.2)
        click.echo(f"sandbox started (pid {state['pid']}): {state['summary']}", err=True)
    else:
        click.echo(f"sandbox already running (pid {state['pid']}): {state['summary']}", err=True)
    for line in exports(state):
        click.echo(line)
    click.echo("then e.g. `annotation-reconciler status`; `annotation-reconciler local down` stops it", err=True)


@click.command("down")
def down() -> None:
    """Stop the sandbox `local up` started (its PostgreSQL data goes with it)."""
    directory = state_dir()
    state = read_state(directory)
    if state is None:
        click.echo("no sandbox running")
        return
    pid = int(state["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it when this process started it (tests)
        time.sleep(0.1)
    if alive(pid):
        raise UsageError(f"the sandbox (pid {pid}) did not stop within 60 s: see {directory / LOG}")
    (directory / STATE).unlink(missing_ok=True)
    click.echo(f"sandbox stopped (pid {pid})")


def serve(directory: Path) -> None:
    """The server process: PostgreSQL and moto with the synthetic portal, until SIGTERM."""
    import boto3

    from annotation_reconciler.db import make_engine
    from annotation_reconciler.local.databases import DatabaseFactory
    from annotation_reconciler.local.moto_server import LocalMotoServer
    from annotation_reconciler.local.postgres import LocalPostgres
    from annotation_reconciler.local.synthetic import PortalSpec, build_portal
    from annotation_reconciler.local.synthetic_bucket import write_bucket
    from annotation_reconciler.local.synthetic_rows import write_rows

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with LocalPostgres() as pg, LocalMotoServer() as moto:
        url = DatabaseFactory(pg.url).fresh("portal")
        spec = PortalSpec(**SANDBOX_SPEC)  # type: ignore[arg-type]
        portal = build_portal(spec)
        s3 = boto3.client("s3", endpoint_url=moto.endpoint_url, region_name="us-west-2")
        objects = write_bucket(s3, portal)
        engine = make_engine(url)
        try:
            ids = write_rows(engine, portal)
        finally:
            engine.dispose()
        state = {
            "pid": os.getpid(),
            "db_url": url,
            "endpoint_url": moto.endpoint_url,
            "bucket": spec.bucket,
            "summary": f"{count(len(ids), 'annotation')} in datasets {list(portal.dataset_ids)}, "
            f"{count(objects, 'object')} in "
            f"s3://{spec.bucket} (moto at {moto.endpoint_url}), PostgreSQL at {url}",
        }
        partial = directory / (STATE + ".tmp")
        partial.write_text(json.dumps(state))
        partial.replace(directory / STATE)
        print(f"ready: {state['summary']}", flush=True)
        stop.wait()
    (directory / STATE).unlink(missing_ok=True)
    print("stopped", flush=True)


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
