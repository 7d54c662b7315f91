"""An open connection: the client, the collections and their indexes, what the deployment can do.

Every other module of the backend works on a ``Store``: it is what ``open()``
builds and ``close()`` drops. It also holds what this process remembers of
the sessions it writes (``heads``, ``locks``), and the small filters and
update shapes the operations share.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timezone
from typing import Any

from bson.codec_options import CodecOptions
from pymongo import AsyncMongoClient, IndexModel
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from sessionhub import SessionKey
from sessionhub_mongodb._heads import HeadCache, KeyLocks
from sessionhub_mongodb._settings import MongoSettings, read_preference, write_concern

__all__ = [
    "Store",
    "connect",
    "key_filter",
    "live",
    "update_of",
    "equals",
    "conditional",
    "WRITE_RETRIES",
]

WRITE_RETRIES = 5
"""How often a write that collided with a concurrent one is tried before ConflictError."""

_BULK_WRITE_WIRE_VERSION = 25  # MongoDB 8.0: the client-level bulkWrite command


@dataclass
class Store:
    """The collections of an open backend and what it knows of the deployment."""

    client: Any
    sessions: Any
    events: Any
    state: Any
    settings: MongoSettings
    transactions: bool
    """Appends that need more than one document run as multi-document transactions."""
    bulk: bool
    """Events and the update publishing them travel as one client ``bulkWrite``."""
    heads: HeadCache
    locks: KeyLocks
    instance: str
    """The backend instance (random), named in the write leases it takes."""
    writes: Iterator[int]
    """Numbers the writes of the backend instance, across reconnections."""

    def token(self) -> str:
        """A new id for one write: it marks the event documents and the lease it holds."""
        return f"{self.instance}:{next(self.writes)}"

    @property
    def reads_follow_writes(self) -> bool:
        """Whether a read sees every write this process saw acknowledged (or read) before.

        Reads go to the primary and either see the latest data (read concern
        local) or writes wait for the majority the reads see.
        """
        settings = self.settings
        return settings.read_preference == "primary" and (
            settings.read_concern in (None, "local") or settings.write_concern == "majority"
        )

    def write_concern(self) -> WriteConcern:
        """The write concern every write uses."""
        return write_concern(self.settings)


async def connect(
    client: Any,
    database_name: str,
    settings: MongoSettings,
    *,
    heads: HeadCache,
    locks: KeyLocks,
    instance: str,
    writes: Iterator[int],
) -> Store:
    """Ask the server what it is, create the indexes, and return the open store.

    Driver errors propagate; the caller translates them and closes a client it made.
    """
    hello = await client.admin.command("hello")
    database = client.get_database(
        database_name,
        codec_options=CodecOptions(tz_aware=True, tzinfo=timezone.utc),
        write_concern=write_concern(settings),
        read_concern=ReadConcern(settings.read_concern),
        read_preference=read_preference(settings),
    )
    prefix = settings.collection_prefix
    sessions = database.get_collection(f"{prefix}sessions")
    events = database.get_collection(f"{prefix}events")
    state = database.get_collection(f"{prefix}state")
    await _create_indexes(sessions, events, state)
    if settings.transactions == "auto":
        transactions = bool(
            hello.get("logicalSessionTimeoutMinutes") is not None
            and (hello.get("setName") or hello.get("msg") == "isdbgrid")
        )
    else:
        transactions = settings.transactions == "always"
    # Motor's client has no async form of bulkWrite.
    bulk = (
        isinstance(client, AsyncMongoClient)
        and hello.get("maxWireVersion", 0) >= _BULK_WRITE_WIRE_VERSION
    )
    return Store(
        client,
        sessions,
        events,
        state,
        settings,
        transactions,
        bulk,
        heads,
        locks,
        instance,
        writes,
    )


async def _create_indexes(sessions: Any, events: Any, state: Any) -> None:
    ttl = IndexModel([("expires_at", 1)], expireAfterSeconds=0, name="ttl")
    await sessions.create_indexes(
        [
            IndexModel([("app", 1), ("user", 1), ("sid", 1)], unique=True, name="session_key"),
            IndexModel(
                [("app", 1), ("user", 1), ("updated_us", -1), ("sid", -1)], name="by_updated"
            ),
            IndexModel(
                [("app", 1), ("updated_us", -1), ("user", -1), ("sid", -1)],
                name="by_app_updated",
            ),
            IndexModel(
                [("app", 1), ("user", 1), ("parent", 1), ("updated_us", -1), ("sid", -1)],
                name="children_by_updated",
                partialFilterExpression={"parent": {"$type": "string"}},
            ),
            IndexModel([("deleted", 1)], sparse=True, name="deleted"),
            ttl,
        ]
    )
    await events.create_indexes(
        [
            IndexModel([("session", 1), ("seq", 1)], unique=True, name="session_seq"),
            IndexModel([("session", 1), ("event_id", 1)], unique=True, name="session_event_id"),
            ttl,
        ]
    )
    await state.create_indexes([IndexModel([("app", 1), ("user", 1)], name="by_user"), ttl])


def key_filter(key: SessionKey) -> dict[str, Any]:
    """The filter matching the session document of ``key`` (live or not)."""
    return {"app": key.app_name, "user": key.user_id, "sid": key.session_id}


def live(key: SessionKey, now_us: int) -> dict[str, Any]:
    """The filter matching the session document of ``key`` if it has not expired."""
    return {**key_filter(key), "expires_us": {"$gt": now_us}}


def update_of(sets: Mapping[str, Any], unsets: Mapping[str, str]) -> dict[str, Any]:
    """An update document from ``$set`` and ``$unset`` operands (empty ones left out)."""
    update: dict[str, Any] = {}
    if sets:
        update["$set"] = dict(sets)
    if unsets:
        update["$unset"] = dict(unsets)
    return update


_PUBLISH = "_publish"
"""A field the publishing pipeline holds its condition in while it runs (never stored)."""


def equals(field: str, value: Any) -> dict[str, Any]:
    """``field`` equals ``value``, a missing field counting as null (as a query's equality does)."""
    if value is None:
        return {"$eq": [{"$ifNull": [f"${field}", None]}, None]}
    return {"$eq": [f"${field}", value]}


def conditional(
    conditions: list[dict[str, Any]],
    sets: dict[str, Any],
    unsets: dict[str, str],
    *,
    increment: str | None = None,
) -> list[dict[str, Any]]:
    """An update pipeline applying ``sets`` and ``unsets`` only if every condition holds.

    Otherwise each field keeps its value (a missing one stays missing), so the
    document is not modified. ``increment`` names a field that then goes up by
    one (a missing one counting as 0), as ``$inc`` would.
    """
    fields: dict[str, Any] = {
        path: {"$cond": [f"${_PUBLISH}", {"$literal": value}, f"${path}"]}
        for path, value in sets.items()
    }
    fields.update({path: {"$cond": [f"${_PUBLISH}", "$$REMOVE", f"${path}"]} for path in unsets})
    if increment is not None:
        path = f"${increment}"
        fields[increment] = {"$cond": [f"${_PUBLISH}", {"$add": [{"$ifNull": [path, 0]}, 1]}, path]}
    return [
        {"$set": {_PUBLISH: {"$and": conditions}}},
        {"$set": fields},
        {"$unset": _PUBLISH},
    ]
