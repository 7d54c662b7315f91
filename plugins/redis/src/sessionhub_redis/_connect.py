"""The redis-py asyncio client a backend uses: one given to it, or one built from its settings.

URL forms::

    redis://[[user]:password@]host[:port][/db]       one server (TCP)
    rediss://...                                     the same over TLS
    unix://[[user]:password@]/path/to/socket[?db=N]  one server (Unix socket)
    redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service[/db]
    redis+cluster://[[user]:password@]host[:port][,host[:port]...]
    rediss+cluster://...                             Redis Cluster over TLS

The password in a Sentinel URL is the master's; the sentinels' own password is
the ``sentinel_password`` setting.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff, NoBackoff

from sessionhub import ConfigError
from sessionhub.backend_tools import mask_url
from sessionhub_redis._driver import ConnectionCache
from sessionhub_redis._settings import RedisSettings, check_url

__all__ = ["Connection", "connect"]

_DEFAULT_PORT = 6379
_DEFAULT_SENTINEL_PORT = 26379
_BACKOFF_CAP = 1.0


@dataclass
class Connection:
    """A client and what must be closed with it (the things this backend created)."""

    client: Redis | RedisCluster
    closers: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)
    cache: ConnectionCache | None = None
    """Where script calls take their connection; None: through the client's commands."""

    async def close(self) -> None:
        """Close everything created for this connection, newest first."""
        closers, self.closers = self.closers, []
        if self.cache is not None:
            await self.cache.close()
        for close in reversed(closers):
            await close()


def _hosts(netloc: str, default_port: int, url: str) -> tuple[str | None, str | None, list[Any]]:
    """Split ``user:password@host:port,host:port`` into credentials and (host, port) pairs."""
    userinfo, _, hostlist = netloc.rpartition("@")
    username = password = None
    if userinfo:
        user, has_password, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if has_password else None
    hosts: list[tuple[str, int]] = []
    for item in hostlist.split(","):
        item = item.strip()
        if not item:
            continue
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            port_text = rest.removeprefix(":")
        else:
            host, _, port_text = item.partition(":")
        try:
            port = int(port_text) if port_text else default_port
        except ValueError:
            raise ConfigError(
                f"The Redis URL {mask_url(url)!r} has a bad port {port_text!r}: "
                "write host:port, e.g. redis+cluster://10.0.0.1:7000,10.0.0.2:7000"
            ) from None
        hosts.append((unquote(host) or "localhost", port))
    if not hosts:
        raise ConfigError(f"The Redis URL {mask_url(url)!r} names no host.")
    return username, password, hosts


def _common(settings: RedisSettings) -> dict[str, Any]:
    attempts = settings.retry_attempts
    backoff = (
        ExponentialBackoff(cap=_BACKOFF_CAP, base=settings.retry_backoff)
        if settings.retry_backoff > 0
        else NoBackoff()
    )
    options: dict[str, Any] = {
        "socket_timeout": settings.socket_timeout,
        "socket_connect_timeout": settings.socket_connect_timeout,
        "retry": Retry(backoff, attempts),
    }
    if settings.username is not None:
        options["username"] = settings.username
    if settings.password is not None:
        options["password"] = settings.password.get_secret_value()
    return options


def connect(
    settings: RedisSettings,
    client: Redis | RedisCluster | None = None,
    pool: ConnectionPool | None = None,
) -> Connection:
    """The connection a backend uses; nothing is sent to the server yet.

    ``client`` or ``pool`` when one was given (closing the connection leaves it
    open), else the client the settings describe.
    """
    if client is not None:
        connection = Connection(client)
        if type(client) is Redis and client.connection is None:
            connection.cache = ConnectionCache(client.connection_pool, keep=False)
        return connection
    if pool is not None:
        made = Redis(connection_pool=pool)
        return Connection(
            made,
            [lambda: made.aclose(close_connection_pool=False)],
            ConnectionCache(pool, keep=False),
        )
    url = settings.url.get_secret_value() if settings.url is not None else "redis://localhost"
    scheme = check_url(url)
    cluster = settings.cluster if settings.cluster is not None else scheme.endswith("+cluster")
    if scheme == "redis+sentinel":
        if cluster:
            raise ConfigError("cluster = true cannot be combined with a redis+sentinel:// URL.")
        return _sentinel(url, settings)
    if cluster:
        if scheme == "unix":
            raise ConfigError("Redis Cluster cannot be reached over a Unix socket.")
        return _cluster(url, scheme, settings)
    return _single(url, settings)


def _single(url: str, settings: RedisSettings) -> Connection:
    options = _common(settings)
    pool: ConnectionPool
    if settings.max_connections is not None:
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=settings.max_connections,
            timeout=settings.socket_connect_timeout,
            **options,
        )
    else:
        pool = ConnectionPool.from_url(url, **options)
    client = Redis(connection_pool=pool)
    # Kept connections never go back to a capped pool, where other callers wait for one.
    keep = settings.max_connections is None
    return Connection(
        client,
        [lambda: client.aclose(close_connection_pool=True)],
        ConnectionCache(pool, keep=keep),
    )


def _cluster(url: str, scheme: str, settings: RedisSettings) -> Connection:
    parts = urlsplit(url)
    if parts.path.strip("/") not in ("", "0"):
        raise ConfigError(
            f"The Redis Cluster URL {mask_url(url)!r} names a database; Redis Cluster has only "
            "database 0. Remove the path."
        )
    username, password, hosts = _hosts(parts.netloc, _DEFAULT_PORT, url)
    options = _common(settings)
    if username is not None:
        options.setdefault("username", username)
    if password is not None:
        options.setdefault("password", password)
    if scheme.startswith("rediss"):
        options["ssl"] = True
    if settings.max_connections is not None:
        options["max_connections"] = settings.max_connections
    client = RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in hosts],
        **options,
    )
    return Connection(client, [client.aclose])


def _sentinel(url: str, settings: RedisSettings) -> Connection:
    parts = urlsplit(url)
    username, password, hosts = _hosts(parts.netloc, _DEFAULT_SENTINEL_PORT, url)
    path = [unquote(p) for p in parts.path.split("/") if p]
    service = path[0] if path else settings.sentinel_master
    if not service:
        raise ConfigError(
            f"The Sentinel URL {mask_url(url)!r} names no master: write "
            "redis+sentinel://host:26379,host:26379/<master name>[/db], or set sentinel_master."
        )
    try:
        db = int(path[1]) if len(path) > 1 else 0
    except ValueError:
        raise ConfigError(
            f"The Sentinel URL {mask_url(url)!r} has a bad database number {path[1]!r}."
        ) from None
    options = _common(settings)
    if username is not None:
        options.setdefault("username", username)
    if password is not None:
        options.setdefault("password", password)
    sentinel_options: dict[str, Any] = {
        "socket_timeout": settings.socket_timeout,
        "socket_connect_timeout": settings.socket_connect_timeout,
    }
    if settings.sentinel_password is not None:
        sentinel_options["password"] = settings.sentinel_password.get_secret_value()
    sentinel = Sentinel(hosts, sentinel_kwargs=sentinel_options, **options)  # type: ignore[no-untyped-call]
    client = sentinel.master_for(service, redis_class=Redis, db=db)
    return Connection(
        client,
        [sentinel.aclose, lambda: client.aclose(close_connection_pool=True)],
        ConnectionCache(client.connection_pool, keep=True),
    )
