"""The records the ``Backend`` primitives take and return.

Keys (``SessionKey``, ``StateKey``, ``Scope``), what the service computed for a
call (``StateDeltas``, ``Expiry``, ``EventWindow``, ``ListCursor``), the requests
(``AppendRequest``, ``ReplaceRequest``, ``ListRequest``) and the results
(``StoredSession``, ``AppendResult``, ``ListedPage``). Import them from
``sessionhub`` or ``sessionhub.backend``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from sessionhub.errors import InvalidInput
from sessionhub.models import Event, Session

__all__ = [
    "SessionKey",
    "Scope",
    "StateKey",
    "StateDeltas",
    "Expiry",
    "EventWindow",
    "ListCursor",
    "StoredSession",
    "AppendRequest",
    "ReplaceRequest",
    "AppendResult",
    "ListRequest",
    "ListedPage",
]


@dataclass(frozen=True)
class SessionKey:
    """The identity of a session: two users may each own a session ``"s1"``.

    The three parts are validated identifiers: data, never path or key fragments.
    """

    app_name: str
    """The app the session belongs to (the service's ``app_name``)."""
    user_id: str
    """The user who owns the session."""
    session_id: str
    """The session's id, unique per app and user."""


class Scope(str, Enum):
    """The wider state scopes (session state travels with its session)."""

    APP = "app"
    """App state: one per ``app_name``, shared by every user (``app:`` keys)."""
    USER = "user"
    """User state: one per app and user, shared by the user's sessions (``user:`` keys)."""


@dataclass(frozen=True)
class StateKey:
    """Which wider state: an app's (``user_id`` is ``None``) or one user's in an app.

    The scope follows from the key, so no call can name a user state without a
    user. Build one with ``StateKey.app(name)`` / ``StateKey.user(name, user_id)``.
    """

    app_name: str
    """The app whose state (or whose user's state) this is."""
    user_id: str | None = None
    """The user, for user state; ``None`` for the app state."""

    def __post_init__(self) -> None:
        if self.user_id == "":
            raise InvalidInput("user_id", "a user state needs a user id (None: the app state)")

    @classmethod
    def app(cls, app_name: str) -> StateKey:
        """The app state of ``app_name``."""
        return cls(app_name)

    @classmethod
    def user(cls, app_name: str, user_id: str) -> StateKey:
        """The state of ``user_id`` in ``app_name``."""
        return cls(app_name, user_id)

    @classmethod
    def of(cls, scope: Scope, app_name: str, user_id: str | None) -> StateKey:
        """The key for the older ``(scope, app_name, user_id)`` arguments; checks they agree."""
        if (scope is Scope.USER) != (user_id is not None):
            raise InvalidInput(
                "user_id",
                "user state needs a user id and app state takes none "
                f"(got scope {scope.value!r} with user_id {user_id!r})",
            )
        return cls(app_name, user_id)

    @property
    def scope(self) -> Scope:
        """``Scope.USER`` for a user's state, ``Scope.APP`` for the app's."""
        return Scope.APP if self.user_id is None else Scope.USER

    def expires_at(self, expiry: Expiry) -> datetime | None:
        """The new expiry of the state in ``expiry``: ``expiry.app`` or ``expiry.user``."""
        return expiry.app if self.user_id is None else expiry.user


@dataclass
class StateDeltas:
    """A state delta split by scope, prefixes removed; ``None`` values delete keys.

    ``temp:`` keys never reach a backend. Apply a delta with :func:`apply_delta`.
    """

    app: dict[str, Any] = field(default_factory=dict)
    """Changes to the app state (``app:`` keys, prefix removed)."""
    user: dict[str, Any] = field(default_factory=dict)
    """Changes to the user state (``user:`` keys, prefix removed)."""
    session: dict[str, Any] = field(default_factory=dict)
    """Changes to the session's own state (keys without a prefix)."""

    def __bool__(self) -> bool:
        return bool(self.app or self.user or self.session)


@dataclass(frozen=True)
class Expiry:
    """New expiry times computed by the service for a write or a sliding read.

    ``None`` means the scope does not expire. ``now`` is the service's clock: a
    record whose stored ``expires_at`` is at or before ``now`` is expired and must
    be treated as absent, whether or not its storage was reclaimed.
    """

    now: datetime
    """The service's current time: judge every stored expiry against it, never the store's."""
    session: datetime | None = None
    """The session's new ``expires_at`` (``None``: no ``session_ttl``, never expires)."""
    user: datetime | None = None
    """The user state's new expiry, for a write or refresh of that scope."""
    app: datetime | None = None
    """The app state's new expiry, for a write or refresh of that scope."""


@dataclass(frozen=True)
class EventWindow:
    """Which events ``get_session`` returns, oldest first.

    Events with ``seq > after_seq`` and ``timestamp > after_time`` are selected,
    then only the newest ``last_n`` of those are kept. ``last_n=0`` reads no events.
    """

    last_n: int | None = None
    """Keep only the newest ``last_n`` of the selected events (``None``: all, ``0``: none)."""
    after_seq: int | None = None
    """Select only events with ``seq`` greater than this."""
    after_time: datetime | None = None
    """Select only events whose ``timestamp`` is later than this (UTC-aware)."""


@dataclass(frozen=True)
class ListCursor:
    """Keyset position in a listing ordered by ``(updated_at, session id)`` descending.

    A listing of every user's sessions (``Backend.list_app_sessions``) orders by
    ``(updated_at, user id, session id)`` descending, and its cursor carries the
    ``user_id`` too. Ids compare in Unicode code point order, which is also the
    byte order of their UTF-8 encoding (SQL ``BINARY`` collation, Redis
    sorted-set ties, MongoDB's default): not UTF-16 order, and not a locale's
    collation.
    """

    updated_at: datetime
    """The ``updated_at`` of the last session of the previous page."""
    session_id: str
    """The id of the last session of the previous page: the page starts strictly after it."""
    user_id: str | None = None
    """The user of the last session of the previous page, in a listing of every user's
    sessions; ``None`` in a listing of one user's."""

    def key(self) -> tuple[datetime, str, str]:
        """``(updated_at, user_id, session_id)``: the position as a sortable tuple."""
        return self.updated_at, self.user_id or "", self.session_id


@dataclass
class StoredSession:
    """A session as read from storage, before the service merges the state scopes.

    ``session.state`` holds the session scope only; ``session.events`` the window.
    """

    session: Session
    """The session with its session-scope state; ``events`` holds the requested window."""
    app_state: dict[str, Any]
    """The app state, keys without ``app:`` (``{}`` if absent or expired)."""
    user_state: dict[str, Any]
    """The owner's user state, keys without ``user:`` (``{}`` if absent or expired)."""


@dataclass
class AppendRequest:
    """One atomic append: events (ids, timestamps set; seq 0) and their split deltas.

    For each event whose id is not stored yet the backend allocates the next seq,
    stores it and applies its deltas; an id already stored is skipped (its deltas
    too) and the stored event is returned in its place. If at least one event was
    new, it then trims to the ``event_limit`` newest events and sets
    ``updated_at = expiry.now``, the session's ``expires_at = expiry.session``,
    and the expiry of each wider scope a delta wrote to (``expiry.user``,
    ``expiry.app``); a scope without a delta keeps its expiry. An append whose
    events are all stored already is a no-op: it returns them and changes
    nothing, not even ``updated_at`` or the expiry. All of it is one transaction
    (or one script): all or nothing. A backend declaring ``atomic_conflicts``
    also compares the event stored under each such id with the requested one
    (``check_retry``) and, when one differs, raises its ``ConflictError`` with
    nothing of the batch written.

    The events are the service's own copies: a backend may set ``seq`` on them
    and return them, as long as it keeps no reference to them.
    """

    key: SessionKey
    """The session to append to."""
    events: list[Event]
    """The events in order, each with its ``id`` and ``timestamp`` set and ``seq`` 0."""
    deltas: list[StateDeltas]
    """Each event's ``state_delta`` split by scope, one per event, in the same order."""
    expiry: Expiry
    """``now`` and the new expiry times."""
    event_limit: int | None = None
    """Keep only this many newest events after the append (``None``: keep all)."""
    expected_last_seq: int | None = None
    """Compare and set: unless every event is stored already (a retry), raise
    ``ConflictError`` and write nothing when the session's ``last_seq`` is not
    this. Only for a backend declaring ``compare_and_set``; ``None``: no check."""


@dataclass
class ReplaceRequest:
    """Swap a session's whole history for ``events`` in one atomic step.

    Unless ``expected_last_seq`` is ``None``, raise ``ConflictError`` and write
    nothing when the session's ``last_seq`` differs. Delete every stored event,
    then store ``events`` with new seqs after ``last_seq`` (seqs are never
    reused), trim to ``event_limit``, and set ``updated_at = expiry.now`` and
    the session's ``expires_at = expiry.session``. State is not touched: the
    events carry no deltas (the service refuses them). Session state, metadata
    and the wider scopes stay as they are.
    """

    key: SessionKey
    """The session whose history is replaced."""
    events: list[Event]
    """The new history in order, ids and timestamps set, seq 0, no state deltas."""
    expiry: Expiry
    """``now`` and the session's new expiry."""
    expected_last_seq: int | None = None
    """The ``last_seq`` the caller read; ``None``: replace whatever is there."""
    event_limit: int | None = None
    """Keep only this many newest events (``None``: keep all)."""


@dataclass
class AppendResult:
    """What an append stored: events in request order, with their seqs."""

    events: list[Event]
    """One per requested event, in request order: the new event with its seq, or the
    event stored earlier under that id."""
    last_seq: int
    """The session's ``last_seq`` after the append."""
    event_count: int
    """How many events the session holds after the append (and the trim)."""
    updated_at: datetime
    """The session's ``updated_at`` after the append. The service reads it (and
    ``expires_at``) only when the append stored at least one new event."""
    expires_at: datetime | None
    """The session's ``expires_at`` after the append."""


@dataclass
class ListRequest:
    """One page of a session listing, as ``Backend.list_page`` takes it.

    The same page ``list_sessions`` (``user_id`` set) or ``list_app_sessions``
    (``user_id`` is ``None``) returns for these arguments.
    """

    app_name: str
    """The app whose sessions are listed."""
    user_id: str | None
    """The user whose sessions are listed; ``None``: every user's (``list_all_sessions``)."""
    limit: int
    """How many sessions at most."""
    after: ListCursor | None
    """The exclusive keyset position to start after (``None``: from the newest)."""
    parent_id: str | None
    """Only the direct children of this session (only with a ``user_id``)."""
    expiry: Expiry
    """``expiry.now`` decides what is live: sessions and states expired by then are left out."""


@dataclass
class ListedPage:
    """A page of sessions and the wider state scopes they are shown with, read together."""

    sessions: list[Session]
    """The page, as ``list_sessions`` / ``list_app_sessions`` return it (session-scope state,
    no events)."""
    app_state: dict[str, Any]
    """The app state, keys without ``app:`` (``{}`` if absent or expired)."""
    user_states: dict[str, dict[str, Any]]
    """The user state of every user owning a session of the page, keys without ``user:``
    (``{}`` if absent or expired)."""
