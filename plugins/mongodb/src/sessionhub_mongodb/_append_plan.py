"""What every append path shares: the plan, the update publishing it, the event documents.

The plan says which events are new and their seqs. Readers see exactly the
event documents with a seq in ``(floor, last_seq]`` of the session document,
except ``popped`` (``Head.visible``). ``floor`` is stored once pops left gaps
in the seqs; until then it is ``last_seq - event_count``. Event documents are
written first, above ``last_seq`` and so invisible; one update of the session
document (``publish_fields``) then makes them visible, all at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sessionhub import AppendRequest, AppendResult, ConflictError, Event, SessionKey
from sessionhub.backend_tools import check_retry, to_micros
from sessionhub_mongodb._documents import event_document, event_from_document, map_delta
from sessionhub_mongodb._expiry import expiry_fields
from sessionhub_mongodb._heads import Head
from sessionhub_mongodb._outside import delete_events, delete_seqs
from sessionhub_mongodb._store import Store

__all__ = [
    "Plan",
    "plan",
    "check_expected",
    "moved_on",
    "trimmed_floor",
    "publish_fields",
    "advanced",
    "result",
    "trim",
    "stored_events",
    "clear_unpublished",
    "insert_events",
    "delete_own",
]


@dataclass
class Plan:
    """An append worked out against a head: which events are new, with which seqs."""

    events: list[Event]
    new: list[Event]
    last_seq: int
    session_delta: dict[str, Any] = field(default_factory=dict)
    app_delta: dict[str, Any] = field(default_factory=dict)
    user_delta: dict[str, Any] = field(default_factory=dict)


def plan(request: AppendRequest, head: Head, stored: Mapping[str, Event]) -> Plan:
    """Number the request's events after ``head``; ids in ``stored`` are returned as stored.

    An id stored with other content raises ``ConflictError`` here, before anything
    of the batch is written.
    """
    worked = Plan(events=[], new=[], last_seq=head.last_seq)
    for event, delta in zip(request.events, request.deltas, strict=True):
        known = stored.get(event.id)
        if known is not None:
            check_retry(event, known)
            worked.events.append(known)
            continue
        worked.last_seq += 1
        saved = event.model_copy(update={"seq": worked.last_seq})
        worked.new.append(saved)
        worked.events.append(saved)
        worked.session_delta.update(delta.session)
        worked.app_delta.update(delta.app)
        worked.user_delta.update(delta.user)
    return worked


def moved_on(key: SessionKey, expected: int, last_seq: int) -> str:
    """The message of a compare-and-set that found the session moved on."""
    return (
        f"session {key.session_id!r} of user {key.user_id!r} moved on: expected last_seq "
        f"{expected}, it is {last_seq}. Re-read it and retry."
    )


def check_expected(request: AppendRequest, head: Head, stored: Mapping[str, Event]) -> None:
    """Compare and set: raise ``ConflictError`` if the session moved on (not for a retry).

    ``head`` must be fresh from the server; ``stored`` the visible events among the
    request's ids (a retry of events all stored already is not a conflict).
    """
    expected = request.expected_last_seq
    if expected is None or expected == head.last_seq:
        return
    if any(event.id not in stored for event in request.events):
        raise ConflictError(moved_on(request.key, expected, head.last_seq))


async def trimmed_floor(
    store: Store, head: Head, added: int, limit: int | None, session: Any
) -> int:
    """The floor once ``added`` events join ``head`` and the oldest beyond ``limit`` go.

    Where pops left gaps, the oldest kept event is looked up (one index entry per
    dropped event); otherwise the floor follows from the counts.
    """
    if limit is None or head.event_count + added <= limit:
        return head.floor
    drop = head.event_count + added - limit
    if head.contiguous or drop >= head.event_count:
        return head.last_seq + added - limit
    rows = (
        await store.events.find(
            {"session": head.incarnation, "seq": head.visible()}, {"seq": 1, "_id": 0}
        )
        .sort("seq", 1)
        .limit(drop + 1)
        .to_list(None)
    )
    rows = head.shown(rows)
    return int(rows[drop - 1]["seq"]) if len(rows) >= drop else head.last_seq


def publish_fields(
    request: AppendRequest, head: Head, worked: Plan, horizon: int | None, floor: int
) -> tuple[dict[str, Any], dict[str, str], int]:
    """The session update that makes ``worked`` visible; returns sets, unsets, event_count.

    ``floor`` comes from ``trimmed_floor``; it is written only when it moves.
    """
    event_count = head.event_count + len(worked.new)
    if request.event_limit is not None:
        event_count = min(event_count, request.event_limit)
    sets: dict[str, Any] = {
        "last_seq": worked.last_seq,
        "event_count": event_count,
        "updated_us": to_micros(request.expiry.now),
        "horizon_us": horizon,
    }
    if floor != head.floor:
        sets["floor"] = floor
    unsets: dict[str, str] = {}
    expiry_fields(request.expiry.session, sets, unsets)
    map_delta("state", worked.session_delta, sets, unsets)
    return sets, unsets, event_count


def advanced(head: Head, worked: Plan, event_count: int, floor: int, horizon: int | None) -> Head:
    """``head`` once ``worked`` is published."""
    return replace(
        head,
        last_seq=worked.last_seq,
        event_count=event_count,
        floor=floor,
        horizon_us=horizon,
    )


def result(request: AppendRequest, worked: Plan, event_count: int) -> AppendResult:
    """What the append returns once ``worked`` is published."""
    return AppendResult(
        events=worked.events,
        last_seq=worked.last_seq,
        event_count=event_count,
        updated_at=request.expiry.now,
        expires_at=request.expiry.session,
    )


async def trim(store: Store, head: Head, request: AppendRequest, floor: int, session: Any) -> None:
    """Delete the events the event limit has moved out of the visible range (to ``floor``).

    Outside a transaction, where transactions exist, only the seqs the floor
    passed over go, one statement each (see ``_outside``); leftovers below
    ``head.floor`` wait for the next ``clear_unpublished``.
    """
    if request.event_limit is None or floor <= 0:
        return
    if session is None and store.transactions:
        if floor > head.floor:
            await delete_events(store, head.incarnation, {"$gt": head.floor, "$lte": floor})
        return
    await store.events.delete_many(
        {"session": head.incarnation, "seq": {"$lte": floor}}, session=session
    )


async def stored_events(
    store: Store, head: Head, request: AppendRequest, session: Any
) -> dict[str, Event]:
    """The visible events whose ids the request carries (a retried append), by id."""
    rows = await store.events.find(
        {
            "session": head.incarnation,
            "event_id": {"$in": [event.id for event in request.events]},
            "seq": head.visible(),
        },
        {"data": 1, "seq": 1, "_id": 0},
        session=session,
    ).to_list(None)
    events = [event_from_document(row) for row in head.shown(rows)]
    return {event.id: event for event in events}


async def clear_unpublished(store: Store, head: Head, session: Any) -> None:
    """Delete events outside the visible range: leftovers of failed or crashed writers."""
    if session is None:  # one statement per document where transactions exist (``_outside``)
        await delete_events(store, head.incarnation, {"$gt": head.last_seq})
        if head.floor > 0:
            await delete_events(store, head.incarnation, {"$lte": head.floor})
        if head.popped is not None:
            await delete_seqs(store, head.incarnation, [head.popped])
        return
    await store.events.delete_many(
        {"session": head.incarnation, "seq": {"$gt": head.last_seq}}, session=session
    )
    if head.floor > 0:
        await store.events.delete_many(
            {"session": head.incarnation, "seq": {"$lte": head.floor}}, session=session
        )
    if head.popped is not None:
        await store.events.delete_one(
            {"session": head.incarnation, "seq": head.popped}, session=session
        )


async def insert_events(
    store: Store, head: Head, worked: Plan, token: str, horizon: int | None, session: Any
) -> None:
    """Insert the plan's new events (invisible until published), marked with ``token``."""
    if worked.new:
        await store.events.insert_many(
            [event_document(head.incarnation, event, token, horizon) for event in worked.new],
            ordered=True,
            session=session,
        )


async def delete_own(store: Store, head: Head, worked: Plan, token: str) -> None:
    """Delete the unpublished events this write (``token``) inserted, one statement each.

    A retrying transaction may be deleting them too (``clear_unpublished``):
    see ``_outside`` for why this is not one ``deleteMany``.
    """
    await delete_seqs(
        store, head.incarnation, [event.seq for event in worked.new], {"writer": token}
    )
