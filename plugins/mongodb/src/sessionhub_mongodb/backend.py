"""The MongoDB backend: PyMongo's native async API, or an injected Motor client.

Layout (collection names take ``collection_prefix``, default ``sessionhub_``):

- ``sessions``: one document per session. ``_id`` is a random *incarnation*
  id, so a session deleted and created again never sees the old one's
  events; ``(app, user, sid)`` is unique. It carries ``last_seq`` and
  ``event_count``: the events a reader may see are exactly the seqs in
  ``(last_seq - event_count, last_seq]``, so a write becomes visible the
  moment the session document says so, all at once.
- ``events``: one document per event; unique ``(session, seq)`` and
  ``(session, event_id)``; the event itself as JSON text.
- ``state``: one document per app state and per user state.

Appends. Where the deployment supports multi-document transactions (a
replica set or a sharded cluster, found with ``hello``), an append is one
transaction. On a standalone server the same guarantee comes from ordering:
events are inserted first, invisible because their seqs are above the
session's ``last_seq``, and a single conditional update of the session
document publishes them (and applies the session-state delta) at once. The
condition (``last_seq``, ``event_count`` and ``version`` as last read, no
write lease held) makes the publication fail if anyone else wrote in
between; the writer then deletes its own events and takes the session's write
lease, a field of the session document acquired atomically, which lets it
delete what crashed writers left behind (events above ``last_seq``) before
writing. See the README for the full crash analysis.

Within one process, writers of one session queue on an ``asyncio.Lock``, so
only one task per process competes for the session at the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, ClassVar, Literal, ParamSpec, TypeVar, Union
from urllib.parse import urlsplit

from bson.codec_options import CodecOptions
from bson.errors import InvalidDocument
from pydantic import Field, field_validator
from pymongo import AsyncMongoClient, IndexModel, InsertOne, ReturnDocument, UpdateOne
from pymongo.errors import PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.read_preferences import (
    Nearest,
    Primary,
    PrimaryPreferred,
    Secondary,
    SecondaryPreferred,
)
from pymongo.write_concern import WriteConcern

from sessionhub import (
    AppendRequest,
    AppendResult,
    Backend,
    BackendSettings,
    BackendUnavailable,
    Capabilities,
    ConfigError,
    ConflictError,
    Event,
    EventWindow,
    Expiry,
    InvalidInput,
    ListCursor,
    Scope,
    Session,
    SessionExists,
    SessionKey,
    SessionNotFound,
    StateDeltas,
    StoredSession,
)
from sessionhub.backend import check_restorable, dump_json, from_micros, to_micros
from sessionhub_mongodb import _driver
from sessionhub_mongodb._documents import (
    NEVER,
    decode_map,
    escape_key,
    event_document,
    event_from_document,
    map_delta,
    session_document,
    session_from_document,
    state_id,
    ttl_date,
)

__all__ = ["MongoBackend", "MongoSettings", "DEFAULT_URL", "DEFAULT_DATABASE"]

logger = logging.getLogger("sessionhub.mongodb")

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_URL = "mongodb://localhost:27017"
"""The server used when no ``url`` is configured."""

DEFAULT_DATABASE = "sessionhub"
"""The database used when neither ``database`` nor the URL's path names one."""

_SCHEMES = ("mongodb", "mongodb+srv")
_HEADS_KEPT = 4096
_WRITE_RETRIES = 5
_CONTENTION_DEADLINE_S = 120.0
_SKIPS_AFTER_CONTENTION = 16
_BACKOFF_FIRST_S = 0.0005
_BACKOFF_LONGEST_S = 0.01

_ReadPreference = Union[Primary, PrimaryPreferred, Secondary, SecondaryPreferred, Nearest]  # noqa: UP007
_READ_PREFERENCES: dict[str, Callable[[], _ReadPreference]] = {
    "primary": Primary,
    "primaryPreferred": PrimaryPreferred,
    "secondary": Secondary,
    "secondaryPreferred": SecondaryPreferred,
    "nearest": Nearest,
}

ReadConcernLevel = Literal["local", "majority", "available", "linearizable", "snapshot"]
ReadPreferenceName = Literal[
    "primary", "primaryPreferred", "secondary", "secondaryPreferred", "nearest"
]


