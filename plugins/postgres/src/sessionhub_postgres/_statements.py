"""The SQL the backend sends: one statement per primitive, built once per deployment's names.

Writes call the server-side functions of :mod:`sessionhub_postgres._functions`;
reads that write nothing are single statements (one snapshot). Every statement
runs on its own in autocommit mode, so each primitive is one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from sessionhub_postgres._functions import APPEND_ARGUMENTS
from sessionhub_postgres._schema import Names

__all__ = ["Statements"]

_LIVE = "(expires_at IS NULL OR expires_at > {now})"

# A wider scope's expiry moves only when that moves it by more than {move}.
_MOVES = (
    "expires_at IS DISTINCT FROM {exp} AND (expires_at IS NULL OR {exp}::timestamptz IS NULL "
    "OR {exp} - expires_at > {move} OR expires_at - {exp} > {move})"
)

_LISTED = (
    "session_id, parent_id, root_id, depth, created_at, updated_at, expires_at, state, "
    "metadata, event_count, last_seq"
)


def _call(function: str, arguments: int) -> str:
    placeholders = ", ".join(f"${n}" for n in range(1, arguments + 1))
    return f"SELECT * FROM {function}({placeholders})"


@dataclass(frozen=True)
class Statements:
    """Every statement of one deployment (schema and table prefix)."""

    read_session: str
    """A session, its app and user state, and a window of its events, as rows (see
    ``_read_session``): parameters app, user, session, now, after_seq, after_time, last_n."""
    read_session_refresh: str
    """The same, sliding the expiries first (a function call): one row, events in arrays."""
    create_session: str
    append: str
    append_plain: str
    """A batch without a trim or user and app deltas: one statement, no function call."""
    append_one: str
    """``append_plain`` for a batch of one event: its id, time and text as plain values."""
    update_session: str
    pop_event: str
    replace_events: str
    restore_session: str
    put_state: str
    delete_session: str
    list_sessions: dict[tuple[bool, bool], str]
    """By (with parent_id, with a cursor)."""
    list_app_sessions: dict[bool, str]
    """By whether a cursor is given."""
    page_sessions: dict[tuple[bool, bool], str]
    """``list_sessions`` with the app and user states: by (with parent_id, with a cursor)."""
    page_app_sessions: dict[bool, str]
    """``list_app_sessions`` with the app state and each user's state: by with a cursor."""
    list_users: str
    list_apps: str
    read_app_state: str
    read_user_state: str
    refresh_app_state: str
    refresh_user_state: str
    purge_sessions: str
    purge_app_state: str
    purge_user_state: str

    @classmethod
    def build(cls, names: Names) -> Statements:
        """The statements for the tables and functions ``names`` names."""
        sessions, app_state, user_state = names.sessions, names.app_state, names.user_state
        return cls(
            read_session=_read_session(names),
            read_session_refresh=_call(names.read_session_refresh, 11),
            create_session=_call(names.create_session, 18),
            append=_call(names.append, APPEND_ARGUMENTS),
            append_plain=_append_plain(names, one=False),
            append_one=_append_plain(names, one=True),
            update_session=_call(names.update_session, 15),
            pop_event=_call(names.pop_event, 5),
            replace_events=_call(names.replace_events, 10),
            restore_session=f"SELECT {names.restore_session}("
            + ", ".join(f"${n}" for n in range(1, 17))
            + ")",
            put_state=f"SELECT {names.put_state}($1, $2, $3, $4, $5, $6)",
            delete_session=f"DELETE FROM {sessions} WHERE app_name = $1 AND user_id = $2 "
            "AND session_id = $3 RETURNING expires_at",
            list_sessions={
                (parent, cursor): _list_sessions(sessions, parent=parent, cursor=cursor)
                for parent in (False, True)
                for cursor in (False, True)
            },
            list_app_sessions={
                cursor: _list_app_sessions(sessions, cursor=cursor) for cursor in (False, True)
            },
            page_sessions={
                (parent, cursor): _with_states(
                    names,
                    _list_sessions(sessions, parent=parent, cursor=cursor, numbered=True),
                    now="$3",
                    one_user=True,
                )
                for parent in (False, True)
                for cursor in (False, True)
            },
            page_app_sessions={
                cursor: _with_states(
                    names, _list_app_sessions(sessions, cursor=cursor, numbered=True), now="$2"
                )
                for cursor in (False, True)
            },
            list_apps=_list_apps(names),
            list_users=(
                "SELECT user_id FROM ("
                f"(SELECT DISTINCT user_id FROM {sessions} WHERE app_name = $1 AND user_id > $2 "
                "ORDER BY user_id LIMIT $3) UNION "
                f"(SELECT user_id FROM {user_state} WHERE app_name = $1 AND user_id > $2 "
                "ORDER BY user_id LIMIT $3)) AS u ORDER BY user_id LIMIT $3"
            ),
            read_app_state=f"SELECT state FROM {app_state} WHERE app_name = $1 AND "
            + _LIVE.format(now="$2"),
            read_user_state=f"SELECT state FROM {user_state} WHERE app_name = $1 "
            "AND user_id = $2 AND " + _LIVE.format(now="$3"),
            refresh_app_state=(
                f"WITH moved AS (UPDATE {app_state} SET expires_at = $3 WHERE app_name = $1 AND "
                + _LIVE.format(now="$2")
                + " AND "
                + _MOVES.format(exp="$3", move="$4")
                + f" RETURNING 1) SELECT state FROM {app_state} WHERE app_name = $1 AND "
                + _LIVE.format(now="$2")
            ),
            refresh_user_state=(
                f"WITH moved AS (UPDATE {user_state} SET expires_at = $4 WHERE app_name = $1 "
                "AND user_id = $2 AND "
                + _LIVE.format(now="$3")
                + " AND expires_at IS DISTINCT FROM $4 RETURNING 1) "
                f"SELECT state FROM {user_state} WHERE app_name = $1 AND user_id = $2 AND "
                + _LIVE.format(now="$3")
            ),
            # Bounded batches; rows a writer holds are left for the next purge.
            purge_sessions=(
                f"DELETE FROM {sessions} WHERE pk IN (SELECT pk FROM {sessions} "
                "WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED) "
                "AND expires_at <= $1"
            ),
            purge_app_state=(
                f"DELETE FROM {app_state} WHERE app_name IN (SELECT app_name FROM {app_state} "
                "WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED) AND expires_at <= $1"
            ),
            purge_user_state=(
                f"DELETE FROM {user_state} WHERE (app_name, user_id) IN (SELECT app_name, "
                f"user_id FROM {user_state} WHERE expires_at <= $1 LIMIT $2 "
                "FOR UPDATE SKIP LOCKED) AND expires_at <= $1"
            ),
        )


