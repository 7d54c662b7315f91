"""A writer run in a child process by the crash tests.

python writer_process.py forever URL DATABASE TRANSACTIONS SESSION
    append events one by one until killed; after each append is acknowledged,
    print its seq. Each event's state delta sets "counter" (session scope) and
    "user:counter" (user scope) to its seq.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime, timezone

from sessionhub import AppendRequest, Event, EventWindow, Expiry, SessionKey, StateDeltas, TextPart
from sessionhub_mongodb.backend import MongoBackend, MongoSettings


def _request(key: SessionKey, event_id: str, text: str, seq: int | None) -> AppendRequest:
    now = datetime.now(timezone.utc)
    delta = {} if seq is None else {"counter": seq, "user:counter": seq}
    event = Event(
        id=event_id, role="user", content=[TextPart(text=text)], timestamp=now, state_delta=delta
    )
    deltas = (
        StateDeltas()
        if seq is None
        else StateDeltas(session={"counter": seq}, user={"counter": seq})
    )
    return AppendRequest(key, [event], [deltas], Expiry(now=now))


def _backend(url: str, database: str, transactions: str, lease_ms: int = 10_000) -> MongoBackend:
    return MongoBackend(
        MongoSettings(
            url=url, database=database, transactions=transactions, write_lease_ms=lease_ms
        )
    )


async def forever(url: str, database: str, transactions: str, session_id: str) -> None:
    key = SessionKey("default", "writer", session_id)
    # A short lease: the next writer takes over quickly from one killed mid-append.
    async with _backend(url, database, transactions, lease_ms=500) as backend:
        now = datetime.now(timezone.utc)
        stored = await backend.get_session(
            key, EventWindow(last_n=0), Expiry(now=now), refresh=False
        )
        assert stored is not None
        seq = stored.session.last_seq
        while True:
            seq += 1
            result = await backend.append(_request(key, f"e{seq}", f"event {seq}", seq))
            print(result.events[0].seq, flush=True)


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    assert mode == "forever", mode
    asyncio.run(forever(*args))
