"""Replacing a session's whole history in one switch of the session document.

The new events may carry ids of the old ones (a summary keeping the last
messages), which the unique ``(session, event_id)`` index would refuse in the
same incarnation: they go in under a new incarnation id, invisible, and one
update of the session document points it at them, so readers see the old
history or the new one. The old events are deleted after. The writer holds
the session's write lease throughout, on any deployment: appends and pops
(which publish only on a head without a lease, or holding the lease) wait, or
fail their conditional update and try again after it. ``expected_last_seq``
is checked against the session document the lease was taken on.

A replace killed before the switch leaves its lease (taken over once it
expires) and its new events under an incarnation nothing points to; one
killed after the switch leaves the old incarnation's events. Either is
invisible; they expire with the session's TTL, if it has one.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import replace
from typing import Any

from bson.errors import InvalidDocument
from pymongo.errors import PyMongoError

from sessionhub import AppendResult, ConflictError, ReplaceRequest
from sessionhub.backend_tools import to_micros
from sessionhub_mongodb import _driver
from sessionhub_mongodb._append_plan import moved_on
from sessionhub_mongodb._append_standalone import acquire_lease, recover
from sessionhub_mongodb._documents import event_document
from sessionhub_mongodb._expiry import expiry_fields, horizon
from sessionhub_mongodb._heads import Head
from sessionhub_mongodb._outside import delete_events
from sessionhub_mongodb._store import Store, update_of

__all__ = ["replace_events"]

_BATCH = 1000


async def replace_events(store: Store, request: ReplaceRequest) -> AppendResult:
    """Swap the session's history for ``request.events`` (see the module docstring)."""
    key = request.key
    token = store.token()
    incarnation = uuid.uuid4().hex
    async with store.locks.hold(key):
        store.heads.remember(key, None)
        document = await acquire_lease(store, key, token, to_micros(request.expiry.now))
        head = Head.of(document)
        inserted = published = uncertain = False
        try:
            if document.get("taken_over"):
                await recover(store, document, head)
            expected = request.expected_last_seq
            if expected is not None and expected != head.last_seq:
                raise ConflictError(moved_on(key, expected, head.last_seq))
            saved = [
                event.model_copy(update={"seq": seq})
                for seq, event in enumerate(request.events, start=head.last_seq + 1)
            ]
            limit = request.event_limit
            kept = saved if limit is None else saved[max(len(saved) - limit, 0) :]
            last_seq = head.last_seq + len(saved)
            date, _ = horizon(None, request.expiry)
            inserted = True
            for start in range(0, len(kept), _BATCH):
                await store.events.insert_many(
                    [
                        event_document(incarnation, event, token, date)
                        for event in kept[start : start + _BATCH]
                    ],
                    ordered=False,
                )
            sets: dict[str, Any] = {
                "incarnation": incarnation,
                "last_seq": last_seq,
                "event_count": len(kept),
                "floor": last_seq - len(kept),
                "updated_us": to_micros(request.expiry.now),
                "horizon_us": date,
            }
            unsets = {"popped": "", "lock": ""}
            expires_us = expiry_fields(request.expiry.session, sets, unsets)
            update = update_of(sets, unsets)
            update["$inc"] = {"version": 1}
            uncertain = True
            try:
                outcome = await store.sessions.update_one(
                    {"_id": head.id, "lock.owner": token}, update
                )
            except (PyMongoError, InvalidDocument) as exc:
                uncertain = _driver.may_have_applied(exc)
                raise
            uncertain = False
            if outcome.matched_count == 0:
                raise ConflictError(
                    f"Session {key.session_id!r} of user {key.user_id!r} changed hands while "
                    "its history was replaced (its write lease expired, or it was deleted or "
                    "restored); nothing was replaced. Read it again, then retry."
                )
            published = True
        finally:
            # After an unanswered switch the new events may be the history: keep them.
            if not published and not uncertain:
                with contextlib.suppress(PyMongoError):
                    if inserted:
                        await store.events.delete_many({"session": incarnation})
                    await store.sessions.update_one(
                        {"_id": head.id, "lock.owner": token}, {"$unset": {"lock": ""}}
                    )
        await delete_events(store, head.incarnation, None)
        after = replace(
            head,
            incarnation=incarnation,
            last_seq=last_seq,
            event_count=len(kept),
            floor=last_seq - len(kept),
            version=head.version + 1,
            horizon_us=date,
            expires_us=expires_us,
            popped=None,
            popped_gone=False,
        )
        store.heads.remember(key, after)
    return AppendResult(
        events=saved,
        last_seq=last_seq,
        event_count=len(kept),
        updated_at=request.expiry.now,
        expires_at=request.expiry.session,
    )
