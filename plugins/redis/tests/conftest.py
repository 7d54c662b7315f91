"""Real Redis servers for the Redis backend's tests, never mocks.

Single node, in this order: ``SESSIONHUB_TEST_REDIS_URL`` if set; else a
testcontainers Redis when a Docker engine answers; else a private
``redis-server`` from PATH on a free loopback port, with ``KEYS`` and ``SCAN``
renamed away so that any use of them fails the suite. Cluster: a private
three-master Redis Cluster started from the same binary (or
``SESSIONHUB_TEST_REDIS_CLUSTER_URL``). With ``CI=true`` a missing server
fails the run; otherwise the tests that need it are skipped, saying why.
Each test gets its own key prefix, so it starts from an empty namespace.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from sessionhub import SessionHistoryService
from sessionhub.plugins import get_plugin_manager
from sessionhub.settings import SessionHubSettings
from sessionhub_redis.backend import RedisBackend, RedisSettings

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
START_TIMEOUT = 20.0


def _missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(*, with_bus: bool = False) -> int:
    """A free loopback port (and, for Cluster nodes, a free bus port at +10000)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port == 6379 or (with_bus and (port + 10000 > 65535 or not _port_is_free(port + 10000))):
            continue
        return int(port)
    raise RuntimeError("no free loopback port found")


