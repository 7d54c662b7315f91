"""Isolation: a session is keyed by (app, user, session id); nobody sees another's data."""

from __future__ import annotations

import pytest

from sessionhub.errors import InvalidInput, SessionNotFound
from sessionhub.service import SessionHistoryService
from sessionhub.testing._base import MakeService


class IsolationTests:
    """DESIGN §2: identifiers and ownership."""

    pytestmark = pytest.mark.asyncio

    async def test_same_session_id_for_two_users(self, service: SessionHistoryService) -> None:
        """Two users may each own a session "s1"; they are unrelated."""
        await service.create_session("alice", "s1", state={"owner": "alice"})
        await service.create_session("bob", "s1", state={"owner": "bob"})
        await service.append(("alice", "s1"), "for alice")
        alice = await service.get_session("alice", "s1")
        bob = await service.get_session("bob", "s1")
        assert alice is not None and bob is not None
        assert alice.state == {"owner": "alice"} and bob.state == {"owner": "bob"}
        assert (alice.event_count, bob.event_count) == (1, 0)

    async def test_other_users_session_is_invisible(self, service: SessionHistoryService) -> None:
        """Another user's session reads as missing (None, SessionNotFound, False)."""
        await service.create_session("alice", "private")
        assert await service.get_session("mallory", "private") is None
        with pytest.raises(SessionNotFound):
            await service.append(("mallory", "private"), "intrusion")
        assert await service.delete_session("mallory", "private") is False
        assert (await service.list_sessions("mallory")).items == []
        got = await service.get_session("alice", "private")
        assert got is not None and got.event_count == 0

    async def test_apps_are_isolated(self, make_service: MakeService) -> None:
        """Two apps on one store share nothing: sessions, user state and app state."""
        one = make_service(app_name="one")
        two = make_service(app_name="two")
        await one.create_session("alice", "s1", state={"app:a": 1, "user:u": 1})
        assert await two.get_session("alice", "s1") is None
        assert (await two.list_sessions("alice")).items == []
        assert await two.get_app_state() == {}
        assert await two.get_user_state("alice") == {}
        await two.create_session("alice", "s1")
        assert await one.delete_session("alice", "s1") is True
        assert await two.get_session("alice", "s1") is not None

    async def test_one_service_serves_several_apps(self, service: SessionHistoryService) -> None:
        """``for_app`` views share the backend and keep each app's data apart."""
        other = service.for_app("other-app")
        assert service.for_app("other-app") is other and other.backend is service.backend
        assert service.for_app(service.app_name) is service
        assert other.for_app(service.app_name) is service
        await service.create_session("alice", "s1", state={"app:theme": "dark", "user:n": 1})
        await other.create_session("alice", "s1", state={"app:theme": "light"})
        await other.append(("alice", "s1"), ["in other", {"role": "user", "content": "again"}])
        mine = await service.get_session("alice", "s1")
        theirs = await other.get_session("alice", "s1")
        assert mine is not None and theirs is not None
        assert (mine.app_name, mine.event_count) == (service.app_name, 0)
        assert (theirs.app_name, theirs.event_count) == ("other-app", 2)
        assert mine.state == {"app:theme": "dark", "user:n": 1}
        assert theirs.state == {"app:theme": "light"}
        assert [s.app_name for s in (await other.list_sessions("alice")).items] == ["other-app"]
        with pytest.raises(InvalidInput):
            service.for_app("")
        with pytest.raises(InvalidInput):  # a Session belongs to the app it was read from
            await service.append(theirs, "crossing apps")
