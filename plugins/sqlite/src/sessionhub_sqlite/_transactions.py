"""The SQL of every primitive, as synchronous functions over one ``sqlite3`` connection.

Each function is one whole transaction body: the backend runs it on the
connection's thread between ``BEGIN`` and ``COMMIT`` (see :func:`run`), so a
primitive costs one hand-over to that thread however many statements it runs.
Identifiers only ever travel as statement parameters.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar, cast

from sessionhub import (
    AppendRequest,
    AppendResult,
    ConflictError,
    Event,
    EventWindow,
    Expiry,
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
from sessionhub.backend_tools import (
    apply_delta,
    check_retry,
    dump_json,
    event_from_json,
    event_to_json,
    events_from_json,
    from_micros,
    stored_session,
    to_micros,
)
from sessionhub_sqlite._errors import UnreadableRecord

__all__ = [
    "run",
    "to_micros",
    "from_micros",
    "create_session",
    "get_session",
    "append",
    "pop_event",
    "replace_events",
    "update_session",
    "delete_session",
    "restore_session",
    "read_state",
    "write_state",
    "purge_expired",
]

T = TypeVar("T")


def _optional_micros(moment: datetime | None) -> int | None:
    return None if moment is None else to_micros(moment)


def _optional_datetime(micros: int | None) -> datetime | None:
    return None if micros is None else from_micros(micros)


def run(
    conn: sqlite3.Connection,
    body: Callable[..., T],
    args: tuple[Any, ...],
    *,
    write: bool,
) -> T:
    """Run ``body(conn, *args)`` as one transaction; roll back on any error.

    Writes take the write lock up front (``BEGIN IMMEDIATE``) so that a writer
    waits on ``busy_timeout`` at the start instead of failing when it upgrades
    a read; reads run in a deferred transaction, a consistent snapshot. A stored
    record that does not decode raises :class:`UnreadableRecord`.
    """
    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        result = body(conn, *args)
        conn.execute("COMMIT")
    except BaseException as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if isinstance(exc, (ValueError, TypeError)) and not isinstance(exc, SessionHubError):
            raise UnreadableRecord(exc) from exc
        raise
    return result


# --- sessions -----------------------------------------------------------------------

_SESSION_COLUMNS = (
    "pk, session_id, app_name, user_id, parent_id, root_id, depth, created_at, updated_at, "
    "expires_at, state, metadata, event_count, last_seq"
)
_SESSION_PLACEHOLDERS = ", ".join("?" * len(_SESSION_COLUMNS.split(",")))


def _new_session_row(session: Session, *, event_count: int, last_seq: int) -> tuple[Any, ...]:
    """The values of ``_SESSION_COLUMNS`` for a new row (``pk`` None: SQLite assigns it)."""
    return (
        None,
        session.id,
        session.app_name,
        session.user_id,
        session.parent_id,
        session.root_id,
        session.depth,
        to_micros(session.created_at),
        to_micros(session.updated_at),
        _optional_micros(session.expires_at),
        dump_json(session.state),
        dump_json(session.metadata),
        event_count,
        last_seq,
    )


def _live(expires_at: int | None, now: int) -> bool:
    return expires_at is None or expires_at > now


def _object(text: str) -> dict[str, Any]:
    return {} if text == "{}" else cast(dict[str, Any], json.loads(text))  # "{}": most metadata


def _session_from_row(
    row: tuple[Any, ...],
    events: list[Event] | None = None,
    objects: tuple[dict[str, Any], dict[str, Any]] | None = None,
) -> Session:
    """The session of a ``_SESSION_COLUMNS`` row; ``objects``: its state and metadata, decoded."""
    state, metadata = objects if objects is not None else (_object(row[10]), _object(row[11]))
    return stored_session(
        id=row[1],
        app_name=row[2],
        user_id=row[3],
        parent_id=row[4],
        root_id=row[5],
        depth=row[6],
        created_at=from_micros(row[7]),
        updated_at=from_micros(row[8]),
        expires_at=_optional_datetime(row[9]),
        state=state,
        metadata=metadata,
        event_count=row[12],
        last_seq=row[13],
        events=events,
    )


_SESSION_WITH_SCOPES = (
    f"SELECT {_SESSION_COLUMNS}, "
    "(SELECT a.state FROM app_state a WHERE a.app_name = sessions.app_name "
    "AND (a.expires_at IS NULL OR a.expires_at > ?)), "
    "(SELECT u.state FROM user_state u WHERE u.app_name = sessions.app_name "
    "AND u.user_id = sessions.user_id AND (u.expires_at IS NULL OR u.expires_at > ?)) "
    "FROM sessions WHERE app_name = ? AND user_id = ? AND session_id = ?"
)
"""A session's row, then its app's and its user's live state (NULL: none)."""


