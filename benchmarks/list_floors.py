"""The listing floors: what reading a page of sessions costs through the raw driver.

A listing floor is sampled beside each W3 listing of a sessionhub subject: the
same number of session rows as the subject lists, stored in the driver's
plainest indexed shape (ids, times, counters, state and metadata as JSON
text), each page read by its keyset through the index, newest first, without
decoding: one aiosqlite or asyncpg ``SELECT``; a redis-py ``ZREVRANGEBYSCORE``
of a sorted set, then one pipeline of an ``HGETALL`` per session hash; one
PyMongo ``find``; a list slice. Each class here is mixed into the floor of
its storage (:mod:`benchmarks.floors`) and uses that floor's connection.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "Keyset",
    "LIST_USER",
    "MemoryRows",
    "SQLiteRows",
    "RedisRows",
    "MongoRows",
    "PostgresRows",
    "session_row",
]

Keyset = tuple[int, str]
"""Where a listing page ends: the last session's ``(updated_at, id)``."""

LIST_USER = "lister"
"""The user owning every session row."""


def session_row(number: int) -> tuple[str, int, str, str]:
    """Session row ``number`` of a listing floor: ``(id, updated_at, state, metadata)``."""
    return f"s{number:06d}", number, '{"title":"a session"}', "{}"


def _next_keyset(rows: list[Any], limit: int) -> Keyset | None:
    """The keyset after a page of ``(id, updated_at, ...)`` rows: None once it is not full."""
    if len(rows) < limit:
        return None
    return int(rows[-1][1]), str(rows[-1][0])


class MemoryRows:
    """Session rows in a Python list, newest first."""

    _sessions: list[tuple[str, int, str, str]]

    async def fill_sessions(self, count: int) -> None:
        """Keep the rows newest first."""
        self._sessions = [session_row(n) for n in range(count, 0, -1)]

    async def list_page(self, count: int, limit: int, after: Keyset | None) -> Keyset | None:
        """A slice of the list (rows ``updated_at`` count..1, so the keyset is a position)."""
        start = 0 if after is None else count - after[0] + 1
        return _next_keyset(self._sessions[start : start + limit], limit)


class SQLiteRows:
    """Session rows in a table of the floor's SQLite file."""

    _connection: Any

    async def fill_sessions(self, count: int) -> None:
        """Insert the rows into a table indexed as the backend's listing index."""
        await self._connection.execute(
            "CREATE TABLE IF NOT EXISTS raw_sessions (user_id TEXT, session_id TEXT, "
            "updated_at INTEGER, created_at INTEGER, expires_at INTEGER, state TEXT, "
            "metadata TEXT, event_count INTEGER, last_seq INTEGER, "
            "PRIMARY KEY (user_id, session_id))"
        )
        await self._connection.execute(
            "CREATE INDEX IF NOT EXISTS raw_sessions_updated "
            "ON raw_sessions (user_id, updated_at, session_id)"
        )
        await self._connection.execute("BEGIN IMMEDIATE")
        await self._connection.executemany(
            "INSERT INTO raw_sessions VALUES (?, ?, ?, ?, NULL, ?, ?, 0, 0)",
            [
                (LIST_USER, i, t, t, st, md)
                for i, t, st, md in map(session_row, range(1, count + 1))
            ],
        )
        await self._connection.execute("COMMIT")

    async def list_page(self, count: int, limit: int, after: Keyset | None) -> Keyset | None:
        """One keyset ``SELECT`` along the index, ``fetchall``."""
        sql = "SELECT session_id, updated_at, * FROM raw_sessions WHERE user_id = ?"
        params: tuple[Any, ...] = (LIST_USER,)
        if after is not None:
            sql += " AND (updated_at, session_id) < (?, ?)"
            params += after
        sql += " ORDER BY updated_at DESC, session_id DESC LIMIT ?"
        async with self._connection.execute(sql, (*params, limit)) as cursor:
            return _next_keyset(list(await cursor.fetchall()), limit)


