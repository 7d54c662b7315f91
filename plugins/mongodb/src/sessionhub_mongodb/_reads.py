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
from sessionhub_mongodb._state import read_state, read_states
from sessionhub_mongodb._store import Store, live, update_of

__all__ = ["get_session", "list_sessions", "list_app_sessions", "list_users", "list_apps"]


async def get_session(
    store: Store, key: SessionKey, window: EventWindow, expiry: Expiry, *, refresh: bool
) -> StoredSession | None:
    """Read the session, then only the events of ``window``; app and user state alongside."""
    now_us = to_micros(expiry.now)
    if refresh:
        found, app_state, user_state = await asyncio.gather(
            _refreshed_session(store, key, window, expiry),
            read_state(store, StateKey.app(key.app_name), expiry, refresh=True),
            read_state(store, StateKey.user(key.app_name, key.user_id), expiry, refresh=True),
        )
    else:
        found, (app_state, user_state) = await asyncio.gather(
            _session(store, key, window, now_us), read_states(store, key, now_us)
        )
    if found is None:
        return None
    document, events = found
    return StoredSession(session_from_document(document, events), app_state, user_state)


_ALL = 2**31 - 1
"""``batch_size`` of a read of every event: one batch, as far as the server's 16 MiB allow."""

Found = tuple[dict[str, Any], list[Event]] | None


async def _refreshed_session(
    store: Store, key: SessionKey, window: EventWindow, expiry: Expiry
) -> Found:
    """The live session with its expiry slid, and its events."""
    sets: dict[str, Any] = {}
    unsets: dict[str, str] = {}
    expiry_fields(expiry.session, sets, unsets)
    document = await store.sessions.find_one_and_update(
        live(key, to_micros(expiry.now)),
        update_of(sets, unsets),
        return_document=ReturnDocument.AFTER,
    )
    if document is None:
        store.heads.remember(key, None)
        return None
    await extend_horizon(store, document, expiry)
    head = Head.of(document)
    events = _events(await _rows(store, head, window))
    store.heads.remember(key, head)
    return document, events


async def _session(store: Store, key: SessionKey, window: EventWindow, now_us: int) -> Found:
    """The live session and its events.

    When this process knows the session's head, the document is read by
    ``_id`` (a point lookup) and the events of the remembered head are read
    alongside; if the document shows only appends since, the new events are
    read after them, and anything else reads the window again.
    """
    known = store.heads.get(key)
    if known is None:
        return await _session_by_key(store, key, window, now_us)
    ahead = _speculates(store, key, window)
    early = asyncio.ensure_future(_rows(store, known, window)) if ahead else None
    try:
        document = await store.sessions.find_one({"_id": known.id})
        if not _is_live(document, key, now_us):
            document = None
        rows = None if early is None or document is None else await early
    finally:
        if early is not None and not early.done():
            early.cancel()
        elif early is not None and not early.cancelled():
            early.exception()  # retrieved: a failure of the document read is the one raised
    if document is None:
        return await _session_by_key(store, key, window, now_us)
    head = Head.of(document)
    if rows is not None:
        rows = await _grown(store, known, head, window, rows)
    if rows is None:
        rows = await _rows(store, head, window)
    store.heads.remember(key, head)
    return document, _events(rows)


async def _session_by_key(store: Store, key: SessionKey, window: EventWindow, now_us: int) -> Found:
    document = await store.sessions.find_one(live(key, now_us))
    if document is None:
        store.heads.remember(key, None)
        return None
    head = Head.of(document)
    events = _events(await _rows(store, head, window))
    store.heads.remember(key, head)
    return document, events


def _is_live(document: Mapping[str, Any] | None, key: SessionKey, now_us: int) -> bool:
    """Whether ``document`` is the live session of ``key`` (what ``live(key)`` matches)."""
    return (
        document is not None
        and document.get("app") == key.app_name
        and document.get("user") == key.user_id
        and document.get("sid") == key.session_id
        and document.get("expires_us", 0) > now_us
    )


def _speculates(store: Store, key: SessionKey, window: EventWindow) -> bool:
    """Whether the events of the remembered head are worth reading before the document.

    Only for a plain window (everything, or the newest ``last_n``), whose rows
    can be counted against the document's ``event_count``, where a read sees
    what this process saw written, and when no other writer is busy with it.
    """
    return (
        window.after_seq is None
        and window.after_time is None
        and window.last_n != 0
        and store.reads_follow_writes
        and not store.heads.contended(key)
    )


async def _grown(
    store: Store, known: Head, head: Head, window: EventWindow, rows: list[dict[str, Any]]
) -> list[dict[str, Any]] | None:
    """The window's rows under ``head`` from those read under ``known``; None: read again.

    They carry over when ``head`` only appended to ``known``: the seqs after
    ``known.last_seq`` are read and joined. The count must then be the
    window's exactly, or something moved under the read.
    """
    if not head.grown_from(known):
        return None
    if head.last_seq > known.last_seq:
        newer = EventWindow(after_seq=known.last_seq, last_n=window.last_n)
        rows = rows + await _rows(store, head, newer)
    if window.last_n is not None:
        rows = rows[-window.last_n :]
    expected = head.event_count if window.last_n is None else min(window.last_n, head.event_count)
    return rows if len(rows) == expected else None


def _events(rows: list[dict[str, Any]]) -> list[Event]:
    return events_from_json([row["data"] for row in rows])


async def _rows(store: Store, head: Head, window: EventWindow) -> list[dict[str, Any]]:
    """The window's visible event documents (``data`` and ``seq``) under ``head``, oldest first."""
    if window.last_n == 0:
        return []
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
        everything = window.after_seq is None and window.after_time is None
        if everything:
            # The whole history: the range is checked here instead. Beyond it lie
            # only leftovers (unpublished or trimmed events not yet deleted), and
            # a one-field filter is cheaper to plan and match on some servers.
            del query["seq"]
        cursor = store.events.find(query, projection).sort("seq", 1).batch_size(_ALL)
        rows = await cursor.to_list(None)
        if everything:
            low, high = seqs["$gt"], seqs["$lte"]
            rows = [row for row in rows if low < row["seq"] <= high]
        return head.shown(rows)
    extra = 0 if head.popped is None else 1
    cursor = store.events.find(query, projection).sort("seq", -1)
    rows = head.shown(await cursor.limit(window.last_n + extra).to_list(None))
    rows = rows[: window.last_n]
    rows.reverse()
    return rows


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
