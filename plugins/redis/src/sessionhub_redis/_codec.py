"""What sessions, events and state look like in Redis: hash fields and JSON texts, both ways."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from sessionhub import Event, Session
from sessionhub.backend_tools import dump_json, from_micros, stored_session, to_micros

__all__ = [
    "event_json",
    "expiry",
    "session",
    "session_fields",
    "state",
    "text",
    "time_key",
]

_MILLISECOND = timedelta(milliseconds=1)
_FIRST_MICROS = to_micros(datetime.min.replace(tzinfo=timezone.utc))
_EVENT_JSON = Event.__pydantic_serializer__.to_json  # bytes, without model_dump_json's decode


def expiry(expires_at: datetime | None, now: datetime) -> tuple[str, str]:
    """``(exp µs, ttl ms)`` as scripts take them, or two empty strings for no expiry."""
    if expires_at is None:
        return "", ""
    ttl = max(1, math.ceil((expires_at - now) / _MILLISECOND))
    return str(to_micros(expires_at)), str(ttl)


def time_key(moment: datetime) -> str:
    """A time as scripts compare it: µs since 0001-01-01 UTC in 18 digits, in time order."""
    return f"{to_micros(moment) - _FIRST_MICROS:018d}"


def event_json(event: Event) -> bytes:
    """The event as JSON; scripts set its seq field to the seq they allocate."""
    return _EVENT_JSON(event)


def text(value: bytes | str) -> str:
    """A reply's bulk string as text."""
    return value.decode() if isinstance(value, bytes) else value


def _fields(flat: Sequence[Any]) -> Iterable[tuple[str, Any]]:
    it = iter(flat)
    return ((text(name), value) for name, value in zip(it, it, strict=True))


def state(flat: Sequence[Any], now: int) -> dict[str, Any]:
    """A state hash's fields as a dict (``{}`` if it expired by ``now``, in µs)."""
    result: dict[str, Any] = {}
    for name, value in _fields(flat):
        if name == "exp":
            if int(value) <= now:
                return {}
        else:
            result[name[2:]] = json.loads(value)
    return result


def session_fields(stored: Session, *, last_seq: int, count: int) -> list[Any]:
    """A new session hash as (field, value) pairs: header, ``s:`` state, ``m:`` metadata."""
    fields: list[Any] = [
        "id", stored.id,
        "app", stored.app_name,
        "user", stored.user_id,
        "root", stored.root_id,
        "depth", stored.depth,
        "created", to_micros(stored.created_at),
        "upd", to_micros(stored.updated_at),
        "last_seq", last_seq,
        "count", count,
    ]  # fmt: skip
    if stored.parent_id is not None:
        fields += ["parent", stored.parent_id]
    for name, value in stored.state.items():
        fields += ["s:" + name, dump_json(value)]
    for name, value in stored.metadata.items():
        fields += ["m:" + name, dump_json(value)]
    return fields


def session(flat: Sequence[Any], events: list[Event] | None = None) -> Session:
    """Build a session from its hash fields (header, ``s:`` state, ``m:`` metadata)."""
    head: dict[str, Any] = {}  # raw values: int() takes bytes, only the texts are decoded
    session_state: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    it = iter(flat)
    for raw, value in zip(it, it, strict=True):
        name = raw.decode() if isinstance(raw, bytes) else raw
        scope = name[:2]
        if scope == "s:":
            session_state[name[2:]] = json.loads(value)
        elif scope == "m:":
            metadata[name[2:]] = json.loads(value)
        else:
            head[name] = value
    exp = head.get("exp")
    parent = head.get("parent")
    return stored_session(
        id=text(head["id"]),
        app_name=text(head["app"]),
        user_id=text(head["user"]),
        parent_id=None if parent is None else text(parent),
        root_id=text(head["root"]),
        depth=int(head["depth"]),
        created_at=from_micros(int(head["created"])),
        updated_at=from_micros(int(head["upd"])),
        expires_at=from_micros(int(exp)) if exp else None,
        state=session_state,
        metadata=metadata,
        event_count=int(head["count"]),
        last_seq=int(head["last_seq"]),
        events=events,
    )
