"""The adapter's own promises beyond ADK's contract tests, on every backend.

Lossless round trips (float epochs bit for bit), the readable sessionhub view,
exact ``after_timestamp``, stale-session detection by compare-and-set, many
apps on one connection, ``None`` state values, and concurrent writers.
"""

from __future__ import annotations

import asyncio
import copy
import math

import pytest
from google.adk.errors import StaleSessionError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.adk.sessions.base_session_service import GetSessionConfig
from google.adk.sessions.session import Session as AdkSession
from google.genai import types

from sessionhub import ConflictError, TextPart, ToolCallPart, ToolResultPart
from sessionhub_adk import ADK_EVENT_KEY, SessionHubSessionService, sessionhub_url

APP = "weather_app"


def tool_turn(timestamp: float) -> list[Event]:
    """A user message, a function call, its response and the answer, at sub-µs spaced times."""
    step = math.ulp(timestamp)  # the smallest step a float epoch takes there (about 0.24 µs)
    call = types.FunctionCall(id="call-1", name="get_weather", args={"city": "Paris"})
    response = types.FunctionResponse(id="call-1", name="get_weather", response={"temp_c": 21})
    return [
        Event(
            invocation_id="inv-1",
            author="user",
            timestamp=timestamp,
            content=types.Content(role="user", parts=[types.Part(text="Weather in Paris?")]),
        ),
        Event(
            invocation_id="inv-1",
            author="weather_agent",
            timestamp=timestamp + 1 * step,
            content=types.Content(role="model", parts=[types.Part(function_call=call)]),
            long_running_tool_ids={"call-1"},
        ),
        Event(
            invocation_id="inv-1",
            author="weather_agent",
            timestamp=timestamp + 2 * step,
            content=types.Content(role="user", parts=[types.Part(function_response=response)]),
            actions=EventActions(state_delta={"last_city": "Paris", "user:unit": "C"}),
        ),
        Event(
            invocation_id="inv-1",
            author="weather_agent",
            timestamp=timestamp + 3 * step,
            content=types.Content(role="model", parts=[types.Part(text="21 °C and sunny.")]),
        ),
    ]


@pytest.mark.asyncio
async def test_events_round_trip_bit_exact_and_stay_readable(adk_service, store):
    session = await adk_service.create_session(app_name=APP, user_id="u1")
    appended = tool_turn(1_795_000_000.123_456_7)
    for event in appended:
        await adk_service.append_event(session, event)

    got = await adk_service.get_session(app_name=APP, user_id="u1", session_id=session.id)
    assert got.events == appended
    assert [e.timestamp for e in got.events] == [e.timestamp for e in appended]  # bit for bit
    assert got == session
    assert got.last_update_time == appended[-1].timestamp

    readable = await store().for_app(APP).get_session("u1", session.id)
    assert [e.role for e in readable.events] == ["user", "assistant", "tool", "assistant"]
    assert readable.events[0].text == "Weather in Paris?"
    assert readable.events[1].content == [
        ToolCallPart(id="call-1", name="get_weather", arguments={"city": "Paris"})
    ]
    assert readable.events[2].content == [ToolResultPart(call_id="call-1", output={"temp_c": 21})]
    assert readable.events[3].content == [TextPart(text="21 °C and sunny.")]
    assert [e.id for e in readable.events] == [e.id for e in appended]
    assert all(ADK_EVENT_KEY in e.metadata for e in readable.events)


@pytest.mark.asyncio
async def test_events_appended_through_sessionhub_read_as_adk_events(adk_service, store):
    session = await adk_service.create_session(app_name=APP, user_id="u1", session_id="mixed")
    await store().for_app(APP).append(("u1", "mixed"), ["hello from the CLI"])
    got = await adk_service.get_session(app_name=APP, user_id="u1", session_id="mixed")
    assert got.events[0].author == "user"
    assert got.events[0].content.parts[0].text == "hello from the CLI"
    # the session read back is current: appending to it works
    await adk_service.append_event(got, Event(author="user", invocation_id="i"))
    assert session.id == got.id


@pytest.mark.asyncio
async def test_after_timestamp_is_inclusive_and_exact_below_a_microsecond(adk_service):
    session = await adk_service.create_session(app_name=APP, user_id="u1")
    events = tool_turn(1_795_000_000.5)
    for event in events:
        await adk_service.append_event(session, event)
    for index, event in enumerate(events):
        for last_n in (None, 1, 2, 10):
            config = GetSessionConfig(after_timestamp=event.timestamp, num_recent_events=last_n)
            got = await adk_service.get_session(
                app_name=APP, user_id="u1", session_id=session.id, config=config
            )
            expected = events[index:] if last_n is None else events[index:][-last_n:]
            assert got.events == expected, (index, last_n)