class RedisRows:
    """A sorted set of session ids and a hash per session, under the floor's key."""

    _client: Any
    key: str
    _session_count = 0

    def _session_key(self, session_id: str) -> str:
        return f"{self.key}:session:{session_id}"

    async def fill_sessions(self, count: int) -> None:
        """A sorted set of the ids by ``updated_at`` and a hash per session."""
        index = f"{self.key}:sessions"
        pipe = self._client.pipeline(transaction=False)
        for session_id, updated, state, metadata in map(session_row, range(1, count + 1)):
            pipe.zadd(index, {session_id: updated})
            fields = {"id": session_id, "upd": updated, "created": updated, "s:title": state}
            pipe.hset(self._session_key(session_id), mapping={**fields, "m": metadata})
        await pipe.execute()
        self._session_count = count

    async def list_page(self, count: int, limit: int, after: Keyset | None) -> Keyset | None:
        """``ZREVRANGEBYSCORE`` of a page of ids, then their hashes in one pipeline."""
        top = "+inf" if after is None else f"({after[0]}"  # ids are unique per score here
        entries = await self._client.zrevrangebyscore(
            f"{self.key}:sessions", top, "-inf", start=0, num=limit, withscores=True
        )
        pipe = self._client.pipeline(transaction=False)
        for session_id, _ in entries:
            pipe.hgetall(self._session_key(session_id.decode()))
        await pipe.execute()
        return _next_keyset([(i.decode(), score) for i, score in entries], limit)

    async def delete_sessions(self) -> None:
        """Delete the session hashes and the index."""
        count = self._session_count
        keys = [self._session_key(session_row(n)[0]) for n in range(1, count + 1)]
        for start in range(0, len(keys), 1_000):
            await self._client.delete(*keys[start : start + 1_000])
        await self._client.delete(f"{self.key}:sessions")


class MongoRows:
    """A document per session in the floor's database."""

    _collection: Any

    async def fill_sessions(self, count: int) -> None:
        """Insert a document per session, indexed on ``(user, updated_at, _id)``."""
        sessions = self._collection.database.get_collection("raw_sessions")
        await sessions.create_index([("user", 1), ("upd", -1), ("_id", -1)])
        documents = [
            {"_id": i, "user": LIST_USER, "upd": t, "created": t, "state": st, "meta": md}
            for i, t, st, md in map(session_row, range(1, count + 1))
        ]
        for start in range(0, count, 1_000):
            await sessions.insert_many(documents[start : start + 1_000])

    async def list_page(self, count: int, limit: int, after: Keyset | None) -> Keyset | None:
        """One ``find`` along the index, newest first, ``to_list``."""
        sessions = self._collection.database.get_collection("raw_sessions")
        query: dict[str, Any] = {"user": LIST_USER}
        if after is not None:
            query["$or"] = [
                {"upd": {"$lt": after[0]}},
                {"upd": after[0], "_id": {"$lt": after[1]}},
            ]
        cursor = sessions.find(query).sort([("upd", -1), ("_id", -1)]).limit(limit)
        rows = [(doc["_id"], doc["upd"]) for doc in await cursor.to_list(None)]
        return _next_keyset(rows, limit)


class PostgresRows:
    """Session rows in a table of the floor's schema."""

    _connection: Any
    schema: str

    async def fill_sessions(self, count: int) -> None:
        """Insert the rows into a table indexed as the backend's listing index."""
        table = f'"{self.schema}".raw_sessions'
        await self._connection.execute(
            f"CREATE TABLE IF NOT EXISTS {table} (user_id text, session_id text, "
            "updated_at bigint, created_at bigint, expires_at bigint, state text, "
            "metadata text, event_count int, last_seq bigint, PRIMARY KEY (user_id, session_id)); "
            f"CREATE INDEX IF NOT EXISTS raw_sessions_updated ON {table} "
            "(user_id, updated_at, session_id)"
        )
        await self._connection.executemany(
            f"INSERT INTO {table} VALUES ($1, $2, $3, $4, NULL, $5, $6, 0, 0)",
            [
                (LIST_USER, i, t, t, st, md)
                for i, t, st, md in map(session_row, range(1, count + 1))
            ],
        )
        await self._connection.execute(f"ANALYZE {table}")

    async def list_page(self, count: int, limit: int, after: Keyset | None) -> Keyset | None:
        """One keyset ``fetch`` along the index."""
        sql = (
            f'SELECT session_id, updated_at, * FROM "{self.schema}".raw_sessions WHERE user_id = $1'
        )
        params: tuple[Any, ...] = (LIST_USER,)
        if after is not None:
            sql += " AND (updated_at, session_id) < ($2, $3)"
            params += after
        sql += f" ORDER BY updated_at DESC, session_id DESC LIMIT {int(limit)}"
        return _next_keyset(list(await self._connection.fetch(sql, *params)), limit)
