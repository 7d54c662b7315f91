"""Schema versions: a version-1 file upgrades in place, keeps its data, and only once."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from sessionhub import BackendError
from sessionhub_sqlite._schema import SCHEMA_VERSION
from sessionhub_sqlite.backend import SQLiteBackend

pytestmark = pytest.mark.asyncio

FIXTURES = Path(__file__).parent / "fixtures"


def _v1_database(path: Path) -> Path:
    conn = sqlite3.connect(path)
    try:
        conn.executescript((FIXTURES / "schema_v1.sql").read_text())
    finally:
        conn.close()
    return path


def _query(path: Path, sql: str):
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _schema(path: Path) -> list[tuple[str, str]]:
    return _query(path, "SELECT name, sql FROM sqlite_master ORDER BY name")


async def test_version_1_upgrades_and_keeps_data(db_path, make_service):
    _v1_database(db_path)
    assert "event_count" not in str(_schema(db_path))

    async with make_service() as svc:
        chat = await svc.get_session("alice", "chat")
        assert chat is not None
        assert [(e.seq, e.id, e.text) for e in chat.events] == [
            (2, "e2", "Will it rain?"),
            (3, "e3", "No."),
        ]
        assert (chat.event_count, chat.last_seq) == (2, 3)  # backfilled by migration 2
        assert chat.state == {"topic": "weather", "app:greeting": "hello", "user:name": "Alice"}
        assert chat.metadata == {"source": "v1"}
        children = await svc.list_sessions("alice", parent_id="chat")
        assert [s.id for s in children.items] == ["child"]
        stored = await svc.append(("alice", "chat"), "And tomorrow?")
        assert stored[0].seq == 4

    versions = _query(db_path, "SELECT version FROM schema_version ORDER BY version")
    assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]
    names = {name for name, _ in _schema(db_path)}
    assert {"sessions_by_parent", "sessions_by_expiry", "user_state_by_expiry"} <= names
    assert _query(db_path, "PRAGMA integrity_check") == [("ok",)]


async def test_migrating_twice_is_a_no_op(tmp_path, db_path):
    _v1_database(db_path)
    async with SQLiteBackend(path=db_path):
        pass
    once = _schema(db_path)
    versions = _query(db_path, "SELECT * FROM schema_version")
    async with SQLiteBackend(path=db_path):
        pass
    assert _schema(db_path) == once
    assert _query(db_path, "SELECT * FROM schema_version") == versions


async def test_new_database_gets_the_same_schema_as_a_migrated_one(tmp_path, db_path):
    _v1_database(db_path)
    async with SQLiteBackend(path=db_path):
        pass
    fresh = tmp_path / "fresh.db"
    async with SQLiteBackend(path=fresh):
        pass
    assert _shape(fresh) == _shape(db_path)


def _shape(path: Path) -> dict[str, object]:
    """Every table's columns, indexes and foreign keys, whatever the DDL's spelling."""
    conn = sqlite3.connect(path)
    try:
        shape: dict[str, object] = {}
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        for (table,) in tables:
            indexes = {
                name: (unique, partial, conn.execute(f"PRAGMA index_info('{name}')").fetchall())
                for _, name, unique, _, partial in conn.execute(f"PRAGMA index_list('{table}')")
            }
            shape[table] = (
                conn.execute(f"PRAGMA table_info('{table}')").fetchall(),
                indexes,
                conn.execute(f"PRAGMA foreign_key_list('{table}')").fetchall(),
            )
        return shape
    finally:
        conn.close()


async def test_failed_migration_leaves_version_1_intact(tmp_path, db_path):
    _v1_database(db_path)
    # A view with the name migration 2 needs makes it fail half-way through.
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("CREATE VIEW sessions_by_parent AS SELECT 1")
    conn.close()
    before = _schema(db_path)
    copy = shutil.copy(db_path, tmp_path / "before.db")
    with pytest.raises(BackendError, match="sessions_by_parent"):
        await SQLiteBackend(path=db_path).open()
    assert _schema(db_path) == before
    assert _query(db_path, "SELECT * FROM sessions") == _query(Path(copy), "SELECT * FROM sessions")


async def test_version_2_upgrades_to_list_every_users_sessions(db_path, make_service):
    conn = sqlite3.connect(db_path)
    try:
        conn.executescript((FIXTURES / "schema_v2.sql").read_text())
    finally:
        conn.close()
    assert "sessions_by_app_updated" not in {name for name, _ in _schema(db_path)}

    async with make_service() as svc:
        page = await svc.list_sessions(None)
        assert [(s.user_id, s.id) for s in page.items] == [
            ("bob", "chat"),
            ("alice", "chat"),
            ("bob", "older"),
        ]
        assert page.items[0].state == {"user:name": "Bob"}
        assert (await svc.list_apps()).items == ["default", "other-app", "state-only-app"]

    versions = _query(db_path, "SELECT version FROM schema_version ORDER BY version")
    assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)] and SCHEMA_VERSION == 3
    plan = _query(
        db_path,
        "EXPLAIN QUERY PLAN SELECT session_id FROM sessions WHERE app_name = 'default' "
        "ORDER BY updated_at DESC, user_id DESC, session_id DESC LIMIT 5",
    )
    assert "sessions_by_app_updated" in str(plan) and "TEMP B-TREE" not in str(plan)
