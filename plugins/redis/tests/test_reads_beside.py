"""Long reads on a single node: GET's script beside one ``LRANGE``, in one ``MULTI``/``EXEC``.

A read of every event, or of the newest 64 or more, asks GET for no events and
fetches them by a plain ``LRANGE`` in the same transaction (a script's reply
costs Redis about 1 µs an element more). These tests check that such a read
returns exactly what the script alone returns, on sessions whose list and
counters went through pops, trims and replaces; that it really is one
transaction with no script-side read of the events; and that it survives a
flushed script cache, through the backend's own connections and a given client.
"""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from sessionhub import Event, SessionHistoryService, TextPart
from sessionhub_redis.backend import RedisBackend

pytestmark = pytest.mark.asyncio

_WINDOWS: list[int | None] = [None, 64, 100, 150, 1000]


def _said(text: str) -> Event:
    return Event(role="user", content=[TextPart(text=text)])


async def _reads(service: SessionHistoryService, backend: RedisBackend) -> dict[Any, Any]:
    """Each window's events, read beside the script and by the script alone."""
    topology = backend._open()
    found: dict[Any, Any] = {}
    for beside in (True, False):
        topology.reads_beside = beside
        try:
            for last_n in _WINDOWS:
                got = await service.get_session("alice", "s1", last_n=last_n)
                assert got is not None
                found[beside, last_n] = (got.events, got.event_count, got.last_seq)
        finally:
            topology.reads_beside = True
    return found


async def _equal_both_ways(service: SessionHistoryService, backend: RedisBackend) -> list[int]:
    found = await _reads(service, backend)
    for last_n in _WINDOWS:
        assert found[True, last_n] == found[False, last_n], last_n
    return [event.seq for event in found[True, None][0]]


async def test_a_read_beside_returns_what_the_script_returns(backend, make_service):
    service = make_service(backend)
    await service.create_session("alice", "s1")
    assert await _equal_both_ways(service, backend) == []
    await service.append(("alice", "s1"), [_said(f"m{n}") for n in range(1, 121)])
    assert await _equal_both_ways(service, backend) == list(range(1, 121))
    for _ in range(3):  # a gap at the end: last_seq stays 120
        await service.pop_event("alice", "s1")
    await service.append(("alice", "s1"), [_said(f"m{n}") for n in range(121, 181)])
    seqs = await _equal_both_ways(service, backend)
    assert seqs == [*range(1, 118), *range(121, 181)]
    await service.replace_events("alice", "s1", [_said(f"r{n}") for n in range(70)])
    assert len(await _equal_both_ways(service, backend)) == 70


async def test_a_trimmed_history_is_read_beside_the_same(backend, make_service):
    service = make_service(backend, event_limit=90)
    await service.create_session("alice", "s1")
    for start in range(0, 200, 40):
        await service.append(("alice", "s1"), [_said(f"m{n}") for n in range(start, start + 40)])
    await service.pop_event("alice", "s1")
    assert await _equal_both_ways(service, backend) == list(range(111, 200))


async def test_a_long_read_is_one_transaction_and_a_short_one_one_script(
    backend, make_service, raw_redis
):
    service = make_service(backend)
    await service.create_session("alice", "s1")
    await service.append(("alice", "s1"), [_said(f"m{n}") for n in range(100)])
    events = backend.keys.user(service.app_name, "alice").session("s1").events

    async def watched(last_n: int | None) -> list[tuple[str, str]]:
        """(who, command) of the read's commands: who is "lua" inside the script.

        The checking client's own connection set-up (HELLO, CLIENT) is left out.
        """
        seen: list[tuple[str, str]] = []
        async with raw_redis.monitor() as monitor:
            got = await service.get_session("alice", "s1", last_n=last_n)
            await raw_redis.echo("that was all")
            while True:
                command = await monitor.next_command()
                if command["command"] == "ECHO that was all":
                    break
                if command["command"].split()[0] not in ("HELLO", "CLIENT", "ECHO"):
                    seen.append((command["client_type"], command["command"]))
        assert got is not None and len(got.events) == (100 if last_n is None else last_n)
        return seen

    for last_n, first in ((None, "0"), (64, "-64")):
        seen = await watched(last_n)
        words = [(who == "lua", command.split()[:2]) for who, command in seen]
        assert words[0] == (False, ["MULTI"]) and words[-1] == (False, ["EXEC"])
        assert (False, ["LRANGE", events]) in words
        assert (True, ["LRANGE", events]) not in words
        assert f"LRANGE {events} {first} -1" in [command for _, command in seen]
    seen = await watched(20)
    assert "MULTI" not in [command.split()[0] for _, command in seen]
    assert f"LRANGE {events} -20 -1" in [command for who, command in seen if who == "lua"]


async def test_a_read_beside_loads_a_flushed_script(backend, make_service, raw_redis, redis_url):
    service = make_service(backend)
    await service.create_session("alice", "s1")
    await service.append(("alice", "s1"), [_said(f"m{n}") for n in range(70)])
    await raw_redis.script_flush()
    got = await service.get_session("alice", "s1")
    assert got is not None and [e.text for e in got.events] == [f"m{n}" for n in range(70)]

    client = Redis.from_url(redis_url, single_connection_client=True)
    try:
        await client.initialize()  # a client with its connection: scripts go through it
        async with RedisBackend(backend.settings, client=client) as given:
            assert given._open().cache is None  # type: ignore[attr-defined]
            other = make_service(given)
            await raw_redis.script_flush()
            for last_n in (None, 64):
                got = await other.get_session("alice", "s1", last_n=last_n)
                assert got is not None and len(got.events) == (last_n or 70)
    finally:
        await client.aclose()


async def test_a_read_beside_picks_the_events_the_script_picks(backend, make_service, raw_redis):
    """Whatever the list holds: the newest ``min(count, last_seq)``, at most ``last_n``."""
    service = make_service(backend)
    await service.create_session("alice", "s1")
    await service.append(("alice", "s1"), [_said(f"m{n}") for n in range(80)])
    events = backend.keys.user(service.app_name, "alice").session("s1").events
    stray = _said("not counted").model_copy(update={"seq": 999}).model_dump_json()
    await raw_redis.lpush(events, stray)  # an entry before the counted ones
    assert len(await _equal_both_ways(service, backend)) == 80
