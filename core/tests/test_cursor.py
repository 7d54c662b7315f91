"""The listing cursor: what list_sessions hands out decodes back; anything else is InvalidInput."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone

import pytest

from sessionhub import InvalidInput, Session
from sessionhub._cursor import decode_cursor, encode_cursor

MOMENT = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)


def _session(session_id: str) -> Session:
    return Session(
        id=session_id,
        app_name="a",
        user_id="u",
        root_id=session_id,
        created_at=MOMENT,
        updated_at=MOMENT,
    )


@pytest.mark.parametrize("session_id", ["s1", "ünï ☃/?&=", "x" * 256])
def test_a_cursor_decodes_to_the_position_it_was_made_from(session_id):
    cursor = encode_cursor(_session(session_id))
    assert cursor.isascii() and "=" not in cursor
    position = decode_cursor(cursor)
    assert (position.updated_at, position.session_id) == (MOMENT, session_id)


def _token(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor",
        "",
        5,
        None,
        "A" * 2000,
        _token(["2030-01-02T03:04:05", "s1"]),  # no UTC offset
        _token(["yesterday", "s1"]),
        _token(["2030-01-02T03:04:05+00:00", ""]),
        _token({"updated_at": "2030-01-02T03:04:05+00:00"}),
    ],
)
def test_anything_else_is_invalid_input_saying_what_to_pass(cursor):
    with pytest.raises(InvalidInput, match=r"pass page\.next_cursor as it is") as caught:
        decode_cursor(cursor)
    assert caught.value.field == "cursor"
