"""The newest items a ``SessionHubSession`` last read, and whether a later read may extend them.

The runner reads the same conversation every turn (``get_items(limit)``), and
between two reads only a few items arrive. So a session object keeps the items
of its last read (``Tail``) with the session's version at that read: its
creation time, ``last_seq`` and ``event_count``. The next read still goes to the
store, but asks only for the events after that ``last_seq``; the newest items
are the kept ones followed by those, unless something else happened in between.

Why the version says so: seqs are never reused, so every event stored since
has a seq above the kept ``last_seq`` and comes back in that read; and a removal
(pop, clear, compaction, trimming by ``event_limit``) lowers ``event_count``
below "kept count + events read". A deleted and recreated session has another
creation time. When any of that does not add up, or the kept items are too few
for the limit asked, the read is done again in full, so what the caller gets
is always what the store holds at the read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from agents.items import TResponseInputItem

if TYPE_CHECKING:
    from sessionhub import Session

__all__ = ["Tail", "TAIL_MAX"]

TAIL_MAX = 1_000
"""The most items a session object keeps between reads: a read's ``limit``, at most this.

``get_items()`` without a limit on a longer history reads it all every time."""


@dataclass(frozen=True)
class Tail:
    """The newest ``len(items)`` items of a session as of one read, oldest first."""

    created_at: datetime
    last_seq: int
    event_count: int
    items: list[TResponseInputItem]

    @classmethod
    def of(cls, session: Session, items: list[TResponseInputItem]) -> Tail:
        """The tail a read of ``session`` returning ``items`` (its newest ones) leaves."""
        # A backend reading the session and its events apart may return an event
        # newer than the session's last_seq: the next read must not return it again.
        newest = session.events[-1].seq if session.events else 0
        return cls(
            session.created_at,
            max(session.last_seq, newest),
            session.event_count,
            items[-TAIL_MAX:],
        )

    def extended(
        self, session: Session, newer: list[TResponseInputItem], limit: int | None
    ) -> list[TResponseInputItem] | None:
        """The session's newest items (``limit`` of them; all with ``None``), or ``None``.

        ``session`` is a read of the events after ``last_seq`` (at most ``limit``),
        and ``newer`` their items. ``None``: the kept items may be stale or too few;
        read again in full.
        """
        if limit is not None and len(newer) >= limit:
            return newer  # the newest `limit` events of all are among those after last_seq
        if session.created_at != self.created_at:
            return None
        if session.event_count != self.event_count + len(newer):
            return None  # something was removed since
        wanted = session.event_count if limit is None else min(limit, session.event_count)
        if len(self.items) + len(newer) < wanted:
            return None
        return [*self.items, *newer] if newer else self.items
