"""The pure steps around an append: stamping, checking a batch, and what it does to a ``Session``.

The service calls these; none of them does I/O. ``stamp`` fills in ids and
times, ``check_batch`` validates a batch and splits each event's state delta by
scope, ``update_in_place`` brings a caller's ``Session`` up to date with what
the backend stored, and ``merge_scopes`` builds the merged state view.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sessionhub import _validate
from sessionhub._event_slots import assign
from sessionhub.backend import AppendResult, StateDeltas
from sessionhub.backend_tools import apply_delta
from sessionhub.errors import InvalidInput
from sessionhub.models import APP_PREFIX, USER_PREFIX, Event, Session, new_event_id

__all__ = ["blank", "stamp", "check_batch", "update_in_place", "merge_scopes"]


def blank(value: object) -> bool:
    """Whether ``value`` is ``None`` or a string of whitespace only."""
    return value is None or (isinstance(value, str) and not value.strip())


def stamp(batch: list[Event], now: datetime) -> None:
    """Give events without an id a generated one, and without a timestamp ``now``."""
    for event in batch:
        if blank(event.id):
            assign(event, "id", new_event_id())
        if event.timestamp is None:
            assign(event, "timestamp", now)


def check_batch(batch: list[Event]) -> list[StateDeltas]:
    """Check every event of one append; return each event's state delta split by scope.

    ``temp:`` keys leave the stored delta and ``seq`` is reset: the backend numbers events.
    """
    seen: set[str] = set()
    deltas: list[StateDeltas] = []
    for index, event in enumerate(batch):
        field = f"events[{index}]"
        deltas.append(_validate.check_event(event, field))
        if event.id in seen:
            raise InvalidInput(f"{field}.id", f"{event.id!r} appears twice in one append")
        seen.add(event.id)
        if event.state_delta:
            assign(event, "state_delta", _validate.without_temp(event.state_delta))
        assign(event, "seq", 0)
    return deltas


def update_in_place(
    session: Session, stored: list[Event], deltas: list[StateDeltas], result: AppendResult
) -> None:
    """Add what an append stored to the caller's ``session``: events, state, counters, times."""
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


def merge_scopes(
    app_state: Mapping[str, Any], user_state: Mapping[str, Any], session_state: dict[str, Any]
) -> dict[str, Any]:
    """The merged state view: ``app:<k>`` and ``user:<k>`` keys, then the session's own."""
    merged = {APP_PREFIX + key: value for key, value in app_state.items()}
    merged.update((USER_PREFIX + key, value) for key, value in user_state.items())
    merged.update(session_state)
    return merged
