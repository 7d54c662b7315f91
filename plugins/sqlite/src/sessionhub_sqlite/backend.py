"""The SQLite backend: one database file, WAL mode, safe across processes sharing it.

Threading: an aiosqlite connection owns one worker thread and runs every call
on it, one call at a time. Each primitive here is a single synchronous
function (see :mod:`sessionhub_sqlite._transactions`) handed to that thread
whole, ``BEGIN`` to ``COMMIT``, in one hand-over instead of one per statement
(:mod:`sessionhub_sqlite._driver` says why, with the numbers). Errors are
mapped by :mod:`sessionhub_sqlite._errors`.

Durability: WAL journal with ``synchronous=NORMAL`` by default. A committed
append survives the process being killed at any moment; after a power loss or
an OS crash the last few commits may be missing, but the database is never
corrupt. ``synchronous="FULL"`` syncs the WAL on every commit and survives power
loss too, at the cost of one fsync per write.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar
from urllib.parse import unquote, urlsplit

import aiosqlite
from pydantic import Field, model_validator

from sessionhub import (
    AppendRequest,
    AppendResult,
    Backend,
    BackendSettings,
    BackendUnavailable,
    Capabilities,
    ConfigError,
    Event,
    EventWindow,
    Expiry,
    ListCursor,
    ListedPage,
    ListRequest,
    ReplaceRequest,
    Session,
    SessionKey,
    StateDeltas,
    StateKey,
    StoredSession,
)
from sessionhub.backend_tools import check_restorable
from sessionhub_sqlite import _listings, _transactions
from sessionhub_sqlite._driver import Connection, run_on_thread, wait_stopped
from sessionhub_sqlite._errors import UnreadableRecord, is_busy, storage_error, unavailable
from sessionhub_sqlite._schema import SCHEMA_VERSION, SchemaTooNew, migrate

__all__ = ["SQLiteBackend", "SQLiteSettings", "DEFAULT_PATH", "MEMORY", "database_path"]

logger = logging.getLogger("sessionhub.sqlite")

T = TypeVar("T")

DEFAULT_PATH = "sessionhub.db"
"""The database file used when neither ``url`` nor ``path`` is set (in the working directory)."""

MEMORY = ":memory:"
"""The ``path`` of a private in-memory database (``sqlite://:memory:``)."""

_SCHEMES = ("sqlite", "sqlite+aiosqlite")
_BUSY_RETRIES = 5
_PURGE_BATCH = 100
_MINIMUM_SQLITE = (3, 24, 0)  # upsert (INSERT ... ON CONFLICT)


class SQLiteSettings(BackendSettings):
    """Options of the SQLite backend (``[sqlite]`` in the config, ``SESSIONHUB_SQLITE__…``).

    Give the database as ``url`` or as ``path``, not both; with neither, the file
    ``sessionhub.db`` in the working directory is used. URLs:
    ``sqlite:///relative.db``, ``sqlite:////absolute/path.db``,
    ``sqlite+aiosqlite:///…`` (the same), ``sqlite://:memory:`` or
    ``sqlite:///:memory:`` (a private in-memory database, lost on close).
    The journal is always WAL.
    """

    path: Path | None = Field(
        default=None, description="The database file (alternative to url); ':memory:' for RAM."
    )
    synchronous: Literal["NORMAL", "FULL"] = Field(
        default="NORMAL",
        description=(
            "NORMAL: a killed process loses nothing it committed; a power loss may lose the "
            "last commits but never corrupts the file. FULL: also survives power loss, "
            "at one fsync per write."
        ),
    )
    busy_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a write waits for another writer (another process) to finish.",
    )
    create_if_missing: bool = Field(
        default=True,
        description=(
            "Create the database file when it does not exist. With false a missing file is "
            "an error (BackendUnavailable), so a mistyped path cannot become a new empty "
            "database; the CLI's reading commands set it to false."
        ),
    )

    def effective_url(self) -> str:
        """The database as a URL: ``url``, else ``path``, else ``sqlite:///sessionhub.db``."""
        if self.url is not None:
            return self.url.get_secret_value()
        path = str(self.path) if self.path is not None else DEFAULT_PATH
        return "sqlite://:memory:" if path == MEMORY else f"sqlite:///{path}"

    @model_validator(mode="after")
    def _one_location(self) -> SQLiteSettings:
        if self.url is not None and self.path is not None:
            raise ValueError(
                "set either url or path, not both (url = 'sqlite:///file.db' is path = 'file.db')"
            )
        if self.url is not None:
            try:
                database_path(self.url.get_secret_value())
            except ConfigError as exc:
                raise ValueError(str(exc)) from exc
        return self


