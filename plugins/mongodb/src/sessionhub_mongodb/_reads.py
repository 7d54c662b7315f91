"""Reads: a session with a window of its events, pages of sessions, users and apps.

A reader sees exactly the events in ``(floor, last_seq]`` of the session
document but ``popped`` (``Head.visible``), whatever else the events
collection holds (a writer's unpublished events, a dead writer's leftovers,
trimmed or popped events not yet deleted). Seqs may have gaps where events
were popped. ``last_n`` reads one range of the ``session_seq`` index, of
``last_n`` entries plus the gaps; a list page is one keyset range of
``by_updated`` (``by_app_updated`` for every user's sessions of an app); users
and apps are walked one distinct value at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument

from sessionhub import (
    Event,
    EventWindow,
    Expiry,
    ListCursor,
    Session,
    SessionKey,
    StateKey,
    StoredSession,
)
from sessionhub.backend_tools import events_from_json, to_micros
from sessionhub_mongodb._documents import session_from_document
from sessionhub_mongodb._expiry import expiry_fields, extend_horizon
from sessionhub_mongodb._heads import Head
from sessionhub_mongodb._state import read_state
from sessionhub_mongodb._store import Store, live, update_of

__all__ = ["get_session", "list_sessions", "list_app_sessions", "list_users", "list_apps"]


async def get_session(
    store: Store, key: SessionKey, window: EventWindow, expiry: Expiry, *, refresh: bool
) -> StoredSession | None:
    """Read the session, then only the events of ``window``; app and user state alongside."""
    now_us = to_micros(expiry.now)

    async def session_part() -> tuple[dict[str, Any], list[Event]] | None:
        if refresh:
            sets: dict[str, Any] = {}
            unsets: dict[str, str] = {}
            expiry_fields(expiry.session, sets, unsets)
            document = await store.sessions.find_one_and_update(
                live(key, now_us), update_of(sets, unsets), return_document=ReturnDocument.AFTER
            )
            if document is not None:
                await extend_horizon(store, document, expiry)
        else:
            document = await store.sessions.find_one(live(key, now_us))
        if document is None:
            store.heads.remember(key, None)
            return None
        events = await _read_events(store, document, window)
        store.heads.remember(key, Head.of(document))
        return document, events

    found, app_state, user_state = await asyncio.gather(
        session_part(),
        read_state(store, StateKey.app(key.app_name), expiry, refresh=refresh),
        read_state(store, StateKey.user(key.app_name, key.user_id), expiry, refresh=refresh),
    )
    if found is None:
        return None
    document, events = found
    return StoredSession(session_from_document(document, events), app_state, user_state)


async def _read_events(
    store: Store, document: Mapping[str, Any], window: EventWindow
) -> list[Event]:
    if window.last_n == 0:
        return []
    head = Head.of(document)
    seqs = head.visible(window.last_n if window.after_time is None else None)
    if window.after_seq is not None:
        seqs["$gt"] = max(seqs["$gt"], window.after_seq)
    if seqs["$gt"] >= head.last_seq:
        return []
    query: dict[str, Any] = {"session": head.incarnation, "seq": seqs}
    if window.after_time is not None:
        query["timestamp_us"] = {"$gt": to_micros(window.after_time)}
    projection = {"data": 1, "seq": 1, "_id": 0}
    if window.last_n is None:
        rows = await store.events.find(query, projection).sort("seq", 1).to_list(None)
        rows = head.shown(rows)
    else:
        extra = 0 if head.popped is None else 1
        cursor = store.events.find(query, projection).sort("seq", -1)
        rows = head.shown(await cursor.limit(window.last_n + extra).to_list(None))
        rows = rows[: window.last_n]
        rows.reverse()
    return events_from_json([row["data"] for row in rows])


_HEADER = dict.fromkeys(
    (
        "sid", "app", "user", "parent", "root", "depth", "created_us", "updated_us",
        "expires_us", "state", "metadata", "event_count", "last_seq",
    ),
    1,
) | {"_id": 0}  # fmt: skip
"""The projection of a list page: what ``session_from_document`` reads, nothing more."""


async def list_sessions(
    store: Store,
    app_name: str,
    user_id: str,
    *,
    limit: int,
    after: ListCursor | None,
    parent_id: str | None,
    now: datetime,
) -> list[Session]:
    """One keyset page of the user's live sessions, ``(updated_at, id)`` descending."""
    query: dict[str, Any] = {
        "app": app_name,
        "user": user_id,
        "expires_us": {"$gt": to_micros(now)},
    }
    if parent_id is not None:
        query["parent"] = parent_id
    if after is not None:
        # A range on updated_us keeps the index bounds tight; $nor drops the
        # rows of the cursor's own instant that were already returned.
        updated = to_micros(after.updated_at)
        query["updated_us"] = {"$lte": updated}
        query["$nor"] = [{"updated_us": updated, "sid": {"$gte": after.session_id}}]
    cursor = store.sessions.find(query, _HEADER).sort([("updated_us", -1), ("sid", -1)])
    cursor = cursor.hint("by_updated" if parent_id is None else "children_by_updated")
    rows = await cursor.limit(limit).batch_size(limit).to_list(None)  # one batch: one round trip
    return [session_from_document(row) for row in rows]


