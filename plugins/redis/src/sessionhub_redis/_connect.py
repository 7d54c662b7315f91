"""Building a redis-py asyncio client from a URL and the backend's settings.

URL forms::

    redis://[[user]:password@]host[:port][/db]       one server (TCP)
    rediss://...                                     the same over TLS
    unix://[[user]:password@]/path/to/socket[?db=N]  one server (Unix socket)
    redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service[/db]
    redis+cluster://[[user]:password@]host[:port][,host[:port]...]
    rediss+cluster://...                             Redis Cluster over TLS

The password in a Sentinel URL is the master's; the sentinels' own password is
the ``sentinel_password`` setting.

Connections to a single server or a Sentinel master pack commands with hiredis's
C packer: redis-py's asyncio connections pack in Python, which for a script call
with twenty-odd arguments costs about as much as the script's run on the server.
On Python 3.11 they also bound writes with ``asyncio.timeout`` instead of
``asyncio.wait_for``, which starts a task per command there.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import (
    AbstractConnection,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.asyncio.connection import (
    Connection as TCPConnection,
)
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelManagedConnection
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError
from redis.exceptions import TimeoutError as RedisTimeoutError

from sessionhub import ConfigError
from sessionhub.settings import mask_url

if TYPE_CHECKING:
    from sessionhub_redis.backend import RedisSettings

_hiredis_pack: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as _imported_pack
except ImportError:  # redis-py without its hiredis extra: keep its own packer
    _hiredis_pack = None
else:
    _hiredis_pack = _imported_pack

__all__ = ["SCHEMES", "Connection", "ConnectionCache", "connect", "check_url"]

_T = TypeVar("_T")

SCHEMES = ("redis", "rediss", "unix", "redis+sentinel", "redis+cluster", "rediss+cluster")
"""The URL schemes the Redis backend accepts."""

_DEFAULT_PORT = 6379
_DEFAULT_SENTINEL_PORT = 26379
_BACKOFF_CAP = 1.0


class ConnectionCache:
    """Connections of a redis-py pool for script calls, kept checked out when ``keep``.

    Taking a connection from redis-py's asyncio pool and giving it back costs two
    lock acquisitions, five metrics calls and a readiness probe: about a tenth of
    an append. With ``keep`` (a pool the backend created) connections stay checked
    out between calls and go back to the pool at :meth:`close`; a connection whose
    call failed goes back at once, and the pool reconnects it before its next use.
    Without ``keep`` (a pool the application gave, or one capped by
    ``max_connections``, where other callers wait for a connection to come back)
    each call takes one and gives it back. Either way a call runs under the
    connection's retry policy, as ``Redis.execute_command`` does.
    """

    def __init__(self, pool: ConnectionPool, *, keep: bool) -> None:
        self.pool = pool
        self.keep = keep
        self._idle: list[AbstractConnection] = []

    async def call(self, exchange: Callable[[AbstractConnection], Awaitable[_T]]) -> _T:
        """Run ``exchange`` on a connection, retried on connection errors and timeouts."""
        reused = bool(self._idle)
        if reused:
            connection = self._idle.pop()
        else:
            connection = await self.pool.get_connection()  # type: ignore[no-untyped-call]
        kept = False
        try:
            try:
                result = await self._with_retry(connection, exchange)
            except RedisConnectionError:
                if not reused:
                    raise
                # The server may have closed it while it sat here (a restart, an idle
                # timeout), which the pool would have probed for: once more, reconnected.
                await connection.disconnect()
                result = await self._with_retry(connection, exchange)
            kept = self.keep and connection.is_connected
            return result
        finally:
            if kept:
                self._idle.append(connection)
            else:
                await self.pool.release(connection)

    @staticmethod
    async def _with_retry(
        connection: AbstractConnection, exchange: Callable[[AbstractConnection], Awaitable[_T]]
    ) -> _T:
        return await connection.retry.call_with_retry(
            lambda: exchange(connection), lambda _error: connection.disconnect()
        )

    async def close(self) -> None:
        """Give every kept connection back to the pool."""
        idle, self._idle = self._idle, []
        for connection in idle:
            await self.pool.release(connection)


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


class _FastConnection(AbstractConnection):
    """A connection that packs commands in C and bounds writes cheaply.

    Commands are packed by hiredis, as redis-py's synchronous connections do; on
    Python 3.11 a write is bounded without starting a task per command.
    """

    def pack_command(self, *args: Any) -> list[bytes]:
        """Pack one command; a first argument with spaces is split (``"SCRIPT LOAD"``)."""
        if _hiredis_pack is None:
            return super().pack_command(*args)
        first = args[0]
        if isinstance(first, str):
            args = (*first.encode().split(), *args[1:])
        elif b" " in first:
            args = (*first.split(), *args[1:])
        try:
            return [_hiredis_pack(args)]
        except TypeError as exc:
            raise DataError(str(exc)) from exc

    if sys.version_info[:2] == (3, 11):

        async def send_packed_command(
            self, command: str | bytes | Iterable[bytes], check_health: bool = True
        ) -> None:
            """Send a packed command within ``socket_timeout``.

            redis-py bounds the write with ``asyncio.wait_for``, which on Python 3.11
            starts a task for every command; ``asyncio.timeout`` bounds it without one.
            """
            timeout = self.socket_timeout
            if not timeout:
                return await super().send_packed_command(command, check_health)
            self.socket_timeout = None
            try:
                async with asyncio.timeout(timeout):
                    await super().send_packed_command(command, check_health)
            except TimeoutError:
                raise RedisTimeoutError("Timeout writing to socket") from None
            finally:
                self.socket_timeout = timeout


class _TCP(_FastConnection, TCPConnection):
    """A TCP connection packing commands in C."""


class _TLS(_FastConnection, SSLConnection):
    """A TLS connection packing commands in C."""


class _Unix(_FastConnection, UnixDomainSocketConnection):
    """A Unix-socket connection packing commands in C."""


class _SentinelManaged(_FastConnection, SentinelManagedConnection):
    """A Sentinel-managed connection packing commands in C."""


_FAST: dict[type[AbstractConnection], type[AbstractConnection]] = {
    TCPConnection: _TCP,
    SSLConnection: _TLS,
    UnixDomainSocketConnection: _Unix,
}


def check_url(url: str) -> str:
    """Return the URL's lower-cased scheme; raise ``ConfigError`` if Redis does not take it."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in SCHEMES:
        raise ConfigError(
            f"The Redis backend takes {', '.join(s + '://' for s in SCHEMES)} URLs, "
            f"not {mask_url(url)!r}. Example: redis://localhost:6379/0"
        )
    return scheme


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


def connect(settings: RedisSettings) -> Connection:
    """Create the client the settings describe; nothing is sent to the server yet."""
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
    pool.connection_class = _FAST.get(pool.connection_class, pool.connection_class)
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
    client = sentinel.master_for(
        service, redis_class=Redis, db=db, connection_class=_SentinelManaged
    )
    return Connection(
        client,
        [sentinel.aclose, lambda: client.aclose(close_connection_pool=True)],
        ConnectionCache(client.connection_pool, keep=True),
    )
