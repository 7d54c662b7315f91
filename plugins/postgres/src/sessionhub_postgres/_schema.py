"""The database schema: table names, versions, and the in-place migrations between them.

Every name lives in the configured schema and starts with ``table_prefix``. A
schema records each migration applied to it in ``<prefix>schema_version``.
Opening a backend applies the missing ones, in order, in one transaction under
an advisory lock, so several processes opening a new database at once migrate
it exactly once, and a failed migration leaves the previous version intact
(PostgreSQL's DDL is transactional). The server-side functions
(:mod:`sessionhub_postgres._functions`) are dropped and created again in the
same transaction: a change to a function is a new schema version. A schema
whose version is newer than :data:`SCHEMA_VERSION` is refused.

Ids are ``text COLLATE "C"``: they compare by code point, as the contract
orders them. Event content is ``text`` (exact JSON, as ``event_to_json``
writes it), and a state or metadata object is a ``jsonb`` object of strings,
each key and each value the JSON text of the real one, so that ``jsonb``
neither rounds numbers (``1e100``) nor refuses the NUL character.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from sessionhub_postgres import _functions

__all__ = ["SCHEMA_VERSION", "MIGRATIONS", "Names", "SchemaTooNew", "stored_version", "migrate"]


@dataclass(frozen=True)
class Names:
    """The quoted, qualified names of one deployment's tables and functions."""

    schema: str
    """The schema (a plain SQL name, checked by the settings)."""
    prefix: str
    """The prefix of every table, index and function name."""

    def __getattr__(self, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        return f'"{self.schema}"."{self.prefix}{name}"'

    def fill(self, sql: str) -> str:
        """``sql`` with ``{sessions}``, ``{append}``... qualified, and ``{p}`` the prefix."""
        return sql.replace("{p}", self.prefix).format_map(_Qualify(self))


class _Qualify(dict[str, str]):
    def __init__(self, names: Names) -> None:
        super().__init__()
        self.names = names

    def __missing__(self, key: str) -> str:
        if key == "session_columns":
            return _functions.SESSION_COLUMNS
        if key == "key":
            return _functions.KEY
        qualified: str = getattr(self.names, key)
        return qualified


_MIGRATION_1 = (
    """
    CREATE TABLE {sessions} (
        pk bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        app_name text COLLATE "C" NOT NULL,
        user_id text COLLATE "C" NOT NULL,
        session_id text COLLATE "C" NOT NULL,
        parent_id text COLLATE "C",
        root_id text COLLATE "C" NOT NULL,
        depth integer NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        expires_at timestamptz,
        state jsonb NOT NULL DEFAULT '{{}}',
        metadata jsonb NOT NULL DEFAULT '{{}}',
        event_count bigint NOT NULL DEFAULT 0,
        last_seq bigint NOT NULL DEFAULT 0,
        UNIQUE (app_name, user_id, session_id)
    )
    """,
    'CREATE INDEX "{p}sessions_by_user" ON {sessions} (app_name, user_id, updated_at, session_id)',
    """
    CREATE TABLE {events} (
        session_pk bigint NOT NULL REFERENCES {sessions} (pk) ON DELETE CASCADE,
        seq bigint NOT NULL,
        event_id text COLLATE "C" NOT NULL,
        ts timestamptz NOT NULL,
        data text NOT NULL,
        PRIMARY KEY (session_pk, seq),
        UNIQUE (session_pk, event_id)
    )
    """,
    """
    CREATE TABLE {app_state} (
        app_name text COLLATE "C" PRIMARY KEY,
        state jsonb NOT NULL,
        expires_at timestamptz
    )
    """,
    """
    CREATE TABLE {user_state} (
        app_name text COLLATE "C" NOT NULL,
        user_id text COLLATE "C" NOT NULL,
        state jsonb NOT NULL,
        expires_at timestamptz,
        PRIMARY KEY (app_name, user_id)
    )
    """,
)

# Version 2 adds the indexes behind child listing, listing an app's sessions across
# users, and the expiry purge, so that none of them scans a table.
_MIGRATION_2 = (
    'CREATE INDEX "{p}sessions_by_parent" ON {sessions} '
    "(app_name, user_id, parent_id, updated_at, session_id) WHERE parent_id IS NOT NULL",
    'CREATE INDEX "{p}sessions_by_app" ON {sessions} (app_name, updated_at, user_id, session_id)',
    'CREATE INDEX "{p}sessions_by_expiry" ON {sessions} (expires_at) WHERE expires_at IS NOT NULL',
    'CREATE INDEX "{p}app_state_by_expiry" ON {app_state} (expires_at) '
    "WHERE expires_at IS NOT NULL",
    'CREATE INDEX "{p}user_state_by_expiry" ON {user_state} (expires_at) '
    "WHERE expires_at IS NOT NULL",
)

# Version 3 changes only a function: append updates the session row first (its lock
# allocates the seqs), inserts a batch in one statement, and writes nothing of a batch
# reusing a stored id until the backend has compared the stored events.
_MIGRATION_3: tuple[str, ...] = ()

MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (1, _MIGRATION_1),
    (2, _MIGRATION_2),
    (3, _MIGRATION_3),
)
"""Every migration, in order: the version it produces and its statements."""

SCHEMA_VERSION = MIGRATIONS[-1][0]
"""The schema version this code reads and writes."""


class SchemaTooNew(Exception):
    """The schema was written by a newer version of this backend."""

    def __init__(self, found: int) -> None:
        self.found = found
        super().__init__(found)


async def stored_version(conn: asyncpg.Connection, names: Names) -> int:
    """Return the schema version recorded in the database (0 for a new deployment)."""
    table = names.schema_version
    if await conn.fetchval("SELECT to_regclass($1)::text", table) is None:
        return 0
    found = await conn.fetchval(f"SELECT max(version) FROM {table}")
    return int(found or 0)


async def migrate(conn: asyncpg.Connection, names: Names) -> int:
    """Bring the deployment to :data:`SCHEMA_VERSION`; return the version it had.

    Idempotent: a deployment already at the current version is only read.
    Raises :class:`SchemaTooNew` for a schema newer than this code.
    """
    found = await stored_version(conn, names)
    if found > SCHEMA_VERSION:
        raise SchemaTooNew(found)
    if found == SCHEMA_VERSION:
        return found
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1))",
            f"sessionhub:{names.schema}.{names.prefix}",
        )
        # Re-read under the lock: another process may have migrated meanwhile.
        found = await stored_version(conn, names)
        if found > SCHEMA_VERSION:
            raise SchemaTooNew(found)
        if found == SCHEMA_VERSION:
            return found
        if not await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", names.schema):
            await conn.execute(f'CREATE SCHEMA "{names.schema}"')
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {names.schema_version} "
            "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for version, statements in MIGRATIONS:
            if version <= found:
                continue
            for statement in statements:
                await conn.execute(names.fill(statement))
            await conn.execute(f"INSERT INTO {names.schema_version} (version) VALUES ($1)", version)
        await _install_functions(conn, names)
    return found


async def _install_functions(conn: asyncpg.Connection, names: Names) -> None:
    """Drop this deployment's functions (whatever their signatures) and create the current ones."""
    stale = await conn.fetch(
        "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n "
        "ON n.oid = p.pronamespace WHERE n.nspname = $1 AND p.proname = ANY($2)",
        names.schema,
        [names.prefix + name for name in _functions.NAMES],
    )
    for (signature,) in stale:
        await conn.execute(f"DROP FUNCTION {signature}")
    for source in _functions.SOURCES:
        await conn.execute(names.fill(source))
