"""What this process remembers of the sessions it writes: heads, contention, per-key locks.

An append published optimistically (see ``_append_optimistic``) needs the
session document as this process last wrote or read it: its *head*. The heads
are a bounded cache; a head that is missing or stale only costs the fast path.
A session another process wrote to lately is marked *contended* for the next
few appends, which then skip the optimistic attempt that would fail anyway.
Within one process, writers of one session queue on an ``asyncio.Lock``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from sessionhub import SessionKey

__all__ = ["Head", "HeadCache", "KeyLocks"]

_HEADS_KEPT = 4096
_SKIPS_AFTER_CONTENTION = 16


@dataclass
class Head:
    """What a writer needs to know of a session document to publish events after it."""

    id: Any
    incarnation: str
    last_seq: int
    event_count: int
    version: int
    horizon_us: int | None
    expires_us: int | None = None
    """None when not read."""
    floor: int = 0
    """Visible seqs are above it (see ``_append_plan``)."""
    popped: int | None = None
    """A popped seq whose event document may still exist: never visible."""
    popped_gone: bool = False
    """This process deleted the event document of ``popped``."""

    @classmethod
    def of(cls, document: Mapping[str, Any]) -> Head:
        """The head of a session document as read from the server."""
        last_seq, event_count = document["last_seq"], document["event_count"]
        return cls(
            document["_id"],
            document["incarnation"],
            last_seq,
            event_count,
            document.get("version", 0),
            document.get("horizon_us"),
            document.get("expires_us"),
            # Written only once seqs have gaps; before that the events are contiguous.
            document.get("floor", last_seq - event_count),
            document.get("popped"),
        )

    @property
    def contiguous(self) -> bool:
        """Whether every seq in ``(floor, last_seq]`` is visible (no pops left gaps)."""
        return self.floor + self.event_count == self.last_seq

    def visible(self, newest: int | None = None) -> dict[str, Any]:
        """The ``seq`` range holding the visible events, and ``popped`` (see ``shown``).

        ``popped`` is dropped from what is read, not excluded here: a ``$ne``
        costs the index bounds on some servers. With ``newest``, the range is
        bounded to hold the ``newest`` newest visible events plus at most every
        gap: a scan from the top never walks the whole history, even on a
        server that cannot stop a backward scan early.
        """
        lowest = self.floor
        if newest is not None:
            gaps = self.last_seq - self.floor - self.event_count
            lowest = max(lowest, self.last_seq - newest - gaps)
        return {"$gt": lowest, "$lte": self.last_seq}

    def grown_from(self, old: Head) -> bool:
        """Whether this head is ``old`` with only events appended (no pop, trim or replace).

        The events visible under ``old`` are then all still visible, the new ones
        being exactly the seqs in ``(old.last_seq, last_seq]``.
        """
        return (
            self.id == old.id
            and self.incarnation == old.incarnation
            and self.version == old.version
            and self.floor == old.floor
            and self.popped == old.popped
            and self.last_seq - old.last_seq == self.event_count - old.event_count >= 0
        )

    def shown(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``rows`` (event documents with their ``seq``) without the one ``popped`` hides."""
        if self.popped is None:
            return rows
        return [row for row in rows if row["seq"] != self.popped]


class HeadCache:
    """The last known head of recently used sessions, and which ones are contended."""

    def __init__(self) -> None:
        self._heads: OrderedDict[SessionKey, Head] = OrderedDict()
        self._contended: dict[SessionKey, int] = {}

    def __contains__(self, key: SessionKey) -> bool:
        return key in self._heads

    def get(self, key: SessionKey) -> Head | None:
        """The remembered head of ``key``, if any."""
        return self._heads.get(key)

    def remember(self, key: SessionKey, head: Head | None) -> None:
        """Keep ``head`` as the session's latest (None: forget it; its state is unknown)."""
        if head is None:
            self._heads.pop(key, None)
            return
        self._heads[key] = head
        self._heads.move_to_end(key)
        if len(self._heads) > _HEADS_KEPT:
            self._heads.popitem(last=False)

    def clear(self) -> None:
        """Forget every head (the connection closed)."""
        self._heads.clear()

    def contended(self, key: SessionKey) -> bool:
        """Whether another writer beat this process to ``key`` lately (counts nothing down)."""
        return key in self._contended

    def skip_optimistic(self, key: SessionKey) -> bool:
        """Whether this append should skip the optimistic attempt (counts one skip down)."""
        skips = self._contended.pop(key, 0)
        if skips > 1:
            self._contended[key] = skips - 1
        return skips > 0

    def mark_contended(self, key: SessionKey) -> None:
        """An optimistic attempt lost to another writer: skip the next few."""
        self._contended[key] = _SKIPS_AFTER_CONTENTION


class KeyLocks:
    """One ``asyncio.Lock`` per session key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[SessionKey, tuple[asyncio.Lock, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: SessionKey) -> AsyncIterator[None]:
        """Hold the lock of ``key`` for the duration of the ``async with`` block."""
        entry = self._locks.get(key)
        if entry is None:
            entry = self._locks[key] = (asyncio.Lock(), [0])
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._locks[key]