def _session_row(conn: sqlite3.Connection, key: SessionKey, now: int) -> tuple[Any, ...] | None:
    row: tuple[Any, ...] | None = conn.execute(
        f"SELECT {_SESSION_COLUMNS} FROM sessions "
        "WHERE app_name = ? AND user_id = ? AND session_id = ?",
        (key.app_name, key.user_id, key.session_id),
    ).fetchone()
    if row is None or not _live(row[9], now):
        return None
    return row


def create_session(
    conn: sqlite3.Connection, session: Session, deltas: StateDeltas, expiry: Expiry
) -> StoredSession:
    """Insert a new session (replacing an expired one) and apply its app/user deltas."""
    now = to_micros(expiry.now)
    key = SessionKey(session.app_name, session.user_id, session.id)
    found = conn.execute(
        "SELECT pk, expires_at FROM sessions WHERE app_name = ? AND user_id = ? AND session_id = ?",
        (key.app_name, key.user_id, key.session_id),
    ).fetchone()
    if found is not None:
        if _live(found[1], now):
            raise SessionExists(key.app_name, key.user_id, key.session_id)
        conn.execute("DELETE FROM sessions WHERE pk = ?", (found[0],))
    row = _new_session_row(session, event_count=0, last_seq=0)
    cursor = conn.execute(
        f"INSERT INTO sessions ({_SESSION_COLUMNS}) VALUES ({_SESSION_PLACEHOLDERS})",
        row,
    )
    _update_scopes(conn, key, deltas.app, deltas.user, expiry)
    app_state, user_state = _scopes(conn, key, expiry, refresh=False)
    return StoredSession(_session_from_row((cursor.lastrowid, *row[1:])), app_state, user_state)


def get_session(
    conn: sqlite3.Connection, key: SessionKey, window: EventWindow, expiry: Expiry, refresh: bool
) -> StoredSession | None:
    """Read a live session with the events of ``window``; slide its expiry with ``refresh``."""
    if not refresh:  # the usual read: the session row and both scopes in one statement
        now = to_micros(expiry.now)
        row = conn.execute(
            _SESSION_WITH_SCOPES, (now, now, key.app_name, key.user_id, key.session_id)
        ).fetchone()
        if row is None or not _live(row[9], now):
            return None
        return StoredSession(
            _session_from_row(row, _events(conn, row[0], window)),
            _object(row[14] or "{}"),
            _object(row[15] or "{}"),
        )
    row = _session_row(conn, key, to_micros(expiry.now))
    if row is None:
        return None
    if refresh:
        expires_at = _optional_micros(expiry.session)
        conn.execute("UPDATE sessions SET expires_at = ? WHERE pk = ?", (expires_at, row[0]))
        row = (*row[:9], expires_at, *row[10:])
    events = _events(conn, row[0], window)
    app_state, user_state = _scopes(conn, key, expiry, refresh=refresh)
    return StoredSession(_session_from_row(row, events), app_state, user_state)


def _events(conn: sqlite3.Connection, session_pk: int, window: EventWindow) -> list[Event]:
    if window.last_n == 0:
        return []
    sql = "SELECT data FROM events WHERE session_pk = ?"
    params: list[Any] = [session_pk]
    if window.after_seq is not None:
        sql += " AND seq > ?"
        params.append(window.after_seq)
    if window.after_time is not None:
        sql += " AND timestamp > ?"
        params.append(to_micros(window.after_time))
    if window.last_n is None:
        rows = conn.execute(sql + " ORDER BY seq", params).fetchall()
    else:
        # Newest first through the primary key, so only the returned rows are read.
        params.append(window.last_n)
        rows = conn.execute(sql + " ORDER BY seq DESC LIMIT ?", params).fetchall()
        rows.reverse()
    return events_from_json([data for (data,) in rows])


