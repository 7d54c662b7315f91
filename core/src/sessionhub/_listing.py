"""The listings of ``SessionHistoryService``: sessions (one user's or every user's), users, apps.

``ListingOperations`` is a base class of the service. Every listing pages by
an opaque cursor (see ``sessionhub._cursor``); a page of sessions comes
without events, each session's state merged with the app state and its own
user's state, each read once per page.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sessionhub import _validate
from sessionhub._append_steps import merge_scopes
from sessionhub._cursor import (
    decode_all_users_cursor,
    decode_cursor,
    decode_name_cursor,
    encode_all_users_cursor,
    encode_cursor,
    encode_name_cursor,
)
from sessionhub._operations import operation
from sessionhub.backend import Backend, Expiry, ListedPage, ListRequest, StateKey
from sessionhub.errors import ConfigError, InvalidInput
from sessionhub.models import Page, Session

if TYPE_CHECKING:
    import pluggy

__all__ = ["ListingOperations", "MAX_PAGE_SIZE", "require_capability"]

MAX_PAGE_SIZE = 1000

# Pydantic keeps a parametrized model only while something refers to it: held here,
# it is built once, not once per page (1-2 ms per listing call otherwise).
_SESSION_PAGE = Page[Session]
_NAME_PAGE = Page[str]


def require_capability(backend: Backend, capability: str) -> None:
    """Raise a one-line ``ConfigError`` unless ``backend`` declares ``capability``."""
    if not getattr(backend.capabilities, capability):
        raise ConfigError(
            f"The {backend.name!r} backend lacks the {capability!r} capability this "
            "call needs; use a backend that declares it (sessionhub backends lists them)."
        )


class ListingOperations:
    """Paging through sessions, users and apps; a base of ``SessionHistoryService``."""

    backend: Backend
    plugin_manager: pluggy.PluginManager
    app_name: str

    _clock: Callable[[], datetime]

    def _expiry(self, now: datetime) -> Expiry:
        raise NotImplementedError

    async def _ready(self) -> None:
        raise NotImplementedError

    @operation
    async def list_sessions(
        self,
        user_id: str | None,
        *,
        limit: int = 50,
        cursor: str | None = None,
        parent_id: str | None = None,
    ) -> Page[Session]:
        """List live sessions, newest ``updated_at`` first, without events.

        ``user_id`` lists that user's sessions; ``None`` lists every user's
        sessions of the app (the ``list_all_sessions`` capability), ties on
        ``updated_at`` broken by user id, then session id, both descending in
        code point order. Each session's ``state`` is merged with the app state
        and its own user's state. Pass ``page.next_cursor`` back as ``cursor``
        for the next page (``None`` on the last page); a cursor of one kind of
        listing is ``InvalidInput`` in the other. With ``parent_id`` (one user
        only), just that session's direct children are listed.
        """
        limit = _validate.check_count(limit, "limit", minimum=1, maximum=MAX_PAGE_SIZE)
        if user_id is None:
            if parent_id is not None:
                raise InvalidInput(
                    "parent_id", "needs a user_id: children are listed one user at a time"
                )
            require_capability(self.backend, "list_all_sessions")
            after = decode_all_users_cursor(cursor) if cursor else None
            encode = encode_all_users_cursor
        else:
            user_id = _validate.check_identifier(user_id, "user_id")
            after = decode_cursor(cursor) if cursor else None
            if parent_id is not None:
                parent_id = _validate.check_identifier(parent_id, "parent_id")
            encode = encode_cursor
        await self._ready()
        request = ListRequest(
            app_name=self.app_name,
            user_id=user_id,
            limit=limit + 1,
            after=after,
            parent_id=parent_id,
            expiry=self._expiry(self._clock()),
        )
        if self.backend.capabilities.list_page:
            listed = await self.backend.list_page(request)
        else:
            listed = await self._read_page(request)
        return _merged_page(listed, limit, encode)

    async def _read_page(self, request: ListRequest) -> ListedPage:
        """The page and its states through calls of their own (a backend without ``list_page``).

        The states the page needs are read beside the page where they are known before
        it (the app's, and the user's of a one-user listing): one wait, not two.
        """
        backend, app, expiry = self.backend, request.app_name, request.expiry
        user = request.user_id
        if user is None:
            rows, app_state = await asyncio.gather(
                backend.list_app_sessions(
                    app, limit=request.limit, after=request.after, now=expiry.now
                ),
                backend.read_state(StateKey.app(app), expiry, refresh=False),
            )
            users = sorted({row.user_id for row in rows})
            states = await asyncio.gather(
                *(backend.read_state(StateKey.user(app, u), expiry, refresh=False) for u in users)
            )
            return ListedPage(rows, app_state, dict(zip(users, states, strict=True)))
        rows, app_state, user_state = await asyncio.gather(
            backend.list_sessions(
                app,
                user,
                limit=request.limit,
                after=request.after,
                parent_id=request.parent_id,
                now=expiry.now,
            ),
            backend.read_state(StateKey.app(app), expiry, refresh=False),
            backend.read_state(StateKey.user(app, user), expiry, refresh=False),
        )
        return ListedPage(rows, app_state, {user: user_state})

    @operation
    async def list_users(self, *, limit: int = 50, cursor: str | None = None) -> Page[str]:
        """List the ids of the app's users (with sessions or user state), ascending.

        Users whose data has expired or been deleted may still be listed (a
        backend may prune its index lazily). Needs the ``list_users`` capability.
        """
        return await self._names("user", "list_users", limit, cursor)

    @operation
    async def list_apps(self, *, limit: int = 50, cursor: str | None = None) -> Page[str]:
        """List the names of the apps the store holds (sessions or state), ascending.

        Store-wide: not only this service's app. Apps whose data has expired or
        been deleted may still be listed. Needs the ``list_apps`` capability.
        """
        return await self._names("app", "list_apps", limit, cursor)

    async def _names(self, kind: str, capability: str, limit: int, cursor: str | None) -> Page[str]:
        limit = _validate.check_count(limit, "limit", minimum=1, maximum=MAX_PAGE_SIZE)
        require_capability(self.backend, capability)
        after = decode_name_cursor(cursor, kind) if cursor else None
        await self._ready()
        names: list[Any]
        if kind == "user":
            names = await self.backend.list_users(self.app_name, limit=limit + 1, after=after)
        else:
            names = await self.backend.list_apps(limit=limit + 1, after=after)
        next_cursor = None
        if len(names) > limit:
            names = names[:limit]
            next_cursor = encode_name_cursor(kind, names[-1])
        return _NAME_PAGE(items=names, next_cursor=next_cursor)


def _merged_page(listed: ListedPage, limit: int, encode: Callable[[Session], str]) -> Page[Session]:
    """Cut the rows to a page and merge each session's state with its wider scopes."""
    rows = listed.sessions
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode(rows[-1])
    if not listed.app_state and not any(listed.user_states.values()):
        return _SESSION_PAGE(items=rows, next_cursor=next_cursor)
    # The app and user keys of each user, prefixed once per page, not once per row.
    scopes: dict[str, dict[str, Any]] = {}
    for row in rows:
        wider = scopes.get(row.user_id)
        if wider is None:
            user_state = listed.user_states.get(row.user_id, {})
            wider = scopes[row.user_id] = merge_scopes(listed.app_state, user_state, {})
        if wider:
            merged = wider.copy()
            merged.update(row.state)
            row.__dict__["state"] = merged  # a field already set: skip __setattr__
    return _SESSION_PAGE(items=rows, next_cursor=next_cursor)
