"""What the PostgreSQL backend stores and how: exact values, the layout, indexes, the pool."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import pytest

from sessionhub import BackendError, Event, Expiry, SessionKey, StateKey, TextPart
from sessionhub.testing import FakeClock
from sessionhub_postgres._codec import stored_from_rows
from sessionhub_postgres._settings import driver_dsn
from sessionhub_postgres.backend import PURGE_BATCH, PostgresBackend, app_refresh_step

pytestmark = pytest.mark.asyncio

AWKWARD = {
    "big": 1e100,
    "small": -1.5e-300,
    "huge_int": 2**70,
    "neg_int": -(2**64) - 1,
    "nul\x00key": "nul\x00value",
    "\x00": ["\x00", {"\x00": "\x00"}],
    "unicode": "emoji \U0001f600, accents é, RTL \u05d0",
    "floats": [0.1, 1.0, -0.0, 5e-324],
    "deep": None,
}


def _nest(depth: int):
    value: object = "bottom"
    for level in range(depth):
        value = {f"level{level}": [value]}
    return value


async def test_values_round_trip_exactly(backend, make_service):
    values = {**AWKWARD, "deep": _nest(30)}  # 60 levels: the service allows 64
    async with make_service(backend) as svc:
        s = await svc.create_session("alice", "s1", state=values)
        await svc.append(
            s,
            Event(
                id="e1",
                role="user",
                content=[TextPart(text="a\x00b")],
                state_delta={f"user:{k}": v for k, v in values.items()},
                metadata=values,
            ),
        )
        await svc.update_session("alice", "s1", metadata=values)
        await svc.update_app_state(values)
        got = await svc.get_session("alice", "s1")
        assert got is not None
        session_state = {k: v for k, v in got.state.items() if ":" not in k}
        assert session_state == values
        assert {k[5:]: v for k, v in got.state.items() if k.startswith("user:")} == values
        assert {k[4:]: v for k, v in got.state.items() if k.startswith("app:")} == values
        assert got.metadata == values
        [event] = got.events
        assert event.metadata == values and event.content[0].text == "a\x00b"
        assert type(got.state["big"]) is float and type(got.state["huge_int"]) is int
        assert repr(got.state["floats"]) == repr(values["floats"])  # -0.0 and 5e-324 kept


async def test_layout_text_events_and_state_as_json_text(backend, make_service, raw, schema):
    async with make_service(backend) as svc:
        s = await svc.create_session("alice", "s1", state={"big": 1e100, "k\x00": 1})
        await svc.append(s, "hello")
    row = await raw.fetchrow(f'SELECT state::text FROM "{schema}".sessionhub_sessions')
    assert row[0] == '{"\\"big\\"": "1e+100", "\\"k\\\\u0000\\"": "1"}'
    types = dict(
        await raw.fetch(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = $1 AND table_name = 'sessionhub_events'",
            schema,
        )
    )
    assert types["data"] == "text" and types["seq"] == "bigint"


async def test_no_primitive_scans_a_table(backend, make_service, raw, schema):
    """With sequential scans off, every read and the purge still find an index to use."""
    clock = FakeClock()
    async with make_service(backend, clock=clock, session_ttl=60) as svc:
        for user in range(20):
            for n in range(10):
                s = await svc.create_session(f"u{user:02}", f"s{n}")
                await svc.append(s, ["a", "b", "c"])
    await raw.execute(f'ANALYZE "{schema}".sessionhub_sessions, "{schema}".sessionhub_events')
    await raw.execute("SET enable_seqscan = off")
    sql = backend._sql
    now = datetime.now(timezone.utc)

    async def plan(query: str, *args) -> str:
        return "\n".join(row[0] for row in await raw.fetch("EXPLAIN " + query, *args))

    window = await plan(sql.read_session, "default", "u03", "s4", now, 1, None, 2)
    assert "Index Scan Backward using sessionhub_events_pkey" in window
    listing = await plan(sql.list_sessions[False, True], "default", "u03", now, now, "s9", 5)
    users = await plan(sql.list_users, "default", "u05", 5)
    purge = await plan(sql.purge_sessions, now, PURGE_BATCH)
    assert "sessionhub_sessions_by_expiry" in purge
    everyone = await plan(sql.list_app_sessions[True], "default", now, now, "u05", "s1", 5)
    assert "sessionhub_sessions_by_app" in everyone
    apps = await plan(sql.list_apps, "", 10)
    append = await plan(
        sql.append_plain, "default", "u03", "s4", now, now, None, ["x"], [now], ["{}"], [], "{}"
    )
    assert "sessionhub_sessions_app_name_user_id_session_id_key" in append
    for text in (window, listing, users, purge, everyone, apps, append):
        assert "Seq Scan" not in text, text


async def test_a_read_puts_rows_sent_in_another_order_in_order(backend, make_service, raw):
    """SQL promises no order for ``read_session``'s rows: any order gives the same session."""
    async with make_service(backend) as svc:
        await svc.update_app_state({"mode": "a"})
        await svc.create_session("alice", "s1", state={"user:name": "Alice", "k": 1})
        await svc.append(("alice", "s1"), [f"m{n}" for n in range(12)])
        await svc.pop_event("alice", "s1")
        await svc.append(("alice", "s1"), ["last"])
    key = SessionKey("default", "alice", "s1")
    now = datetime.now(timezone.utc)
    for last_n in (None, 5):
        rows = await raw.fetch(
            backend._sql.read_session, "default", "alice", "s1", now, None, None, last_n
        )
        assert rows[0][13] is None and [row[13] for row in rows[1:]] == sorted(
            (row[13] for row in rows[1:]), reverse=True
        )
        expected = stored_from_rows(key, rows)
        assert [e.seq for e in expected.session.events][-2:] == [11, 13]
        assert expected.app_state == {"mode": "a"} and expected.user_state == {"name": "Alice"}
        for seed in range(5):
            shuffled = list(rows)
            random.Random(seed).shuffle(shuffled)
            assert stored_from_rows(key, shuffled) == expected


