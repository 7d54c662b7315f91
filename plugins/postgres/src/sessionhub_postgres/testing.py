"""Real PostgreSQL servers for tests and benchmarks: a given one, a container, or the local one.

``postgres_server()`` yields the URL of a PostgreSQL to test against: the one
in ``SESSIONHUB_TEST_POSTGRES_URL`` if set; else a testcontainers PostgreSQL
when a Docker engine answers; else the machine's own server on
127.0.0.1:5432 (user ``postgres``, database ``test``, trust authentication)
when it answers. Tests then work in a schema of their own, dropped afterwards
(``scratch_schema``). ``PrivateCluster`` starts a throwaway cluster of its own
(``initdb`` and ``pg_ctl`` from the machine's PostgreSQL) for a test that must
stop and restart its server, and ``PgBouncer`` runs a private PgBouncer in
transaction mode in front of a server. When none can be had they raise
``ServerUnavailable``; a test suite turns that into a skip, or a failure in CI.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from contextlib import AbstractContextManager, nullcontext, suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sessionhub.testing.servers import ServerUnavailable, docker_answers, find_server

__all__ = [
    "ServerUnavailable",
    "LOCAL_URL",
    "postgres_server",
    "scratch_schema",
    "RUN_PREFIX",
    "drop_schema",
    "PrivateCluster",
    "PgBouncer",
    "docker_answers",
]

LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/test"
"""The machine's own server, as this kind of machine runs it (trust authentication)."""

START_TIMEOUT = 60


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _container() -> Any:
    from testcontainers.postgres import PostgresContainer

    return PostgresContainer("postgres:16-alpine", driver=None)


def _local() -> AbstractContextManager[str] | None:
    return nullcontext(LOCAL_URL) if _answers("127.0.0.1", 5432) else None


def postgres_server() -> AbstractContextManager[str]:
    """Yield the URL of a PostgreSQL to test against (see the module docstring)."""
    return find_server(
        env="SESSIONHUB_TEST_POSTGRES_URL",
        container=_container,
        container_url=lambda started: started.get_connection_url(),
        local=_local,
        unavailable="no PostgreSQL for the tests: set SESSIONHUB_TEST_POSTGRES_URL, run a "
        "Docker engine, or run a local server on 127.0.0.1:5432 (apt-get install postgresql) "
        "with a database 'test' that user postgres may use",
    )


RUN_PREFIX = f"sessionhub_test_{uuid.uuid4().hex[:8]}_"
"""Every scratch schema of this process starts with it, so a leftover check sees only its own."""


def scratch_schema() -> str:
    """A schema name no other test uses (create it by opening a backend on it)."""
    return f"{RUN_PREFIX}{uuid.uuid4().hex[:12]}"


async def drop_schema(url: str, schema: str) -> None:
    """Drop ``schema`` and everything in it (what a test leaves behind)."""
    import asyncpg

    from sessionhub_postgres._settings import driver_dsn

    conn = await asyncpg.connect(driver_dsn(url))
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def _binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    """A free loopback port (never 5432, the shared server's)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port != 5432:
            return port


class PrivateCluster:
    """A throwaway PostgreSQL cluster on a free loopback port, in a temporary directory.

    Built with ``initdb`` and run with ``pg_ctl`` from the machine's PostgreSQL;
    as root they run as the ``postgres`` user (PostgreSQL refuses to run as root).
    ``stop`` and ``start`` restart it on the same port and data. Use it as a
    context manager: the cluster is stopped and its directory removed at exit.
    """

    def __init__(self) -> None:
        binaries = _binaries()
        if binaries is None:
            raise ServerUnavailable(
                "no initdb/pg_ctl found (apt-get install postgresql) for a private cluster"
            )
        self.binaries = binaries
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="sessionhub-pg-"))
        self.data = self.directory / "data"
        self._as = _as_postgres_user(self.directory)

    @property
    def url(self) -> str:
        """The cluster's URL (user postgres, trust authentication, database postgres)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        done = subprocess.run(
            [*self._as, *args], capture_output=True, text=True, timeout=START_TIMEOUT, check=False
        )
        if done.returncode != 0:
            raise ServerUnavailable(f"{Path(args[0]).name} failed: {done.stderr.strip()[-1000:]}")

    def __enter__(self) -> PrivateCluster:
        try:
            self._run(
                str(self.binaries / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
            )
            self.start()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} "
            "-c fsync=off -c full_page_writes=off"
        )
        self._run(
            str(self.binaries / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.directory / "server.log"),
            "-w",
            "-t",
            str(START_TIMEOUT),
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: roll back open transactions; ``immediate``: crash)."""
        self._run(str(self.binaries / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        """Stop the server if it runs and remove its directory."""
        if (self.data / "postmaster.pid").exists():
            with suppress(ServerUnavailable):
                self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)


def _as_postgres_user(directory: Path) -> list[str]:
    """The command prefix that drops root to ``postgres`` (which then owns ``directory``)."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        raise ServerUnavailable("running as root and no runuser to drop to 'postgres'")
    shutil.chown(directory, "postgres")
    return [runuser, "-u", "postgres", "--"]


class PgBouncer:
    """A private PgBouncer in transaction pooling mode, in front of the server at ``url``.

    It listens on a free loopback port and lets in the URL's user with trust
    authentication (so ``url`` must need no password); ``pool_size`` server
    connections are shared by every client, which is what makes a pooler in
    transaction mode hand one client's statements to different server
    connections. ``pgbouncer`` comes from ``PATH`` or ``/usr/sbin`` (apt-get install
    pgbouncer); as root it runs as the ``postgres`` user (it refuses root). Use it as
    a context manager: the process is stopped and its directory removed at exit.
    """

    def __init__(self, url: str, *, pool_size: int = 2) -> None:
        binary = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
        if binary is None:
            raise ServerUnavailable("no pgbouncer found (apt-get install pgbouncer)")
        parts = urlsplit(url)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self._database = parts.path.lstrip("/") or "postgres"
        self._user = parts.username or "postgres"
        self._binary = binary
        self._pool_size = pool_size
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="sessionhub-pgbouncer-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The URL clients connect to (the pooler, same user and database)."""
        return f"postgresql://{self._user}@127.0.0.1:{self.port}/{self._database}"

    def __enter__(self) -> PgBouncer:
        host, port = self._target
        config = self.directory / "pgbouncer.ini"
        users = self.directory / "users.txt"
        users.write_text(f'"{self._user}" ""\n')
        config.write_text(
            f"[databases]\n{self._database} = host={host} port={port} dbname={self._database}\n"
            f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {self.port}\n"
            f"unix_socket_dir =\nauth_type = trust\nauth_file = {users}\n"
            f"pool_mode = transaction\ndefault_pool_size = {self._pool_size}\n"
            "max_client_conn = 500\n"
        )
        log = self.directory / "pgbouncer.log"
        try:
            prefix = _as_postgres_user(self.directory)
            # Its log goes to a file: a pipe nobody reads would fill and stall it.
            with log.open("wb") as output:
                self._process = subprocess.Popen(
                    [*prefix, self._binary, str(config)],
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            deadline = time.monotonic() + START_TIMEOUT
            while not _answers("127.0.0.1", self.port):
                if self._process.poll() is not None or time.monotonic() > deadline:
                    said = log.read_text(errors="replace").strip()
                    raise ServerUnavailable(f"pgbouncer did not start: {said[-1000:]}")
                time.sleep(0.05)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        shutil.rmtree(self.directory, ignore_errors=True)
