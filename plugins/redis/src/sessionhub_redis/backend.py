"""The Redis backend: one Lua script per primitive, hash-tagged keys, native TTL.

Layout: see :mod:`sessionhub_redis._keys`. Every key of one user's sessions
shares a hash tag, so each primitive is one script on one Cluster slot, sent as
``EVALSHA`` (as ``EVAL`` once, to a server that does not know it yet).

Atomicity. On a single node (or Sentinel) every primitive is one script,
app-state deltas included: an append stores all its events, applies all their
session, user and app deltas, trims, refreshes the TTLs and updates the index,
or does none of it. On Redis Cluster the app state lives in its own slot, so a
write carrying ``app:`` deltas is two scripts: the first does everything
above except the app deltas, and the second, sent right after it, applies the
app deltas of the events the first one stored. A failure between the two (the
client dies, the app-state node is unreachable) leaves the events, the session
and user deltas stored and the app delta not applied; the caller gets
:class:`~sessionhub.BackendUnavailable`, and a retry of the same events is a
no-op that does not apply it either (app-scope deltas on Cluster are applied
at most once). Everything without ``app:`` keys is one script on Cluster too.
The app scripts of two writes may arrive in either order, so such a write first
ticks the app's clock, its session script makes a stamp of it above the
session's last, and the app script applies a key only if no later stamp set it:
a session's later write wins, as does a write begun after another returned.
Creating a session or writing a user's state also records the user in the
app's user index (for ``list_users``): in the same script on a single node, as
a command of its own sent first on Cluster.

Durability is the server's: with ``appendonly yes`` and ``appendfsync always``
an acknowledged append survives a crash of the server; ``everysec`` may lose
the last second; without AOF, what was written since the last snapshot.

TTL. Expiry times are stored with each record and checked against the
service's clock, so an expired session is invisible at once; each write (and
each sliding read) also sets a ``PEXPIRE`` of ``expires_at - now`` on every key
of the session, so Redis reclaims the storage by itself. Index entries of
vanished sessions are dropped as listings meet them. ``purge_expired`` has
nothing to do.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import sys
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

from pydantic import Field, SecretStr, field_validator, model_validator
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import NoScriptError, RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

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
from sessionhub.settings import mask_url
from sessionhub_redis import _scripts
from sessionhub_redis._connect import Connection, ConnectionCache, check_url, connect
from sessionhub_redis._keys import KeyLayout, SessionKeys, UserKeys, escape

__all__ = ["RedisBackend", "RedisSettings", "DEFAULT_URL", "DEFAULT_KEY_PREFIX"]

DEFAULT_URL = "redis://localhost:6379/0"
"""The server used when no URL is configured."""

DEFAULT_KEY_PREFIX = "sessionhub:"
"""The prefix of every key this backend writes, unless ``key_prefix`` says otherwise."""

_MILLISECOND = timedelta(milliseconds=1)
_FIRST_MICROS = to_micros(datetime.min.replace(tzinfo=timezone.utc))
_WITHOUT_SEQ = {"seq"}
_SEQ_ZERO = b',"seq":0'
_SEQ_ZERO_ROLE = _SEQ_ZERO + b',"role":'
_EVENT_JSON = Event.__pydantic_serializer__.to_json  # bytes, without model_dump_json's decode
# Events serialise id, seq, role first; then the first b',"seq":0,"role":' in the
# text is the event's own seq (an id's quotes are escaped, content comes later).
_SEQ_SECOND = list(Event.model_fields)[:3] == ["id", "seq", "role"]
_UNAVAILABLE = (RedisError, RedisClusterException, OSError, asyncio.TimeoutError)


class RedisSettings(BackendSettings):
    """Options of the Redis backend (``[redis]`` in the config, ``SESSIONHUB_REDIS__…``).

    ``url`` picks the deployment: ``redis://host:6379/0``, ``rediss://`` (TLS),
    ``unix:///path/redis.sock``, ``redis+sentinel://h1:26379,h2:26379/mymaster``,
    ``redis+cluster://h1:7000,h2:7000`` or ``rediss+cluster://``.
    """

    url: SecretStr | None = Field(
        default=SecretStr(DEFAULT_URL),
        description="Where Redis is (see the URL forms above).",
    )
    key_prefix: str = Field(
        default=DEFAULT_KEY_PREFIX,
        max_length=128,
        description="Prefix of every key; lets several deployments share one server. "
        "No '{' or '}'.",
    )
    username: str | None = Field(default=None, description="ACL user name (overrides the URL's).")
    password: SecretStr | None = Field(
        default=None, description="Password (overrides the one in the URL)."
    )
    socket_timeout: float = Field(
        default=5.0, gt=0, description="Seconds to wait for a reply before giving up."
    )
    socket_connect_timeout: float = Field(
        default=5.0, gt=0, description="Seconds to wait for a connection to open."
    )
    retry_attempts: int = Field(
        default=2,
        ge=0,
        le=20,
        description="Retries of a command after a connection error or timeout (every "
        "primitive is safe to retry). An unreachable server is reported after at most "
        "(retry_attempts + 1) x the timeouts, plus the backoff.",
    )
    retry_backoff: float = Field(
        default=0.05,
        ge=0,
        description="Seconds before the first retry; doubles with each retry, at most 1 s.",
    )
    max_connections: int | None = Field(
        default=None,
        ge=1,
        description="Cap on open connections (per node on Cluster); commands wait for a free "
        "one up to socket_connect_timeout. None: no cap.",
    )
    sentinel_master: str | None = Field(
        default=None,
        description="Sentinel master name, when the redis+sentinel:// URL does not give one.",
    )
    sentinel_password: SecretStr | None = Field(
        default=None, description="Password of the Sentinel processes themselves."
    )
    cluster: bool | None = Field(
        default=None,
        description="Talk Redis Cluster protocol. None: only for redis+cluster:// and "
        "rediss+cluster:// URLs.",
    )

    @field_validator("key_prefix")
    @classmethod
    def _no_braces(cls, value: str) -> str:
        if "{" in value or "}" in value:
            raise ValueError(
                "must not contain '{' or '}': they start Redis Cluster hash tags "
                "(try 'sessionhub:' or 'myapp:sessions:')"
            )
        if not value.isprintable():
            raise ValueError("must contain printable characters only")
        return value

    @model_validator(mode="after")
    def _known_scheme(self) -> RedisSettings:
        if self.url is not None:
            try:
                check_url(self.url.get_secret_value())
            except ConfigError as exc:
                raise ValueError(str(exc)) from exc
        return self


def _from_micros(value: Any) -> datetime:
    return from_micros(int(value))


def _expiry_args(expires_at: datetime | None, now: datetime) -> list[str]:
    """``[exp µs, ttl ms]`` for a script, or two empty strings for no expiry."""
    if expires_at is None:
        return ["", ""]
    ttl = max(1, math.ceil((expires_at - now) / _MILLISECOND))
    return [str(to_micros(expires_at)), str(ttl)]


def _time_key(moment: datetime) -> str:
    """A time as scripts compare it: µs since 0001-01-01 UTC in 18 digits, in time order."""
    return f"{to_micros(moment) - _FIRST_MICROS:018d}"


def _pairs(delta: Mapping[str, Any]) -> list[Any]:
    """A delta as a script takes it: the count, then (key, JSON text or '' to delete)."""
    flat: list[Any] = [len(delta)]
    for key, value in delta.items():
        flat.append(key)
        flat.append("" if value is None else dump_json(value))
    return flat


def _json_without_seq(event: Event) -> bytes:
    """The event as JSON without its seq field (scripts write the seq they allocate)."""
    if _SEQ_SECOND and event.seq == 0:
        text = _EVENT_JSON(event)
        at = text.find(_SEQ_ZERO_ROLE)
        if at > 0:
            return text[:at] + text[at + len(_SEQ_ZERO) :]
    return _EVENT_JSON(event, exclude=_WITHOUT_SEQ)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _fields(flat: Sequence[Any]) -> Iterable[tuple[str, Any]]:
    it = iter(flat)
    return ((_text(name), value) for name, value in zip(it, it, strict=True))


def _state(flat: Sequence[Any], now: int) -> dict[str, Any]:
    """A state hash's fields as a dict (``{}`` if it expired by ``now``)."""
    state: dict[str, Any] = {}
    for name, value in _fields(flat):
        if name == "exp":
            if int(value) <= now:
                return {}
        else:
            state[name[2:]] = json.loads(value)
    return state