async def test_app_state_expiry_moves_only_by_a_step(backend, raw, schema):
    """Reads refresh the app state's expiry only when that moves it by more than the step."""
    now = datetime.now(timezone.utc)
    ttl = timedelta(hours=1)
    key = StateKey.app("default")
    await backend.write_state(key, {"k": 1}, Expiry(now=now, app=now + ttl))

    async def stored():
        return await raw.fetchval(f'SELECT expires_at FROM "{schema}".sessionhub_app_state')

    step = app_refresh_step(Expiry(now=now, app=now + ttl))
    assert step == timedelta(seconds=36)
    later = now + step / 2
    await backend.read_state(key, Expiry(now=later, app=later + ttl), refresh=True)
    assert await stored() == now + ttl  # a small move is not written
    later = now + step * 2
    await backend.read_state(key, Expiry(now=later, app=later + ttl), refresh=True)
    assert await stored() == later + ttl
    assert app_refresh_step(Expiry(now=now, app=now + timedelta(seconds=10))) == timedelta(
        seconds=1
    )


async def test_an_injected_pool_is_used_and_left_open(pg_settings, postgres_url, make_service):
    pool = await asyncpg.create_pool(driver_dsn(postgres_url), min_size=1, max_size=2)
    try:
        backend = PostgresBackend(pg_settings(url=None), pool=pool)
        async with make_service(backend) as svc:
            await svc.create_session("alice", "s1")
            assert (await svc.get_session("alice", "s1")) is not None
        assert not pool._closed
        assert await pool.fetchval("SELECT 1") == 1
    finally:
        await pool.close()


@pytest.mark.parametrize("size", [1, 2])
async def test_concurrent_calls_share_the_held_connection_and_the_pool(
    pg_settings, make_service, raw, size
):
    async with PostgresBackend(pg_settings(max_pool_size=size, pool_timeout=5)) as backend:
        svc = make_service(backend)
        await svc.create_session("alice", "s1")
        await asyncio.gather(*(svc.append(("alice", "s1"), f"m{i}") for i in range(20)))
        # A call that fails on the held connection hands it back; the next one works.
        with pytest.raises(BackendError):
            await backend._run(
                lambda conn: conn.execute("SELECT * FROM no_such_table"), retry=False
            )
        got = await svc.get_session("alice", "s1")
        assert got is not None and [e.seq for e in got.events] == list(range(1, 21))
        assert backend._pool.get_size() <= size


