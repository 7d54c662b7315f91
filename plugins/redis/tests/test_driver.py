"""What ``sessionhub_redis._driver`` relies on in redis-py and hiredis is still there.

The module goes around redis-py's client for measured gains (its docstring
says which and how much); these tests fail when an upgrade of redis-py or
hiredis changes what it uses, before it misbehaves in production.
"""

from __future__ import annotations

import inspect
import signal
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from redis.asyncio import ConnectionPool
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.connection import Connection as TCPConnection
from redis.asyncio.retry import Retry
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from sessionhub_redis import _driver
from sessionhub_redis._driver import ConnectionCache, run_script, run_script_beside
from sessionhub_redis._protocol import DELETE

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _parameters(function: object) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(function).parameters)  # type: ignore[arg-type]


def test_the_installed_redis_py_is_within_the_declared_bound():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    declared = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    [redis] = [Requirement(text) for text in declared if text.startswith("redis")]
    assert redis.specifier.contains(version("redis")), (redis, version("redis"))
    assert any(spec.operator == "<" for spec in redis.specifier), "redis-py needs an upper bound"


def test_the_connection_methods_used_keep_their_signatures():
    send = _parameters(AbstractConnection.send_packed_command)
    assert list(send)[:3] == ["self", "command", "check_health"]
    read = _parameters(AbstractConnection.read_response)
    assert read["timeout"].default is None  # None: bounded by socket_timeout, unset: unbounded
    assert read["disconnect_on_error"].default is True
    assert _parameters(AbstractConnection.disconnect)["nowait"].default is False
    assert list(_parameters(AbstractConnection.disconnect))[:1] == ["self"]
    assert isinstance(inspect.getattr_static(AbstractConnection, "is_connected"), property)
    connection = TCPConnection(socket_timeout=2.5)
    assert connection.socket_timeout == 2.5
    assert isinstance(connection.retry, Retry)
    assert list(_parameters(Retry.call_with_retry))[:3] == ["self", "do", "fail"]


def test_the_pool_methods_used_keep_their_signatures():
    take = _parameters(ConnectionPool.get_connection)
    assert all(
        parameter.default is not inspect.Parameter.empty
        or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
        for name, parameter in take.items()
        if name != "self"
    )
    assert list(_parameters(ConnectionPool.release)) == ["self", "connection"]


@pytest.mark.skipif(_driver._pack is None, reason="hiredis is not installed")
def test_hiredis_packs_a_script_call_as_redis_py_does():
    plain = TCPConnection()
    for command in [
        ("EVALSHA", "f" * 40, 2, "k{1}", "k{1}:x", "", 0, 17, -3, "ünï ✓", b"\x00\xff", b"{}"),
        ("EVAL", "return 1", 0),
    ]:
        assert _driver._packed(plain, *command) == b"".join(plain.pack_command(*command))


@pytest.mark.asyncio
async def test_a_script_call_gives_its_deadline_back_and_a_timeout_disconnects(
    redis_server_factory,
):
    """One deadline over write and read: ``socket_timeout`` is restored after each call, and
    a call that ran out of time leaves its connection closed (the reply is never misread)."""
    server = redis_server_factory(name="driver")
    pool = ConnectionPool.from_url(server.url, socket_timeout=0.2)
    cache = ConnectionCache(pool, keep=True)
    args = DELETE.args(
        session_hash="a", event_list="b", id_index="c", time_list="d", user_index="e",
        base="p", session_id="s", now=0, user_id="u",
    )  # fmt: skip
    keys, argv = args.to_keys_argv()
    used: list[AbstractConnection] = []

    async def exchange(connection: AbstractConnection) -> object:
        used.append(connection)
        return await run_script(connection, DELETE.sha, DELETE.source, keys, argv)

    try:
        assert await cache.call(exchange) == 0  # sent whole (EVAL) the first time
        assert await cache.call(exchange) == 0
        assert used[0].socket_timeout == 0.2 and used[0].is_connected
        server.signal(signal.SIGSTOP)
        try:
            with pytest.raises(RedisTimeoutError):
                await run_script(used[0], DELETE.sha, DELETE.source, keys, argv)
        finally:
            server.signal(signal.SIGCONT)
        assert used[0].socket_timeout == 0.2
        assert not used[0].is_connected
    finally:
        await cache.close()
        await pool.aclose()


@pytest.mark.asyncio
async def test_a_script_beside_a_command_is_one_transaction_and_a_refused_one_disconnects(
    redis_server_factory,
):
    """Both replies come back together; a command refused while queued (its reply an
    error before EXEC's) leaves the connection closed, so no later call misreads a reply."""
    server = redis_server_factory(name="beside")
    pool = ConnectionPool.from_url(server.url)
    cache = ConnectionCache(pool, keep=True)
    source = "return redis.call('RPUSH', KEYS[1], ARGV[1])"
    sha = "0" * 40  # not loaded: the EVAL retry inside the transaction sends the source
    used: list[AbstractConnection] = []

    async def beside(command: tuple[object, ...]) -> list[object]:
        async def exchange(connection: AbstractConnection) -> list[object]:
            used.append(connection)
            return await run_script_beside(connection, sha, source, ["l"], ["x"], command)

        return await cache.call(exchange)

    try:
        assert await beside(("LRANGE", "l", 0, -1)) == [1, [b"x"]]
        with pytest.raises(ResponseError):
            await beside(("LRANGE", "l"))  # wrong arity: refused while queued
        assert not used[-1].is_connected
        assert await beside(("LLEN", "l")) == [2, 2]  # the refused transaction ran nothing
    finally:
        await cache.close()
        await pool.aclose()
