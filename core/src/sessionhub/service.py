"""``SessionHistoryService``: the one facade applications call.

It does everything once, for every backend: validates input, generates ids
and timestamps, normalises events, applies the state-scope rules, computes
TTL expiry from its clock, runs the plugin hooks, and calls the selected
backend's atomic primitives.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import time
import warnings
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Protocol, Union

from sessionhub import _validate
from sessionhub._cursor import decode_cursor, encode_cursor
from sessionhub._normalize import to_events
from sessionhub._retries import check_retries
from sessionhub.backend import (
    AppendRequest,
    AppendResult,
    Backend,
    EventWindow,
    Expiry,
    Scope,
    SessionKey,
    StateDeltas,
    StoredSession,
)
from sessionhub.backend_tools import apply_delta
from sessionhub.errors import (
    BackendUnavailable,
    ConfigError,
    InvalidInput,
    SessionNotFound,
)
from sessionhub.hookspecs import AppendContext
from sessionhub.models import (
    APP_PREFIX,
    USER_PREFIX,
    Event,
    HealthStatus,
    Page,
    Session,
    new_event_id,
)
from sessionhub.plugins import call_hook, each_implementation, get_plugin_manager
from sessionhub.registry import BackendRegistry
from sessionhub.settings import SessionHubSettings, load_settings

if TYPE_CHECKING:
    from types import TracebackType

    import pluggy
    from typing_extensions import Self

__all__ = ["SessionHistoryService", "Conversation", "StateModule", "Clock", "EventInput"]

logger = logging.getLogger("sessionhub")

Clock = Callable[[], datetime]
"""A function returning the current UTC-aware time."""

EventInput = Union[Event, str, Mapping[str, Any], Any]  # noqa: UP007 -- a runtime alias on 3.10
"""What ``append`` accepts for one event (see ``SessionHistoryService.append``)."""

MAX_PAGE_SIZE = 1000
SNAPSHOT_PREFIX = "snapshot:"


class StateModule(Protocol):
    """AgentScope's state-module protocol, as used by ``save_state`` / ``load_state``."""

    def state_dict(self) -> dict[str, Any]:
        """Return the module's state (nested modules included) as JSON values."""
        ...

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True) -> None:
        """Restore the module from what ``state_dict`` returned."""
        ...


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _new_id() -> str:
    return os.urandom(16).hex()  # 128 random bits, as uuid4().hex but without the UUID object


