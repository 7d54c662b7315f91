"""The listing cursor: an opaque, URL-safe token for the position after a page."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

from sessionhub import _validate
from sessionhub.backend import ListCursor
from sessionhub.errors import InvalidInput
from sessionhub.models import Session

__all__ = ["encode_cursor", "decode_cursor"]

_MAX_LENGTH = 1024  # a real one is under 400 characters


def encode_cursor(session: Session) -> str:
    """The cursor of the page after ``session`` (the last of a page)."""
    raw = json.dumps([session.updated_at.isoformat(), session.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: object) -> ListCursor:
    """The position a cursor made by :func:`encode_cursor` names; else ``InvalidInput``."""
    problem = InvalidInput(
        "cursor", "is not a cursor returned by list_sessions (pass page.next_cursor as it is)"
    )
    if not isinstance(cursor, str) or len(cursor) > _MAX_LENGTH:
        raise problem
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        updated_at, session_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        position = datetime.fromisoformat(updated_at)
        if position.tzinfo is None:  # every cursor list_sessions makes says +00:00
            raise ValueError(f"{updated_at!r} has no UTC offset")
        position = _validate.check_time(position, "cursor")
        return ListCursor(position, _validate.check_identifier(session_id, "cursor"))
    except (ValueError, TypeError, binascii.Error, RecursionError, OverflowError) as exc:
        raise problem from exc  # InvalidInput is a ValueError too
