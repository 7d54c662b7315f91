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
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from sessionhub import SessionHistoryService
from sessionhub.plugins import get_plugin_manager
from sessionhub.settings import SessionHubSettings
from sessionhub.testing.servers import missing
from sessionhub_redis._topology import ACL_RULES, CLUSTER_ACL_RULES
from sessionhub_redis.backend import RedisBackend, RedisSettings
from sessionhub_redis.testing import (
    CLUSTER_NODE,
    REDIS_SERVER,
    RedisServer,
    ServerUnavailable,
    docker_answers,
    redis_server,
    start_cluster,
)


@pytest.fixture(scope="session")
def redis_server_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., RedisServer]]:
    """Start private redis-servers (``config`` lines appended); all are stopped at the end."""
    if REDIS_SERVER is None:
        missing("redis-server is not on PATH (apt-get install redis-server)")
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
    if os.environ.get("SESSIONHUB_TEST_REDIS_URL") or docker_answers():
        with redis_server() as url:
            yield url
        return
    if REDIS_SERVER is None:
        missing(
            "no Redis for the tests: set SESSIONHUB_TEST_REDIS_URL, run a Docker engine, "
            "or put redis-server on PATH"
        )
    server: RedisServer = request.getfixturevalue("private_redis")
    yield server.url


# The ACL users of ``acl_server`` and ``acl_cluster`` may touch only keys under this prefix.
_ACL_PREFIX, _ACL_PASSWORD = "acl-app:", "acl-Pw_7"
_ACL_USER_RULES = f"on >{_ACL_PASSWORD} " + ACL_RULES.replace("<key_prefix>", _ACL_PREFIX)


@pytest.fixture(scope="session")
def redis_cluster_url(redis_server_factory: Callable[..., RedisServer]) -> str:
    """A redis+cluster:// URL of a private three-master Redis Cluster."""
    url = os.environ.get("SESSIONHUB_TEST_REDIS_CLUSTER_URL")
    if url:
        return url
    # Each node also has the ACL users of ``acl_cluster``: ``app``, and ``narrow``
    # without the Cluster's own rules.
    config = CLUSTER_NODE + (
        f"user app {_ACL_USER_RULES} {CLUSTER_ACL_RULES}\nuser narrow {_ACL_USER_RULES}\n"
    )
    nodes = [redis_server_factory(config, name=f"cluster{n}") for n in range(3)]
    try:
        return start_cluster(nodes)
    except ServerUnavailable as exc:
        missing(str(exc))
        raise


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


@dataclass(frozen=True)
class AclUsers:
    """Where the ACL users ``app`` and ``narrow`` log in, and the key prefix they may touch."""

    url: str
    """The server's or Cluster's URL, without credentials."""
    prefix: str
    password: str

    def settings(self, user: str, key_prefix: str) -> RedisSettings:
        """Settings of ``user`` under ``key_prefix`` (a test's own) inside ``prefix``."""
        scheme, rest = self.url.split("://", 1)
        url = f"{scheme}://{user}:{self.password}@{rest}"
        return RedisSettings(url=url, key_prefix=self.prefix + key_prefix)


@pytest.fixture(scope="module")
def acl_server(redis_server_factory: Callable[..., RedisServer]) -> AclUsers:
    """A server whose users may touch only keys under ``acl-app:``.

    ``app`` has the rules the backend names when it is refused (``ACL_RULES``, as the
    README gives them); ``narrow`` has the same without ``+@scripting``.
    """
    narrow = _ACL_USER_RULES.replace(" +@scripting", "")
    server = redis_server_factory(f"user app {_ACL_USER_RULES}\nuser narrow {narrow}\n", name="acl")
    return AclUsers(server.url, _ACL_PREFIX, _ACL_PASSWORD)


@pytest.fixture(scope="session")
def acl_cluster(redis_cluster_url: str) -> AclUsers:
    """The private Cluster's ACL users: ``app`` holds ``ACL_RULES`` and
    ``CLUSTER_ACL_RULES``, ``narrow`` only the former."""
    if os.environ.get("SESSIONHUB_TEST_REDIS_CLUSTER_URL"):
        pytest.skip("SESSIONHUB_TEST_REDIS_CLUSTER_URL names the cluster: it has no ACL user")
    return AclUsers(redis_cluster_url, _ACL_PREFIX, _ACL_PASSWORD)