class SessionHistoryService:
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
        built = backend if isinstance(backend, Backend) else self._build_backend()
        self.backend: Backend = self._wrap(built)
        """The backend this service stores into (after any ``sessionhub_wrap_backend``)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        """The event loop the backend was opened on; None while stopped."""
        self._start_lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self._purge_task: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(
        cls, settings: SessionHubSettings | None = None, **overrides: Any
    ) -> SessionHistoryService:
        """Build a service from resolved ``settings``, or from every source plus ``overrides``."""
        if settings is None:
            return cls(**overrides)
        return cls(settings=settings, **overrides)

    def _build_backend(self) -> Backend:
        registry = BackendRegistry.from_plugin_manager(self.plugin_manager)
        info, config = registry.configure(self.settings)
        backend = registry.factory(info)(config)
        if not isinstance(backend, Backend):
            raise ConfigError(
                f"The factory of backend {info.name!r} returned a {type(backend).__name__}, "
                "not a sessionhub Backend. Fix the plugin's BackendInfo.factory."
            )
        return backend

    def _wrap(self, backend: Backend) -> Backend:
        calls = each_implementation(self.plugin_manager, "sessionhub_wrap_backend")
        for plugin_name, call in calls:
            for wrapped in call(backend=backend, settings=self.settings):
                if not isinstance(wrapped, Backend):
                    if inspect.iscoroutine(wrapped):
                        wrapped.close()
                    raise ConfigError(
                        f"Plugin {plugin_name!r}: sessionhub_wrap_backend must return a Backend "
                        f"or None (synchronously), got {type(wrapped).__name__}."
                    )
                backend = wrapped
        return backend

    def __repr__(self) -> str:
        return f"<{type(self).__name__} app={self.app_name!r} backend={self.backend.name!r}>"

    def __del__(self) -> None:
        # A backend the caller passed in is the caller's to close; one built here is ours.
        if getattr(self, "_loop", None) is not None and (
            self._owns_backend or self._purge_task is not None
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
        loop = asyncio.get_running_loop()
        if self._start_lock is None or self._start_lock[0] is not loop:
            self._start_lock = (loop, asyncio.Lock())
        async with self._start_lock[1]:
            if self._loop is loop:
                return
            if self._loop is not None:
                await self._leave(self._loop)
            await self.backend.open()
            self._loop = loop
            if self._needs_sweep():
                self._purge_task = asyncio.create_task(self._sweep_forever())

    async def stop(self) -> None:
        """Stop the sweep and close the backend. Idempotent."""
        loop = self._loop
        if loop is not None and loop is not asyncio.get_running_loop():
            await self._leave(loop)
            return
        if self._purge_task is not None:
            self._purge_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._purge_task
            self._purge_task = None
        self._loop = None
        await self.backend.close()

    async def _leave(self, old: asyncio.AbstractEventLoop) -> None:
        """Close what was opened on another loop, from this one, as far as that is possible."""
        if old.is_running():
            raise ConfigError(
                f"{self!r} is in use on another running event loop (another thread). A service "
                "and its connections belong to one event loop: create one service per loop."
            )
        task, self._purge_task = self._purge_task, None
        if task is not None and not old.is_closed():
            task.cancel()
        self._loop = None
        try:
            await self.backend.close()
        except Exception:  # connections of an ended loop often cannot be closed from another
            logger.debug("Closing connections opened on an ended event loop failed", exc_info=True)

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

    def _needs_sweep(self) -> bool:
        s = self.settings
        has_ttl = any((s.session_ttl, s.app_state_ttl, s.user_state_ttl))
        return bool(has_ttl and s.purge_interval and not self.backend.capabilities.native_ttl)

    async def _sweep_forever(self) -> None:
        assert self.settings.purge_interval is not None
        interval = self.settings.purge_interval.total_seconds()
        while True:
            await asyncio.sleep(interval)
            try:
                removed = await self.purge_expired()
            except Exception:  # the sweep must outlive a failed round
                logger.exception("Reclaiming expired sessions failed; retrying in %ss", interval)
            else:
                logger.debug("Reclaimed %d expired records", removed)

    async def _ready(self) -> None:
        if self._loop is not asyncio.get_running_loop():
            await self.start()

    # --- sessions --------------------------------------------------------------

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

    async def list_sessions(
        self,
        user_id: str,
        *,
        limit: int = 50,
        cursor: str | None = None,
        parent_id: str | None = None,
    ) -> Page[Session]:
        """List a user's live sessions, newest ``updated_at`` first, without events.

        Pass ``page.next_cursor`` back as ``cursor`` for the next page; it is
        ``None`` on the last page. With ``parent_id``, only that session's
        direct children are listed.
        """
        user_id = self._user(user_id)
        limit = _validate.check_count(limit, "limit", minimum=1, maximum=MAX_PAGE_SIZE)
        after = decode_cursor(cursor) if cursor else None
        if parent_id is not None:
            parent_id = _validate.check_identifier(parent_id, "parent_id")
        await self._ready()
        expiry = self._expiry(self._clock())
        rows = await self.backend.list_sessions(
            self.app_name,
            user_id,
            limit=limit + 1,
            after=after,
            parent_id=parent_id,
            now=expiry.now,
        )
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = encode_cursor(rows[-1])
        if rows:
            app_state, user_state = await asyncio.gather(
                self.backend.get_state(Scope.APP, self.app_name, None, expiry, refresh=False),
                self.backend.get_state(Scope.USER, self.app_name, user_id, expiry, refresh=False),
            )
            for row in rows:
                row.state = _merge_scopes(app_state, user_state, row.state)
        return Page[Session](items=rows, next_cursor=next_cursor)

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

    # --- events ----------------------------------------------------------------

    async def append(
        self,
        session: Session | tuple[str, str],
        events: EventInput | Sequence[EventInput],
    ) -> list[Event]:
        """Append one event or a list of events atomically; return them as stored, with ``seq``.

        An event may be an ``Event``, a string (a user message), a dict in
        this library's, OpenAI's or AgentScope's shape, or an object with
        ``to_dict()`` / ``model_dump()``. An ``Event`` carries the id it got when
        built; a string or a dict without an ``id`` gets a new one, so the same
        dict appended twice is two events. Missing timestamps are filled in.
        Each event's ``state_delta`` is applied with it. Re-appending an id
        already stored returns the stored event and changes nothing; if the
        stored event's role, content, state delta or metadata differ, it raises
        ``ConflictError`` naming the id (after storing the call's new events).
        The caller's objects are never changed, whatever a hook does. When
        ``session`` is a ``Session``, it is updated in place.
        Raises ``SessionNotFound`` if the session is absent or expired.
        """
        if isinstance(session, Session):
            key = self._key(session.user_id, session.id)
            if session.app_name != self.app_name:
                raise InvalidInput(
                    "session.app_name",
                    f"belongs to app {session.app_name!r}, but this service is for app "
                    f"{self.app_name!r}",
                )
        else:
            if not isinstance(session, tuple) or len(session) != 2:
                raise InvalidInput("session", "must be a Session or a (user_id, session_id) tuple")
            key = self._key(*session)
        batch = to_events(events)
        if not batch:
            return []
        now = self._clock()
        _stamp(batch, now)
        if self.plugin_manager.hook.sessionhub_before_append.get_hookimpls():
            # A hook may edit events in place: it gets copies of the caller's parts and dicts.
            ctx = AppendContext(
                self.app_name,
                key.user_id,
                key.session_id,
                [event.model_copy(deep=True) for event in batch],
            )
            await call_hook(self.plugin_manager, "sessionhub_before_append", ctx=ctx)
            batch = to_events(ctx.events)  # a hook may have added dicts or strings
            _stamp(batch, now)
        deltas = self._check_events(batch)
        if not batch:
            return []
        await self._ready()
        expiry = self._expiry(now)
        result = await self.backend.append(
            AppendRequest(key, batch, deltas, expiry, self.settings.event_limit)
        )
        check_retries(batch, result.events)
        if isinstance(session, Session):
            self._update_in_place(session, result.events, deltas, result)
        if self.plugin_manager.hook.sessionhub_after_append.get_hookimpls():
            observed = session if isinstance(session, Session) else await self._header(key)
            if observed is not None:
                await call_hook(
                    self.plugin_manager,
                    "sessionhub_after_append",
                    session=observed,
                    events=result.events,
                )
        return result.events

    def _check_events(self, batch: list[Event]) -> list[StateDeltas]:
        seen: set[str] = set()
        deltas: list[StateDeltas] = []
        for index, event in enumerate(batch):
            field = f"events[{index}]"
            deltas.append(_validate.check_event(event, field))
            if event.id in seen:
                raise InvalidInput(f"{field}.id", f"{event.id!r} appears twice in one append")
            seen.add(event.id)
            if event.state_delta:
                event.state_delta = _validate.without_temp(event.state_delta)
            event.seq = 0
        return deltas

    def _update_in_place(
        self,
        session: Session,
        stored: list[Event],
        deltas: list[StateDeltas],
        result: AppendResult,
    ) -> None:
        # Events stored by this call are numbered after the last seq the object knew.
        fresh = [event for event in stored if event.seq > session.last_seq]
        session.events.extend(fresh)
        for event, delta in zip(stored, deltas, strict=True):
            if event.seq > session.last_seq:
                apply_delta(session.state, {APP_PREFIX + k: v for k, v in delta.app.items()})
                apply_delta(session.state, {USER_PREFIX + k: v for k, v in delta.user.items()})
                apply_delta(session.state, delta.session)
        session.last_seq = result.last_seq
        session.event_count = result.event_count
        if fresh:  # an append of stored events only is a no-op: no times move
            session.updated_at = result.updated_at
            session.expires_at = result.expires_at

    async def _header(self, key: SessionKey) -> Session | None:
        stored = await self.backend.get_session(
            key, EventWindow(last_n=0), self._expiry(self._clock()), refresh=False
        )
        return None if stored is None else self._merged(stored)

    # --- state -----------------------------------------------------------------

    async def get_app_state(self) -> dict[str, Any]:
        """Return the app state (keys without the ``app:`` prefix)."""
        await self._ready()
        return await self.backend.get_state(
            Scope.APP, self.app_name, None, self._expiry(self._clock()), refresh=self._sliding
        )

    async def get_user_state(self, user_id: str) -> dict[str, Any]:
        """Return a user's state (keys without the ``user:`` prefix)."""
        user_id = self._user(user_id)
        await self._ready()
        return await self.backend.get_state(
            Scope.USER, self.app_name, user_id, self._expiry(self._clock()), refresh=self._sliding
        )

    async def update_app_state(self, delta: Mapping[str, Any]) -> dict[str, Any]:
        """Apply a delta to the app state atomically (``None`` deletes); return the new state."""
        clean = self._scope_delta(delta, APP_PREFIX)
        await self._ready()
        return await self.backend.update_state(
            Scope.APP, self.app_name, None, clean, self._expiry(self._clock())
        )

    async def update_user_state(self, user_id: str, delta: Mapping[str, Any]) -> dict[str, Any]:
        """Apply a delta to a user's state atomically (``None`` deletes); return the new state."""
        user_id = self._user(user_id)
        clean = self._scope_delta(delta, USER_PREFIX)
        await self._ready()
        return await self.backend.update_state(
            Scope.USER, self.app_name, user_id, clean, self._expiry(self._clock())
        )

    def _scope_delta(self, delta: Mapping[str, Any], prefix: str) -> dict[str, Any]:
        _validate.check_mapping(delta, "delta")
        clean: dict[str, Any] = {}
        for key, value in delta.items():
            bare = key[len(prefix) :] if key.startswith(prefix) else key
            if not bare:
                raise InvalidInput(f"delta.{key}", "state keys must not be empty")
            if not key.startswith("temp:"):
                clean[bare] = value
        return clean

    # --- agent snapshots (AgentScope's StateModule protocol) ---------------------

    async def save_state(self, user_id: str, session_id: str, **modules: StateModule) -> None:
        """Store each module's ``state_dict()`` in the session (created if missing).

        Each module is kept under the session state key ``snapshot:<name>``;
        nested modules travel inside their parent's ``state_dict``.
        """
        if not modules:
            raise InvalidInput(
                "modules", "pass at least one module, e.g. save_state(u, s, agent=agent)"
            )
        delta = {}
        for name, module in modules.items():
            snapshot = module.state_dict()
            _validate.check_mapping(snapshot, f"{name}.state_dict()")
            delta[SNAPSHOT_PREFIX + name] = snapshot
        try:
            await self.update_session(user_id, session_id, state=delta)
        except SessionNotFound:
            await self.create_session(user_id, session_id, state=delta)

    async def load_state(
        self, user_id: str, session_id: str, *, allow_not_exist: bool = True, **modules: StateModule
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
        for name, module in modules.items():
            snapshot = session.state.get(SNAPSHOT_PREFIX + name)
            if snapshot is not None:
                module.load_state_dict(snapshot)

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
        if _blank(session_id):
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
        session.state = _merge_scopes(stored.app_state, stored.user_state, session.state)
        return session


class Conversation:
    """A session being worked on: its ``history`` and an ``append`` that keeps it current."""

    def __init__(self, service: SessionHistoryService, session: Session) -> None:
        self.service = service
        """The service the conversation stores into."""
        self.session = session
        """The session, updated in place by ``append``."""

    @property
    def history(self) -> list[Event]:
        """The events loaded or appended so far, oldest first."""
        return self.session.events

    @property
    def state(self) -> dict[str, Any]:
        """The merged state view of the session."""
        return self.session.state

    async def append(self, *events: EventInput) -> list[Event]:
        """Append events (see ``SessionHistoryService.append``) and add them to ``history``."""
        return await self.service.append(self.session, list(events))


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _stamp(batch: list[Event], now: datetime) -> None:
    """Give events without an id a generated one, and without a timestamp ``now``."""
    for event in batch:
        if _blank(event.id):
            event.id = new_event_id()
        if event.timestamp is None:
            event.timestamp = now


def _merge_scopes(
    app_state: Mapping[str, Any], user_state: Mapping[str, Any], session_state: dict[str, Any]
) -> dict[str, Any]:
    merged = {APP_PREFIX + key: value for key, value in app_state.items()}
    merged.update((USER_PREFIX + key, value) for key, value in user_state.items())
    merged.update(session_state)
    return merged
