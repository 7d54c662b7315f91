"""Settings, URL forms and registration of the Redis backend; Sentinel and Unix-socket servers."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError

from sessionhub import BackendUnavailable, ConfigError, SessionHistoryService
from sessionhub.settings import SessionHubSettings
from sessionhub.testing import assert_backend_registered
from sessionhub_redis._connect import connect
from sessionhub_redis.backend import RedisBackend, RedisSettings


def test_registered_through_the_entry_point():
    info = assert_backend_registered(
        "redis",
        schemes=("redis", "rediss", "unix", "redis+sentinel", "redis+cluster", "rediss+cluster"),
    )
    assert info.distribution == "sessionhub-redis"


def test_defaults():
    settings = RedisSettings()
    assert settings.url is not None
    assert settings.url.get_secret_value() == "redis://localhost:6379/0"
    assert settings.key_prefix == "sessionhub:"
    assert settings.cluster is None


@pytest.mark.parametrize("prefix", ["a{b", "a}b", "tab\there"])
def test_bad_key_prefixes(prefix):
    with pytest.raises(ValueError, match="key_prefix"):
        RedisSettings(key_prefix=prefix)


def test_unknown_scheme_is_a_config_error():
    with pytest.raises(ValueError, match="redis://"):
        RedisSettings(url="http://localhost:6379")


def test_password_is_secret_and_never_printed():
    settings = RedisSettings(url="redis://:hunter2@localhost:6379/0", password="hunter3")
    assert "hunter" not in repr(settings)
    assert "hunter" not in repr(RedisBackend(settings))


def test_service_selects_redis_by_url_and_passes_the_table():
    service = SessionHistoryService(
        settings=SessionHubSettings.isolated(
            url="redis://127.0.0.1:1/0",
            redis={"key_prefix": "mine:", "socket_timeout": 0.5},
            purge_interval=None,
        )
    )
    backend = service.backend
    assert isinstance(backend, RedisBackend)
    assert backend.keys.prefix == "mine:"
    assert backend.settings.socket_timeout == 0.5


def _pool_kwargs(client: Redis) -> dict:
    return client.connection_pool.connection_kwargs


@pytest.mark.asyncio
async def test_url_forms_build_the_right_client():
    single = connect(RedisSettings(url="redis://user:pw@h1:7001/3", socket_timeout=1.5))
    kwargs = _pool_kwargs(single.client)
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("h1", 7001, 3)
    assert (kwargs["username"], kwargs["password"], kwargs["socket_timeout"]) == ("user", "pw", 1.5)
    await single.close()

    tls = connect(RedisSettings(url="rediss://h1"))
    assert issubclass(tls.client.connection_pool.connection_class, SSLConnection)
    await tls.close()

    unix = connect(RedisSettings(url="unix:///tmp/redis.sock?db=2", password="pw"))
    assert issubclass(unix.client.connection_pool.connection_class, UnixDomainSocketConnection)
    assert _pool_kwargs(unix.client)["path"] == "/tmp/redis.sock"
    assert _pool_kwargs(unix.client)["password"] == "pw"
    await unix.close()

    sentinel = connect(RedisSettings(url="redis+sentinel://:pw@s1:26379,s2/mymaster/2"))
    assert isinstance(sentinel.client.connection_pool, SentinelConnectionPool)
    assert sentinel.client.connection_pool.service_name == "mymaster"
    await sentinel.close()

    cluster = connect(RedisSettings(url="redis+cluster://c1:7000,c2:7001,[::1]:7002"))
    assert isinstance(cluster.client, RedisCluster)
    startup = {(n.host, n.port) for n in cluster.client.nodes_manager.startup_nodes.values()}
    assert startup == {("c1", 7000), ("c2", 7001), ("::1", 7002)}
    await cluster.close()

    implied = connect(RedisSettings(url="redis://c1:7000", cluster=True))
    assert isinstance(implied.client, RedisCluster)
    await implied.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+sentinel://s1:26379", "names no master"),
        ("redis+cluster://c1:7000/3", "database"),
        ("redis+cluster://c1:port", "bad port"),
    ],
)
def test_bad_url_forms(url, message):
    with pytest.raises(ConfigError, match=message):
        connect(RedisSettings(url=url))


def test_sentinel_master_from_settings():
    sentinel = connect(RedisSettings(url="redis+sentinel://s1", sentinel_master="other"))
    assert sentinel.client.connection_pool.service_name == "other"
    asyncio.run(sentinel.close())


@pytest.mark.asyncio
async def test_unreachable_server_is_backend_unavailable():
    settings = RedisSettings(url="redis://127.0.0.1:1/0", retry_attempts=1, retry_backoff=0.01)
    async with RedisBackend(settings) as backend:
        with pytest.raises(BackendUnavailable, match=r"127\.0\.0\.1:1") as caught:
            await backend.ping()
    assert isinstance(caught.value.__cause__, RedisConnectionError)
    assert "Check that the server is running" in str(caught.value)


@pytest.mark.asyncio
async def test_unix_socket_server(redis_server_factory, tmp_path, key_prefix, make_service):
    socket_path = tmp_path / "redis.sock"
    redis_server_factory(f"unixsocket {socket_path}\nunixsocketperm 700\n", name="unix")
    backend = RedisBackend(RedisSettings(url=f"unix://{socket_path}", key_prefix=key_prefix))
    async with make_service(backend) as service:
        await service.create_session("alice", "s1")
        [event] = await service.append(("alice", "s1"), "over a socket")
        assert event.seq == 1


@pytest.mark.asyncio
async def test_sentinel_server(redis_server_factory, key_prefix, make_service):
    master = redis_server_factory(name="sentinel-master")
    sentinel = redis_server_factory(
        f"sentinel monitor mymaster 127.0.0.1 {master.port} 1\n"
        "sentinel down-after-milliseconds mymaster 60000\n",
        name="sentinel",
        sentinel=True,
    )
    url = f"redis+sentinel://127.0.0.1:{sentinel.port}/mymaster"
    backend = RedisBackend(RedisSettings(url=url, key_prefix=key_prefix))
    async with make_service(backend) as service:
        await service.create_session("alice", "s1")
        [event] = await service.append(("alice", "s1"), "through sentinel")
        assert event.seq == 1
    direct = Redis.from_url(master.url)
    try:
        users = backend.keys.user(service.app_name, "alice")
        assert await direct.exists(users.session("s1").hash) == 1
    finally:
        await direct.aclose()
