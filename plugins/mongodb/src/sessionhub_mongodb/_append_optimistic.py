"""The optimistic append, on any deployment: insert after the known head, publish if unchanged.

The usual append (no ``app:`` / ``user:`` keys, by the process that last wrote
the session) needs no transaction and no lease: insert the events with the
next seqs (invisible: above ``last_seq``), then one conditional update of the
session document publishes them if ``last_seq``, ``event_count`` and
``version`` are still what this process last saw and no write lease is held.
On MongoDB 8.0 and later both travel as one ordered client ``bulkWrite``: one
round trip, where a transaction takes three. If the condition fails (or a seq
is taken) the writer deletes its own events and the caller takes the
transactional or the leased path instead.

The update's filter names the ``_id`` alone, so that every server serves it
as a point lookup (MongoDB's ``_id`` fast path; SecantusDB plans any other
filter against each index in turn, which cost about a third of an append).
The condition is evaluated by the update itself, an aggregation pipeline:
it leaves the document unchanged when the condition fails, so "published"
is "modified" (a publish always moves ``last_seq``).
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import Any

from bson.errors import InvalidDocument
from pymongo import DeleteOne, InsertOne, UpdateOne
from pymongo.errors import PyMongoError

from sessionhub import AppendRequest, AppendResult
from sessionhub.backend_tools import to_micros
from sessionhub_mongodb import _driver
from sessionhub_mongodb._append_plan import (
    Plan,
    advanced,
    delete_own,
    insert_events,
    plan,
    publish_fields,
    result,
    trim,
    trimmed_floor,
)
from sessionhub_mongodb._documents import NEVER, event_document
from sessionhub_mongodb._expiry import horizon, move_horizon
from sessionhub_mongodb._heads import Head
from sessionhub_mongodb._store import Store, conditional, equals

__all__ = ["append_optimistic"]


async def append_optimistic(
    store: Store, request: AppendRequest, head: Head
) -> AppendResult | None:
    """Insert after the remembered head, then publish if nobody wrote since; else None."""
    key = request.key
    token = store.token()
    worked = plan(request, head, {})
    if not worked.new:  # "published" is "modified": only a publish of new events moves last_seq
        return None
    date, moved = horizon(head.horizon_us, request.expiry)
    floor = await trimmed_floor(store, head, len(worked.new), request.event_limit, None)
    store.heads.remember(key, None)  # until this append's outcome is known
    sets, unsets, event_count = publish_fields(request, head, worked, date, floor)
    conditions: list[dict[str, Any]] = [
        {"$eq": ["$last_seq", head.last_seq]},
        {"$eq": ["$event_count", head.event_count]},
        {"$eq": ["$version", head.version]},
        equals("lock", None),
    ]
    # Fields that keep their value are matched rather than written again.
    if request.expiry.session is None and head.expires_us == NEVER:
        del sets["expires_us"], unsets["expires_at"]
        conditions.append({"$eq": ["$expires_us", NEVER]})
    else:
        conditions.append({"$gt": ["$expires_us", to_micros(request.expiry.now)]})
    if date == head.horizon_us:
        del sets["horizon_us"]
        conditions.append(equals("horizon_us", date))
    publish = ({"_id": head.id}, conditional(conditions, sets, unsets))
    if moved:
        await move_horizon(store, head.incarnation, date, None)
    # If the publishing update fails without an answer it may still have been
    # applied: then the events must stay. Only a definite answer (no match, a
    # taken seq, a refusal) lets us delete them; what an unanswered insert leaves
    # stays unpublished, and the next leased or transactional append clears it.
    try:
        published = await _insert_and_publish(store, head, worked, token, date, publish)
    except (PyMongoError, InvalidDocument) as exc:
        if not _driver.may_have_applied(exc):
            with contextlib.suppress(PyMongoError):
                await delete_own(store, head, worked, token)
        raise
    if not published:
        with contextlib.suppress(PyMongoError):
            await delete_own(store, head, worked, token)
        return None
    await trim(store, head, request, floor, None)
    expires_us = NEVER if request.expiry.session is None else to_micros(request.expiry.session)
    after = advanced(head, worked, event_count, floor, date)
    store.heads.remember(key, replace(after, expires_us=expires_us, popped_gone=True))
    return result(request, worked, event_count)


async def _insert_and_publish(
    store: Store,
    head: Head,
    worked: Plan,
    token: str,
    date: int | None,
    publish: tuple[dict[str, Any], list[dict[str, Any]]],
) -> bool:
    """Insert the events, then run the publishing update; whether it published.

    One ordered bulkWrite (one round trip) where the server and client have it,
    else two commands. False when a seq or id was taken or the update matched
    nothing: someone wrote since the head.
    """
    hidden = head.popped is not None and not head.popped_gone
    if not store.bulk:
        if hidden:
            await store.events.delete_one({"session": head.incarnation, "seq": head.popped})
        try:
            await insert_events(store, head, worked, token, date, None)
        except PyMongoError as exc:
            if not _driver.is_duplicate_key(exc):
                raise
            return False
        outcome = await store.sessions.update_one(*publish)
        return bool(outcome.modified_count == 1)
    # What a pop left hidden goes first: its id may be the one appended again.
    models: list[Any] = (
        [
            DeleteOne(
                namespace=store.events.full_name,
                filter={"session": head.incarnation, "seq": head.popped},
            )
        ]
        if hidden
        else []
    )
    models += [
        InsertOne(
            namespace=store.events.full_name,
            document=event_document(head.incarnation, event, token, date),
        )
        for event in worked.new
    ]
    models.append(
        UpdateOne(namespace=store.sessions.full_name, filter=publish[0], update=publish[1])
    )
    try:
        outcome = await store.client.bulk_write(
            models, ordered=True, write_concern=store.write_concern(), verbose_results=True
        )
    except PyMongoError as exc:
        if not _driver.is_duplicate_key(exc):
            raise
        return False
    return bool(outcome.update_results[len(models) - 1].modified_count == 1)
