"""The floors: what one append costs through the raw driver, with the backend's settings.

One floor per kind of storage, each storing the same ~500-byte event JSON:

- memory: a Python ``list.append``;
- sqlite: ``BEGIN IMMEDIATE; INSERT; COMMIT`` through the public aiosqlite API,
  WAL, with the sqlite backend's default ``synchronous``, on a file of its own
  (a commit from another connection would empty the backend's page cache);
- redis: one redis-py ``RPUSH`` round trip to the same server;
- mongodb: one PyMongo async ``insert_one`` to the same server, with the
  backend's default write concern;
- postgres: one asyncpg ``INSERT`` in autocommit mode (the INSERT and its
  COMMIT in one round trip) to the same server, with the server's
  ``synchronous_commit``, as the backend's writes, in a schema of its own.

The workloads take a floor sample beside each append sample (see
:func:`benchmarks.timing.measure_paired`).

Each floor also has a read floor, sampled beside each W2 read: the same
number of stored event texts, fetched through the raw driver as it returns
them, without decoding them (a list copy or slice; one aiosqlite ``SELECT``
ordered by the primary key, ``fetchall``; one redis-py ``LRANGE``; one
PyMongo ``find`` sorted on an index, ``to_list``; one asyncpg ``fetch``).
A ``last_n`` read fetches the newest ``last_n`` the same way, through the
index, newest first, then put oldest first (on MongoDB, as the seq range
above ``length - last_n``, which is what the mongodb backend asks for too).

Each floor is also a listing floor (:mod:`benchmarks.list_floors`).
"""

from __future__ import annotations

import abc
import contextlib
import importlib.util
from pathlib import Path
from typing import Any, ClassVar

from benchmarks.list_floors import (
    Keyset,
    MemoryRows,
    MongoRows,
    PostgresRows,
    RedisRows,
    SQLiteRows,
)
from benchmarks.payload import Turn
from benchmarks.servers import Server

__all__ = [
    "Floor",
    "ListAppendFloor",
    "SQLiteInsertFloor",
    "RedisPushFloor",
    "MongoInsertFloor",
    "PostgresInsertFloor",
    "make_floors",
    "event_json",
]


def event_json(turn: Turn) -> str:
    """The JSON text a sessionhub backend stores for ``turn``."""
    from sessionhub import Event, TextPart, ToolCallPart
    from sessionhub.backend_tools import event_to_json

    event = Event(
        id=turn.call_id,
        seq=1,
        role="assistant",
        content=[
            TextPart(text=turn.text),
            ToolCallPart(id=turn.call_id, name=turn.tool_name, arguments=turn.arguments),
        ],
        timestamp=turn.timestamp,
    )
    return event_to_json(event)


class Floor(abc.ABC):
    """One raw-driver append, repeated: the least an append to this storage can cost."""

    storage: ClassVar[str]
    """The storage kind this floor is for (``memory``, ``sqlite``, ``redis``, ``mongodb``)."""

    def __init__(self, row: str) -> None:
        self.row = row
        """The event JSON each sample stores."""
        self._filled: set[int] = set()
        self._filled_sessions: set[int] = set()

    async def prepare_reads(self, length: int) -> None:
        """Store ``length`` rows for :meth:`read`, once per length (subjects share a floor)."""
        if length not in self._filled:
            await self.fill(length)
            self._filled.add(length)

    @property
    @abc.abstractmethod
    def label(self) -> str:
        """What the floor does, with its settings, for the report."""

    async def open(self) -> None:  # noqa: B027 -- most floors have nothing to open
        """Connect and prepare the table, key or collection."""

    async def close(self) -> None:  # noqa: B027 -- most floors have nothing to close
        """Remove what the floor wrote and disconnect."""

    @abc.abstractmethod
    async def once(self, index: int) -> None:
        """Store the row once."""

    @abc.abstractmethod
    async def fill(self, length: int) -> None:
        """Store ``length`` rows for :meth:`read` to fetch (once per length, before timing)."""

    @abc.abstractmethod
    async def read(self, length: int, last_n: int | None) -> int:
        """Fetch the ``length`` rows of :meth:`fill` (the newest ``last_n``); return how many."""

    async def prepare_listing(self, count: int) -> bool:
        """Store ``count`` session rows for :meth:`list_page` once; False: no listing floor."""
        if count not in self._filled_sessions:
            await self.fill_sessions(count)
            self._filled_sessions.add(count)
        return True

    async def fill_sessions(self, count: int) -> None:
        """Store ``count`` session rows of :data:`LIST_USER`, ``updated_at`` 1..count."""
        raise NotImplementedError

    async def list_page(self, count: int, limit: int, after: Keyset | None) -> Keyset | None:
        """Fetch one keyset page of the ``count`` rows, newest first; the next keyset or None."""
        raise NotImplementedError

    async def list_walk(self, count: int, limit: int) -> int:
        """Fetch every page of the ``count`` rows; return how many pages."""
        pages, after = 1, await self.list_page(count, limit, None)
        while after is not None:
            pages, after = pages + 1, await self.list_page(count, limit, after)
        return pages