def _session_fields(session: Session, *, last_seq: int, count: int) -> list[Any]:
    """A new session hash as (field, value) pairs: header, ``s:`` state, ``m:`` metadata."""
    fields: list[Any] = [
        "id", session.id,
        "app", session.app_name,
        "user", session.user_id,
        "root", session.root_id,
        "depth", session.depth,
        "created", to_micros(session.created_at),
        "upd", to_micros(session.updated_at),
        "last_seq", last_seq,
        "count", count,
    ]  # fmt: skip
    if session.parent_id is not None:
        fields += ["parent", session.parent_id]
    for name, value in session.state.items():
        fields += ["s:" + name, dump_json(value)]
    for name, value in session.metadata.items():
        fields += ["m:" + name, dump_json(value)]
    return fields


def _session(flat: Sequence[Any], events: list[Event] | None = None) -> Session:
    """Build a session from its hash fields (header, ``s:`` state, ``m:`` metadata)."""
    head: dict[str, str] = {}
    state: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    for name, value in _fields(flat):
        if name.startswith("s:"):
            state[name[2:]] = json.loads(value)
        elif name.startswith("m:"):
            metadata[name[2:]] = json.loads(value)
        else:
            head[name] = _text(value)
    exp = head.get("exp")
    return Session.model_construct(
        id=head["id"],
        app_name=head["app"],
        user_id=head["user"],
        parent_id=head.get("parent"),
        root_id=head["root"],
        depth=int(head["depth"]),
        created_at=_from_micros(head["created"]),
        updated_at=_from_micros(head["upd"]),
        expires_at=_from_micros(exp) if exp else None,
        state=state,
        metadata=metadata,
        event_count=int(head["count"]),
        last_seq=int(head["last_seq"]),
        events=events if events is not None else [],
    )


