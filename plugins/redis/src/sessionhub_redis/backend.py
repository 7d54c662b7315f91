"""The Redis backend's primitives: each one builds its script's arguments and reads its reply.

The scripts are in :mod:`._scripts`, their named arguments in :mod:`._protocol`
and replies in :mod:`._replies`, the differences between a single node and Redis Cluster in
:mod:`._topology`, the records' shapes in :mod:`._codec`.

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
:class:`~sessionhub.BackendUnavailable` (or :class:`~sessionhub.BackendError`
if the node answered with an error), and a retry of the same events is a
no-op that does not apply it either (app-scope deltas on Cluster are applied
at most once). Everything without ``app:`` keys is one script on Cluster too.
The app scripts of two writes may arrive in either order, so such a write first
ticks the app's clock, its session script makes a stamp of it above the
session's last, and the app script applies a key only if no later stamp set it:
a session's later write wins, as does a write begun after another returned.
Creating a session or writing a user's state also records the user in the
app's user index (for ``list_users``) and the app in the index of apps (for
``list_apps``): in the same script on a single node, as commands of their own
sent first on Cluster. Every write that moves a session's ``updated_at`` moves
its entry in the app's index of every user's sessions (for
``list_app_sessions``, see :mod:`._app_index`): in the same script on a single
node; on Cluster, where that index lives in the app's slot, as a command of its
own sent after the session's script, so a failure between the two leaves the
entry behind until the session's next write or a listing that meets it. An
append with ``expected_last_seq`` checks it in its script before writing
anything; ``pop_event``, ``replace_events`` and ``restore_session`` (in
:mod:`._rewrites`) are one script each on the session's slot, on Cluster too
(there followed by the app index's command).

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
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster

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
    Session,
    SessionExists,
    SessionKey,
    SessionNotFound,
    StateDeltas,
    StateKey,
    StoredSession,
)
from sessionhub.backend_tools import events_from_json, mask_url, to_micros
from sessionhub_redis import _app_index, _codec
from sessionhub_redis._conflicts import VERIFY_ROUNDS, stored_event, verified
from sessionhub_redis._connect import Connection, connect
from sessionhub_redis._keys import KeyLayout, escape
from sessionhub_redis._protocol import (
    APPEND,
    CREATE,
    DELETE,
    LIST,
    STATE,
    UPDATE,
    AppendArgs,
    AppendedEvent,
    CreateArgs,
    DeleteArgs,
    GetArgs,
    ListArgs,
    SessionArgs,
    StateArgs,
    UpdateArgs,
    or_blank,
)
from sessionhub_redis._replies import (
    MovedOn,
    Unverified,
    decode_append,
    decode_create,
    decode_get,
    decode_list,
    decode_update,
    newest_events,
)
from sessionhub_redis._rewrites import HistoryRewrites, moved_on
from sessionhub_redis._settings import DEFAULT_KEY_PREFIX, DEFAULT_URL, RedisSettings
from sessionhub_redis._topology import Cluster, SingleNode, Topology

__all__ = ["RedisBackend", "RedisSettings", "DEFAULT_URL", "DEFAULT_KEY_PREFIX"]

_LIST_BUDGET_SLACK = 64
"""A LIST call examines at most ``limit`` + this many index entries."""

_READ_BESIDE_FROM = 64
"""A read of every event, or of at least this many of the newest, fetches them by an
``LRANGE`` beside GET (``SingleNode.get_beside``); a shorter one costs less in GET's reply
than the transaction's own replies."""

_Args = TypeVar("_Args", bound=SessionArgs)


