"""``SessionHistoryService``: the one facade applications call.

It does everything once, for every backend: validates input, generates ids
and timestamps, normalises events, applies the state-scope rules, computes
TTL expiry from its clock, runs the plugin hooks, and calls the selected
backend's atomic primitives.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import time
import warnings
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from sessionhub import _validate
from sessionhub._append_steps import blank, merge_scopes
from sessionhub._conversation import Conversation, StateModule, restore_modules, snapshot_delta
from sessionhub._history import EventInput, HistoryOperations
from sessionhub._lifecycle import BackendRunner, build_backend, wrap_backend
from sessionhub._listing import MAX_PAGE_SIZE, ListingOperations
from sessionhub._operations import operation
from sessionhub.backend import (
    Backend,
    EventWindow,
    Expiry,
    SessionKey,
    StateDeltas,
    StateKey,
    StoredSession,
)
from sessionhub.errors import (
    BackendUnavailable,
    InvalidInput,
    SessionNotFound,
)
from sessionhub.models import (
    APP_PREFIX,
    USER_PREFIX,
    HealthStatus,
    Session,
)
from sessionhub.plugins import call_hook, get_plugin_manager
from sessionhub.settings import SessionHubSettings, load_settings

if TYPE_CHECKING:
    from types import TracebackType

    import pluggy
    from typing_extensions import Self

__all__ = ["SessionHistoryService", "Conversation", "StateModule", "Clock", "EventInput"]

logger = logging.getLogger("sessionhub")

Clock = Callable[[], datetime]
"""A function returning the current UTC-aware time."""


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _new_id() -> str:
    return os.urandom(16).hex()  # 128 random bits, as uuid4().hex but without the UUID object


class SessionHistoryService(HistoryOperations, ListingOperations):
    """Sessions, events and state for one app, on a backend chosen by configuration.

    ``SessionHistoryService()`` reads the settings (constructor arguments >
    environment > ``.env`` > ``sessionhub.toml`` > ``pyproject.toml`` >
    defaults) and builds the selected backend. Pass a ``Backend`` instance
    to use it directly. Use it as an async context manager, or call
    ``start`` / ``stop``; any operation starts it on demand.

    :param backend: A backend name, a ``Backend`` instance, or ``None``.
    :param url: A storage URL whose scheme selects the backend.
    :param settings: Resolved settings to use as they are (no sources are read).
    :param plugin_manager: The plugin manager; default: the installed plugins.
    :param clock: Returns the current time; inject one to test TTLs.
    :param overrides: Any other setting (``event_limit=100``, ``session_ttl=3600``...).
    """

    def __init__(
        self,
        backend: Backend | str | None = None,
        *,
        url: str | None = None,
        settings: SessionHubSettings | None = None,
        plugin_manager: pluggy.PluginManager | None = None,
        clock: Clock | None = None,
        **overrides: Any,
    ) -> None:
        if settings is None:
            if isinstance(backend, str):
                overrides["backend"] = backend
            if url is not None:
                overrides["url"] = url
            settings = load_settings(**overrides)
        elif overrides or url is not None or isinstance(backend, str):
            settings = settings.with_overrides(
                **overrides,
                **({"backend": backend} if isinstance(backend, str) else {}),
                **({"url": url} if url is not None else {}),
            )
        self.settings: SessionHubSettings = settings
        """The resolved settings."""
        self.plugin_manager: pluggy.PluginManager = plugin_manager or get_plugin_manager(
            load=settings.plugins, disable=settings.disable_plugins
        )
        """The pluggy plugin manager whose hooks this service runs."""
        self.app_name: str = _validate.check_identifier(settings.app_name, "app_name")
        self._clock: Clock = clock or _utc_now
        self._owns_backend = not isinstance(backend, Backend)
        built = (
            backend
            if isinstance(backend, Backend)
            else build_backend(settings, self.plugin_manager)
        )
        self.backend: Backend = wrap_backend(built, settings, self.plugin_manager)
        """The backend this service stores into (after any ``sessionhub_wrap_backend``)."""
        self._runner = BackendRunner(
            self.backend, repr(self), self._sweep_interval(), self.purge_expired
        )
        self._apps: dict[str, SessionHistoryService] = {self.app_name: self}
        self._operation_wrappers: tuple[object, Sequence[Callable[..., Any]], float] | None = None

    @classmethod
    def from_settings(
        cls, settings: SessionHubSettings | None = None, **overrides: Any
    ) -> SessionHistoryService:
        """Build a service from resolved ``settings``, or from every source plus ``overrides``."""
        if settings is None:
            return cls(**overrides)
        return cls(settings=settings, **overrides)

    def for_app(self, app_name: str) -> SessionHistoryService:
        """The same service for another app, sharing its backend connection, hooks and clock.

        For callers that pass an app per call (agent frameworks do): the view costs
        no connection and no settings lookup, and the same name returns the same
        view. Sessions, app state and listings are the named app's. Views share one
        lifecycle: starting or stopping any of them opens or closes the one backend.
        """
        app_name = _validate.check_identifier(app_name, "app_name")
        view = self._apps.get(app_name)
        if view is None:
            view = copy.copy(self)  # shares the backend, its runner, hooks, clock, views
            view.app_name = app_name
            view.settings = self.settings.model_copy(update={"app_name": app_name})
            view._owns_backend = False  # the service it came from owns the connections
            view._operation_wrappers = None  # the hook is asked again, for the view
            self._apps[app_name] = view
        return view

    def __repr__(self) -> str:
        return f"<{type(self).__name__} app={self.app_name!r} backend={self.backend.name!r}>"

    def __del__(self) -> None:
        # A backend the caller passed in is the caller's to close; one built here is ours.
        runner = getattr(self, "_runner", None)
        if (
            runner is not None
            and runner.loop is not None
            and (self._owns_backend or runner.purge_task is not None)
        ):
            warnings.warn(
                f"{self!r} was started and never stopped: its connections were not closed. "
                "Use 'async with service:' or call 'await service.stop()' when done.",
                ResourceWarning,
                stacklevel=2,
                source=self,
            )

    # --- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Open the backend (and start the expiry sweep when one is needed). Idempotent.

        A service belongs to the event loop that started it. Used again after that
        loop has ended (a second ``asyncio.run()``), it reopens the backend on the
        new loop; used from two running loops at once, it raises ``ConfigError``.
        """
        await self._runner.start()

    async def stop(self) -> None:
        """Stop the sweep and close the backend. Idempotent."""
        await self._runner.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    @operation
    async def health(self) -> HealthStatus:
        """Ping the backend and report whether it answered and how fast."""
        began = time.perf_counter()
        try:
            await self._ready()
            await self.backend.ping()
        except BackendUnavailable as exc:
            return HealthStatus(ok=False, backend=self.backend.name, detail=str(exc))
        return HealthStatus(
            ok=True, backend=self.backend.name, latency_ms=(time.perf_counter() - began) * 1000
        )

    def _sweep_interval(self) -> float | None:
        s = self.settings
        has_ttl = any((s.session_ttl, s.app_state_ttl, s.user_state_ttl))
        if has_ttl and s.purge_interval and not self.backend.capabilities.native_ttl:
            return s.purge_interval.total_seconds()
        return None

    async def _ready(self) -> None:
        await self._runner.ready()

    def _open_here(self) -> bool:
        """Whether the backend is open on the running loop: ``_ready`` would do nothing."""
        return self._runner.open_here()

    # --- sessions --------------------------------------------------------------

    @operation
    async def create_session(
        self,
        user_id: str,
        session_id: str | None = None,
        *,
        state: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        parent: Session | str | None = None,
    ) -> Session:
        """Create a session and return it.

        ``state`` keys prefixed ``app:`` / ``user:`` update those scopes; ``temp:``
        keys are dropped. A blank ``session_id`` gets a generated one. With
        ``parent`` (a session or its id, same user), the new session is its child.
        Raises ``SessionExists`` if the id is taken.
        """
        user_id = self._user(user_id)
        session_id = self._session_id_or_new(session_id)
        deltas = self._state_deltas(state, "state")
        meta = dict(_validate.check_mapping(metadata or {}, "metadata"))
        parent_session = await self._parent(user_id, parent) if parent is not None else None
        now = self._clock()
        expiry = self._expiry(now)
        session = Session(
            id=session_id,
            app_name=self.app_name,
            user_id=user_id,
            parent_id=parent_session.id if parent_session else None,
            root_id=parent_session.root_id if parent_session else session_id,
            depth=parent_session.depth + 1 if parent_session else 0,
            created_at=now,
            updated_at=now,
            expires_at=expiry.session,
            state={k: v for k, v in deltas.session.items() if v is not None},
            metadata={k: v for k, v in meta.items() if v is not None},
        )
        await self._ready()
        created = self._merged(await self.backend.create_session(session, deltas, expiry))
        await call_hook(self.plugin_manager, "sessionhub_session_created", session=created)
        return created

    @operation
    async def spawn_child(
        self,
        parent: Session,
        session_id: str | None = None,
        *,
        state: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Session:
        """Create a child of ``parent`` (same user; ``parent_id``, ``root_id``, ``depth`` set)."""
        return await self.create_session(
            parent.user_id, session_id, state=state, metadata=metadata, parent=parent
        )

    @operation
    async def get_session(
        self,
        user_id: str,
        session_id: str,
        *,
        last_n: int | None = None,
        after_seq: int | None = None,
        after_time: datetime | None = None,
    ) -> Session | None:
        """Return the session with its events, or ``None`` if absent, expired or another user's.

        Events with ``seq > after_seq`` and ``timestamp > after_time`` are
        selected, then the newest ``last_n`` of them are returned, oldest first.
        ``last_n=0`` loads no events. Reading extends a sliding TTL.
        """
        key = self._key(user_id, session_id)
        window = EventWindow(
            last_n=None if last_n is None else _validate.check_count(last_n, "last_n", minimum=0),
            after_seq=None
            if after_seq is None
            else _validate.check_count(after_seq, "after_seq", minimum=0),
            after_time=None
            if after_time is None
            else _validate.check_time(after_time, "after_time"),
        )
        await self._ready()
        stored = await self.backend.get_session(
            key, window, self._expiry(self._clock()), refresh=self._sliding
        )
        return None if stored is None else self._merged(stored)

    @operation
    async def update_session(
        self,
        user_id: str,
        session_id: str,
        *,
        state: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Session:
        """Apply a state delta and a metadata delta directly, without an event.

        ``None`` values delete keys; ``app:`` / ``user:`` state keys update those
        scopes. Returns the session without events. Raises
        ``SessionNotFound`` if it is absent or expired.
        """
        key = self._key(user_id, session_id)
        deltas = self._state_deltas(state, "state")
        meta = _validate.check_mapping(metadata or {}, "metadata")
        await self._ready()
        stored = await self.backend.update_session(key, deltas, meta, self._expiry(self._clock()))
        return self._merged(stored)

    @operation
    async def delete_session(self, user_id: str, session_id: str, *, cascade: bool = True) -> bool:
        """Delete a session and its events; with ``cascade``, its descendants too.

        Idempotent: returns whether the session existed (an expired one does not).
        """
        key = self._key(user_id, session_id)
        await self._ready()
        doomed = [key.session_id]
        if cascade:
            doomed.extend(await self._descendants(key.user_id, key.session_id))
        gone = False
        now = self._clock()
        for doomed_id in reversed(doomed):  # children first: a re-run finishes the job
            gone = await self.backend.delete_session(
                SessionKey(self.app_name, key.user_id, doomed_id), now
            )
            if gone:
                await call_hook(
                    self.plugin_manager,
                    "sessionhub_session_deleted",
                    app_name=self.app_name,
                    user_id=key.user_id,
                    session_id=doomed_id,
                )
        return gone  # the last one deleted is the session itself

    async def _descendants(self, user_id: str, session_id: str) -> list[str]:
        found: list[str] = []
        frontier = [session_id]
        while frontier:
            parent = frontier.pop()
            cursor: str | None = None
            while True:
                page = await self.list_sessions(
                    user_id, limit=MAX_PAGE_SIZE, cursor=cursor, parent_id=parent
                )
                for child in page.items:
                    found.append(child.id)
                    frontier.append(child.id)
                cursor = page.next_cursor
                if cursor is None:
                    break
        return found

    # --- state -----------------------------------------------------------------

    @operation
    async def get_app_state(self) -> dict[str, Any]:
        """Return the app state (keys without the ``app:`` prefix)."""
        await self._ready()
        return await self.backend.read_state(
            StateKey.app(self.app_name), self._expiry(self._clock()), refresh=self._sliding
        )

    @operation
    async def get_user_state(self, user_id: str) -> dict[str, Any]:
        """Return a user's state (keys without the ``user:`` prefix)."""
        user_id = self._user(user_id)
        await self._ready()
        return await self.backend.read_state(
            StateKey.user(self.app_name, user_id),
            self._expiry(self._clock()),
            refresh=self._sliding,
        )

    @operation
    async def update_app_state(self, delta: Mapping[str, Any]) -> dict[str, Any]:
        """Apply a delta to the app state atomically (``None`` deletes); return the new state."""
        clean = _validate.scope_delta(delta, APP_PREFIX)
        await self._ready()
        return await self.backend.write_state(
            StateKey.app(self.app_name), clean, self._expiry(self._clock())
        )

    @operation
    async def update_user_state(self, user_id: str, delta: Mapping[str, Any]) -> dict[str, Any]:
        """Apply a delta to a user's state atomically (``None`` deletes); return the new state."""
        user_id = self._user(user_id)
        clean = _validate.scope_delta(delta, USER_PREFIX)
        await self._ready()
        return await self.backend.write_state(
            StateKey.user(self.app_name, user_id), clean, self._expiry(self._clock())
        )

    # --- agent snapshots (AgentScope's StateModule protocol) ---------------------

    @operation
    async def save_state(self, /, user_id: str, session_id: str, **modules: StateModule) -> None:
        """Store each module's ``state_dict()`` in the session (created if missing).

        Each module is kept under the session state key ``snapshot:<name>``;
        nested modules travel inside their parent's ``state_dict``.
        """
        delta = snapshot_delta(modules)
        try:
            await self.update_session(user_id, session_id, state=delta)
        except SessionNotFound:
            await self.create_session(user_id, session_id, state=delta)

    @operation
    async def load_state(
        self,
        /,
        user_id: str,
        session_id: str,
        *,
        allow_not_exist: bool = True,
        **modules: StateModule,
    ) -> None:
        """Restore modules saved by ``save_state`` with ``load_state_dict``.

        A missing session is ignored when ``allow_not_exist`` (the default),
        else ``SessionNotFound``. A module with no saved state
        is left as it is.
        """
        session = await self.get_session(user_id, session_id, last_n=0)
        if session is None:
            if allow_not_exist:
                return
            raise SessionNotFound(self.app_name, user_id, session_id)
        restore_modules(session.state, modules)

    # --- conversation helper -----------------------------------------------------

    @contextlib.asynccontextmanager
    async def conversation(
        self, user_id: str, session_id: str | None = None, *, last_n: int | None = None
    ) -> AsyncIterator[Conversation]:
        """Load the session (or create it) and expose ``history`` and ``append``.

        ``async with svc.conversation("alice", "chat-1") as chat: await chat.append("hi")``
        """
        session = None
        if session_id is not None and session_id.strip():
            session = await self.get_session(user_id, session_id, last_n=last_n)
        if session is None:
            session = await self.create_session(user_id, session_id)
        yield Conversation(self, session)

    # --- maintenance -------------------------------------------------------------

    @operation
    async def purge_expired(self) -> int:
        """Reclaim the storage of expired sessions and states now; return how many went."""
        await self._ready()
        return await self.backend.purge_expired(self._clock())

    # --- helpers -----------------------------------------------------------------

    @property
    def _sliding(self) -> bool:
        s = self.settings
        return bool(s.session_ttl or s.app_state_ttl or s.user_state_ttl)

    def _expiry(self, now: datetime) -> Expiry:
        s = self.settings
        if not self._sliding:
            return Expiry(now=now)

        def at(ttl: timedelta | None) -> datetime | None:
            return None if ttl is None else now + ttl

        return Expiry(
            now=now, session=at(s.session_ttl), user=at(s.user_state_ttl), app=at(s.app_state_ttl)
        )

    def _user(self, user_id: str) -> str:
        return _validate.check_identifier(user_id, "user_id")

    def _key(self, user_id: str, session_id: str) -> SessionKey:
        return SessionKey(
            self.app_name,
            self._user(user_id),
            _validate.check_identifier(session_id, "session_id"),
        )

    def _session_id_or_new(self, session_id: str | None) -> str:
        if blank(session_id):
            return _new_id()
        return _validate.check_identifier(session_id, "session_id")

    def _state_deltas(self, state: Mapping[str, Any] | None, field: str) -> StateDeltas:
        if not state:
            return StateDeltas()
        return _validate.split_delta(_validate.check_mapping(state, field), field)

    async def _parent(self, user_id: str, parent: Session | str) -> Session:
        parent_id = parent.id if isinstance(parent, Session) else parent
        if isinstance(parent, Session) and parent.user_id != user_id:
            raise InvalidInput("parent", "a child session must belong to its parent's user")
        found = await self.get_session(user_id, parent_id, last_n=0)
        if found is None:
            raise SessionNotFound(self.app_name, user_id, parent_id)
        return found

    def _merged(self, stored: StoredSession) -> Session:
        session = stored.session
        session.state = merge_scopes(stored.app_state, stored.user_state, session.state)
        return session
