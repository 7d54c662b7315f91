"""What crosses the wire: deltas and sessions as function arguments, rows back into models.

A state or metadata object is stored as a ``jsonb`` object of strings: each key
and each value is the JSON text of the real one (``dump_json``). ``jsonb``
itself would turn ``1e100`` into a 101-digit integer and refuses the NUL escape;
strings holding JSON text keep every value exactly. A delta travels as the keys
it touches and a ``jsonb`` object of the values it sets (``None`` deletes).
"""

from __future__ import annotations

import json
import operator
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sessionhub import Event, Session, SessionKey, StoredSession
from sessionhub.backend_tools import dump_json, event_to_json, events_from_json, stored_session

__all__ = [
    "encode_object",
    "encode_delta",
    "decode_object",
    "event_columns",
    "session_columns",
    "decode_events",
    "session_from_row",
    "stored_from_rows",
]

_EMPTY = "{}"


def encode_object(values: Mapping[str, Any]) -> str:
    """The ``jsonb`` text of a whole state or metadata object."""
    if not values:
        return _EMPTY
    return dump_json({dump_json(key): dump_json(value) for key, value in values.items()})


def encode_delta(delta: Mapping[str, Any]) -> tuple[list[str], str]:
    """The keys a delta touches and the ``jsonb`` text of what it sets (``None`` deletes)."""
    if not delta:
        return [], _EMPTY
    keys = [dump_json(key) for key in delta]
    kept = {k: dump_json(v) for k, (_, v) in zip(keys, delta.items(), strict=True) if v is not None}
    return keys, dump_json(kept) if kept else _EMPTY


def decode_object(text: str | None) -> dict[str, Any]:
    """The object stored as ``text`` (``{}`` for ``None``: an absent or expired state)."""
    if text is None or text == _EMPTY:
        return {}
    stored: dict[str, str] = json.loads(text)
    # Keys and values are JSON texts: joined, they are the object's own text, parsed once
    # (a parse per key and per value costs twice as much for a few keys).
    decoded: dict[str, Any] = json.loads(
        "{" + ",".join([f"{key}:{value}" for key, value in stored.items()]) + "}"
    )
    return decoded


def event_columns(
    events: Sequence[Event], default_time: datetime
) -> tuple[list[str], list[datetime], list[str]]:
    """Ids, timestamps and JSON texts of ``events`` as parallel arrays (seq is a column)."""
    ids: list[str] = []
    times: list[datetime] = []
    texts: list[str] = []
    for event in events:
        ids.append(event.id)
        times.append(event.timestamp or default_time)
        texts.append(event_to_json(event))
    return ids, times, texts


def session_columns(session: Session, expires_at: datetime | None) -> tuple[Any, ...]:
    """A session's stored columns, as ``create_session`` and ``restore_session`` take them.

    App, user, id, parent, root, depth, created, updated, ``expires_at``, state, metadata.
    """
    return (
        session.app_name,
        session.user_id,
        session.id,
        session.parent_id,
        session.root_id,
        session.depth,
        session.created_at,
        session.updated_at,
        expires_at,
        encode_object(session.state),
        encode_object(session.metadata),
    )


def decode_events(seqs: Sequence[int] | None, texts: Sequence[str] | None) -> list[Event]:
    """Events from their seq column and stored JSON text (stored with the seq they had then)."""
    if not seqs or not texts:
        return []
    events = events_from_json(texts)
    for event, seq in zip(events, seqs, strict=True):
        event.__dict__["seq"] = seq  # a field of the model: what ``event.seq = seq`` sets, directly
    return events


def stored_from_rows(key: SessionKey, rows: Sequence[Any]) -> StoredSession:
    """The session, app and user state of the rows of ``Statements.read_session``.

    The statement sends the session's row first and the events newest first, as its
    plan runs; nothing in SQL promises that order, so rows found in another are put
    in it (the check costs a pass over the seqs).
    """
    head = rows[0]
    if head[13] is None:
        events = rows[1:]
    else:
        [head] = [row for row in rows if row[13] is None]
        events = [row for row in rows if row[13] is not None]
    seqs = [row[13] for row in reversed(events)]
    if any(map(operator.ge, seqs, seqs[1:])):
        events = sorted(events, key=_SEQ, reverse=True)
        seqs.sort()
    session = session_from_row(key, head, events=False)
    session.events = decode_events(seqs, [row[14] for row in reversed(events)])
    return StoredSession(session, decode_object(head[11]), decode_object(head[12]))


_SEQ = operator.itemgetter(13)


def session_from_row(key: SessionKey, row: Sequence[Any], *, events: bool = True) -> Session:
    """A session from a row of ``SESSION_COLUMNS`` (see ``_functions``)."""
    return stored_session(
        id=key.session_id,
        app_name=key.app_name,
        user_id=key.user_id,
        parent_id=row[1],
        root_id=row[2],
        depth=row[3],
        created_at=row[4],
        updated_at=row[5],
        expires_at=row[6],
        state=decode_object(row[7]),
        metadata=decode_object(row[8]),
        event_count=row[9],
        last_seq=row[10],
        events=decode_events(row[13], row[14]) if events else [],
    )
