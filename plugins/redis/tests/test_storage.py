"""What the Redis backend leaves on the server: keys, slots, TTLs, indexes, round trips."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.crc import key_slot
from redis.exceptions import ResponseError

from sessionhub import Event, TextPart
from sessionhub.backend_tools import event_to_json
from sessionhub.testing import FakeClock
from sessionhub_redis._keys import KeyLayout, escape
from sessionhub_redis.backend import _LIST_BUDGET_SLACK, RedisBackend

HOSTILE = ["a:b", "a", "b", "{x}", "x", "}{", "{", "}", "*", "?", "[a]", "%41", "A", " ", "é", ":"]


def _session_key_names(layout: KeyLayout, app: str, user: str, session: str) -> list[str]:
    users = layout.user(app, user)
    keys = users.session(session)
    return [
        keys.hash,
        keys.events,
        keys.ids,
        keys.times,
        users.children(session),
        users.index,
        users.state,
    ]


def test_every_key_of_a_user_shares_one_slot_whatever_the_ids():
    layout = KeyLayout("sessionhub:")
    for user in HOSTILE:
        slots = {
            key_slot(name.encode())
            for session in HOSTILE
            for name in _session_key_names(layout, "default", user, session)
        }
        assert slots == {key_slot(layout.user("default", user).base.encode())}


def test_hostile_ids_never_share_a_key():
    layout = KeyLayout("sessionhub:")
    apps, users = ("default", "a:b", "a"), HOSTILE
    per_session = [
        name
        for app in apps
        for user in users
        for session in HOSTILE
        for name in _session_key_names(layout, app, user, session)[:5]
    ]
    per_user = [
        name
        for app in apps
        for user in users
        for name in _session_key_names(layout, app, user, "s")[5:]
    ]
    everything = per_session + per_user + [layout.app_state(app) for app in apps]
    assert len(set(everything)) == len(everything)
    safe = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.~-%")
    assert all(set(escape(identifier)) <= safe for identifier in HOSTILE)


def test_the_app_state_has_its_own_slot_and_prefixes_cannot_hold_braces():
    layout = KeyLayout("p:")
    assert layout.app_state("default") != layout.app_state("other")
    assert not layout.app_state("default").startswith(layout.user("default", "alice").base)
    with pytest.raises(ValueError, match="hash tags"):
        KeyLayout("p{x}:")


@pytest.mark.asyncio
async def test_keys_and_scan_are_disabled_on_the_private_server(request, redis_url):
    """The suites run on a server where KEYS and SCAN do not exist: the backend never uses them."""
    if "127.0.0.1" not in redis_url or redis_url != request.getfixturevalue("private_redis").url:
        pytest.skip("SESSIONHUB_TEST_REDIS_URL or a container is in use, not the private server")
    client = Redis.from_url(redis_url)
    try:
        for command in (("KEYS", "*"), ("SCAN", "0")):
            with pytest.raises(ResponseError, match="unknown command"):
                await client.execute_command(*command)
    finally:
        await client.aclose()


@pytest.mark.asyncio
async def test_one_script_call_per_append_app_state_included(backend, make_service, raw_redis):
    """On a single node an append, with session, user and app deltas, is one EVALSHA."""
    service = make_service(backend)
    await service.create_session("alice", "s1")
    await service.append(("alice", "s1"), "warm-up")
    sent: list[str] = []
    async with raw_redis.monitor() as monitor:
        for i in range(20):
            await service.append(
                ("alice", "s1"),
                {
                    "role": "user",
                    "content": str(i),
                    "state_delta": {"k": i, "user:u": i, "app:a": i},
                },
            )
        await raw_redis.echo("that was all")
        while True:
            seen = await monitor.next_command()
            if seen["command"] == "ECHO that was all":
                break
            name = seen["command"].split()[0].upper()
            if seen["client_type"] != "lua" and name not in ("HELLO", "CLIENT"):
                sent.append(name)  # a new connection's handshake is not a round trip per append
    assert sent == ["EVALSHA"] * 20
    got = await service.get_session("alice", "s1")
    assert got is not None and got.state == {"k": 19, "user:u": 19, "app:a": 19}


async def _script_calls(raw_redis, call) -> list[str]:
    """The commands a client sent (not scripts' own) while ``call()`` ran."""
    sent: list[str] = []
    async with raw_redis.monitor() as monitor:
        await call()
        await raw_redis.echo("that was all")
        while True:
            seen = await monitor.next_command()
            if seen["command"] == "ECHO that was all":
                return sent
            name = seen["command"].split()[0].upper()
            if seen["client_type"] != "lua" and name not in ("HELLO", "CLIENT"):
                sent.append(name)


@pytest.mark.asyncio
async def test_only_a_batch_mixing_stored_and_new_ids_takes_a_second_call(
    backend, make_service, raw_redis
):
    """New events alone, or a pure retry, is one script call; a mix is two, the second verified."""
    service = make_service(backend)
    await service.create_session("alice", "s1")
    await service.append(("alice", "s1"), Event(id="warm-up", role="user"))  # loads the script
    stored = [Event(id=f"e{i}", role="user", content=[TextPart(text=str(i))]) for i in range(3)]
    fresh = [Event(id=f"n{i}", role="user", content=[TextPart(text=str(i))]) for i in range(3)]
    assert await _script_calls(raw_redis, lambda: service.append(("alice", "s1"), stored)) == [
        "EVALSHA"
    ]
    assert await _script_calls(raw_redis, lambda: service.append(("alice", "s1"), stored)) == [
        "EVALSHA"
    ]
    mixed = [stored[1], *fresh, stored[2]]
    calls = await _script_calls(raw_redis, lambda: service.append(("alice", "s1"), mixed))
    assert calls == ["EVALSHA", "EVALSHA"]
    got = await service.get_session("alice", "s1")
    ids = ["warm-up", "e0", "e1", "e2", "n0", "n1", "n2"]
    assert got is not None and [e.id for e in got.events] == ids


@pytest.mark.asyncio
async def test_every_key_gets_the_ttl_and_reads_slide_it(backend, make_service, raw_redis):
    clock = FakeClock()
    service = make_service(
        backend, clock=clock, session_ttl=60, user_state_ttl=120, app_state_ttl=180
    )
    root = await service.create_session("alice", "root")
    child = await service.spawn_child(root, "child")
    await service.append(
        child, {"role": "user", "content": "x", "state_delta": {"user:u": 1, "app:a": 1}}
    )
    layout = backend.keys
    users = layout.user(service.app_name, "alice")
    keys = users.session("child")
    session_keys = [
        keys.hash,
        keys.events,
        keys.ids,
        keys.times,
        users.index,
        users.children("root"),
    ]

    async def ttls(names):
        return [await raw_redis.pttl(name) for name in names]

    assert all(58_000 < ttl <= 60_000 for ttl in await ttls(session_keys))
    assert 118_000 < await raw_redis.pttl(users.state) <= 120_000
    assert 178_000 < await raw_redis.pttl(layout.app_state(service.app_name)) <= 180_000

    await raw_redis.pexpire(keys.hash, 5_000)  # as if time had passed on the server
    clock.advance(50)
    assert await service.get_session("alice", "child") is not None
    assert all(58_000 < ttl <= 60_000 for ttl in await ttls(session_keys[:4]))

    clock.advance(61)  # the service's clock says expired; Redis still holds the keys
    assert await service.get_session("alice", "child") is None
    assert await raw_redis.exists(keys.hash)


@pytest.mark.asyncio
async def test_no_ttl_means_persistent_keys(backend, make_service, raw_redis):
    service = make_service(backend)
    s = await service.create_session("alice", "s1")
    await service.append(s, {"role": "user", "content": "x", "state_delta": {"user:u": 1}})
    users = backend.keys.user(service.app_name, "alice")
    keys = users.session("s1")
    for name in (keys.hash, keys.events, keys.ids, keys.times, users.index, users.state):
        assert await raw_redis.pttl(name) == -1, name


@pytest.mark.asyncio
async def test_turning_a_ttl_off_persists_the_keys(backend, make_service, raw_redis):
    await make_service(backend, session_ttl=60).create_session("alice", "s1")
    service = make_service(backend)
    await service.append(("alice", "s1"), "x")
    keys = backend.keys.user(service.app_name, "alice").session("s1")
    for name in (keys.hash, keys.events, keys.ids, keys.times):
        assert await raw_redis.pttl(name) == -1, name
    got = await service.get_session("alice", "s1")
    assert got is not None and got.expires_at is None


@pytest.mark.asyncio
async def test_listing_drops_index_entries_of_expired_sessions(backend, make_service, raw_redis):
    clock = FakeClock()
    service = make_service(backend, clock=clock, session_ttl=60)
    for sid in ("a", "b", "c"):
        await service.create_session("alice", sid)
    clock.advance(30)
    await service.append(("alice", "c"), "keep me")
    clock.advance(31)
    index = backend.keys.user(service.app_name, "alice").index
    assert await raw_redis.zcard(index) == 3
    assert [s.id for s in (await service.list_sessions("alice")).items] == ["c"]
    assert await raw_redis.zrange(index, 0, -1) == ["c"]


@pytest.mark.asyncio
async def test_event_limit_trims_events_and_ids(backend, make_service, raw_redis):
    service = make_service(backend, event_limit=3)
    await service.create_session("alice", "s1")
    for i in range(10):
        await service.append(("alice", "s1"), str(i))
    keys = backend.keys.user(service.app_name, "alice").session("s1")
    assert await raw_redis.llen(keys.events) == await raw_redis.llen(keys.times) == 3
    assert [
        int(score) for _, score in await raw_redis.zrange(keys.ids, 0, -1, withscores=True)
    ] == [
        8,
        9,
        10,
    ]


@pytest.mark.asyncio
async def test_delete_leaves_nothing_behind(backend, make_service, raw_redis):
    service = make_service(backend)
    root = await service.create_session("alice", "root")
    child = await service.spawn_child(root, "child", state={"k": 1})
    await service.append(child, ["one", "two"])
    users = backend.keys.user(service.app_name, "alice")
    keys = users.session("child")
    assert await service.delete_session("alice", "child") is True
    gone = [keys.hash, keys.events, keys.ids, keys.times, users.children("root")]
    assert await raw_redis.exists(*gone) == 0
    assert await raw_redis.zrange(users.index, 0, -1) == ["root"]


@pytest.mark.asyncio
async def test_stored_events_carry_their_seq_in_field_order(backend, make_service, raw_redis):
    """The list holds each event's JSON as a read builds it: the allocated seq after the id."""
    service = make_service(backend)
    await service.create_session("alice", "s1")
    events = await service.append(("alice", "s1"), ["a", 'an id-like text: ,"seq":0,'])
    tricky = Event(id='x,"seq":7,"y', role="user", content=[TextPart(text="c")])
    events += await service.append(("alice", "s1"), tricky)
    keys = backend.keys.user(service.app_name, "alice").session("s1")
    stored = await raw_redis.lrange(keys.events, 0, -1)
    assert [event.seq for event in events] == [1, 2, 3]
    assert stored == [event_to_json(event) for event in events]
    renamed = tricky.model_copy(update={"id": "r"})
    replaced = await service.replace_events("alice", "s1", [renamed])
    assert await raw_redis.lrange(keys.events, 0, -1) == [event_to_json(replaced[0])]
    assert replaced[0].seq == 4


@pytest.mark.asyncio
async def test_events_stored_with_the_seq_first_still_read(backend, make_service, raw_redis):
    """Events written before the list kept the field order (seq first) read back the same."""
    service = make_service(backend)
    await service.create_session("alice", "s1")
    events = await service.append(("alice", "s1"), ["a", "b"])
    keys = backend.keys.user(service.app_name, "alice").session("s1")
    for position, event in enumerate(events):
        text = event.model_dump_json(exclude={"seq"})
        await raw_redis.lset(keys.events, position, f'{{"seq":{event.seq},{text[1:]}')
    session = await service.get_session("alice", "s1")
    assert session is not None and session.events == events
    assert [list(event.__dict__) for event in session.events] == [list(Event.model_fields)] * 2


@pytest.mark.asyncio
async def test_a_given_client_is_used_and_left_open(redis_settings, redis_url):
    client = Redis.from_url(redis_url)
    try:
        backend = RedisBackend(redis_settings(), client=client)
        async with backend:
            await backend.ping()
            assert backend.client is client
        assert await client.ping()
    finally:
        await client.aclose()


@pytest.mark.asyncio
async def test_a_given_pool_is_used_and_left_open(redis_settings, redis_url):
    pool = ConnectionPool.from_url(redis_url)
    try:
        async with RedisBackend(redis_settings(), pool=pool) as backend:
            await backend.ping()
        client = Redis(connection_pool=pool)
        assert await client.ping()
        await client.aclose(close_connection_pool=False)
    finally:
        await pool.aclose()


@pytest.mark.asyncio
async def test_a_given_pool_gets_its_connection_back_after_every_call(
    redis_settings, redis_url, make_service
):
    pool = BlockingConnectionPool.from_url(redis_url, max_connections=1, timeout=0.5)
    client = Redis(connection_pool=pool)
    try:
        async with make_service(RedisBackend(redis_settings(), pool=pool)) as service:
            await service.create_session("alice", "s1")
            for text in ("one", "two"):
                await service.append(("alice", "s1"), text)
                # The pool's only connection is free for the application between calls.
                assert await client.ping()
    finally:
        await client.aclose(close_connection_pool=True)


@pytest.mark.asyncio
async def test_a_capped_pool_serves_more_concurrent_calls_than_connections(
    redis_settings, make_service
):
    async with make_service(RedisBackend(redis_settings(max_connections=2))) as service:
        await service.create_session("alice", "s1")
        await asyncio.gather(*(service.append(("alice", "s1"), str(i)) for i in range(20)))
        got = await service.get_session("alice", "s1")
        assert got is not None and [e.seq for e in got.events] == list(range(1, 21))


@pytest.mark.asyncio
async def test_close_releases_every_connection(redis_settings, make_service, raw_redis):
    async def connections() -> int:
        return len(await raw_redis.client_list(_type="normal"))

    before = await connections()
    service = make_service(RedisBackend(redis_settings()))
    async with service:
        await service.create_session("alice", "s1")
        await asyncio.gather(*(service.append(("alice", "s1"), str(i)) for i in range(5)))
        assert await connections() > before
    assert await connections() == before


@pytest.mark.asyncio
async def test_restore_refuses_seqs_out_of_order_or_past_last_seq(backend):
    from datetime import datetime, timezone

    from sessionhub import Event, Expiry, InvalidInput, Session

    now = datetime.now(timezone.utc)
    session = Session(
        id="s1",
        app_name="default",
        user_id="alice",
        root_id="s1",
        created_at=now,
        updated_at=now,
        last_seq=9,
    )
    for bad in ((9, 8), (9, 10)):
        events = [Event(id=f"e{seq}", seq=seq, role="user", timestamp=now) for seq in bad]
        with pytest.raises(InvalidInput, match="seq"):
            await backend.restore_session(session, events, Expiry(now=now))
    assert await backend.list_users("default", limit=10, after=None) == []
    whole = [Event(id=f"e{seq}", seq=seq, role="user", timestamp=now) for seq in (8, 9)]
    await backend.restore_session(session, whole, Expiry(now=now))
    assert await backend.list_users("default", limit=10, after=None) == ["alice"]


@pytest.mark.asyncio
async def test_listing_past_many_stale_entries_takes_several_bounded_calls(
    backend, make_service, raw_redis
):
    """A run of stale index entries longer than a call's budget: several short scripts."""
    clock = FakeClock()
    lasting = make_service(backend, clock=clock)
    expiring = make_service(backend, clock=clock, session_ttl=60)
    for sid in ("old1", "old2", "old3"):
        await lasting.create_session("alice", sid)
        clock.advance(1)
    for n in range(150):  # newer than the live ones, all expired below
        await expiring.create_session("alice", f"gone-{n:03}")
    clock.advance(61)
    index = backend.keys.user(lasting.app_name, "alice").index
    examined: list[int] = []  # HGETALLs per script call: index entries examined
    async with raw_redis.monitor() as monitor:
        page = await lasting.list_sessions("alice", limit=2)
        await raw_redis.echo("that was all")
        while (seen := await monitor.next_command())["command"] != "ECHO that was all":
            name = seen["command"].split()[0].upper()
            if seen["client_type"] != "lua" and name in ("EVALSHA", "EVAL"):
                examined.append(0)
            elif seen["client_type"] == "lua" and name == "HGETALL":
                examined[-1] += 1
    assert [s.id for s in page.items] == ["old3", "old2"]
    assert len(examined) > 1, examined
    assert max(examined) <= 3 + _LIST_BUDGET_SLACK, examined  # limit (+1 to see more) + slack
    assert sum(examined) == 150 + 3  # each stale entry examined once, then removed
    assert await raw_redis.zrange(index, 0, -1) == ["old1", "old2", "old3"]
    rest = await lasting.list_sessions("alice", limit=2, cursor=page.next_cursor)
    assert [s.id for s in rest.items] == ["old1"]
