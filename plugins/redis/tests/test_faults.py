"""Faults: stopped, hung, killed mid-storm servers, errors it answers with; typed, nothing lost."""

from __future__ import annotations

import asyncio
import signal

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from sessionhub import BackendError, BackendUnavailable, Event, TextPart
from sessionhub_redis._protocol import APPEND
from sessionhub_redis._topology import ACL_RULES, CLUSTER_ACL_RULES
from sessionhub_redis.backend import RedisBackend, RedisSettings

pytestmark = pytest.mark.asyncio

AOF = "appendonly yes\nappendfsync always\n"
TIMEOUT = 1.0  # short enough to keep hung-server tests quick, long enough for a loaded machine
RETRIES = 1
# Only a guard against a call that never returns; how long a failure takes is not asserted.
HANG_GUARD = 60


def _settings(server, key_prefix: str) -> RedisSettings:
    return RedisSettings(
        url=server.url,
        key_prefix=key_prefix,
        socket_timeout=TIMEOUT,
        socket_connect_timeout=TIMEOUT,
        retry_attempts=RETRIES,
        retry_backoff=0.01,
    )


def _event(event_id: str, counter: int) -> Event:
    return Event(
        id=event_id,
        role="user",
        content=[TextPart(text=event_id)],
        state_delta={"counter": counter},
    )


async def _assert_whole(service, session_id: str) -> list[Event]:
    """The session is consistent: seqs 1..last_seq, counters agree, state from the last event."""
    got = await service.get_session("alice", session_id)
    assert got is not None
    assert [e.seq for e in got.events] == list(range(1, got.last_seq + 1))
    assert got.event_count == got.last_seq == len(got.events)
    if got.events:
        assert got.state["counter"] == got.events[-1].state_delta["counter"]
    return got.events


async def _unavailable(call) -> BackendUnavailable:
    """The call gives up (it does not hang) with BackendUnavailable, the driver's error chained."""
    with pytest.raises(BackendUnavailable) as caught:
        await asyncio.wait_for(call, HANG_GUARD)
    assert isinstance(caught.value.__cause__, (RedisConnectionError, RedisTimeoutError, OSError))
    assert "Check that the server is running" in str(caught.value)
    return caught.value


async def test_stopped_server_then_restarted(redis_server_factory, key_prefix, make_service):
    server = redis_server_factory(AOF, name="stopped")
    service = make_service(RedisBackend(_settings(server, key_prefix)))
    async with service:
        await service.create_session("alice", "s1")
        for i in range(1, 11):
            await service.append(("alice", "s1"), _event(f"e{i}", i))

        server.stop()
        await _unavailable(service.append(("alice", "s1"), _event("e11", 11)))
        await _unavailable(service.get_session("alice", "s1"))
        await _unavailable(service.list_sessions("alice"))
        await _unavailable(service.update_user_state("alice", {"k": 1}))
        status = await service.health()
        assert not status.ok and "failed" in status.detail

        server.start()
        [event] = await service.append(("alice", "s1"), _event("e11", 11))
        assert event.seq == 11
        events = await _assert_whole(service, "s1")
        assert [e.id for e in events] == [f"e{i}" for i in range(1, 12)]
        assert (await service.health()).ok


@pytest.mark.parametrize("retries", [0, 1])
async def test_dropped_connections_are_retried_without_duplicates(
    redis_server_factory, key_prefix, make_service, retries
):
    server = redis_server_factory(name="dropped")
    settings = _settings(server, key_prefix).model_copy(update={"retry_attempts": retries})
    service = make_service(RedisBackend(settings))
    killer = Redis.from_url(server.url)
    try:
        async with service:
            await service.create_session("alice", "s1")
            for i in range(1, 6):
                await service.append(("alice", "s1"), _event(f"e{i}", i))
                # Every pooled connection of the backend is closed by the server.
                assert await killer.client_kill_filter(_type="normal", skipme=True) >= 1
            events = await _assert_whole(service, "s1")
            assert [e.id for e in events] == [f"e{i}" for i in range(1, 6)]
    finally:
        await killer.aclose()


async def test_a_flushed_script_cache_is_refilled(redis_server_factory, key_prefix, make_service):
    server = redis_server_factory(name="flushed")
    service = make_service(RedisBackend(_settings(server, key_prefix)))
    admin = Redis.from_url(server.url)
    try:
        async with service:
            await service.create_session("alice", "s1")
            await admin.script_flush()
            [event] = await service.append(("alice", "s1"), _event("e1", 1))
            assert event.seq == 1
            # The append ran its script whole (EVAL), which cached it for EVALSHA again.
            assert await admin.script_exists(APPEND.sha) == [True]
            assert [e.id for e in await _assert_whole(service, "s1")] == ["e1"]
    finally:
        await admin.aclose()


async def test_hung_server_times_out_and_retries_are_safe(
    redis_server_factory, key_prefix, make_service
):
    server = redis_server_factory(name="hung")
    service = make_service(RedisBackend(_settings(server, key_prefix)))
    async with service:
        await service.create_session("alice", "s1")
        await service.append(("alice", "s1"), _event("e1", 1))
        server.signal(signal.SIGSTOP)
        try:
            error = await _unavailable(service.append(("alice", "s1"), _event("e2", 2)))
            assert "Timeout" in str(error)
        finally:
            server.signal(signal.SIGCONT)
        # The timed-out append (and redis-py's retry of it) may have run once the
        # server woke up; the caller's retry with the same event id stores it once.
        [again] = await service.append(("alice", "s1"), _event("e2", 2))
        assert again.seq == 2
        events = await _assert_whole(service, "s1")
        assert [e.id for e in events] == ["e1", "e2"]