def append(conn: sqlite3.Connection, request: AppendRequest) -> AppendResult:
    """Store new events with their deltas, skip stored ids, trim, bump times.

    An id stored with other content raises ``ConflictError``, which rolls back the batch.
    """
    key = request.key
    expiry = request.expiry
    now = to_micros(expiry.now)
    found = conn.execute(
        "SELECT pk, expires_at, last_seq, event_count, updated_at FROM sessions "
        "WHERE app_name = ? AND user_id = ? AND session_id = ?",
        (key.app_name, key.user_id, key.session_id),
    ).fetchone()
    if found is None or not _live(found[1], now):
        raise SessionNotFound(key.app_name, key.user_id, key.session_id)
    session_pk, old_expires_at, last_seq, event_count, old_updated_at = found
    expected = request.expected_last_seq
    if expected not in (None, last_seq) and not _all_stored(conn, session_pk, request.events):
        raise ConflictError(_moved_on(key, expected, last_seq))  # a retry is not a conflict
    first_new_seq = last_seq + 1
    session_delta: dict[str, Any] = {}
    app_delta: dict[str, Any] = {}
    user_delta: dict[str, Any] = {}
    stored: list[Event] = []
    for event, delta in zip(request.events, request.deltas, strict=True):
        saved = event.model_copy(update={"seq": last_seq + 1})
        inserted = conn.execute(
            _INSERT_EVENT + " ON CONFLICT (session_pk, event_id) DO NOTHING",
            _event_values(session_pk, saved, expiry.now),
        ).rowcount
        if not inserted:
            previous = _stored_event(conn, session_pk, event.id)
            check_retry(event, previous)  # another event under this id: roll the batch back
            stored.append(previous)
            continue
        last_seq = saved.seq
        event_count += 1
        # Later deltas override earlier ones key by key, as if applied one by one.
        session_delta.update(delta.session)
        app_delta.update(delta.app)
        user_delta.update(delta.user)
        stored.append(saved)
    if last_seq < first_new_seq:  # every event was stored already: a no-op, no times move
        return AppendResult(
            events=stored,
            last_seq=last_seq,
            event_count=event_count,
            updated_at=from_micros(old_updated_at),
            expires_at=_optional_datetime(old_expires_at),
        )
    limit = request.event_limit
    if limit is not None and event_count > limit:
        _delete_oldest(conn, session_pk, event_count - limit)
        event_count = limit
    expires_at = _optional_micros(expiry.session)
    if session_delta:
        (state_text,) = conn.execute(
            "SELECT state FROM sessions WHERE pk = ?", (session_pk,)
        ).fetchone()
        conn.execute(
            "UPDATE sessions SET state = ?, last_seq = ?, event_count = ?, updated_at = ?, "
            "expires_at = ? WHERE pk = ?",
            (
                dump_json(apply_delta(json.loads(state_text), session_delta)),
                last_seq,
                event_count,
                now,
                expires_at,
                session_pk,
            ),
        )
    else:
        conn.execute(
            "UPDATE sessions SET last_seq = ?, event_count = ?, updated_at = ?, expires_at = ? "
            "WHERE pk = ?",
            (last_seq, event_count, now, expires_at, session_pk),
        )
    _update_scopes(conn, key, app_delta, user_delta, expiry)
    return AppendResult(
        events=stored,
        last_seq=last_seq,
        event_count=event_count,
        updated_at=expiry.now,
        expires_at=expiry.session,
    )


_INSERT_EVENT = (
    "INSERT INTO events (session_pk, seq, event_id, timestamp, data) VALUES (?, ?, ?, ?, ?)"
)


def _event_values(session_pk: int, event: Event, default_time: datetime) -> tuple[Any, ...]:
    """The values of ``_INSERT_EVENT`` for ``event`` (``default_time`` if it has no timestamp)."""
    moment = event.timestamp or default_time
    return (session_pk, event.seq, event.id, to_micros(moment), event_to_json(event))


def _delete_oldest(conn: sqlite3.Connection, session_pk: int, count: int) -> None:
    # Seqs have gaps after a pop or a replace: the oldest are counted, never computed.
    conn.execute(
        "DELETE FROM events WHERE session_pk = ? AND seq IN "
        "(SELECT seq FROM events WHERE session_pk = ? ORDER BY seq LIMIT ?)",
        (session_pk, session_pk, count),
    )


def _all_stored(conn: sqlite3.Connection, session_pk: int, events: list[Event]) -> bool:
    return all(
        conn.execute(
            "SELECT 1 FROM events WHERE session_pk = ? AND event_id = ?", (session_pk, event.id)
        ).fetchone()
        for event in events
    )


def _moved_on(key: SessionKey, expected: int, last_seq: int) -> str:
    return (
        f"session {key.session_id!r} of user {key.user_id!r} moved on: expected last_seq "
        f"{expected}, it is {last_seq}. Re-read it and retry."
    )


def _stored_event(conn: sqlite3.Connection, session_pk: int, event_id: str) -> Event:
    row = conn.execute(
        "SELECT data FROM events WHERE session_pk = ? AND event_id = ?", (session_pk, event_id)
    ).fetchone()
    if row is None:
        # The insert was skipped for a conflict other than the event id: the
        # session's last_seq no longer matches its events.
        raise sqlite3.IntegrityError(
            f"event {event_id!r} was neither inserted nor found in session row {session_pk}"
        )
    return event_from_json(row[0])


