"""The places this backend goes around redis-py's asyncio client, each for a measured gain.

Both apply to script calls on a single server or a Sentinel master (Redis
Cluster goes through redis-py's cluster client as it is). Measured with
``plugins/redis/bench_append.py`` (ratio of ``backend@10`` to a raw ``RPUSH``,
runs alternated, Python 3.11, redis-py 8.1), taking each away alone:

- :class:`ConnectionCache`: connections of a pool the backend created stay
  checked out between calls. redis-py's checkout and return cost two lock
  acquisitions, metrics calls and a readiness probe: 1.08x raw with it, 1.27x
  without (+18%).
- :func:`run_script`: an ``EVALSHA`` packed by hiredis's C packer (redis-py's
  asyncio connections pack in Python: 1.08x against 1.22x, +13%), under one
  deadline for the write and the read. redis-py bounds each with its own
  timeout, and on Python 3.11 its write bound is ``asyncio.wait_for``, which
  starts a task per command: 1.09x with one deadline, 1.23x without (+13%).
- :func:`run_script_beside`: the same, for a script and one plain command in
  one ``MULTI``/``EXEC`` (a long read: see ``SingleNode.get_beside``).

What they rely on (checked by ``tests/test_driver.py``, and the reason
``redis`` is bounded in ``pyproject.toml``): a connection's ``send_packed_command``,
``read_response`` (which disconnects on an error, cancellation included, and
raises a reply error), ``socket_timeout`` (read for every call: unset, no
bound is applied), ``retry``, ``is_connected`` and ``disconnect``; a pool's
``get_connection`` and ``release``; and ``hiredis.pack_command`` packing as
redis-py does.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redis.asyncio import ConnectionPool
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

_pack: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # redis-py without its hiredis extra: its own packer
    _pack = None
else:
    _pack = _hiredis_pack

__all__ = ["ConnectionCache", "run_script", "run_script_beside"]

_T = TypeVar("_T")


class ConnectionCache:
    """Connections of a redis-py pool for script calls, kept checked out when ``keep``.

    With ``keep`` (a pool the backend created) connections stay checked out
    between calls and go back to the pool at :meth:`close`; a connection whose
    call failed goes back at once, and the pool reconnects it before its next
    use. Without ``keep`` (a pool the application gave, or one capped by
    ``max_connections``, where other callers wait for a connection to come
    back) each call takes one and gives it back. Either way a call runs under
    the connection's retry policy, as ``Redis.execute_command`` does.
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


def _packed(connection: AbstractConnection, *args: Any) -> bytes | list[bytes]:
    if _pack is None:
        return connection.pack_command(*args)
    return _pack(args)


async def _exchange(
    connection: AbstractConnection, sha: str, source: str, keys: Sequence[str], argv: Sequence[Any]
) -> Any:
    packed = _packed(connection, "EVALSHA", sha, len(keys), *keys, *argv)
    await connection.send_packed_command(packed)
    try:
        return await connection.read_response()
    except NoScriptError:
        await connection.send_packed_command(
            _packed(connection, "EVAL", source, len(keys), *keys, *argv)
        )
        return await connection.read_response()


async def _bounded(connection: AbstractConnection, exchange: Callable[[], Awaitable[_T]]) -> _T:
    """``exchange()`` under one deadline: the connection's ``socket_timeout``, if set."""
    timeout: float | None = connection.socket_timeout
    if sys.version_info >= (3, 11) and timeout:
        # Unset for the exchange, so redis-py adds no bounds of its own; a cancelled
        # write or read disconnects the connection, reconnected before its next use.
        connection.socket_timeout = None
        try:
            async with asyncio.timeout(timeout):
                return await exchange()
        except TimeoutError:
            raise RedisTimeoutError(f"Timeout waiting for a reply after {timeout} s") from None
        finally:
            connection.socket_timeout = timeout
    return await exchange()


async def run_script(
    connection: AbstractConnection, sha: str, source: str, keys: Sequence[str], argv: Sequence[Any]
) -> Any:
    """``EVALSHA`` on ``connection`` (``EVAL`` if the server lacks it), under one deadline."""
    return await _bounded(connection, lambda: _exchange(connection, sha, source, keys, argv))


async def run_script_beside(
    connection: AbstractConnection,
    sha: str,
    source: str,
    keys: Sequence[str],
    argv: Sequence[Any],
    command: tuple[Any, ...],
) -> list[Any]:
    """The script's reply and ``command``'s, both run in one ``MULTI``/``EXEC``.

    One round trip, under one deadline; nothing else runs between the two.
    ``EVAL`` is sent instead if the server lacks the script.
    """

    async def exchange() -> list[Any]:
        for call in (("EVALSHA", sha), ("EVAL", source)):
            words = (("MULTI",), (*call, len(keys), *keys, *argv), command, ("EXEC",))
            parts = [_packed(connection, *each) for each in words]
            await connection.send_packed_command(
                [chunk for part in parts for chunk in ([part] if isinstance(part, bytes) else part)]
            )
            try:
                for _ in range(3):  # +OK, +QUEUED, +QUEUED
                    await connection.read_response()
                replies: list[Any] = await connection.read_response()
            except BaseException:
                # An error raised before EXEC's reply (a command refused while queued)
                # leaves replies unread: the connection is out of step, so it goes.
                await connection.disconnect(nowait=True)
                raise
            # A command's error inside EXEC comes back as its reply, not raised.
            if isinstance(replies[0], NoScriptError):
                continue
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
            return replies
        raise NoScriptError("the server refused the script's source")  # pragma: no cover

    return await _bounded(connection, exchange)
