"""The PostgreSQL backend: an asyncpg pool, one statement (one round trip) per primitive.

Each write primitive is one statement sent in autocommit mode, one round trip and
one transaction: the usual append a plain statement (:mod:`._append`), every other
write a call of a server-side function (:mod:`sessionhub_postgres._functions`).
A session's seqs are allocated under a row lock on its session row, so any number
of writers in any number of processes and hosts append safely, and writers of
different sessions never wait for each other.
Reads that write nothing are single statements, one snapshot.

Durability is the server's: an acknowledged primitive has committed with the
server's ``synchronous_commit`` (``on`` by default: flushed to the WAL).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar, TypeVar

import asyncpg

from sessionhub import (
    AppendRequest,
    AppendResult,
    Backend,
    Capabilities,
    ConfigError,
    ConflictError,
    Event,
    EventWindow,
    Expiry,
    ListCursor,
    ListedPage,
    ListRequest,
    ReplaceRequest,
    Session,
    SessionExists,
    SessionHubError,
    SessionKey,
    SessionNotFound,
    StateDeltas,
    StateKey,
    StoredSession,
)
from sessionhub.backend_tools import check_restorable, event_from_json, mask_url
from sessionhub_postgres import _listings
from sessionhub_postgres._append import STORED_MET, moved_on
from sessionhub_postgres._append import append as append_batch
from sessionhub_postgres._codec import (
    decode_object,
    encode_delta,
    event_columns,
    session_columns,
    session_from_row,
    stored_from_rows,
)
from sessionhub_postgres._errors import is_connection_error, storage_error
from sessionhub_postgres._functions import STORED_IDS
from sessionhub_postgres._pool import acquire, keep_session, open_connection
from sessionhub_postgres._schema import SCHEMA_VERSION, Names, SchemaTooNew, migrate
from sessionhub_postgres._settings import DEFAULT_URL, PostgresSettings, driver_dsn
from sessionhub_postgres._statements import Statements

__all__ = ["PostgresBackend", "PostgresSettings", "PURGE_BATCH", "app_refresh_step"]

T = TypeVar("T")
Connection = Any  # asyncpg's pooled connection proxy
Work = Callable[[Connection], Awaitable[T]]

PURGE_BATCH = 500
"""Sessions (or states) one purge statement deletes at most; purge repeats until done."""

_NOT_FOUND, _CONFLICT = 1, 2  # pop_event's and replace_events's r_status besides 0


def app_refresh_step(expiry: Expiry) -> timedelta:
    """How far a read must move the app state's expiry before it is written.

    1/100 of the app state TTL, at least one second. The app state is read with every
    session of the app, so a read of any session would otherwise write that one row; an
    app state may so expire up to 1% of its TTL earlier than a strictly sliding one.
    """
    if expiry.app is None:
        return timedelta(seconds=1)
    return max(timedelta(seconds=1), (expiry.app - expiry.now) / 100)


class PostgresBackend(Backend):
    """Sessions, events and state in PostgreSQL tables, on an asyncpg pool.

    ``PostgresBackend(PostgresSettings(url="postgresql://u:pw@host/db"))``; pass
    ``pool=`` to use an existing ``asyncpg.Pool`` (the backend never closes it).
    Tables and functions live in ``schema`` (default ``public``), named with
    ``table_prefix``; opening creates or migrates them.
    """

    name: ClassVar[str] = "postgres"
    capabilities: ClassVar[Capabilities] = Capabilities(
        persistent=True,
        shared_store=True,
        multi_process=True,
        compare_and_set=True,
        atomic_conflicts=True,
    )

    def __init__(self, settings: PostgresSettings | None = None, *, pool: Any = None) -> None:
        self.settings: PostgresSettings = settings if settings is not None else PostgresSettings()
        """The validated settings."""
        url = self.settings.url.get_secret_value() if self.settings.url else DEFAULT_URL
        self._dsn = driver_dsn(url)
        self.names = Names(self.settings.db_schema, self.settings.table_prefix)
        """The schema and prefix of every table and function."""
        self._sql = Statements.build(self.names)
        self._injected = pool
        self._pool: Any = pool if pool is not None else None
        self._ready = False
        self._open_lock: asyncio.Lock | None = None
        # One connection of the backend's own pool kept out of it: a call that finds it
        # free runs on it without the pool's acquire and release (see _run).
        self._held: Connection = None
        self._held_busy = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={mask_url(self._dsn)!r}, schema={self.names.schema!r})"

    # --- lifecycle ------------------------------------------------------------------

    async def open(self) -> None:
        """Create the pool (unless one was given) and create or migrate the tables."""
        if self._ready:
            return
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if not self._ready:
                await self._connect()
                self._ready = True

    async def _connect(self) -> None:
        settings = self.settings
        try:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    dsn=self._dsn,
                    min_size=settings.min_pool_size,
                    max_size=settings.max_pool_size,
                    timeout=settings.connect_timeout,
                    command_timeout=settings.command_timeout,
                    statement_cache_size=settings.statement_cache_size,
                    max_inactive_connection_lifetime=settings.max_inactive_connection_lifetime,
                    reset=keep_session,
                )
            await self._run(lambda conn: migrate(conn, self.names), retry=True, opening=True)
        except SchemaTooNew as exc:
            await self._drop_pool()
            raise ConfigError(
                f"The PostgreSQL tables {self.names.schema}.{self.names.prefix}* at "
                f"{mask_url(self._dsn)} have schema version {exc.found}, but this "
                f"sessionhub-postgres knows versions up to {SCHEMA_VERSION}: a newer release "
                "wrote them. Upgrade: pip install -U sessionhub-postgres."
            ) from None
        except SessionHubError:
            await self._drop_pool()
            raise
        except BaseException as exc:
            await self._drop_pool()
            if isinstance(exc, Exception):
                raise storage_error(self._dsn, exc, settings.connect_timeout) from exc
            raise

    async def _drop_pool(self) -> None:
        held, self._held = self._held, None
        pool, self._pool = self._pool, self._injected
        if held is not None and pool is not None and not self._held_busy:
            await pool.release(held)  # a busy one goes back when its call ends
        if pool is not None and pool is not self._injected:
            await pool.close()

    async def close(self) -> None:
        """Close the pool the backend made (an injected pool is left open). Idempotent."""
        self._ready = False
        self._open_lock = None  # a lock belongs to one event loop; the next open may run on another
        await self._drop_pool()

    async def ping(self) -> None:
        """Run ``SELECT 1``; raise :class:`~sessionhub.BackendUnavailable` if it fails."""
        await self._run(lambda conn: conn.fetchval("SELECT 1"), retry=True)

    # --- running statements ----------------------------------------------------------

    async def _run(self, work: Work[T], *, retry: bool, opening: bool = False) -> T:
        """Run ``work`` on a pooled connection; map driver errors.

        With ``retry`` (a primitive that is harmless to repeat) a call that finds its
        connection dropped (a restarted server) runs once more on a fresh one.
        """
        if not opening and not self._ready:
            await self.open()
        pool = self._pool
        if pool is None:
            raise storage_error(self._dsn, ConnectionError("the backend was closed"), None)
        attempts = 2 if retry else 1
        for attempt in range(1, attempts + 1):
            try:
                if not self._held_busy and pool is not self._injected and not opening:
                    return await self._run_held(pool, work)
                conn = await acquire(pool, self.settings.pool_timeout)
                try:
                    return await work(conn)
                finally:
                    await pool.release(conn, timeout=self.settings.pool_timeout)
            except (SessionHubError, SchemaTooNew):
                raise
            except Exception as exc:
                if attempt < attempts and is_connection_error(exc):
                    continue
                raise storage_error(self._dsn, exc, self.settings.command_timeout) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _run_held(self, pool: Any, work: Work[T]) -> T:
        """Run ``work`` on the held connection (taken from the pool the first time).

        asyncpg's acquire and release cost a few event-loop turns per call (a task for
        the acquire timeout, another to shield the release); the held connection skips
        both. A call that fails on it hands it back to the pool, which cleans it up (or
        replaces it, if the server dropped it); the next call takes another.
        """
        self._held_busy = True
        try:
            if self._held is not None and not open_connection(self._held):
                # Closed while held idle (a server's idle timeout, a restart): no call
                # was sent on it, so any primitive may run on another.
                await pool.release(self._held)
                self._held = None
            if self._held is None:
                if self.settings.max_pool_size < 2:
                    # Held, the only connection would starve every concurrent call.
                    conn = await acquire(pool, self.settings.pool_timeout)
                    try:
                        return await work(conn)
                    finally:
                        await pool.release(conn, timeout=self.settings.pool_timeout)
                self._held = await acquire(pool, self.settings.pool_timeout)
            conn = self._held
            kept = False
            try:
                result = await work(conn)
                kept = self._held is conn  # else the backend was closed meanwhile
                return result
            finally:
                if not kept:
                    if self._held is conn:
                        self._held = None
                    await pool.release(conn, timeout=self.settings.pool_timeout)
        finally:
            self._held_busy = False

    async def _row(self, query: str, *args: Any, retry: bool = True) -> Any:
        return await self._run(lambda conn: conn.fetchrow(query, *args), retry=retry)

    # --- the primitives -----------------------------------------------------------------

    async def create_session(
        self, session: Session, deltas: StateDeltas, expiry: Expiry
    ) -> StoredSession:
        """Insert the session (replacing an expired one) and apply its app/user deltas."""
        user_keys, user_set = encode_delta(deltas.user)
        app_keys, app_set = encode_delta(deltas.app)
        row = await self._row(
            self._sql.create_session,
            *session_columns(session, expiry.session),
            expiry.now,
            expiry.user,
            expiry.app,
            user_keys,
            user_set,
            app_keys,
            app_set,
            retry=False,  # a repeat would find its own session and say it exists
        )
        if row[0] is None:
            raise SessionExists(session.app_name, session.user_id, session.id)
        stored = session.model_copy(
            update={"expires_at": expiry.session, "event_count": 0, "last_seq": 0, "events": []}
        )
        return StoredSession(stored, decode_object(row[1]), decode_object(row[2]))

    async def get_session(
        self, key: SessionKey, window: EventWindow, expiry: Expiry, *, refresh: bool
    ) -> StoredSession | None:
        """Read the session, its app and user state and the events of ``window`` in one call."""
        args: tuple[Any, ...] = (
            key.app_name,
            key.user_id,
            key.session_id,
            expiry.now,
            window.after_seq,
            window.after_time,
            window.last_n,
        )
        if refresh:
            query = self._sql.read_session_refresh
            args += (expiry.session, expiry.user, expiry.app, app_refresh_step(expiry))

            async def read(conn: Connection) -> StoredSession | None:
                row = await conn.fetchrow(query, *args)
                if row is None:
                    return None
                return StoredSession(
                    session_from_row(key, row), decode_object(row[11]), decode_object(row[12])
                )
        else:

            async def read(conn: Connection) -> StoredSession | None:
                rows = await conn.fetch(self._sql.read_session, *args)
                return stored_from_rows(key, rows) if rows else None

        return await self._run(read, retry=True)

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
        query, args = _listings.user_page(
            self._sql, app_name, user_id, limit=limit, after=after, parent_id=parent_id, now=now
        )
        rows = await self._run(lambda conn: conn.fetch(query, *args), retry=True)
        return _listings.sessions(app_name, user_id, rows)

    async def list_app_sessions(
        self, app_name: str, *, limit: int, after: ListCursor | None, now: datetime
    ) -> list[Session]:
        """One keyset page of every user's live sessions, along the app's listing index."""
        query, args = _listings.app_page(self._sql, app_name, limit=limit, after=after, now=now)
        rows = await self._run(lambda conn: conn.fetch(query, *args), retry=True)
        return _listings.sessions(app_name, None, rows)

    async def list_page(self, request: ListRequest) -> ListedPage:
        """A listing page with the app state and each of its users' state, in one statement."""
        query, args = _listings.page_of(self._sql, request)
        rows = await self._run(lambda conn: conn.fetch(query, *args), retry=True)
        return _listings.listed_page(request.app_name, rows)

    async def list_apps(self, *, limit: int, after: str | None) -> list[str]:
        """One page of the store's app names, ascending (a loose scan of three indexes)."""
        rows = await self._run(
            lambda conn: conn.fetch(self._sql.list_apps, after or "", limit), retry=True
        )
        return [row[0] for row in rows]

    async def append(self, request: AppendRequest) -> AppendResult:
        """Store events, their deltas, the trim and the new times in one statement.

        A batch reusing a stored id takes more (see :mod:`._append`): its stored events
        are compared before anything is written.
        """
        return await append_batch(self._send_append, self._sql, request)

    async def _send_append(self, query: str, args: tuple[Any, ...]) -> Any:
        """Send an append statement; ``STORED_MET`` if it met a stored id (and wrote nothing)."""

        async def call(conn: Connection) -> Any:
            try:
                return await conn.fetchrow(query, *args)
            except asyncpg.PostgresError as exc:
                if exc.sqlstate == STORED_IDS:
                    return STORED_MET  # rolled back: nothing of the batch was written
                raise

        # A repeat stores nothing twice: a stored id sends the batch to the check.
        return await self._run(call, retry=True)

    async def pop_event(self, key: SessionKey, expiry: Expiry) -> Event | None:
        """Delete and return the newest event in one call; ``last_seq`` stays."""
        status, seq, data = await self._row(
            self._sql.pop_event,
            key.app_name,
            key.user_id,
            key.session_id,
            expiry.now,
            expiry.session,
            retry=False,  # a repeat would pop a second event
        )
        if status == _NOT_FOUND:
            raise SessionNotFound(key.app_name, key.user_id, key.session_id)
        if data is None:
            return None
        event = event_from_json(data)
        event.seq = seq
        return event

    async def replace_events(self, request: ReplaceRequest) -> AppendResult:
        """Check the expected ``last_seq`` and swap every event in one call."""
        key, expiry = request.key, request.expiry
        ids, times, texts = event_columns(request.events, expiry.now)
        status, last_seq, event_count = await self._row(
            self._sql.replace_events,
            key.app_name,
            key.user_id,
            key.session_id,
            expiry.now,
            expiry.session,
            request.expected_last_seq,
            request.event_limit,
            ids,
            times,
            texts,
            retry=False,  # a repeat would number the events again
        )
        if status == _NOT_FOUND:
            raise SessionNotFound(key.app_name, key.user_id, key.session_id)
        if status == _CONFLICT:
            raise ConflictError(moved_on(key, request.expected_last_seq, last_seq))
        first = last_seq - len(request.events) + 1
        saved = [
            event.model_copy(update={"seq": seq})
            for seq, event in enumerate(request.events, start=first)
        ]
        return AppendResult(
            events=saved,
            last_seq=last_seq,
            event_count=event_count,
            updated_at=expiry.now,
            expires_at=expiry.session,
        )

    async def update_session(
        self,
        key: SessionKey,
        deltas: StateDeltas,
        metadata: Mapping[str, Any],
        expiry: Expiry,
    ) -> StoredSession:
        """Apply state and metadata deltas without an event, in one call."""
        row = await self._row(
            self._sql.update_session,
            key.app_name,
            key.user_id,
            key.session_id,
            expiry.now,
            expiry.session,
            expiry.user,
            expiry.app,
            *encode_delta(deltas.session),
            *encode_delta(metadata),
            *encode_delta(deltas.user),
            *encode_delta(deltas.app),
            retry=True,  # setting the same keys again changes nothing
        )
        if row is None:
            raise SessionNotFound(key.app_name, key.user_id, key.session_id)
        return StoredSession(
            session_from_row(key, row, events=False),
            decode_object(row[11]),
            decode_object(row[12]),
        )

    async def delete_session(self, key: SessionKey, now: datetime) -> bool:
        """Delete the session; its events go with it (``ON DELETE CASCADE``)."""
        row = await self._row(
            self._sql.delete_session, key.app_name, key.user_id, key.session_id, retry=False
        )
        return row is not None and (row[0] is None or row[0] > now)

    async def list_users(self, app_name: str, *, limit: int, after: str | None) -> list[str]:
        """One page of the app's user ids, ascending (code point order)."""
        rows = await self._run(
            lambda conn: conn.fetch(self._sql.list_users, app_name, after or "", limit),
            retry=True,
        )
        return [row[0] for row in rows]

    async def restore_session(self, session: Session, events: list[Event], expiry: Expiry) -> None:
        """Replace the session with exactly this content, in one call."""
        check_restorable(session, events)
        ids, times, texts = event_columns(events, session.created_at)
        await self._run(
            lambda conn: conn.execute(
                self._sql.restore_session,
                *session_columns(session, session.expires_at),
                session.last_seq,
                [event.seq for event in events],
                ids,
                times,
                texts,
            ),
            retry=True,
        )

    async def read_state(self, key: StateKey, expiry: Expiry, *, refresh: bool) -> dict[str, Any]:
        """Read the app or user state; slide its expiry with ``refresh``.

        The app state's expiry moves only by more than :func:`app_refresh_step`.
        """
        sql = self._sql
        if key.user_id is None:
            if refresh:
                query = sql.refresh_app_state
                args: tuple[Any, ...] = (key.app_name, expiry.now, expiry.app)
                args += (app_refresh_step(expiry),)
            else:
                query, args = sql.read_app_state, (key.app_name, expiry.now)
        elif refresh:
            query = sql.refresh_user_state
            args = (key.app_name, key.user_id, expiry.now, expiry.user)
        else:
            query, args = sql.read_user_state, (key.app_name, key.user_id, expiry.now)

        async def read(conn: Connection) -> dict[str, Any]:
            return decode_object(await conn.fetchval(query, *args))

        return await self._run(read, retry=True)

    async def write_state(
        self, key: StateKey, delta: Mapping[str, Any], expiry: Expiry
    ) -> dict[str, Any]:
        """Apply a delta to the app or user state in one statement; return the new state."""
        keys, values = encode_delta(delta)

        async def write(conn: Connection) -> dict[str, Any]:
            text = await conn.fetchval(
                self._sql.put_state,
                key.app_name,
                key.user_id,
                keys,
                values,
                key.expires_at(expiry),
                expiry.now,
            )
            return decode_object(text)

        return await self._run(write, retry=True)

    async def purge_expired(self, now: datetime) -> int:
        """Delete expired sessions (events cascade) and states, :data:`PURGE_BATCH` at a time.

        Each batch is its own short statement, so writers never wait long for it.
        """
        total = 0
        sql = self._sql
        for query in (sql.purge_sessions, sql.purge_user_state, sql.purge_app_state):
            while True:
                removed = await self._run(functools.partial(_purge, query, now), retry=True)
                total += removed
                if removed < PURGE_BATCH:
                    break
        return total


async def _purge(query: str, now: datetime, conn: Connection) -> int:
    status: str = await conn.execute(query, now, PURGE_BATCH)
    return int(status.rpartition(" ")[2])  # "DELETE n"
