"""The database schema: its versions, and the in-place migrations between them.

A database records every migration applied to it in ``schema_version``. Opening
a database applies the missing ones, in order, inside one ``BEGIN IMMEDIATE``
transaction, so several processes opening the same new file at once migrate it
exactly once, and an interrupted migration leaves the previous version intact.
A database whose version is newer than :data:`SCHEMA_VERSION` is refused.

Times are integers: microseconds since the Unix epoch, UTC. They sort and
compare as the datetimes they stand for.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

__all__ = ["SCHEMA_VERSION", "MIGRATIONS", "SchemaTooNew", "stored_version", "migrate"]

_MIGRATION_1 = (
    """
    CREATE TABLE sessions (
        pk INTEGER PRIMARY KEY,
        app_name TEXT NOT NULL,
        user_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        parent_id TEXT,
        root_id TEXT NOT NULL,
        depth INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        expires_at INTEGER,
        state TEXT NOT NULL DEFAULT '{}',
        metadata TEXT NOT NULL DEFAULT '{}',
        last_seq INTEGER NOT NULL DEFAULT 0,
        UNIQUE (app_name, user_id, session_id)
    )
    """,
    """
    CREATE INDEX sessions_by_updated
        ON sessions (app_name, user_id, updated_at DESC, session_id DESC)
    """,
    """
    CREATE TABLE events (
        session_pk INTEGER NOT NULL REFERENCES sessions (pk) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        timestamp INTEGER NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (session_pk, seq),
        UNIQUE (session_pk, event_id)
    )
    """,
    """
    CREATE TABLE app_state (
        app_name TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        expires_at INTEGER
    )
    """,
    """
    CREATE TABLE user_state (
        app_name TEXT NOT NULL,
        user_id TEXT NOT NULL,
        state TEXT NOT NULL,
        expires_at INTEGER,
        PRIMARY KEY (app_name, user_id)
    )
    """,
)

# Version 2 keeps the event count on the session row, so reading a session no
# longer counts its events (a cost that grew with the history), and adds the
# indexes behind child listing and the expiry sweep.
_MIGRATION_2 = (
    "ALTER TABLE sessions ADD COLUMN event_count INTEGER NOT NULL DEFAULT 0",
    """
    UPDATE sessions
    SET event_count = (SELECT count(*) FROM events WHERE events.session_pk = sessions.pk)
    """,
    """
    CREATE INDEX sessions_by_parent
        ON sessions (app_name, user_id, parent_id, updated_at DESC, session_id DESC)
        WHERE parent_id IS NOT NULL
    """,
    "CREATE INDEX sessions_by_expiry ON sessions (expires_at) WHERE expires_at IS NOT NULL",
    "CREATE INDEX app_state_by_expiry ON app_state (expires_at) WHERE expires_at IS NOT NULL",
    "CREATE INDEX user_state_by_expiry ON user_state (expires_at) WHERE expires_at IS NOT NULL",
)

# Version 3 adds the index behind listing every user's sessions of an app.
_MIGRATION_3 = (
    """
    CREATE INDEX sessions_by_app_updated
        ON sessions (app_name, updated_at DESC, user_id DESC, session_id DESC)
    """,
)

MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (1, _MIGRATION_1),
    (2, _MIGRATION_2),
    (3, _MIGRATION_3),
)
"""Every migration, in order: the version it produces and its statements."""

SCHEMA_VERSION = MIGRATIONS[-1][0]
"""The schema version this code reads and writes."""


class SchemaTooNew(Exception):
    """The database was written by a newer version of this backend."""

    def __init__(self, found: int) -> None:
        self.found = found
        super().__init__(found)


def stored_version(conn: sqlite3.Connection) -> int:
    """Return the schema version recorded in the database (0 for a new database)."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if exists is None:
        return 0
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database to :data:`SCHEMA_VERSION`; return the version it had.

    Idempotent: a database already at the current version is only read.
    Raises :class:`SchemaTooNew` for a database newer than this code.
    """
    found = stored_version(conn)
    if found == SCHEMA_VERSION:
        return found
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Re-read under the write lock: another process may have migrated meanwhile.
        found = stored_version(conn)
        if found > SCHEMA_VERSION:
            raise SchemaTooNew(found)
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version "
            "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        applied_at = datetime.now(timezone.utc).isoformat()
        for version, statements in MIGRATIONS:
            if version <= found:
                continue
            for statement in statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                (version, applied_at),
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return found