def database_path(url: str) -> str:
    """Return the file path (or ``:memory:``) named by a ``sqlite://`` URL.

    Raises :class:`~sessionhub.ConfigError` for another scheme, a host, or a query.
    """
    parts = urlsplit(url)
    example = "Write sqlite:///relative.db, sqlite:////absolute/path.db or sqlite://:memory:."
    if parts.scheme.lower() not in _SCHEMES:
        raise ConfigError(
            f"The SQLite backend takes sqlite:// URLs, not {parts.scheme!r}:// ones. {example}"
        )
    if parts.query or parts.fragment:
        raise ConfigError(
            "The SQLite URL must not have a query or fragment; set synchronous and "
            f"busy_timeout in the [sqlite] settings table instead. {example}"
        )
    if parts.netloc == MEMORY:
        return MEMORY
    if parts.netloc:
        raise ConfigError(
            f"The SQLite URL names a host ({parts.netloc.rpartition('@')[2]!r}), but SQLite "
            f"opens a local file. {example}"
        )
    path = unquote(parts.path)
    if path.startswith("/"):
        path = path[1:]  # sqlite:///x.db is x.db; sqlite:////x.db is /x.db
    return path or DEFAULT_PATH


def _prepare(synchronous: str, busy_timeout_ms: int) -> Callable[[sqlite3.Connection], int]:
    def prepare(conn: sqlite3.Connection) -> int:
        conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms:d}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode not in ("wal", "memory"):
            logger.warning("SQLite kept journal_mode=%s (WAL is not available on this file)", mode)
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute("PRAGMA foreign_keys = ON")
        return migrate(conn)

    return prepare


