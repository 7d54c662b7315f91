"""Each Lua script's reply as named fields: one decoder per script.

No caller reads a reply by index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sessionhub_redis._codec import text

__all__ = [
    "AppPageReply",
    "AppendReply",
    "CreateReply",
    "GetReply",
    "ListReply",
    "MovedOn",
    "PopReply",
    "ReplaceReply",
    "Unverified",
    "UpdateReply",
    "decode_app_page",
    "decode_append",
    "decode_create",
    "decode_get",
    "decode_list",
    "decode_pop",
    "decode_replace",
    "decode_update",
    "newest_events",
]


@dataclass(frozen=True, slots=True)
class AppendReply:
    """APPEND's reply.

    ``stored``, per event: None if stored now, the JSON stored earlier for an id
    already there, or b'' if the id is recorded but its event is not.
    """

    last_seq: int
    event_count: int
    app_stamp: int | None
    seqs: list[int]
    stored: list[bytes | None]


@dataclass(frozen=True, slots=True)
class MovedOn:
    """The reply of a compare and set (APPEND, REPLACE) whose session moved on: nothing written."""

    last_seq: int
    """The session's ``last_seq``, which was not the one expected."""


@dataclass(frozen=True, slots=True)
class Unverified:
    """APPEND's reply to a batch mixing new ids with stored ones: nothing written.

    The caller compares each stored event with its own, then calls again naming the
    matching ones in ``verified`` (or raises ``ConflictError`` for one that differs).
    """

    seqs: list[int | None]
    """Per event: the seq its id is stored under, None if not stored."""
    stored: list[bytes | None]
    """Per event: the stored JSON (b'' if the id is recorded but its event is not), or None."""


def decode_append(reply: list[Any]) -> AppendReply | MovedOn | Unverified | None:
    """APPEND's reply, :class:`MovedOn`, :class:`Unverified`, or None if the session is gone."""
    if reply[0] == 0:
        return None
    if reply[0] == 2:
        return MovedOn(reply[1])
    if reply[0] == 3:
        return Unverified(seqs=reply[1::2], stored=reply[2::2])
    stamp = reply[3]
    return AppendReply(
        last_seq=reply[1],
        event_count=reply[2],
        app_stamp=int(stamp) if stamp else None,
        seqs=reply[4::2],
        stored=reply[5::2],
    )


@dataclass(frozen=True, slots=True)
class CreateReply:
    """CREATE's reply: ``status`` 0 (the id is taken), 1 (created), 2 (this create ran before)."""

    status: int
    user_state: list[Any]
    app_state: list[Any]


def decode_create(reply: Sequence[Any]) -> CreateReply:
    """CREATE's reply."""
    if reply[0] == 0:
        return CreateReply(status=0, user_state=[], app_state=[])
    return CreateReply(status=reply[0], user_state=reply[1], app_state=reply[2])


@dataclass(frozen=True, slots=True)
class GetReply:
    """GET's reply; ``windowed`` False: the caller must still apply after_time and last_n."""

    session: list[Any]
    events: list[bytes]
    user_state: list[Any]
    app_state: list[Any]
    windowed: bool


def decode_get(reply: Sequence[Any]) -> GetReply | None:
    """GET's reply, or None if the session is absent or expired."""
    if reply[0] == 0:
        return None
    return GetReply(
        session=reply[1],
        events=reply[2],
        user_state=reply[3],
        app_state=reply[4],
        windowed=bool(reply[5]),
    )


def newest_events(
    listed: list[Any], event_count: int, last_seq: int, last_n: int | None
) -> list[Any]:
    """The events GET gives for every event or the newest ``last_n``, from a read beside it.

    ``listed`` holds the newest entries of the events list, read in the same
    transaction as GET (all of it, or ``last_n``); ``event_count`` and ``last_seq``
    are the session's. As the script picks them: ``min(event_count, last_seq)`` of
    the newest (the two agree on every session this backend wrote), at most ``last_n``.
    """
    tail = min(event_count, max(0, last_seq))
    if last_n is not None:
        tail = min(tail, last_n)
    return listed[-tail:] if tail > 0 else []


@dataclass(frozen=True, slots=True)
class UpdateReply:
    """UPDATE's reply."""

    session: list[Any]
    user_state: list[Any]
    app_state: list[Any]
    app_stamp: int | None


def decode_update(reply: Sequence[Any]) -> UpdateReply | None:
    """UPDATE's reply, or None if the session is absent or expired."""
    if reply[0] == 0:
        return None
    stamp = reply[4]
    return UpdateReply(
        session=reply[1],
        user_state=reply[2],
        app_state=reply[3],
        app_stamp=int(stamp) if stamp else None,
    )


@dataclass(frozen=True, slots=True)
class ListReply:
    """LIST's reply: the sessions found, and where to go on if the budget ran out first."""

    sessions: list[list[Any]]
    next_updated: str | None
    """None: the page is full or the index ends; else the ``after_updated`` to call again with."""
    next_id: str


def decode_list(reply: Sequence[Any]) -> ListReply:
    """LIST's reply."""
    sessions, updated, after = reply
    if updated in (b"", ""):
        return ListReply(sessions=sessions, next_updated=None, next_id="")
    return ListReply(sessions=sessions, next_updated=text(updated), next_id=text(after))


@dataclass(frozen=True, slots=True)
class PopReply:
    """POP's reply."""

    event: bytes | None
    """The removed event's stored JSON; None if the session held no events."""


def decode_pop(reply: Sequence[Any]) -> PopReply | None:
    """POP's reply, or None if the session is absent or expired."""
    if reply[0] == 0:
        return None
    return PopReply(event=reply[1] if len(reply) > 1 else None)


@dataclass(frozen=True, slots=True)
class ReplaceReply:
    """REPLACE's reply."""

    last_seq: int
    event_count: int


def decode_replace(reply: Sequence[Any]) -> ReplaceReply | MovedOn | None:
    """REPLACE's reply, :class:`MovedOn`, or None if the session is absent or expired."""
    if reply[0] == 0:
        return None
    if reply[0] == 2:
        return MovedOn(reply[1])
    return ReplaceReply(last_seq=reply[1], event_count=reply[2])


@dataclass(frozen=True, slots=True)
class AppPageReply:
    """APP_PAGE's reply: ``(member, score)`` entries after the position, and the oldest ones."""

    entries: list[tuple[str, int]]
    oldest: list[tuple[str, int]]


def _entries(flat: Sequence[Any]) -> list[tuple[str, int]]:
    return [(text(flat[j]), int(float(text(flat[j + 1])))) for j in range(0, len(flat), 2)]


def decode_app_page(reply: Sequence[Any]) -> AppPageReply:
    """APP_PAGE's reply."""
    entries, oldest = reply
    return AppPageReply(entries=_entries(entries), oldest=_entries(oldest))
