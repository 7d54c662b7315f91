"""Sessions: create, get, list (keyset pages), update, delete, children."""

from __future__ import annotations

import pytest

from sessionhub.errors import InvalidInput, SessionExists, SessionNotFound
from sessionhub.service import SessionHistoryService
from sessionhub.testing._base import FakeClock, MakeService


class SessionTests:
    """DESIGN §2-3: the session lifecycle."""

    pytestmark = pytest.mark.asyncio

    async def test_create_returns_the_new_session(self, service: SessionHistoryService) -> None:
        """create_session returns the session with ids, times, counters, state and metadata."""
        s = await service.create_session("alice", "s1", state={"k": 1}, metadata={"title": "t"})
        assert (s.id, s.app_name, s.user_id) == ("s1", service.app_name, "alice")
        assert (s.parent_id, s.root_id, s.depth) == (None, "s1", 0)
        assert s.created_at == s.updated_at
        assert s.created_at.tzinfo is not None
        assert (s.event_count, s.last_seq, s.events) == (0, 0, [])
        assert s.state == {"k": 1}
        assert s.metadata == {"title": "t"}
        assert s.expires_at is None

    @pytest.mark.parametrize("blank", [None, "", "   "])
    async def test_blank_session_id_is_generated(
        self, service: SessionHistoryService, blank: str | None
    ) -> None:
        """A missing or blank session id is replaced by a generated uuid4 hex id."""
        first = await service.create_session("alice", blank)
        second = await service.create_session("alice", blank)
        assert len(first.id) == 32 and int(first.id, 16) >= 0
        assert first.id != second.id

    async def test_create_with_taken_id_raises(self, service: SessionHistoryService) -> None:
        """create_session with an existing id raises SessionExists and changes nothing."""
        await service.create_session("alice", "s1", state={"k": 1})
        with pytest.raises(SessionExists):
            await service.create_session("alice", "s1", state={"k": 2})
        got = await service.get_session("alice", "s1")
        assert got is not None and got.state == {"k": 1}

    async def test_get_returns_what_was_stored(self, service: SessionHistoryService) -> None:
        """get_session returns the stored session with its state, metadata and times."""
        created = await service.create_session(
            "alice",
            "s1",
            state={"n": 1.5, "l": [1, "x", None], "d": {"a": True}},
            metadata={"tags": ["a"]},
        )
        got = await service.get_session("alice", "s1")
        assert got is not None
        assert got.state == created.state
        assert got.metadata == {"tags": ["a"]}
        assert got.created_at == created.created_at
        assert got.root_id == "s1" and got.parent_id is None

    async def test_get_missing_returns_none(self, service: SessionHistoryService) -> None:
        """get_session of a session that does not exist returns None."""
        assert await service.get_session("alice", "nope") is None

    async def test_list_newest_first_without_events(self, service: SessionHistoryService) -> None:
        """list_sessions returns the user's sessions newest updated_at first, without events."""
        for sid in ("a", "b", "c"):
            await service.create_session("alice", sid)
        await service.append(("alice", "a"), "touch")
        page = await service.list_sessions("alice")
        assert [s.id for s in page.items] == ["a", "c", "b"]
        assert page.next_cursor is None
        assert all(s.events == [] for s in page.items)
        assert page.items[0].event_count == 1 and page.items[0].last_seq == 1

    async def test_list_pages_visit_every_session_once(
        self, service: SessionHistoryService
    ) -> None:
        """Following next_cursor visits every session exactly once, in order."""
        ids = {f"s{i:02d}" for i in range(23)}
        for sid in sorted(ids):
            await service.create_session("alice", sid)
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            page = await service.list_sessions("alice", limit=5, cursor=cursor)
            assert len(page.items) <= 5
            seen.extend(s.id for s in page.items)
            pages += 1
            cursor = page.next_cursor
            if cursor is None:
                break
        assert pages == 5
        assert sorted(seen) == sorted(ids) and len(seen) == len(ids)
        assert seen == sorted(ids, reverse=True)

    async def test_list_pages_with_equal_update_times(
        self, make_service: MakeService, clock: FakeClock
    ) -> None:
        """Sessions with the same updated_at are still paged exactly once (ties break on id)."""
        frozen = clock.now
        service = make_service(clock=lambda: frozen)  # every session gets the same times
        for i in range(7):
            await service.create_session("alice", f"t{i}")
        assert await _listed_ids(service, "alice", page_size=3) == [
            f"t{i}" for i in reversed(range(7))
        ]

    async def test_list_ties_break_on_id_in_code_point_order(
        self, make_service: MakeService, clock: FakeClock
    ) -> None:
        """Equal updated_at: ids descend in Unicode code point order (= UTF-8 byte order)."""
        frozen = clock.now
        service = make_service(clock=lambda: frozen)
        # U+1F600 sorts after U+FF5A by code point (and by UTF-8 bytes), before it in UTF-16.
        ids = ["a", "B", "b", "Z", "a b", "\u00e9", "\u4e2d", "\uff5a", "\U0001f600"]
        for sid in ids:
            await service.create_session("alice", sid)
        assert await _listed_ids(service, "alice", page_size=2) == sorted(ids, reverse=True)

    async def test_list_empty(self, service: SessionHistoryService) -> None:
        """A user with no sessions gets an empty page and no cursor."""
        page = await service.list_sessions("nobody")
        assert page.items == [] and page.next_cursor is None

    async def test_bad_cursor_is_invalid_input(self, service: SessionHistoryService) -> None:
        """A cursor that list_sessions did not return is rejected with InvalidInput."""
        with pytest.raises(InvalidInput, match="cursor"):
            await service.list_sessions("alice", cursor="not-a-cursor")

    async def test_update_session_applies_deltas(self, service: SessionHistoryService) -> None:
        """update_session merges state and metadata deltas (None deletes) without an event."""
        created = await service.create_session(
            "alice", "s1", state={"a": 1, "b": 2}, metadata={"m": 1}
        )
        updated = await service.update_session(
            "alice", "s1", state={"b": None, "c": 3}, metadata={"m": None, "n": 2}
        )
        assert updated.state == {"a": 1, "c": 3}
        assert updated.metadata == {"n": 2}
        assert updated.updated_at > created.updated_at
        got = await service.get_session("alice", "s1")
        assert got is not None
        assert (got.state, got.metadata, got.event_count) == ({"a": 1, "c": 3}, {"n": 2}, 0)

    async def test_update_missing_session_raises(self, service: SessionHistoryService) -> None:
        """update_session of a missing session raises SessionNotFound."""
        with pytest.raises(SessionNotFound):
            await service.update_session("alice", "nope", state={"a": 1})

    async def test_delete_removes_session_and_events(self, service: SessionHistoryService) -> None:
        """delete_session removes the session and its events; it is idempotent."""
        await service.create_session("alice", "s1")
        await service.append(("alice", "s1"), ["one", "two"])
        assert await service.delete_session("alice", "s1") is True
        assert await service.get_session("alice", "s1") is None
        assert (await service.list_sessions("alice")).items == []
        assert await service.delete_session("alice", "s1") is False
        with pytest.raises(SessionNotFound):
            await service.append(("alice", "s1"), "late")

    async def test_recreated_session_starts_fresh(self, service: SessionHistoryService) -> None:
        """A session re-created after deletion has no events and seqs start at 1 again."""
        await service.create_session("alice", "s1", state={"old": 1})
        await service.append(("alice", "s1"), ["one", "two"])
        await service.delete_session("alice", "s1")
        await service.create_session("alice", "s1")
        [event] = await service.append(("alice", "s1"), "again")
        got = await service.get_session("alice", "s1")
        assert got is not None
        assert event.seq == 1 and [e.text for e in got.events] == ["again"]
        assert got.state == {}

    async def test_spawn_child_links_parent_and_root(self, service: SessionHistoryService) -> None:
        """spawn_child sets parent_id, root_id and depth; grandchildren keep the root."""
        root = await service.create_session("alice", "root")
        child = await service.spawn_child(root, "child", state={"task": "x"})
        grandchild = await service.spawn_child(child)
        assert (child.parent_id, child.root_id, child.depth) == ("root", "root", 1)
        assert (grandchild.parent_id, grandchild.root_id, grandchild.depth) == ("child", "root", 2)
        got = await service.get_session("alice", grandchild.id)
        assert got is not None and (got.parent_id, got.root_id, got.depth) == ("child", "root", 2)

    async def test_create_with_parent_id(self, service: SessionHistoryService) -> None:
        """create_session(parent=<id>) makes a child; a missing parent raises SessionNotFound."""
        await service.create_session("alice", "root")
        child = await service.create_session("alice", "c", parent="root")
        assert (child.parent_id, child.root_id, child.depth) == ("root", "root", 1)
        with pytest.raises(SessionNotFound):
            await service.create_session("alice", "orphan", parent="missing")
        assert await service.get_session("alice", "orphan") is None

    async def test_list_children_by_parent_id(self, service: SessionHistoryService) -> None:
        """list_sessions(parent_id=...) lists only that session's direct children."""
        root = await service.create_session("alice", "root")
        c1 = await service.spawn_child(root, "c1")
        await service.spawn_child(root, "c2")
        await service.spawn_child(c1, "g1")
        await service.create_session("alice", "other")
        page = await service.list_sessions("alice", parent_id="root")
        assert sorted(s.id for s in page.items) == ["c1", "c2"]
        page = await service.list_sessions("alice", parent_id="c1")
        assert [s.id for s in page.items] == ["g1"]
        everything = await service.list_sessions("alice")
        assert len(everything.items) == 5

    async def test_children_page_by_cursor(self, service: SessionHistoryService) -> None:
        """A children listing pages like any other: newest first, each child once."""
        root = await service.create_session("alice", "root", state={"user:name": "Alice"})
        for name in ("c1", "c2", "c3"):
            await service.spawn_child(root, name)
        await service.create_session("alice", "other")
        await service.append(("alice", "c2"), "moves c2 to the front")
        seen: list[str] = []
        cursor = None
        while True:
            page = await service.list_sessions("alice", parent_id="root", limit=1, cursor=cursor)
            assert [s.state for s in page.items] == [{"user:name": "Alice"}]
            seen += [s.id for s in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == ["c2", "c3", "c1"]

    async def test_delete_cascades_to_descendants(self, service: SessionHistoryService) -> None:
        """delete_session removes children and grandchildren; cascade=False keeps them."""
        root = await service.create_session("alice", "root")
        child = await service.spawn_child(root, "child")
        await service.spawn_child(child, "grandchild")
        await service.create_session("alice", "unrelated")
        assert await service.delete_session("alice", "root") is True
        remaining = await service.list_sessions("alice")
        assert [s.id for s in remaining.items] == ["unrelated"]

        root = await service.create_session("alice", "root2")
        await service.spawn_child(root, "kept")
        await service.delete_session("alice", "root2", cascade=False)
        assert await service.get_session("alice", "kept") is not None


async def _listed_ids(service: SessionHistoryService, user_id: str, *, page_size: int) -> list[str]:
    """The ids of every session of ``user_id``, following ``next_cursor`` page by page."""
    seen: list[str] = []
    cursor = None
    while True:
        page = await service.list_sessions(user_id, limit=page_size, cursor=cursor)
        seen.extend(s.id for s in page.items)
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor
