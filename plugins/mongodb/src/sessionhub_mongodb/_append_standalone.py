"""The leased append, on a standalone server (no transactions), with crash replay.

Used where the optimistic append (``_append_optimistic``) does not apply or
lost its race, on a deployment without transactions:

1. take the session's write lease: a ``lock`` field of the session document
   set atomically, with an owner token and an expiry ``write_lease_ms`` ahead
   (taking it bumps ``version``, so optimistic writers back off);
2. if the lease was taken over from a dead writer, delete its unpublished
   events and replay its ``pending`` ``app:`` / ``user:`` deltas;
3. insert the events (invisible: above ``last_seq``);
4. publish with one update conditional on still owning the lease, which also
   releases it, or records the ``app:`` / ``user:`` deltas in ``pending``;
5. apply those deltas to the state documents, then clear ``pending`` and the
   lease.

A writer that gets a definite "not published" deletes its own events and
releases the lease at once; one whose publish got no answer leaves both for
the next writer. See the README for what each crash leaves behind.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bson.errors import InvalidDocument
from pymongo import ReturnDocument
from pymongo.errors import PyMongoError

from sessionhub import (
    AppendRequest,
    AppendResult,
    ConflictError,
    Event,
    Expiry,
    SessionKey,
    SessionNotFound,
)
from sessionhub.backend_tools import dump_json, from_micros, to_micros
from sessionhub_mongodb import _driver
from sessionhub_mongodb._append_plan import (
    Plan,
    advanced,
    check_expected,
    clear_unpublished,
    delete_own,
    insert_events,
    plan,
    publish_fields,
    result,
    stored_events,
    trim,
    trimmed_floor,
)
from sessionhub_mongodb._documents import decode_map, escape_key
from sessionhub_mongodb._expiry import horizon, move_horizon
from sessionhub_mongodb._heads import Head
from sessionhub_mongodb._state import apply_scopes
from sessionhub_mongodb._store import WRITE_RETRIES, Store, live, update_of
from sessionhub_mongodb._transaction import BACKOFF_FIRST_S, CONTENTION_DEADLINE_S, backoff

__all__ = ["append_leased", "acquire_lease", "recover"]


async def append_leased(store: Store, request: AppendRequest) -> AppendResult:
    """Store the request's events holding the session's write lease."""
    key = request.key
    now_us = to_micros(request.expiry.now)
    token = store.token()
    document = await acquire_lease(store, key, token, now_us)
    head = Head.of(document)
    published = False
    uncertain = False  # a publishing update was sent and got no answer
    worked: Plan | None = None
    try:
        if document.get("taken_over"):
            await recover(store, document, head)
        stored: dict[str, Event] = {}
        if request.expected_last_seq not in (None, head.last_seq):
            stored = await stored_events(store, head, request, None)
            check_expected(request, head, stored)
        worked = plan(request, head, stored)
        date, moved = horizon(head.horizon_us, request.expiry)
        for attempt in range(WRITE_RETRIES):
            try:
                await insert_events(store, head, worked, token, date, None)
                break
            except PyMongoError as exc:
                if not _driver.is_duplicate_key(exc) or attempt == WRITE_RETRIES - 1:
                    raise
                # Holding the lease, every event outside the visible range is
                # a leftover (a dead writer's, a trim that did not run, or
                # this insert's own first part); a clash inside it is a retry
                # of a stored event.
                await clear_unpublished(store, head, None)
                worked = plan(request, head, await stored_events(store, head, request, None))
        if moved and worked.new:
            await move_horizon(store, head.incarnation, date, None)
        wider = bool(worked.app_delta or worked.user_delta)
        floor = await trimmed_floor(store, head, len(worked.new), request.event_limit, None)
        if worked.new:
            sets, unsets, event_count = publish_fields(request, head, worked, date, floor)
        else:
            sets, unsets, event_count = {}, {}, head.event_count
        unsets["pending"] = ""
        if wider:
            # Published with the events; applied to the state documents next.
            # If this writer dies in between, whoever takes the lease over
            # replays them (see _recover).
            sets["pending"] = {
                "app": key.app_name,
                "user": key.user_id,
                "app_delta": _encode_delta(worked.app_delta),
                "user_delta": _encode_delta(worked.user_delta),
                "now_us": now_us,
                "app_expires_us": _optional_micros(request.expiry.app),
                "user_expires_us": _optional_micros(request.expiry.user),
            }
            del unsets["pending"]
        else:
            unsets["lock"] = ""
        uncertain = True
        try:
            outcome = await store.sessions.update_one(
                {"_id": head.id, "lock.owner": token}, update_of(sets, unsets)
            )
        except (PyMongoError, InvalidDocument) as exc:
            uncertain = _driver.may_have_applied(exc)
            raise
        uncertain = False
        if outcome.matched_count == 0:
            raise await _lost_lease(store, key, head, now_us)
        published = True
        if wider:
            await apply_scopes(
                store, key, worked.app_delta, worked.user_delta, request.expiry, None
            )
            await store.sessions.update_one(
                {"_id": head.id, "lock.owner": token},
                {"$unset": {"lock": "", "pending": ""}},
            )
    finally:
        if not published:
            store.heads.remember(key, None)
        # After an unanswered publish the events may be visible: leave them
        # and the lease; whoever takes the lease next clears what is not.
        if not published and not uncertain:
            with contextlib.suppress(PyMongoError):
                if worked is not None:
                    await delete_own(store, head, worked, token)
                await store.sessions.update_one(
                    {"_id": head.id, "lock.owner": token}, {"$unset": {"lock": ""}}
                )
    assert worked is not None
    if worked.new:
        await trim(store, head, request, floor, None)
        head = advanced(head, worked, event_count, floor, date)
    store.heads.remember(key, head)
    return result(request, worked, event_count)


async def acquire_lease(store: Store, key: SessionKey, token: str, now_us: int) -> dict[str, Any]:
    """Take the session's write lease; return the session document holding it.

    ``taken_over`` in the document says whether another writer's lease was
    there (expired, or abandoned by this instance): its leftovers need
    clearing. The document is read after the update, never before: a
    pre-image is not what every server returns reliably under contention.
    """
    lease_us = store.settings.write_lease_ms * 1000
    deadline = time.monotonic() + max(CONTENTION_DEADLINE_S, 3 * lease_us / 1e6)
    delay = BACKOFF_FIRST_S
    while True:
        wall = time.time_ns() // 1000
        lock = {"owner": token, "instance": store.instance, "until_us": wall + lease_us}
        document: dict[str, Any] | None = await store.sessions.find_one_and_update(
            {
                **live(key, now_us),
                "$or": [
                    {"lock": None},
                    {"lock.until_us": {"$lt": wall}},
                    # Only a task holding this key's in-process lock gets here,
                    # so a lease held by this instance belongs to a writer
                    # that was cancelled or failed: take it over at once.
                    {"lock.instance": store.instance},
                ],
            },
            [
                {"$set": {"taken_over": {"$eq": [{"$type": "$lock"}, "object"]}}},
                {
                    "$set": {
                        "lock": {"$literal": lock},
                        "version": {"$add": [{"$ifNull": ["$version", 0]}, 1]},
                    }
                },
            ],
            projection={"state": 0, "metadata": 0},
            return_document=ReturnDocument.AFTER,
        )
        if document is not None:
            return document
        if await store.sessions.find_one(live(key, now_us), {"_id": 1}) is None:
            raise SessionNotFound(key.app_name, key.user_id, key.session_id)
        if time.monotonic() > deadline:
            raise ConflictError(
                f"Session {key.session_id!r} of user {key.user_id!r}: another writer held "
                "its write lease for too long; retry later."
            )
        delay = await backoff(delay)


async def recover(store: Store, document: Mapping[str, Any], head: Head) -> None:
    """Clean up after the dead writer whose lease was taken over."""
    await clear_unpublished(store, head, None)
    pending = document.get("pending")
    if pending:
        await _replay(store, pending)


async def _replay(store: Store, pending: Mapping[str, Any]) -> None:
    """Apply the ``app:`` / ``user:`` deltas a dead writer published but did not apply."""
    expiry = Expiry(
        now=from_micros(pending["now_us"]),
        app=_optional_datetime(pending["app_expires_us"]),
        user=_optional_datetime(pending["user_expires_us"]),
    )
    key = SessionKey(pending["app"], pending["user"], "")
    await apply_scopes(
        store,
        key,
        decode_map(pending["app_delta"]),
        decode_map(pending["user_delta"]),
        expiry,
        None,
    )


async def _lost_lease(store: Store, key: SessionKey, head: Head, now_us: int) -> Exception:
    """Why a leased writer's publish matched nothing: the session went, or the lease."""
    document = await store.sessions.find_one(
        {"_id": head.id}, {"incarnation": 1, "expires_us": 1, "deleted": 1}
    )
    where = f"Session {key.session_id!r} of user {key.user_id!r}"
    if document is None or document.get("deleted") or document["expires_us"] <= now_us:
        return SessionNotFound(key.app_name, key.user_id, key.session_id)
    if document["incarnation"] != head.incarnation:
        return ConflictError(
            f"{where} was replaced (restored or imported) while this append ran; nothing "
            "was stored. Read the session again, then retry."
        )
    return ConflictError(
        f"{where}: this writer's lease expired before it finished (write_lease_ms="
        f"{store.settings.write_lease_ms}) and another writer took it over; nothing was "
        "stored. Retry, or raise write_lease_ms."
    )


def _encode_delta(delta: Mapping[str, Any]) -> dict[str, str]:
    """A delta kept in a document until applied: escaped keys, JSON text values (null deletes)."""
    return {escape_key(key): dump_json(value) for key, value in delta.items()}


def _optional_micros(moment: datetime | None) -> int | None:
    return None if moment is None else to_micros(moment)


def _optional_datetime(micros: int | None) -> datetime | None:
    return None if micros is None else from_micros(micros)