@pytest.mark.asyncio
async def test_none_values_are_stored_in_every_scope(adk_service):
    session = await adk_service.create_session(
        app_name=APP,
        user_id="u1",
        state={"s": None, "app:a": None, "user:u": None, "__sessionhub_adk__": 1},
    )
    nested = {"__sessionhub_adk__": None, "x": [None]}
    await adk_service.append_event(
        session, Event(author="user", actions=EventActions(state_delta={"d": nested}))
    )
    got = await adk_service.get_session(app_name=APP, user_id="u1", session_id=session.id)
    expected = {"s": None, "app:a": None, "user:u": None, "__sessionhub_adk__": 1, "d": nested}
    assert got.state == expected
    assert session.state == expected
    assert await adk_service.get_user_state(app_name=APP, user_id="u1") == {"u": None}


@pytest.mark.asyncio
async def test_state_values_are_stored_as_adk_stores_them(adk_service):
    session = await adk_service.create_session(
        app_name=APP, user_id="u1", state={"raw": b"bytes", "tags": ("a", "b")}
    )
    got = await adk_service.get_session(app_name=APP, user_id="u1", session_id=session.id)
    assert got.state == {"raw": "bytes", "tags": ["a", "b"]}  # as DatabaseSessionService


@pytest.mark.asyncio
async def test_stale_session_raises_and_stores_nothing(adk_service):
    session = await adk_service.create_session(app_name=APP, user_id="u1", session_id="s")
    first = await adk_service.get_session(app_name=APP, user_id="u1", session_id="s")
    second = copy.deepcopy(first)
    await adk_service.append_event(first, Event(author="user", invocation_id="winner"))
    with pytest.raises(StaleSessionError, match="modified in storage"):
        await adk_service.append_event(
            second,
            Event(author="user", invocation_id="stale", actions=EventActions(state_delta={"k": 1})),
        )
    stored = await adk_service.get_session(app_name=APP, user_id="u1", session_id="s")
    assert [e.invocation_id for e in stored.events] == ["winner"]
    assert "k" not in stored.state
    # the session that won stays current; the creating object is stale too
    await adk_service.append_event(first, Event(author="user", invocation_id="next"))
    with pytest.raises(StaleSessionError):
        await adk_service.append_event(session, Event(author="user", invocation_id="old"))


@pytest.mark.asyncio
async def test_session_built_elsewhere_is_checked_against_storage(adk_service):
    await adk_service.create_session(app_name=APP, user_id="u1", session_id="s")
    by_hand = AdkSession(id="s", app_name=APP, user_id="u1")
    await adk_service.append_event(by_hand, Event(author="user", invocation_id="one"))
    other = AdkSession(id="s", app_name=APP, user_id="u1")  # knows no event: stale
    with pytest.raises(StaleSessionError):
        await adk_service.append_event(other, Event(author="user", invocation_id="two"))
    stored = await adk_service.get_session(app_name=APP, user_id="u1", session_id="s")
    assert [e.invocation_id for e in stored.events] == ["one"]


@pytest.mark.asyncio
async def test_retried_event_is_stored_once(adk_service):
    session = await adk_service.create_session(app_name=APP, user_id="u1")
    event = Event(author="user", actions=EventActions(state_delta={"n": 1}))
    await adk_service.append_event(session, event)
    await adk_service.append_event(session, event)
    await adk_service.append_event(session, event.model_copy(deep=True))
    stored = await adk_service.get_session(app_name=APP, user_id="u1", session_id=session.id)
    assert [e.id for e in stored.events] == [event.id]
    assert len(session.events) == 1


@pytest.mark.asyncio
async def test_another_event_with_a_stored_id_is_a_conflict_not_a_stale_session(adk_service):
    session = await adk_service.create_session(app_name=APP, user_id="u1")
    await adk_service.append_event(session, Event(id="same", author="user", invocation_id="a"))
    with pytest.raises(ConflictError, match="same"):
        await adk_service.append_event(session, Event(id="same", author="bot", invocation_id="b"))
    stored = await adk_service.get_session(app_name=APP, user_id="u1", session_id=session.id)
    assert [e.invocation_id for e in stored.events] == ["a"]


@pytest.mark.asyncio
async def test_append_to_a_deleted_session_raises_session_not_found(adk_service):
    session = await adk_service.create_session(app_name=APP, user_id="u1")
    await adk_service.delete_session(app_name=APP, user_id="u1", session_id=session.id)
    with pytest.raises(SessionNotFoundError):
        await adk_service.append_event(session, Event(author="user"))