def _append_plain(names: Names, *, one: bool) -> str:
    """The usual append as one statement: the session update, then every event inserted.

    The update takes the session's row lock (a writer of the same session waits, then
    sees its new ``last_seq``) and allocates the seqs. An id stored already calls
    ``stored_id``, which raises: nothing of the statement stays. No row comes back
    when the session is absent, expired or moved on (``$6``, the expected ``last_seq``).
    Parameters: app, user, session, now, session expiry, expected, ids, times, texts,
    session delta keys and set values. With ``one``, the id, time and text of a single
    event instead of arrays: no arrays to encode and unnest, 4% off the append (measured).
    """
    if one:
        count = "1"
        rows = "SELECT s.pk, s.last_seq, $7::text, $8::timestamptz, $9::text FROM s "
    else:
        count = "cardinality($7::text[])"
        rows = (
            "SELECT s.pk, s.last_seq - cardinality($7::text[]) + x.ord, x.id, x.ts, x.data "
            "FROM s, unnest($7::text[], $8::timestamptz[], $9::text[]) WITH ORDINALITY "
            "AS x(id, ts, data, ord) "
        )
    return (
        f"WITH s AS (UPDATE {names.sessions} SET "
        f"last_seq = last_seq + {count}, event_count = event_count + {count}, "
        "updated_at = $4, expires_at = $5, "
        "state = CASE WHEN cardinality($10::text[]) = 0 THEN state "
        "ELSE (state - $10::text[]) || $11::jsonb END "
        "WHERE app_name = $1 AND user_id = $2 AND session_id = $3 AND "
        + _LIVE.format(now="$4")
        + " AND ($6::bigint IS NULL OR last_seq = $6) RETURNING pk, last_seq, event_count), "
        f"inserted AS (INSERT INTO {names.events} (session_pk, seq, event_id, ts, data) "
        + rows
        + f"ON CONFLICT (session_pk, event_id) DO UPDATE SET data = {names.stored_id}()) "
        "SELECT last_seq, event_count FROM s"
    )


