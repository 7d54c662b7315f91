"""The transactional append, on a replica set or a sharded cluster: all or nothing, one transaction.

Used when the optimistic append (``_append_optimistic``) does not apply (an
append with ``app:`` / ``user:`` keys, a session other processes write to, a
head this process does not know) or lost its race. In one multi-document
transaction: read the session document (unless its head is known), insert
the new events, update the session document (counters, state delta, times)
on the same condition as the optimistic path, apply the ``app:`` / ``user:``
deltas, trim. Write conflicts with other processes are retried with backoff
(``_transaction``). A process killed mid-transaction leaves nothing visible.
"""

from __future__ import annotations

from typing import Any

from pymongo.errors import PyMongoError

from sessionhub import AppendRequest, AppendResult, SessionNotFound
from sessionhub.backend_tools import to_micros
from sessionhub_mongodb import _driver
from sessionhub_mongodb._append_plan import (
    advanced,
    check_expected,
    clear_unpublished,
    insert_events,
    plan,
    publish_fields,
    result,
    stored_events,
    trim,
    trimmed_floor,
)
from sessionhub_mongodb._expiry import horizon, move_horizon
from sessionhub_mongodb._heads import Head
from sessionhub_mongodb._state import apply_scopes
from sessionhub_mongodb._store import Store, live, update_of
from sessionhub_mongodb._transaction import Retry, run_transaction

__all__ = ["append_in_transaction"]


async def append_in_transaction(store: Store, request: AppendRequest) -> AppendResult:
    """Store the request's events, and every delta, in one transaction."""
    key = request.key
    now_us = to_micros(request.expiry.now)
    token = store.token()
    check_stored = False
    attempts = 0

    async def body(session: Any) -> tuple[AppendResult, Head]:
        nonlocal check_stored, attempts
        attempts += 1
        head = store.heads.get(key)
        fresh = head is None or check_stored or attempts > 1
        if fresh:
            document = await store.sessions.find_one(
                live(key, now_us), {"state": 0, "metadata": 0}, session=session
            )
            if document is None:
                raise SessionNotFound(key.app_name, key.user_id, key.session_id)
            head = Head.of(document)
        assert head is not None
        moved_on = request.expected_last_seq not in (None, head.last_seq)
        if moved_on and not fresh:  # judge a compare-and-set on the server's head only
            check_stored = True
            raise Retry
        stored = await stored_events(store, head, request, session) if check_stored else {}
        check_expected(request, head, stored)
        worked = plan(request, head, stored)
        if not worked.new:
            return result(request, worked, head.event_count), head
        date, moved = horizon(head.horizon_us, request.expiry)
        try:
            if check_stored:
                await clear_unpublished(store, head, session)
            await insert_events(store, head, worked, token, date, session)
        except PyMongoError as exc:
            if not _driver.is_duplicate_key(exc):
                raise
            check_stored = True
            raise Retry from exc
        floor = await trimmed_floor(store, head, len(worked.new), request.event_limit, session)
        sets, unsets, event_count = publish_fields(request, head, worked, date, floor)
        published = await store.sessions.update_one(
            {
                "_id": head.id,
                "last_seq": head.last_seq,
                "event_count": head.event_count,
                "version": head.version,
                "lock": None,
                "expires_us": {"$gt": now_us},
            },
            update_of(sets, unsets),
            session=session,
        )
        if published.matched_count == 0:
            check_stored = True
            raise Retry
        if moved:
            await move_horizon(store, head.incarnation, date, session)
        await apply_scopes(store, key, worked.app_delta, worked.user_delta, request.expiry, session)
        await trim(store, head, request, floor, session)
        after = advanced(head, worked, event_count, floor, date)
        return result(request, worked, event_count), after

    try:
        appended, head = await run_transaction(store, body)
    except BaseException:
        store.heads.remember(key, None)
        raise
    store.heads.remember(key, head)
    return appended