class MongoSettings(BackendSettings):
    """Options of the MongoDB backend (``[mongodb]`` in the config, ``SESSIONHUB_MONGODB__…``).

    ``url`` is any MongoDB connection string (``mongodb://`` or
    ``mongodb+srv://``; credentials, replica set and TLS options go in it).
    The database is ``database``, else the URL's path (``mongodb://h/mydb``),
    else ``sessionhub``.
    """

    database: str | None = Field(
        default=None, description="The database; default: the URL's path, else 'sessionhub'."
    )
    collection_prefix: str = Field(
        default="sessionhub_",
        description="Prefix of the collection names (sessions, events, state).",
    )
    write_concern: int | str = Field(
        default="majority",
        description="The write concern's w: 'majority' (default), a number, or a tag set name.",
    )
    journal: bool | None = Field(
        default=True,
        description="Wait for the journal (j) before acknowledging a write; None: server default.",
    )
    wtimeout_ms: int | None = Field(
        default=None, ge=0, description="How long a write waits for its write concern (ms)."
    )
    read_concern: ReadConcernLevel | None = Field(
        default="majority", description="Read concern level of reads; None: server default."
    )
    read_preference: ReadPreferenceName = Field(
        default="primary",
        description=(
            "Where reads go. Anything but 'primary' may return stale sessions; appends "
            "always read and write the primary."
        ),
    )
    server_selection_timeout_ms: int = Field(
        default=10_000,
        gt=0,
        description="How long an operation waits for a usable server before BackendUnavailable.",
    )
    connect_timeout_ms: int = Field(
        default=10_000, gt=0, description="How long opening a connection may take (ms)."
    )
    socket_timeout_ms: int | None = Field(
        default=30_000,
        gt=0,
        description="How long a request may wait for its answer (ms); None: forever.",
    )
    transactions: Literal["auto", "always", "never"] = Field(
        default="auto",
        description=(
            "auto: use multi-document transactions where the deployment supports them "
            "(replica set, sharded cluster); never: the standalone scheme everywhere."
        ),
    )
    write_lease_ms: int = Field(
        default=10_000,
        gt=0,
        description=(
            "Standalone scheme: how long a session's write lease lasts; a writer that died "
            "holding it blocks that session's writers for at most this long."
        ),
    )

    @field_validator("url")
    @classmethod
    def _mongodb_url(cls, value: Any) -> Any:
        if value is not None:
            scheme = urlsplit(value.get_secret_value()).scheme.lower()
            if scheme not in _SCHEMES:
                raise ValueError(
                    f"the MongoDB backend takes mongodb:// or mongodb+srv:// URLs, not {scheme!r}"
                )
        return value

    @field_validator("collection_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if "$" in value or "\x00" in value:
            raise ValueError("collection_prefix must not contain '$' or NUL")
        return value


@dataclass
class _Head:
    """What a writer needs to know of a session document to publish events after it."""

    id: Any
    incarnation: str
    last_seq: int
    event_count: int
    version: int
    horizon_us: int | None
    expires_us: int | None = None
    """None when not read."""

    @classmethod
    def of(cls, document: Mapping[str, Any]) -> _Head:
        return cls(
            document["_id"],
            document["incarnation"],
            document["last_seq"],
            document["event_count"],
            document.get("version", 0),
            document.get("horizon_us"),
            document.get("expires_us"),
        )


@dataclass
class _Plan:
    """An append worked out against a head: which events are new, with which seqs."""

    events: list[Event]
    new: list[Event]
    last_seq: int
    session_delta: dict[str, Any] = field(default_factory=dict)
    app_delta: dict[str, Any] = field(default_factory=dict)
    user_delta: dict[str, Any] = field(default_factory=dict)


class _Retry(Exception):
    """A transaction's conditional write found the session changed: re-read and retry."""


class _KeyLocks:
    """One ``asyncio.Lock`` per session key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[SessionKey, tuple[asyncio.Lock, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: SessionKey) -> AsyncIterator[None]:
        entry = self._locks.get(key)
        if entry is None:
            entry = self._locks[key] = (asyncio.Lock(), [0])
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._locks[key]


def _translated(
    method: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """Turn driver errors escaping a primitive into sessionhub errors (cause chained)."""

    @functools.wraps(method)
    async def run(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except (PyMongoError, InvalidDocument) as exc:
            backend = args[0]
            assert isinstance(backend, MongoBackend)
            raise backend._translate(exc, method.__name__) from exc

    return run


def _expiry_fields(expires: datetime | None, sets: dict[str, Any], unsets: dict[str, str]) -> int:
    """Add a record's new expiry to update operands; return its ``expires_us``."""
    if expires is None:
        sets["expires_us"] = NEVER
        unsets["expires_at"] = ""
        return NEVER
    micros = to_micros(expires)
    sets["expires_us"] = micros
    sets["expires_at"] = ttl_date(micros)
    return micros


def _update(sets: Mapping[str, Any], unsets: Mapping[str, str]) -> dict[str, Any]:
    update: dict[str, Any] = {}
    if sets:
        update["$set"] = dict(sets)
    if unsets:
        update["$unset"] = dict(unsets)
    return update


def _wall_us() -> int:
    return time.time_ns() // 1000


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
        self._client: Any = None
        self._sessions: Any = None
        self._events: Any = None
        self._state: Any = None
        self._transactions = False
        self._bulk = False
        self._open_lock: asyncio.Lock | None = None
        self._key_locks = _KeyLocks()
        self._heads: OrderedDict[SessionKey, _Head] = OrderedDict()
        self._contended: dict[SessionKey, int] = {}
        self._instance = uuid.uuid4().hex
        self._writes = 0

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
        return self._transactions

    def _redacted_url(self) -> str:
        if self._injected is not None:
            return "<injected client>"
        parts = urlsplit(self.url)
        host = parts.netloc.rpartition("@")[2]
        return f"{parts.scheme}://{host}"

    # --- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, find out whether transactions are available, create the indexes."""
        if self._sessions is not None:
            return
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if self._sessions is None:
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
            hello = await client.admin.command("hello")
            database = client.get_database(
                self.database,
                codec_options=CodecOptions(tz_aware=True, tzinfo=timezone.utc),
                write_concern=self._write_concern(),
                read_concern=ReadConcern(settings.read_concern),
                read_preference=self._read_preference(),
            )
            prefix = settings.collection_prefix
            sessions = database.get_collection(f"{prefix}sessions")
            events = database.get_collection(f"{prefix}events")
            state = database.get_collection(f"{prefix}state")
            await self._create_indexes(sessions, events, state)
        except (PyMongoError, InvalidDocument) as exc:
            if self._injected is None:
                await client.close()
            raise self._translate(exc, "open") from exc
        except BaseException:  # cancelled (a timeout around open): no client is left open
            if self._injected is None:
                await client.close()
            raise
        if settings.transactions == "auto":
            self._transactions = bool(
                hello.get("logicalSessionTimeoutMinutes") is not None
                and (hello.get("setName") or hello.get("msg") == "isdbgrid")
            )
        else:
            self._transactions = settings.transactions == "always"
        # MongoDB 8's client-level bulkWrite (wire version 25) sends the events and the
        # update that publishes them in one command. Motor's client has no async form.
        self._bulk = isinstance(client, AsyncMongoClient) and hello.get("maxWireVersion", 0) >= 25
        self._client = client
        self._sessions, self._events, self._state = sessions, events, state
        logger.debug(
            "MongoDB backend on %s/%s: %s",
            self._redacted_url(),
            self.database,
            "transactions" if self._transactions else "standalone scheme",
        )

    @staticmethod
    async def _create_indexes(sessions: Any, events: Any, state: Any) -> None:
        ttl = IndexModel([("expires_at", 1)], expireAfterSeconds=0, name="ttl")
        await sessions.create_indexes(
            [
                IndexModel([("app", 1), ("user", 1), ("sid", 1)], unique=True, name="session_key"),
                IndexModel(
                    [("app", 1), ("user", 1), ("updated_us", -1), ("sid", -1)], name="by_updated"
                ),
                IndexModel(
                    [("app", 1), ("user", 1), ("parent", 1), ("updated_us", -1), ("sid", -1)],
                    name="children_by_updated",
                    partialFilterExpression={"parent": {"$type": "string"}},
                ),
                IndexModel([("deleted", 1)], sparse=True, name="deleted"),
                ttl,
            ]
        )
        await events.create_indexes(
            [
                IndexModel([("session", 1), ("seq", 1)], unique=True, name="session_seq"),
                IndexModel([("session", 1), ("event_id", 1)], unique=True, name="session_event_id"),
                ttl,
            ]
        )
        await state.create_indexes([IndexModel([("app", 1), ("user", 1)], name="by_user"), ttl])

    async def close(self) -> None:
        """Close the client if the backend created it (an injected one is left open)."""
        client, self._client = self._client, None
        self._sessions = self._events = self._state = None
        self._open_lock = None  # a lock belongs to one event loop; the next open may run on another
        self._heads.clear()
        if client is not None and self._injected is None:
            await client.close()

    def _write_concern(self) -> WriteConcern:
        s = self.settings
        return WriteConcern(w=s.write_concern, j=s.journal, wtimeout=s.wtimeout_ms)

    def _read_preference(self) -> _ReadPreference:
        return _READ_PREFERENCES[self.settings.read_preference]()

    def _translate(self, exc: BaseException, operation: str) -> Exception:
        where = f"MongoDB at {self._redacted_url()} (database {self.database!r})"
        if _driver.is_too_large(exc):
            return InvalidInput(
                "events",
                "make a document larger than MongoDB's 16 MiB limit; store big payloads "
                "elsewhere and keep a FilePart with their URI",
            )
        if _driver.is_connection_error(exc):
            return BackendUnavailable(
                f"{where} did not answer during {operation}: {_driver.summary(exc)}. Check "
                "that the server is running and reachable from here, and the url setting "
                "(server_selection_timeout_ms bounds how long each operation waits)."
            )
        return BackendUnavailable(f"{where} refused {operation}: {_driver.summary(exc)}")

    def _ready(self) -> None:
        if self._sessions is None:
            raise BackendUnavailable(
                f"The MongoDB backend on {self._redacted_url()} is not open. Call open() "
                "(or start the service) first."
            )

    @_translated
    async def ping(self) -> None:
        """Run the ``ping`` command; raise :class:`~sessionhub.BackendUnavailable` if it fails."""
        self._ready()
        await self._client.admin.command("ping")

    # --- helpers -------------------------------------------------------------------------

    def _remember(self, key: SessionKey, head: _Head | None) -> None:
        if head is None:
            self._heads.pop(key, None)
            return
        self._heads[key] = head
        self._heads.move_to_end(key)
        if len(self._heads) > _HEADS_KEPT:
            self._heads.popitem(last=False)

    def _token(self) -> str:
        self._writes += 1
        return f"{self._instance}:{self._writes}"

    @staticmethod
    def _key_filter(key: SessionKey) -> dict[str, Any]:
        return {"app": key.app_name, "user": key.user_id, "sid": key.session_id}

    @classmethod
    def _live(cls, key: SessionKey, now_us: int) -> dict[str, Any]:
        return {**cls._key_filter(key), "expires_us": {"$gt": now_us}}

    @staticmethod
    def _horizon(current: int | None, expiry: Expiry) -> tuple[int | None, bool]:
        """The TTL date events need so that they outlive their session, and whether it moves.

        Events expire with their session, as a unit: each carries a date at or
        after the session's expiry. Pushing every event's date on each sliding
        refresh would cost a write per event, so the date runs ahead by one
        more TTL and is pushed only when the session's expiry overtakes it.
        """
        if expiry.session is None:
            return None, current is not None
        expires = to_micros(expiry.session)
        if current is not None and current >= expires:
            return current, False
        return expires + max(expires - to_micros(expiry.now), 0), True

    async def _move_horizon(self, incarnation: str, horizon: int | None, session: Any) -> None:
        if horizon is None:
            await self._events.update_many(
                {"session": incarnation}, {"$unset": {"expires_at": ""}}, session=session
            )
        else:
            await self._events.update_many(
                {"session": incarnation},
                {"$max": {"expires_at": ttl_date(horizon)}},
                session=session,
            )

    async def _read_events(self, document: Mapping[str, Any], window: EventWindow) -> list[Event]:
        if window.last_n == 0:
            return []
        last_seq = document["last_seq"]
        lowest = last_seq - document["event_count"]  # exclusive
        if window.after_seq is not None:
            lowest = max(lowest, window.after_seq)
        if lowest >= last_seq:
            return []
        query: dict[str, Any] = {
            "session": document["incarnation"],
            "seq": {"$gt": lowest, "$lte": last_seq},
        }
        projection = {"data": 1, "_id": 0}
        if window.after_time is None:
            if window.last_n is not None:
                query["seq"]["$gt"] = max(lowest, last_seq - window.last_n)
            rows = await self._events.find(query, projection).sort("seq", 1).to_list(None)
        else:
            query["timestamp_us"] = {"$gt": to_micros(window.after_time)}
            if window.last_n is None:
                rows = await self._events.find(query, projection).sort("seq", 1).to_list(None)
            else:
                cursor = self._events.find(query, projection).sort("seq", -1)
                rows = await cursor.limit(window.last_n).to_list(None)
                rows.reverse()
        return [event_from_document(row) for row in rows]

    async def _transaction(self, body: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``body(session)`` in a transaction, retrying transient failures with backoff."""
        deadline = time.monotonic() + _CONTENTION_DEADLINE_S
        delay = _BACKOFF_FIRST_S
        while True:
            session = await _driver.start_session(self._client)
            async with session:
                await _driver.start_transaction(
                    session,
                    read_concern=ReadConcern("majority"),
                    write_concern=self._write_concern(),
                    read_preference=Primary(),
                )
                try:
                    result = await body(session)
                except BaseException as exc:
                    with contextlib.suppress(PyMongoError):
                        await session.abort_transaction()
                    # A network error inside a transaction is labelled transient,
                    # but the driver already waited server_selection_timeout_ms
                    # for a server: report it instead of retrying for minutes.
                    retry = isinstance(exc, _Retry) or (
                        _driver.is_transient(exc) and not _driver.is_connection_error(exc)
                    )
                    if not retry:
                        raise
                    if time.monotonic() > deadline:
                        raise ConflictError(
                            "A MongoDB transaction kept conflicting with concurrent writes for "
                            f"{_CONTENTION_DEADLINE_S:.0f}s; retry later."
                        ) from exc
                else:
                    try:
                        await self._commit(session)
                    except PyMongoError as exc:
                        if (
                            not _driver.is_transient(exc)
                            or _driver.is_connection_error(exc)
                            or time.monotonic() > deadline
                        ):
                            raise
                    else:
                        return result
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, _BACKOFF_LONGEST_S)

    @staticmethod
    async def _commit(session: Any) -> None:
        for attempt in range(3):
            try:
                await session.commit_transaction()
                return
            except PyMongoError as exc:
                if not _driver.is_unknown_commit(exc) or attempt == 2:
                    raise

    # --- sessions ------------------------------------------------------------------------

    @_translated
    async def create_session(
        self, session: Session, deltas: StateDeltas, expiry: Expiry
    ) -> StoredSession:
        """Insert the session (replacing an expired one) and apply its app/user deltas."""
        self._ready()
        key = SessionKey(session.app_name, session.user_id, session.id)
        now_us = to_micros(expiry.now)
        expires_us = NEVER if expiry.session is None else to_micros(expiry.session)
        horizon, _ = self._horizon(None, expiry)
        wider = bool(deltas.app or deltas.user)
        async with self._key_locks.hold(key):
            for _ in range(_WRITE_RETRIES):
                document = session_document(session, uuid.uuid4().hex, expires_us, horizon)
                try:
                    states = await self._insert_session(document, key, deltas, expiry, wider)
                except PyMongoError as exc:
                    if not _driver.is_duplicate_key(exc):
                        raise
                    if await self._clear_expired(key, now_us):
                        continue
                    raise SessionExists(key.app_name, key.user_id, key.session_id) from None
                self._remember(key, _Head.of(document))
                app_state, user_state = await self._fill_states(key, expiry, *states)
                stored = session.model_copy(update={"events": [], "last_seq": 0, "event_count": 0})
                return StoredSession(stored, app_state, user_state)
        raise ConflictError(
            f"Session {key.session_id!r} was created and expired repeatedly while being "
            "created again; retry."
        )

    async def _insert_session(
        self,
        document: dict[str, Any],
        key: SessionKey,
        deltas: StateDeltas,
        expiry: Expiry,
        wider: bool,
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        async def body(session: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
            await self._sessions.insert_one(document, session=session)
            return await self._apply_scopes(key, deltas.app, deltas.user, expiry, session)

        if self._transactions and wider:
            return await self._transaction(body)
        return await body(None)

    async def _apply_scopes(
        self,
        key: SessionKey,
        app_delta: Mapping[str, Any],
        user_delta: Mapping[str, Any],
        expiry: Expiry,
        session: Any,
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        app_state = user_state = None
        if app_delta:
            app_state = await self._apply_state(
                Scope.APP, key.app_name, None, app_delta, expiry, session
            )
        if user_delta:
            user_state = await self._apply_state(
                Scope.USER, key.app_name, key.user_id, user_delta, expiry, session
            )
        return app_state, user_state

    async def _fill_states(
        self,
        key: SessionKey,
        expiry: Expiry,
        app_state: dict[str, Any] | None,
        user_state: dict[str, Any] | None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        async def read(scope: Scope, user_id: str | None) -> dict[str, Any]:
            return await self._read_state(scope, key.app_name, user_id, expiry, refresh=False)

        if app_state is None and user_state is None:
            app_state, user_state = await asyncio.gather(
                read(Scope.APP, None), read(Scope.USER, key.user_id)
            )
        elif app_state is None:
            app_state = await read(Scope.APP, None)
        elif user_state is None:
            user_state = await read(Scope.USER, key.user_id)
        assert app_state is not None and user_state is not None
        return app_state, user_state

    async def _clear_expired(self, key: SessionKey, now_us: int) -> bool:
        """Remove an expired (or half-deleted) session holding ``key``; False if it is live."""
        old = await self._sessions.find_one(
            self._key_filter(key), {"_id": 1, "incarnation": 1, "expires_us": 1}
        )
        if old is None:
            return True
        if old["expires_us"] > now_us:
            return False
        await self._events.delete_many({"session": old["incarnation"]})
        await self._sessions.delete_one({"_id": old["_id"], "expires_us": {"$lte": now_us}})
        self._remember(key, None)
        return True

    @_translated
    async def get_session(
        self, key: SessionKey, window: EventWindow, expiry: Expiry, *, refresh: bool
    ) -> StoredSession | None:
        """Read the session, then only the events of ``window``; app and user state alongside."""
        self._ready()
        now_us = to_micros(expiry.now)

        async def session_part() -> tuple[dict[str, Any], list[Event]] | None:
            if refresh:
                sets: dict[str, Any] = {}
                unsets: dict[str, str] = {}
                _expiry_fields(expiry.session, sets, unsets)
                document = await self._sessions.find_one_and_update(
                    self._live(key, now_us),
                    _update(sets, unsets),
                    return_document=ReturnDocument.AFTER,
                )
                if document is not None:
                    await self._extend_horizon(document, expiry)
            else:
                document = await self._sessions.find_one(self._live(key, now_us))
            if document is None:
                self._remember(key, None)
                return None
            events = await self._read_events(document, window)
            self._remember(key, _Head.of(document))
            return document, events

        found, app_state, user_state = await asyncio.gather(
            session_part(),
            self._read_state(Scope.APP, key.app_name, None, expiry, refresh=refresh),
            self._read_state(Scope.USER, key.app_name, key.user_id, expiry, refresh=refresh),
        )
        if found is None:
            return None
        document, events = found
        return StoredSession(session_from_document(document, events), app_state, user_state)

    async def _extend_horizon(self, document: dict[str, Any], expiry: Expiry) -> None:
        horizon, moved = self._horizon(document.get("horizon_us"), expiry)
        if moved:
            await self._move_horizon(document["incarnation"], horizon, None)
            await self._sessions.update_one(
                {"_id": document["_id"]}, {"$set": {"horizon_us": horizon}}
            )
            document["horizon_us"] = horizon

    @_translated
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
        self._ready()
        query: dict[str, Any] = {
            "app": app_name,
            "user": user_id,
            "expires_us": {"$gt": to_micros(now)},
        }
        if parent_id is not None:
            query["parent"] = parent_id
        if after is not None:
            # A range on updated_us keeps the index bounds tight; $nor drops the
            # rows of the cursor's own instant that were already returned.
            updated = to_micros(after.updated_at)
            query["updated_us"] = {"$lte": updated}
            query["$nor"] = [{"updated_us": updated, "sid": {"$gte": after.session_id}}]
        cursor = self._sessions.find(query).sort([("updated_us", -1), ("sid", -1)])
        cursor = cursor.hint("by_updated" if parent_id is None else "children_by_updated")
        rows = await cursor.limit(limit).to_list(None)
        return [session_from_document(row) for row in rows]

    @_translated
    async def update_session(
        self,
        key: SessionKey,
        deltas: StateDeltas,
        metadata: Mapping[str, Any],
        expiry: Expiry,
    ) -> StoredSession:
        """Apply state and metadata deltas to a live session without an event."""
        self._ready()
        now_us = to_micros(expiry.now)
        sets: dict[str, Any] = {"updated_us": now_us}
        unsets: dict[str, str] = {}
        _expiry_fields(expiry.session, sets, unsets)
        map_delta("state", deltas.session, sets, unsets)
        map_delta("metadata", metadata, sets, unsets)
        update = _update(sets, unsets)

        async def body(
            session: Any,
        ) -> tuple[dict[str, Any] | None, dict[str, Any] | None, dict[str, Any] | None]:
            document = await self._sessions.find_one_and_update(
                self._live(key, now_us),
                update,
                return_document=ReturnDocument.AFTER,
                session=session,
            )
            if document is None:
                return None, None, None
            app_state, user_state = await self._apply_scopes(
                key, deltas.app, deltas.user, expiry, session
            )
            return document, app_state, user_state

        async with self._key_locks.hold(key):
            if self._transactions and (deltas.app or deltas.user):
                document, app_state, user_state = await self._transaction(body)
            else:
                document, app_state, user_state = await body(None)
            if document is None:
                self._remember(key, None)
                raise SessionNotFound(key.app_name, key.user_id, key.session_id)
            await self._extend_horizon(document, expiry)
            if key in self._heads:
                self._remember(key, _Head.of(document))
        app, user = await self._fill_states(key, expiry, app_state, user_state)
        return StoredSession(session_from_document(document), app, user)

    @_translated
    async def delete_session(self, key: SessionKey, now: datetime) -> bool:
        """Hide the session at once, delete its events, then its document.

        A crash part-way leaves a hidden, event-less or half-emptied session
        document marked ``deleted``; ``create_session`` of the same id and
        ``purge_expired`` finish the job.
        """
        self._ready()
        async with self._key_locks.hold(key):
            self._remember(key, None)
            document = await self._sessions.find_one_and_update(
                {**self._key_filter(key), "deleted": {"$exists": False}},
                {"$set": {"deleted": True, "expires_us": 0}, "$unset": {"expires_at": ""}},
                projection={"_id": 1, "incarnation": 1, "expires_us": 1},
            )
            if document is None:
                return False
            await self._events.delete_many({"session": document["incarnation"]})
            await self._sessions.delete_one({"_id": document["_id"]})
            return bool(document.get("expires_us", NEVER) > to_micros(now))

    # --- appends -------------------------------------------------------------------------

    @_translated
    async def append(self, request: AppendRequest) -> AppendResult:
        """Store events atomically: one transaction, or the standalone publish-or-lease scheme."""
        self._ready()
        key = request.key
        async with self._key_locks.hold(key):
            wider = any(delta.app or delta.user for delta in request.deltas)
            # The optimistic path publishes with one document update, so it keeps the
            # guarantees of a transaction; where one bulkWrite carries it, it costs one
            # round trip against a transaction's three.
            if not wider and (self._bulk or not self._transactions):
                head = self._heads.get(key)
                skips = self._contended.pop(key, 0)
                if skips:
                    # Another process wrote here lately: its writes would make an
                    # optimistic attempt fail, costing round trips for nothing.
                    if skips > 1:
                        self._contended[key] = skips - 1
                elif head is not None:
                    result = await self._append_optimistic(request, head)
                    if result is not None:
                        return result
                    self._contended[key] = _SKIPS_AFTER_CONTENTION
            if self._transactions:
                return await self._append_in_transaction(request)
            return await self._append_leased(request)

    def _plan(self, request: AppendRequest, head: _Head, stored: Mapping[str, Event]) -> _Plan:
        plan = _Plan(events=[], new=[], last_seq=head.last_seq)
        for event, delta in zip(request.events, request.deltas, strict=True):
            known = stored.get(event.id)
            if known is not None:
                plan.events.append(known)
                continue
            plan.last_seq += 1
            saved = event.model_copy(update={"seq": plan.last_seq})
            plan.new.append(saved)
            plan.events.append(saved)
            plan.session_delta.update(delta.session)
            plan.app_delta.update(delta.app)
            plan.user_delta.update(delta.user)
        return plan

    def _publish(
        self, request: AppendRequest, head: _Head, plan: _Plan, horizon: int | None
    ) -> tuple[dict[str, Any], dict[str, str], int]:
        """The session update that makes ``plan`` visible; returns sets, unsets, event_count."""
        event_count = head.event_count + len(plan.new)
        if request.event_limit is not None:
            event_count = min(event_count, request.event_limit)
        sets: dict[str, Any] = {
            "last_seq": plan.last_seq,
            "event_count": event_count,
            "updated_us": to_micros(request.expiry.now),
            "horizon_us": horizon,
        }
        unsets: dict[str, str] = {}
        _expiry_fields(request.expiry.session, sets, unsets)
        map_delta("state", plan.session_delta, sets, unsets)
        return sets, unsets, event_count

    def _result(self, request: AppendRequest, plan: _Plan, event_count: int) -> AppendResult:
        return AppendResult(
            events=plan.events,
            last_seq=plan.last_seq,
            event_count=event_count,
            updated_at=request.expiry.now,
            expires_at=request.expiry.session,
        )

    async def _trim(
        self, incarnation: str, request: AppendRequest, last_seq: int, session: Any
    ) -> None:
        limit = request.event_limit
        if limit is not None and last_seq > limit:
            await self._events.delete_many(
                {"session": incarnation, "seq": {"$lte": last_seq - limit}}, session=session
            )

    async def _stored_events(
        self, head: _Head, request: AppendRequest, session: Any
    ) -> dict[str, Event]:
        rows = await self._events.find(
            {
                "session": head.incarnation,
                "event_id": {"$in": [event.id for event in request.events]},
                "seq": {"$gt": head.last_seq - head.event_count, "$lte": head.last_seq},
            },
            {"data": 1, "_id": 0},
            session=session,
        ).to_list(None)
        events = [event_from_document(row) for row in rows]
        return {event.id: event for event in events}

    async def _clear_unpublished(self, head: _Head, session: Any) -> None:
        """Delete events outside the visible range: leftovers of failed or crashed writers."""
        await self._events.delete_many(
            {"session": head.incarnation, "seq": {"$gt": head.last_seq}}, session=session
        )
        trimmed = head.last_seq - head.event_count
        if trimmed > 0:
            await self._events.delete_many(
                {"session": head.incarnation, "seq": {"$lte": trimmed}}, session=session
            )

    async def _insert_events(
        self, head: _Head, plan: _Plan, token: str, horizon: int | None, session: Any
    ) -> None:
        if plan.new:
            await self._events.insert_many(
                [event_document(head.incarnation, event, token, horizon) for event in plan.new],
                ordered=True,
                session=session,
            )

    async def _append_in_transaction(self, request: AppendRequest) -> AppendResult:
        key = request.key
        now_us = to_micros(request.expiry.now)
        token = self._token()
        check_stored = False
        attempts = 0

        async def body(session: Any) -> tuple[AppendResult, _Head]:
            nonlocal check_stored, attempts
            attempts += 1
            head = self._heads.get(key)
            if head is None or check_stored or attempts > 1:
                document = await self._sessions.find_one(
                    self._live(key, now_us),
                    {"state": 0, "metadata": 0},
                    session=session,
                )
                if document is None:
                    raise SessionNotFound(key.app_name, key.user_id, key.session_id)
                head = _Head.of(document)
            stored = await self._stored_events(head, request, session) if check_stored else {}
            plan = self._plan(request, head, stored)
            if not plan.new:
                return self._result(request, plan, head.event_count), head
            horizon, moved = self._horizon(head.horizon_us, request.expiry)
            try:
                if check_stored:
                    await self._clear_unpublished(head, session)
                await self._insert_events(head, plan, token, horizon, session)
            except PyMongoError as exc:
                if not _driver.is_duplicate_key(exc):
                    raise
                check_stored = True
                raise _Retry from exc
            sets, unsets, event_count = self._publish(request, head, plan, horizon)
            published = await self._sessions.update_one(
                {
                    "_id": head.id,
                    "last_seq": head.last_seq,
                    "event_count": head.event_count,
                    "version": head.version,
                    "lock": None,
                    "expires_us": {"$gt": now_us},
                },
                _update(sets, unsets),
                session=session,
            )
            if published.matched_count == 0:
                check_stored = True
                raise _Retry
            if moved:
                await self._move_horizon(head.incarnation, horizon, session)
            await self._apply_scopes(key, plan.app_delta, plan.user_delta, request.expiry, session)
            await self._trim(head.incarnation, request, plan.last_seq, session)
            after = replace(
                head, last_seq=plan.last_seq, event_count=event_count, horizon_us=horizon
            )
            return self._result(request, plan, event_count), after

        try:
            result, head = await self._transaction(body)
        except BaseException:
            self._remember(key, None)
            raise
        self._remember(key, head)
        return result

    async def _append_optimistic(self, request: AppendRequest, head: _Head) -> AppendResult | None:
        """Insert after the remembered head, then publish if nobody wrote since; else None."""
        key = request.key
        token = self._token()
        plan = self._plan(request, head, {})
        horizon, moved = self._horizon(head.horizon_us, request.expiry)
        self._remember(key, None)  # until this append's outcome is known
        sets, unsets, event_count = self._publish(request, head, plan, horizon)
        match: dict[str, Any] = {
            "_id": head.id,
            "last_seq": head.last_seq,
            "event_count": head.event_count,
            "version": head.version,
            "lock": None,
            "expires_us": {"$gt": to_micros(request.expiry.now)},
        }
        # Fields that keep their value are matched rather than written again.
        if request.expiry.session is None and head.expires_us == NEVER:
            del sets["expires_us"], unsets["expires_at"]
            match["expires_us"] = NEVER
        if horizon == head.horizon_us:
            del sets["horizon_us"]
            match["horizon_us"] = horizon
        publish = (match, _update(sets, unsets))
        if moved:
            await self._move_horizon(head.incarnation, horizon, None)
        # If the publishing update fails without an answer it may still have been
        # applied: then the events must stay. Only a definite answer (no match, a
        # taken seq, a refusal) lets us delete them; what an unanswered insert leaves
        # stays unpublished, and the next leased or transactional append clears it.
        try:
            published = await self._insert_and_publish(head, plan, token, horizon, publish)
        except (PyMongoError, InvalidDocument) as exc:
            if not _driver.may_have_applied(exc):
                with contextlib.suppress(PyMongoError):
                    await self._delete_own(head, plan, token)
            raise
        if not published:
            with contextlib.suppress(PyMongoError):
                await self._delete_own(head, plan, token)
            return None
        await self._trim(head.incarnation, request, plan.last_seq, None)
        expires_us = NEVER if request.expiry.session is None else to_micros(request.expiry.session)
        self._remember(
            key,
            replace(
                head,
                last_seq=plan.last_seq,
                event_count=event_count,
                horizon_us=horizon,
                expires_us=expires_us,
            ),
        )
        return self._result(request, plan, event_count)

    async def _insert_and_publish(
        self,
        head: _Head,
        plan: _Plan,
        token: str,
        horizon: int | None,
        publish: tuple[dict[str, Any], dict[str, Any]],
    ) -> bool:
        """Insert the events, then run the publishing update; whether it published.

        One ordered bulkWrite (one round trip) where the server and client have it,
        else two commands. False when a seq or id was taken or the update matched
        nothing: someone wrote since the head.
        """
        if not self._bulk:
            try:
                await self._insert_events(head, plan, token, horizon, None)
            except PyMongoError as exc:
                if not _driver.is_duplicate_key(exc):
                    raise
                return False
            outcome = await self._sessions.update_one(*publish)
            return bool(outcome.matched_count == 1)
        models: list[Any] = [
            InsertOne(
                namespace=self._events.full_name,
                document=event_document(head.incarnation, event, token, horizon),
            )
            for event in plan.new
        ]
        models.append(
            UpdateOne(namespace=self._sessions.full_name, filter=publish[0], update=publish[1])
        )
        try:
            result = await self._client.bulk_write(
                models, ordered=True, write_concern=self._write_concern(), verbose_results=True
            )
        except PyMongoError as exc:
            if not _driver.is_duplicate_key(exc):
                raise
            return False
        return bool(result.update_results[len(plan.new)].matched_count == 1)

    async def _delete_own(self, head: _Head, plan: _Plan, token: str) -> None:
        if plan.new:
            await self._events.delete_many(
                {
                    "session": head.incarnation,
                    "seq": {"$gt": head.last_seq, "$lte": plan.last_seq},
                    "writer": token,
                }
            )

    async def _acquire(self, key: SessionKey, token: str, now_us: int) -> dict[str, Any]:
        """Take the session's write lease; return the session document holding it.

        ``taken_over`` in the document says whether another writer's lease was
        there (expired, or abandoned by this instance): its leftovers need
        clearing. The document is read after the update, never before: a
        pre-image is not what every server returns reliably under contention.
        """
        lease_us = self.settings.write_lease_ms * 1000
        deadline = time.monotonic() + max(_CONTENTION_DEADLINE_S, 3 * lease_us / 1e6)
        delay = _BACKOFF_FIRST_S
        while True:
            wall = _wall_us()
            lock = {"owner": token, "instance": self._instance, "until_us": wall + lease_us}
            document: dict[str, Any] | None = await self._sessions.find_one_and_update(
                {
                    **self._live(key, now_us),
                    "$or": [
                        {"lock": None},
                        {"lock.until_us": {"$lt": wall}},
                        # Only a task holding this key's in-process lock gets here,
                        # so a lease held by this instance belongs to a writer
                        # that was cancelled or failed: take it over at once.
                        {"lock.instance": self._instance},
                    ],
                },
                [
                    {"$set": {"taken_over": {"$eq": [{"$type": "$lock"}, "object"]}}},
                    {
                        "$set": {
                            "lock": {"$literal": lock},
                            "version": {"$add": [{"$ifNull": ["$version", 0]}, 1]},
                        }
                    },
                ],
                projection={"state": 0, "metadata": 0},
                return_document=ReturnDocument.AFTER,
            )
            if document is not None:
                return document
            if await self._sessions.find_one(self._live(key, now_us), {"_id": 1}) is None:
                raise SessionNotFound(key.app_name, key.user_id, key.session_id)
            if time.monotonic() > deadline:
                raise ConflictError(
                    f"Session {key.session_id!r} of user {key.user_id!r}: another writer held "
                    "its write lease for too long; retry later."
                )
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, _BACKOFF_LONGEST_S)

    async def _recover(self, document: Mapping[str, Any], head: _Head) -> None:
        """Clean up after the dead writer whose lease was taken over."""
        await self._clear_unpublished(head, None)
        pending = document.get("pending")
        if pending:
            await self._replay(pending)

    async def _replay(self, pending: Mapping[str, Any]) -> None:
        expiry = Expiry(
            now=from_micros(pending["now_us"]),
            app=_optional_datetime(pending["app_expires_us"]),
            user=_optional_datetime(pending["user_expires_us"]),
        )
        key = SessionKey(pending["app"], pending["user"], "")
        await self._apply_scopes(
            key, decode_map(pending["app_delta"]), decode_map(pending["user_delta"]), expiry, None
        )

    async def _lost_lease(self, key: SessionKey, head: _Head, now_us: int) -> Exception:
        """Why a leased writer's publish matched nothing: the session went, or the lease."""
        document = await self._sessions.find_one(
            {"_id": head.id}, {"incarnation": 1, "expires_us": 1, "deleted": 1}
        )
        where = f"Session {key.session_id!r} of user {key.user_id!r}"
        if document is None or document.get("deleted") or document["expires_us"] <= now_us:
            return SessionNotFound(key.app_name, key.user_id, key.session_id)
        if document["incarnation"] != head.incarnation:
            return ConflictError(
                f"{where} was replaced (restored or imported) while this append ran; nothing "
                "was stored. Read the session again, then retry."
            )
        return ConflictError(
            f"{where}: this writer's lease expired before it finished (write_lease_ms="
            f"{self.settings.write_lease_ms}) and another writer took it over; nothing was "
            "stored. Retry, or raise write_lease_ms."
        )

    async def _append_leased(self, request: AppendRequest) -> AppendResult:
        key = request.key
        now_us = to_micros(request.expiry.now)
        token = self._token()
        document = await self._acquire(key, token, now_us)
        head = _Head.of(document)
        published = False
        uncertain = False  # a publishing update was sent and got no answer
        plan: _Plan | None = None
        try:
            if document.get("taken_over"):
                await self._recover(document, head)
            plan = self._plan(request, head, {})
            horizon, moved = self._horizon(head.horizon_us, request.expiry)
            for attempt in range(_WRITE_RETRIES):
                try:
                    await self._insert_events(head, plan, token, horizon, None)
                    break
                except PyMongoError as exc:
                    if not _driver.is_duplicate_key(exc) or attempt == _WRITE_RETRIES - 1:
                        raise
                    # Holding the lease, every event outside the visible range is
                    # a leftover (a dead writer's, a trim that did not run, or
                    # this insert's own first part); a clash inside it is a retry
                    # of a stored event.
                    await self._clear_unpublished(head, None)
                    plan = self._plan(request, head, await self._stored_events(head, request, None))
            if moved and plan.new:
                await self._move_horizon(head.incarnation, horizon, None)
            wider = bool(plan.app_delta or plan.user_delta)
            if plan.new:
                sets, unsets, event_count = self._publish(request, head, plan, horizon)
            else:
                sets, unsets, event_count = {}, {}, head.event_count
            unsets["pending"] = ""
            if wider:
                # Published with the events; applied to the state documents next.
                # If this writer dies in between, whoever takes the lease over
                # replays them (see _recover).
                sets["pending"] = {
                    "app": key.app_name,
                    "user": key.user_id,
                    "app_delta": _encode_delta(plan.app_delta),
                    "user_delta": _encode_delta(plan.user_delta),
                    "now_us": now_us,
                    "app_expires_us": _optional_micros(request.expiry.app),
                    "user_expires_us": _optional_micros(request.expiry.user),
                }
                del unsets["pending"]
            else:
                unsets["lock"] = ""
            uncertain = True
            try:
                outcome = await self._sessions.update_one(
                    {"_id": head.id, "lock.owner": token}, _update(sets, unsets)
                )
            except (PyMongoError, InvalidDocument) as exc:
                uncertain = _driver.may_have_applied(exc)
                raise
            uncertain = False
            if outcome.matched_count == 0:
                raise await self._lost_lease(key, head, now_us)
            published = True
            if wider:
                await self._apply_scopes(key, plan.app_delta, plan.user_delta, request.expiry, None)
                await self._sessions.update_one(
                    {"_id": head.id, "lock.owner": token},
                    {"$unset": {"lock": "", "pending": ""}},
                )
        finally:
            if not published:
                self._remember(key, None)
            # After an unanswered publish the events may be visible: leave them
            # and the lease; whoever takes the lease next clears what is not.
            if not published and not uncertain:
                with contextlib.suppress(PyMongoError):
                    if plan is not None:
                        await self._delete_own(head, plan, token)
                    await self._sessions.update_one(
                        {"_id": head.id, "lock.owner": token}, {"$unset": {"lock": ""}}
                    )
        assert plan is not None
        if plan.new:
            await self._trim(head.incarnation, request, plan.last_seq, None)
            head = replace(
                head, last_seq=plan.last_seq, event_count=event_count, horizon_us=horizon
            )
        self._remember(key, head)
        return self._result(request, plan, event_count)

    # --- app and user state --------------------------------------------------------------

    async def _read_state(
        self, scope: Scope, app_name: str, user_id: str | None, expiry: Expiry, *, refresh: bool
    ) -> dict[str, Any]:
        query = {
            "_id": state_id(app_name, user_id if scope is Scope.USER else None),
            "expires_us": {"$gt": to_micros(expiry.now)},
        }
        if refresh:
            sets: dict[str, Any] = {}
            unsets: dict[str, str] = {}
            _expiry_fields(expiry.app if scope is Scope.APP else expiry.user, sets, unsets)
            document = await self._state.find_one_and_update(
                query, _update(sets, unsets), return_document=ReturnDocument.AFTER
            )
        else:
            document = await self._state.find_one(query)
        return {} if document is None else decode_map(document.get("state"))

    async def _apply_state(
        self,
        scope: Scope,
        app_name: str,
        user_id: str | None,
        delta: Mapping[str, Any],
        expiry: Expiry,
        session: Any,
    ) -> dict[str, Any]:
        """Apply ``delta`` in one atomic update; an expired state starts again empty."""
        user = user_id if scope is Scope.USER else None
        expires = expiry.app if scope is Scope.APP else expiry.user
        sets: dict[str, Any] = {}
        unsets: dict[str, str] = {}
        map_delta("state", delta, sets, unsets)
        fields: dict[str, str] = {}
        expires_us = _expiry_fields(expires, fields, {})
        live = {"$gt": [{"$ifNull": ["$expires_us", 0]}, to_micros(expiry.now)]}
        pipeline: list[dict[str, Any]] = [
            {"$set": {"state": {"$cond": [live, {"$ifNull": ["$state", {}]}, {}]}}},
        ]
        if sets:
            pipeline.append({"$set": {path: {"$literal": text} for path, text in sets.items()}})
        if unsets:
            pipeline.append({"$unset": list(unsets)})
        tail: dict[str, Any] = {"app": app_name, "user": user, "expires_us": expires_us}
        if expires_us != NEVER:
            tail["expires_at"] = ttl_date(expires_us)
        pipeline.append({"$set": tail})
        if expires_us == NEVER:
            pipeline.append({"$unset": ["expires_at"]})
        for attempt in range(_WRITE_RETRIES):
            try:
                document = await self._state.find_one_and_update(
                    {"_id": state_id(app_name, user)},
                    pipeline,
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                    session=session,
                )
            except PyMongoError as exc:
                # Two first writers of one state upsert at once: one insert wins,
                # the other must run again as an update.
                if session is not None or not _driver.is_duplicate_key(exc):
                    raise
                document = None
            if document is not None:
                return decode_map(document.get("state"))
            if session is not None or attempt == _WRITE_RETRIES - 1:
                break
        raise ConflictError(
            f"The {scope.value} state of app {app_name!r} could not be written: concurrent "
            "first writes kept colliding; retry."
        )

    @_translated
    async def get_state(
        self, scope: Scope, app_name: str, user_id: str | None, expiry: Expiry, *, refresh: bool
    ) -> dict[str, Any]:
        """Read the app or user state (``{}`` if absent or expired); slide its expiry."""
        self._ready()
        return await self._read_state(scope, app_name, user_id, expiry, refresh=refresh)

    @_translated
    async def update_state(
        self,
        scope: Scope,
        app_name: str,
        user_id: str | None,
        delta: Mapping[str, Any],
        expiry: Expiry,
    ) -> dict[str, Any]:
        """Apply a delta to the app or user state in one atomic update; return the new state."""
        self._ready()
        if scope is Scope.USER and user_id is None:
            raise ConfigError("the user state scope needs a user_id")
        return await self._apply_state(scope, app_name, user_id, delta, expiry, None)

    # --- data tools ----------------------------------------------------------------------

    @_translated
    async def list_users(self, app_name: str, *, limit: int, after: str | None) -> list[str]:
        """Users of the app with sessions or user state, ascending, strictly after ``after``.

        Walks the ``(app, user, ...)`` indexes one distinct user at a time, so a
        page costs about ``2 * limit`` index seeks however many sessions each
        user has.
        """
        self._ready()
        users: list[str] = []
        floor = after
        while len(users) < limit:
            found = await asyncio.gather(
                self._next_user(self._sessions, app_name, floor, "session_key"),
                self._next_user(self._state, app_name, floor, "by_user"),
            )
            candidates = [user for user in found if user is not None]
            if not candidates:
                break
            floor = min(candidates)
            users.append(floor)
        return users

    @staticmethod
    async def _next_user(
        collection: Any, app_name: str, after: str | None, index: str
    ) -> str | None:
        query: dict[str, Any] = {"app": app_name, "user": {"$type": "string"}}
        if after is not None:
            query["user"] = {"$gt": after}
        rows = (
            await collection.find(query, {"user": 1, "_id": 0})
            .sort([("app", 1), ("user", 1)])
            .hint(index)
            .limit(1)
            .to_list(None)
        )
        return rows[0]["user"] if rows else None

    @_translated
    async def restore_session(self, session: Session, events: list[Event], expiry: Expiry) -> None:
        """Replace the session with exactly this content, in one atomic switch.

        The events go in first under a new incarnation id, invisible; then one
        replacement of the session document points it at them, so readers see
        the old session or the new one; then the old events are deleted. The
        events must be the consecutive seqs ending at ``session.last_seq``.
        """
        self._ready()
        check_restorable(session, events)
        key = SessionKey(session.app_name, session.user_id, session.id)
        now_us = to_micros(expiry.now)
        expires_us = NEVER if session.expires_at is None else to_micros(session.expires_at)
        horizon = None if expires_us == NEVER else expires_us + max(expires_us - now_us, 0)
        incarnation = uuid.uuid4().hex
        token = self._token()
        document = session_document(session, incarnation, expires_us, horizon)
        document.update(
            last_seq=session.last_seq,
            event_count=len(events),
            # A writer holding the old head must not publish into the new session.
            version=random.getrandbits(62),
        )
        del document["_id"]
        async with self._key_locks.hold(key):
            self._remember(key, None)
            for start in range(0, len(events), 1000):
                await self._events.insert_many(
                    [
                        event_document(incarnation, event, token, horizon)
                        for event in events[start : start + 1000]
                    ],
                    ordered=False,
                )
            old = await self._sessions.find_one(self._key_filter(key), {"incarnation": 1})
            await self._sessions.replace_one(self._key_filter(key), document, upsert=True)
            if old is not None and old["incarnation"] != incarnation:
                await self._events.delete_many({"session": old["incarnation"]})

    # --- maintenance -----------------------------------------------------------------------

    @_translated
    async def purge_expired(self, now: datetime) -> int:
        """Delete expired and half-deleted sessions with their events, and expired states.

        The server's TTL monitor does the same by itself about once a minute;
        this is for reclaiming space at once, and for leftovers of a delete
        that was interrupted.
        """
        self._ready()
        now_us = to_micros(now)
        cutoff = ttl_date(now_us)
        removed = 0
        rows = await self._sessions.find(
            {"$or": [{"expires_at": {"$lte": cutoff}}, {"deleted": True}]},
            {"_id": 1, "incarnation": 1, "expires_us": 1},
        ).to_list(None)
        doomed = [row for row in rows if row["expires_us"] <= now_us]
        for start in range(0, len(doomed), 500):
            batch = doomed[start : start + 500]
            await self._events.delete_many(
                {"session": {"$in": [row["incarnation"] for row in batch]}}
            )
            outcome = await self._sessions.delete_many(
                {"_id": {"$in": [row["_id"] for row in batch]}, "expires_us": {"$lte": now_us}}
            )
            removed += int(outcome.deleted_count)
        outcome = await self._state.delete_many(
            {"expires_at": {"$lte": cutoff}, "expires_us": {"$lte": now_us}}
        )
        return removed + int(outcome.deleted_count)


def _encode_delta(delta: Mapping[str, Any]) -> dict[str, str]:
    """A delta kept in a document until applied: escaped keys, JSON text values (null deletes)."""
    return {escape_key(key): dump_json(value) for key, value in delta.items()}


def _optional_micros(moment: datetime | None) -> int | None:
    return None if moment is None else to_micros(moment)


def _optional_datetime(micros: int | None) -> datetime | None:
    return None if micros is None else from_micros(micros)
