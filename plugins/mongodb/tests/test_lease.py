"""Appends that fail part-way: nothing half-written, no lease left behind, the real cause named.

The standalone scheme takes a session's write lease before writing; these tests use
a lease of an hour, so a lease wrongly left held would stall the next writer far past
the bounded wait the test allows, and fail it, without measuring any time.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from sessionhub import Event, InvalidInput, SessionHistoryService, SessionNotFound
from sessionhub.plugins import get_plugin_manager
from sessionhub.settings import SessionHubSettings
from sessionhub_mongodb.backend import MongoBackend

pytestmark = pytest.mark.asyncio

AN_HOUR_MS = 3_600_000
BOUNDED_WAIT_S = 30
MIB = 1024 * 1024


def _service(backend: MongoBackend) -> SessionHistoryService:
    return SessionHistoryService(
        backend,
        settings=SessionHubSettings.isolated(purge_interval=None),
        plugin_manager=get_plugin_manager(entry_points=False),
    )


@pytest.mark.parametrize("writer_knows_the_session", [False, True], ids=["cold", "warm"])
async def test_a_publish_refused_by_the_server_leaves_nothing_behind(
    target, writer_knows_the_session
):
    """A publish the server refuses (the session document would exceed 16 MiB) is
    InvalidInput, removes the events it inserted and releases the write lease: another
    instance's next append goes through at once, even with an hour-long lease.

    A writer that has not read the session yet ("cold") takes the lease (standalone) or
    runs a transaction; one that has ("warm") publishes optimistically.
    """
    settings = target.settings(write_lease_ms=AN_HOUR_MS)
    async with (
        _service(MongoBackend(settings)) as first,
        _service(MongoBackend(settings)) as second,
    ):
        await first.create_session("alice", "s1", state={"big": "x" * (9 * MIB)})
        if writer_knows_the_session:
            await second.get_session("alice", "s1", last_n=0)
        with pytest.raises(InvalidInput, match="16 MiB"):
            await second.append(
                ("alice", "s1"), Event(role="user", state_delta={"more": "y" * (8 * MIB)})
            )
        events = second.backend._events
        assert await events.count_documents({}) == 0
        document = await second.backend._sessions.find_one({"sid": "s1"}, {"state": 0})
        assert document.get("lock") is None and document["last_seq"] == 0

        [event] = await asyncio.wait_for(
            first.append(("alice", "s1"), "after the failure"), BOUNDED_WAIT_S
        )
        assert event.seq == 1
        got = await first.get_session("alice", "s1")
        assert got is not None and [e.text for e in got.events] == ["after the failure"]
        assert set(got.state) == {"big"}
        [again] = await asyncio.wait_for(second.append(("alice", "s1"), "again"), BOUNDED_WAIT_S)
        assert again.seq == 2


class _DeleteAndRecreate(monitoring.CommandListener):
    """When the watched client first inserts events, delete and re-create the session.

    The other writer runs in its own thread, event loop and client (as another process
    would), while the watched client waits at the start of its insert.
    """

    def __init__(self, events_collection: str, other: Any) -> None:
        self.events_collection = events_collection
        self.other = other
        self.fired = False

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.fired or event.command.get("insert") != self.events_collection:
            return
        self.fired = True

        async def delete_and_recreate() -> None:
            async with _service(MongoBackend(self.other)) as service:
                assert await service.delete_session("alice", "s1") is True
                await service.create_session("alice", "s1", state={"incarnation": 2})

        thread = threading.Thread(target=asyncio.run, args=(delete_and_recreate(),))
        thread.start()
        thread.join()

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_a_session_deleted_and_recreated_during_an_append_is_not_found(target):
    """An append whose session is deleted (and created again) while it holds the lease is
    SessionNotFound, not a lease conflict; it leaves nothing in either session."""
    if target.scheme != "standalone":
        pytest.skip("the lease exists only in the standalone scheme")
    settings = target.settings(write_lease_ms=AN_HOUR_MS)
    listener = _DeleteAndRecreate(f"{settings.collection_prefix}events", settings)
    client = AsyncMongoClient(target.url, event_listeners=[listener], tz_aware=True)
    try:
        async with _service(MongoBackend(settings)) as creator:
            await creator.create_session("alice", "s1")
            await creator.append(("alice", "s1"), "in the first incarnation")
        backend = MongoBackend(settings, client=client)
        async with _service(backend) as service:
            with pytest.raises(SessionNotFound):
                await asyncio.wait_for(
                    service.append(("alice", "s1"), "racing the delete"), BOUNDED_WAIT_S
                )
            assert listener.fired
            got = await service.get_session("alice", "s1")
            assert got is not None and got.state == {"incarnation": 2} and got.events == []
            assert await backend._events.count_documents({}) == 0
            [event] = await asyncio.wait_for(
                service.append(("alice", "s1"), "in the second incarnation"), BOUNDED_WAIT_S
            )
            assert event.seq == 1
    finally:
        await client.close()
