"""The storage contract: the ``Backend`` abstract class and what travels across it.

A backend implements a small set of atomic primitives; the service does
everything else once (validation, ids, clocks, hooks, TTL arithmetic, the
state-prefix rules, input normalisation). Values arriving here are already
validated: identifiers are well formed, events carry ids, timestamps and no
``temp:`` keys, state deltas are split by scope, expiry times are computed.
"""

from __future__ import annotations

import abc
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from sessionhub._records import (
    AppendRequest,
    AppendResult,
    EventWindow,
    Expiry,
    ListCursor,
    ListedPage,
    ListRequest,
    ReplaceRequest,
    Scope,
    SessionKey,
    StateDeltas,
    StateKey,
    StoredSession,
)
from sessionhub.models import Event, Session

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import Self

    from sessionhub.backend_tools import apply_delta as apply_delta
    from sessionhub.backend_tools import check_restorable as check_restorable
    from sessionhub.backend_tools import dump_json as dump_json
    from sessionhub.backend_tools import event_from_json as event_from_json
    from sessionhub.backend_tools import event_to_json as event_to_json
    from sessionhub.backend_tools import from_micros as from_micros
    from sessionhub.backend_tools import to_micros as to_micros

__all__ = [
    "Backend",
    "BackendInfo",
    "BackendSettings",
    "Capabilities",
    "SessionKey",
    "Scope",
    "StateKey",
    "StateDeltas",
    "Expiry",
    "EventWindow",
    "StoredSession",
    "AppendRequest",
    "AppendResult",
    "ReplaceRequest",
    "ListCursor",
    "ListRequest",
    "ListedPage",
]

_OPTIONAL_METHODS = {
    "list_users": "list_users",
    "list_all_sessions": "list_app_sessions",
    "list_apps": "list_apps",
    "restore_session": "restore_session",
    "pop_event": "pop_event",
    "replace_events": "replace_events",
    "list_page": "list_page",
}
"""Methods of ``Backend`` a backend may leave out, by the capability each one declares."""


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do beyond the contract every backend meets.

    The conformance suite skips the tests of a capability a backend does not declare.
    ``list_users``, ``list_all_sessions`` (the method ``list_app_sessions``),
    ``list_apps``, ``restore_session``, ``pop_event``, ``replace_events`` and
    ``list_page`` name optional methods of ``Backend``:
    left at ``None``, each is declared by implementing the method, and the
    ``Backend`` subclass gets a ``capabilities`` with ``True`` or ``False`` in
    its place when the class is defined.
    """

    persistent: bool = False
    """Data survives closing the backend and opening a new instance on the same store."""
    shared_store: bool = False
    """Two backend instances on the same store (two connections) see each other's writes."""
    multi_process: bool = False
    """Several processes (or hosts) may write to the same store at once."""
    native_ttl: bool = False
    """The storage reclaims expired data by itself; ``purge_expired`` is optional work."""
    cluster: bool = False
    """The layout works on a clustered/sharded deployment of the store."""
    list_users: bool | None = None
    """``Backend.list_users`` works: export and migrate can walk every user of an app.
    ``None``: true if the backend class overrides the method."""
    list_all_sessions: bool | None = None
    """``Backend.list_app_sessions`` works: ``svc.list_sessions(None)`` pages every user's
    sessions of an app. ``None``: true if the backend class overrides the method."""
    list_apps: bool | None = None
    """``Backend.list_apps`` works: export and migrate copy every app of a store.
    ``None``: true if the backend class overrides the method."""
    restore_session: bool | None = None
    """``Backend.restore_session`` works: import and migrate can write sessions.
    ``None``: true if the backend class overrides the method."""
    pop_event: bool | None = None
    """``Backend.pop_event`` works: ``svc.pop_event`` removes the newest event.
    ``None``: true if the backend class overrides the method."""
    replace_events: bool | None = None
    """``Backend.replace_events`` works: ``svc.replace_events`` / ``clear_events``.
    ``None``: true if the backend class overrides the method."""
    list_page: bool | None = None
    """``Backend.list_page`` works: a listing page and the state scopes it needs are read
    together (one transaction or round trip where the store allows), instead of the page
    then one ``read_state`` per scope. ``None``: true if the backend class overrides it."""
    compare_and_set: bool = False
    """``append`` honours ``AppendRequest.expected_last_seq``. Declare it explicitly:
    a backend written before the field existed would ignore it."""
    atomic_conflicts: bool = False
    """``append`` refuses a batch holding an id stored with other content: it raises
    ``ConflictError`` and writes nothing of the batch (see ``AppendRequest``; compare with
    ``check_retry``). Without it the service raises the conflict after the backend stored
    the batch's new events. Declare it explicitly."""


