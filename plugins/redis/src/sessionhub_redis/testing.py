"""Real Redis servers for tests and benchmarks: a private ``redis-server`` or a container.

``redis_server()`` yields the URL of a Redis to test against: the one in
``SESSIONHUB_TEST_REDIS_URL`` if set; else a testcontainers Redis when a Docker
engine answers; else a private ``redis-server`` from PATH on a free loopback
port, in a temporary directory, with ``KEYS`` and ``SCAN`` renamed away (so
any use of them fails). ``redis_cluster()`` does the same for a private
three-master Redis Cluster. When none can be had they raise
``ServerUnavailable``; a test suite turns that into a skip, or a failure in CI.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from sessionhub.testing.servers import ServerUnavailable, docker_answers, find_server

__all__ = [
    "ServerUnavailable",
    "RedisServer",
    "redis_server",
    "redis_cluster",
    "start_cluster",
    "free_port",
    "docker_answers",
]

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")
START_TIMEOUT = 20.0
SHARED_PORT = 6379
"""The port of a shared Redis on this host: never used for tests."""


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
        if port == SHARED_PORT or (
            with_bus and (port + 10000 > 65535 or not _port_is_free(port + 10000))
        ):
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


def _info(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=1.0) as conn:
        conn.sendall(b"CLUSTER INFO\r\n")
        time.sleep(0.01)
        return conn.recv(65536).decode(errors="replace")


def start_cluster(nodes: list[RedisServer]) -> str:
    """Join started ``cluster-enabled`` servers into a Cluster; return its redis+cluster:// URL."""
    if REDIS_CLI is None:
        raise ServerUnavailable(
            "redis-cli is not on PATH, so no local Redis Cluster can be created"
        )
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


CLUSTER_NODE = "cluster-enabled yes\ncluster-config-file nodes.conf\ncluster-node-timeout 5000\n"
"""Configuration lines of a Cluster node."""


def _container() -> Any:
    from testcontainers.redis import RedisContainer

    return RedisContainer("redis:7-alpine")


def _container_url(started: Any) -> str:
    return f"redis://{started.get_container_host_ip()}:{started.get_exposed_port(6379)}/0"


@contextmanager
def _private() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="sessionhub-redis-") as directory:
        server = RedisServer(Path(directory)).start()
        try:
            yield server.url
        finally:
            server.stop()


def redis_server() -> AbstractContextManager[str]:
    """Yield the URL of a Redis to test against (see the module docstring); clean up after."""
    return find_server(
        env="SESSIONHUB_TEST_REDIS_URL",
        container=_container,
        container_url=_container_url,
        local=lambda: None if REDIS_SERVER is None else _private(),
        unavailable="no Redis for the tests: set SESSIONHUB_TEST_REDIS_URL, run a Docker "
        "engine, or put redis-server on PATH (apt-get install redis-server)",
    )


@contextmanager
def redis_cluster() -> Iterator[str]:
    """Yield a three-master Redis Cluster URL (``SESSIONHUB_TEST_REDIS_CLUSTER_URL`` or private)."""
    url = os.environ.get("SESSIONHUB_TEST_REDIS_CLUSTER_URL")
    if url:
        yield url
        return
    if REDIS_SERVER is None:
        raise ServerUnavailable("redis-server is not on PATH (apt-get install redis-server)")
    with tempfile.TemporaryDirectory(prefix="sessionhub-redis-cluster-") as directory:
        nodes = [RedisServer(Path(directory) / f"node{n}", config=CLUSTER_NODE) for n in range(3)]
        try:
            for node in nodes:
                node.start()
            yield start_cluster(nodes)
        finally:
            for node in nodes:
                node.stop()