class ListAppendFloor(MemoryRows, Floor):
    """A Python ``list.append`` of the event JSON: the floor for the memory backend."""

    storage = "memory"

    def __init__(self, row: str) -> None:
        super().__init__(row)
        self._items: list[str] = []
        self._stored: dict[int, list[str]] = {}

    @property
    def label(self) -> str:
        """What the floor does."""
        return "Python list.append"

    async def once(self, index: int) -> None:
        """Append the row."""
        self._items.append(self.row)

    async def fill(self, length: int) -> None:
        """Keep a list of ``length`` rows."""
        self._stored[length] = [self.row] * length

    async def read(self, length: int, last_n: int | None) -> int:
        """Copy the list (its last ``last_n`` items)."""
        items = self._stored[length]
        return len(items[:] if last_n is None else items[-last_n:] if last_n else [])


def sqlite_default_synchronous() -> str:
    """The sqlite backend's default ``synchronous`` (``NORMAL`` when it is not installed)."""
    try:
        from sessionhub_sqlite.backend import SQLiteSettings
    except ImportError:
        return "NORMAL"
    return str(SQLiteSettings().synchronous)


class SQLiteInsertFloor(SQLiteRows, Floor):
    """``BEGIN IMMEDIATE; INSERT; COMMIT`` through aiosqlite on a WAL file of its own."""

    storage = "sqlite"

    def __init__(self, row: str, path: Path, synchronous: str) -> None:
        super().__init__(row)
        self.path = path
        self.synchronous = synchronous
        self._connection: Any = None

    @property
    def label(self) -> str:
        """What the floor does, with its journal and sync settings."""
        return (
            "aiosqlite BEGIN IMMEDIATE; INSERT; COMMIT "
            f"(WAL, synchronous={self.synchronous}, own file)"
        )

    async def open(self) -> None:
        """Open the file in WAL mode and create the table."""
        import aiosqlite

        self._connection = await aiosqlite.connect(self.path, isolation_level=None)
        await self._connection.execute("PRAGMA journal_mode = WAL")
        await self._connection.execute(f"PRAGMA synchronous = {self.synchronous}")
        await self._connection.execute(
            "CREATE TABLE IF NOT EXISTS raw_events (id INTEGER PRIMARY KEY, data TEXT NOT NULL)"
        )
        await self._connection.execute(
            "CREATE TABLE IF NOT EXISTS raw_history (length INTEGER, seq INTEGER, data TEXT "
            "NOT NULL, PRIMARY KEY (length, seq)) WITHOUT ROWID"
        )

    async def close(self) -> None:
        """Close the connection."""
        if self._connection is not None:
            await self._connection.close()

    async def once(self, index: int) -> None:
        """Insert the row in its own write transaction."""
        await self._connection.execute("BEGIN IMMEDIATE")
        await self._connection.execute("INSERT INTO raw_events (data) VALUES (?)", (self.row,))
        await self._connection.execute("COMMIT")

    async def fill(self, length: int) -> None:
        """Insert ``length`` rows in one transaction."""
        await self._connection.execute("BEGIN IMMEDIATE")
        await self._connection.executemany(
            "INSERT INTO raw_history VALUES (?, ?, ?)",
            [(length, seq, self.row) for seq in range(1, length + 1)],
        )
        await self._connection.execute("COMMIT")

    async def read(self, length: int, last_n: int | None) -> int:
        """One ``SELECT``, ``fetchall``."""
        sql = "SELECT data FROM raw_history WHERE length = ? ORDER BY seq"
        params: tuple[int, ...] = (length,)
        if last_n is not None:
            sql, params = sql + " DESC LIMIT ?", (length, last_n)
        async with self._connection.execute(sql, params) as cursor:
            rows = list(await cursor.fetchall())
        if last_n is not None:
            rows.reverse()
        return len(rows)


