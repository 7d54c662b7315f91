"""The MongoDB backend: the ``Backend`` primitives, each handed to the module that owns it.

Layout (collection names take ``collection_prefix``, default ``sessionhub_``):

- ``sessions``: one document per session. ``incarnation`` is a random id its
  events point to, so a session deleted and created again never sees the old
  one's events; ``(app, user, sid)`` is unique. It carries ``last_seq`` and
  ``event_count``: the events a reader may see are exactly the seqs in
  ``(last_seq - event_count, last_seq]``, so a write becomes visible the
  moment the session document says so, all at once.
- ``events``: one document per event; unique ``(session, seq)`` and
  ``(session, event_id)``; the event itself as JSON text.
- ``state``: one document per app state and per user state.

Where things are:

- ``_settings``: the settings; ``_store``: connecting, indexes, the open collections;
- ``_reads``: get a session with a window of events, list sessions and users;
- ``_sessions``: create, update, delete, restore, purge; ``_state``: app and user state;
- appends (``append`` below picks one): ``_append_optimistic`` (one bulkWrite,
  any deployment), ``_append_txn`` (a transaction: replica set, sharded
  cluster), ``_append_standalone`` (the write lease, with crash replay:
  standalone servers); ``_append_plan``: what they share; ``_heads``: what
  this process remembers of the sessions it writes;
- ``_errors``: the one rule mapping driver errors to sessionhub errors.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

from bson.errors import InvalidDocument
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from sessionhub import (
    AppendRequest,
    AppendResult,
    Backend,
    BackendUnavailable,
    Capabilities,
    Event,
    EventWindow,
    Expiry,
    ListCursor,
    Session,
    SessionKey,
    StateDeltas,
    StateKey,
    StoredSession,
)
from sessionhub_mongodb import _reads, _sessions
from sessionhub_mongodb._append_optimistic import append_optimistic
from sessionhub_mongodb._append_standalone import append_leased
from sessionhub_mongodb._append_txn import append_in_transaction
from sessionhub_mongodb._errors import translate, translated
from sessionhub_mongodb._heads import HeadCache, KeyLocks
from sessionhub_mongodb._settings import DEFAULT_DATABASE, DEFAULT_URL, MongoSettings
from sessionhub_mongodb._state import apply_state, read_state
from sessionhub_mongodb._store import Store, connect

__all__ = ["MongoBackend", "MongoSettings", "DEFAULT_URL", "DEFAULT_DATABASE"]

logger = logging.getLogger("sessionhub.mongodb")


class MongoBackend(Backend):
    """Sessions, events and state in MongoDB, through PyMongo's async API.

    ``MongoBackend()`` connects to ``mongodb://localhost:27017``;
    ``MongoBackend(MongoSettings(url=..., database=...))`` elsewhere. Pass
    ``client=`` to use an existing ``pymongo.AsyncMongoClient`` or Motor
    ``AsyncIOMotorClient``: it is used as it is (its URL, pool and options)
    and never closed by the backend; ``settings.url`` is then ignored.
    """

    name: ClassVar[str] = "mongodb"
    capabilities: ClassVar[Capabilities] = Capabilities(
        persistent=True, shared_store=True, multi_process=True, native_ttl=True, cluster=True
    )

    def __init__(self, settings: MongoSettings | None = None, *, client: Any = None) -> None:
        self.settings: MongoSettings = settings if settings is not None else MongoSettings()
        """The validated settings."""
        self._injected = client
        self._store_open: Store | None = None
        self._open_lock: asyncio.Lock | None = None
        self._heads = HeadCache()
        self._key_locks = KeyLocks()
        self._instance = uuid.uuid4().hex
        self._writes = itertools.count(1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self._redacted_url()!r}, database={self.database!r})"

    @property
    def url(self) -> str:
        """The connection string (secret: it may hold credentials)."""
        return self.settings.url.get_secret_value() if self.settings.url else DEFAULT_URL

    @property
    def database(self) -> str:
        """The database name in use."""
        if self.settings.database:
            return self.settings.database
        path = urlsplit(self.url).path.lstrip("/")
        return path or DEFAULT_DATABASE

    @property
    def uses_transactions(self) -> bool:
        """Whether appends run as multi-document transactions (else the standalone scheme)."""
        return self._store_open is not None and self._store_open.transactions

    @property
    def _location(self) -> str:
        return f"MongoDB at {self._redacted_url()} (database {self.database!r})"

    def _redacted_url(self) -> str:
        if self._injected is not None:
            return "<injected client>"
        parts = urlsplit(self.url)
        host = parts.netloc.rpartition("@")[2]
        return f"{parts.scheme}://{host}"

    # The open collections, for tests and tools that look at the documents directly.
    @property
    def _sessions(self) -> Any:
        return self._store().sessions

    @property
    def _events(self) -> Any:
        return self._store().events

    @property
    def _state(self) -> Any:
        return self._store().state

    # --- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, find out whether transactions are available, create the indexes."""
        if self._store_open is not None:
            return
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if self._store_open is None:
                await self._connect()

    async def _connect(self) -> None:
        settings = self.settings
        client = self._injected
        if client is None:
            client = AsyncMongoClient(
                self.url,
                serverSelectionTimeoutMS=settings.server_selection_timeout_ms,
                connectTimeoutMS=settings.connect_timeout_ms,
                socketTimeoutMS=settings.socket_timeout_ms,
                appname="sessionhub",
                tz_aware=True,
            )
        try:
            store = await connect(
                client,
                self.database,
                settings,
                heads=self._heads,
                locks=self._key_locks,
                instance=self._instance,
                writes=self._writes,
            )
        except (PyMongoError, InvalidDocument) as exc:
            if self._injected is None:
                await client.close()
            raise translate(exc, self._location, "open") from exc
        except BaseException:  # cancelled (a timeout around open): no client is left open
            if self._injected is None:
                await client.close()
            raise
        self._store_open = store
        logger.debug(
            "MongoDB backend on %s/%s: %s",
            self._redacted_url(),
            self.database,
            "transactions" if store.transactions else "standalone scheme",
        )

    async def close(self) -> None:
        """Close the client if the backend created it (an injected one is left open)."""
        store, self._store_open = self._store_open, None
        self._open_lock = None  # a lock belongs to one event loop; the next open may run on another
        self._heads.clear()
        if store is not None and self._injected is None:
            await store.client.close()

    def _store(self) -> Store:
        if self._store_open is None:
            raise BackendUnavailable(
                f"The MongoDB backend on {self._redacted_url()} is not open. Call open() "
                "(or start the service) first."
            )
        return self._store_open

    @translated
    async def ping(self) -> None:
        """Run the ``ping`` command; raise :class:`~sessionhub.BackendUnavailable` if it fails."""
        await self._store().client.admin.command("ping")

    # --- sessions ------------------------------------------------------------------------

    @translated
    async def create_session(
        self, session: Session, deltas: StateDeltas, expiry: Expiry
    ) -> StoredSession:
        """Insert the session (replacing an expired one) and apply its app/user deltas."""
        return await _sessions.create_session(self._store(), session, deltas, expiry)

    @translated
    async def get_session(
        self, key: SessionKey, window: EventWindow, expiry: Expiry, *, refresh: bool
    ) -> StoredSession | None:
        """Read the session, then only the events of ``window``; app and user state alongside."""
        return await _reads.get_session(self._store(), key, window, expiry, refresh=refresh)

    @translated
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
        """One keyset page of the user's live sessions, ``(updated_at, id)`` descending."""
        return await _reads.list_sessions(
            self._store(), app_name, user_id, limit=limit, after=after, parent_id=parent_id, now=now
        )

    @translated
    async def update_session(
        self,
        key: SessionKey,
        deltas: StateDeltas,
        metadata: Mapping[str, Any],
        expiry: Expiry,
    ) -> StoredSession:
        """Apply state and metadata deltas to a live session without an event."""
        return await _sessions.update_session(self._store(), key, deltas, metadata, expiry)

    @translated
    async def delete_session(self, key: SessionKey, now: datetime) -> bool:
        """Hide the session at once, delete its events, then its document.

        A crash part-way leaves a hidden, event-less or half-emptied session
        document marked ``deleted``; ``create_session`` of the same id and
        ``purge_expired`` finish the job.
        """
        return await _sessions.delete_session(self._store(), key, now)

    # --- appends -------------------------------------------------------------------------

    @translated
    async def append(self, request: AppendRequest) -> AppendResult:
        """Store events atomically, by the cheapest path that keeps the guarantees.

        1. Optimistic (``_append_optimistic``): events with no ``app:`` / ``user:``
           keys, when this process knows the session's head and nobody else
           wrote to it lately, and the deployment either sends it as one
           bulkWrite or has no transactions to offer instead. None if it lost a
           race; the session then counts as contended for a few appends.
        2. Otherwise, a transaction (``_append_txn``) where the deployment has
           them, else the write lease (``_append_standalone``).
        """
        store = self._store()
        key = request.key
        async with store.locks.hold(key):
            wider = any(delta.app or delta.user for delta in request.deltas)
            if not wider and (store.bulk or not store.transactions):
                head = store.heads.get(key)
                if not store.heads.skip_optimistic(key) and head is not None:
                    result = await append_optimistic(store, request, head)
                    if result is not None:
                        return result
                    store.heads.mark_contended(key)
            if store.transactions:
                return await append_in_transaction(store, request)
            return await append_leased(store, request)

    # --- app and user state --------------------------------------------------------------

    @translated
    async def read_state(self, key: StateKey, expiry: Expiry, *, refresh: bool) -> dict[str, Any]:
        """Read the app or user state (``{}`` if absent or expired); slide its expiry."""
        return await read_state(self._store(), key, expiry, refresh=refresh)

    @translated
    async def write_state(
        self, key: StateKey, delta: Mapping[str, Any], expiry: Expiry
    ) -> dict[str, Any]:
        """Apply a delta to the app or user state in one atomic update; return the new state."""
        return await apply_state(self._store(), key, delta, expiry, None)

    # --- data tools ----------------------------------------------------------------------

    @translated
    async def list_users(self, app_name: str, *, limit: int, after: str | None) -> list[str]:
        """Users of the app with sessions or user state, ascending, strictly after ``after``.

        Walks the ``(app, user, ...)`` indexes one distinct user at a time, so a
        page costs about ``2 * limit`` index seeks however many sessions each
        user has.
        """
        return await _reads.list_users(self._store(), app_name, limit=limit, after=after)

    @translated
    async def list_app_sessions(
        self, app_name: str, *, limit: int, after: ListCursor | None, now: datetime
    ) -> list[Session]:
        """One keyset page of every user's live sessions, along the ``by_app_updated`` index."""
        return await _reads.list_app_sessions(
            self._store(), app_name, limit=limit, after=after, now=now
        )

    @translated
    async def list_apps(self, *, limit: int, after: str | None) -> list[str]:
        """Apps with sessions or state, ascending: one index seek per app and collection."""
        return await _reads.list_apps(self._store(), limit=limit, after=after)

    @translated
    async def restore_session(self, session: Session, events: list[Event], expiry: Expiry) -> None:
        """Replace the session with exactly this content, in one atomic switch.

        The events go in first under a new incarnation id, invisible; then one
        replacement of the session document points it at them, so readers see
        the old session or the new one; then the old events are deleted. The
        events must be the consecutive seqs ending at ``session.last_seq``.
        """
        await _sessions.restore_session(self._store(), session, events, expiry)

    # --- maintenance -----------------------------------------------------------------------

    @translated
    async def purge_expired(self, now: datetime) -> int:
        """Delete expired and half-deleted sessions with their events, and expired states.

        The server's TTL monitor does the same by itself about once a minute;
        this is for reclaiming space at once, and for leftovers of a delete
        that was interrupted.
        """
        return await _sessions.purge_expired(self._store(), now)
