"""``SessionHubSession``: an OpenAI Agents SDK session stored in any sessionhub backend.

Each SDK item is one sessionhub event (see ``_items``); every operation is one
call of the service: ``add_items`` one atomic append, ``get_items(limit)`` a
read of the newest ``limit`` events only (after the first, only of those stored
since this object's last read: ``_tail``), ``pop_item`` the atomic ``pop_event``,
``clear_session`` the atomic ``clear_events``.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from agents.items import TResponseInputItem
from agents.memory import SessionABC, SessionSettings
from agents.memory.session_settings import coerce_session_settings, resolve_session_limit

from sessionhub import (
    InvalidInput,
    Session,
    SessionExists,
    SessionHistoryService,
    SessionHubSettings,
    SessionNotFound,
)
from sessionhub_openai_agents._items import copy_json, event_to_item, item_to_event
from sessionhub_openai_agents._services import shared_services
from sessionhub_openai_agents._tail import Tail

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import Self

__all__ = ["SessionHubSession", "DEFAULT_USER_ID"]

DEFAULT_USER_ID = "default"
"""The sessionhub user of a session built without ``user_id`` (the SDK has no users)."""


class SessionHubSession(SessionABC):
    """An Agents SDK ``Session`` whose history lives in a sessionhub backend.

    ``SessionHubSession("conv-1", url="redis://localhost:6379/0")`` stores in
    that backend; sessions built with the same URL (and settings) share one
    service and so one connection pool, which the last of them to ``close``
    closes. ``service=`` uses a service you own instead (``close`` leaves it
    open). With neither, the configured store is used (``SESSIONHUB_*``
    variables, ``sessionhub.toml``; default: SQLite in the working directory).

    :param session_id: The conversation's id: the sessionhub session id.
    :param service: A service to store through; the caller starts and stops it.
    :param url: A storage URL selecting the backend (``memory://``, ``sqlite:///path``,
        ``redis://…``, ``mongodb://…``); ignored with ``service``.
    :param user_id: The sessionhub user owning the session (default ``"default"``).
    :param app_name: The sessionhub app (default: the service's, from its settings).
    :param session_settings: The SDK's settings; its ``limit`` caps ``get_items()``.
    :param settings: Resolved sessionhub settings to build the shared service from
        (sessions given the same object share it); ignored with ``service``.
    :param options: Further sessionhub settings for the shared service
        (``event_limit=500``, ``session_ttl=3600``…), above ``url`` and ``settings``.
    """

    session_settings: SessionSettings | None = None

    def __init__(
        self,
        session_id: str,
        service: SessionHistoryService | None = None,
        *,
        url: str | None = None,
        user_id: str = DEFAULT_USER_ID,
        app_name: str | None = None,
        session_settings: SessionSettings | dict[str, Any] | None = None,
        settings: SessionHubSettings | None = None,
        **options: Any,
    ) -> None:
        if not isinstance(session_id, str) or not session_id.strip():
            raise InvalidInput("session_id", "must be a non-empty string naming the conversation")
        if service is not None and (url is not None or settings is not None or options):
            raise InvalidInput(
                "service", "pass either a service or url=/settings/options to build one, not both"
            )
        self.session_id = session_id
        self.session_settings = (
            coerce_session_settings(session_settings)
            if session_settings is not None
            else SessionSettings()
        )
        self.user_id = user_id
        self._owned = service is None
        base = service if service is not None else shared_services.acquire(url, options, settings)
        self._base = base
        self._service = base.for_app(app_name) if app_name is not None else base
        self._closed = False
        self._tail: Tail | None = None

    @classmethod
    def from_url(
        cls,
        session_id: str,
        *,
        url: str,
        user_id: str = DEFAULT_USER_ID,
        app_name: str | None = None,
        session_settings: SessionSettings | dict[str, Any] | None = None,
        **options: Any,
    ) -> SessionHubSession:
        """A session on the store ``url`` selects, sharing its service with the URL's other users.

        The same as ``SessionHubSession(session_id, url=url, ...)``, in the shape of
        the SDK's own ``RedisSession.from_url``.
        """
        return cls(
            session_id,
            url=url,
            user_id=user_id,
            app_name=app_name,
            session_settings=session_settings,
            **options,
        )

    @property
    def service(self) -> SessionHistoryService:
        """The sessionhub service this session stores through."""
        return self._service

    # --- the Session protocol --------------------------------------------------

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The newest ``limit`` items, oldest first (all with ``None``; none with 0 or less).

        ``limit=None`` falls back to ``session_settings.limit``, as the SDK's own
        sessions do. Every call reads the store; after the first, only the events
        stored since this object's last read are read and decoded (see ``_tail``).
        """
        service = self._open()
        resolved = resolve_session_limit(limit, self.session_settings)
        if resolved is not None and resolved <= 0:
            return []
        tail = self._tail
        if tail is not None:
            newer = await service.get_session(
                self.user_id, self.session_id, last_n=resolved, after_seq=tail.last_seq
            )
            if newer is None:
                self._tail = None
                return []
            items = tail.extended(newer, _items_of(newer), resolved)
            if items is not None:
                return self._keep(newer, items, resolved)
        session = await service.get_session(self.user_id, self.session_id, last_n=resolved)
        if session is None:
            self._tail = None
            return []
        return self._keep(session, _items_of(session), resolved)

    def _keep(
        self, read: Session, items: list[TResponseInputItem], limit: int | None
    ) -> list[TResponseInputItem]:
        """Keep ``items`` (the newest as of ``read``) for the next read; return the last ``limit``.

        As copies: the caller may edit what it gets, the kept items stay as stored.
        """
        newest = items if limit is None else items[-limit:]
        self._tail = Tail.of(read, newest)  # no more than asked for: the next read extends it
        return [copy_json(item) for item in newest]

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append ``items`` in one atomic write (the session is created on first use)."""
        service = self._open()
        if not items:
            return
        events = [item_to_event(item) for item in items]
        try:
            await service.append((self.user_id, self.session_id), events)
        except SessionNotFound:
            with contextlib.suppress(SessionExists):  # a concurrent writer created it first
                await service.create_session(self.user_id, self.session_id)
            await service.append((self.user_id, self.session_id), events)

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove and return the newest item atomically (``None`` if there is none).

        Needs a backend with the ``pop_event`` capability (``sessionhub backends``
        lists them); on one without it, raises ``ConfigError`` naming the backend.
        """
        service = self._open()
        self._tail = None
        try:
            event = await service.pop_event(self.user_id, self.session_id)
        except SessionNotFound:
            return None
        return None if event is None else event_to_item(event)

    async def clear_session(self) -> None:
        """Delete every item atomically.

        On a backend with ``replace_events`` the session, its state and metadata
        stay; on one without it the whole session is deleted (as the SDK's own
        ``SQLiteSession`` does) and the next ``add_items`` creates it again.
        """
        service = self._open()
        self._tail = None
        if not service.backend.capabilities.replace_events:
            await service.delete_session(self.user_id, self.session_id)
            return
        with contextlib.suppress(SessionNotFound):  # nothing stored: already clear
            await service.clear_events(self.user_id, self.session_id)

    # --- lifecycle -------------------------------------------------------------

    async def close(self) -> None:
        """Stop using the store; the session is closed after this. Idempotent.

        A session built from a URL gives up its share of the shared service (the
        last one closes the connections); a service passed in stays open.
        """
        if self._closed:
            return
        self._closed = True
        if self._owned:
            await shared_services.release(self._base)

    async def __aenter__(self) -> Self:
        self._open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def _open(self) -> SessionHistoryService:
        if self._closed:
            raise RuntimeError(
                f"SessionHubSession {self.session_id!r} is closed; build a new one to use it again"
            )
        return self._service

    def __repr__(self) -> str:
        return (
            f"<SessionHubSession {self.session_id!r} user={self.user_id!r} "
            f"app={self._service.app_name!r} backend={self._service.backend.name!r}>"
        )


def _items_of(session: Session) -> list[TResponseInputItem]:
    """The SDK items of the session's events, oldest first."""
    return [event_to_item(event) for event in session.events]
