"""A session object reads only what is new since its last read, and still sees every change.

Each test changes the store through other objects and the service, then checks
that the first object's ``get_items`` equals a fresh object's (which has read
nothing before), on every backend.
"""

from __future__ import annotations

import random

import pytest

from sessionhub_openai_agents import item_to_event

pytestmark = pytest.mark.asyncio


def said(*texts):
    return [{"role": "user", "content": text} for text in texts]


async def expect_same(reader, make_session, limit):
    got = await reader.get_items(limit=limit)
    truth = await make_session(reader.session_id).get_items(limit=limit)
    assert got == truth
    return got


async def test_a_pop_and_an_add_elsewhere_are_seen(make_session, require):
    require("pop_event")
    reader, writer = make_session(), make_session()
    await writer.add_items(said("a", "b", "c"))
    assert await expect_same(reader, make_session, 2) == said("b", "c")
    await writer.pop_item()
    await writer.add_items(said("d"))  # the count is back where it was; last_seq moved on
    assert await expect_same(reader, make_session, 2) == said("b", "d")
    await writer.pop_item()
    assert await expect_same(reader, make_session, 2) == said("a", "b")


async def test_a_recreated_session_with_as_many_items_is_read_anew(make_session, service):
    reader, writer = make_session(), make_session()
    await writer.add_items(said("a", "b"))
    assert await expect_same(reader, make_session, None) == said("a", "b")
    await service.delete_session(writer.user_id, writer.session_id)
    await writer.add_items(said("x", "y"))  # same seqs and count, another session
    assert await expect_same(reader, make_session, None) == said("x", "y")


async def test_a_clear_elsewhere_then_as_many_new_items_is_seen(make_session):
    reader, writer = make_session(), make_session()
    await writer.add_items(said("a", "b"))
    assert await expect_same(reader, make_session, 5) == said("a", "b")
    await writer.clear_session()
    await writer.add_items(said("c", "d"))
    assert await expect_same(reader, make_session, 5) == said("c", "d")


async def test_a_larger_limit_than_the_last_read_returns_all_it_asks(make_session):
    reader, writer = make_session(), make_session()
    await writer.add_items(said(*"abcdef"))
    assert await expect_same(reader, make_session, 2) == said("e", "f")
    await writer.add_items(said("g"))
    assert await expect_same(reader, make_session, 5) == said(*"cdefg")
    assert await expect_same(reader, make_session, None) == said(*"abcdefg")
    assert await expect_same(reader, make_session, 1) == said("g")


async def test_editing_returned_items_changes_nothing_read_later(make_session):
    session = make_session()
    await session.add_items([{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}])
    first = await session.get_items()
    first[0]["content"][0]["text"] = "edited"
    first[0]["role"] = "system"
    assert await session.get_items() == [
        {"role": "user", "content": [{"type": "input_text", "text": "hi"}]}
    ]


async def test_a_vanished_session_reads_empty_and_can_start_again(make_session, service):
    session = make_session()
    await session.add_items(said("a"))
    assert await session.get_items() == said("a")
    await service.delete_session(session.user_id, session.session_id)
    assert await session.get_items() == []
    await session.add_items(said("b"))
    assert await session.get_items() == said("b")


async def test_random_changes_by_others_are_always_seen(make_session, service):
    """Any mix of adds, pops, clears, rewrites and re-creations between two reads."""
    rng = random.Random(15)
    reader, writer = make_session(), make_session()
    capabilities = service.backend.capabilities
    user, conversation = writer.user_id, writer.session_id
    written = 0
    for _ in range(80):
        action = rng.choice(["add", "add", "add", "pop", "clear", "recreate", "rewrite", "own"])
        if action == "add":
            await writer.add_items(said(*(f"w{written + n}" for n in range(rng.randint(1, 4)))))
            written += 4
        elif action == "own":
            await reader.add_items(said(f"r{written}"))
            written += 1
        elif action == "pop" and capabilities.pop_event:
            await writer.pop_item()
        elif action == "clear":
            await writer.clear_session()
        elif action == "recreate":
            count = len(await writer.get_items())
            await service.delete_session(user, conversation)
            await writer.add_items(said(*(f"n{written + n}" for n in range(count))))
            written += count
        elif action == "rewrite" and capabilities.replace_events:
            count = len(await writer.get_items())
            if count:
                events = [item_to_event(item) for item in said(*(f"x{n}" for n in range(count)))]
                await service.replace_events(user, conversation, events)
        await expect_same(reader, make_session, rng.choice([None, 1, 3, 6]))