class RedisPushFloor(RedisRows, Floor):
    """One redis-py ``RPUSH`` round trip."""

    storage = "redis"

    def __init__(self, row: str, url: str, key: str) -> None:
        super().__init__(row)
        self.url = url
        self.key = key
        self._client: Any = None
        self._lengths: list[int] = []

    @property
    def label(self) -> str:
        """What the floor does."""
        return "redis-py RPUSH round trip"

    async def open(self) -> None:
        """Connect."""
        import redis.asyncio

        self._client = redis.asyncio.Redis.from_url(self.url, socket_connect_timeout=10)
        await self._client.ping()

    async def close(self) -> None:
        """Delete the lists and disconnect."""
        if self._client is not None:
            await self._client.delete(self.key, *(self._history(n) for n in self._lengths))
            await self.delete_sessions()
            await self._client.aclose()

    async def once(self, index: int) -> None:
        """Push the row."""
        await self._client.rpush(self.key, self.row)

    def _history(self, length: int) -> str:
        return f"{self.key}:history:{length}"

    async def fill(self, length: int) -> None:
        """Push ``length`` rows to a list of their own."""
        self._lengths.append(length)
        for start in range(0, length, 1_000):
            await self._client.rpush(
                self._history(length), *[self.row] * min(1_000, length - start)
            )

    async def read(self, length: int, last_n: int | None) -> int:
        """One ``LRANGE`` (of the last ``last_n``)."""
        start = 0 if last_n is None else -last_n
        return (
            len(await self._client.lrange(self._history(length), start, -1)) if last_n != 0 else 0
        )


def mongodb_default_write_concern() -> tuple[str | int, bool]:
    """The mongodb backend's default write concern as ``(w, j)``; ``("majority", True)`` else."""
    w: str | int = "majority"
    journal = True
    with contextlib.suppress(ImportError):
        from sessionhub_mongodb.backend import MongoSettings

        fields = MongoSettings.model_fields
        for name in ("write_concern", "w"):
            if name in fields and isinstance(fields[name].default, (str, int)):
                w = fields[name].default
        for name in ("journal", "j"):
            if name in fields and isinstance(fields[name].default, bool):
                journal = fields[name].default
    return w, journal


class MongoInsertFloor(MongoRows, Floor):
    """One PyMongo async ``insert_one`` with the backend's default write concern."""

    storage = "mongodb"

    def __init__(self, row: str, url: str, database: str) -> None:
        super().__init__(row)
        self.url = url
        self.database = database
        self.write_concern = mongodb_default_write_concern()
        self._client: Any = None
        self._collection: Any = None

    @property
    def label(self) -> str:
        """What the floor does, with its write concern."""
        w, journal = self.write_concern
        return f"PyMongo async insert_one (w={w}, j={journal})"

    async def open(self) -> None:
        """Connect and pick the collection."""
        from pymongo import AsyncMongoClient, WriteConcern

        w, journal = self.write_concern
        self._client = AsyncMongoClient(self.url, serverSelectionTimeoutMS=10_000)
        await self._client.admin.command("ping")
        self._collection = self._client[self.database].get_collection(
            "raw_events", write_concern=WriteConcern(w=w, j=journal)
        )

    async def close(self) -> None:
        """Drop the database and disconnect."""
        if self._client is not None:
            await self._client.drop_database(self.database)
            await self._client.close()

    async def once(self, index: int) -> None:
        """Insert one document holding the row."""
        await self._collection.insert_one({"seq": index, "data": self.row})

    async def fill(self, length: int) -> None:
        """Insert ``length`` documents, indexed on ``(length, seq)``."""
        history = self._collection.database.get_collection("raw_history")
        await history.create_index([("length", 1), ("seq", 1)])
        for start in range(1, length + 1, 1_000):
            seqs = range(start, min(length, start + 999) + 1)
            await history.insert_many(
                [{"length": length, "seq": s, "data": self.row} for s in seqs]
            )

    async def read(self, length: int, last_n: int | None) -> int:
        """One ``find`` sorted on the index (the newest ``last_n``: a seq range), ``to_list``."""
        history = self._collection.database.get_collection("raw_history")
        query: dict[str, Any] = {"length": length}
        if last_n is not None:
            # The floor's seqs run 1..length without gaps: the newest are a range of the index.
            query["seq"] = {"$gt": length - last_n}
        cursor = history.find(query, {"data": 1, "_id": 0}).sort("seq", 1)
        return len(await cursor.to_list(None))