def _live_head(conn: sqlite3.Connection, key: SessionKey, now: datetime) -> tuple[int, int]:
    """The ``pk`` and ``last_seq`` of the live session ``key``; ``SessionNotFound`` if none."""
    found = conn.execute(
        "SELECT pk, expires_at, last_seq FROM sessions "
        "WHERE app_name = ? AND user_id = ? AND session_id = ?",
        (key.app_name, key.user_id, key.session_id),
    ).fetchone()
    if found is None or not _live(found[1], to_micros(now)):
        raise SessionNotFound(key.app_name, key.user_id, key.session_id)
    return found[0], found[2]


def pop_event(conn: sqlite3.Connection, key: SessionKey, expiry: Expiry) -> Event | None:
    """Delete and return the newest event; ``last_seq`` stays, times move only if one went."""
    session_pk, _ = _live_head(conn, key, expiry.now)
    newest = conn.execute(
        "SELECT seq, data FROM events WHERE session_pk = ? ORDER BY seq DESC LIMIT 1",
        (session_pk,),
    ).fetchone()
    if newest is None:
        return None
    conn.execute("DELETE FROM events WHERE session_pk = ? AND seq = ?", (session_pk, newest[0]))
    conn.execute(
        "UPDATE sessions SET event_count = event_count - 1, updated_at = ?, expires_at = ? "
        "WHERE pk = ?",
        (to_micros(expiry.now), _optional_micros(expiry.session), session_pk),
    )
    return event_from_json(newest[1])


def replace_events(conn: sqlite3.Connection, request: ReplaceRequest) -> AppendResult:
    """Check ``expected_last_seq``, delete every event, store the new ones after ``last_seq``."""
    key, expiry = request.key, request.expiry
    session_pk, last_seq = _live_head(conn, key, expiry.now)
    expected = request.expected_last_seq
    if expected not in (None, last_seq):
        raise ConflictError(_moved_on(key, expected, last_seq))
    saved = [
        event.model_copy(update={"seq": seq})
        for seq, event in enumerate(request.events, start=last_seq + 1)
    ]
    # The trim keeps the newest event_limit: the older ones are numbered, never stored.
    kept = saved if request.event_limit is None else saved[-request.event_limit :]
    conn.execute("DELETE FROM events WHERE session_pk = ?", (session_pk,))
    conn.executemany(_INSERT_EVENT, [_event_values(session_pk, e, expiry.now) for e in kept])
    last_seq += len(saved)
    conn.execute(
        "UPDATE sessions SET last_seq = ?, event_count = ?, updated_at = ?, expires_at = ? "
        "WHERE pk = ?",
        (last_seq, len(kept), to_micros(expiry.now), _optional_micros(expiry.session), session_pk),
    )
    return AppendResult(
        events=saved,
        last_seq=last_seq,
        event_count=len(kept),
        updated_at=expiry.now,
        expires_at=expiry.session,
    )


def update_session(
    conn: sqlite3.Connection,
    key: SessionKey,
    deltas: StateDeltas,
    metadata: Mapping[str, Any],
    expiry: Expiry,
) -> StoredSession:
    """Apply state and metadata deltas to a live session without an event."""
    row = _session_row(conn, key, to_micros(expiry.now))
    if row is None:
        raise SessionNotFound(key.app_name, key.user_id, key.session_id)
    state_text = dump_json(apply_delta(json.loads(row[10]), deltas.session))
    metadata_text = dump_json(apply_delta(json.loads(row[11]), metadata))
    updated_at = to_micros(expiry.now)
    expires_at = _optional_micros(expiry.session)
    conn.execute(
        "UPDATE sessions SET state = ?, metadata = ?, updated_at = ?, expires_at = ? WHERE pk = ?",
        (state_text, metadata_text, updated_at, expires_at, row[0]),
    )
    _update_scopes(conn, key, deltas.app, deltas.user, expiry)
    app_state, user_state = _scopes(conn, key, expiry, refresh=False)
    row = (*row[:8], updated_at, expires_at, state_text, metadata_text, *row[12:])
    return StoredSession(_session_from_row(row), app_state, user_state)


def delete_session(conn: sqlite3.Connection, key: SessionKey, now: datetime) -> bool:
    """Delete the session (its events go with it, ``ON DELETE CASCADE``); whether it was live."""
    found = conn.execute(
        "SELECT pk, expires_at FROM sessions WHERE app_name = ? AND user_id = ? AND session_id = ?",
        (key.app_name, key.user_id, key.session_id),
    ).fetchone()
    if found is None:
        return False
    conn.execute("DELETE FROM sessions WHERE pk = ?", (found[0],))
    return _live(found[1], to_micros(now))


