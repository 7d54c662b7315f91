"""What the SQLite backend does on disk: pragmas, files, errors, indexes, reclaiming."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from sessionhub import BackendUnavailable, ConfigError
from sessionhub.testing import FakeClock
from sessionhub_sqlite.backend import SQLiteBackend, SQLiteSettings

pytestmark = pytest.mark.asyncio


async def _pragma(backend: SQLiteBackend, name: str):
    assert backend._connection is not None
    async with backend._connection.execute(f"PRAGMA {name}") as cursor:
        row = await cursor.fetchone()
    assert row is not None
    return row[0]


def _rows(path, sql, params=()):
    with sqlite3.connect(path) as conn:
        rows = conn.execute(sql, params).fetchall()
    conn.close()
    return rows


async def test_connection_pragmas(db_path):
    async with SQLiteBackend(path=db_path) as backend:
        assert await _pragma(backend, "journal_mode") == "wal"
        assert await _pragma(backend, "synchronous") == 1  # NORMAL
        assert await _pragma(backend, "foreign_keys") == 1
        assert await _pragma(backend, "busy_timeout") == 30_000


async def test_full_synchronous(db_path):
    settings = SQLiteSettings(path=db_path, synchronous="FULL", busy_timeout=1.5)
    async with SQLiteBackend(settings) as backend:
        assert await _pragma(backend, "synchronous") == 2
        assert await _pragma(backend, "busy_timeout") == 1500


async def test_data_survives_reopening(db_path, make_service):
    async with make_service() as svc:
        await svc.create_session("alice", "s1", state={"k": 1, "user:u": 2, "app:a": 3})
        await svc.append(("alice", "s1"), ["one", "two"])
    async with make_service() as svc:
        got = await svc.get_session("alice", "s1")
    assert got is not None
    assert [e.text for e in got.events] == ["one", "two"]
    assert got.state == {"k": 1, "user:u": 2, "app:a": 3}


async def test_open_close_are_idempotent_and_reopenable(db_path):
    backend = SQLiteBackend(path=db_path)
    await backend.open()
    await backend.open()
    await backend.ping()
    await backend.close()
    await backend.close()
    with pytest.raises(BackendUnavailable, match="not open"):
        await backend.ping()
    async with backend:
        await backend.ping()


async def test_in_memory_database_works_and_is_private(tmp_path, make_service):
    before = set(tmp_path.iterdir())
    async with make_service(SQLiteBackend(SQLiteSettings(url="sqlite://:memory:"))) as svc:
        await svc.create_session("alice", "s1")
        await svc.append(("alice", "s1"), "hi")
        got = await svc.get_session("alice", "s1")
        assert got is not None
        assert got.events[0].text == "hi"
    async with make_service(SQLiteBackend(path=":memory:")) as svc:
        assert await svc.get_session("alice", "s1") is None
    assert set(tmp_path.iterdir()) == before


async def test_missing_directory_is_backend_unavailable(tmp_path):
    backend = SQLiteBackend(path=tmp_path / "no" / "such" / "dir" / "x.db")
    with pytest.raises(BackendUnavailable, match="directory") as caught:
        await backend.open()
    assert isinstance(caught.value.__cause__, sqlite3.Error)
    assert not (tmp_path / "no").exists()


async def test_directory_path_is_backend_unavailable(tmp_path):
    with pytest.raises(BackendUnavailable) as caught:
        await SQLiteBackend(path=tmp_path).open()
    assert isinstance(caught.value.__cause__, sqlite3.Error)


async def test_file_that_is_not_a_database_is_backend_unavailable(db_path):
    db_path.write_bytes(b"this is not a SQLite database, just some text" * 100)
    with pytest.raises(BackendUnavailable, match="not a database") as caught:
        await SQLiteBackend(path=db_path).open()
    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)


async def test_a_missing_file_is_refused_when_create_if_missing_is_off(tmp_path):
    typo = tmp_path / "typo.db"
    backend = SQLiteBackend(SQLiteSettings(path=typo, create_if_missing=False))
    with pytest.raises(BackendUnavailable, match="does not exist") as caught:
        await backend.open()
    assert str(typo) in str(caught.value) and "create_if_missing" in str(caught.value)
    assert isinstance(caught.value.__cause__, sqlite3.Error)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["sessions.db", "with space?and#hash%20.db"])
async def test_an_existing_file_opens_when_create_if_missing_is_off(tmp_path, make_service, name):
    path = tmp_path / name
    async with make_service(SQLiteBackend(path=path)) as svc:
        await svc.create_session("alice", "s1")
    settings = SQLiteSettings(path=path, create_if_missing=False)
    async with make_service(SQLiteBackend(settings)) as svc:
        assert await svc.get_session("alice", "s1") is not None
        await svc.append(("alice", "s1"), "writes work too")
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".db") == [name]


async def test_create_if_missing_does_not_apply_to_memory():
    async with SQLiteBackend(SQLiteSettings(path=":memory:", create_if_missing=False)) as backend:
        await backend.ping()


async def test_operations_open_on_demand(db_path, make_service):
    backend = SQLiteBackend(path=db_path)
    try:
        assert await backend.purge_expired(datetime.now(timezone.utc)) == 0
    finally:
        await backend.close()


HOSTILE = [
    "'; DROP TABLE sessions; --",
    "../../etc/passwd",
    "/tmp/evil.db",
    'x" OR 1=1 --',
    "%s %d {0} ?",
    "sessions.db-wal",
    "ünïcödé ☃",
]


async def test_hostile_ids_are_data(tmp_path, db_path, make_service):
    async with make_service() as svc:
        await svc.create_session("alice", "plain")
        files = sorted(p.name for p in tmp_path.iterdir())
        for text in HOSTILE:
            await svc.create_session(text, text, state={text: text, f"user:{text}": text})
            await svc.append(
                (text, text), {"id": text, "role": text, "content": text, "state_delta": {text: 1}}
            )
            await svc.update_user_state(text, {text: text})
        for text in HOSTILE:
            got = await svc.get_session(text, text)
            assert got is not None
            assert (got.id, got.user_id) == (text, text)
            assert got.events[0].id == text
            assert got.events[0].text == text
            assert got.state[text] == 1
            assert await svc.get_user_state(text) == {text: text}
            page = await svc.list_sessions(text)
            assert [s.id for s in page.items] == [text]
        assert await svc.get_session("alice", "plain") is not None
        assert sorted(p.name for p in tmp_path.iterdir()) == files
    tables = {name for (name,) in _rows(db_path, "SELECT name FROM sqlite_master")}
    assert {"sessions", "events", "app_state", "user_state", "schema_version"} <= tables
    assert not (tmp_path.parent / "evil.db").exists()


async def test_delete_cascades_to_event_rows(db_path, make_service):
    async with make_service() as svc:
        await svc.create_session("alice", "s1")
        await svc.create_session("alice", "s2")
        await svc.append(("alice", "s1"), ["a", "b", "c"])
        await svc.append(("alice", "s2"), ["d"])
        assert await svc.delete_session("alice", "s1")
        assert _rows(db_path, "SELECT count(*) FROM events") == [(1,)]


async def test_event_limit_keeps_newest_rows_only(db_path, make_service):
    async with make_service(event_limit=3) as svc:
        await svc.create_session("alice", "s1")
        for n in range(10):
            await svc.append(("alice", "s1"), f"m{n}")
        got = await svc.get_session("alice", "s1")
    assert got is not None
    assert [e.seq for e in got.events] == [8, 9, 10]
    assert (got.event_count, got.last_seq) == (3, 10)
    assert _rows(db_path, "SELECT seq FROM events ORDER BY seq") == [(8,), (9,), (10,)]


async def test_purge_reclaims_rows_and_events(db_path, make_service):
    clock = FakeClock()
    async with make_service(clock=clock, session_ttl=60, user_state_ttl=60) as svc:
        await svc.create_session("alice", "old", state={"user:k": 1})
        await svc.append(("alice", "old"), ["a", "b"])
        clock.advance(61)
        await svc.create_session("alice", "new")
        assert await svc.get_session("alice", "old") is None
        assert _rows(db_path, "SELECT count(*) FROM sessions") == [(2,)]
        assert await svc.purge_expired() == 2  # the session and the user state
        assert await svc.purge_expired() == 0
    assert _rows(db_path, "SELECT session_id FROM sessions") == [("new",)]
    assert _rows(db_path, "SELECT count(*) FROM events") == [(0,)]
    assert _rows(db_path, "SELECT count(*) FROM user_state") == [(0,)]


async def test_times_are_integer_microseconds_utc(db_path, make_service):
    moment = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
    async with make_service(clock=lambda: moment, session_ttl=timedelta(hours=1)) as svc:
        await svc.create_session("alice", "s1")
        got = await svc.get_session("alice", "s1")
    assert got is not None
    assert got.created_at == moment
    assert got.expires_at == moment + timedelta(hours=1)
    micros = int((moment - datetime(1970, 1, 1, tzinfo=timezone.utc)).total_seconds()) * 10**6
    micros += moment.microsecond
    assert _rows(db_path, "SELECT created_at, typeof(created_at) FROM sessions") == [
        (micros, "integer")
    ]


def _plan(conn, sql, params):
    return " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params))


async def test_reads_use_indexes_and_never_sort(db_path, make_service):
    async with make_service() as svc:
        await svc.create_session("alice", "s1")
    conn = sqlite3.connect(db_path)
    try:
        last_n = _plan(
            conn,
            "SELECT data FROM events WHERE session_pk = ? AND seq > ? ORDER BY seq DESC LIMIT ?",
            (1, 0, 20),
        )
        listing = _plan(
            conn,
            "SELECT session_id FROM sessions WHERE app_name = ? AND user_id = ? "
            "AND (expires_at IS NULL OR expires_at > ?) AND (updated_at, session_id) < (?, ?) "
            "ORDER BY updated_at DESC, session_id DESC LIMIT ?",
            ("a", "u", 0, 0, "", 10),
        )
        children = _plan(
            conn,
            "SELECT session_id FROM sessions WHERE app_name = ? AND user_id = ? "
            "AND (expires_at IS NULL OR expires_at > ?) AND parent_id = ? "
            "ORDER BY updated_at DESC, session_id DESC LIMIT ?",
            ("a", "u", 0, "p", 10),
        )
        by_id = _plan(
            conn, "SELECT data FROM events WHERE session_pk = ? AND event_id = ?", (1, "e")
        )
    finally:
        conn.close()
    assert "TEMP B-TREE" not in last_n and "sqlite_autoindex_events_1" in last_n
    assert "TEMP B-TREE" not in listing and "sessions_by_updated" in listing
    assert "TEMP B-TREE" not in children and "sessions_by_parent" in children
    assert "sqlite_autoindex_events_2" in by_id


async def test_newer_schema_is_refused(db_path):
    async with SQLiteBackend(path=db_path):
        pass
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (99, 'future')")
    conn.close()
    with pytest.raises(ConfigError, match="schema version 99"):
        await SQLiteBackend(path=db_path).open()


async def test_purge_works_in_batches(db_path, make_service):
    clock = FakeClock()
    async with make_service(clock=clock, session_ttl=60) as svc:
        for n in range(250):
            await svc.create_session("alice", f"s{n}")
        await svc.append(("alice", "s7"), ["a", "b"])
        clock.advance(61)
        await svc.create_session("alice", "live")
        assert await svc.purge_expired() == 250
    assert _rows(db_path, "SELECT session_id FROM sessions") == [("live",)]
    assert _rows(db_path, "SELECT count(*) FROM events") == [(0,)]


async def test_writer_waits_for_another_connections_write_lock(db_path, make_service):
    """The append's one BEGIN IMMEDIATE waits for the lock (busy_timeout): no failure, no retry."""
    async with make_service() as svc:
        await svc.create_session("alice", "s1")
        loop = asyncio.get_running_loop()
        begun = asyncio.Event()
        begins: list[str] = []

        def trace(statement: str) -> None:  # on the backend's thread, as a statement starts
            if statement == "BEGIN IMMEDIATE":
                begins.append(statement)
                loop.call_soon_threadsafe(begun.set)

        assert svc.backend._connection is not None
        await svc.backend._connection.set_trace_callback(trace)
        holder = sqlite3.connect(db_path, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            holder.execute('UPDATE sessions SET metadata = \'{"by": "holder"}\'')
            pending = asyncio.ensure_future(svc.append(("alice", "s1"), "waited"))
            await begun.wait()  # the append asked for the lock while the holder has it
            holder.execute("COMMIT")
            stored = await pending
        finally:
            holder.close()
        assert stored[0].seq == 1
        assert begins == ["BEGIN IMMEDIATE"]
        got = await svc.get_session("alice", "s1")
        assert got is not None and got.metadata == {"by": "holder"}


async def test_write_lock_held_past_busy_timeout_is_backend_unavailable(db_path, make_service):
    backend = SQLiteBackend(SQLiteSettings(path=db_path, busy_timeout=0.1))
    async with make_service(backend) as svc:
        await svc.create_session("alice", "s1")
        holder = sqlite3.connect(db_path, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            with pytest.raises(BackendUnavailable, match="locked") as caught:
                await svc.append(("alice", "s1"), "never")
            assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
            holder.execute("ROLLBACK")
        finally:
            holder.close()
        got = await svc.get_session("alice", "s1")
        assert got is not None
        assert got.last_seq == 0
        assert (await svc.append(("alice", "s1"), "now"))[0].seq == 1
