"""Tools for backend authors: what the first-party backends use to keep the contract.

A backend stores JSON values as the text ``dump_json`` makes (so every value
round-trips exactly), events as the text ``event_to_json`` makes (and rebuilds them with
``event_from_json``, or ``events_from_json`` for many, without re-validating
what it wrote itself; ``built_all`` builds any other long batch of objects the
same way, the garbage collector paused), and times it
indexes or compares as integer microseconds (``to_micros`` / ``from_micros``).
It rebuilds the sessions it lists or reads with ``stored_session`` (no
re-validation of what it wrote itself), applies deltas with ``apply_delta``, checks a restore with
``check_restorable`` before writing anything, tells a retry from a reused id
with ``check_retry``, and masks the password of any URL
it puts in a message with ``mask_url``. The contract itself (``Backend`` and
the types its methods take) is ``sessionhub.backend``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from sessionhub import _validate
from sessionhub._retries import check_retry
from sessionhub._secrets import mask_url
from sessionhub._stored_events import (
    _set_dict,
    _set_extra,
    _set_fields_set,
    _set_private,
    built_all,
    event_from_json,
    events_from_json,
)
from sessionhub.errors import InvalidInput
from sessionhub.models import Event, Session

__all__ = [
    "apply_delta",
    "built_all",
    "check_restorable",
    "check_retry",
    "dump_json",
    "event_to_json",
    "event_from_json",
    "events_from_json",
    "to_micros",
    "from_micros",
    "mask_url",
    "stored_session",
]


def apply_delta(target: dict[str, Any], delta: Mapping[str, Any]) -> dict[str, Any]:
    """Apply a state or metadata delta in place (``None`` deletes a key); return ``target``."""
    for key, value in delta.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    return target


def check_restorable(session: Session, events: Sequence[Event]) -> None:
    """Raise ``InvalidInput`` unless ``session`` with ``events`` may be stored as given.

    What ``restore_session`` checks before it writes anything. The rules of a
    create and an append (identifiers, roles, JSON values, state keys) and what the
    service would have filled in: every event has its timestamp, ``depth`` is 0
    without a parent and at least 1 with one, the session state holds the session
    scope only, event ids are unique, and the seqs are strictly increasing, each
    at least 1, the last at most ``last_seq`` (a session's events oldest first, as
    an export holds them). Seqs may have gaps: a pop or a replace leaves them, and
    trimming by ``event_limit`` drops the oldest.
    """
    for name in ("app_name", "user_id", "id", "root_id"):
        _validate.check_identifier(getattr(session, name), f"session.{name}")
    if session.parent_id is None:
        if session.depth != 0:
            raise InvalidInput(
                "session.depth", f"must be 0 for a session without parent_id, got {session.depth}"
            )
    else:
        _validate.check_identifier(session.parent_id, "session.parent_id")
        _validate.check_count(session.depth, "session.depth", minimum=1)
    _validate.check_mapping(session.metadata, "session.metadata")
    state = _validate.check_mapping(session.state, "session.state")
    scopes = _validate.split_delta(state, "session.state")
    if scopes.app or scopes.user or len(scopes.session) != len(state):
        raise InvalidInput(
            "session.state", "holds the session scope only: no app:, user: or temp: keys"
        )
    last_seq = _validate.check_count(session.last_seq, "session.last_seq", minimum=0)
    seen: set[str] = set()
    previous = 0
    for index, event in enumerate(events):
        field = f"events[{index}]"
        _validate.check_event(event, field)
        if event.id in seen:
            raise InvalidInput(f"{field}.id", f"{event.id!r} appears twice")
        seen.add(event.id)
        if not isinstance(event.timestamp, datetime):
            raise InvalidInput(
                f"{field}.timestamp", "is missing: a stored event keeps the time it was appended"
            )
        if event.seq <= previous:
            after = "at least 1" if previous == 0 else f"above the seq before it ({previous})"
            raise InvalidInput(
                f"{field}.seq", f"must be {after}, got {event.seq}: events go oldest first"
            )
        if event.seq > last_seq:
            raise InvalidInput(
                f"{field}.seq",
                f"is {event.seq}, above session.last_seq={last_seq} (the highest seq the "
                "session gave out)",
            )
        previous = event.seq


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


def to_micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch: how stores keep times they index and compare.

    A naive datetime is taken to be UTC.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (moment - _EPOCH) // _MICROSECOND


def from_micros(micros: int) -> datetime:
    """The UTC datetime ``micros`` microseconds after the Unix epoch."""
    return _EPOCH + _MICROSECOND * micros  # exact, and half the cost of timedelta(...)


def dump_json(value: Any) -> str:
    """Serialise a validated JSON value compactly, the way every backend stores it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def event_to_json(event: Event) -> str:
    """Serialise a stored event to the JSON text a backend keeps."""
    return event.model_dump_json()


_SESSION_FIELDS = frozenset(Session.model_fields)
_new_session = Session.__new__


def stored_session(
    *,
    id: str,
    app_name: str,
    user_id: str,
    parent_id: str | None,
    root_id: str,
    depth: int,
    created_at: datetime,
    updated_at: datetime,
    expires_at: datetime | None,
    state: dict[str, Any],
    metadata: dict[str, Any],
    event_count: int,
    last_seq: int,
    events: list[Event] | None = None,
) -> Session:
    """A ``Session`` from values the backend stored itself, built without re-validating them.

    For trusted rows only: the values were checked on the way in, so each must
    already have its field's type (times UTC-aware, as ``from_micros`` gives them;
    ``state`` and ``metadata`` fresh dicts the caller hands over). It costs about a
    third of ``Session.model_construct`` and gives an equal object; data from
    outside (an import, a restore) goes through ``Session.model_validate`` instead.
    It fills the instance slots pydantic 2 gives every model (``__dict__``,
    ``__pydantic_fields_set__``, ``__pydantic_extra__``, ``__pydantic_private__``),
    which is why the core requires ``pydantic<3``; a test compares the result with
    a validated ``Session`` (equality, dump, copy, JSON round trip).
    """
    session = _new_session(Session)
    _set_dict(
        session,
        {
            "id": id,
            "app_name": app_name,
            "user_id": user_id,
            "parent_id": parent_id,
            "root_id": root_id,
            "depth": depth,
            "created_at": created_at,
            "updated_at": updated_at,
            "expires_at": expires_at,
            "state": state,
            "metadata": metadata,
            "event_count": event_count,
            "last_seq": last_seq,
            "events": [] if events is None else events,
        },
    )
    _set_fields_set(session, set(_SESSION_FIELDS))
    _set_extra(session, None)
    _set_private(session, None)
    return session
