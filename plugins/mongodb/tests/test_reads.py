"""get_session by a process whose remembered head went stale.

A backend that knows a session's head reads the document by ``_id`` and the
events of that head alongside; these tests make another backend (another
process, as far as the first can tell) change the session in between in
every way a head can move, and check the reader still sees exactly the
session as stored. Each test runs on both schemes.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_asyncio

from sessionhub import SessionHistoryService
from sessionhub.models import Session
from sessionhub.plugins import get_plugin_manager
from sessionhub.settings import SessionHubSettings
from sessionhub_mongodb.backend import MongoBackend

pytestmark = pytest.mark.asyncio


def _service(backend: MongoBackend) -> SessionHistoryService:
    return SessionHistoryService(
        backend,
        settings=SessionHubSettings.isolated(purge_interval=None),
        plugin_manager=get_plugin_manager(entry_points=False),
    )


class Readers:
    """Two readers, each remembering the head of its own last read: one reads every event,
    the other the newest two."""

    def __init__(self, full: SessionHistoryService, last: SessionHistoryService) -> None:
        self.full, self.last = full, last

    async def see(self, expected: list[str]) -> None:
        assert _texts(await self.full.get_session("alice", "s1")) == expected
        assert _texts(await self.last.get_session("alice", "s1", last_n=2)) == expected[-2:]


@pytest_asyncio.fixture
async def services(target):
    """Readers and a writer, each on its own backend of one database."""
    settings = target.settings()
    async with (
        MongoBackend(settings) as full,
        MongoBackend(settings) as last,
        MongoBackend(settings) as writer,
    ):
        yield Readers(_service(full), _service(last)), _service(writer)


def _texts(session: Session | None) -> list[str]:
    assert session is not None
    return [event.text for event in session.events]


async def test_a_reader_sees_what_another_writer_appended_popped_and_replaced(services):
    readers, writer = services
    await writer.create_session("alice", "s1")
    await writer.append(("alice", "s1"), ["a", "b", "c"])
    await readers.see(["a", "b", "c"])
    await writer.append(("alice", "s1"), ["d", "e"])  # the readers' heads only grew
    await readers.see(["a", "b", "c", "d", "e"])
    await writer.pop_event("alice", "s1")
    await readers.see(["a", "b", "c", "d"])
    await writer.append(("alice", "s1"), ["f"])
    await readers.see(["a", "b", "c", "d", "f"])
    await writer.replace_events("alice", "s1", ["x", "y", "z", "v"])
    await readers.see(["x", "y", "z", "v"])
    await writer.pop_event("alice", "s1")
    await writer.append(("alice", "s1"), ["w"])
    assert _texts(await readers.full.get_session("alice", "s1", last_n=0)) == []
    await readers.see(["x", "y", "z", "w"])


async def test_a_reader_sees_a_session_deleted_and_created_again(services):
    readers, writer = services
    reader = readers.full
    await writer.create_session("alice", "s1", state={"user:mood": "fine", "app:flag": 1})
    await writer.append(("alice", "s1"), ["a", "b"])
    await readers.see(["a", "b"])
    await writer.delete_session("alice", "s1")
    await writer.create_session("alice", "s1", state={"k": "new"})
    await writer.append(("alice", "s1"), ["c"])
    session = await reader.get_session("alice", "s1")
    assert _texts(session) == ["c"]
    assert session.state == {"k": "new", "user:mood": "fine", "app:flag": 1}
    await writer.delete_session("alice", "s1")
    assert await reader.get_session("alice", "s1") is None


async def test_a_full_read_skips_events_outside_the_visible_range(services, target):
    readers, _ = services
    reader = readers.full
    await reader.create_session("alice", "s1")
    await reader.append(("alice", "s1"), ["a", "b", "c"])
    backend: Any = reader.backend
    document = await backend._sessions.find_one({"sid": "s1"})
    stored = await backend._events.find_one({"session": document["incarnation"], "seq": 3})
    # An unpublished writer's event above last_seq, and one below the floor.
    for seq in (0, 4):
        leftover = {key: value for key, value in stored.items() if key != "_id"}
        leftover.update(seq=seq, event_id=f"leftover-{seq}")
        await backend._events.insert_one(leftover)
    await readers.see(["a", "b", "c"])
    async with MongoBackend(target.settings()) as fresh:  # no remembered head
        await Readers(_service(fresh), _service(fresh)).see(["a", "b", "c"])
