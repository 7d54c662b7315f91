"""The SQL of the listings: sessions by keyset pages, users and apps, all from indexes.

Like :mod:`._transactions`, each function is one transaction body run on the
connection's thread. Ids compare with SQLite's ``BINARY`` collation, the byte
order of their UTF-8 text, which is their code point order.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from sessionhub import ListCursor, ListedPage, ListRequest, Session, StateKey
from sessionhub.backend_tools import to_micros
from sessionhub_sqlite._transactions import _SESSION_COLUMNS, _session_from_row, read_state

__all__ = ["list_sessions", "list_app_sessions", "list_page", "list_users", "list_apps"]


def _sessions(cursor: sqlite3.Cursor) -> list[Session]:
    """The sessions of a page of rows, each JSON column parsed in one ``json.loads``.

    The texts are objects the backend wrote (``dump_json``), so joined with commas in
    brackets they are exactly the list of them; one parse costs a third of one per row.
    """
    rows = cursor.fetchall()
    if not rows:
        return []
    states = json.loads("[" + ",".join([row[10] for row in rows]) + "]")
    metadata = json.loads("[" + ",".join([row[11] for row in rows]) + "]")
    return [
        _session_from_row(row, objects=objects)
        for row, objects in zip(rows, zip(states, metadata, strict=True), strict=True)
    ]


def list_sessions(
    conn: sqlite3.Connection,
    app_name: str,
    user_id: str,
    limit: int,
    after: ListCursor | None,
    parent_id: str | None,
    now: datetime,
) -> list[Session]:
    """Return one keyset page of a user's live sessions, ``(updated_at, id)`` descending."""
    sql = (
        f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE app_name = ? AND user_id = ? "
        "AND (expires_at IS NULL OR expires_at > ?)"
    )
    params: list[Any] = [app_name, user_id, to_micros(now)]
    if parent_id is not None:
        sql += " AND parent_id = ?"
        params.append(parent_id)
    if after is not None:
        sql += " AND (updated_at, session_id) < (?, ?)"
        params.extend((to_micros(after.updated_at), after.session_id))
    sql += " ORDER BY updated_at DESC, session_id DESC LIMIT ?"
    params.append(limit)
    return _sessions(conn.execute(sql, params))


def list_app_sessions(
    conn: sqlite3.Connection,
    app_name: str,
    limit: int,
    after: ListCursor | None,
    now: datetime,
) -> list[Session]:
    """One keyset page of every user's live sessions, ``(updated_at, user, id)`` descending.

    Read along the ``sessions_by_app_updated`` index (schema version 3).
    """
    sql = (
        f"SELECT {_SESSION_COLUMNS} FROM sessions INDEXED BY sessions_by_app_updated "
        "WHERE app_name = ? AND (expires_at IS NULL OR expires_at > ?)"
    )
    params: list[Any] = [app_name, to_micros(now)]
    if after is not None:
        sql += " AND (updated_at, user_id, session_id) < (?, ?, ?)"
        params.extend((to_micros(after.updated_at), after.user_id or "", after.session_id))
    sql += " ORDER BY updated_at DESC, user_id DESC, session_id DESC LIMIT ?"
    params.append(limit)
    return _sessions(conn.execute(sql, params))


def list_page(conn: sqlite3.Connection, request: ListRequest) -> ListedPage:
    """A listing page and the app and user states it is shown with, in one transaction."""
    now = request.expiry.now
    if request.user_id is None:
        rows = list_app_sessions(conn, request.app_name, request.limit, request.after, now)
    else:
        rows = list_sessions(
            conn,
            request.app_name,
            request.user_id,
            request.limit,
            request.after,
            request.parent_id,
            now,
        )
    if not rows:
        return ListedPage(rows, {}, {})
    app = request.app_name
    return ListedPage(
        rows,
        read_state(conn, StateKey.app(app), request.expiry, refresh=False),
        {
            user: read_state(conn, StateKey.user(app, user), request.expiry, refresh=False)
            for user in {row.user_id for row in rows}
        },
    )


def list_users(conn: sqlite3.Connection, app_name: str, limit: int, after: str | None) -> list[str]:
    """User ids with sessions or user state in the app, ascending, after ``after``."""
    floor = "" if after is None else after
    rows = conn.execute(
        "SELECT user_id FROM sessions WHERE app_name = ? AND user_id > ? "
        "UNION SELECT user_id FROM user_state WHERE app_name = ? AND user_id > ? "
        "ORDER BY user_id LIMIT ?",
        (app_name, floor, app_name, floor, limit),
    ).fetchall()
    return [user_id for (user_id,) in rows]


_NEXT_APP = {
    table: f"SELECT min(app_name) FROM {table} WHERE app_name > ?"
    for table in ("sessions", "user_state", "app_state")
}
"""The first app name after a given one, per table: one seek in an index led by app_name."""


def list_apps(conn: sqlite3.Connection, limit: int, after: str | None) -> list[str]:
    """App names with sessions, user state or app state, ascending, after ``after``.

    A loose index scan: each name costs one seek per table, however many rows it has.
    """
    floor = "" if after is None else after
    heads: dict[str, str | None] = {
        table: conn.execute(sql, (floor,)).fetchone()[0] for table, sql in _NEXT_APP.items()
    }
    apps: list[str] = []
    while len(apps) < limit:
        found = [name for name in heads.values() if name is not None]
        if not found:
            break
        name = min(found)
        apps.append(name)
        for table, head in heads.items():
            if head == name:
                heads[table] = conn.execute(_NEXT_APP[table], (name,)).fetchone()[0]
    return apps
