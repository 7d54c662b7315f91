"""Seqs with gaps on Redis: after a pop, a replace or a restore, every read and write stays right.

Events are read by list position. While a session's stored seqs are the run
ending at ``last_seq`` a position is computed from the seq; a pop (or a restore
with gaps) sets ``gap`` in the session hash, and positions are then counted in
the id index. These tests check what the scripts leave on the server (the events
list, the id index and the times list in step) and what the service reads back,
on a single node and on a Cluster.
"""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio

from sessionhub import ConflictError, Event, Expiry, InvalidInput, Session, TextPart
from sessionhub.backend_tools import check_restorable
from sessionhub.testing import FakeClock
from sessionhub_redis import _codec
from sessionhub_redis.backend import RedisBackend, RedisSettings

pytestmark = pytest.mark.asyncio

_SECOND = timedelta(seconds=1)


@pytest_asyncio.fixture(params=["single node", "cluster"])
async def backend(request: pytest.FixtureRequest, key_prefix: str) -> Any:
    """An opened backend on a single node, then on the three-master Cluster."""
    url = request.getfixturevalue(
        "redis_url" if request.param == "single node" else "redis_cluster_url"
    )
    async with RedisBackend(RedisSettings(url=url, key_prefix=key_prefix)) as opened:
        yield opened


def _said(text: str, **fields: Any) -> Event:
    return Event(role="user", content=[TextPart(text=text)], **fields)


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


async def _layout(backend: RedisBackend, app_name: str, session_id: str = "s1") -> dict[str, Any]:
    """What the session's keys hold: list seqs, id index, times, and the hash's flags."""
    keys = backend.keys.user(app_name, "alice").session(session_id)
    client = backend.client
    stored = [Event.model_validate_json(text) for text in await client.lrange(keys.events, 0, -1)]
    ids = await client.zrange(keys.ids, 0, -1, withscores=True)
    flags = await client.hmget(keys.hash, "gap", "tnew", "tuno", "count", "last_seq")
    return {
        "seqs": [event.seq for event in stored],
        "ids": [(_text(name), int(score)) for name, score in ids],
        "stored ids": [(event.id, event.seq) for event in stored],
        "times": [_text(t) for t in await client.lrange(keys.times, 0, -1)],
        "event times": [_codec.time_key(event.timestamp) for event in stored],
        "gap": _text(flags[0]),
        "tnew": _text(flags[1]),
        "tuno": _text(flags[2]),
        "count": int(flags[3]),
        "last_seq": int(flags[4]),
    }


def _in_step(layout: dict[str, Any]) -> None:
    """The events list, the id index and the times list describe the same events."""
    assert layout["ids"] == layout["stored ids"]
    assert layout["times"] == layout["event times"]
    assert layout["count"] == len(layout["seqs"])
    assert layout["tnew"] == (layout["times"][-1] if layout["times"] else None)


async def test_a_retry_after_a_pop_returns_the_stored_event(backend, make_service):
    """The id index gives the seq, and the position is counted, not computed from the seq."""
    service = make_service(backend)
    await service.create_session("alice", "s1")
    first, second, third = _said("one"), _said("two"), _said("three")
    await service.append(("alice", "s1"), [first, second, third])
    popped = await service.pop_event("alice", "s1")
    assert popped is not None and popped.id == third.id
    layout = await _layout(backend, service.app_name)
    assert (layout["gap"], layout["seqs"], layout["last_seq"]) == ("1", [1, 2], 3)
    _in_step(layout)

    [again] = await service.append(("alice", "s1"), first)
    assert (again.seq, again.text) == (1, "one")
    retried, fresh = await service.append(("alice", "s1"), [second, "four"])
    assert [(e.seq, e.text) for e in (retried, fresh)] == [(2, "two"), (4, "four")]
    [again] = await service.append(("alice", "s1"), first, expected_last_seq=0)
    assert again.seq == 1  # a retry of stored events only is not a conflict
    _in_step(await _layout(backend, service.app_name))


async def test_a_trim_after_pops_keeps_the_id_index_in_step(backend, make_service):
    """With a gap the id index is trimmed by rank: by seq it would drop ids still stored."""
    service = make_service(backend, event_limit=3)
    await service.create_session("alice", "s1")
    events = [_said(f"m{n}") for n in range(1, 6)]
    await service.append(("alice", "s1"), events)  # 3, 4, 5 kept
    await service.pop_event("alice", "s1")
    await service.pop_event("alice", "s1")  # 3 left, last_seq 5
    await service.append(("alice", "s1"), ["m6", "m7"])  # 3, 6, 7 -> trimmed to 3 events
    layout = await _layout(backend, service.app_name)
    assert (layout["seqs"], layout["last_seq"]) == ([3, 6, 7], 7)
    _in_step(layout)
    [again] = await service.append(("alice", "s1"), events[2])
    assert (again.seq, again.text) == (3, "m3")
    got = await service.get_session("alice", "s1", after_seq=4)
    assert got is not None and [e.text for e in got.events] == ["m6", "m7"]


