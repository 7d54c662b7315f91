"""Event limit: only the newest N events are kept; seq keeps counting."""

from __future__ import annotations

import pytest

from sessionhub.testing._base import MakeService


class LimitTests:
    """DESIGN §3: event_limit."""

    pytestmark = pytest.mark.asyncio

    async def test_only_the_newest_events_are_kept(self, make_service: MakeService) -> None:
        """With event_limit=5, after 12 appends the session holds seqs 8..12."""
        service = make_service(event_limit=5)
        s = await service.create_session("alice", "s1")
        for i in range(1, 13):
            await service.append(s, str(i))
        got = await service.get_session("alice", "s1")
        assert got is not None
        assert [e.seq for e in got.events] == [8, 9, 10, 11, 12]
        assert (got.event_count, got.last_seq) == (5, 12)
        [event] = await service.append(s, "13")
        assert event.seq == 13

    async def test_a_batch_larger_than_the_limit(self, make_service: MakeService) -> None:
        """A batch of more events than the limit returns all of them but keeps the newest."""
        service = make_service(event_limit=3)
        await service.create_session("alice", "s1")
        stored = await service.append(("alice", "s1"), [str(i) for i in range(1, 8)])
        assert [e.seq for e in stored] == list(range(1, 8))
        got = await service.get_session("alice", "s1", after_seq=0)
        assert got is not None and [e.text for e in got.events] == ["5", "6", "7"]

    async def test_windows_apply_to_kept_events(self, make_service: MakeService) -> None:
        """last_n and after_seq read only the events still kept."""
        service = make_service(event_limit=4)
        await service.create_session("alice", "s1")
        await service.append(("alice", "s1"), [str(i) for i in range(1, 11)])
        got = await service.get_session("alice", "s1", after_seq=2)
        assert got is not None and [e.seq for e in got.events] == [7, 8, 9, 10]
        got = await service.get_session("alice", "s1", last_n=2)
        assert got is not None and [e.seq for e in got.events] == [9, 10]
