"""Real MongoDB servers for tests and benchmarks: a private SecantusDB, or a container.

``mongodb_server()`` yields the URL of a MongoDB to test against: the one in
``SESSIONHUB_TEST_MONGODB_URL`` if set; else a ``mongo`` container through
testcontainers when a Docker engine answers; else a private SecantusDB server
(``pip install sessionhub-mongodb[testing]``, a MongoDB wire-protocol server on
WiredTiger) in its own process on a free loopback port, presenting itself as a
one-member replica set (transactions available), or as a standalone server. When none
can be had it raises ``ServerUnavailable``; a test suite turns that into a
skip, or a failure in CI.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sessionhub_mongodb._secantus import INSTALL_HINT

__all__ = [
    "ServerUnavailable",
    "MongoServer",
    "SecantusProcess",
    "mongodb_server",
    "docker_answers",
    "secantus_available",
]


class ServerUnavailable(RuntimeError):
    """No MongoDB can be had for the tests; the message says what to install or set."""


@dataclass
class MongoServer:
    """A server the tests may use: its URL and what kind of deployment it presents."""

    url: str
    kind: str
    """``replica-set``, ``standalone`` or ``external`` (from the environment or a container)."""


class SecantusProcess:
    """A SecantusDB server in a child process; can be stopped and started again in place."""

    def __init__(self, storage: Path, *, standalone: bool = False, port: int = 0) -> None:
        self.storage = storage
        self.standalone = standalone
        self.port = port
        self.process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        """The server's mongodb:// URL."""
        return f"mongodb://127.0.0.1:{self.port}/"

    def start(self) -> None:
        """Start the server (again, on the same port and storage) and wait until it listens.

        Raises ``ServerUnavailable`` saying what to install when SecantusDB is missing.
        """
        if not secantus_available():
            raise ServerUnavailable(INSTALL_HINT)
        args = [
            sys.executable,
            "-m",
            "sessionhub_mongodb._secantus",
            str(self.storage),
            str(self.port),
        ]
        if self.standalone:
            args.append("--standalone")
        process = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if not line.isdigit():
            process.kill()
            process.communicate()
            raise RuntimeError(f"SecantusDB did not start (said {line!r})")
        self.port = int(line)
        self.process = process

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server (SIGKILL with ``kill``) and wait for it."""
        process, self.process = self.process, None
        if process is None:
            return
        if kill:
            process.kill()
        else:
            assert process.stdin is not None
            process.stdin.close()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()


def secantus_available() -> bool:
    """Whether SecantusDB (``pip install secantusdb``) is installed."""
    import importlib.util

    return importlib.util.find_spec("secantus") is not None


def docker_answers() -> bool:
    """Whether a Docker engine answers a ping (checked on the socket, without the docker SDK)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        if host.startswith("unix://"):
            connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: str | tuple[str, int] = host[len("unix://") :]
        elif host.startswith("tcp://"):
            name, _, port = host[len("tcp://") :].partition(":")
            connection = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            address = (name, int(port or 2375))
        else:
            return False
        with connection:
            connection.settimeout(3)
            connection.connect(address)
            connection.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return b" 200 " in connection.recv(64)
    except OSError:
        return False


@contextmanager
def mongodb_server(*, standalone: bool = False) -> Iterator[str]:
    """Yield the URL of a MongoDB to test against (see the module docstring); clean up after."""
    url = os.environ.get("SESSIONHUB_TEST_MONGODB_URL")
    if url:
        yield url
        return
    if docker_answers():
        try:
            from testcontainers.mongodb import MongoDbContainer
        except ImportError as exc:
            raise ServerUnavailable(
                "a Docker engine answers but testcontainers is not installed: "
                "pip install 'testcontainers[mongodb]', or set SESSIONHUB_TEST_MONGODB_URL"
            ) from exc

        with MongoDbContainer("mongo:8.0") as container:
            yield container.get_connection_url()
        return
    if not secantus_available():
        raise ServerUnavailable(
            "no MongoDB for the tests: set SESSIONHUB_TEST_MONGODB_URL, start a Docker engine, "
            "or pip install 'sessionhub-mongodb[testing]' (SecantusDB, a MongoDB wire-protocol "
            "server)"
        )
    directory = Path(tempfile.mkdtemp(prefix="sessionhub-mongodb-"))
    server = SecantusProcess(directory / "data", standalone=standalone)
    try:
        server.start()
        yield server.url
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
