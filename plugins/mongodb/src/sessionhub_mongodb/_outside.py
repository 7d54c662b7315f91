"""Deleting and updating event documents outside a transaction, one document per statement.

Where transactions run, a transaction may hold uncommitted writes on event
documents that a write outside any transaction also targets: a retrying
append deletes other writers' unpublished events (``clear_unpublished``)
while their writer deletes them itself (``delete_own``), or moves every
event's TTL date (``move_horizon``) while a trim deletes some. MongoDB makes
the outside write wait for the transaction and lets the transaction go on.
A server that serves a multi-document ``deleteMany`` / ``updateMany`` in one
go can keep the whole collection busy while it waits, so the transaction's
next statement on the collection waits for it in turn: neither ends
(SecantusDB, the tests' server, does this). So outside a transaction, where
transactions exist, event documents are written by statements of one
document each (``DeleteOne`` / ``UpdateOne`` by ``_id``), sent together in
one unordered bulk write per batch: the same work for the server, and each
statement waits alone. Without transactions nothing can hold a document, and
the ``*_many`` commands are used.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from pymongo import DeleteOne, UpdateOne

from sessionhub_mongodb._store import Store

__all__ = ["delete_events", "delete_seqs", "update_events"]

_BATCH = 1000


async def delete_seqs(
    store: Store, incarnation: str, seqs: Iterable[int], extra: Mapping[str, Any] | None = None
) -> None:
    """Delete the incarnation's event documents with these seqs (and ``extra``), if any."""
    models = [DeleteOne({"session": incarnation, "seq": seq, **(extra or {})}) for seq in seqs]
    for start in range(0, len(models), _BATCH):
        await store.events.bulk_write(models[start : start + _BATCH], ordered=False)


async def delete_events(store: Store, incarnation: str, seqs: Mapping[str, Any] | None) -> None:
    """Delete the incarnation's event documents (those with a seq in ``seqs``, if given)."""
    query: dict[str, Any] = {"session": incarnation}
    if seqs is not None:
        query["seq"] = seqs
    if not store.transactions:
        await store.events.delete_many(query)
        return
    async for ids in _pages(store, incarnation, seqs):
        await store.events.bulk_write(
            [DeleteOne({"_id": id_, **query}) for id_ in ids], ordered=False
        )


async def update_events(store: Store, incarnation: str, update: Mapping[str, Any]) -> None:
    """Apply ``update`` to every event document of the incarnation."""
    if not store.transactions:
        await store.events.update_many({"session": incarnation}, update)
        return
    async for ids in _pages(store, incarnation, None):
        await store.events.bulk_write(
            [UpdateOne({"_id": id_}, update) for id_ in ids], ordered=False
        )


async def _pages(
    store: Store, incarnation: str, seqs: Mapping[str, Any] | None
) -> AsyncIterator[list[Any]]:
    """The ``_id`` of the matching event documents, a batch at a time, in seq order."""
    after: int | None = None
    while True:
        bounds: dict[str, Any] = dict(seqs or {})
        if after is not None:
            bounds["$gt"] = max(bounds.get("$gt", after), after)
        query: dict[str, Any] = {"session": incarnation}
        if bounds:
            query["seq"] = bounds
        rows = (
            await store.events.find(query, {"_id": 1, "seq": 1})
            .sort("seq", 1)
            .limit(_BATCH)
            .to_list(None)
        )
        if rows:
            yield [row["_id"] for row in rows]
        if len(rows) < _BATCH:
            return
        after = int(rows[-1]["seq"])