@pytest.mark.asyncio
async def test_one_connection_serves_many_apps(adk_service):
    a = await adk_service.create_session(
        app_name="app_a", user_id="u", session_id="s", state={"app:k": "a", "user:k": "a"}
    )
    b = await adk_service.create_session(
        app_name="app_b", user_id="u", session_id="s", state={"app:k": "b"}
    )
    await adk_service.append_event(a, Event(author="user"))
    assert (await adk_service.get_session(app_name="app_b", user_id="u", session_id="s")).state == {
        "app:k": "b"
    }
    assert len(
        (await adk_service.get_session(app_name="app_a", user_id="u", session_id="s")).events
    )
    assert b.events == []
    assert await adk_service.get_user_state(app_name="app_b", user_id="u") == {}
    assert adk_service.service.for_app("app_a").backend is adk_service.service.backend


WRITERS = 50
HEADER_ONLY = GetSessionConfig(num_recent_events=0)


@pytest.mark.asyncio
async def test_concurrent_fresh_appends_are_all_stored(store):
    services = [SessionHubSessionService(store()) for _ in range(WRITERS)]
    session = await services[0].create_session(app_name=APP, user_id="u1", session_id="busy")

    async def write(service: SessionHubSessionService, n: int) -> None:
        while True:  # what an ADK caller does on StaleSessionError: read again, retry
            fresh = await service.get_session(
                app_name=APP, user_id="u1", session_id="busy", config=HEADER_ONLY
            )
            try:
                await service.append_event(fresh, Event(author="user", invocation_id=f"w{n}"))
                return
            except StaleSessionError:
                continue

    await asyncio.gather(*(write(service, n) for n, service in enumerate(services)))
    stored = await services[0].get_session(app_name=APP, user_id="u1", session_id=session.id)
    assert sorted(e.invocation_id for e in stored.events) == sorted(f"w{n}" for n in range(WRITERS))


@pytest.mark.asyncio
async def test_concurrent_appends_through_one_shared_session_object_all_land(adk_service):
    session = await adk_service.create_session(app_name=APP, user_id="u1", session_id="shared")
    events = [Event(author="agent", invocation_id=f"e{n}") for n in range(WRITERS)]
    await asyncio.gather(*(adk_service.append_event(session, event) for event in events))
    stored = await adk_service.get_session(app_name=APP, user_id="u1", session_id="shared")
    assert sorted(e.invocation_id for e in stored.events) == sorted(e.invocation_id for e in events)
    assert stored == session


@pytest.mark.asyncio
async def test_concurrent_stale_appends_store_or_raise(store):
    services = [SessionHubSessionService(store()) for _ in range(WRITERS)]
    session = await services[0].create_session(app_name=APP, user_id="u1", session_id="busy")

    async def write(service: SessionHubSessionService, n: int) -> bool:
        try:
            await service.append_event(
                copy.deepcopy(session), Event(author="user", invocation_id=f"w{n}")
            )
        except StaleSessionError:
            return False
        return True

    stored_ok = await asyncio.gather(*(write(s, n) for n, s in enumerate(services)))
    stored = await services[0].get_session(app_name=APP, user_id="u1", session_id="busy")
    assert sorted(e.invocation_id for e in stored.events) == sorted(
        f"w{n}" for n, ok in enumerate(stored_ok) if ok
    )
    assert sum(stored_ok) == 1  # all read the same revision: exactly one can win


def test_uris_name_a_sessionhub_url():
    assert sessionhub_url("sessionhub+sqlite:///sessions.db") == "sqlite:///sessions.db"
    assert sessionhub_url("sessionhub+redis://localhost:6379/0") == "redis://localhost:6379/0"
    assert sessionhub_url("sessionhub+mongodb+srv://h/db") == "mongodb+srv://h/db"
    assert sessionhub_url("sessionhub://") is None
    assert sessionhub_url("memory://x") == "memory://x"
    with pytest.raises(ValueError, match="no scheme"):
        sessionhub_url("sessions.db")
    with pytest.raises(ValueError, match="takes nothing after it"):
        sessionhub_url("sessionhub://sessions.db")


@pytest.mark.asyncio
async def test_url_is_accepted_as_uri_is(tmp_path):
    path = tmp_path / "sessions.db"
    async with SessionHubSessionService(url=f"sqlite:///{path}") as by_url:
        await by_url.create_session(app_name=APP, user_id="u1", session_id="s1")
    async with SessionHubSessionService(uri=f"sessionhub+sqlite:///{path}") as by_uri:
        assert await by_uri.get_session(app_name=APP, user_id="u1", session_id="s1")
    with pytest.raises(ValueError, match="not both"):
        SessionHubSessionService(uri="sessionhub://", url="memory://")
