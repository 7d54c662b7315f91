"""The event half of ``SessionHistoryService``: append, pop, replace and clear a history.

``HistoryOperations`` is a base class of the service; it holds the operations
that store or remove events and the steps they share (normalising, stamping,
``before_append`` hooks, checks, compare-and-set and capability checks).
Everything else about sessions lives in ``sessionhub.service``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Union

from sessionhub import _validate
from sessionhub._append_steps import check_batch, stamp, update_in_place
from sessionhub._listing import require_capability
from sessionhub._normalize import to_events
from sessionhub._operations import operation
from sessionhub._retries import check_retries
from sessionhub.backend import (
    AppendRequest,
    Backend,
    EventWindow,
    Expiry,
    ReplaceRequest,
    SessionKey,
    StoredSession,
)
from sessionhub.errors import InvalidInput
from sessionhub.hookspecs import AppendContext
from sessionhub.models import Event, Session
from sessionhub.plugins import call_hook, has_implementations

if TYPE_CHECKING:
    import pluggy

    from sessionhub.settings import SessionHubSettings

__all__ = ["HistoryOperations", "EventInput"]

EventInput = Union[Event, str, Mapping[str, Any], Any]  # noqa: UP007 -- a runtime alias on 3.10
"""What ``append`` accepts for one event (see ``SessionHistoryService.append``)."""


class HistoryOperations:
    """Storing and removing events; a base of ``SessionHistoryService``."""

    backend: Backend
    plugin_manager: pluggy.PluginManager
    settings: SessionHubSettings
    app_name: str

    _clock: Callable[[], datetime]

    def _key(self, user_id: str, session_id: str) -> SessionKey:
        raise NotImplementedError

    def _expiry(self, now: datetime) -> Expiry:
        raise NotImplementedError

    async def _ready(self) -> None:
        raise NotImplementedError

    def _open_here(self) -> bool:
        raise NotImplementedError

    def _merged(self, stored: StoredSession) -> Session:
        raise NotImplementedError

    # --- events ----------------------------------------------------------------

    @operation
    async def append(
        self,
        session: Session | tuple[str, str],
        events: EventInput | Sequence[EventInput],
        *,
        expected_last_seq: int | None = None,
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
        ``ConflictError`` naming the id and writes nothing of the call (on a
        backend declaring ``atomic_conflicts``; on another, after storing the
        call's new events).
        The caller's objects are never changed, whatever a hook does. When
        ``session`` is a ``Session``, it is updated in place. With
        ``expected_last_seq`` (compare and set), nothing is written and
        ``ConflictError`` names both seqs if the session's ``last_seq`` moved
        on, unless every event is stored already (a retry); it needs a backend
        with the ``compare_and_set`` capability.
        Raises ``SessionNotFound`` if the session is absent or expired.
        """
        given = session if isinstance(session, Session) else None
        if given is not None:
            key = self._key(given.user_id, given.id)
            if given.app_name != self.app_name:
                raise InvalidInput(
                    "session.app_name",
                    f"belongs to app {given.app_name!r}, but this service is for app "
                    f"{self.app_name!r}",
                )
        else:
            if not isinstance(session, tuple) or len(session) != 2:
                raise InvalidInput("session", "must be a Session or a (user_id, session_id) tuple")
            key = self._key(*session)
        expected = self._expected_last_seq(expected_last_seq, "compare_and_set")
        now = self._clock()
        batch = _stamped(events, now)
        if batch and has_implementations(self.plugin_manager, "sessionhub_before_append"):
            batch = await self._before_append(key, batch, now)
        if not batch:
            return []
        deltas = check_batch(batch)
        if not self._open_here():
            await self._ready()
        expiry = self._expiry(now)
        result = await self.backend.append(
            AppendRequest(key, batch, deltas, expiry, self.settings.event_limit, expected)
        )
        check_retries(batch, result.events)
        if given is not None:
            update_in_place(given, result.events, deltas, result)
        if has_implementations(self.plugin_manager, "sessionhub_after_append"):
            observed = given if given is not None else await self._header(key)
            if observed is not None:
                await call_hook(
                    self.plugin_manager,
                    "sessionhub_after_append",
                    session=observed,
                    events=result.events,
                )
        return result.events

    @operation
    async def pop_event(self, user_id: str, session_id: str) -> Event | None:
        """Remove the session's newest event and return it (``None`` if it has no events).

        Atomic: concurrent pops return different events, and a pop never takes an
        event appended after it. The seq is not reused: the next append gets a
        higher one, so ``after_seq`` readers miss nothing (seqs then have a gap).
        The event's state delta stays applied. Needs the ``pop_event`` capability.
        Raises ``SessionNotFound`` if the session is absent or expired.
        """
        key = self._key(user_id, session_id)
        self._require("pop_event")
        await self._ready()
        return await self.backend.pop_event(key, self._expiry(self._clock()))

    @operation
    async def replace_events(
        self,
        user_id: str,
        session_id: str,
        events: EventInput | Sequence[EventInput],
        *,
        expected_last_seq: int | None = None,
    ) -> list[Event]:
        """Swap the session's whole history for ``events`` atomically; return them with seqs.

        For compaction and summaries: the session, its state and metadata stay;
        the new events get seqs after the old ``last_seq`` (never reused) and
        carry no state deltas (``InvalidInput``: state is not rewritten). With
        ``expected_last_seq``, a session that moved on (an append raced the
        rewrite) raises ``ConflictError`` and nothing changes. ``before_append``
        hooks see the new events. Needs the ``replace_events`` capability.
        """
        key = self._key(user_id, session_id)
        self._require("replace_events")
        expected = self._expected_last_seq(expected_last_seq, "replace_events")
        now = self._clock()
        batch = _stamped(events, now)
        if batch and has_implementations(self.plugin_manager, "sessionhub_before_append"):
            batch = await self._before_append(key, batch, now)
        deltas = check_batch(batch)
        for index, delta in enumerate(deltas):
            if delta or batch[index].state_delta:
                raise InvalidInput(
                    f"events[{index}].state_delta",
                    "replace_events rewrites history, not state: leave state_delta empty "
                    "(use update_session to change state)",
                )
        await self._ready()
        request = ReplaceRequest(key, batch, self._expiry(now), expected, self.settings.event_limit)
        return (await self.backend.replace_events(request)).events

    @operation
    async def clear_events(
        self, user_id: str, session_id: str, *, expected_last_seq: int | None = None
    ) -> None:
        """Delete every event of the session, keeping the session, its state and ``last_seq``.

        ``replace_events`` with no events: the same atomicity, capability and errors.
        """
        await self.replace_events(user_id, session_id, [], expected_last_seq=expected_last_seq)

    async def _before_append(
        self, key: SessionKey, batch: list[Event], now: datetime
    ) -> list[Event]:
        """Run the ``before_append`` hooks on copies of ``batch``; return their events, stamped."""
        # A hook may edit events in place: it gets copies of the caller's parts and dicts.
        ctx = AppendContext(
            self.app_name,
            key.user_id,
            key.session_id,
            [event.model_copy(deep=True) for event in batch],
        )
        await call_hook(self.plugin_manager, "sessionhub_before_append", ctx=ctx)
        return _stamped(ctx.events, now)  # a hook may have added dicts or strings

    def _expected_last_seq(self, value: int | None, capability: str) -> int | None:
        if value is None:
            return None
        value = _validate.check_count(value, "expected_last_seq", minimum=0)
        self._require(capability)
        return value

    def _require(self, capability: str) -> None:
        require_capability(self.backend, capability)

    async def _header(self, key: SessionKey) -> Session | None:
        stored = await self.backend.get_session(
            key, EventWindow(last_n=0), self._expiry(self._clock()), refresh=False
        )
        return None if stored is None else self._merged(stored)


def _stamped(events: EventInput | Sequence[EventInput], now: datetime) -> list[Event]:
    """The events about to be stored, normalised (copies) and stamped with ids and times."""
    batch = to_events(events)
    stamp(batch, now)
    return batch