def restore_session(conn: sqlite3.Connection, session: Session, events: list[Event]) -> None:
    """Replace the session with exactly this content (times, seqs and counters as given)."""
    conn.execute(
        "DELETE FROM sessions WHERE app_name = ? AND user_id = ? AND session_id = ?",
        (session.app_name, session.user_id, session.id),
    )
    row = _new_session_row(session, event_count=len(events), last_seq=session.last_seq)
    cursor = conn.execute(
        f"INSERT INTO sessions ({_SESSION_COLUMNS}) VALUES ({_SESSION_PLACEHOLDERS})", row
    )
    session_pk = cast(int, cursor.lastrowid)  # an INSERT always sets it
    conn.executemany(
        _INSERT_EVENT, [_event_values(session_pk, event, session.created_at) for event in events]
    )


# --- app and user state -------------------------------------------------------------


def _state_target(key: StateKey) -> tuple[str, str, tuple[str, ...]]:
    if key.user_id is None:
        return "app_state", "app_name = ?", (key.app_name,)
    return "user_state", "app_name = ? AND user_id = ?", (key.app_name, key.user_id)


def read_state(
    conn: sqlite3.Connection, key: StateKey, expiry: Expiry, refresh: bool
) -> dict[str, Any]:
    """Return the live app or user state (``{}`` if absent or expired).

    With ``refresh``, slide its expiry.
    """
    table, where, params = _state_target(key)
    row = conn.execute(f"SELECT state, expires_at FROM {table} WHERE {where}", params).fetchone()
    if row is None or not _live(row[1], to_micros(expiry.now)):
        return {}
    if refresh:
        conn.execute(
            f"UPDATE {table} SET expires_at = ? WHERE {where}",
            (_optional_micros(key.expires_at(expiry)), *params),
        )
    state: dict[str, Any] = json.loads(row[0])
    return state


def write_state(
    conn: sqlite3.Connection, key: StateKey, delta: Mapping[str, Any], expiry: Expiry
) -> dict[str, Any]:
    """Apply ``delta`` to the app or user state (an expired state starts empty)."""
    state = read_state(conn, key, expiry, refresh=False)
    apply_delta(state, delta)
    expires_at = _optional_micros(key.expires_at(expiry))
    if key.user_id is None:
        conn.execute(
            "INSERT INTO app_state (app_name, state, expires_at) VALUES (?, ?, ?) "
            "ON CONFLICT (app_name) DO UPDATE SET state = excluded.state, "
            "expires_at = excluded.expires_at",
            (key.app_name, dump_json(state), expires_at),
        )
    else:
        conn.execute(
            "INSERT INTO user_state (app_name, user_id, state, expires_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (app_name, user_id) DO UPDATE SET state = excluded.state, "
            "expires_at = excluded.expires_at",
            (key.app_name, key.user_id, dump_json(state), expires_at),
        )
    return state


def _update_scopes(
    conn: sqlite3.Connection,
    key: SessionKey,
    app_delta: Mapping[str, Any],
    user_delta: Mapping[str, Any],
    expiry: Expiry,
) -> None:
    if app_delta:
        write_state(conn, StateKey.app(key.app_name), app_delta, expiry)
    if user_delta:
        write_state(conn, StateKey.user(key.app_name, key.user_id), user_delta, expiry)


def _scopes(
    conn: sqlite3.Connection, key: SessionKey, expiry: Expiry, *, refresh: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    return (
        read_state(conn, StateKey.app(key.app_name), expiry, refresh),
        read_state(conn, StateKey.user(key.app_name, key.user_id), expiry, refresh),
    )


def purge_expired(conn: sqlite3.Connection, now: datetime, batch: int) -> tuple[int, int]:
    """Delete up to ``batch`` expired sessions (their events cascade) and every expired state.

    Return how many sessions and how many states were removed; fewer than
    ``batch`` sessions means no expired session is left.
    """
    cutoff = to_micros(now)
    sessions: int = conn.execute(
        "DELETE FROM sessions WHERE pk IN (SELECT pk FROM sessions "
        "WHERE expires_at IS NOT NULL AND expires_at <= ? LIMIT ?)",
        (cutoff, batch),
    ).rowcount
    states = 0
    for table in ("app_state", "user_state"):
        states += conn.execute(
            f"DELETE FROM {table} WHERE expires_at IS NOT NULL AND expires_at <= ?", (cutoff,)
        ).rowcount
    return sessions, states