async def list_app_sessions(
    store: Store, app_name: str, *, limit: int, after: ListCursor | None, now: datetime
) -> list[Session]:
    """One keyset page of every user's live sessions, ``(updated_at, user, id)`` descending."""
    query: dict[str, Any] = {"app": app_name, "expires_us": {"$gt": to_micros(now)}}
    if after is not None:
        updated, user = to_micros(after.updated_at), after.user_id or ""
        query["updated_us"] = {"$lte": updated}
        query["$nor"] = [
            {"updated_us": updated, "user": {"$gt": user}},
            {"updated_us": updated, "user": user, "sid": {"$gte": after.session_id}},
        ]
    cursor = store.sessions.find(query, _HEADER)
    cursor = cursor.sort([("updated_us", -1), ("user", -1), ("sid", -1)]).hint("by_app_updated")
    rows = await cursor.limit(limit).batch_size(limit).to_list(None)
    return [session_from_document(row) for row in rows]


async def list_apps(store: Store, *, limit: int, after: str | None) -> list[str]:
    """Apps with sessions or state, ascending, strictly after ``after``.

    Walks the indexes led by ``app`` one distinct app at a time: a page costs
    about ``2 * limit`` index seeks however many records each app holds.
    """
    return await _distinct_values(store, "app", {}, limit=limit, after=after)


async def list_users(store: Store, app_name: str, *, limit: int, after: str | None) -> list[str]:
    """Users of the app with sessions or user state, ascending, strictly after ``after``.

    Walks the ``(app, user, ...)`` indexes one distinct user at a time, so a
    page costs about ``2 * limit`` index seeks however many sessions each
    user has.
    """
    return await _distinct_values(store, "user", {"app": app_name}, limit=limit, after=after)


async def _distinct_values(
    store: Store, field: str, prefix: dict[str, Any], *, limit: int, after: str | None
) -> list[str]:
    """Up to ``limit`` distinct ``field`` values of sessions and states, ascending."""
    values: list[str] = []
    floor = after
    while len(values) < limit:
        found = await asyncio.gather(
            _next_value(store.sessions, field, prefix, floor, "session_key"),
            _next_value(store.state, field, prefix, floor, "by_user"),
        )
        candidates = [value for value in found if value is not None]
        if not candidates:
            break
        floor = min(candidates)
        values.append(floor)
    return values


async def _next_value(
    collection: Any, field: str, prefix: dict[str, Any], after: str | None, index: str
) -> str | None:
    """The least string ``field`` after ``after`` among documents matching ``prefix``.

    ``prefix`` fixes the fields the index has before ``field``; one index seek.
    """
    query: dict[str, Any] = {**prefix, field: {"$type": "string"}}
    if after is not None:
        query[field] = {"$gt": after}
    order = [(name, 1) for name in (*prefix, field)]
    rows = (
        await collection.find(query, {field: 1, "_id": 0})
        .sort(order)
        .hint(index)
        .limit(1)
        .to_list(None)
    )
    return rows[0][field] if rows else None