async def test_purge_works_in_batches(backend, make_service, raw, schema):
    clock = FakeClock()
    async with make_service(backend, clock=clock, session_ttl=10, user_state_ttl=10) as svc:
        total = PURGE_BATCH * 2 + 7
        await raw.execute(
            f'INSERT INTO "{schema}".sessionhub_sessions (app_name, user_id, session_id, '
            "root_id, created_at, updated_at, expires_at) SELECT 'default', 'u', 's' || n, "
            "'s' || n, $1, $1, $2 FROM generate_series(1, $3) AS n",
            clock.now,
            clock.now + timedelta(seconds=10),
            total,
        )
        await svc.update_user_state("bob", {"k": 1})
        await svc.create_session("carol", "keep")
        clock.advance(11)
        kept = await svc.create_session("carol", "live")
        assert await svc.purge_expired() == total + 2  # sessions, then bob's state and carol's
        count = await raw.fetchval(f'SELECT count(*) FROM "{schema}".sessionhub_sessions')
        assert count == 1 and (await svc.get_session("carol", kept.id)) is not None


async def test_prefixes_share_a_schema_without_seeing_each_other(pg_settings, make_service):
    async with (
        PostgresBackend(pg_settings(table_prefix="one_")) as one,
        PostgresBackend(pg_settings(table_prefix="two_")) as two,
    ):
        await make_service(one).create_session("alice", "s1")
        assert await make_service(two).get_session("alice", "s1") is None
        assert await make_service(one).get_session("alice", "s1") is not None


async def test_a_retried_append_is_applied_once(backend, make_service):
    async with make_service(backend) as svc:
        s = await svc.create_session("alice", "s1")
        events = [
            Event(id=f"e{i}", role="user", content=[TextPart(text=str(i))], state_delta={"n": i})
            for i in range(3)
        ]
        await svc.append(s, events[:2])
        again = await svc.append(s, [*events[:2], events[2]])
        assert [e.seq for e in again] == [1, 2, 3]
        got = await svc.get_session("alice", "s1")
        assert got is not None and got.state == {"n": 2} and got.last_seq == 3


def _partitioning_sql() -> str:
    """The statements the README gives for partitioning the events table."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## Partitioning the events table", 1)[1]
    return section.split("```sql\n", 1)[1].split("```", 1)[0]


async def test_the_documented_partitioning_keeps_every_primitive_working(
    backend, make_service, raw, schema
):
    async with make_service(backend) as svc:
        before = await svc.create_session("alice", "before")
        await svc.append(before, ["one", "two"])
    await raw.execute(f'SET search_path TO "{schema}"')
    await raw.execute(_partitioning_sql())
    kind = await raw.fetchval(
        "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relname = 'sessionhub_events'",
        schema,
    )
    assert kind == b"p"  # partitioned
    clock = FakeClock()
    async with make_service(backend, clock=clock, session_ttl=60) as svc:
        got = await svc.get_session("alice", "before")
        assert got is not None and [e.text for e in got.events] == ["one", "two"]
        s = await svc.create_session("alice", "after")
        await svc.append(s, [str(i) for i in range(30)])
        assert [e.seq for e in (await svc.get_session("alice", "after", last_n=3)).events] == [
            28,
            29,
            30,
        ]
        popped = await svc.pop_event("alice", "after")
        assert popped is not None and popped.seq == 30
        await svc.replace_events("alice", "after", ["x", "y"])
        assert [e.text for e in (await svc.get_session("alice", "after")).events] == ["x", "y"]
        assert await svc.delete_session("alice", "before")
        clock.advance(61)
        assert await svc.purge_expired() >= 1
    assert await raw.fetchval("SELECT count(*) FROM sessionhub_events") == 0
