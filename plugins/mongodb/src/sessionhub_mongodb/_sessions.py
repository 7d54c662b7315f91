"""Writes to whole sessions: create, update without an event, delete, restore, purge.

Each runs under the session's in-process lock. ``app:`` / ``user:`` deltas
go into the same transaction as the session write where the deployment has
transactions, and are applied right after it elsewhere.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import PyMongoError

from sessionhub import (
    ConflictError,
    Event,
    Expiry,
    Session,
    SessionExists,
    SessionKey,
    SessionNotFound,
    StateDeltas,
    StoredSession,
)
from sessionhub.backend_tools import check_restorable, to_micros
from sessionhub_mongodb import _driver
from sessionhub_mongodb._documents import (
    NEVER,
    event_document,
    map_delta,
    session_document,
    session_from_document,
    ttl_date,
)
from sessionhub_mongodb._expiry import expiry_fields, extend_horizon, horizon
from sessionhub_mongodb._heads import Head
from sessionhub_mongodb._outside import delete_events
from sessionhub_mongodb._state import States, apply_scopes, fill_states
from sessionhub_mongodb._store import WRITE_RETRIES, Store, key_filter, live, update_of
from sessionhub_mongodb._transaction import run_transaction

__all__ = [
    "create_session",
    "update_session",
    "delete_session",
    "restore_session",
    "purge_expired",
]

_BATCH = 1000

_Updated = tuple[dict[str, Any] | None, dict[str, Any] | None, dict[str, Any] | None]
"""The session document after an update (None: not found), and the app and user states."""


async def create_session(
    store: Store, session: Session, deltas: StateDeltas, expiry: Expiry
) -> StoredSession:
    """Insert the session (replacing an expired one) and apply its app/user deltas."""
    key = SessionKey(session.app_name, session.user_id, session.id)
    now_us = to_micros(expiry.now)
    expires_us = NEVER if expiry.session is None else to_micros(expiry.session)
    date, _ = horizon(None, expiry)
    wider = bool(deltas.app or deltas.user)
    async with store.locks.hold(key):
        for _ in range(WRITE_RETRIES):
            document = session_document(session, uuid.uuid4().hex, expires_us, date)
            try:
                states = await _insert_session(store, document, key, deltas, expiry, wider)
            except PyMongoError as exc:
                if not _driver.is_duplicate_key(exc):
                    raise
                if await _clear_expired(store, key, now_us):
                    continue
                raise SessionExists(key.app_name, key.user_id, key.session_id) from None
            store.heads.remember(key, Head.of(document))
            app_state, user_state = await fill_states(store, key, expiry, *states)
            stored = session.model_copy(update={"events": [], "last_seq": 0, "event_count": 0})
            return StoredSession(stored, app_state, user_state)
    raise ConflictError(
        f"Session {key.session_id!r} was created and expired repeatedly while being "
        "created again; retry."
    )


async def _insert_session(
    store: Store,
    document: dict[str, Any],
    key: SessionKey,
    deltas: StateDeltas,
    expiry: Expiry,
    wider: bool,
) -> States:
    async def body(session: Any) -> States:
        await store.sessions.insert_one(document, session=session)
        return await apply_scopes(store, key, deltas.app, deltas.user, expiry, session)

    if store.transactions and wider:
        return await run_transaction(store, body)
    return await body(None)


async def _clear_expired(store: Store, key: SessionKey, now_us: int) -> bool:
    """Remove an expired (or half-deleted) session holding ``key``; False if it is live."""
    old = await store.sessions.find_one(
        key_filter(key), {"_id": 1, "incarnation": 1, "expires_us": 1}
    )
    if old is None:
        return True
    if old["expires_us"] > now_us:
        return False
    await store.events.delete_many({"session": old["incarnation"]})
    await store.sessions.delete_one({"_id": old["_id"], "expires_us": {"$lte": now_us}})
    store.heads.remember(key, None)
    return True


async def update_session(
    store: Store,
    key: SessionKey,
    deltas: StateDeltas,
    metadata: Mapping[str, Any],
    expiry: Expiry,
) -> StoredSession:
    """Apply state and metadata deltas to a live session without an event."""
    now_us = to_micros(expiry.now)
    sets: dict[str, Any] = {"updated_us": now_us}
    unsets: dict[str, str] = {}
    expiry_fields(expiry.session, sets, unsets)
    map_delta("state", deltas.session, sets, unsets)
    map_delta("metadata", metadata, sets, unsets)
    update = update_of(sets, unsets)

    async def body(session: Any) -> _Updated:
        document = await store.sessions.find_one_and_update(
            live(key, now_us), update, return_document=ReturnDocument.AFTER, session=session
        )
        if document is None:
            return None, None, None
        app_state, user_state = await apply_scopes(
            store, key, deltas.app, deltas.user, expiry, session
        )
        return document, app_state, user_state

    async with store.locks.hold(key):
        if store.transactions and (deltas.app or deltas.user):
            document, app_state, user_state = await run_transaction(store, body)
        else:
            document, app_state, user_state = await body(None)
        if document is None:
            store.heads.remember(key, None)
            raise SessionNotFound(key.app_name, key.user_id, key.session_id)
        await extend_horizon(store, document, expiry)
        if key in store.heads:
            store.heads.remember(key, Head.of(document))
    app, user = await fill_states(store, key, expiry, app_state, user_state)
    return StoredSession(session_from_document(document), app, user)


async def delete_session(store: Store, key: SessionKey, now: datetime) -> bool:
    """Hide the session at once, delete its events, then its document.

    A crash part-way leaves a hidden, event-less or half-emptied session
    document marked ``deleted``; ``create_session`` of the same id and
    ``purge_expired`` finish the job.
    """
    async with store.locks.hold(key):
        store.heads.remember(key, None)
        document = await store.sessions.find_one_and_update(
            {**key_filter(key), "deleted": {"$exists": False}},
            {"$set": {"deleted": True, "expires_us": 0}, "$unset": {"expires_at": ""}},
            projection={"_id": 1, "incarnation": 1, "expires_us": 1},
        )
        if document is None:
            return False
        await delete_events(store, document["incarnation"], None)
        await store.sessions.delete_one({"_id": document["_id"]})
        return bool(document.get("expires_us", NEVER) > to_micros(now))


async def restore_session(
    store: Store, session: Session, events: list[Event], expiry: Expiry
) -> None:
    """Replace the session with exactly this content, in one atomic switch.

    The events go in first under a new incarnation id, invisible; then one
    replacement of the session document points it at them, so readers see
    the old session or the new one; then the old events are deleted. Seqs
    may have gaps (events popped or replaced before the export); the events
    are all visible, whatever their seqs, up to ``session.last_seq``.
    """
    check_restorable(session, events)
    key = SessionKey(session.app_name, session.user_id, session.id)
    now_us = to_micros(expiry.now)
    expires_us = NEVER if session.expires_at is None else to_micros(session.expires_at)
    date = None if expires_us == NEVER else expires_us + max(expires_us - now_us, 0)
    incarnation = uuid.uuid4().hex
    token = store.token()
    document = session_document(session, incarnation, expires_us, date)
    document.update(
        last_seq=session.last_seq,
        event_count=len(events),
        floor=events[0].seq - 1 if events else session.last_seq,
        # A writer holding the old head must not publish into the new session.
        version=random.getrandbits(62),
    )
    del document["_id"]
    async with store.locks.hold(key):
        store.heads.remember(key, None)
        for start in range(0, len(events), _BATCH):
            await store.events.insert_many(
                [
                    event_document(incarnation, event, token, date)
                    for event in events[start : start + _BATCH]
                ],
                ordered=False,
            )
        old = await store.sessions.find_one(key_filter(key), {"incarnation": 1})
        await store.sessions.replace_one(key_filter(key), document, upsert=True)
        if old is not None and old["incarnation"] != incarnation:
            await delete_events(store, old["incarnation"], None)


async def purge_expired(store: Store, now: datetime) -> int:
    """Delete expired and half-deleted sessions with their events, and expired states.

    The server's TTL monitor does the same by itself about once a minute;
    this is for reclaiming space at once, and for leftovers of a delete
    that was interrupted.
    """
    now_us = to_micros(now)
    cutoff = ttl_date(now_us)
    removed = 0
    rows = await store.sessions.find(
        {"$or": [{"expires_at": {"$lte": cutoff}}, {"deleted": True}]},
        {"_id": 1, "incarnation": 1, "expires_us": 1},
    ).to_list(None)
    doomed = [row for row in rows if row["expires_us"] <= now_us]
    for start in range(0, len(doomed), 500):
        batch = doomed[start : start + 500]
        await store.events.delete_many({"session": {"$in": [row["incarnation"] for row in batch]}})
        outcome = await store.sessions.delete_many(
            {"_id": {"$in": [row["_id"] for row in batch]}, "expires_us": {"$lte": now_us}}
        )
        removed += int(outcome.deleted_count)
    outcome = await store.state.delete_many(
        {"expires_at": {"$lte": cutoff}, "expires_us": {"$lte": now_us}}
    )
    return removed + int(outcome.deleted_count)