def _command(port: int, *words: str, timeout: float = 1.0) -> str:
    """Send one inline command to a server and return its first reply line."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall((" ".join(words) + "\r\n").encode())
        data = b""
        while b"\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    return data.decode(errors="replace")


class RedisServer:
    """A private redis-server process on a loopback port, in its own directory."""

    def __init__(
        self, directory: Path, *, port: int | None = None, config: str = "", sentinel: bool = False
    ) -> None:
        self.directory = directory
        self.port = port or free_port(with_bus="cluster-enabled yes" in config)
        self.config = config
        self.sentinel = sentinel
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        """The server's redis:// URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start the server (again, on the same port and directory) and wait for PING."""
        assert REDIS_SERVER is not None
        config = self.directory / "redis.conf"
        common = (
            f"port {self.port}\nbind 127.0.0.1\nprotected-mode no\n"
            f"dir {self.directory}\nlogfile {self.directory / 'redis.log'}\n"
        )
        if self.sentinel:
            config.write_text(common + self.config)
        else:
            config.write_text(
                common
                + 'save ""\nappendonly no\nrename-command KEYS ""\nrename-command SCAN ""\n'
                + self.config
            )
        self.process = subprocess.Popen(
            [REDIS_SERVER, str(config), *(["--sentinel"] if self.sentinel else [])],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server on port {self.port} exited:\n{log}")
            try:
                if _command(self.port, "PING").startswith("+PONG"):
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server on port {self.port} did not answer PING")
            time.sleep(0.02)

    def command(self, *words: str) -> str:
        """Send an inline command and return the first reply line."""
        return _command(self.port, *words)

    def signal(self, number: int) -> None:
        """Send a signal to the server process (SIGSTOP, SIGCONT...)."""
        assert self.process is not None
        self.process.send_signal(number)

    def kill(self) -> None:
        """SIGKILL the server and wait for it to die."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and wait for it to exit."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGCONT)
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()


def _docker_answers() -> bool:
    if not (os.environ.get("DOCKER_HOST") or Path("/var/run/docker.sock").exists()):
        return False
    docker = shutil.which("docker")
    if docker is None:
        return True  # a socket without the CLI: let testcontainers try
    try:
        done = subprocess.run([docker, "info"], capture_output=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@pytest.fixture(scope="session")
def redis_server_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., RedisServer]]:
    """Start private redis-servers (``config`` lines appended); all are stopped at the end."""
    if REDIS_SERVER is None:
        _missing("redis-server is not on PATH (apt-get install redis-server)")
    started: list[RedisServer] = []

    def start(config: str = "", *, name: str = "redis", sentinel: bool = False) -> RedisServer:
        server = RedisServer(tmp_path_factory.mktemp(name), config=config, sentinel=sentinel)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def private_redis(redis_server_factory: Callable[..., RedisServer]) -> RedisServer:
    """One private single-node server for the session (KEYS and SCAN renamed away)."""
    return redis_server_factory(name="single")


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of a single-node Redis for the session's tests."""
    url = os.environ.get("SESSIONHUB_TEST_REDIS_URL")
    if url:
        yield url
        return
    if _docker_answers():
        try:
            from testcontainers.redis import RedisContainer
        except ImportError:
            pass
        else:
            with RedisContainer("redis:7-alpine") as container:
                host = container.get_container_host_ip()
                yield f"redis://{host}:{container.get_exposed_port(6379)}/0"
            return
    if REDIS_SERVER is None:
        _missing(
            "no Redis for the tests: set SESSIONHUB_TEST_REDIS_URL, run a Docker engine, "
            "or put redis-server on PATH"
        )
    server: RedisServer = request.getfixturevalue("private_redis")
    yield server.url


@pytest.fixture(scope="session")
def redis_cluster_url(redis_server_factory: Callable[..., RedisServer]) -> str:
    """A redis+cluster:// URL of a private three-master Redis Cluster."""
    url = os.environ.get("SESSIONHUB_TEST_REDIS_CLUSTER_URL")
    if url:
        return url
    if REDIS_CLI is None:
        _missing("redis-cli is not on PATH, so no local Redis Cluster can be created")
    assert REDIS_CLI is not None
    nodes = [
        redis_server_factory(
            f"cluster-enabled yes\ncluster-config-file nodes-{n}.conf\ncluster-node-timeout 5000\n",
            name=f"cluster{n}",
        )
        for n in range(3)
    ]
    addresses = [f"127.0.0.1:{node.port}" for node in nodes]
    subprocess.run(
        [REDIS_CLI, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    deadline = time.monotonic() + START_TIMEOUT
    while not all("cluster_state:ok" in _info(node.port) for node in nodes):
        if time.monotonic() > deadline:
            raise RuntimeError("the local Redis Cluster did not reach cluster_state:ok")
        time.sleep(0.05)
    return "redis+cluster://" + ",".join(addresses)


def _info(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=1.0) as conn:
        conn.sendall(b"CLUSTER INFO\r\n")
        time.sleep(0.01)
        return conn.recv(65536).decode(errors="replace")


@pytest.fixture
def key_prefix() -> str:
    """A key prefix no other test uses: an empty namespace on a shared server."""
    return f"sessionhub-test:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def redis_settings(redis_url: str, key_prefix: str) -> Callable[..., RedisSettings]:
    """Build settings for the session's single-node server under the test's key prefix."""

    def make(**overrides: object) -> RedisSettings:
        values: dict[str, object] = {"url": redis_url, "key_prefix": key_prefix}
        values.update(overrides)
        return RedisSettings.model_validate(values)

    return make


@pytest_asyncio.fixture
async def backend(redis_settings: Callable[..., RedisSettings]) -> AsyncIterator[RedisBackend]:
    """An opened backend on the single-node server, in the test's own namespace."""
    async with RedisBackend(redis_settings()) as opened:
        yield opened


@pytest_asyncio.fixture
async def raw_redis(redis_url: str) -> AsyncIterator[Redis]:
    """A plain redis-py client on the same server, to look at what the backend stored."""
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
def make_service() -> Callable[..., SessionHistoryService]:
    """Build a service over a given backend, with isolated settings and no entry points."""

    def make(backend: RedisBackend, *, clock: Any = None, **settings: Any) -> SessionHistoryService:
        settings.setdefault("purge_interval", None)
        return SessionHistoryService(
            backend,
            settings=SessionHubSettings.isolated(**settings),
            plugin_manager=get_plugin_manager(entry_points=False),
            clock=clock,
        )

    return make
