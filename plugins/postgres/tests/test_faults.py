"""Faults: a server stopped, crashed, read-only or closing idle connections; typed errors.

These tests stop or reconfigure their server, so they never use the shared one: each starts a
private cluster of its own (``initdb`` and ``pg_ctl`` from the machine's
PostgreSQL) in a temporary directory, removed afterwards.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from sessionhub import BackendError, BackendUnavailable, Event, TextPart
from sessionhub_postgres.backend import PostgresBackend, PostgresSettings
from sessionhub_postgres.testing import PrivateCluster

pytestmark = pytest.mark.asyncio

HANG_GUARD = 60  # only a guard against a call that never returns; durations are not asserted


def _settings(cluster: PrivateCluster) -> PostgresSettings:
    return PostgresSettings(
        url=cluster.url.replace("postgres@", "postgres:s3cret-pw@"),
        connect_timeout=2,
        command_timeout=5,
        pool_timeout=5,
        max_pool_size=4,
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


async def _set_for_new_connections(cluster: PrivateCluster, setting: str) -> None:
    """Set ``setting`` (``name = value``) for every later connection to the cluster's database."""
    conn = await asyncpg.connect(cluster.url)
    try:
        await conn.execute(f"ALTER DATABASE postgres SET {setting}")
    finally:
        await conn.close()


async def _unavailable(call) -> BackendUnavailable:
    with pytest.raises(BackendUnavailable) as caught:
        await asyncio.wait_for(call, HANG_GUARD)
    message = str(caught.value)
    assert "s3cret-pw" not in message and "Check that the server is running" in message
    return caught.value


async def test_stopped_server_then_restarted(cluster, make_service):
    service = make_service(PostgresBackend(_settings(cluster)))
    async with service:
        await service.create_session("alice", "s1")
        for i in range(1, 11):
            await service.append(("alice", "s1"), _event(f"e{i}", i))

        cluster.stop()
        await _unavailable(service.append(("alice", "s1"), _event("e11", 11)))
        await _unavailable(service.get_session("alice", "s1"))
        await _unavailable(service.list_sessions("alice"))
        await _unavailable(service.update_user_state("alice", {"k": 1}))
        status = await service.health()
        assert not status.ok

        cluster.start()
        [event] = await service.append(("alice", "s1"), _event("e11", 11))
        assert event.seq == 11
        events = await _assert_whole(service, "s1")
        assert [e.id for e in events] == [f"e{i}" for i in range(1, 12)]
        assert (await service.health()).ok


async def test_a_crash_mid_storm_leaves_no_half_applied_append(cluster, make_service):
    """Writers append while the server crashes: each append is whole or absent, none lost."""
    service = make_service(PostgresBackend(_settings(cluster)))
    acknowledged: dict[str, int] = {}
    enough = asyncio.Event()

    async def writer(name: str) -> None:
        i = 0
        while True:
            i += 1
            try:
                await service.append(("alice", name), _event(f"{name}-{i}", i))
            except BackendUnavailable:
                return
            acknowledged[name] = i
            if sum(acknowledged.values()) >= 200:
                enough.set()

    async with service:
        names = [f"w{n}" for n in range(4)]
        for name in names:
            await service.create_session("alice", name)
        tasks = [asyncio.create_task(writer(name)) for name in names]
        await asyncio.wait_for(enough.wait(), HANG_GUARD)
        await asyncio.to_thread(cluster.stop, "immediate")  # a crash: no clean shutdown
        await asyncio.wait_for(asyncio.gather(*tasks), HANG_GUARD)
        await asyncio.to_thread(cluster.start)
        for name in names:
            events = await _assert_whole(service, name)
            # The append in flight at the crash may have committed, unacknowledged.
            assert acknowledged[name] <= len(events) <= acknowledged[name] + 1
            assert [e.id for e in events] == [f"{name}-{i}" for i in range(1, len(events) + 1)]


async def test_connections_the_server_closed_while_idle_are_replaced_unseen(cluster, make_service):
    """A server idle timeout (or a proxy's) closes the connections between calls: no call fails.

    Without it, the connection the backend keeps out of the pool was found handed back
    to asyncpg's pool, and every primitive failed once per idle spell, a pop included.
    """
    await _set_for_new_connections(cluster, "idle_session_timeout = '200ms'")
    service = make_service(PostgresBackend(_settings(cluster)))

    async def idle() -> None:
        await asyncio.sleep(0.6)  # three times the timeout: the server has closed them

    async with service:
        await service.create_session("alice", "s1")
        for i in range(1, 4):
            await idle()
            await service.append(("alice", "s1"), _event(f"e{i}", i))
        await idle()
        popped = await service.pop_event("alice", "s1")
        assert popped is not None and popped.id == "e3"
        await idle()
        assert (await service.create_session("alice", "s2")).id == "s2"
        await idle()
        assert [s.id for s in (await service.list_sessions("alice")).items] == ["s2", "s1"]
        await idle()
        assert await service.update_app_state({"k": 1}) == {"k": 1}
        await idle()
        got = await service.get_session("alice", "s1")
        assert got is not None  # popped once: e3 gone, its seq not reused
        assert [(e.id, e.seq) for e in got.events] == [("e1", 1), ("e2", 2)]
        assert (got.event_count, got.last_seq) == (2, 3)


async def test_a_read_only_server_serves_reads_and_refuses_writes_saying_where_to_point(
    cluster, make_service
):
    """A hot standby (here a database read-only by default): reads work, writes say why not."""
    writer = make_service(PostgresBackend(_settings(cluster)))
    async with writer:
        await writer.create_session("alice", "s1")
        await writer.append(("alice", "s1"), _event("e1", 1))
    await _set_for_new_connections(cluster, "default_transaction_read_only = on")

    reader = make_service(PostgresBackend(_settings(cluster)))
    async with reader:  # the tables are there: opening only reads their version
        got = await reader.get_session("alice", "s1")
        assert got is not None and [e.id for e in got.events] == ["e1"]
        assert [s.id for s in (await reader.list_sessions("alice")).items] == ["s1"]
        with pytest.raises(BackendError) as caught:
            await reader.append(("alice", "s1"), _event("e2", 2))
        message = str(caught.value)
        assert "read-only" in message and "primary" in message and "\n" not in message
        assert "s3cret-pw" not in message
        got = await reader.get_session("alice", "s1")
        assert got is not None and got.last_seq == 1  # nothing written

    # A new deployment cannot create its tables there: the same advice, at start.
    settings = _settings(cluster).model_copy(update={"db_schema": "elsewhere"})
    with pytest.raises(BackendError, match="Point a service that writes at the primary"):
        async with make_service(PostgresBackend(settings)):
            pass
