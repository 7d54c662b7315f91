"""Isolation: a session is keyed by (app, user, session id); nobody sees another's data.

Nor does anybody change stored data through an object they hold: an event, a
state or metadata dict passed in or got back is the caller's, and changing it,
down to a list inside a tool call's arguments, changes nothing stored.
"""

from __future__ import annotations

from typing import Any

import pytest

from sessionhub.backend import Backend, Expiry
from sessionhub.errors import InvalidInput, SessionNotFound
from sessionhub.models import DataPart, Event, TextPart, ToolCallPart, ToolResultPart
from sessionhub.service import SessionHistoryService
from sessionhub.testing._base import FakeClock, MakeService, requires


def _rich_event(event_id: str, *, delta: bool = True) -> Event:
    """An event with something mutable in every field that can hold it, flat and nested."""
    return Event(
        id=event_id,
        role="assistant",
        content=[
            TextPart(text="hello"),
            ToolCallPart(id="c1", name="search", arguments={"q": [1, {"deep": [2]}]}),
            ToolResultPart(call_id="c1", output={"rows": [[1, 2]]}),
            DataPart(data=[{"x": {"y": [3]}}]),
            # Containers of atoms only: a store may copy those shallow, never share them.
            ToolCallPart(id="c2", name="flat", arguments={"q": "x", "n": 1}),
            ToolResultPart(call_id="c2", output=[1, "two", None]),
            DataPart(data={"k": "v"}),
        ],
        state_delta={"plan": {"steps": [1]}} if delta else {},
        metadata={"tags": ["a"], "nested": {"k": ["v"]}},
    )


def _scramble(value: Any) -> None:
    """Change every dict and list inside ``value`` in place."""
    if isinstance(value, dict):
        for item in list(value.values()):
            _scramble(item)
        value["scrambled"] = True
    elif isinstance(value, list):
        for item in value:
            _scramble(item)
        value.append("scrambled")


def _scribble(event: Event) -> None:
    """Change everything an event holds, in place: fields, parts, and what is inside them."""
    for part in event.content:
        if isinstance(part, TextPart):
            part.text = "changed"
        elif isinstance(part, ToolCallPart):
            part.name = "changed"
            _scramble(part.arguments)
        elif isinstance(part, ToolResultPart):
            _scramble(part.output)
        elif isinstance(part, DataPart):
            _scramble(part.data)
    event.content.append(TextPart(text="added"))
    event.role = "changed"
    _scramble(event.state_delta)
    _scramble(event.metadata)


def _dumps(events: list[Event]) -> list[dict[str, Any]]:
    return [event.model_dump() for event in events]


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


class CallerObjectTests:
    """A caller's objects are its own: changing them never changes what is stored."""

    pytestmark = pytest.mark.asyncio

    async def test_changing_an_appended_event_changes_nothing_stored(
        self, service: SessionHistoryService
    ) -> None:
        """The event (and its parts, dicts and lists) passed to append stay the caller's."""
        await service.create_session("alice", "s1")
        event = _rich_event("e1")
        stored = _dumps(await service.append(("alice", "s1"), event))
        _scribble(event)
        got = await service.get_session("alice", "s1")
        assert got is not None and _dumps(got.events) == stored
        assert got.state == {"plan": {"steps": [1]}}

    async def test_changing_returned_events_changes_nothing_stored(
        self, service: SessionHistoryService
    ) -> None:
        """Events got back from append, a read, a window or a retry are copies."""
        await service.create_session("alice", "s1")
        returned = await service.append(("alice", "s1"), [_rich_event("e1"), _rich_event("e2")])
        stored = _dumps(returned)
        for event in returned:
            _scribble(event)
        for last_n, after_seq in ((None, None), (1, None), (None, 1)):
            got = await service.get_session("alice", "s1", last_n=last_n, after_seq=after_seq)
            assert got is not None
            for event in got.events:
                _scribble(event)
            got.events.clear()
        [retried] = await service.append(("alice", "s1"), _rich_event("e1"))  # a retry
        _scribble(retried)
        got = await service.get_session("alice", "s1")
        assert got is not None and _dumps(got.events) == stored

    @requires("replace_events")
    async def test_changing_replaced_events_changes_nothing_stored(
        self, service: SessionHistoryService
    ) -> None:
        """Events passed to or returned by replace_events stay the caller's."""
        await service.create_session("alice", "s1")
        await service.append(("alice", "s1"), "old")
        given = [_rich_event("r1", delta=False), _rich_event("r2", delta=False)]
        returned = await service.replace_events("alice", "s1", given)
        stored = _dumps(returned)
        for event in [*given, *returned]:
            _scribble(event)
        got = await service.get_session("alice", "s1")
        assert got is not None and _dumps(got.events) == stored

    @requires("restore_session")
    async def test_changing_restored_objects_changes_nothing_stored(
        self, service: SessionHistoryService, backend: Backend, clock: FakeClock
    ) -> None:
        """The session and events given to restore_session stay the caller's."""
        await service.create_session("alice", "source")
        await service.append(("alice", "source"), [_rich_event("e1"), _rich_event("e2")])
        source = await service.get_session("alice", "source")
        assert source is not None
        session = source.model_copy(update={"id": "copy", "root_id": "copy"})
        stored = _dumps(source.events)
        await backend.restore_session(session, source.events, Expiry(now=clock.now))
        for event in source.events:
            _scribble(event)
        _scramble(session.state)
        _scramble(session.metadata)
        got = await service.get_session("alice", "copy")
        assert got is not None and _dumps(got.events) == stored
        assert got.state == {"plan": {"steps": [1]}} and got.metadata == {}

    async def test_changing_state_dicts_changes_nothing_stored(
        self, service: SessionHistoryService
    ) -> None:
        """State and metadata dicts passed in or got back, at every scope, are copies."""
        state = {"plan": {"steps": [1]}, "app:shared": {"a": [1]}, "user:prefs": {"b": [1]}}
        metadata = {"tags": ["x"]}
        created = await service.create_session("alice", "s1", state=state, metadata=metadata)
        held: list[Any] = [state, metadata, created.state, created.metadata]
        got = await service.get_session("alice", "s1")
        assert got is not None
        held += [got.state, got.metadata]
        delta, metadata_delta = {"more": {"n": [2]}}, {"extra": [1]}
        updated = await service.update_session("alice", "s1", state=delta, metadata=metadata_delta)
        held += [delta, metadata_delta, updated.state, updated.metadata]
        app_delta, user_delta = {"k": [1]}, {"k": [2]}
        held += [app_delta, await service.update_app_state(app_delta)]
        held += [user_delta, await service.update_user_state("alice", user_delta)]
        held += [await service.get_app_state(), await service.get_user_state("alice")]
        for value in held:
            _scramble(value)
        got = await service.get_session("alice", "s1")
        assert got is not None
        assert got.state == {
            "plan": {"steps": [1]},
            "more": {"n": [2]},
            "app:shared": {"a": [1]},
            "app:k": [1],
            "user:prefs": {"b": [1]},
            "user:k": [2],
        }
        assert got.metadata == {"tags": ["x"], "extra": [1]}
        assert await service.get_app_state() == {"shared": {"a": [1]}, "k": [1]}
        assert await service.get_user_state("alice") == {"prefs": {"b": [1]}, "k": [2]}
