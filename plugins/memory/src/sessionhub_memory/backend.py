"""The memory backend: sessions, events and state in Python dicts.

Events are kept as snapshots only this module holds (``_snapshots``): a copy
is made when an event is stored and for each event a read returns, and state
is kept as JSON text, so callers can never change stored data through an
object they hold. Reads cost the window they return: ``last_n`` and
``after_seq`` slice the history, ``after_time`` bisects it while timestamps
rise with seqs (the usual case; else it scans). Every
primitive runs without awaiting, so asyncio cannot interleave two of them:
each is atomic within the process without a lock. ``memory://name`` shares one
store between the backends of a process that use the same name; ``memory://``
gives each backend a private store.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

from sessionhub import (
    AppendRequest,
    AppendResult,
    Backend,
    BackendSettings,
    Capabilities,
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
    SessionKey,
    SessionNotFound,
    StateDeltas,
    StateKey,
    StoredSession,
)
from sessionhub.backend_tools import (
    apply_delta,
    built_all,
    check_restorable,
    check_retry,
    dump_json,
    stored_session,
)
from sessionhub_memory._snapshots import ID, SEQ, TIMESTAMP, Snapshot, freeze, number, thaw

__all__ = ["MemoryBackend", "MemorySettings", "MemoryStore"]


class MemorySettings(BackendSettings):
    """Options of the memory backend (``[memory]``): only ``url`` (``memory://`` or ``memory://name``)."""

    def effective_url(self) -> str:
        """``url``, else ``memory://`` (a store private to the backend)."""
        return self.url.get_secret_value() if self.url is not None else "memory://"


@dataclass
class _Record:
    header: dict[str, Any]
    """The session's fields as JSON-ready values, state as JSON text."""
    events: list[Snapshot] = field(default_factory=list)
    """Snapshots of the stored events, in seq order (gaps where events were popped or replaced)."""
    by_id: dict[str, int] = field(default_factory=dict)
    """Event id -> seq."""
    rising: bool = True
    """Whether timestamps never fall from one event to the next (``after_time`` bisects)."""

    def index(self, seq: int) -> int:
        """The position of the stored event numbered ``seq``."""
        return bisect.bisect_left(self.events, seq, key=SEQ)

    def store(self, snapshots: Sequence[Snapshot]) -> None:
        """Add snapshots after the stored events (their seqs are higher)."""
        if self.rising:
            self.rising = _rising(self.events[-1:], snapshots)
        self.events += snapshots
        for snapshot in snapshots:
            self.by_id[ID(snapshot)] = SEQ(snapshot)


@dataclass
class _State:
    text: str = "{}"
    expires_at: datetime | None = None


@dataclass
class MemoryStore:
    """Everything one memory store holds; shared by backends that use the same name."""

    sessions: dict[SessionKey, _Record] = field(default_factory=dict)
    by_user: dict[tuple[str, str], dict[str, _Record]] = field(default_factory=dict)
    by_app: dict[str, dict[tuple[str, str], _Record]] = field(default_factory=dict)
    """App -> (user, session) -> record: what a listing of every user's sessions reads."""
    states: dict[tuple[str, str, str | None], _State] = field(default_factory=dict)


_NAMED_STORES: dict[str, MemoryStore] = {}


def _expired(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is not None and expires_at <= now


class MemoryBackend(Backend):
    """In-process storage for tests, demos and single-process apps."""

    name: ClassVar[str] = "memory"
    capabilities: ClassVar[Capabilities] = Capabilities(
        shared_store=True, compare_and_set=True, atomic_conflicts=True
    )

    def __init__(
        self, settings: MemorySettings | None = None, *, store: MemoryStore | None = None
    ) -> None:
        url = settings.url.get_secret_value() if settings and settings.url else "memory://"
        if store is None:
            name = urlsplit(url).netloc + urlsplit(url).path
            store = _NAMED_STORES.setdefault(name, MemoryStore()) if name else MemoryStore()
        self.store = store

    async def ping(self) -> None:
        """Always answers: the store is in this process."""

    # --- sessions ----------------------------------------------------------------

    def _index(self, key: SessionKey, record: _Record) -> None:
        self.store.sessions[key] = record
        self.store.by_user.setdefault((key.app_name, key.user_id), {})[key.session_id] = record
        self.store.by_app.setdefault(key.app_name, {})[(key.user_id, key.session_id)] = record

    def _live(self, key: SessionKey, now: datetime) -> _Record | None:
        record = self.store.sessions.get(key)
        if record is None or _expired(record.header["expires_at"], now):
            return None
        return record

    def _session(self, record: _Record, events: list[Event] | None = None) -> Session:
        header = dict(record.header)
        header["state"] = _load(header["state"])
        header["metadata"] = _load(header["metadata"])
        header["event_count"] = len(record.events)
        return stored_session(**header, events=events)

    def _scopes(
        self, key: SessionKey, expiry: Expiry, *, refresh: bool
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        app = self._state(StateKey.app(key.app_name), expiry, refresh=refresh)
        user = self._state(StateKey.user(key.app_name, key.user_id), expiry, refresh=refresh)
        return app, user

    async def create_session(
        self, session: Session, deltas: StateDeltas, expiry: Expiry
    ) -> StoredSession:
        """Store a new session and apply its app/user deltas."""
        key = SessionKey(session.app_name, session.user_id, session.id)
        if self._live(key, expiry.now) is not None:
            raise SessionExists(*_parts(key))
        header = session.model_dump(exclude={"events", "event_count"})
        header["state"] = _dump(session.state)
        header["metadata"] = _dump(session.metadata)
        record = _Record(header=header)
        self._index(key, record)
        self._update_scopes(key, deltas, expiry)
        app, user = self._scopes(key, expiry, refresh=False)
        return StoredSession(self._session(record), app, user)

    async def get_session(
        self, key: SessionKey, window: EventWindow, expiry: Expiry, *, refresh: bool
    ) -> StoredSession | None:
        """Return the session with the events of ``window``."""
        record = self._live(key, expiry.now)
        if record is None:
            return None
        if refresh:
            record.header["expires_at"] = expiry.session
        events = built_all(_window(record, window), thaw)
        app, user = self._scopes(key, expiry, refresh=refresh)
        return StoredSession(self._session(record, events), app, user)

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
        """Return a page of the user's live sessions, newest first."""
        records = self.store.by_user.get((app_name, user_id), {}).values()
        rows = sorted(
            (
                r
                for r in records
                if not _expired(r.header["expires_at"], now)
                and (parent_id is None or r.header["parent_id"] == parent_id)
            ),
            key=lambda r: (r.header["updated_at"], r.header["id"]),
            reverse=True,
        )
        if after is not None:
            position = (after.updated_at, after.session_id)
            rows = [r for r in rows if (r.header["updated_at"], r.header["id"]) < position]
        return [self._session(r) for r in rows[:limit]]

    async def append(self, request: AppendRequest) -> AppendResult:
        """Store new events, apply their deltas, trim, bump times: all before yielding."""
        key = request.key
        record = self._live(key, request.expiry.now)
        if record is None:
            raise SessionNotFound(*_parts(key))
        expected = request.expected_last_seq
        if expected not in (None, record.header["last_seq"]) and any(
            event.id not in record.by_id for event in request.events
        ):  # a retry of events all stored already is not a conflict
            raise ConflictError(_moved_on(key, expected, record))
        known: dict[str, Event] = {}
        for event in request.events:
            if event.id in record.by_id:
                known[event.id] = thaw(record.events[record.index(record.by_id[event.id])])
                # an id reused for other content: nothing is written
                check_retry(event, known[event.id])
        # Snapshots first: nothing is stored if one of them fails.
        last_seq = record.header["last_seq"]
        fresh = [e for e in request.events if e.id not in known] if known else request.events
        snapshots = [freeze(event, seq) for seq, event in enumerate(fresh, start=last_seq + 1)]
        stored: list[Event] = []
        session_state: dict[str, Any] | None = None
        for event, delta in zip(request.events, request.deltas, strict=True):
            if event.id in known:
                stored.append(known[event.id])
                continue
            last_seq += 1
            number(event, last_seq)  # the service's own copy: returned, never kept
            stored.append(event)
            if delta.session:
                if session_state is None:
                    session_state = _load(record.header["state"])
                apply_delta(session_state, delta.session)
            if delta.app or delta.user:
                self._update_scopes(key, delta, request.expiry)
        if snapshots:  # an append of stored events only is a no-op: no times move
            record.store(snapshots)
            record.header["last_seq"] = last_seq
            _trim(record, request.event_limit)
            if session_state is not None:
                record.header["state"] = _dump(session_state)
            record.header["updated_at"] = request.expiry.now
            record.header["expires_at"] = request.expiry.session
        return _result(record, stored)

    async def pop_event(self, key: SessionKey, expiry: Expiry) -> Event | None:
        """Remove the newest event; ``last_seq`` stays."""
        record = self._live(key, expiry.now)
        if record is None:
            raise SessionNotFound(*_parts(key))
        if not record.events:
            return None
        snapshot = record.events.pop()
        del record.by_id[ID(snapshot)]
        record.header["updated_at"] = expiry.now
        record.header["expires_at"] = expiry.session
        return thaw(snapshot)

    async def replace_events(self, request: ReplaceRequest) -> AppendResult:
        """Swap the history in one step: nothing else runs in between."""
        key = request.key
        record = self._live(key, request.expiry.now)
        if record is None:
            raise SessionNotFound(*_parts(key))
        if request.expected_last_seq not in (None, record.header["last_seq"]):
            raise ConflictError(_moved_on(key, request.expected_last_seq, record))
        first = record.header["last_seq"] + 1
        snapshots = [freeze(event, seq) for seq, event in enumerate(request.events, start=first)]
        saved = []
        for snapshot, event in zip(snapshots, request.events, strict=True):
            number(event, SEQ(snapshot))  # the service's own copy: returned, never kept
            saved.append(event)
        record.events, record.by_id, record.rising = [], {}, True
        record.store(snapshots)
        record.header["last_seq"] += len(saved)
        _trim(record, request.event_limit)
        record.header["updated_at"] = request.expiry.now
        record.header["expires_at"] = request.expiry.session
        return _result(record, saved)

    async def update_session(
        self, key: SessionKey, deltas: StateDeltas, metadata: Mapping[str, Any], expiry: Expiry
    ) -> StoredSession:
        """Apply state and metadata deltas without an event."""
        record = self._live(key, expiry.now)
        if record is None:
            raise SessionNotFound(*_parts(key))
        record.header["state"] = dump_json(
            apply_delta(json.loads(record.header["state"]), deltas.session)
        )
        record.header["metadata"] = dump_json(
            apply_delta(json.loads(record.header["metadata"]), metadata)
        )
        record.header["updated_at"] = expiry.now
        record.header["expires_at"] = expiry.session
        self._update_scopes(key, deltas, expiry)
        app, user = self._scopes(key, expiry, refresh=False)
        return StoredSession(self._session(record), app, user)

    async def delete_session(self, key: SessionKey, now: datetime) -> bool:
        """Forget the session and its events."""
        record = self.store.sessions.pop(key, None)
        if record is None:
            return False
        self.store.by_user.get((key.app_name, key.user_id), {}).pop(key.session_id, None)
        self.store.by_app.get(key.app_name, {}).pop((key.user_id, key.session_id), None)
        return not _expired(record.header["expires_at"], now)

    async def list_app_sessions(
        self, app_name: str, *, limit: int, after: ListCursor | None, now: datetime
    ) -> list[Session]:
        """Return a page of the live sessions of every user of the app, newest first."""

        def position(record: _Record) -> tuple[datetime, str, str]:
            return record.header["updated_at"], record.header["user_id"], record.header["id"]

        records = self.store.by_app.get(app_name, {}).values()
        rows = sorted(
            (r for r in records if not _expired(r.header["expires_at"], now)),
            key=position,
            reverse=True,
        )
        if after is not None:
            rows = [r for r in rows if position(r) < after.key()]
        return [self._session(r) for r in rows[:limit]]

    async def list_page(self, request: ListRequest) -> ListedPage:
        """A listing page and the states it is shown with, read without yielding (one view)."""
        app, expiry = request.app_name, request.expiry
        if request.user_id is None:
            rows = await self.list_app_sessions(
                app, limit=request.limit, after=request.after, now=expiry.now
            )
        else:
            rows = await self.list_sessions(
                app,
                request.user_id,
                limit=request.limit,
                after=request.after,
                parent_id=request.parent_id,
                now=expiry.now,
            )
        users = {row.user_id for row in rows}
        return ListedPage(
            rows,
            self._state(StateKey.app(app), expiry, refresh=False) if rows else {},
            {user: self._state(StateKey.user(app, user), expiry, refresh=False) for user in users},
        )

    async def list_apps(self, *, limit: int, after: str | None) -> list[str]:
        """Apps with sessions, user state or app state, ascending."""
        apps = {app for app, records in self.store.by_app.items() if records}
        apps |= {app for (_, app, _) in self.store.states}
        return sorted(a for a in apps if after is None or a > after)[:limit]

    async def list_users(self, app_name: str, *, limit: int, after: str | None) -> list[str]:
        """Users of the app with sessions or user state, ascending."""
        users = {
            user
            for (app, user), records in self.store.by_user.items()
            if app == app_name and records
        }
        users |= {
            user
            for (scope, app, user) in self.store.states
            if scope == "user" and app == app_name and user
        }
        return sorted(u for u in users if after is None or u > after)[:limit]

    async def restore_session(self, session: Session, events: list[Event], expiry: Expiry) -> None:
        """Replace the session with exactly this content."""
        check_restorable(session, events)
        key = SessionKey(session.app_name, session.user_id, session.id)
        header = session.model_dump(exclude={"events", "event_count"})
        header["state"] = dump_json(session.state)
        header["metadata"] = dump_json(session.metadata)
        record = _Record(header=header)
        record.store([freeze(event, event.seq) for event in events])
        self._index(key, record)

    # --- app and user state ----------------------------------------------------------

    def _state(self, key: StateKey, expiry: Expiry, *, refresh: bool) -> dict[str, Any]:
        entry = self.store.states.get(_state_slot(key))
        if entry is None or _expired(entry.expires_at, expiry.now):
            return {}
        if refresh:
            entry.expires_at = key.expires_at(expiry)
        return _load(entry.text)

    def _update_scopes(self, key: SessionKey, deltas: StateDeltas, expiry: Expiry) -> None:
        if deltas.app:
            self._update_state(StateKey.app(key.app_name), deltas.app, expiry)
        if deltas.user:
            self._update_state(StateKey.user(key.app_name, key.user_id), deltas.user, expiry)

    def _update_state(
        self, key: StateKey, delta: Mapping[str, Any], expiry: Expiry
    ) -> dict[str, Any]:
        current = self._state(key, expiry, refresh=False)
        apply_delta(current, delta)
        self.store.states[_state_slot(key)] = _State(dump_json(current), key.expires_at(expiry))
        return current

    async def read_state(self, key: StateKey, expiry: Expiry, *, refresh: bool) -> dict[str, Any]:
        """Return the app or user state."""
        return self._state(key, expiry, refresh=refresh)

    async def write_state(
        self, key: StateKey, delta: Mapping[str, Any], expiry: Expiry
    ) -> dict[str, Any]:
        """Apply a delta to the app or user state."""
        return self._update_state(key, delta, expiry)

    async def purge_expired(self, now: datetime) -> int:
        """Drop expired sessions and states."""
        doomed = [
            k for k, r in self.store.sessions.items() if _expired(r.header["expires_at"], now)
        ]
        for key in doomed:
            await self.delete_session(key, now)
        stale = [k for k, s in self.store.states.items() if _expired(s.expires_at, now)]
        for state_key in stale:
            del self.store.states[state_key]
        return len(doomed) + len(stale)


def _rising(before: Sequence[Snapshot], snapshots: Sequence[Snapshot]) -> bool:
    """Whether ``before`` then ``snapshots`` have timestamps that never fall."""
    previous = TIMESTAMP(before[-1]) if before else None
    for snapshot in snapshots:
        timestamp = TIMESTAMP(snapshot)
        if timestamp is None or (previous is not None and timestamp < previous):
            return False
        previous = timestamp
    return True


def _window(record: _Record, window: EventWindow) -> list[Snapshot]:
    """The snapshots ``window`` selects, oldest first; costs the window, not the history."""
    events = record.events
    if window.last_n == 0 or not events:
        return []
    start = 0
    if window.after_seq is not None:
        start = bisect.bisect_right(events, window.after_seq, key=SEQ)
    after = window.after_time
    if after is not None and not record.rising:
        return _newest_after(events, start, after, window.last_n)
    if after is not None:
        start = bisect.bisect_right(events, after, lo=start, key=TIMESTAMP)
    if window.last_n is not None:
        start = max(start, len(events) - window.last_n)
    return events[start:]


def _newest_after(
    events: list[Snapshot], start: int, after: datetime, last_n: int | None
) -> list[Snapshot]:
    """The newest ``last_n`` events from ``start`` on stamped after ``after``, by a scan."""
    picked: list[Snapshot] = []
    for index in range(len(events) - 1, start - 1, -1):
        if last_n is not None and len(picked) == last_n:
            break
        timestamp = TIMESTAMP(events[index])
        if timestamp is not None and timestamp > after:
            picked.append(events[index])
    picked.reverse()
    return picked


def _result(record: _Record, events: list[Event]) -> AppendResult:
    return AppendResult(
        events=events,
        last_seq=record.header["last_seq"],
        event_count=len(record.events),
        updated_at=record.header["updated_at"],
        expires_at=record.header["expires_at"],
    )


def _load(text: str) -> dict[str, Any]:
    # Most sessions have no state or metadata: skip the JSON round trip for those.
    result: dict[str, Any] = {} if text == "{}" else json.loads(text)
    return result


def _dump(mapping: Mapping[str, Any]) -> str:
    return dump_json(mapping) if mapping else "{}"


def _state_slot(key: StateKey) -> tuple[str, str, str | None]:
    return key.scope.value, key.app_name, key.user_id


def _trim(record: _Record, limit: int | None) -> None:
    if limit is not None and len(record.events) > limit:
        for snapshot in record.events[:-limit]:
            del record.by_id[ID(snapshot)]
        del record.events[:-limit]


def _moved_on(key: SessionKey, expected: int | None, record: _Record) -> str:
    return (
        f"session {key.session_id!r} of user {key.user_id!r} moved on: expected last_seq "
        f"{expected}, it is {record.header['last_seq']}. Re-read it and retry."
    )


def _parts(key: SessionKey) -> tuple[str, str, str]:
    return key.app_name, key.user_id, key.session_id
