"""Appends reusing stored ids: compared before anything is written, under races too."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sessionhub import ConflictError, Event, TextPart
from sessionhub_postgres._append import STORED_MET
from sessionhub_postgres.backend import PostgresBackend

pytestmark = pytest.mark.asyncio


def _event(event_id: str, text: str, **delta: Any) -> Event:
    return Event(id=event_id, role="user", content=[TextPart(text=text)], state_delta=delta)


async def test_writers_racing_with_one_stored_id_store_it_once(backend, make_service):
    """Each batch holds the same event and one of its own: that event once, every other one."""
    async with make_service(backend) as svc:
        await svc.create_session("alice", "s1")
        shared = _event("shared", "same in every batch", shared=True)
        batches = [[shared, _event(f"own{i}", str(i), **{f"k{i}": i})] for i in range(8)]
        results = await asyncio.gather(*(svc.append(("alice", "s1"), batch) for batch in batches))
        assert {result[0].seq for result in results} == {results[0][0].seq}  # stored once
        got = await svc.get_session("alice", "s1")
        assert got is not None
        assert [e.seq for e in got.events] == list(range(1, 10))
        assert sorted(e.id for e in got.events) == sorted(
            ["shared", *(f"own{i}" for i in range(8))]
        )
        assert got.state == {"shared": True, **{f"k{i}": i for i in range(8)}}


async def test_a_stored_event_popped_while_compared_is_compared_again(
    backend: PostgresBackend, make_service
):
    """The write checks the stored events are those compared; else the batch compares anew."""
    async with make_service(backend) as svc:
        await svc.create_session("alice", "s1")
        stored = _event("a", "first", n=1)
        await svc.append(("alice", "s1"), stored)
        send = backend._send_append
        replies: list[object] = []

        async def popping_send(query: str, args: tuple[Any, ...]) -> Any:
            row = await send(query, args)
            replies.append("stored" if row is STORED_MET else row[0])
            if replies == ["stored", 3]:
                assert await svc.pop_event("alice", "s1") is not None  # "a" goes
            return row

        backend._send_append = popping_send  # type: ignore[method-assign]
        try:
            result = await svc.append(("alice", "s1"), [stored, _event("new", "second", m=2)])
        finally:
            del backend._send_append
        # The plain statement met "a"; the check returned it; the write found it gone
        # (compared again: nothing stored); the last call stored both as new events.
        assert replies == ["stored", 3, 3, 0]
        assert [(e.id, e.seq) for e in result] == [("a", 2), ("new", 3)]
        got = await svc.get_session("alice", "s1")
        assert got is not None and [e.id for e in got.events] == ["a", "new"]
        assert got.state == {"n": 1, "m": 2}


async def test_a_conflicting_batch_leaves_the_session_as_it_was(backend, make_service):
    """No new event, no delta, no counter, no time moves when one id holds other content."""
    async with make_service(backend) as svc:
        await svc.create_session("alice", "s1")
        await svc.append(("alice", "s1"), [_event("a", "first", n=1), _event("b", "second")])
        before = await svc.get_session("alice", "s1")
        batch = [_event("c", "third", n=3, **{"user:u": 1}), _event("b", "other text")]
        with pytest.raises(ConflictError, match="'b'"):
            await svc.append(("alice", "s1"), batch)
        after = await svc.get_session("alice", "s1")
        assert after == before
        assert await svc.get_user_state("alice") == {}