async def test_killed_server_keeps_every_acknowledged_append(
    redis_server_factory, key_prefix, make_service
):
    """SIGKILL during an append storm (appendfsync always): every acknowledged append survives."""
    server = redis_server_factory(AOF, name="killed")
    service = make_service(RedisBackend(_settings(server, key_prefix)))
    acknowledged: dict[str, int] = {}
    failures: list[BaseException] = []
    enough = asyncio.Event()

    async def writer(name: str) -> None:
        i = 0
        while True:
            i += 1
            event_id = f"{name}-{i}"
            try:
                [stored] = await service.append(("alice", "storm"), _event(event_id, i))
            except BackendUnavailable as exc:
                failures.append(exc)
                return
            acknowledged[event_id] = stored.seq
            if len(acknowledged) >= 200:
                enough.set()

    async with service:
        await service.create_session("alice", "storm")
        writers = [asyncio.create_task(writer(f"w{n}")) for n in range(4)]
        await asyncio.wait_for(enough.wait(), 30)
        server.kill()
        await asyncio.wait_for(asyncio.gather(*writers), 10)
        assert len(failures) == 4

        server.start()
        got = await service.get_session("alice", "storm")
        assert got is not None
        stored = {e.id: e.seq for e in got.events}
        assert {k: stored.get(k) for k in acknowledged} == acknowledged
        assert [e.seq for e in got.events] == list(range(1, got.last_seq + 1))
        assert got.event_count == got.last_seq >= len(acknowledged)


async def test_a_key_of_the_wrong_type_is_a_server_error_not_server_down(
    backend, make_service, raw_redis
):
    """WRONGTYPE from a foreign value at a session's key is BackendError quoting the server."""
    service = make_service(backend)
    await service.create_session("alice", "s1")
    keys = backend.keys.session(service.app_name, "alice", "s1")
    await raw_redis.delete(keys.hash)
    await raw_redis.set(keys.hash, "not a hash")
    for call in (
        service.get_session("alice", "s1"),
        service.append(("alice", "s1"), "x"),
        service.create_session("alice", "s1"),
    ):
        with pytest.raises(BackendError, match="WRONGTYPE") as caught:
            await call
        assert not isinstance(caught.value, BackendUnavailable)
        assert "server is running" not in str(caught.value)
        assert isinstance(caught.value.__cause__, ResponseError)
    assert await raw_redis.get(keys.hash) == "not a hash"  # nothing was overwritten


async def test_a_server_refusing_writes_is_a_server_error_not_server_down(
    redis_server_factory, key_prefix, make_service
):
    """OOM (maxmemory reached, no eviction) is BackendError quoting the server; reads go on."""
    server = redis_server_factory(name="oom")
    service = make_service(RedisBackend(_settings(server, key_prefix)))
    admin = Redis.from_url(server.url)
    try:
        async with service:
            await service.create_session("alice", "s1")
            await admin.config_set("maxmemory-policy", "noeviction")
            await admin.config_set("maxmemory", 1)
            with pytest.raises(BackendError, match="used memory > 'maxmemory'") as caught:
                await service.append(("alice", "s1"), "x")
            assert "server is running" not in str(caught.value)
            await admin.config_set("maxmemory", 0)
            [event] = await service.append(("alice", "s1"), "x")
            assert event.seq == 1
    finally:
        await admin.aclose()


async def test_a_read_only_replica_serves_reads_and_refuses_writes_saying_where_to_point(
    redis_server_factory, key_prefix, make_service
):
    """A replica (a url naming one by mistake): reads work, a write says to use the primary."""
    primary = redis_server_factory("repl-diskless-sync-delay 0\n", name="primary")
    writer = make_service(RedisBackend(_settings(primary, key_prefix)))
    async with writer:
        await writer.create_session("alice", "s1")
        await writer.append(("alice", "s1"), _event("e1", 1))
    replica = redis_server_factory(f"replicaof 127.0.0.1 {primary.port}\n", name="replica")
    reader = make_service(RedisBackend(_settings(replica, key_prefix)))
    async with reader:
        for _ in range(HANG_GUARD * 20):  # until the replica has synced
            if await reader.get_session("alice", "s1") is not None:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the replica never synced with its primary")
        with pytest.raises(BackendError) as caught:
            await reader.append(("alice", "s1"), _event("e2", 2))
        message = str(caught.value)
        assert "read-only replica" in message and "primary" in message
        assert not isinstance(caught.value, BackendUnavailable)
    async with writer:  # nothing was written
        got = await writer.get_session("alice", "s1")
        assert got is not None and [e.id for e in got.events] == ["e1"]


async def test_a_command_the_acl_refuses_names_the_rules_to_give(
    acl_server, key_prefix, make_service
):
    async with make_service(RedisBackend(acl_server.settings("narrow", key_prefix))) as service:
        with pytest.raises(BackendError) as caught:
            await service.create_session("alice", "s1")
    message = str(caught.value)
    assert "no permissions" in message and ACL_RULES in message
    assert acl_server.password not in message


async def test_a_cluster_user_without_the_cluster_rules_is_told_them(
    acl_cluster, key_prefix, make_service
):
    settings = acl_cluster.settings("narrow", key_prefix)
    with pytest.raises(BackendUnavailable) as caught:  # CLUSTER SLOTS refused
        async with make_service(RedisBackend(settings)) as service:
            await service.create_session("alice", "s1")
    assert CLUSTER_ACL_RULES in str(caught.value)
