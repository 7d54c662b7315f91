"""Telling a retry from a reused id before an append writes: the stored events a batch names.

A batch mixing new ids with stored ones gets the stored events' JSON back from
the append script, which writes nothing; these compare them with the requested
events (``check_retry``) and name the verified ``(id, seq)`` pairs for the next call.
"""

from __future__ import annotations

from typing import Any

from sessionhub import ConflictError, Event, SessionKey
from sessionhub.backend_tools import check_retry, event_from_json
from sessionhub_redis._replies import Unverified

__all__ = ["VERIFY_ROUNDS", "stored_event", "verified"]

VERIFY_ROUNDS = 5
"""How often an append re-compares stored events before giving up: each round means another
writer popped, replaced or trimmed the batch's stored events in between."""


def stored_event(key: SessionKey, event_id: str, seq: int, text: bytes) -> Event:
    """The event stored under ``event_id``, from the JSON the script returned for it."""
    if not text:
        raise ConflictError(
            f"Event {event_id!r} is recorded in session {key.session_id!r} with seq "
            f"{seq}, but its record is missing (the session's keys were changed "
            "outside sessionhub)."
        )
    return event_from_json(text)


def verified(key: SessionKey, events: list[Event], reply: Unverified) -> list[Any]:
    """``[id, seq, ...]`` of the stored events equal to the requested ones.

    ``ConflictError`` (nothing written) when one is stored with other content.
    """
    pairs: list[Any] = []
    for event, seq, text in zip(events, reply.seqs, reply.stored, strict=True):
        if seq is not None and text is not None:
            check_retry(event, stored_event(key, event.id, seq, text))
            pairs += [event.id, seq]
    return pairs
