"""``SessionHubSessionService``: a Google ADK session service over any sessionhub backend.

One sessionhub service (one backend connection) serves every ADK app: each
call goes to ``service.for_app(app_name)``. Staleness is detected by
compare-and-set on the session's ``last_seq``, which the ADK ``Session``
carries in its ``_storage_update_marker`` (ADK's own field for this purpose).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from google.adk.errors import StaleSessionError
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.sessions.base_session_service import (
    BaseSessionService,
    GetSessionConfig,
    ListSessionsResponse,
)
from google.adk.sessions.session import Session as AdkSession

from sessionhub import ConflictError, SessionExists, SessionHistoryService, SessionNotFound
from sessionhub_adk._events import epoch_to_datetime, to_adk_event, to_sessionhub_event
from sessionhub_adk._rebuild import construct
from sessionhub_adk._state import LAST_UPDATE_KEY, decode_state, encode_delta, json_safe

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from google.adk.events.event import Event as AdkEvent

    from sessionhub import Event, Session

__all__ = ["SessionHubSessionService", "sessionhub_url"]

_MARKER_PREFIX = "sessionhub:"
Read = TypeVar("Read")
Made = TypeVar("Made")
_STALE = (
    "The session has been modified in storage since it was loaded. "
    "Please reload the session before appending more events."
)
_PAGE = 1000


def sessionhub_url(uri: str) -> str | None:
    """The sessionhub storage URL in an ADK URI (``sessionhub+sqlite:///x.db``: ``sqlite:///x.db``).

    ``sessionhub://`` (nothing after the scheme) gives ``None``: the backend then
    comes from sessionhub's settings (environment, ``sessionhub.toml``). Any
    other URI is taken to be a sessionhub URL already.
    """
    scheme, separator, rest = uri.partition("://")
    if not separator:
        raise ValueError(
            f"session service URI {uri!r} has no scheme; write e.g. "
            "'sessionhub+sqlite:///sessions.db' or 'sessionhub://' (backend from the settings)"
        )
    if scheme == "sessionhub":
        if rest:
            raise ValueError(
                f"session service URI {uri!r}: 'sessionhub://' takes nothing after it (the "
                "backend comes from the settings); for a URL write 'sessionhub+' before it"
            )
        return None
    if scheme.startswith("sessionhub+"):
        return f"{scheme.removeprefix('sessionhub+')}://{rest}"
    return uri


def _seq(session: AdkSession) -> int | None:
    marker = session._storage_update_marker
    if marker is None or not marker.startswith(_MARKER_PREFIX):
        return None
    return int(marker.removeprefix(_MARKER_PREFIX))


def _adk_session(stored: Session, events: list[AdkEvent]) -> AdkSession:
    last_update = stored.state.get(LAST_UPDATE_KEY)
    fields = {
        "id": stored.id,
        "app_name": stored.app_name,
        "user_id": stored.user_id,
        "state": decode_state(stored.state),
        "events": events,
        "last_update_time": float(last_update)
        if isinstance(last_update, (int, float)) and not isinstance(last_update, bool)
        else stored.updated_at.timestamp(),
    }
    # ADK's own field for what storage last saw: the session's last_seq here.
    return construct(
        AdkSession, fields, _storage_update_marker=f"{_MARKER_PREFIX}{stored.last_seq}"
    )


def _drained(items: list[Read], convert: Callable[[Read], Made]) -> list[Made]:
    """``convert`` of each item read from storage, emptying ``items`` as it goes.

    Each item is released as soon as it is converted, so the objects freed
    balance the objects made: a long read does not set off the garbage
    collector's passes over the whole heap, which otherwise cost more than the
    conversion itself. What the service reads is the caller's own copy, so the
    list is the adapter's to empty.
    """
    items.reverse()
    converted: list[Made] = []
    while items:
        converted.append(convert(items.pop()))
    return converted


def _adk_events(stored: Session) -> list[AdkEvent]:
    """The ADK events of a session just read (its events list is left empty)."""
    return _drained(stored.events, to_adk_event)


def _adk_header(stored: Session) -> AdkSession:
    return _adk_session(stored, [])


def _session_id(session_id: str) -> str:
    return session_id.strip()  # ADK's own services strip session ids


class SessionHubSessionService(BaseSessionService):
    """An ADK ``BaseSessionService`` that stores sessions, events and state with sessionhub.

    Give it a ``SessionHistoryService`` (any backend, any settings), or a ``uri``
    (``"sessionhub+sqlite:///sessions.db"``, ``"sessionhub+redis://localhost:6379"``,
    ``"sessionhub://"`` for the configured backend), or sessionhub settings as
    keywords. ADK's CLI passes ``agents_dir``, which is ignored. Close it with
    ``await service.close()`` or ``async with``.

    :param service: The sessionhub service to store with; its app name is not used
        (each ADK call names its app).
    :param uri: An ADK session-service URI or a sessionhub storage URL.
    :param url: The same as ``uri``, named as the other adapters and sessionhub name it.
    :param settings: Other sessionhub settings (``event_limit=...``, ``session_ttl=...``).
    """

    def __init__(
        self,
        service: SessionHistoryService | None = None,
        *,
        uri: str | None = None,
        url: str | None = None,
        **settings: Any,
    ) -> None:
        settings.pop("agents_dir", None)  # what ADK's CLI hands every service factory
        if uri is not None and url is not None:
            raise ValueError("pass uri or url (the same thing), not both")
        uri = uri if uri is not None else url
        if service is not None and (uri is not None or settings):
            raise ValueError("pass either a SessionHistoryService or uri/settings, not both")
        if service is None:
            service = SessionHistoryService(
                url=sessionhub_url(uri) if uri is not None else None, **settings
            )
        self.service: SessionHistoryService = service
        """The sessionhub service every call goes through."""
        # Appends to one session from this service take turns, as in ADK's database
        # service: concurrent appends through one shared Session object then all land.
        self._locks: weakref.WeakValueDictionary[tuple[str, str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def _app(self, app_name: str) -> SessionHistoryService:
        return self.service.for_app(app_name)

    # --- lifecycle -------------------------------------------------------------

    async def close(self) -> None:
        """Close the backend connection (the service reopens it if used again)."""
        await self.service.stop()

    async def __aenter__(self) -> SessionHubSessionService:
        await self.service.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # --- sessions --------------------------------------------------------------

    async def create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        state: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> AdkSession:
        """Create a session; ``app:`` / ``user:`` keys of ``state`` go to those scopes.

        Raises ADK's ``AlreadyExistsError`` if ``session_id`` is taken.
        """
        session_id = _session_id(session_id) if session_id else None
        initial = encode_delta(json_safe(state or {}))
        initial[LAST_UPDATE_KEY] = time.time()
        try:
            created = await self._app(app_name).create_session(
                user_id, session_id or None, state=initial
            )
        except SessionExists as exc:
            raise AlreadyExistsError(f"Session with id {session_id} already exists.") from exc
        return _adk_session(created, [])

    async def get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None = None,
    ) -> AdkSession | None:
        """The session with its events (``config`` picks recent ones), or ``None``.

        ``after_timestamp`` is inclusive and exact on the events' float epochs.
        """
        view = self._app(app_name)
        session_id = _session_id(session_id)
        last_n = config.num_recent_events if config else None
        after = config.after_timestamp if config else None
        if not after:  # ADK's services ignore an after_timestamp of 0 too
            stored = await view.get_session(user_id, session_id, last_n=last_n)
            if stored is None:
                return None
            return _adk_session(stored, _adk_events(stored))
        # sessionhub times are microseconds: read from just below, then filter exactly.
        floor = epoch_to_datetime(after) - timedelta(microseconds=1)
        fetch = last_n
        while True:
            stored = await view.get_session(user_id, session_id, last_n=fetch, after_time=floor)
            if stored is None:
                return None
            read = len(stored.events)
            events = [e for e in _adk_events(stored) if e.timestamp >= after]
            if fetch is None or len(events) >= fetch or read < fetch:
                break
            fetch += fetch - len(events)  # some were just below the bound: read further back
        if last_n is not None:
            events = events[-last_n:] if last_n else []
        return _adk_session(stored, events)

    async def list_sessions(
        self, *, app_name: str, user_id: str | None = None
    ) -> ListSessionsResponse:
        """The app's sessions (one user's, or every user's), least recently updated first.

        Sessions come without events, with the merged state, as ADK's services list them.
        """
        view = self._app(app_name)
        sessions: list[AdkSession] = []
        cursor: str | None = None
        while True:
            page = await view.list_sessions(user_id, limit=_PAGE, cursor=cursor)
            sessions += _drained(page.items, _adk_header)
            cursor = page.next_cursor
            if cursor is None:
                break
        sessions.sort(key=lambda s: (s.last_update_time, s.user_id, s.id))
        return ListSessionsResponse(sessions=sessions)

    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        """Delete the session and its events (nothing happens if it does not exist)."""
        await self._app(app_name).delete_session(user_id, _session_id(session_id))

    async def get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        """The user's state in the app, keys without the ``user:`` prefix."""
        return decode_state(await self._app(app_name).get_user_state(user_id))

    # --- events ----------------------------------------------------------------

    async def append_event(self, session: AdkSession, event: AdkEvent) -> AdkEvent:
        """Store ``event`` with its state delta in one atomic append, then add it to ``session``.

        Partial events are not stored; ``temp:`` keys reach ``session.state`` only.
        Raises ADK's ``StaleSessionError`` if the session was appended to since
        ``session`` was read, and ``SessionNotFoundError`` if it is gone.
        """
        if event.partial:
            return event
        self._apply_temp_state(session, event)
        event = self._trim_temp_delta_state(event)
        delta = encode_delta(json_safe(event.actions.state_delta or {}))
        delta[LAST_UPDATE_KEY] = event.timestamp
        record = to_sessionhub_event(event, delta)
        lock_key = (session.app_name, session.user_id, _session_id(session.id))
        lock = self._locks.get(lock_key)
        if lock is None:
            lock = self._locks[lock_key] = asyncio.Lock()
        async with lock:
            return await self._append(session, event, record)

    async def _append(self, session: AdkSession, event: AdkEvent, record: Event) -> AdkEvent:
        view = self._app(session.app_name)
        expected = await self._expected_seq(view, session)
        key = (session.user_id, _session_id(session.id))
        try:
            stored = await view.append(key, record, expected_last_seq=expected)
        except SessionNotFound as exc:
            raise SessionNotFoundError(f"Session {session.id} not found.") from exc
        except ConflictError as exc:
            header = await view.get_session(*key, last_n=0)
            if expected is not None and header is not None and header.last_seq != expected:
                raise StaleSessionError(_STALE) from exc
            raise  # the event id is stored with other content: not a stale session
        seq = stored[0].seq
        known = expected if expected is not None else _seq(session)
        if known is not None and seq <= known:
            return event  # stored before this session was read: a retry, nothing changes
        session.last_update_time = event.timestamp
        session._storage_update_marker = f"{_MARKER_PREFIX}{seq}"
        return self._commit_event_to_session(session, event)

    async def _expected_seq(self, view: SessionHistoryService, session: AdkSession) -> int | None:
        """The ``last_seq`` storage must still have for this append, or ``None``: no check."""
        if not view.backend.capabilities.compare_and_set:
            return None  # documented: such a backend stores every append, stale or not
        seq = _seq(session)
        if seq is not None:
            return seq
        # A session this service did not read (built by hand or by another ADK
        # service): it is current if its newest event is storage's newest, as
        # ADK's database service decides for a session without a marker.
        stored = await view.get_session(session.user_id, _session_id(session.id), last_n=1)
        if stored is None:
            raise SessionNotFoundError(f"Session {session.id} not found.")
        newest = stored.events[-1].id if stored.events else None
        if newest != (session.events[-1].id if session.events else None):
            raise StaleSessionError(_STALE)
        return stored.last_seq