class _Script:
    """A Lua script sent by SHA1 (``EVALSHA``), or whole (``EVAL``) when the server lacks it.

    ``EVAL`` caches the script on the node that ran it, so a restarted server
    or a new Cluster node costs one full send, and nothing is sent to nodes
    that do not need it.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(
        self, client: Redis | RedisCluster, keys: Sequence[str], args: Sequence[Any]
    ) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.eval(self.source, len(keys), *keys, *args)

    if sys.version_info >= (3, 11):

        async def send(
            self, connection: AbstractConnection, keys: Sequence[str], args: Sequence[Any]
        ) -> Any:
            """Run the script on ``connection`` (what ``__call__`` does through a client)."""
            timeout: float | None = connection.socket_timeout
            if not timeout:
                return await self._exchange(connection, keys, args)
            # One deadline for the write and the read, instead of one each.
            connection.socket_timeout = None
            try:
                async with asyncio.timeout(timeout):
                    return await self._exchange(connection, keys, args)
            except TimeoutError:
                raise RedisTimeoutError(f"Timeout waiting for a reply after {timeout} s") from None
            finally:
                connection.socket_timeout = timeout

    else:

        async def send(
            self, connection: AbstractConnection, keys: Sequence[str], args: Sequence[Any]
        ) -> Any:
            """Run the script on ``connection`` (what ``__call__`` does through a client)."""
            return await self._exchange(connection, keys, args)

    async def _exchange(
        self, connection: AbstractConnection, keys: Sequence[str], args: Sequence[Any]
    ) -> Any:
        await connection.send_command("EVALSHA", self.sha, len(keys), *keys, *args)
        try:
            return await connection.read_response()
        except NoScriptError:
            await connection.send_command("EVAL", self.source, len(keys), *keys, *args)
            return await connection.read_response()


_SCRIPTS = {
    "append": _Script(_scripts.APPEND),
    "create": _Script(_scripts.CREATE),
    "get": _Script(_scripts.GET),
    "list": _Script(_scripts.LIST),
    "update": _Script(_scripts.UPDATE),
    "delete": _Script(_scripts.DELETE),
    "state": _Script(_scripts.STATE),
    "app_delta": _Script(_scripts.APP_DELTA),
    "restore": _Script(_scripts.RESTORE),
}


class RedisBackend(Backend):
    """Sessions, events and state in Redis (single node, Sentinel or Cluster), on redis.asyncio.

    ``RedisBackend()`` connects to ``redis://localhost:6379/0``;
    ``RedisBackend(RedisSettings(url=..., key_prefix=...))`` elsewhere. Pass
    ``client=`` (a ``redis.asyncio.Redis`` or ``RedisCluster``) or ``pool=`` (a
    ``redis.asyncio.ConnectionPool``) to use your own connections: they are
    used as they are and never closed by :meth:`close`, which releases only
    what the backend created. The settings' ``key_prefix`` applies either way.
    """

    name: ClassVar[str] = "redis"
    capabilities: ClassVar[Capabilities] = Capabilities(
        persistent=True, shared_store=True, multi_process=True, native_ttl=True, cluster=True
    )

    def __init__(
        self,
        settings: RedisSettings | None = None,
        *,
        client: Redis | RedisCluster | None = None,
        pool: ConnectionPool | None = None,
    ) -> None:
        if client is not None and pool is not None:
            raise ConfigError("Pass either client= or pool= to RedisBackend, not both.")
        self.settings: RedisSettings = settings if settings is not None else RedisSettings()
        """The validated settings."""
        self.keys: KeyLayout = KeyLayout(self.settings.key_prefix)
        """The key layout under the configured prefix."""
        self._given_client = client
        self._given_pool = pool
        self._connection: Connection | None = None
        self._cluster = False
        self._cluster_ready = False
        self._cluster_lock: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self._where()!r}, key_prefix={self.keys.prefix!r})"

    def _where(self) -> str:
        if self._given_client is not None:
            return "<given client>"
        if self._given_pool is not None:
            return "<given pool>"
        url = self.settings.url
        return mask_url(url.get_secret_value()) if url is not None else DEFAULT_URL

    # --- lifecycle ------------------------------------------------------------------

    @property
    def client(self) -> Redis | RedisCluster:
        """The redis-py client in use (opened on first use)."""
        if self._connection is None:
            self._connection = self._connect()
        return self._connection.client

    @property
    def is_cluster(self) -> bool:
        """Whether the client speaks Redis Cluster protocol (app state is then a second script)."""
        if self._connection is None:
            self._connection = self._connect()
        return self._cluster

    def _connect(self) -> Connection:
        given = self._given_client
        if given is not None:
            connection = Connection(given)
            if type(given) is Redis and given.connection is None:
                connection.cache = ConnectionCache(given.connection_pool, keep=False)
        elif self._given_pool is not None:
            client = Redis(connection_pool=self._given_pool)
            connection = Connection(
                client,
                [lambda: client.aclose(close_connection_pool=False)],
                ConnectionCache(self._given_pool, keep=False),
            )
        else:
            connection = connect(self.settings)
        self._cluster = isinstance(connection.client, RedisCluster)
        return connection

    async def open(self) -> None:
        """Create the client; connections open on first use. Idempotent."""
        _ = self.client

    async def _ready(self) -> Redis | RedisCluster:
        client = self.client
        if self._cluster and not self._cluster_ready:
            assert isinstance(client, RedisCluster)
            # redis-py's cluster client races when many commands trigger its
            # first topology discovery at once; discover it once, up front.
            if self._cluster_lock is None:
                self._cluster_lock = asyncio.Lock()
            async with self._cluster_lock:
                if not self._cluster_ready:
                    await client.initialize()
                    self._cluster_ready = True
        return client

    async def close(self) -> None:
        """Close the client and pools this backend created (never given ones). Idempotent."""
        connection, self._connection = self._connection, None
        self._cluster_ready = False
        self._cluster_lock = None  # bound to one event loop; the next open may run on another
        if connection is not None:
            await connection.close()

    async def ping(self) -> None:
        """Send ``PING``; raise :class:`~sessionhub.BackendUnavailable` if no answer comes."""
        try:
            await (await self._ready()).ping()
        except _UNAVAILABLE as exc:
            raise self._unavailable(exc) from exc

    # --- running scripts ---------------------------------------------------------------

    def _unavailable(self, exc: BaseException) -> BackendUnavailable:
        return BackendUnavailable(
            f"Redis at {self._where()} failed: {type(exc).__name__}: {str(exc).rstrip('.')}. "
            "Check that the server is running and reachable, and the url, password and timeouts."
        )

    async def _run(self, script: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        run = _SCRIPTS[script]
        try:
            client = await self._ready()
            cache = self._connection.cache if self._connection is not None else None
            if cache is not None:
                return await cache.call(lambda connection: run.send(connection, keys, args))
            return await run(client, keys, args)
        except _UNAVAILABLE as exc:
            raise self._unavailable(exc) from exc

    def _user(self, app_name: str, user_id: str) -> UserKeys:
        return self.keys.user(app_name, user_id)

    def _session_keys(self, key: SessionKey) -> tuple[UserKeys, SessionKeys]:
        return self._user(key.app_name, key.user_id), self.keys.session(
            key.app_name, key.user_id, key.session_id
        )

    def _script_keys(self, user: UserKeys, keys: SessionKeys, app_name: str) -> list[str]:
        names = [keys.hash, keys.events, keys.ids, keys.times, user.state, user.index]
        if not self.is_cluster:
            names.append(self.keys.app_state(app_name))
        return names

    def _head(self, user: UserKeys, key: SessionKey, expiry: Expiry, fourth: Any) -> list[Any]:
        """The ARGV every session script starts with."""
        now = expiry.now
        return [
            to_micros(now),
            *_expiry_args(expiry.session, now),
            fourth,
            *_expiry_args(expiry.user, now),
            *_expiry_args(expiry.app, now),
            user.base,
            key.session_id,
        ]

    async def _app_clock(self, app_name: str) -> int:
        """Cluster: tick the app's write clock, before a write with an app delta begins."""
        try:
            client = await self._ready()
            return int(await client.hincrby(self.keys.app_stamps(app_name), "clock", 1))
        except _UNAVAILABLE as exc:
            raise self._unavailable(exc) from exc

    async def _app_write(
        self,
        app_name: str,
        delta: Mapping[str, Any],
        expiry: Expiry,
        what: str,
        *,
        stamp: int,
        writer: str,
    ) -> dict[str, Any]:
        """Cluster: apply a write's app delta in the app's slot, each key unless set later.

        ``stamp`` is what the session's script made of the app clock; ``writer``
        (the session hash's key) orders equal stamps.
        """
        args = [
            to_micros(expiry.now),
            *_expiry_args(expiry.app, expiry.now),
            stamp,
            writer,
            *_pairs(delta),
        ]
        keys = [self.keys.app_state(app_name), self.keys.app_stamps(app_name)]
        try:
            flat = await self._run("app_delta", keys, args)
        except BackendUnavailable as exc:
            raise BackendUnavailable(
                f"{what} was stored, but its app: state delta was not applied: {exc}"
            ) from exc.__cause__
        return _state(flat, to_micros(expiry.now))

    async def _app_read(self, app_name: str, expiry: Expiry, refresh: bool) -> dict[str, Any]:
        return await self.get_state(Scope.APP, app_name, None, expiry, refresh=refresh)

    async def _add_user(self, app_name: str, user_id: str) -> None:
        """Record the user in the app's user index (Cluster: before the user's own write)."""
        try:
            await (await self._ready()).zadd(self.keys.app_users(app_name), {user_id: 0})
        except _UNAVAILABLE as exc:
            raise self._unavailable(exc) from exc

    # --- the primitives -----------------------------------------------------------------

    async def create_session(
        self, session: Session, deltas: StateDeltas, expiry: Expiry
    ) -> StoredSession:
        """Store the session (replacing an expired one) with its user and app deltas."""
        key = SessionKey(session.app_name, session.user_id, session.id)
        user, keys = self._session_keys(key)
        fields = _session_fields(session, last_seq=0, count=0)
        stamp = 0
        if self.is_cluster and deltas.app:
            stamp = await self._app_clock(key.app_name)
            fields += ["ast", stamp]
        parent_escaped = escape(session.parent_id) if session.parent_id is not None else ""
        args = self._head(user, key, expiry, uuid.uuid4().hex)
        args += [parent_escaped, len(fields) // 2, *fields, *_pairs(deltas.user)]
        args += [0] if self.is_cluster else _pairs(deltas.app)
        args.append(key.user_id)
        script_keys = self._script_keys(user, keys, key.app_name)
        if self.is_cluster:
            await self._add_user(key.app_name, key.user_id)
        else:
            script_keys.append(self.keys.app_users(key.app_name))
        reply = await self._run("create", script_keys, args)
        if reply[0] == 0:
            raise SessionExists(key.app_name, key.user_id, key.session_id)
        now = to_micros(expiry.now)
        if self.is_cluster:
            if deltas.app and reply[0] == 1:
                app_state = await self._app_write(
                    key.app_name, deltas.app, expiry, "The session", stamp=stamp, writer=keys.hash
                )
            else:
                app_state = await self._app_read(key.app_name, expiry, refresh=False)
        else:
            app_state = _state(reply[2], now)
        stored = session.model_copy(update={"expires_at": expiry.session, "events": []})
        return StoredSession(stored, app_state, _state(reply[1], now))

    async def get_session(
        self, key: SessionKey, window: EventWindow, expiry: Expiry, *, refresh: bool
    ) -> StoredSession | None:
        """Read the session and only the events of ``window``; slide the TTLs with ``refresh``."""
        user, keys = self._session_keys(key)
        after_time = window.after_time
        args = self._head(user, key, expiry, None)
        args[1:4] = ["1" if refresh else "", *_expiry_args(expiry.session, expiry.now)]
        args += [
            window.after_seq or 0,
            "" if window.last_n is None else window.last_n,
            "" if after_time is None else _time_key(after_time),
        ]
        script_keys = self._script_keys(user, keys, key.app_name)
        if self.is_cluster:
            reply, app_state = await asyncio.gather(
                self._run("get", script_keys, args),
                self._app_read(key.app_name, expiry, refresh),
            )
        else:
            reply = await self._run("get", script_keys, args)
        if reply[0] == 0:
            return None
        now = to_micros(expiry.now)
        if not self.is_cluster:
            app_state = _state(reply[4], now)
        events = [Event.model_validate_json(text) for text in reply[2]]
        if after_time is not None and not reply[5]:
            # Events stored before their times were kept: the script left the window to us.
            events = [e for e in events if e.timestamp is None or e.timestamp > after_time]
            if window.last_n is not None:
                events = events[max(0, len(events) - window.last_n) :]
        session = _session(reply[1], events)
        if refresh:
            session.expires_at = expiry.session
        return StoredSession(session, app_state, _state(reply[3], now))

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
        """One keyset page from the user's (or the parent's children) index, newest first."""
        user = self._user(app_name, user_id)
        index = user.index if parent_id is None else user.children(parent_id)
        args = [
            to_micros(now),
            limit,
            "" if after is None else to_micros(after.updated_at),
            "" if after is None else after.session_id,
            user.base,
            parent_id or "",
        ]
        page = await self._run("list", [index], args)
        return [_session(fields) for fields in page]

    async def append(self, request: AppendRequest) -> AppendResult:
        """Store the events with their deltas, the trim and the TTLs in one script."""
        key, expiry, cluster = request.key, request.expiry, self.is_cluster
        user, keys = self._session_keys(key)
        limit = "" if request.event_limit is None else request.event_limit
        args = self._head(user, key, expiry, limit)
        clock: int | str = ""
        if cluster and any(delta.app for delta in request.deltas):
            clock = await self._app_clock(key.app_name)
        args += [len(request.events), clock]
        for event, delta in zip(request.events, request.deltas, strict=True):
            args += [event.id, _json_without_seq(event), _time_key(event.timestamp or expiry.now)]
            args += _pairs(delta.session)
            args += _pairs(delta.user)
            args += [0] if cluster else _pairs(delta.app)
        reply = await self._run("append", self._script_keys(user, keys, key.app_name), args)
        if reply[0] == 0:
            raise SessionNotFound(key.app_name, key.user_id, key.session_id)
        stored: list[Event] = []
        app_delta: dict[str, Any] = {}
        for index, event in enumerate(request.events):
            seq, text = reply[4 + 2 * index], reply[5 + 2 * index]
            if text is None:
                event.seq = seq
                stored.append(event)
                app_delta.update(request.deltas[index].app)
            elif text:
                stored.append(Event.model_validate_json(text))
            else:
                raise ConflictError(
                    f"Event {event.id!r} is recorded in session {key.session_id!r} with seq "
                    f"{seq}, but its record is missing (the session's keys were changed "
                    "outside sessionhub)."
                )
        if cluster and app_delta:
            await self._app_write(
                key.app_name, app_delta, expiry, "The append", stamp=reply[3], writer=keys.hash
            )
        return AppendResult(
            events=stored,
            last_seq=reply[1],
            event_count=reply[2],
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
        """Apply state and metadata deltas without an event, in one script."""
        user, keys = self._session_keys(key)
        clock = await self._app_clock(key.app_name) if self.is_cluster and deltas.app else ""
        args = self._head(user, key, expiry, clock)
        args += [*_pairs(deltas.session), *_pairs(metadata), *_pairs(deltas.user)]
        args += [0] if self.is_cluster else _pairs(deltas.app)
        reply = await self._run("update", self._script_keys(user, keys, key.app_name), args)
        if reply[0] == 0:
            raise SessionNotFound(key.app_name, key.user_id, key.session_id)
        now = to_micros(expiry.now)
        if self.is_cluster:
            if deltas.app:
                app_state = await self._app_write(
                    key.app_name, deltas.app, expiry, "The update", stamp=reply[4], writer=keys.hash
                )
            else:
                app_state = await self._app_read(key.app_name, expiry, refresh=False)
        else:
            app_state = _state(reply[3], now)
        return StoredSession(_session(reply[1]), app_state, _state(reply[2], now))

    async def delete_session(self, key: SessionKey, now: datetime) -> bool:
        """Delete the session's keys and its index entries in one script."""
        user, keys = self._session_keys(key)
        reply = await self._run(
            "delete",
            [keys.hash, keys.events, keys.ids, keys.times, user.index],
            [user.base, key.session_id, to_micros(now)],
        )
        return bool(reply)

    def _state_key(self, scope: Scope, app_name: str, user_id: str | None) -> str:
        if scope is Scope.APP:
            return self.keys.app_state(app_name)
        if user_id is None:
            raise ValueError("the user state scope needs a user_id")
        return self._user(app_name, user_id).state

    async def get_state(
        self, scope: Scope, app_name: str, user_id: str | None, expiry: Expiry, *, refresh: bool
    ) -> dict[str, Any]:
        """Read the app or user state; slide its expiry with ``refresh``."""
        state_key = self._state_key(scope, app_name, user_id)
        if refresh:
            expires_at = expiry.app if scope is Scope.APP else expiry.user
            args = [to_micros(expiry.now), "refresh", *_expiry_args(expires_at, expiry.now), 0]
            flat = await self._run("state", [state_key], args)
        else:
            try:
                flat = await (await self._ready()).execute_command("HGETALL", state_key)
            except _UNAVAILABLE as exc:
                raise self._unavailable(exc) from exc
        if isinstance(flat, dict):  # redis-py turns a plain HGETALL reply into a dict
            flat = [item for pair in flat.items() for item in pair]
        return _state(flat, to_micros(expiry.now))

    async def update_state(
        self,
        scope: Scope,
        app_name: str,
        user_id: str | None,
        delta: Mapping[str, Any],
        expiry: Expiry,
    ) -> dict[str, Any]:
        """Apply ``delta`` to the app or user state in one script; return the new state."""
        state_key = self._state_key(scope, app_name, user_id)
        expires_at = expiry.app if scope is Scope.APP else expiry.user
        args = [
            to_micros(expiry.now),
            "update",
            *_expiry_args(expires_at, expiry.now),
            *_pairs(delta),
        ]
        script_keys = [state_key]
        if scope is Scope.USER and user_id is not None:
            args.append(user_id)
            if self.is_cluster:
                await self._add_user(app_name, user_id)
            else:
                script_keys.append(self.keys.app_users(app_name))
        return _state(await self._run("state", script_keys, args), to_micros(expiry.now))

    async def list_users(self, app_name: str, *, limit: int, after: str | None) -> list[str]:
        """One page of the app's user index, ascending (byte order, as ``sorted`` on ids).

        The index records every user who had a session or user state; users whose
        data has since expired or been deleted stay in it.
        """
        low = "-" if after is None else "(" + after
        try:
            client = await self._ready()
            users = await client.zrangebylex(
                self.keys.app_users(app_name), low, "+", start=0, num=limit
            )
        except _UNAVAILABLE as exc:
            raise self._unavailable(exc) from exc
        return [_text(user) for user in users]

    async def restore_session(self, session: Session, events: list[Event], expiry: Expiry) -> None:
        """Replace the session with exactly this content, in one script.

        The events must be the session's newest, with contiguous seqs ending at
        ``last_seq`` (what an export of any sessionhub backend holds).
        """
        check_restorable(session, events)
        key = SessionKey(session.app_name, session.user_id, session.id)
        user, keys = self._session_keys(key)
        fields = _session_fields(session, last_seq=session.last_seq, count=len(events))
        fields += ["ct", ""]
        times = [_time_key(event.timestamp or session.updated_at) for event in events]
        if times:
            fields += ["tnew", times[-1]]
        if times != sorted(times):
            fields += ["tuno", 1]
        args: list[Any] = [
            to_micros(expiry.now),
            *_expiry_args(session.expires_at, expiry.now),
            to_micros(session.updated_at),
            user.base,
            session.id,
            escape(session.parent_id) if session.parent_id is not None else "",
            len(fields) // 2,
            *fields,
            len(events),
        ]
        for event, time in zip(events, times, strict=True):
            text = event.model_dump_json(exclude=_WITHOUT_SEQ)
            args += [event.id, event.seq, time, f'{{"seq":{event.seq},{text[1:]}']
        args.append(session.user_id)
        script_keys = [keys.hash, keys.events, keys.ids, keys.times, user.index]
        if self.is_cluster:
            await self._add_user(session.app_name, session.user_id)
        else:
            script_keys.append(self.keys.app_users(session.app_name))
        await self._run("restore", script_keys, args)

    async def purge_expired(self, now: datetime) -> int:
        """Return 0: Redis reclaims expired keys by itself (``native_ttl``).

        Listings drop index entries of vanished sessions; finding every user
        to do more here would take ``SCAN``, which this backend never uses.
        """
        return 0