def _read_session(names: Names) -> str:
    """A live session's row, then a row per event of the window, newest first.

    The first row carries the session's columns (as ``SESSION_COLUMNS`` up to the
    user state) and ``NULL`` for seq and data; each event row ``NULL`` for those
    and its seq and data. Rows instead of the function's two arrays: building and
    sending 5,000 events as an array costs the server about three times as much as
    sending the rows (11 ms against 3.7 ms, measured). The events are read newest
    first through the primary key, so a ``last_n`` window reads only its rows. No
    row: the session is absent or expired.
    """
    sessions, events = names.sessions, names.events
    blank = ", ".join(["NULL"] * 13)
    live = _LIVE.format(now="$4")  # in each subquery, its own table's expires_at
    return (
        f"WITH s AS (SELECT * FROM {sessions} WHERE app_name = $1 AND user_id = $2 "
        f"AND session_id = $3 AND {live}) "
        "SELECT pk, parent_id, root_id, depth, created_at, updated_at, expires_at, state, "
        f"metadata, event_count, last_seq, (SELECT state FROM {names.app_state} "
        f"WHERE app_name = $1 AND {live}), (SELECT state FROM {names.user_state} "
        f"WHERE app_name = $1 AND user_id = $2 AND {live}), NULL::bigint, NULL::text FROM s "
        f"UNION ALL SELECT {blank}, e.seq, e.data FROM s CROSS JOIN LATERAL "
        f"(SELECT seq, data FROM {events} WHERE session_pk = s.pk "
        "AND seq > coalesce($5::bigint, 0) AND ($6::timestamptz IS NULL OR ts > $6) "
        "ORDER BY seq DESC LIMIT $7::bigint) e"
    )


def _list_sessions(sessions: str, *, parent: bool, cursor: bool, numbered: bool = False) -> str:
    order = "updated_at DESC, session_id DESC"
    sql = (
        f"SELECT {_LISTED}{_numbered(order) if numbered else ''} FROM {sessions} "
        "WHERE app_name = $1 AND user_id = $2 AND " + _LIVE.format(now="$3")
    )
    n = 4
    if parent:
        sql += f" AND parent_id = ${n}"
        n += 1
    if cursor:
        sql += f" AND (updated_at, session_id) < (${n}, ${n + 1})"
        n += 2
    return sql + f" ORDER BY {order} LIMIT ${n}"


def _list_app_sessions(sessions: str, *, cursor: bool, numbered: bool = False) -> str:
    # Along the (app_name, updated_at, user_id, session_id) index, read backwards.
    order = "updated_at DESC, user_id DESC, session_id DESC"
    sql = (
        f"SELECT {_LISTED}, user_id{_numbered(order) if numbered else ''} FROM {sessions} "
        "WHERE app_name = $1 AND " + _LIVE.format(now="$2")
    )
    if cursor:
        sql += " AND (updated_at, user_id, session_id) < ($3, $4, $5)"
    return sql + f" ORDER BY {order} LIMIT ${6 if cursor else 3}"


def _numbered(order: str) -> str:
    """The owner and the row's place in the page, numbered along the listing's own order.

    ``row_number()`` in the index's order streams, so the ``LIMIT`` still stops the scan.
    """
    return f", user_id AS owner, row_number() OVER (ORDER BY {order}) AS n"


def _with_states(names: Names, page: str, *, now: str, one_user: bool = False) -> str:
    """``page`` with the app state on its first row and a user's state on that user's first.

    Elsewhere those two columns are ``NULL``, so each state is sent once. Columns: the
    listing's, ``owner``, ``n`` (the row's place), the app state and the user state
    (``NULL`` on the row that would carry it too when absent or expired). A listing of
    one user's sessions has one user state: on the first row, as the app state.
    """
    live = _LIVE.format(now=now)
    return (
        "SELECT p.*, CASE WHEN p.n = 1 THEN "
        f"(SELECT state FROM {names.app_state} WHERE app_name = $1 AND {live}) END, "
        + (
            "CASE WHEN p.n = 1 THEN "
            if one_user
            else "CASE WHEN row_number() OVER (PARTITION BY p.owner ORDER BY p.n) = 1 THEN "
        )
        + f"(SELECT state FROM {names.user_state} AS u WHERE u.app_name = $1 "
        f"AND u.user_id = p.owner AND {live}) END "
        f"FROM ({page}) AS p ORDER BY p.n"
    )


def _next_names(table: str) -> str:
    """The app names of ``table`` after $1, ascending: one index seek each (a loose scan)."""
    return (
        f"(WITH RECURSIVE names(app) AS ("
        f"SELECT min(app_name) FROM {table} WHERE app_name > $1 "
        f"UNION ALL SELECT (SELECT min(app_name) FROM {table} WHERE app_name > names.app) "
        "FROM names WHERE names.app IS NOT NULL) "
        "SELECT app FROM names WHERE app IS NOT NULL LIMIT $2)"
    )


def _list_apps(names: Names) -> str:
    tables = (names.sessions, names.user_state, names.app_state)
    return (
        "SELECT app FROM ("
        + " UNION ".join(_next_names(table) for table in tables)
        + ") AS apps ORDER BY app LIMIT $2"
    )
