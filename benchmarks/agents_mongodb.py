"""The OpenAI Agents SDK's ``MongoDBSession``, on the same MongoDB server as sessionhub's row.

``agents.extensions.memory.MongoDBSession`` (PyMongo's async client) stores each
``add_items`` batch as one document, after a ``findAndModify`` that reserves its
seqs on a per-session document: two commands per append. It sends no write
concern, so the server's default applies; the mongodb backend sends
``w="majority", j=True`` by default (a note on the row says so). Its
collections live in a database of the run's own, dropped at the end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.peer_subjects import OpenAISubject

__all__ = ["OpenAIMongoSubject", "MONGODB_NAME"]

MONGODB_NAME = "OpenAI Agents MongoDBSession"
"""The row's name."""


class OpenAIMongoSubject(OpenAISubject):
    """The SDK's ``MongoDBSession`` with a client of its own on ``url``, in ``database``."""

    def __init__(self, url: str, database: str) -> None:
        super().__init__(None, "")
        self.name, self.storage = MONGODB_NAME, "mongodb"
        self.url = url
        self.database = database
        self._mongo: Any = None

    async def open(self, workdir: Path) -> None:
        """Connect to the server (the session objects share the client)."""
        from pymongo import AsyncMongoClient

        self._mongo = AsyncMongoClient(self.url, serverSelectionTimeoutMS=10_000)
        await self._mongo.admin.command("ping")
        self.notes.append(
            "the server's default write concern (the SDK sends none); "
            "sessionhub mongodb sends w=majority, j=true"
        )

    async def close(self) -> None:
        """Drop the run's database and disconnect."""
        if self._mongo is not None:
            await self._mongo.drop_database(self.database)
            await self._mongo.close()

    async def create(self, user_id: str, session_id: str) -> Any:
        """Make the session object (no storage operation happens)."""
        from agents.extensions.memory import MongoDBSession

        return MongoDBSession(f"{user_id}:{session_id}", client=self._mongo, database=self.database)