async def test_windows_after_pops(backend, make_service):
    """after_seq, last_n and after_time over seqs with gaps, on the times list too."""
    clock = FakeClock()
    service = make_service(backend, clock=clock)
    t0 = clock.now
    await service.create_session("alice", "s1")
    for n in range(1, 9):
        await service.append(("alice", "s1"), _said(f"m{n}", timestamp=t0 + n * _SECOND))
        if n in (3, 6):
            await service.pop_event("alice", "s1")
    layout = await _layout(backend, service.app_name)
    assert (layout["seqs"], layout["tuno"]) == ([1, 2, 4, 5, 7, 8], None)
    _in_step(layout)

    async def seqs(**window: Any) -> list[int]:
        got = await service.get_session("alice", "s1", **window)
        assert got is not None
        return [event.seq for event in got.events]

    assert await seqs(after_seq=2) == [4, 5, 7, 8]
    assert await seqs(after_seq=3) == [4, 5, 7, 8]
    assert await seqs(after_seq=6) == [7, 8]
    assert await seqs(after_seq=8) == []
    assert await seqs(after_seq=2, last_n=3) == [5, 7, 8]
    assert await seqs(last_n=5) == [2, 4, 5, 7, 8]
    assert await seqs(after_time=t0 + 4 * _SECOND) == [5, 7, 8]
    assert await seqs(after_time=t0 + 1 * _SECOND, after_seq=4, last_n=2) == [7, 8]
    assert await seqs(after_time=t0 + 2 * _SECOND, after_seq=1, last_n=9) == [4, 5, 7, 8]


async def test_a_pop_moves_the_newest_time_back(backend, make_service):
    """An append timed between the popped event and the one left does not mark times unordered."""
    clock = FakeClock()
    service = make_service(backend, clock=clock)
    t0 = clock.now
    await service.create_session("alice", "s1")
    await service.append(
        ("alice", "s1"), [_said(f"m{n}", timestamp=t0 + n * 10 * _SECOND) for n in (1, 2, 3)]
    )
    await service.pop_event("alice", "s1")
    assert (await _layout(backend, service.app_name))["tnew"] == _codec.time_key(t0 + 20 * _SECOND)
    await service.append(("alice", "s1"), _said("m4", timestamp=t0 + 25 * _SECOND))
    layout = await _layout(backend, service.app_name)
    assert (layout["seqs"], layout["tuno"]) == ([1, 2, 4], None)
    _in_step(layout)
    for _ in range(3):
        await service.pop_event("alice", "s1")
    layout = await _layout(backend, service.app_name)
    assert (layout["seqs"], layout["tnew"], layout["last_seq"]) == ([], None, 4)
    [five] = await service.append(("alice", "s1"), _said("m5", timestamp=t0))
    assert five.seq == 5
    _in_step(await _layout(backend, service.app_name))


async def test_only_a_pop_that_removes_an_event_moves_the_session(backend, make_service):
    """updated_at, the listing order and the expiry move with a pop that removed an event."""
    clock = FakeClock()
    service = make_service(backend, clock=clock, session_ttl=60)
    await service.create_session("alice", "old")
    await service.append(("alice", "old"), ["x", "y"])  # expires 60 s from now
    clock.advance(10)
    empty = await service.create_session("alice", "empty")
    clock.advance(10)
    assert await service.pop_event("alice", "empty") is None
    got = await service.get_session("alice", "empty", last_n=0)
    assert got is not None and got.updated_at == empty.updated_at
    assert [s.id for s in (await service.list_sessions("alice")).items] == ["empty", "old"]

    keys = backend.keys.user(service.app_name, "alice").session("old")
    names = (keys.hash, keys.events, keys.ids, keys.times)
    for name in names:
        await backend.client.pexpire(name, 5_000)  # as if time had passed on the server
    clock.advance(30)
    assert await service.pop_event("alice", "old") is not None
    assert [s.id for s in (await service.list_sessions("alice")).items] == ["old", "empty"]
    ttls = [await backend.client.pttl(name) for name in names]
    assert all(58_000 < ttl <= 60_000 for ttl in ttls), ttls
    clock.advance(40)  # past the expiry the append set, before the one the pop set
    got = await service.get_session("alice", "old")
    assert got is not None and got.event_count == 1


async def test_a_replace_closes_the_gap_and_rewrites_every_list(backend, make_service):
    """The new events are numbered after last_seq, the newest event_limit of them kept."""
    clock = FakeClock()
    service = make_service(backend, clock=clock, event_limit=2)
    t0 = clock.now
    await service.create_session("alice", "s1")
    await service.append(("alice", "s1"), ["a", "b"])
    await service.pop_event("alice", "s1")
    assert (await _layout(backend, service.app_name))["gap"] == "1"
    new = [_said(f"n{n}", timestamp=t0 + o * _SECOND) for n, o in enumerate((4, 3, 2, 1))]
    stored = await service.replace_events("alice", "s1", new, expected_last_seq=2)
    assert [e.seq for e in stored] == [3, 4, 5, 6]
    layout = await _layout(backend, service.app_name)
    assert (layout["seqs"], layout["gap"], layout["tuno"]) == ([5, 6], None, "1")
    _in_step(layout)
    got = await service.get_session("alice", "s1", after_time=t0 + 1 * _SECOND)
    assert got is not None and [e.text for e in got.events] == ["n2"]
    [again] = await service.append(("alice", "s1"), new[3])
    assert again.seq == 6

    await service.clear_events("alice", "s1")
    layout = await _layout(backend, service.app_name)
    assert (layout["seqs"], layout["tnew"], layout["tuno"], layout["last_seq"]) == (
        [],
        None,
        None,
        6,
    )
    _in_step(layout)


