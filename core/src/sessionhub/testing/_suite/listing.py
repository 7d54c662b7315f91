"""Listings across users and apps: every user's sessions, the users, the apps of a store."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sessionhub.backend import Backend, Expiry, ListCursor, ListRequest, StateKey
from sessionhub.errors import InvalidInput
from sessionhub.service import SessionHistoryService
from sessionhub.testing._base import FakeClock, MakeService, requires


class ListingTests:
    """DESIGN §3: ``list_sessions(None)``, ``list_users``, ``list_apps``; ``list_page``."""

    pytestmark = pytest.mark.asyncio

    @requires("list_all_sessions")
    async def test_all_users_newest_first_each_with_its_own_user_state(
        self, service: SessionHistoryService
    ) -> None:
        """list_sessions(None): every user's sessions, newest first, own user state merged."""
        await service.update_app_state({"greeting": "hi"})
        await service.create_session("alice", "s1", state={"user:name": "Alice", "k": 1})
        await service.create_session("bob", "s1", state={"user:name": "Bob"})
        await service.create_session("carol", "c1")
        await service.append(("alice", "s1"), "moves alice's s1 to the front")
        page = await service.list_sessions(None)
        assert [(s.user_id, s.id) for s in page.items] == [
            ("alice", "s1"),
            ("carol", "c1"),
            ("bob", "s1"),
        ]
        assert page.next_cursor is None
        states = {s.user_id: s.state for s in page.items}
        assert states == {
            "alice": {"app:greeting": "hi", "user:name": "Alice", "k": 1},
            "bob": {"app:greeting": "hi", "user:name": "Bob"},
            "carol": {"app:greeting": "hi"},
        }
        assert all(s.events == [] for s in page.items)
        assert page.items[0].event_count == 1

    @requires("list_all_sessions")
    async def test_all_users_pages_with_equal_times_visit_each_session_once(
        self, make_service: MakeService, clock: FakeClock
    ) -> None:
        """Equal updated_at: ties break on user id, then session id (descending); no repeats."""
        frozen = clock.now
        service = make_service(clock=lambda: frozen)
        users = ["u1", "u2", "u10", "a b", "\u00e9"]
        keys = [(user, sid) for user in users for sid in ("s1", "s2", "s10")]
        for user, sid in keys:
            await service.create_session(user, sid)
        for page_size in (1, 4, 7, 100):
            assert await _all_users(service, page_size) == sorted(keys, reverse=True)

    @requires("list_all_sessions")
    async def test_all_users_follows_writes_between_pages(
        self, service: SessionHistoryService, clock: FakeClock
    ) -> None:
        """Pages reflect every write that moves updated_at; nothing is listed twice in order."""
        for i in range(6):
            await service.create_session(f"user-{i}", "s")
        await service.update_session("user-0", "s", metadata={"title": "renamed"})
        await service.append(("user-2", "s"), "hello")
        listed = await _all_users(service, 2)
        assert listed[:2] == [("user-2", "s"), ("user-0", "s")]
        assert sorted(listed) == sorted((f"user-{i}", "s") for i in range(6))

    @requires("list_all_sessions")
    async def test_all_users_skips_expired_deleted_and_other_apps(
        self, make_service: MakeService, clock: FakeClock
    ) -> None:
        """Expired and deleted sessions, and sessions of another app, are not listed."""
        service = make_service(session_ttl=timedelta(seconds=60))
        other = make_service(app_name="other-app")
        await service.create_session("alice", "old")
        clock.advance(30)
        await service.create_session("bob", "young")
        await service.create_session("bob", "doomed")
        await service.create_session("carol", "kept")
        await other.create_session("alice", "elsewhere")
        assert await service.delete_session("bob", "doomed") is True
        clock.advance(31)  # "old" has expired
        assert await _all_users(service, 2) == [("carol", "kept"), ("bob", "young")]
        assert await _all_users(other, 2) == [("alice", "elsewhere")]
        await service.create_session("bob", "doomed")  # re-created: listed once, at the front
        assert await _all_users(service, 1) == [
            ("bob", "doomed"),
            ("carol", "kept"),
            ("bob", "young"),
        ]

    @requires("list_all_sessions")
    async def test_all_users_cursors_and_children_are_refused_where_they_do_not_fit(
        self, service: SessionHistoryService
    ) -> None:
        """A cursor of one listing is InvalidInput in the other; so is parent_id without a user."""
        for sid in ("s1", "s2"):
            await service.create_session("alice", sid)
        everyone = await service.list_sessions(None, limit=1)
        alice = await service.list_sessions("alice", limit=1)
        assert everyone.next_cursor and alice.next_cursor
        with pytest.raises(InvalidInput, match=r"list_sessions\(None\)") as caught:
            await service.list_sessions("alice", cursor=everyone.next_cursor)
        assert caught.value.field == "cursor"
        with pytest.raises(InvalidInput, match=r"list_sessions\(user_id\)"):
            await service.list_sessions(None, cursor=alice.next_cursor)
        with pytest.raises(InvalidInput, match="cursor"):
            await service.list_sessions(None, cursor="not-a-cursor")
        with pytest.raises(InvalidInput) as caught:
            await service.list_sessions(None, parent_id="s1")
        assert caught.value.field == "parent_id"

    @requires("list_all_sessions")
    @requires("restore_session")
    async def test_all_users_lists_restored_sessions(
        self, service: SessionHistoryService, backend: Backend, clock: FakeClock
    ) -> None:
        """A restored session is listed at its restored updated_at."""
        await service.create_session("alice", "new")
        restored = await service.create_session("bob", "restored")
        copy = restored.model_copy(
            update={"updated_at": restored.updated_at - timedelta(days=1), "user_id": "carol"}
        )
        await backend.restore_session(copy, [], Expiry(now=clock.now))
        listed = await _all_users(service, 2)
        assert listed == [("bob", "restored"), ("alice", "new"), ("carol", "restored")]
        page = await service.list_sessions(None)
        assert page.items[-1].updated_at == copy.updated_at

    @requires("list_all_sessions")
    @requires("pop_event")
    @requires("replace_events")
    async def test_all_users_follows_pops_and_replaces(
        self, service: SessionHistoryService
    ) -> None:
        """A pop or a replace moves the session to the front, as its updated_at moves."""
        for user in ("a", "b", "c"):
            await service.create_session(user, "s")
            await service.append((user, "s"), "x")
        await service.pop_event("a", "s")
        assert (await _all_users(service, 5))[0] == ("a", "s")
        await service.replace_events("b", "s", ["summary"])
        assert await _all_users(service, 5) == [("b", "s"), ("a", "s"), ("c", "s")]

    @requires("list_users")
    async def test_list_users_pages_through_the_service(
        self, service: SessionHistoryService, make_service: MakeService
    ) -> None:
        """svc.list_users pages the app's users ascending, each once."""
        users = [f"user-{i:02d}" for i in range(7)]
        for user in users:
            await service.create_session(user, "s")
        await service.update_user_state("state-only", {"k": 1})
        await make_service(app_name="other-app").create_session("stranger", "s")
        seen: list[str] = []
        cursor = None
        while True:
            page = await service.list_users(limit=3, cursor=cursor)
            assert len(page.items) <= 3
            seen.extend(page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == sorted([*users, "state-only"])
        with pytest.raises(InvalidInput, match="cursor"):
            await service.list_sessions(
                "user-00", cursor=(await service.list_users(limit=1)).next_cursor
            )

    @requires("list_apps")
    async def test_list_apps_names_every_app_with_data(
        self, service: SessionHistoryService, make_service: MakeService
    ) -> None:
        """list_apps pages every app holding sessions, user state or app state, ascending."""
        await make_service(app_name="with-sessions").create_session("alice", "s")
        await make_service(app_name="user-state").update_user_state("alice", {"k": 1})
        await make_service(app_name="app-state").update_app_state({"k": 1})
        for i in range(4):
            await make_service(app_name=f"app-{i}").create_session("bob", "s")
        expected = sorted(
            ["with-sessions", "user-state", "app-state"] + [f"app-{i}" for i in range(4)]
        )
        seen: list[str] = []
        cursor = None
        while True:
            page = await service.list_apps(limit=2, cursor=cursor)
            seen.extend(page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == expected

    @requires("list_page")
    async def test_list_page_reads_what_the_listing_and_read_state_read(
        self, backend: Backend, make_service: MakeService, clock: FakeClock
    ) -> None:
        """list_page: the page of list_sessions / list_app_sessions and the live wider states."""
        service = make_service(user_state_ttl=60)
        await service.update_app_state({"greeting": "hi"})
        a1 = await service.create_session("alice", "a1", state={"user:name": "Alice", "k": 1})
        await service.create_session("alice", "a2", state={"user:name": "Alice"})
        await service.create_session("bob", "b1", state={"user:name": "Bob"})
        await service.create_session("carol", "c1")
        await make_service(app_name="other").create_session("alice", "o1", state={"user:x": 1})
        clock.advance(61)  # the user states expire; the sessions and the app state do not
        await service.update_user_state("bob", {"fresh": True})
        await service.spawn_child(a1, "a3")
        expiry = Expiry(now=clock.now)
        page = await backend.list_page(ListRequest("default", "alice", 2, None, None, expiry))
        rows = await backend.list_sessions(
            "default", "alice", limit=2, after=None, parent_id=None, now=clock.now
        )
        assert page.sessions == rows and [s.id for s in rows] == ["a3", "a2"]
        assert (page.app_state, page.user_states) == ({"greeting": "hi"}, {"alice": {}})
        after = ListCursor(rows[-1].updated_at, rows[-1].id)
        page = await backend.list_page(ListRequest("default", "alice", 5, after, None, expiry))
        assert [s.id for s in page.sessions] == ["a1"]
        assert page.sessions[0].state == {"k": 1}  # the session scope only
        page = await backend.list_page(ListRequest("default", "alice", 5, None, "a1", expiry))
        assert [s.id for s in page.sessions] == ["a3"]
        page = await backend.list_page(ListRequest("default", "nobody", 5, None, None, expiry))
        assert page.sessions == [] and page.user_states == {}
        if backend.capabilities.list_all_sessions:
            page = await backend.list_page(ListRequest("default", None, 10, None, None, expiry))
            rows = await backend.list_app_sessions("default", limit=10, after=None, now=clock.now)
            assert page.sessions == rows and len(rows) == 5
            assert page.user_states == {"alice": {}, "bob": {"fresh": True}, "carol": {}}
            for user, state in page.user_states.items():
                key = StateKey.user("default", user)
                assert state == await backend.read_state(key, expiry, refresh=False)


async def _all_users(service: SessionHistoryService, page_size: int) -> list[tuple[str, str]]:
    """Every (user, session id) of ``list_sessions(None)``, following next_cursor."""
    seen: list[tuple[str, str]] = []
    cursor = None
    while True:
        page = await service.list_sessions(None, limit=page_size, cursor=cursor)
        assert len(page.items) <= page_size
        seen.extend((s.user_id, s.id) for s in page.items)
        if page.next_cursor is None:
            assert len(seen) == len(set(seen)), f"listed twice: {seen}"
            return seen
        cursor = page.next_cursor