class BackendSettings(BaseModel):
    """Base for a backend's own settings table (``[name]`` in the config file).

    Subclass it to add options; the top-level ``url`` setting is copied into ``url``.
    """

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
    url: SecretStr | None = Field(
        default=None, description="The backend's storage URL (the top-level url setting fills it)."
    )
    """The backend's storage URL, a secret; the top-level ``url`` setting fills it."""

    def effective_url(self) -> str | None:
        """The URL the backend will open, defaults included (``None``: the backend has none).

        Override it when the store can be named otherwise (a path) or has a default.
        """
        return self.url.get_secret_value() if self.url is not None else None


@dataclass
class BackendInfo:
    """A storage backend, as a plugin registers it with ``sessionhub_register_backends``.

    ``factory`` and ``settings_model`` may be ``"package.module:Name"`` strings so
    the driver is imported only when the backend is chosen. ``factory`` is called
    with one argument, the validated settings model instance.
    """

    name: str
    """The backend's public name, as in ``backend = "name"``; by convention the entry point's."""
    factory: Callable[[Any], Backend] | str
    """Builds the backend from its validated settings: a callable or ``"module:Name"``."""
    settings_model: type[BackendSettings] | str = BackendSettings
    """The model of the backend's settings table: a class or ``"module:Name"``."""
    url_schemes: tuple[str, ...] = ()
    """URL schemes that select this backend (``("redis", "rediss")``), without ``://``."""
    description: str = ""
    """One line for ``sessionhub backends``."""
    distribution: str | None = None
    """Filled in by the registry from the plugin's distribution."""
    version: str | None = None
    """Filled in by the registry from the plugin's distribution."""


