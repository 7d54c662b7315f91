"""Writes to event documents outside a transaction never hold up a transaction on them.

A transaction holds uncommitted deletes of event documents (as a retrying
append's ``clear_unpublished`` does) while a write outside any transaction
targets the same documents (a writer deleting its own unpublished events, a
replace deleting the old incarnation, a horizon move). The outside write must
wait for the transaction without stopping the transaction's next statement
on the events collection: a server that serves a whole ``deleteMany`` while it
waits used to stall both (see ``_outside``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

import pytest
import pytest_asyncio

from sessionhub import Event, TextPart
from sessionhub_mongodb import _driver
from sessionhub_mongodb._documents import event_document
from sessionhub_mongodb._outside import delete_events, delete_seqs, update_events
from sessionhub_mongodb.backend import MongoBackend, MongoSettings

pytestmark = pytest.mark.asyncio

DEADLOCK_S = 30  # far beyond any honest wait: only a stall gets here

_INCARNATION = "incarnation-1"


@pytest_asyncio.fixture
async def store(mongo_server, database_name):
    async with MongoBackend(MongoSettings(url=mongo_server.url, database=database_name)) as backend:
        if not backend.uses_transactions:
            pytest.skip("the server has no transactions")
        yield backend._store()


def _document(seq: int, writer: str) -> dict[str, Any]:
    event = Event(
        id=f"{writer}{seq}",
        role="user",
        content=[TextPart(text=f"m{seq}")],
        seq=seq,
        timestamp=datetime(2026, 1, 1, tzinfo=timezone.utc),
    )
    return event_document(_INCARNATION, event, writer, None)


Outside = Callable[[Any], Awaitable[None]]

OUTSIDE: dict[str, Outside] = {
    "delete_own": lambda store: delete_seqs(store, _INCARNATION, [4, 5], {"writer": "w"}),
    "delete_incarnation": lambda store: delete_events(store, _INCARNATION, None),
    "delete_above": lambda store: delete_events(store, _INCARNATION, {"$gt": 3}),
    "move_horizon": lambda store: update_events(store, _INCARNATION, {"$set": {"moved": True}}),
}


@pytest.mark.parametrize("outside", sorted(OUTSIDE))
async def test_an_outside_write_waits_for_a_transaction_without_stalling_it(store, outside):
    """The transaction's next statement and commit go through; then the outside write does."""
    events = store.events
    await events.insert_many([_document(seq, "w") for seq in range(1, 6)])
    session = await _driver.start_session(store.client)
    async with session:
        await _driver.start_transaction(session)
        # Uncommitted: deleted in the transaction only, like clear_unpublished's.
        await events.delete_many({"session": _INCARNATION, "seq": {"$gt": 3}}, session=session)
        task = asyncio.ensure_future(OUTSIDE[outside](store))
        await asyncio.sleep(0.5)  # let the outside write reach the held documents
        await asyncio.wait_for(events.insert_one(_document(4, "t"), session=session), DEADLOCK_S)
        await asyncio.wait_for(session.commit_transaction(), DEADLOCK_S)
    await asyncio.wait_for(task, DEADLOCK_S)
    rows = await events.find({}, {"seq": 1, "writer": 1, "moved": 1, "_id": 0}).to_list(None)
    theirs = sorted(row["seq"] for row in rows if row["writer"] == "w")
    # The transaction's own event (seq 4, "t") came after the outside write read what to
    # write: it stays, untouched.
    assert [(row["seq"], row.get("moved")) for row in rows if row["writer"] == "t"] == [(4, None)]
    if outside == "delete_incarnation":
        assert theirs == []
    else:
        assert theirs == [1, 2, 3]
    if outside == "move_horizon":
        assert all(row.get("moved") for row in rows if row["writer"] == "w")
