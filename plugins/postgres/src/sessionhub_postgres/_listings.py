"""The listings' statements and arguments, and the sessions (and states) of their rows.

A page of one user's sessions and a page of every user's take the same
arguments whether they are read alone (``list_sessions`` /
``list_app_sessions``) or with their states (``list_page``): only the statement
differs (see :class:`~sessionhub_postgres._statements.Statements`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sessionhub import ListCursor, ListedPage, ListRequest, Session, SessionKey
from sessionhub_postgres._codec import decode_object, session_from_row
from sessionhub_postgres._statements import Statements

__all__ = ["user_page", "app_page", "page_of", "sessions", "listed_page"]

Query = tuple[str, list[Any]]


def user_page(
    sql: Statements,
    app_name: str,
    user_id: str,
    *,
    limit: int,
    after: ListCursor | None,
    parent_id: str | None,
    now: datetime,
    states: bool = False,
) -> Query:
    """The statement and arguments of a page of one user's sessions (``states``: with them)."""
    args: list[Any] = [app_name, user_id, now]
    if parent_id is not None:
        args.append(parent_id)
    if after is not None:
        args += [after.updated_at, after.session_id]
    args.append(limit)
    variant = parent_id is not None, after is not None
    return (sql.page_sessions if states else sql.list_sessions)[variant], args


def app_page(
    sql: Statements,
    app_name: str,
    *,
    limit: int,
    after: ListCursor | None,
    now: datetime,
    states: bool = False,
) -> Query:
    """The statement and arguments of a page of every user's sessions (``states``: with them)."""
    args: list[Any] = [app_name, now]
    if after is not None:
        args += [after.updated_at, after.user_id or "", after.session_id]
    args.append(limit)
    return (sql.page_app_sessions if states else sql.list_app_sessions)[after is not None], args


def page_of(sql: Statements, request: ListRequest) -> Query:
    """The one statement of ``list_page``: the page with its app and user states."""
    now = request.expiry.now
    if request.user_id is None:
        return app_page(
            sql, request.app_name, limit=request.limit, after=request.after, now=now, states=True
        )
    return user_page(
        sql,
        request.app_name,
        request.user_id,
        limit=request.limit,
        after=request.after,
        parent_id=request.parent_id,
        now=now,
        states=True,
    )


def sessions(app_name: str, user_id: str | None, rows: Sequence[Any]) -> list[Session]:
    """The sessions of a page's rows; without ``user_id`` each row names its user."""
    return [
        session_from_row(
            SessionKey(app_name, row[11] if user_id is None else user_id, row[0]), row, events=False
        )
        for row in rows
    ]


def listed_page(app_name: str, rows: Sequence[Any]) -> ListedPage:
    """The sessions and states of a ``list_page`` statement's rows.

    Each state comes once: the app's on the first row, a user's on that user's first.
    """
    page = ListedPage([], {}, {})
    for row in rows:
        owner = row[-4]
        page.sessions.append(
            session_from_row(SessionKey(app_name, owner, row[0]), row, events=False)
        )
        if owner not in page.user_states:
            page.user_states[owner] = decode_object(row[-1])
    if rows:
        page.app_state = decode_object(rows[0][-2])
    return page
