"""The listing cursors: opaque, URL-safe tokens for the position after a page.

Each listing has a cursor of its own shape, and a cursor of one listing passed
to another is refused: one user's sessions ``[updated_at, session_id]``, every
user's sessions ``[updated_at, user_id, session_id]``, users ``{"user": id}``
and apps ``{"app": name}``, as JSON in unpadded URL-safe base64.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from sessionhub import _validate
from sessionhub.backend import ListCursor
from sessionhub.errors import InvalidInput
from sessionhub.models import Session

__all__ = [
    "encode_cursor",
    "decode_cursor",
    "encode_all_users_cursor",
    "decode_all_users_cursor",
    "encode_name_cursor",
    "decode_name_cursor",
]

_MAX_LENGTH = 1024  # a real one is under 700 characters

_SESSIONS = "list_sessions(user_id)"
_ALL_USERS = "list_sessions(None)"
_NAMES = {"user": "list_users", "app": "list_apps"}


def _token(value: Any) -> str:
    raw = json.dumps(value, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def encode_cursor(session: Session) -> str:
    """The cursor of the page of one user's sessions after ``session`` (the last of a page)."""
    return _token([session.updated_at.isoformat(), session.id])


def encode_all_users_cursor(session: Session) -> str:
    """The cursor of the page of every user's sessions after ``session``."""
    return _token([session.updated_at.isoformat(), session.user_id, session.id])


def encode_name_cursor(kind: str, name: str) -> str:
    """The cursor of the page of users (``kind="user"``) or apps (``"app"``) after ``name``."""
    return _token({kind: name})


def _problem(listing: str, rule: str | None = None) -> InvalidInput:
    return InvalidInput(
        "cursor",
        rule or f"is not a cursor returned by {listing} (pass page.next_cursor as it is)",
    )


def _payload(cursor: object, listing: str) -> Any:
    if not isinstance(cursor, str) or len(cursor) > _MAX_LENGTH:
        raise _problem(listing)
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError, binascii.Error, RecursionError) as exc:
        raise _problem(listing) from exc


def _listing_of(payload: Any) -> str | None:
    """Which listing made a decoded cursor, judged by its shape (``None``: none did)."""
    if isinstance(payload, list) and len(payload) in (2, 3):
        return _SESSIONS if len(payload) == 2 else _ALL_USERS
    if isinstance(payload, dict) and len(payload) == 1:
        return _NAMES.get(next(iter(payload)))
    return None


def _check_listing(payload: Any, listing: str) -> None:
    made_by = _listing_of(payload)
    if made_by is not None and made_by != listing:
        raise _problem(
            listing,
            f"is a cursor of {made_by}, not of {listing}: pass each page.next_cursor back "
            "to the listing that returned it",
        )


def _position(updated_at: object, *ids: tuple[object, str]) -> tuple[datetime, list[str]]:
    if not isinstance(updated_at, str):
        raise TypeError("updated_at is not a string")
    position = datetime.fromisoformat(updated_at)
    if position.tzinfo is None:  # every cursor a listing makes says +00:00
        raise ValueError(f"{updated_at!r} has no UTC offset")
    position = _validate.check_time(position, "cursor")
    return position, [_validate.check_identifier(value, "cursor") for value, _ in ids]


def decode_cursor(cursor: object) -> ListCursor:
    """The position a cursor made by :func:`encode_cursor` names; else ``InvalidInput``."""
    payload = _payload(cursor, _SESSIONS)
    _check_listing(payload, _SESSIONS)
    try:
        updated_at, session_id = payload
        position, (checked,) = _position(updated_at, (session_id, "session_id"))
        return ListCursor(position, checked)
    except (ValueError, TypeError, OverflowError) as exc:
        raise _problem(_SESSIONS) from exc  # InvalidInput is a ValueError too


def decode_all_users_cursor(cursor: object) -> ListCursor:
    """The position a cursor made by :func:`encode_all_users_cursor` names (``user_id`` set)."""
    payload = _payload(cursor, _ALL_USERS)
    _check_listing(payload, _ALL_USERS)
    try:
        updated_at, user_id, session_id = payload
        position, (user, session) = _position(
            updated_at, (user_id, "user_id"), (session_id, "session_id")
        )
        return ListCursor(position, session, user_id=user)
    except (ValueError, TypeError, OverflowError) as exc:
        raise _problem(_ALL_USERS) from exc


def decode_name_cursor(cursor: object, kind: str) -> str:
    """The name a cursor made by :func:`encode_name_cursor` with ``kind`` holds."""
    listing = _NAMES[kind]
    payload = _payload(cursor, listing)
    _check_listing(payload, listing)
    try:
        if not isinstance(payload, dict) or set(payload) != {kind}:
            raise TypeError("not a name cursor")
        return _validate.check_identifier(payload[kind], "cursor")
    except (ValueError, TypeError) as exc:
        raise _problem(listing) from exc
