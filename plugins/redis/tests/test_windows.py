"""Reads by time on Redis: the script picks the window, and reads only the events in it.

What the script touches is watched with ``MONITOR``, which lists every command
a script runs: the events list is read only at the positions returned, and the
list of times is scanned only as far as the window needs.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from sessionhub import Event, TextPart
from sessionhub.testing import FakeClock

pytestmark = pytest.mark.asyncio

_SECOND = timedelta(seconds=1)
_EVENTS = 3000


async def _fill(service: Any, t0: Any, offsets: list[int]) -> None:
    await service.create_session("alice", "s1")
    events = [
        Event(role="user", content=[TextPart(text=f"event {n}")], timestamp=t0 + o * _SECOND)
        for n, o in enumerate(offsets, 1)
    ]
    for start in range(0, len(events), 500):
        await service.append(("alice", "s1"), events[start : start + 500])


async def _read(service: Any, raw_redis: Any, keys: Any, **window: Any) -> tuple[list[int], dict]:
    """The window's seqs, and how many entries of each list the scripts read for it."""
    read = {keys.events: 0, keys.times: 0}
    async with raw_redis.monitor() as monitor:
        got = await service.get_session("alice", "s1", **window)
        await raw_redis.echo("that was all")
        while True:
            seen = await monitor.next_command()
            if seen["command"] == "ECHO that was all":
                break
            words = seen["command"].split()
            if words[0].upper() in ("LRANGE", "LINDEX") and words[1] in read:
                first, last = (int(words[2]), int(words[3])) if len(words) > 3 else (0, 0)
                read[words[1]] += last - first + 1
    assert got is not None
    return [e.seq for e in got.events], {"events": read[keys.events], "times": read[keys.times]}


async def test_a_read_by_time_reads_only_the_events_it_returns(backend, make_service, raw_redis):
    clock = FakeClock()
    service = make_service(backend, clock=clock)
    t0 = clock.now
    await _fill(service, t0, list(range(1, _EVENTS + 1)))
    keys = backend.keys.session(service.app_name, "alice", "s1")

    seqs, read = await _read(service, raw_redis, keys, after_time=t0 + 2980 * _SECOND, last_n=5)
    assert seqs == list(range(2996, 3001))
    assert read == {"events": 5, "times": 6}

    seqs, read = await _read(service, raw_redis, keys, after_time=t0 + 2980 * _SECOND)
    assert seqs == list(range(2981, 3001))
    assert read["events"] == 20 and read["times"] <= 64  # times grow with seq: the scan stops

    seqs, read = await _read(service, raw_redis, keys, after_time=t0 + 2997 * _SECOND, last_n=20)
    assert seqs == [2998, 2999, 3000]
    assert read == {"events": 3, "times": 21}

    seqs, read = await _read(
        service, raw_redis, keys, after_seq=2990, after_time=t0 + 100 * _SECOND, last_n=50
    )
    assert seqs == list(range(2991, 3001))
    assert read == {"events": 10, "times": 10}


async def test_with_times_out_of_order_only_the_events_returned_are_read(
    backend, make_service, raw_redis
):
    clock = FakeClock()
    service = make_service(backend, clock=clock)
    t0 = clock.now
    offsets = list(range(1, _EVENTS + 1))
    offsets[0] = 10 * _EVENTS  # the first event carries a time later than all the others
    await _fill(service, t0, offsets)
    keys = backend.keys.session(service.app_name, "alice", "s1")

    seqs, read = await _read(service, raw_redis, keys, after_time=t0 + 2990 * _SECOND, last_n=5)
    assert seqs == list(range(2996, 3001))
    assert read == {"events": 5, "times": 6}

    # Without last_n every time must be looked at; still only the answer's events are read.
    seqs, read = await _read(service, raw_redis, keys, after_time=t0 + 2990 * _SECOND)
    assert seqs == [1, *range(2991, 3001)]
    assert read == {"events": 11, "times": _EVENTS}

    seqs, read = await _read(service, raw_redis, keys, after_time=t0 + 5 * _EVENTS * _SECOND)
    assert seqs == [1]
    assert read["events"] == 1


async def test_sessions_stored_without_times_are_still_read_right(backend, make_service, raw_redis):
    """A session stored before times were kept (no times list, no tnew) is filtered in Python."""
    clock = FakeClock()
    service = make_service(backend, clock=clock)
    t0 = clock.now
    await _fill(service, t0, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    keys = backend.keys.session(service.app_name, "alice", "s1")
    await raw_redis.delete(keys.times)
    await raw_redis.hdel(keys.hash, "tnew")
    await service.append(
        ("alice", "s1"),
        Event(role="user", content=[TextPart(text="11")], timestamp=t0 + 11 * _SECOND),
    )
    assert await raw_redis.llen(keys.times) == 0  # not started half way through

    async def seqs(**window: Any) -> list[int]:
        got = await service.get_session("alice", "s1", **window)
        assert got is not None
        return [e.seq for e in got.events]

    cut = t0 + 7 * _SECOND
    assert await seqs(after_time=cut) == [8, 9, 10, 11]
    assert await seqs(after_time=cut, last_n=6) == [8, 9, 10, 11]
    assert await seqs(after_time=cut, last_n=2) == [10, 11]
    assert await seqs(after_time=cut, after_seq=9, last_n=6) == [10, 11]


async def test_restored_times_out_of_order_are_windowed_right(backend, make_service):
    from sessionhub import Expiry, Session

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
        last_seq=4,
        event_count=4,
    )
    events = [
        Event(id=f"e{seq}", seq=seq, role="user", timestamp=t0 + o * _SECOND)
        for seq, o in zip((1, 2, 3, 4), (9, 1, 2, 3), strict=True)
    ]
    await backend.restore_session(session, events, Expiry(now=clock.now))
    got = await service.get_session("alice", "s1", after_time=t0 + 2 * _SECOND, last_n=5)
    assert got is not None and [e.seq for e in got.events] == [1, 4]


async def test_after_a_pop_a_read_still_reads_only_its_events(backend, make_service, raw_redis):
    """With a gap, after_seq is turned into a position by counting ids, not by reading events."""
    clock = FakeClock()
    service = make_service(backend, clock=clock)
    t0 = clock.now
    await _fill(service, t0, list(range(1, _EVENTS + 1)))
    for _ in range(3):
        await service.pop_event("alice", "s1")  # 1 .. 2997 stored, last_seq 3000
    await service.append(("alice", "s1"), Event(role="user", timestamp=t0 + _EVENTS * _SECOND))
    keys = backend.keys.session(service.app_name, "alice", "s1")

    seqs, read = await _read(service, raw_redis, keys, after_seq=2990)
    assert seqs == [*range(2991, 2998), 3001]
    assert read == {"events": 8, "times": 0}

    seqs, read = await _read(service, raw_redis, keys, after_seq=2995, last_n=2)
    assert seqs == [2997, 3001]
    assert read == {"events": 2, "times": 0}

    seqs, read = await _read(
        service, raw_redis, keys, after_seq=2990, after_time=t0 + 2995 * _SECOND, last_n=50
    )
    assert seqs == [2996, 2997, 3001]
    assert read["events"] == 3 and read["times"] <= 8
