"""What every append path shares: the plan, the update publishing it, the event documents.

The plan says which events are new and their seqs. Readers see exactly the
seqs in ``(last_seq - event_count, last_seq]`` of the session document. Event
documents are written first, above ``last_seq`` and so invisible; one update
of the session document (``publish_fields``) then makes them visible, all at
once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sessionhub import AppendRequest, AppendResult, Event
from sessionhub.backend_tools import to_micros
from sessionhub_mongodb._documents import event_document, event_from_document, map_delta
from sessionhub_mongodb._expiry import expiry_fields
from sessionhub_mongodb._heads import Head
from sessionhub_mongodb._store import Store

__all__ = [
    "Plan",
    "plan",
    "publish_fields",
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
    """Number the request's events after ``head``; ids in ``stored`` are returned as stored."""
    worked = Plan(events=[], new=[], last_seq=head.last_seq)
    for event, delta in zip(request.events, request.deltas, strict=True):
        known = stored.get(event.id)
        if known is not None:
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


def publish_fields(
    request: AppendRequest, head: Head, worked: Plan, horizon: int | None
) -> tuple[dict[str, Any], dict[str, str], int]:
    """The session update that makes ``worked`` visible; returns sets, unsets, event_count."""
    event_count = head.event_count + len(worked.new)
    if request.event_limit is not None:
        event_count = min(event_count, request.event_limit)
    sets: dict[str, Any] = {
        "last_seq": worked.last_seq,
        "event_count": event_count,
        "updated_us": to_micros(request.expiry.now),
        "horizon_us": horizon,
    }
    unsets: dict[str, str] = {}
    expiry_fields(request.expiry.session, sets, unsets)
    map_delta("state", worked.session_delta, sets, unsets)
    return sets, unsets, event_count


def result(request: AppendRequest, worked: Plan, event_count: int) -> AppendResult:
    """What the append returns once ``worked`` is published."""
    return AppendResult(
        events=worked.events,
        last_seq=worked.last_seq,
        event_count=event_count,
        updated_at=request.expiry.now,
        expires_at=request.expiry.session,
    )


async def trim(
    store: Store, incarnation: str, request: AppendRequest, last_seq: int, session: Any
) -> None:
    """Delete the events the event limit has moved out of the visible range."""
    limit = request.event_limit
    if limit is not None and last_seq > limit:
        await store.events.delete_many(
            {"session": incarnation, "seq": {"$lte": last_seq - limit}}, session=session
        )


async def stored_events(
    store: Store, head: Head, request: AppendRequest, session: Any
) -> dict[str, Event]:
    """The visible events whose ids the request carries (a retried append), by id."""
    rows = await store.events.find(
        {
            "session": head.incarnation,
            "event_id": {"$in": [event.id for event in request.events]},
            "seq": {"$gt": head.last_seq - head.event_count, "$lte": head.last_seq},
        },
        {"data": 1, "_id": 0},
        session=session,
    ).to_list(None)
    events = [event_from_document(row) for row in rows]
    return {event.id: event for event in events}


async def clear_unpublished(store: Store, head: Head, session: Any) -> None:
    """Delete events outside the visible range: leftovers of failed or crashed writers."""
    await store.events.delete_many(
        {"session": head.incarnation, "seq": {"$gt": head.last_seq}}, session=session
    )
    trimmed = head.last_seq - head.event_count
    if trimmed > 0:
        await store.events.delete_many(
            {"session": head.incarnation, "seq": {"$lte": trimmed}}, session=session
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
    """Delete the unpublished events this write (``token``) inserted."""
    if worked.new:
        await store.events.delete_many(
            {
                "session": head.incarnation,
                "seq": {"$gt": head.last_seq, "$lte": worked.last_seq},
                "writer": token,
            }
        )
