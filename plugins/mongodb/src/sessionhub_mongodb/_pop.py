"""Popping a session's newest event: claim it in the session document, then delete it.

Atomic against every other writer, on any deployment, without a transaction:
read the newest visible event, then one update of the session document,
conditional on the head it was read from (``last_seq``, ``event_count``,
``version``, no write lease), takes it out of the visible range:
``event_count`` drops, ``popped`` names its seq (readers skip it) and
``version`` moves, so an append or pop that read the same head fails its own
conditional update and tries again. ``last_seq`` stays: the seq is never
reused. The event document stays, hidden by ``popped``, until the next write
deletes it in the same round trip as its own work: the next pop before
``popped`` names another seq, or the next optimistic append (both in their
``bulkWrite``), or whoever meets it (an append of its id, a lease takeover,
a trim). A pop is then one read and one ``bulkWrite``, like an append.

When a write lease is held (a leased append on a standalone server, or a dead
writer's), or after a few lost races, the pop takes the lease itself (waiting
for it, or taking over an expired one and cleaning up after its holder) and
claims on owning it, releasing it in the same update.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import Any

from pymongo import DeleteOne, UpdateOne
from pymongo.errors import PyMongoError

from sessionhub import ConflictError, Event, Expiry, SessionKey, SessionNotFound
from sessionhub.backend_tools import to_micros
from sessionhub_mongodb._append_standalone import acquire_lease, recover
from sessionhub_mongodb._documents import event_from_document
from sessionhub_mongodb._expiry import expiry_fields, horizon, move_horizon
from sessionhub_mongodb._heads import Head
from sessionhub_mongodb._store import Store, conditional, equals, live

__all__ = ["pop_event"]

_OPTIMISTIC_TRIES = 3
_HEAD_FIELDS = {"state": 0, "metadata": 0}


async def pop_event(store: Store, key: SessionKey, expiry: Expiry) -> Event | None:
    """Remove and return the session's newest event (``None`` if it has none)."""
    now_us = to_micros(expiry.now)
    async with store.locks.hold(key):
        head = store.heads.get(key)
        fresh = False
        for _ in range(_OPTIMISTIC_TRIES):
            if head is None:
                document = await store.sessions.find_one(live(key, now_us), _HEAD_FIELDS)
                if document is None:
                    raise SessionNotFound(key.app_name, key.user_id, key.session_id)
                if document.get("lock") is not None:
                    break
                head, fresh = Head.of(document), True
            newest = await _newest(store, head)
            if newest is None and fresh:
                return None
            if newest is not None:
                conditions = [
                    {"$eq": ["$last_seq", head.last_seq]},
                    {"$eq": ["$event_count", head.event_count]},
                    {"$eq": ["$version", head.version]},
                    equals("lock", None),
                    {"$gt": ["$expires_us", now_us]},
                ]
                if await _claim(store, key, head, newest, expiry, conditions, release=False):
                    return newest
            head, fresh = None, False
        store.heads.remember(key, None)
        return await _pop_leased(store, key, expiry)


async def _pop_leased(store: Store, key: SessionKey, expiry: Expiry) -> Event | None:
    """Pop holding the session's write lease; the claim releases it."""
    token = store.token()
    document = await acquire_lease(store, key, token, to_micros(expiry.now))
    head = Head.of(document)
    released = False
    try:
        if document.get("taken_over"):
            await recover(store, document, head)  # deletes what ``popped`` hid, among the rest
            head = replace(head, popped_gone=True)
        newest = await _newest(store, head)
        if newest is None:
            return None
        owned = [equals("lock.owner", token)]
        released = await _claim(store, key, head, newest, expiry, owned, release=True)
        if not released:
            raise ConflictError(
                f"Session {key.session_id!r} of user {key.user_id!r} changed hands while an "
                "event was popped (its write lease expired, or it was deleted or replaced); "
                "nothing was popped. Read it again, then retry."
            )
        return newest
    finally:
        if not released:
            with contextlib.suppress(PyMongoError):
                await store.sessions.update_one(
                    {"_id": head.id, "lock.owner": token}, {"$unset": {"lock": ""}}
                )


async def _newest(store: Store, head: Head) -> Event | None:
    rows = (
        await store.events.find(
            {"session": head.incarnation, "seq": head.visible(1)}, {"data": 1, "seq": 1, "_id": 0}
        )
        .sort("seq", -1)
        .limit(2)
        .to_list(None)
    )
    rows = head.shown(rows)
    return event_from_document(rows[0]) if rows else None


async def _claim(
    store: Store,
    key: SessionKey,
    head: Head,
    event: Event,
    expiry: Expiry,
    conditions: list[dict[str, Any]],
    *,
    release: bool,
) -> bool:
    """Take ``event`` out of the visible range if every one of ``conditions`` still holds.

    The update names the document by ``_id`` alone, its conditions in an update
    pipeline (as the optimistic append publishes): a point lookup on any server.
    What ``popped`` hid so far is deleted first (in the same ``bulkWrite`` where
    the deployment has it): ``popped`` is about to name another seq.
    """
    date, moved = horizon(head.horizon_us, expiry)
    if moved:
        await move_horizon(store, head.incarnation, date, None)
    sets: dict[str, Any] = {
        "event_count": head.event_count - 1,
        "floor": head.floor,
        "popped": event.seq,
        "updated_us": to_micros(expiry.now),
        "horizon_us": date,
    }
    unsets: dict[str, str] = {"lock": ""} if release else {}
    expires_us = expiry_fields(expiry.session, sets, unsets)
    update = conditional(conditions, sets, unsets, increment="version")
    match = {"_id": head.id}
    store.heads.remember(key, None)  # until the outcome is known
    hidden = head.popped is not None and not head.popped_gone
    if store.bulk:
        models: list[Any] = []
        if hidden:
            models.append(
                DeleteOne(
                    namespace=store.events.full_name,
                    filter={"session": head.incarnation, "seq": head.popped},
                )
            )
        models.append(UpdateOne(namespace=store.sessions.full_name, filter=match, update=update))
        outcome = await store.client.bulk_write(
            models, ordered=True, write_concern=store.write_concern(), verbose_results=True
        )
        modified = outcome.update_results[len(models) - 1].modified_count
    else:
        if hidden:
            await store.events.delete_one({"session": head.incarnation, "seq": head.popped})
        modified = (await store.sessions.update_one(match, update)).modified_count
    if modified != 1:
        return False
    after = replace(
        head,
        event_count=head.event_count - 1,
        version=head.version + 1,
        horizon_us=date,
        expires_us=expires_us,
        popped=event.seq,
        popped_gone=False,
    )
    store.heads.remember(key, after)
    return True
