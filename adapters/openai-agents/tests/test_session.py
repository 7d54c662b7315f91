"""The Session operations, as the SDK's own session tests check them, on every backend."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from sessionhub import Backend, ConfigError, SessionHistoryService
from sessionhub_memory.backend import MemoryBackend
from sessionhub_openai_agents import SessionHubSession

pytestmark = pytest.mark.asyncio

CONVERSATION = [
    {"role": "user", "content": "Message 1"},
    {"role": "assistant", "content": "Response 1"},
    {"role": "user", "content": "Message 2"},
    {"role": "assistant", "content": "Response 2"},
    {"role": "user", "content": "Message 3"},
    {"role": "assistant", "content": "Response 3"},
]


def contents(items):
    return [item.get("content") for item in items]


async def test_add_get_and_clear(make_session):
    session = make_session()
    await session.add_items([{"role": "user", "content": "Hello"}])
    await session.add_items([{"role": "assistant", "content": "Hi there!"}])

    items = await session.get_items()
    assert items == [
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi there!"},
    ]

    await session.clear_session()
    assert await session.get_items() == []
    await session.add_items([{"role": "user", "content": "again"}])  # usable after a clear
    assert contents(await session.get_items()) == ["again"]


async def test_a_new_session_is_empty_and_an_empty_add_stores_nothing(make_session, service):
    session = make_session("never-written")
    assert await session.get_items() == []
    assert await session.get_items(limit=3) == []
    await session.add_items([])
    assert await service.get_session(session.user_id, "never-written") is None
    await session.clear_session()  # clearing nothing is fine
    assert await session.get_items() == []


async def test_pop_item_returns_the_newest_until_empty(make_session, require):
    require("pop_event")
    session = make_session()
    assert await session.pop_item() is None  # never written

    await session.add_items(CONVERSATION[:3])
    assert await session.pop_item() == {"role": "user", "content": "Message 2"}
    assert contents(await session.get_items()) == ["Message 1", "Response 1"]
    assert await session.pop_item() == {"role": "assistant", "content": "Response 1"}
    assert await session.pop_item() == {"role": "user", "content": "Message 1"}
    assert await session.pop_item() is None
    assert await session.get_items() == []

    await session.add_items([{"role": "user", "content": "after"}])
    assert contents(await session.get_items()) == ["after"]


async def test_pop_after_clear_is_none(make_session, require):
    require("pop_event")
    session = make_session()
    await session.add_items(CONVERSATION[:2])
    await session.clear_session()
    assert await session.pop_item() is None


class _WithoutHistoryRewrites(MemoryBackend):
    """A backend written before pop and replace existed: it declares neither."""

    capabilities = replace(MemoryBackend.capabilities, pop_event=False, replace_events=False)
    pop_event = Backend.pop_event
    replace_events = Backend.replace_events


async def test_a_backend_without_pop_and_replace_still_serves_the_sdk():
    """pop_item names the missing capability; clear_session deletes the whole session."""
    async with SessionHistoryService(_WithoutHistoryRewrites()) as service:
        session = SessionHubSession("conversation", service)
        await session.add_items(CONVERSATION[:2])
        with pytest.raises(ConfigError, match="pop_event"):
            await session.pop_item()
        await session.clear_session()
        assert await session.get_items() == []
        await session.add_items(CONVERSATION[:1])
        assert len(await session.get_items()) == 1


async def test_pop_affects_only_its_own_session(make_session, require):
    require("pop_event")
    first, second = make_session("session_1"), make_session("session_2")
    await first.add_items([{"role": "user", "content": "Session 1 message"}])
    await second.add_items(
        [
            {"role": "user", "content": "Session 2 message 1"},
            {"role": "user", "content": "Session 2 message 2"},
        ]
    )
    assert (await second.pop_item())["content"] == "Session 2 message 2"
    assert contents(await first.get_items()) == ["Session 1 message"]
    assert contents(await second.get_items()) == ["Session 2 message 1"]


async def test_sessions_are_isolated_by_id_and_by_user(make_session):
    cats, dogs = make_session("s1"), make_session("s2")
    other_user = make_session("s1", user_id="bob")
    await cats.add_items([{"role": "user", "content": "I like cats"}])
    await dogs.add_items([{"role": "user", "content": "I like dogs"}])
    await other_user.add_items([{"role": "user", "content": "I like birds"}])

    assert contents(await cats.get_items()) == ["I like cats"]
    assert contents(await dogs.get_items()) == ["I like dogs"]
    assert contents(await other_user.get_items()) == ["I like birds"]

    await dogs.clear_session()
    assert contents(await cats.get_items()) == ["I like cats"]
    assert contents(await other_user.get_items()) == ["I like birds"]


async def test_get_items_limit_returns_the_newest_in_order(make_session):
    session = make_session()
    await session.add_items(CONVERSATION)

    assert contents(await session.get_items()) == contents(CONVERSATION)
    assert contents(await session.get_items(limit=2)) == ["Message 3", "Response 3"]
    assert contents(await session.get_items(limit=4)) == [
        "Message 2",
        "Response 2",
        "Message 3",
        "Response 3",
    ]
    assert contents(await session.get_items(limit=10)) == contents(CONVERSATION)
    assert await session.get_items(limit=0) == []
    assert await session.get_items(limit=-1) == []  # as the SDK's Redis and MongoDB sessions


async def test_session_settings_limit_is_the_default_and_an_argument_overrides_it(make_session):
    session = make_session(session_settings={"limit": 3})
    assert session.session_settings is not None and session.session_settings.limit == 3
    await session.add_items(CONVERSATION)

    assert contents(await session.get_items()) == ["Response 2", "Message 3", "Response 3"]
    assert contents(await session.get_items(limit=1)) == ["Response 3"]
    assert len(await session.get_items(limit=100)) == 6

    unlimited = make_session()
    assert unlimited.session_settings is not None and unlimited.session_settings.limit is None
    assert len(await unlimited.get_items()) == 6


async def test_items_sharing_an_id_are_stored_separately(make_session):
    """The SDK repeats item ids (every scripted reply is 'scripted-message'): never event ids."""
    session = make_session()
    reply = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "same id", "annotations": []}],
    }
    await session.add_items([reply, reply])
    await session.add_items([reply])
    assert await session.get_items() == [reply, reply, reply]
    stored = await session.service.get_session(session.user_id, session.session_id)
    assert all(event.id != "msg_1" for event in stored.events)


async def test_unicode_and_special_characters_survive(make_session):
    session = make_session("unicode ünïcødé 🎉")
    items = [
        {"role": "user", "content": 'こんにちは 😊 "quotes" \\ back\nslash\ttab'},
        {"role": "assistant", "content": "'; DROP TABLE events; --"},
        {"role": "user", "content": ""},
    ]
    await session.add_items(items)
    assert await session.get_items() == items


async def test_fifty_concurrent_writers_lose_nothing_and_keep_their_order(make_session):
    callers = 50

    async def write(caller: int) -> None:
        session = make_session("shared")  # each writer has its own session object
        await session.add_items(
            [{"role": "user", "content": f"{caller}:{index}"} for index in range(3)]
        )

    await asyncio.gather(*(write(caller) for caller in range(callers)))
    stored = contents(await make_session("shared").get_items())
    assert sorted(stored) == sorted(f"{c}:{i}" for c in range(callers) for i in range(3))
    for caller in range(callers):
        position = stored.index(f"{caller}:0")
        assert stored[position : position + 3] == [f"{caller}:{i}" for i in range(3)], (
            "one add_items call is one atomic append: its items are adjacent and in order"
        )


async def test_clear_keeps_the_session_where_the_backend_can_clear_events(make_session, service):
    session = make_session()
    await session.add_items(CONVERSATION[:2])
    await service.update_session(session.user_id, session.session_id, state={"topic": "cats"})
    await session.clear_session()
    after = await service.get_session(session.user_id, session.session_id)
    if service.backend.capabilities.replace_events:
        assert after is not None and after.events == [] and after.state == {"topic": "cats"}
    else:  # deleted whole, as the SDK's SQLiteSession does, and created again on the next add
        assert after is None
    await session.add_items(CONVERSATION[2:3])
    assert contents(await session.get_items()) == ["Message 2"]


async def test_a_closed_session_refuses_work_and_leaves_a_given_service_open(make_session):
    session = make_session()
    await session.add_items(CONVERSATION[:1])
    await session.close()
    await session.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        await session.get_items()
    # the service was the caller's: still open for other sessions
    assert contents(await make_session().get_items()) == ["Message 1"]


async def test_async_context_manager_closes(make_session):
    async with make_session() as session:
        assert isinstance(session, SessionHubSession)
        await session.add_items(CONVERSATION[:1])
    with pytest.raises(RuntimeError, match="closed"):
        await session.add_items(CONVERSATION[1:2])


async def test_session_ids_are_case_and_space_sensitive(make_session):
    names = ["Foo", "foo", "tenant", "tenant "]
    for name in names:
        await make_session(name).add_items([{"role": "user", "content": name}])
    for name in names:
        assert contents(await make_session(name).get_items()) == [name]


async def test_concurrent_pops_return_each_item_once(make_session, require):
    require("pop_event")
    await make_session().add_items(CONVERSATION)
    popped = await asyncio.gather(*(make_session().pop_item() for _ in range(8)))
    taken = [item["content"] for item in popped if item is not None]
    assert sorted(taken) == sorted(contents(CONVERSATION)) and popped.count(None) == 2
    assert await make_session().get_items() == []
