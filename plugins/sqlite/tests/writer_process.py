"""A writer run in a child process by the crash tests.

python writer_process.py forever DB SESSION
    append events one by one until killed; after each append is acknowledged,
    print its seq. Each event's state delta sets "counter" to its seq.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime, timezone

from sessionhub import (
    AppendRequest,
    Event,
    EventWindow,
    Expiry,
    SessionKey,
    StateDeltas,
    TextPart,
)
from sessionhub_sqlite.backend import SQLiteBackend


def _request(key: SessionKey, event_id: str, text: str, delta: dict[str, int]) -> AppendRequest:
    now = datetime.now(timezone.utc)
    event = Event(
        id=event_id,
        role="user",
        content=[TextPart(text=text)],
        timestamp=now,
        state_delta=delta,
    )
    return AppendRequest(key, [event], [StateDeltas(session=delta)], Expiry(now=now))


async def forever(path: str, session_id: str) -> None:
    key = SessionKey("default", "writer", session_id)
    async with SQLiteBackend(path=path) as backend:
        now = datetime.now(timezone.utc)
        stored = await backend.get_session(
            key, EventWindow(last_n=0), Expiry(now=now), refresh=False
        )
        assert stored is not None
        seq = stored.session.last_seq
        while True:
            seq += 1
            result = await backend.append(
                _request(key, f"e{seq}", f"event {seq}", {"counter": seq})
            )
            print(result.events[0].seq, flush=True)


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    assert mode == "forever", mode
    asyncio.run(forever(args[0], args[1]))
