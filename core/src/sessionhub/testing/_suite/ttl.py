"""TTL: sliding expiry of sessions and of app and user state, through an injected clock."""

from __future__ import annotations

import pytest

from sessionhub.backend import Backend
from sessionhub.errors import SessionNotFound
from sessionhub.models import Event, TextPart
from sessionhub.service import SessionHistoryService
from sessionhub.testing._base import FakeClock, MakeService

TTL = 60


class TTLTests:
    """DESIGN §3: session_ttl, app_state_ttl and user_state_ttl are sliding; expired = gone."""

    pytestmark = pytest.mark.asyncio

    async def test_expired_session_is_invisible_at_once(
        self, make_service: MakeService, clock: FakeClock
    ) -> None:
        """After session_ttl without use, get, list and append all treat the session as absent."""
        service = make_service(session_ttl=TTL)
        s = await service.create_session("alice", "s1")
        assert s.expires_at is not None
        assert (s.expires_at - s.created_at).total_seconds() == TTL
        clock.advance(TTL + 1)
        assert await service.get_session("alice", "s1") is None
        assert (await service.list_sessions("alice")).items == []
        with pytest.raises(SessionNotFound):
            await service.append(("alice", "s1"), "late")
        with pytest.raises(SessionNotFound):
            await service.update_session("alice", "s1", state={"a": 1})

    async def test_deleting_an_expired_session_reports_it_gone(
        self, make_service: MakeService, clock: FakeClock
    ) -> None:
        """delete_session of an expired session returns False, and leaves nothing behind."""
        service = make_service(session_ttl=TTL)
        await service.create_session("alice", "s1")
        await service.append(("alice", "s1"), "hello")
        clock.advance(TTL + 1)
        assert await service.delete_session("alice", "s1") is False
        again = await service.create_session("alice", "s1")
        assert (again.event_count, again.last_seq) == (0, 0)
        assert [s.id for s in (await service.list_sessions("alice")).items] == ["s1"]
        assert await service.delete_session("alice", "s1") is True

    async def test_reads_extend_the_ttl(self, make_service: MakeService, clock: FakeClock) -> None:
        """Each get_session pushes expires_at forward (sliding TTL)."""
        service = make_service(session_ttl=TTL)
        await service.create_session("alice", "s1")
        for _ in range(3):
            clock.advance(TTL * 0.7)
            got = await service.get_session("alice", "s1")
            assert got is not None
        assert got is not None and got.expires_at is not None
        assert got.expires_at > clock.now

    async def test_appends_extend_the_ttl(
        self, make_service: MakeService, clock: FakeClock
    ) -> None:
        """Each append pushes expires_at forward (sliding TTL)."""
        service = make_service(session_ttl=TTL)
        s = await service.create_session("alice", "s1")
        for i in range(3):
            clock.advance(TTL * 0.7)
            await service.append(s, str(i))
        clock.advance(TTL * 0.7)
        got = await service.get_session("alice", "s1")
        assert got is not None and got.event_count == 3

    async def test_expired_id_can_be_created_again(
        self, make_service: MakeService, clock: FakeClock
    ) -> None:
        """Once a session expired, its id is free: create_session makes a fresh one."""
        service = make_service(session_ttl=TTL)
        s = await service.create_session("alice", "s1", state={"old": True})
        await service.append(s, "old event")
        clock.advance(TTL + 1)
        fresh = await service.create_session("alice", "s1")
        assert fresh.state == {}
        [event] = await service.append(fresh, "new")
        assert event.seq == 1

    async def test_no_ttl_means_no_expiry(
        self, service: SessionHistoryService, clock: FakeClock
    ) -> None:
        """Without a TTL a session never expires."""
        await service.create_session("alice", "s1")
        clock.advance(10 * 365 * 24 * 3600)
        assert await service.get_session("alice", "s1") is not None

    async def test_purge_reclaims_expired_sessions(
        self, make_service: MakeService, clock: FakeClock, backend: Backend
    ) -> None:
        """purge_expired removes expired sessions and leaves live ones."""
        service = make_service(session_ttl=TTL)
        await service.create_session("alice", "old")
        await service.append(("alice", "old"), ["a", "b"])
        clock.advance(TTL + 1)
        await service.create_session("alice", "live")
        removed = await service.purge_expired()
        if not backend.capabilities.native_ttl:
            assert removed >= 1
        assert await service.get_session("alice", "old") is None
        assert [s.id for s in (await service.list_sessions("alice")).items] == ["live"]
        assert await service.purge_expired() == 0 or backend.capabilities.native_ttl

    async def test_user_state_ttl(self, make_service: MakeService, clock: FakeClock) -> None:
        """User state expires after user_state_ttl without use; reads extend it."""
        service = make_service(user_state_ttl=TTL)
        await service.update_user_state("alice", {"k": 1})
        clock.advance(TTL * 0.7)
        assert await service.get_user_state("alice") == {"k": 1}
        clock.advance(TTL * 0.7)
        assert await service.get_user_state("alice") == {"k": 1}
        clock.advance(TTL + 1)
        assert await service.get_user_state("alice") == {}
        assert await service.update_user_state("alice", {"j": 2}) == {"j": 2}

    async def test_app_state_ttl(self, make_service: MakeService, clock: FakeClock) -> None:
        """App state expires after app_state_ttl without use."""
        service = make_service(app_state_ttl=TTL)
        await service.update_app_state({"k": 1})
        clock.advance(TTL + 1)
        assert await service.get_app_state() == {}
        s = await service.create_session("alice", "s1")
        assert s.state == {}

    async def test_appends_extend_only_the_scopes_they_write(
        self, make_service: MakeService, clock: FakeClock
    ) -> None:
        """An append slides the session's expiry; the user's or app's only with a delta to it."""
        service = make_service(session_ttl=TTL, user_state_ttl=TTL, app_state_ttl=TTL)
        await service.update_app_state({"k": 1})
        for user in ("alice", "bob"):
            await service.update_user_state(user, {"k": 1})
            await service.create_session(user, "s1")
        clock.advance(TTL * 0.7)
        delta = {"role": "user", "content": "x", "state_delta": {"user:j": 2}}
        await service.append(("alice", "s1"), delta)
        clock.advance(TTL * 0.2)
        for user in ("alice", "bob"):
            await service.append((user, "s1"), "no wider-scope delta")
        clock.advance(TTL * 0.3)  # 1.2 TTL after the first writes
        assert await service.get_app_state() == {}
        assert await service.get_user_state("bob") == {}
        assert await service.get_user_state("alice") == {"k": 1, "j": 2}
        for user in ("alice", "bob"):
            assert await service.get_session(user, "s1", last_n=0) is not None

    async def test_an_append_of_stored_events_only_changes_nothing(
        self, make_service: MakeService, clock: FakeClock
    ) -> None:
        """A retry whose events are all stored moves neither updated_at nor the expiry."""
        service = make_service(session_ttl=TTL)
        s = await service.create_session("alice", "s1")
        event = Event(id="e1", role="user", content=[TextPart(text="once")])
        await service.append(s, event)
        await service.create_session("alice", "s2")
        times = (s.updated_at, s.expires_at)
        clock.advance(TTL * 0.5)
        [again] = await service.append(s, event)
        assert again.seq == 1
        assert (s.updated_at, s.expires_at, s.last_seq) == (*times, 1)
        listed = (await service.list_sessions("alice")).items
        assert [x.id for x in listed] == ["s2", "s1"]
        assert (listed[1].updated_at, listed[1].expires_at) == times