class SQLiteBackend(Backend):
    """Sessions, events and state in one SQLite database file, on aiosqlite.

    ``SQLiteBackend()`` opens ``sessionhub.db`` in the working directory;
    ``SQLiteBackend(SQLiteSettings(url="sqlite:////var/lib/app/sessions.db"))`` or
    ``SQLiteBackend(path=...)`` chooses another file (``path`` wins over the
    settings' location). Several backends and processes may share one file.
    """

    name: ClassVar[str] = "sqlite"
    capabilities: ClassVar[Capabilities] = Capabilities(
        persistent=True,
        shared_store=True,
        multi_process=True,
        compare_and_set=True,
        atomic_conflicts=True,
    )

    def __init__(
        self, settings: SQLiteSettings | None = None, *, path: str | os.PathLike[str] | None = None
    ) -> None:
        self.settings: SQLiteSettings = settings if settings is not None else SQLiteSettings()
        """The validated settings."""
        if path is not None:
            location = os.fspath(path)
        elif self.settings.path is not None:
            location = os.fspath(self.settings.path)
        elif self.settings.url is not None:
            location = database_path(self.settings.url.get_secret_value())
        else:
            location = DEFAULT_PATH
        self.path: str = location
        """The database file (or ``:memory:``): the only path this backend ever opens."""
        self._connection: aiosqlite.Connection | None = None
        self._open_lock: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self.path!r})"

    # --- lifecycle ------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, set the pragmas (WAL, synchronous, busy_timeout, foreign keys), migrate."""
        if self._connection is not None:
            return
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if self._connection is None:
                self._connection = await self._connect()

    async def _connect(self) -> aiosqlite.Connection:
        settings = self.settings
        if sqlite3.sqlite_version_info < _MINIMUM_SQLITE:
            raise ConfigError(
                f"The SQLite backend needs SQLite {'.'.join(map(str, _MINIMUM_SQLITE))} or "
                f"newer; this Python links SQLite {sqlite3.sqlite_version}. Use a Python "
                "built with a newer SQLite."
            )
        database, must_exist = self._database()
        connection = Connection(database, settings.busy_timeout, uri=must_exist)
        try:
            await connection
        except sqlite3.Error as exc:
            await wait_stopped(connection, settings.busy_timeout)
            missing = self._missing() if must_exist else None
            if missing is not None:
                raise missing from exc
            raise unavailable(self.path, "cannot be opened", exc, settings.busy_timeout) from exc
        try:
            prepare = _prepare(settings.synchronous, round(settings.busy_timeout * 1000))
            await self._retrying(connection, prepare)
        except SchemaTooNew as exc:
            await connection.close()
            raise ConfigError(
                f"The SQLite database {self.path!r} has schema version {exc.found}, but this "
                f"sessionhub-sqlite only knows versions up to {SCHEMA_VERSION}: it was written "
                "by a newer release. Upgrade: pip install -U sessionhub-sqlite."
            ) from exc
        except BaseException:
            await connection.close()
            raise
        return connection

    async def close(self) -> None:
        """Close the connection and stop its thread. Idempotent."""
        connection, self._connection = self._connection, None
        self._open_lock = None  # a lock belongs to one event loop; the next open may run on another
        if connection is not None:
            await connection.close()

    async def ping(self) -> None:
        """Run ``SELECT 1``; raise :class:`~sessionhub.BackendUnavailable` if it fails."""
        if self._connection is None:
            raise BackendUnavailable(
                f"The SQLite backend on {self.path!r} is not open. Call open() (or start the "
                "service) first."
            )
        await self._retrying(self._connection, lambda conn: conn.execute("SELECT 1").fetchone())

    # --- running transactions ---------------------------------------------------------

    def _database(self) -> tuple[str, bool]:
        """What to connect to, and whether it is a URI that opens an existing file only."""
        if self.settings.create_if_missing or self.path == MEMORY:
            return self.path, False
        # mode=rw never creates the file, so a mistyped path cannot become a new database.
        return Path(self.path).absolute().as_uri() + "?mode=rw", True

    def _missing(self) -> BackendUnavailable | None:
        """The error for a database file that does not exist (``None`` if it exists)."""
        if os.path.exists(self.path):
            return None
        return BackendUnavailable(
            f"The SQLite database {os.path.abspath(self.path)!r} does not exist. Check the "
            "path (sqlite:///name.db is relative to the working directory, "
            "sqlite:////dir/name.db is absolute). Commands that only read never create a "
            "database: the application's first write, sessionhub import or sessionhub demo "
            "does (or set [sqlite] create_if_missing = true)."
        )

    async def _retrying(
        self, connection: aiosqlite.Connection, work: Callable[[sqlite3.Connection], T]
    ) -> T:
        # BEGIN IMMEDIATE waits busy_timeout for the write lock; SQLITE_BUSY can
        # still surface without waiting (WAL recovery, a stale read snapshot), so
        # retry those a few times within the same time budget.
        began = time.monotonic()
        attempt = 0
        while True:
            try:
                return await run_on_thread(connection, work)
            except (sqlite3.Error, UnreadableRecord) as exc:
                waited = time.monotonic() - began
                if (
                    isinstance(exc, sqlite3.Error)
                    and is_busy(exc)
                    and attempt < _BUSY_RETRIES
                    and waited < self.settings.busy_timeout
                ):
                    attempt += 1
                    await asyncio.sleep(0.005 * 2**attempt)
                    continue
                raise storage_error(self.path, exc, self.settings.busy_timeout) from exc

    async def _transaction(self, body: Callable[..., T], *args: Any, write: bool) -> T:
        if self._connection is None:
            await self.open()
        connection = self._connection
        if connection is None:
            raise BackendUnavailable(f"The SQLite backend on {self.path!r} was closed.")

        def work(conn: sqlite3.Connection) -> T:
            return _transactions.run(conn, body, args, write=write)

        return await self._retrying(connection, work)

    # --- the primitives -----------------------------------------------------------------

    async def create_session(
        self, session: Session, deltas: StateDeltas, expiry: Expiry
    ) -> StoredSession:
        """Insert the session (replacing an expired one) and apply its app/user deltas."""
        return await self._transaction(
            _transactions.create_session, session, deltas, expiry, write=True
        )

    async def get_session(
        self, key: SessionKey, window: EventWindow, expiry: Expiry, *, refresh: bool
    ) -> StoredSession | None:
        """Read the session and the events of ``window`` (only those rows) in one snapshot."""
        return await self._transaction(
            _transactions.get_session, key, window, expiry, refresh, write=refresh
        )

    async def list_sessions(
        self,
        app_name: str,
        user_id: str,
        *,
        limit: int,
        after: ListCursor | None,
        parent_id: str | None,
        now: datetime,
    ) -> list[Session]:
        """Read one keyset page of the user's live sessions, newest first."""
        return await self._transaction(
            _listings.list_sessions,
            app_name,
            user_id,
            limit,
            after,
            parent_id,
            now,
            write=False,
        )

    async def append(self, request: AppendRequest) -> AppendResult:
        """Store events, their deltas, the trim and the new times in one short transaction."""
        return await self._transaction(_transactions.append, request, write=True)

    async def pop_event(self, key: SessionKey, expiry: Expiry) -> Event | None:
        """Delete and return the newest event in one short transaction; ``last_seq`` stays."""
        return await self._transaction(_transactions.pop_event, key, expiry, write=True)

    async def replace_events(self, request: ReplaceRequest) -> AppendResult:
        """Check the expected ``last_seq``, swap every event and the times in one transaction."""
        return await self._transaction(_transactions.replace_events, request, write=True)

    async def update_session(
        self,
        key: SessionKey,
        deltas: StateDeltas,
        metadata: Mapping[str, Any],
        expiry: Expiry,
    ) -> StoredSession:
        """Apply state and metadata deltas without an event."""
        return await self._transaction(
            _transactions.update_session, key, deltas, metadata, expiry, write=True
        )

    async def delete_session(self, key: SessionKey, now: datetime) -> bool:
        """Delete the session; its events are deleted with it."""
        return await self._transaction(_transactions.delete_session, key, now, write=True)

    async def list_users(self, app_name: str, *, limit: int, after: str | None) -> list[str]:
        """One page of the app's user ids, ascending."""
        return await self._transaction(_listings.list_users, app_name, limit, after, write=False)

    async def list_app_sessions(
        self, app_name: str, *, limit: int, after: ListCursor | None, now: datetime
    ) -> list[Session]:
        """One keyset page of every user's live sessions, along an index."""
        return await self._transaction(
            _listings.list_app_sessions, app_name, limit, after, now, write=False
        )

    async def list_page(self, request: ListRequest) -> ListedPage:
        """A listing page with the app and user states, in one short read transaction."""
        return await self._transaction(_listings.list_page, request, write=False)

    async def list_apps(self, *, limit: int, after: str | None) -> list[str]:
        """One page of the store's app names, ascending (a loose scan of indexes)."""
        return await self._transaction(_listings.list_apps, limit, after, write=False)

    async def restore_session(self, session: Session, events: list[Event], expiry: Expiry) -> None:
        """Replace the session with exactly this content, in one transaction."""
        check_restorable(session, events)
        await self._transaction(_transactions.restore_session, session, events, write=True)

    async def read_state(self, key: StateKey, expiry: Expiry, *, refresh: bool) -> dict[str, Any]:
        """Read the app or user state; slide its expiry with ``refresh``."""
        return await self._transaction(
            _transactions.read_state, key, expiry, refresh, write=refresh
        )

    async def write_state(
        self, key: StateKey, delta: Mapping[str, Any], expiry: Expiry
    ) -> dict[str, Any]:
        """Apply a delta to the app or user state (read-modify-write in one transaction)."""
        return await self._transaction(_transactions.write_state, key, delta, expiry, write=True)

    async def purge_expired(self, now: datetime) -> int:
        """Delete expired sessions (events cascade) and expired states; return the count.

        Sessions go in batches, one short transaction each, so that other writers
        never wait long for the write lock.
        """
        total = 0
        while True:
            sessions, states = await self._transaction(
                _transactions.purge_expired, now, _PURGE_BATCH, write=True
            )
            total += sessions + states
            if sessions < _PURGE_BATCH:
                return total
