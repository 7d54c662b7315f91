"""How records expire: their TTL fields, and the events' horizon that keeps them with their session.

Events expire with their session, as a unit: each carries a TTL date at or
after the session's expiry. Pushing every event's date on each sliding
refresh would cost a write per event, so the date (the session's
``horizon_us``) runs ahead by one more TTL and is pushed only when the
session's expiry overtakes it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sessionhub import Expiry
from sessionhub.backend_tools import to_micros
from sessionhub_mongodb._documents import NEVER, ttl_date
from sessionhub_mongodb._outside import update_events
from sessionhub_mongodb._store import Store

__all__ = ["expiry_fields", "horizon", "move_horizon", "extend_horizon"]


def expiry_fields(expires: datetime | None, sets: dict[str, Any], unsets: dict[str, str]) -> int:
    """Add a record's new expiry to update operands; return its ``expires_us``."""
    if expires is None:
        sets["expires_us"] = NEVER
        unsets["expires_at"] = ""
        return NEVER
    micros = to_micros(expires)
    sets["expires_us"] = micros
    sets["expires_at"] = ttl_date(micros)
    return micros


def horizon(current: int | None, expiry: Expiry) -> tuple[int | None, bool]:
    """The TTL date events need so that they outlive their session, and whether it moves."""
    if expiry.session is None:
        return None, current is not None
    expires = to_micros(expiry.session)
    if current is not None and current >= expires:
        return current, False
    return expires + max(expires - to_micros(expiry.now), 0), True


async def move_horizon(store: Store, incarnation: str, date: int | None, session: Any) -> None:
    """Give every event of the incarnation the TTL date ``date`` (None: never expire).

    Outside a transaction, one statement per event where transactions exist (``_outside``).
    """
    update = (
        {"$unset": {"expires_at": ""}} if date is None else {"$max": {"expires_at": ttl_date(date)}}
    )
    if session is None:
        await update_events(store, incarnation, update)
    else:
        await store.events.update_many({"session": incarnation}, update, session=session)


async def extend_horizon(store: Store, document: dict[str, Any], expiry: Expiry) -> None:
    """After a sliding refresh of a session document, move its events' date if overtaken."""
    date, moved = horizon(document.get("horizon_us"), expiry)
    if moved:
        await move_horizon(store, document["incarnation"], date, None)
        await store.sessions.update_one({"_id": document["_id"]}, {"$set": {"horizon_us": date}})
        document["horizon_us"] = date
