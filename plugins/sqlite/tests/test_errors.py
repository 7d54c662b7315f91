"""What a failure of the database is reported as: unusable file, or an answer quoting SQLite.

The records here are written with the sqlite3 module directly, as another
program (or damage) would leave them.
"""

from __future__ import annotations

import sqlite3

import pytest

from sessionhub import BackendError, BackendUnavailable, ConflictError

pytestmark = pytest.mark.asyncio


def _write(path, sql, params=()):
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(sql, params)
    conn.close()


def _rows(path, sql):
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _is_not_server_down_nor_retry(error: BaseException) -> None:
    assert not isinstance(error, (BackendUnavailable, ConflictError))
    assert "retry" not in str(error).replace("retrying will not help", "")
    assert "running" not in str(error)


async def test_an_event_that_is_not_json_is_a_backend_error(db_path, make_service):
    async with make_service() as svc:
        await svc.create_session("alice", "s1")
        await svc.append(("alice", "s1"), ["one", "two"])
        _write(db_path, "UPDATE events SET data = 'not json' WHERE seq = 2")
        with pytest.raises(BackendError, match="cannot read") as caught:
            await svc.get_session("alice", "s1")
        _is_not_server_down_nor_retry(caught.value)
        assert str(db_path) in str(caught.value)
        assert "\n" not in str(caught.value)
        assert (await svc.get_session("alice", "s1", last_n=0)) is not None  # the row is intact


async def test_a_session_row_with_a_value_of_the_wrong_type_is_a_backend_error(
    db_path, make_service
):
    async with make_service() as svc:
        await svc.create_session("alice", "s1")
        _write(db_path, "UPDATE sessions SET created_at = 'yesterday'")
        with pytest.raises(BackendError, match="cannot read") as caught:
            await svc.get_session("alice", "s1")
        _is_not_server_down_nor_retry(caught.value)
        _write(db_path, "UPDATE sessions SET created_at = 0, state = '[1, 2]'")
        with pytest.raises(BackendError):
            await svc.append(
                ("alice", "s1"), {"role": "user", "content": "x", "state_delta": {"k": 1}}
            )


async def test_a_foreign_event_row_in_the_way_is_a_backend_error_quoting_sqlite(
    db_path, make_service
):
    async with make_service() as svc:
        await svc.create_session("alice", "s1")
        await svc.append(("alice", "s1"), "one")
        _write(
            db_path,
            "INSERT INTO events (session_pk, seq, event_id, timestamp, data) "
            "SELECT session_pk, 2, 'foreign', 0, data FROM events WHERE seq = 1",
        )
        with pytest.raises(BackendError, match="UNIQUE constraint failed") as caught:
            await svc.append(("alice", "s1"), "two")
        _is_not_server_down_nor_retry(caught.value)
        assert isinstance(caught.value.__cause__, sqlite3.IntegrityError)
    assert _rows(db_path, "SELECT last_seq, event_count FROM sessions") == [(1, 1)]


async def test_a_missing_table_is_a_backend_error_quoting_sqlite(db_path, make_service):
    async with make_service() as svc:
        await svc.create_session("alice", "s1")
        _write(db_path, "DROP TABLE user_state")
        with pytest.raises(BackendError, match="no such table: user_state") as caught:
            await svc.update_user_state("alice", {"k": 1})
        _is_not_server_down_nor_retry(caught.value)
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