async def test_a_compare_and_set_conflict_writes_no_state_anywhere(backend, make_service):
    """Session, user and app deltas of a refused append stay unapplied (the app's slot too)."""
    service = make_service(backend)
    await service.create_session("alice", "s1")
    await service.append(("alice", "s1"), "a")
    event = {"role": "user", "content": "b", "state_delta": {"k": 1, "user:u": 1, "app:a": 1}}
    with pytest.raises(ConflictError, match="expected last_seq 0, it is 1"):
        await service.append(("alice", "s1"), event, expected_last_seq=0)
    got = await service.get_session("alice", "s1")
    assert got is not None and (got.state, got.last_seq) == ({}, 1)
    [stored] = await service.append(("alice", "s1"), event, expected_last_seq=1)
    assert stored.seq == 2
    got = await service.get_session("alice", "s1")
    assert got is not None and got.state == {"k": 1, "user:u": 1, "app:a": 1}


async def test_a_restored_session_with_gaps_is_read_by_counting(backend, make_service):
    """An export taken after pops restores with its gaps; windows and retries stay right."""
    clock = FakeClock()
    service = make_service(backend, clock=clock)
    t0 = clock.now
    session = Session(
        id="s1",
        app_name=service.app_name,
        user_id="alice",
        root_id="s1",
        created_at=t0,
        updated_at=t0,
        last_seq=10,
    )
    events = [
        Event(id=f"e{seq}", seq=seq, role="user", timestamp=t0 + seq * _SECOND)
        for seq in (2, 5, 6, 9)
    ]
    try:
        check_restorable(session, events)
    except InvalidInput:
        pytest.skip("this version of sessionhub's restore rule wants contiguous seqs")
    await backend.restore_session(session, events, Expiry(now=clock.now))
    layout = await _layout(backend, service.app_name)
    assert (layout["seqs"], layout["gap"], layout["last_seq"]) == ([2, 5, 6, 9], "1", 10)
    _in_step(layout)

    async def seqs(**window: Any) -> list[int]:
        got = await service.get_session("alice", "s1", **window)
        assert got is not None
        return [event.seq for event in got.events]

    assert await seqs(after_seq=5) == [6, 9]
    assert await seqs(after_seq=6, last_n=5) == [9]
    assert await seqs(last_n=3) == [5, 6, 9]
    assert await seqs(after_time=t0 + 5 * _SECOND) == [6, 9]
    [again] = await service.append(("alice", "s1"), events[1])
    assert again.seq == 5
    [new] = await service.append(("alice", "s1"), "new")
    assert new.seq == 11
    whole = [Event(id=f"e{seq}", seq=seq, role="user", timestamp=t0) for seq in (9, 10)]
    await backend.restore_session(session, whole, Expiry(now=clock.now))
    assert (await _layout(backend, service.app_name))["gap"] is None


async def test_a_mix_of_appends_pops_and_replaces_keeps_every_list_in_step(backend, make_service):
    """50 writers mixing the three: seqs unique and counted, events, ids and times in step."""
    service = make_service(backend, event_limit=25)
    await service.create_session("alice", "s1")
    rng = random.Random(14)
    numbered: list[Event] = []  # every event given a seq: appended or stored by a replace
    popped: list[Event] = []

    async def writer(number: int) -> None:
        for step in range(2):
            roll = rng.random()
            if roll < 0.3:
                if (event := await service.pop_event("alice", "s1")) is not None:
                    popped.append(event)
            elif roll < 0.35:
                numbered.extend(await service.replace_events("alice", "s1", [f"r{number}-{step}"]))
            else:
                numbered.extend(await service.append(("alice", "s1"), [f"w{number}-{step}"] * 2))

    for _ in range(3):
        await asyncio.gather(*(writer(n) for n in range(50)))
        got = await service.get_session("alice", "s1")
        assert got is not None
        layout = await _layout(backend, service.app_name)
        assert layout["seqs"] == sorted(layout["seqs"]) == [event.seq for event in got.events]
        _in_step(layout)
    seqs = [event.seq for event in numbered]
    assert len(set(seqs)) == len(seqs) and got.last_seq == max(seqs) == len(seqs)
    given = {event.id: event.seq for event in numbered}
    assert all(given[event.id] == event.seq for event in [*popped, *got.events])
    assert not {e.id for e in popped} & {e.id for e in got.events}