class RedisBackend(HistoryRewrites, Backend):
    """sessionhub on Redis: a single server, a Sentinel master, or a Redis Cluster.

    Pass ``settings``; or ``client=`` an existing ``redis.asyncio.Redis`` /
    ``RedisCluster``; or ``pool=`` an existing ``ConnectionPool``. A client or
    pool that was passed in is never closed by :meth:`close`.
    """

    name: ClassVar[str] = "redis"
    capabilities: ClassVar[Capabilities] = Capabilities(
        persistent=True,
        shared_store=True,
        multi_process=True,
        native_ttl=True,
        cluster=True,
        compare_and_set=True,
        atomic_conflicts=True,
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
        self._topology: Topology | None = None

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
        return self._open().client

    @property
    def is_cluster(self) -> bool:
        """Whether the client speaks Redis Cluster protocol (app state is then a second script)."""
        return isinstance(self._open(), Cluster)

    def _open(self) -> Topology:
        if self._topology is None:
            self._connection = connect(self.settings, self._given_client, self._given_pool)
            self._topology = self._topology_for(self._connection)
        return self._topology

    def _topology_for(self, connection: Connection) -> Topology:
        """The strategy for the connection's deployment: :class:`Cluster` or :class:`SingleNode`."""
        if isinstance(connection.client, RedisCluster):
            return Cluster(connection.client, self.keys, self._where())
        return SingleNode(connection.client, self.keys, self._where(), connection.cache)

    async def open(self) -> None:
        """Create the client; connections open on first use. Idempotent."""
        self._open()

    async def close(self) -> None:
        """Close the client and pools this backend created (never given ones). Idempotent."""
        connection, self._connection = self._connection, None
        topology, self._topology = self._topology, None
        if topology is not None:
            await topology.close()
        if connection is not None:
            await connection.close()

    async def ping(self) -> None:
        """Send ``PING``; raise :class:`~sessionhub.BackendUnavailable` if no answer comes."""
        await self._open().command("PING")

    # --- building arguments -------------------------------------------------------------

    def _key_fields(self, key: SessionKey) -> dict[str, Any]:
        """The fields of :class:`SessionKeysArgs`: the session's keys and the user's index."""
        user = self.keys.user(key.app_name, key.user_id)
        keys = self.keys.session(key.app_name, key.user_id, key.session_id)
        return {
            "session_hash": keys.hash,
            "event_list": keys.events,
            "id_index": keys.ids,
            "time_list": keys.times,
            "user_index": user.index,
        }

    def _session_args(
        self, cls: type[_Args], topology: Topology, key: SessionKey, expiry: Expiry, **more: Any
    ) -> _Args:
        """``cls``'s arguments: those every session script takes, and ``more``."""
        user = self.keys.user(key.app_name, key.user_id)
        now = expiry.now
        exp, ttl = _codec.expiry(expiry.session, now)
        user_exp, user_ttl = _codec.expiry(expiry.user, now)
        app_exp, app_ttl = _codec.expiry(expiry.app, now)
        return cls(
            **self._key_fields(key),
            user_state=user.state,
            app_state=topology.app_state_key(key.app_name),
            now=to_micros(now),
            exp=exp,
            ttl=ttl,
            user_exp=user_exp,
            user_ttl=user_ttl,
            app_exp=app_exp,
            app_ttl=app_ttl,
            base=user.base,
            session_id=key.session_id,
            **more,
        )

    # --- the primitives -----------------------------------------------------------------

    async def create_session(
        self, session: Session, deltas: StateDeltas, expiry: Expiry
    ) -> StoredSession:
        """Store the session (replacing an expired one) with its user and app deltas."""
        topology = self._open()
        key = SessionKey(session.app_name, session.user_id, session.id)
        # On Cluster, the app's slot gets the clock tick and the indexes first, at once.
        clock, users, apps, _ = await asyncio.gather(
            topology.app_clock(key.app_name, bool(deltas.app)),
            topology.app_users_key(key.app_name, key.user_id),
            topology.apps_key(key.app_name),
            topology.app_index_before(_parts(key), to_micros(expiry.now)),
        )
        fields = _codec.session_fields(session, last_seq=0, count=0)
        if clock != "":
            fields += ["ast", clock]
        args = self._session_args(
            CreateArgs,
            topology,
            key,
            expiry,
            app_users=users,
            app_sessions=topology.app_index_key(key.app_name),
            apps=apps,
            app_name=key.app_name,
            create_token=uuid.uuid4().hex,
            parent_escaped=escape(session.parent_id) if session.parent_id is not None else "",
            fields=fields,
            user_delta=deltas.user,
            app_delta=topology.app_delta(deltas.app),
            user_id=key.user_id,
        )
        reply = decode_create(await topology.run(CREATE, args))
        if reply.status == 0:
            raise SessionExists(key.app_name, key.user_id, key.session_id)
        app_state = await topology.app_written(
            key.app_name,
            deltas.app if reply.status == 1 else {},
            expiry,
            "The session",
            stamp=clock if isinstance(clock, int) else None,
            writer=args.session_hash,
            fields=reply.app_state,
        )
        stored = session.model_copy(update={"expires_at": expiry.session, "events": []})
        now = to_micros(expiry.now)
        return StoredSession(stored, app_state or {}, _codec.state(reply.user_state, now))

    async def get_session(
        self, key: SessionKey, window: EventWindow, expiry: Expiry, *, refresh: bool
    ) -> StoredSession | None:
        """Read the session and only the events of ``window``; slide the TTLs with ``refresh``."""
        topology = self._open()
        after_time, last_n = window.after_time, window.last_n
        beside = (
            topology.reads_beside
            and after_time is None
            and not window.after_seq
            and (last_n is None or last_n >= _READ_BESIDE_FROM)
        )
        args = self._session_args(
            GetArgs,
            topology,
            key,
            expiry,
            refresh="1" if refresh else "",
            after_seq=window.after_seq or 0,
            last_n=0 if beside else "" if last_n is None else last_n,
            after_time="" if after_time is None else _codec.time_key(after_time),
        )
        listed: list[bytes] = []
        if beside:
            raw, listed = await topology.get_beside(args, 0 if last_n is None else -last_n)
            app_state = None
        else:
            raw, app_state = await topology.get(args, key.app_name, expiry, refresh=refresh)
        reply = decode_get(raw)
        if reply is None:
            return None
        now = to_micros(expiry.now)
        if app_state is None:
            app_state = _codec.state(reply.app_state, now)
        session = _codec.session(reply.session)
        if beside:
            texts = newest_events(listed, session.event_count, session.last_seq, last_n)
        else:
            texts = reply.events
        events = events_from_json(texts)
        if after_time is not None and not reply.windowed:
            # Events stored before their times were kept: the script left the window to us.
            events = [e for e in events if e.timestamp is None or e.timestamp > after_time]
            if last_n is not None:
                events = events[max(0, len(events) - last_n) :]
        session.events = events
        if refresh:
            session.expires_at = expiry.session
        return StoredSession(session, app_state, _codec.state(reply.user_state, now))

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
        """One keyset page from the user's (or the parent's children) index, newest first.

        Each script call examines a bounded number of index entries; when stale
        entries use up its budget, the next call goes on where it stopped.
        """
        topology = self._open()
        user = self.keys.user(app_name, user_id)
        args = ListArgs(
            index=user.index if parent_id is None else user.children(parent_id),
            now=to_micros(now),
            limit=limit,
            budget=limit + _LIST_BUDGET_SLACK,
            after_updated="" if after is None else to_micros(after.updated_at),
            after_id="" if after is None else after.session_id,
            base=user.base,
            parent_id=parent_id or "",
        )
        page: list[Session] = []
        while True:
            reply = decode_list(await topology.run(LIST, args))
            page += [_codec.session(fields) for fields in reply.sessions]
            if reply.next_updated is None or len(page) >= limit:
                return page
            args.limit = limit - len(page)
            args.after_updated, args.after_id = reply.next_updated, reply.next_id

    async def append(self, request: AppendRequest) -> AppendResult:
        """Store the events with their deltas, the trim and the TTLs in one script."""
        topology = self._open()
        key, expiry = request.key, request.expiry
        has_app = any(delta.app for delta in request.deltas)
        clock = await topology.app_clock(key.app_name, has_app) if has_app else ""
        args = self._session_args(
            AppendArgs,
            topology,
            key,
            expiry,
            event_limit=or_blank(request.event_limit),
            app_sessions=topology.app_index_key(key.app_name),
            app_clock=clock,
            expected_last_seq=or_blank(request.expected_last_seq),
            verified=[],
            new_events=[
                AppendedEvent(
                    id=event.id,
                    json=_codec.event_json(event),
                    time=_codec.time_key(event.timestamp or expiry.now),
                    session_delta=delta.session,
                    user_delta=delta.user,
                    app_delta=topology.app_delta(delta.app),
                )
                for event, delta in zip(request.events, request.deltas, strict=True)
            ],
        )
        for _ in range(VERIFY_ROUNDS):
            reply = decode_append(await topology.run(APPEND, args))
            if not isinstance(reply, Unverified):
                break
            # A batch mixing new and stored ids: compare the stored events, then name them.
            args.verified = verified(key, request.events, reply)
        else:
            raise ConflictError(
                f"Session {key.session_id!r} kept changing while this append compared its "
                "stored events; nothing was written. Retry the append."
            )
        if reply is None:
            raise SessionNotFound(key.app_name, key.user_id, key.session_id)
        if isinstance(reply, MovedOn):
            raise moved_on(key, request.expected_last_seq or 0, reply.last_seq)
        stored: list[Event] = []
        app_delta: dict[str, Any] = {}
        for index, event in enumerate(request.events):
            seq, text = reply.seqs[index], reply.stored[index]
            if text is None:
                event.seq = seq
                stored.append(event)
                app_delta.update(request.deltas[index].app)
            else:
                stored.append(stored_event(key, event.id, seq, text))
        if app_delta:  # on Cluster, applied in the app's slot now
            await topology.app_written(
                key.app_name,
                app_delta,
                expiry,
                "The append",
                stamp=reply.app_stamp,
                writer=args.session_hash,
                fields=None,
            )
        if any(text is None for text in reply.stored):  # Cluster: the app's index now
            await topology.app_index_after(_parts(key), to_micros(expiry.now))
        return AppendResult(
            events=stored,
            last_seq=reply.last_seq,
            event_count=reply.event_count,
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
        topology = self._open()
        args = self._session_args(
            UpdateArgs,
            topology,
            key,
            expiry,
            app_sessions=topology.app_index_key(key.app_name),
            app_clock=await topology.app_clock(key.app_name, bool(deltas.app)),
            session_delta=deltas.session,
            metadata_delta=metadata,
            user_delta=deltas.user,
            app_delta=topology.app_delta(deltas.app),
        )
        reply = decode_update(await topology.run(UPDATE, args))
        if reply is None:
            raise SessionNotFound(key.app_name, key.user_id, key.session_id)
        app_state = await topology.app_written(
            key.app_name,
            deltas.app,
            expiry,
            "The update",
            stamp=reply.app_stamp,
            writer=args.session_hash,
            fields=reply.app_state,
        )
        now = to_micros(expiry.now)
        await topology.app_index_after(_parts(key), now)
        return StoredSession(
            _codec.session(reply.session), app_state or {}, _codec.state(reply.user_state, now)
        )

    async def delete_session(self, key: SessionKey, now: datetime) -> bool:
        """Delete the session's keys and its index entries in one script."""
        topology = self._open()
        args = DeleteArgs(
            **self._key_fields(key),
            app_sessions=topology.app_index_key(key.app_name),
            base=self.keys.user(key.app_name, key.user_id).base,
            session_id=key.session_id,
            now=to_micros(now),
            user_id=key.user_id,
        )
        live = bool(await topology.run(DELETE, args))
        await topology.app_index_after(_parts(key), None)
        return live

    def _state_key(self, key: StateKey) -> str:
        if key.user_id is None:
            return self.keys.app_state(key.app_name)
        return self.keys.user(key.app_name, key.user_id).state

    async def read_state(self, key: StateKey, expiry: Expiry, *, refresh: bool) -> dict[str, Any]:
        """Read the app or user state; slide its expiry with ``refresh``."""
        return await self._open().read_state(
            self._state_key(key), key.expires_at(expiry), expiry, refresh=refresh
        )

    async def write_state(
        self, key: StateKey, delta: Mapping[str, Any], expiry: Expiry
    ) -> dict[str, Any]:
        """Apply ``delta`` to the app or user state in one script; return the new state."""
        topology = self._open()
        exp, ttl = _codec.expiry(key.expires_at(expiry), expiry.now)
        users_key = None
        apps_key = await topology.apps_key(key.app_name)
        if key.user_id is not None:
            users_key = await topology.app_users_key(key.app_name, key.user_id)
        args = StateArgs(
            state=self._state_key(key),
            apps=apps_key,
            app_users=users_key,
            now=to_micros(expiry.now),
            mode="update",
            exp=exp,
            ttl=ttl,
            delta=delta,
            user_id=key.user_id or "",
            app_name=key.app_name,
        )
        return _codec.state(await topology.run(STATE, args), to_micros(expiry.now))

    async def list_users(self, app_name: str, *, limit: int, after: str | None) -> list[str]:
        """One page of the app's user index, ascending (byte order, as ``sorted`` on ids).

        The index records every user who had a session or user state; users whose
        data has since expired or been deleted stay in it.
        """
        low = "-" if after is None else "(" + after
        users = await self._open().command(
            "ZRANGEBYLEX", self.keys.app_users(app_name), low, "+", "LIMIT", 0, limit
        )
        return [_codec.text(user) for user in users]

    async def list_app_sessions(
        self, app_name: str, *, limit: int, after: ListCursor | None, now: datetime
    ) -> list[Session]:
        """One page of the app's index of every user's sessions, checked against their hashes."""
        return await _app_index.list_app_sessions(
            self._open(), self.keys, app_name, limit=limit, after=after, now=now
        )

    async def list_apps(self, *, limit: int, after: str | None) -> list[str]:
        """One page of the index of apps, ascending (apps whose data is gone stay in it)."""
        return await _app_index.list_apps(self._open(), self.keys, limit=limit, after=after)

    async def purge_expired(self, now: datetime) -> int:
        """Return 0: Redis reclaims expired keys by itself (``native_ttl``).

        Listings drop index entries of vanished sessions; finding every user
        to do more here would take ``SCAN``, which this backend never uses.
        """
        return 0


def _parts(key: SessionKey) -> tuple[str, str, str]:
    return key.app_name, key.user_id, key.session_id