class PostgresInsertFloor(PostgresRows, Floor):
    """One asyncpg ``INSERT`` committed on its own, into a table with a primary key."""

    storage = "postgres"

    def __init__(self, row: str, url: str, schema: str) -> None:
        super().__init__(row)
        self.url = url
        self.schema = schema
        self.synchronous_commit = "?"
        self._connection: Any = None

    @property
    def label(self) -> str:
        """What the floor does, with its durability."""
        return f"asyncpg INSERT + COMMIT (synchronous_commit={self.synchronous_commit})"

    async def open(self) -> None:
        """Connect and create the schema and table."""
        import asyncpg

        from sessionhub_postgres._settings import driver_dsn

        self._connection = await asyncpg.connect(driver_dsn(self.url))
        self.synchronous_commit = await self._connection.fetchval("SHOW synchronous_commit")
        await self._connection.execute(
            f'CREATE SCHEMA "{self.schema}"; CREATE TABLE "{self.schema}".raw_events '
            "(id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, data text NOT NULL); "
            f'CREATE TABLE "{self.schema}".raw_history '
            "(length int, seq int, data text NOT NULL, PRIMARY KEY (length, seq))"
        )

    async def close(self) -> None:
        """Drop the schema and disconnect."""
        if self._connection is not None:
            await self._connection.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
            await self._connection.close()

    async def once(self, index: int) -> None:
        """Insert the row; autocommit makes it a transaction of its own."""
        await self._connection.execute(
            f'INSERT INTO "{self.schema}".raw_events (data) VALUES ($1)', self.row
        )

    async def fill(self, length: int) -> None:
        """Insert ``length`` rows."""
        await self._connection.executemany(
            f'INSERT INTO "{self.schema}".raw_history VALUES ($1, $2, $3)',
            [(length, seq, self.row) for seq in range(1, length + 1)],
        )

    async def read(self, length: int, last_n: int | None) -> int:
        """One ``fetch``."""
        table = f'"{self.schema}".raw_history'
        if last_n is None:
            sql = f"SELECT data FROM {table} WHERE length = $1 ORDER BY seq"
            rows = await self._connection.fetch(sql, length)
        else:
            sql = f"SELECT data FROM {table} WHERE length = $1 ORDER BY seq DESC LIMIT $2"
            rows = await self._connection.fetch(sql, length, last_n)
            rows.reverse()
        return len(rows)


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def make_floors(
    turn: Turn,
    workdir: Path,
    redis_server: Server,
    mongodb_server: Server,
    run_id: str,
    postgres_server: Server | None = None,
) -> dict[str, Floor]:
    """The floors that can run here, by storage kind (no server or driver: no floor)."""
    row = event_json(turn)
    floors: dict[str, Floor] = {"memory": ListAppendFloor(row)}
    if _installed("aiosqlite"):
        synchronous = sqlite_default_synchronous()
        floors["sqlite"] = SQLiteInsertFloor(row, workdir / "floor.db", synchronous)
    if redis_server.url and _installed("redis"):
        key = f"sessionhub-bench:{run_id}:floor"
        floors["redis"] = RedisPushFloor(row, redis_server.url, key)
    if mongodb_server.url and _installed("pymongo"):
        database = f"sessionhub_bench_{run_id}"
        floors["mongodb"] = MongoInsertFloor(row, mongodb_server.url, database)
    if postgres_server is not None and postgres_server.url and _installed("sessionhub_postgres"):
        schema = f"sessionhub_bench_floor_{run_id}"
        floors["postgres"] = PostgresInsertFloor(row, postgres_server.url, schema)
    return floors
