"""The app index of every user's sessions and the index of apps: where they live, how they mend."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from sessionhub.testing import FakeClock
from sessionhub_redis._keys import KeyLayout, app_member


def test_the_app_index_shares_the_app_slot_and_members_sort_by_user_then_session():
    layout = KeyLayout("p:")
    assert key_slot(layout.app_sessions("a").encode()) == key_slot(layout.app_state("a").encode())
    assert layout.app_sessions("a") != layout.app_sessions("b")
    ids = [("u", "s"), ("u", "s b"), ("u b", "s"), ("u!", "a"), ("ub", ""), ("\u00e9", "x")]
    members = [app_member(user, session).encode() for user, session in ids]
    assert sorted(members) == [app_member(*pair).encode() for pair in sorted(ids)]


@pytest.mark.asyncio
async def test_writes_keep_the_app_index_in_step_on_a_single_node(backend, make_service, raw_redis):
    clock = FakeClock()
    service = make_service(backend, clock=clock)
    index = backend.keys.app_sessions(service.app_name)
    alice = await service.create_session("alice", "s1")
    bob = await service.create_session("bob", "s1")
    await service.append(alice, "moves alice")
    scores = dict(await raw_redis.zrange(index, 0, -1, withscores=True))
    assert set(scores) == {"alice\x00s1", "bob\x00s1"}
    assert scores["alice\x00s1"] > scores["bob\x00s1"] == int(bob.updated_at.timestamp() * 1e6)
    await service.delete_session("bob", "s1")
    assert await raw_redis.zrange(index, 0, -1) == ["alice\x00s1"]
    assert await raw_redis.zrange(backend.keys.apps, 0, -1) == [service.app_name]


@pytest.mark.asyncio
async def test_listing_drops_vanished_sessions_and_mends_misplaced_entries(
    backend, make_service, raw_redis
):
    clock = FakeClock()
    service = make_service(backend, clock=clock, session_ttl=60)
    for user in ("a", "b", "c", "d"):
        await service.create_session(user, "s")
    index = backend.keys.app_sessions(service.app_name)
    await raw_redis.delete(backend.keys.session(service.app_name, "a", "s").hash)  # reclaimed
    await raw_redis.zadd(index, {"b\x00s": 1})  # as a lost Cluster command would leave it
    await raw_redis.zadd(index, {"ghost\x00s": 2})
    assert [s.user_id for s in (await service.list_sessions(None)).items] == ["d", "c"]
    members = await raw_redis.zrange(index, 0, -1)
    assert members == ["b\x00s", "c\x00s", "d\x00s"]
    assert [s.user_id for s in (await service.list_sessions(None)).items] == ["d", "c", "b"]
    clock.advance(61)
    assert (await service.list_sessions(None)).items == []
    assert await raw_redis.zcard(index) == 0
