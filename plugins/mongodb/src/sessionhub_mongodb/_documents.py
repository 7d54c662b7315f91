"""How sessions, events and state are laid out as MongoDB documents, and back.

Times are stored as integer microseconds since the Unix epoch (``*_us``
fields): BSON dates keep only milliseconds, and a keyset cursor must compare
equal to what is stored. A BSON date copy (``expires_at``) exists only for the
TTL monitor. State and metadata are maps from escaped key to JSON text, so
that any key (dotted, ``$``-prefixed, empty) is a legal field name, a delta is
a per-key ``$set`` / ``$unset``, and every JSON value round-trips exactly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sessionhub import Event, Session
from sessionhub.backend_tools import (
    dump_json,
    event_from_json,
    from_micros,
    stored_session,
    to_micros,
)

__all__ = [
    "NEVER",
    "ttl_date",
    "escape_key",
    "unescape_key",
    "encode_map",
    "decode_map",
    "map_delta",
    "session_document",
    "session_from_document",
    "event_document",
    "event_from_document",
    "state_id",
]

NEVER = 2**62
"""``expires_us`` of a record that does not expire (keeps every liveness test one range)."""

_ESCAPED = {"%": "%25", ".": "%2E", "$": "%24", "\x00": "%00"}
_EMPTY_KEY = "%"  # never produced otherwise: an escape is always '%' plus two hex digits


def ttl_date(micros: int) -> datetime:
    """The BSON date the TTL monitor compares: rounded up to the millisecond.

    Rounding up means the monitor never removes a record before its exact expiry.
    """
    return from_micros(-(-micros // 1000) * 1000)


def escape_key(key: str) -> str:
    """Make ``key`` a legal, unambiguous field name (no '.', no leading '$', no NUL)."""
    if not key:
        return _EMPTY_KEY
    return "".join(_ESCAPED.get(char, char) for char in key)


def unescape_key(field: str) -> str:
    """Invert :func:`escape_key`."""
    if field == _EMPTY_KEY:
        return ""
    if "%" not in field:
        return field
    parts = field.split("%")
    return parts[0] + "".join(chr(int(part[:2], 16)) + part[2:] for part in parts[1:])


def encode_map(values: Mapping[str, Any]) -> dict[str, str]:
    """A JSON object as stored: escaped keys, each value as JSON text."""
    return {escape_key(key): dump_json(value) for key, value in values.items()}


def decode_map(stored: Mapping[str, str] | None) -> dict[str, Any]:
    """Invert :func:`encode_map`."""
    if not stored:
        return {}
    return {unescape_key(field): json.loads(text) for field, text in stored.items()}


def map_delta(
    field: str, delta: Mapping[str, Any], sets: dict[str, Any], unsets: dict[str, str]
) -> None:
    """Add a delta (``None`` deletes) on the map ``field`` to ``$set`` / ``$unset`` operands."""
    for key, value in delta.items():
        path = f"{field}.{escape_key(key)}"
        if value is None:
            unsets[path] = ""
            sets.pop(path, None)
        else:
            sets[path] = dump_json(value)
            unsets.pop(path, None)


def state_id(app_name: str, user_id: str | None) -> str:
    """The ``_id`` of an app (``user_id=None``) or user state document: injective JSON text."""
    return dump_json(["app", app_name] if user_id is None else ["user", app_name, user_id])


def session_document(
    session: Session, incarnation: str, expires_us: int, horizon_us: int | None
) -> dict[str, Any]:
    """The document of a new session (no events yet)."""
    document: dict[str, Any] = {
        "_id": incarnation,
        "incarnation": incarnation,
        "app": session.app_name,
        "user": session.user_id,
        "sid": session.id,
        "parent": session.parent_id,
        "root": session.root_id,
        "depth": session.depth,
        "created_us": to_micros(session.created_at),
        "updated_us": to_micros(session.updated_at),
        "expires_us": expires_us,
        "horizon_us": horizon_us,
        "state": encode_map(session.state),
        "metadata": encode_map(session.metadata),
        "last_seq": 0,
        "event_count": 0,
        "version": 0,
    }
    if expires_us != NEVER:
        document["expires_at"] = ttl_date(expires_us)
    return document


def session_from_document(
    document: Mapping[str, Any], events: list[Event] | None = None
) -> Session:
    """A :class:`Session` (session-scope state only) from its stored document."""
    expires_us = document["expires_us"]
    return stored_session(
        id=document["sid"],
        app_name=document["app"],
        user_id=document["user"],
        parent_id=document.get("parent"),
        root_id=document["root"],
        depth=document["depth"],
        created_at=from_micros(document["created_us"]),
        updated_at=from_micros(document["updated_us"]),
        expires_at=None if expires_us >= NEVER else from_micros(expires_us),
        state=decode_map(document.get("state")),
        metadata=decode_map(document.get("metadata")),
        event_count=document["event_count"],
        last_seq=document["last_seq"],
        events=events,
    )


def event_document(
    incarnation: str, event: Event, writer: str, horizon_us: int | None
) -> dict[str, Any]:
    """The document of a stored event (``event.seq`` already assigned)."""
    assert event.timestamp is not None, "the service stamps every event"
    document: dict[str, Any] = {
        "session": incarnation,
        "seq": event.seq,
        "event_id": event.id,
        "timestamp_us": to_micros(event.timestamp),
        "data": event.model_dump_json(),
        "writer": writer,
    }
    if horizon_us is not None:
        document["expires_at"] = ttl_date(horizon_us)
    return document


def event_from_document(document: Mapping[str, Any]) -> Event:
    """Rebuild an event from its stored document."""
    return event_from_json(document["data"])