class Backend(abc.ABC):
    """A storage backend: the atomic primitives the service is built on.

    Subclass it, declare ``capabilities``, implement the abstract methods (and
    ``list_users`` / ``restore_session`` if the store can; ``purge_expired``
    unless it expires data by itself) and run the conformance suite
    (``sessionhub.testing``). ``open`` and ``close`` must be idempotent; a
    backend is an async context manager. The helpers the first-party backends
    share are in ``sessionhub.backend_tools``.

    Rules every primitive keeps:

    - Time is the service's, one clock for every primitive: a primitive that
      sets expiries gets an ``Expiry`` (its ``now`` is the clock), one that only
      judges them gets ``now``. A record whose stored expiry is at or before that
      time is absent, whether or not it was reclaimed; never ask the store's clock.
    - Every JSON value round-trips exactly: state, metadata and event content
      read back equal and of the same type, integers of any size (beyond 2**53
      and 2**64) included, and strings and object keys with any character,
      NUL (U+0000) included.
    - Each primitive works on the records it names. The service does everything
      that spans several calls, such as deleting a session's children first.
    """

    name: ClassVar[str] = "backend"
    """The backend's public name (its entry point name)."""
    capabilities: ClassVar[Capabilities] = Capabilities(
        list_users=False,
        list_all_sessions=False,
        list_apps=False,
        restore_session=False,
        pop_event=False,
        replace_events=False,
    )
    """What the backend can do beyond the contract; the suite skips undeclared ones."""
    _declared_capabilities: ClassVar[Capabilities] = Capabilities()
    """``capabilities`` as the nearest class declared it, before the optional methods
    left at ``None`` were resolved; a subclass resolves them again for itself."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = cls.__dict__.get("capabilities")
        if isinstance(declared, Capabilities):
            cls._declared_capabilities = declared
        declared = cls._declared_capabilities
        implemented = {
            capability: getattr(cls, method) is not getattr(Backend, method)
            for capability, method in _OPTIONAL_METHODS.items()
            if getattr(declared, capability) is None
        }
        cls.capabilities = replace(declared, **implemented)

    async def open(self) -> None:  # noqa: B027 -- optional hook with a no-op default
        """Connect and prepare the storage (create tables, load scripts). Idempotent."""

    async def close(self) -> None:  # noqa: B027 -- optional hook with a no-op default
        """Release every connection and resource. Idempotent."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @abc.abstractmethod
    async def ping(self) -> None:
        """Check the storage answers; raise ``BackendUnavailable`` if not."""

    @abc.abstractmethod
    async def create_session(
        self, session: Session, deltas: StateDeltas, expiry: Expiry
    ) -> StoredSession:
        """Store a new session with ``session.state`` as its session state.

        Store the session's fields as given; its ``expires_at`` is ``expiry.session``
        and ``created_at == updated_at == expiry.now``. ``deltas.app`` /
        ``deltas.user`` are applied to the wider scopes in the same transaction,
        each setting that scope's expiry (``expiry.app`` / ``expiry.user``).
        Return the session with the current app and user state. Raise
        ``SessionExists`` if a live session with this key exists (an expired one
        is replaced: nothing of it may show through).
        """

    @abc.abstractmethod
    async def get_session(
        self, key: SessionKey, window: EventWindow, expiry: Expiry, *, refresh: bool
    ) -> StoredSession | None:
        """Return the session with the events of ``window``, or ``None`` if absent or expired.

        With ``refresh`` (sliding TTL), set the session's, the user state's and
        the app state's expiry to those of ``expiry`` (all three, whatever was
        read); ``updated_at`` does not change. Read only the events returned.
        """

    @abc.abstractmethod
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
        """Return up to ``limit`` live sessions, newest ``updated_at`` first, without events.

        Order is ``(updated_at, id)`` descending, ids compared in Unicode code
        point order (see ``ListCursor``); ``after`` is exclusive. With
        ``parent_id`` only that session's direct children are listed.
        ``state`` holds the session scope only.
        """

    @abc.abstractmethod
    async def append(self, request: AppendRequest) -> AppendResult:
        """Store events atomically (see ``AppendRequest``).

        Raise ``SessionNotFound`` if the session is absent or expired.
        """

    @abc.abstractmethod
    async def update_session(
        self,
        key: SessionKey,
        deltas: StateDeltas,
        metadata: Mapping[str, Any],
        expiry: Expiry,
    ) -> StoredSession:
        """Apply state deltas and a metadata delta (``None`` deletes) without an event.

        Sets ``updated_at = expiry.now`` and the session's expiry; a wider scope's
        expiry moves only if a delta writes to it. Raise ``SessionNotFound`` if
        the session is absent or expired. The returned session carries no events.
        """

    @abc.abstractmethod
    async def delete_session(self, key: SessionKey, now: datetime) -> bool:
        """Delete the session and all its events, live or expired.

        Only this session: its children stay (the service deletes each
        descendant first, with a call of its own, when asked to cascade); app
        and user state stay. Return whether it was live at ``now``: an expired
        session is already gone.
        """

    async def read_state(self, key: StateKey, expiry: Expiry, *, refresh: bool) -> dict[str, Any]:
        """Return the app or user state ``key`` names (``{}`` if absent or expired).

        With ``refresh``, set its expiry to ``key.expires_at(expiry)``. Implement
        this (or, in a backend written before it existed, ``get_state``).
        """
        if type(self).get_state is Backend.get_state:
            raise NotImplementedError(f"{type(self).__name__} must implement read_state.")
        return await self.get_state(key.scope, key.app_name, key.user_id, expiry, refresh=refresh)

    async def write_state(
        self, key: StateKey, delta: Mapping[str, Any], expiry: Expiry
    ) -> dict[str, Any]:
        """Apply ``delta`` to the app or user state atomically and return the new state.

        An expired state starts empty. Sets its expiry to ``key.expires_at(expiry)``.
        Implement this (or, in a backend written before it existed, ``update_state``).
        """
        if type(self).update_state is Backend.update_state:
            raise NotImplementedError(f"{type(self).__name__} must implement write_state.")
        return await self.update_state(key.scope, key.app_name, key.user_id, delta, expiry)

    async def get_state(
        self, scope: Scope, app_name: str, user_id: str | None, expiry: Expiry, *, refresh: bool
    ) -> dict[str, Any]:
        """``read_state`` as backends written before ``StateKey`` implement it.

        The service calls ``read_state``; this stays for backends (and callers)
        of the older contract, and a bad combination (user scope without a user,
        app scope with one) is ``InvalidInput``.
        """
        return await self.read_state(StateKey.of(scope, app_name, user_id), expiry, refresh=refresh)

    async def update_state(
        self,
        scope: Scope,
        app_name: str,
        user_id: str | None,
        delta: Mapping[str, Any],
        expiry: Expiry,
    ) -> dict[str, Any]:
        """``write_state`` as backends written before ``StateKey`` implement it."""
        return await self.write_state(StateKey.of(scope, app_name, user_id), delta, expiry)

    async def list_users(self, app_name: str, *, limit: int, after: str | None) -> list[str]:
        """Return up to ``limit`` ids of users with sessions or user state in the app.

        Ascending, strictly after ``after``; expired data may still be counted.
        Used by export and migrate to walk a whole app. Optional: a backend that
        does not implement it lacks the ``list_users`` capability, and export and
        migrate then need the user ids named.
        """
        raise NotImplementedError(
            f"The {self.name!r} backend cannot list users; export or migrate user by user."
        )

    async def list_app_sessions(
        self, app_name: str, *, limit: int, after: ListCursor | None, now: datetime
    ) -> list[Session]:
        """Return up to ``limit`` live sessions of every user of the app, without events.

        Order is ``(updated_at, user_id, id)`` descending, ids compared in Unicode
        code point order; ``after`` (with its ``user_id`` set) is exclusive.
        ``state`` holds the session scope only. Read an index, not every session:
        the cost of a page must not grow with the sessions of other apps.
        Optional: declares the ``list_all_sessions`` capability.
        """
        raise NotImplementedError(f"The {self.name!r} backend cannot list every user's sessions.")

    async def list_apps(self, *, limit: int, after: str | None) -> list[str]:
        """Return up to ``limit`` names of apps with sessions, user state or app state.

        Ascending (code point order), strictly after ``after``; expired data may
        still be counted. Used by export and migrate to copy a whole store.
        Optional: declares the ``list_apps`` capability; without it they copy the
        configured app only.
        """
        raise NotImplementedError(f"The {self.name!r} backend cannot list the apps of a store.")

    async def list_page(self, request: ListRequest) -> ListedPage:
        """Return a listing page with the app state and the state of each user in it.

        The sessions are those ``list_sessions`` (``request.user_id`` set) or
        ``list_app_sessions`` (``None``) return for the same arguments; the
        states are what ``read_state`` returns without ``refresh`` at
        ``request.expiry``. Read them together, in one transaction or round trip
        where the store allows: the service otherwise reads the page, then each
        state. Optional: declares the ``list_page`` capability.
        """
        raise NotImplementedError(f"The {self.name!r} backend cannot read a listing page at once.")

    async def restore_session(self, session: Session, events: list[Event], expiry: Expiry) -> None:
        """Write ``session`` with exactly ``events``, replacing any session with its key.

        Everything is kept as given: ids, ``seq`` numbers, times, counters
        (``last_seq``), state (the session scope) and metadata. Store
        ``session.expires_at`` (the exported expiry, possibly ``None``), not a
        time from ``expiry``: ``expiry.now`` is only the current time, for a
        store that needs one (a native TTL). App and user state are not touched.
        One atomic step: readers see the old session or the new one. Used by
        import and migrate. Start with ``check_restorable(session, events)``:
        input that breaks a rule (seqs not increasing or above ``last_seq``, no
        timestamp, a bad id...) raises ``InvalidInput`` before anything is
        written. Seqs may have gaps (a pop or a replace leaves them): store them
        as given. Optional: a backend that does not implement it lacks
        the ``restore_session`` capability, and cannot be imported or migrated into.
        """
        raise NotImplementedError(f"The {self.name!r} backend cannot restore sessions.")

    async def pop_event(self, key: SessionKey, expiry: Expiry) -> Event | None:
        """Remove the session's newest event (highest seq) and return it; ``None`` if it has none.

        Atomic: two concurrent pops remove two different events, and a pop never
        removes an event appended after it. ``last_seq`` stays (the seq is not
        reused; readers by ``after_seq`` miss nothing), ``event_count`` drops by
        one, the event's state deltas stay applied, and ``updated_at`` and the
        session's expiry move to ``expiry.now`` / ``expiry.session`` when an event
        was removed. Raise ``SessionNotFound`` if the session is absent or
        expired. Optional: declares the ``pop_event`` capability.
        """
        raise NotImplementedError(f"The {self.name!r} backend cannot pop events.")

    async def replace_events(self, request: ReplaceRequest) -> AppendResult:
        """Swap the session's history atomically (see ``ReplaceRequest``).

        Return the new events with their seqs. Raise ``SessionNotFound`` if the
        session is absent or expired, ``ConflictError`` (naming both seqs) if
        ``expected_last_seq`` is set and differs. Optional: declares the
        ``replace_events`` capability.
        """
        raise NotImplementedError(f"The {self.name!r} backend cannot replace events.")

    async def purge_expired(self, now: datetime) -> int:
        """Reclaim the storage of expired sessions and states; return how many were removed.

        The count is of sessions (with their events, which are not counted) plus
        app and user state records, expired at ``now``. The default does nothing
        and returns 0, which is right only for a store that reclaims expired data
        by itself (``native_ttl``): any other backend overrides it (the suite's
        ``test_purge_reclaims_expired_sessions`` checks).
        """
        return 0


def __getattr__(name: str) -> Any:
    # The backend tools used to live here: old imports keep working, with a warning (backend_tools
    # imports _validate, which imports this module, so this import waits until asked).
    from sessionhub import backend_tools

    if name in backend_tools.__all__:
        warnings.warn(
            f"sessionhub.backend.{name} moved to sessionhub.backend_tools.{name}; the old "
            "import stops working in the next minor version.",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(backend_tools, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
