"""The peers' session stores as subjects, and which of them can run here.

- Google ADK: ``InMemorySessionService`` and ``DatabaseSessionService`` on
  ``sqlite+aiosqlite`` and on the PostgreSQL sessionhub's postgres rows use
  (``postgresql+asyncpg``, in a schema of its own).
- OpenAI Agents SDK: ``SQLiteSession`` on a file and ``RedisSession``; a turn
  is two Responses items (the message and the function call), stored in one
  ``add_items`` call as its runner does.
- AgentScope 1.0: ``JSONSession`` and ``RedisSession``, snapshot stores: an
  append is adding a ``Msg`` to an ``InMemoryMemory`` and saving the session
  state, which is how its users persist history.

The adapters' rows beside them are in :mod:`benchmarks.adk_subjects`,
:mod:`benchmarks.agentscope_subjects` and :mod:`benchmarks.agents_mongodb`.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

from benchmarks.payload import Turn
from benchmarks.servers import Server
from benchmarks.subjects import (
    ADK_POSTGRES,
    BENCH_APP,
    PEER_PACKAGES,
    PREFILL_BATCH,
    Family,
    StoredTurn,
    Subject,
    Unavailable,
    _delete_prefix,
    drop_postgres_schema,
)

__all__ = ["AdkSubject", "OpenAISubject", "AgentScopeSubject", "peer_subjects"]


# --- Google ADK ----------------------------------------------------------------------


class AdkSubject(Subject):
    """Google ADK's ``InMemorySessionService`` or ``DatabaseSessionService``.

    The database is a SQLite file (``sqlite+aiosqlite``), or with ``postgres_url``
    PostgreSQL (``postgresql+asyncpg``) with its tables in ``schema``, dropped at the end.

    The handle is the ADK ``Session`` object ``append_event`` takes; concurrent
    writers in one process share it, as agents of one runner do.
    """

    family: ClassVar[Family] = "peer"

    def __init__(
        self, database: bool, postgres_url: str | None = None, schema: str = "adk"
    ) -> None:
        if postgres_url is not None:
            super().__init__(ADK_POSTGRES, "postgres")
        elif database:
            super().__init__("ADK DatabaseSessionService (sqlite+aiosqlite)", "sqlite")
        else:
            super().__init__("ADK InMemorySessionService", "memory")
        self.database = database or postgres_url is not None
        self.postgres_url = postgres_url
        self.schema = schema
        self.missing["paging"] = "no paging: one list_sessions call returns every session"
        self.service: Any = None
        self._types: Any = None
        self._event: Any = None
        self._config: Any = None

    async def open(self, workdir: Path) -> None:
        """Create the service (and the database tables)."""
        from google.adk.sessions import InMemorySessionService

        self._load_adk_types()
        if self.postgres_url is not None:
            import asyncpg
            from google.adk.sessions import DatabaseSessionService  # needs sqlalchemy

            from sessionhub_postgres._settings import driver_dsn

            dsn = driver_dsn(self.postgres_url)
            connection = await asyncpg.connect(dsn)
            await connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            await connection.close()
            url = "postgresql+asyncpg" + dsn[len("postgresql") :]
            self.service = DatabaseSessionService(
                db_url=url, connect_args={"server_settings": {"search_path": self.schema}}
            )
            await self.service.prepare_tables()
            self.notes.append("its tables in a schema of their own; server defaults")
        elif self.database:
            from google.adk.sessions import DatabaseSessionService  # needs sqlalchemy

            url = f"sqlite+aiosqlite:///{workdir / 'adk.db'}"
            self.service = DatabaseSessionService(db_url=url)
            await self.service.prepare_tables()
            self.notes.append("SQLite defaults: rollback journal, synchronous=FULL")
        else:
            self.service = InMemorySessionService()

    def _load_adk_types(self) -> None:
        from google.adk.events import Event
        from google.adk.sessions.base_session_service import GetSessionConfig
        from google.genai import types

        self._types, self._event, self._config = types, Event, GetSessionConfig

    async def close(self) -> None:
        """Dispose of the database engine."""
        if self.database and self.service is not None:
            await self.service.close()
        if self.postgres_url is not None:
            await drop_postgres_schema(self.postgres_url, self.schema)

    def native(self, turn: Turn) -> Any:
        """An ADK ``Event`` whose content has a text part and a function call."""
        types = self._types
        return self._event(
            invocation_id=f"inv-{turn.call_id}",
            author="assistant",
            content=types.Content(
                role="model",
                parts=[
                    types.Part(text=turn.text),
                    types.Part(
                        function_call=types.FunctionCall(
                            id=turn.call_id, name=turn.tool_name, args=turn.arguments
                        )
                    ),
                ],
            ),
            timestamp=turn.timestamp.timestamp(),
        )

    def _column_time(self, timestamp: float) -> datetime:
        """A time for ADK's own rows: naive UTC in PostgreSQL's ``timestamp`` columns."""
        moment = datetime.fromtimestamp(timestamp, timezone.utc)
        return moment.replace(tzinfo=None) if self.postgres_url is not None else moment

    async def create(self, user_id: str, session_id: str) -> Any:
        """``create_session``; the handle is the returned ``Session``."""
        return await self.service.create_session(
            app_name=BENCH_APP, user_id=user_id, session_id=session_id
        )

    async def append(self, handle: Any, item: Any) -> None:
        """``append_event``."""
        await self.service.append_event(handle, item)

    async def prefill(self, handle: Any, turns: Sequence[Turn]) -> Any:
        """In memory: ``append_event`` per turn. In the database: one bulk insert.

        ``DatabaseSessionService`` has no batch append and commits each event
        with a full sync, so the rows are inserted through its own ORM classes
        in one transaction, and the session is read back for a fresh revision.
        """
        schema_classes = getattr(self.service, "_get_schema_classes", None)
        if not self.database or schema_classes is None:
            return await super().prefill(handle, turns)
        schema = schema_classes()
        events = [self.native(turn) for turn in turns]
        async with self.service.database_session_factory() as sql:
            sql.add_all(schema.StorageEvent.from_event(handle, event) for event in events)
            row = await sql.get(schema.StorageSession, (BENCH_APP, handle.user_id, handle.id))
            row.update_time = self._column_time(events[-1].timestamp)
            await sql.commit()
        return await self.service.get_session(
            app_name=BENCH_APP,
            user_id=handle.user_id,
            session_id=handle.id,
            config=self._config(num_recent_events=0),
        )

    async def get(self, handle: Any, last_n: int | None) -> int:
        """``get_session``, with ``GetSessionConfig(num_recent_events=last_n)`` when given."""
        config = None if last_n is None else self._config(num_recent_events=last_n)
        session = await self.service.get_session(
            app_name=BENCH_APP, user_id=handle.user_id, session_id=handle.id, config=config
        )
        return len(session.events)

    async def list_page(
        self, user_id: str, limit: int, cursor: str | None
    ) -> tuple[int, str | None]:
        """``list_sessions``: every session of the user at once (there is no paging)."""
        response = await self.service.list_sessions(app_name=BENCH_APP, user_id=user_id)
        return len(response.sessions), None

    async def populate(self, user_id: str, session_ids: Sequence[str]) -> None:
        """``create_session`` for the first; in the database, one bulk insert for the rest."""
        schema_classes = getattr(self.service, "_get_schema_classes", None)
        if not self.database or schema_classes is None or not session_ids:
            await super().populate(user_id, session_ids)
            return
        await self.create(user_id, session_ids[0])  # makes the app and user state rows
        schema = schema_classes()
        now = self._column_time(datetime.now(timezone.utc).timestamp())
        async with self.service.database_session_factory() as sql:
            sql.add_all(
                schema.StorageSession(
                    app_name=BENCH_APP,
                    user_id=user_id,
                    id=session_id,
                    state={},
                    create_time=now,
                    update_time=now,
                )
                for session_id in session_ids[1:]
            )
            await sql.commit()

    async def stored(self, handle: Any) -> list[StoredTurn]:
        """The function call ids of a full ``get_session`` (ADK has no seq)."""
        session = await self.service.get_session(
            app_name=BENCH_APP, user_id=handle.user_id, session_id=handle.id
        )
        return [
            StoredTurn(part.function_call.id)
            for event in session.events
            for part in event.content.parts
            if part.function_call is not None
        ]


# --- OpenAI Agents SDK -----------------------------------------------------------------


class OpenAISubject(Subject):
    """The OpenAI Agents SDK's ``SQLiteSession`` (a file) or ``RedisSession``.

    A session object is bound to one session id and is created implicitly on
    the first ``add_items``; the handle is that object. A turn is two items.
    """

    family: ClassVar[Family] = "peer"

    def __init__(self, redis_url: str | None, key_prefix: str) -> None:
        if redis_url is None:
            super().__init__("OpenAI Agents SQLiteSession (file)", "sqlite")
        else:
            super().__init__("OpenAI Agents RedisSession", "redis")
        self.redis_url = redis_url
        self.key_prefix = key_prefix
        self.missing["create"] = "no create: a session exists once items are added"
        self.missing["list"] = "no list operation"
        self._path: Path | None = None
        self._client: Any = None
        self._handles: list[Any] = []

    async def open(self, workdir: Path) -> None:
        """Pick the database file, or connect to Redis."""
        if self.redis_url is None:
            self._path = workdir / "openai-agents.db"
            self.notes.append("WAL, synchronous=FULL (the SQLite default)")
        else:
            import redis.asyncio

            self._client = redis.asyncio.Redis.from_url(self.redis_url)
            await self._client.ping()

    async def close(self) -> None:
        """Close every session object; on Redis, delete the run's keys."""
        for handle in self._handles:
            if self.redis_url is None:
                handle.close()
        if self._client is not None:
            await _delete_prefix(self._client, self.key_prefix)
            await self._client.aclose()

    def native(self, turn: Turn) -> Any:
        """The turn as two Responses items: the assistant message and its function call."""
        return [
            {
                "id": f"msg-{turn.call_id}",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": turn.text, "annotations": []}],
            },
            {
                "id": f"fc-{turn.call_id}",
                "type": "function_call",
                "call_id": turn.call_id,
                "name": turn.tool_name,
                "arguments": json.dumps(turn.arguments),
                "status": "completed",
            },
        ]

    async def create(self, user_id: str, session_id: str) -> Any:
        """Make the session object (no storage operation happens)."""
        handle: Any
        if self.redis_url is None:
            from agents import SQLiteSession

            handle = SQLiteSession(f"{user_id}:{session_id}", db_path=self._path or ":memory:")
        else:
            from agents.extensions.memory import RedisSession

            handle = RedisSession(
                f"{user_id}:{session_id}", redis_client=self._client, key_prefix=self.key_prefix
            )
        self._handles.append(handle)
        return handle

    async def append(self, handle: Any, item: Any) -> None:
        """``add_items`` of the turn's two items."""
        await handle.add_items(item)

    async def prefill(self, handle: Any, turns: Sequence[Turn]) -> Any:
        """``add_items`` in batches of 500 turns."""
        for start in range(0, len(turns), PREFILL_BATCH):
            items = [
                item for turn in turns[start : start + PREFILL_BATCH] for item in self.native(turn)
            ]
            await handle.add_items(items)
        return handle

    async def get(self, handle: Any, last_n: int | None) -> int:
        """``get_items``, with ``limit`` = two items per turn wanted."""
        items = await handle.get_items(limit=None if last_n is None else 2 * last_n)
        return len(items) // 2

    async def stored(self, handle: Any) -> list[StoredTurn]:
        """The call ids of the stored function-call items (no seq)."""
        items = await handle.get_items()
        return [
            StoredTurn(item["call_id"]) for item in items if item.get("type") == "function_call"
        ]


# --- AgentScope ------------------------------------------------------------------------


@dataclass
class _AgentScopeHandle:
    user_id: str
    session_id: str
    memory: Any = field(repr=False)


class AgentScopeSubject(Subject):
    """AgentScope 1.0's ``JSONSession`` or ``RedisSession``: whole-state snapshots.

    An append adds a ``Msg`` to the session's ``InMemoryMemory`` and saves the
    session state (the whole memory); a read loads the state into a new memory.
    Concurrent writers in one process share the memory, as agents of one
    application do.
    """

    family: ClassVar[Family] = "peer"

    def __init__(self, redis_url: str | None, key_prefix: str) -> None:
        if redis_url is None:
            super().__init__("AgentScope JSONSession", "json-file")
        else:
            super().__init__("AgentScope RedisSession", "redis")
        self.redis_url = redis_url
        self.key_prefix = key_prefix
        self.missing["create"] = "no create: a session exists once its state is saved"
        self.missing["last_n"] = "no partial read: loading restores the whole snapshot"
        self.missing["list"] = "no list operation"
        self.session: Any = None
        self._msg: Any = None
        self._memory: Any = None

    async def open(self, workdir: Path) -> None:
        """Make the session store; quiet AgentScope's per-save INFO log."""
        from agentscope.memory import InMemoryMemory
        from agentscope.message import Msg
        from agentscope.session import JSONSession, RedisSession

        logging.getLogger("as").setLevel(logging.WARNING)
        self._msg, self._memory = Msg, InMemoryMemory
        if self.redis_url is None:
            self.session = JSONSession(save_dir=str(workdir / "agentscope"))
        else:
            import redis.asyncio

            pool = redis.asyncio.ConnectionPool.from_url(self.redis_url, decode_responses=True)
            self.session = RedisSession(connection_pool=pool, key_prefix=self.key_prefix)

    async def close(self) -> None:
        """On Redis, delete the run's keys and disconnect."""
        if self.redis_url is not None and self.session is not None:
            client = self.session.get_client()
            await _delete_prefix(client, self.key_prefix)
            await client.aclose()  # RedisSession.close() calls the deprecated close()

    def native(self, turn: Turn) -> Any:
        """A ``Msg`` with a text block and a tool-use block."""
        return self._msg(
            name="assistant",
            role="assistant",
            content=[
                {"type": "text", "text": turn.text},
                {
                    "type": "tool_use",
                    "id": turn.call_id,
                    "name": turn.tool_name,
                    "input": turn.arguments,
                },
            ],
            timestamp=turn.timestamp.strftime("%Y-%m-%d %H:%M:%S.%f"),
        )

    async def create(self, user_id: str, session_id: str) -> Any:
        """An empty memory for the session (no storage operation happens)."""
        return _AgentScopeHandle(user_id, session_id, self._memory())

    async def _save(self, handle: _AgentScopeHandle) -> None:
        await self.session.save_session_state(
            session_id=handle.session_id, user_id=handle.user_id, memory=handle.memory
        )

    async def append(self, handle: Any, item: Any) -> None:
        """``memory.add(msg)``, then ``save_session_state``.

        ``allow_duplicates=True``: AgentScope's duplicate check builds a set of
        every id in the memory (about 1 ms at 10,000 messages), the same for
        every store; the rows compare the stores.
        """
        await handle.memory.add(item, allow_duplicates=True)
        await self._save(handle)

    async def prefill(self, handle: Any, turns: Sequence[Turn]) -> Any:
        """``memory.add`` of every message, then one save."""
        await handle.memory.add([self.native(turn) for turn in turns])
        await self._save(handle)
        return handle

    async def _load(self, handle: _AgentScopeHandle) -> list[Any]:
        memory = self._memory()
        await self.session.load_session_state(
            session_id=handle.session_id, user_id=handle.user_id, memory=memory
        )
        return list(await memory.get_memory())

    async def get(self, handle: Any, last_n: int | None) -> int:
        """``load_session_state`` into a new memory, then ``get_memory``."""
        return len(await self._load(handle))

    async def stored(self, handle: Any) -> list[StoredTurn]:
        """The tool-use ids of the loaded messages (no seq)."""
        return [
            StoredTurn(block["id"])
            for msg in await self._load(handle)
            for block in msg.content
            if block.get("type") == "tool_use"
        ]


# --- discovery -------------------------------------------------------------------------


def _importable(module: str) -> bool:
    """Whether ``module`` (dotted: ``google.adk``) can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def peer_subjects(
    redis: Server, mongodb: Server, postgres: Server, run_id: str
) -> list[Subject | Unavailable]:
    """Every peer subject, runnable or not (a missing package or server: ``Unavailable``)."""
    found: list[Subject | Unavailable] = []
    prefix = f"sessionhub-bench:{run_id}:"

    def absent(module: str, name: str, storage: str) -> Unavailable | None:
        if not _importable(module):
            package = PEER_PACKAGES[module]
            reason = f"n/a (not installed: pip install '{package}')"
            return Unavailable(name, "peer", storage, reason, install=package)
        return None

    def add_redis(make: Callable[[str], Subject], name: str, module: str) -> None:
        missing = absent(module, name, "redis") or absent("redis", name, "redis")
        if missing:
            found.append(missing)
        elif redis.url is None:
            found.append(Unavailable(name, "peer", "redis", redis.missing or "n/a"))
        else:
            found.append(make(redis.url or ""))

    name = "ADK InMemorySessionService"
    found.append(absent("google.adk", name, "memory") or AdkSubject(database=False))
    name = "ADK DatabaseSessionService (sqlite+aiosqlite)"
    database = absent("google.adk", name, "sqlite") or absent("sqlalchemy", name, "sqlite")
    found.append(database or AdkSubject(database=True))
    missing = absent("google.adk", ADK_POSTGRES, "postgres") or absent(
        "sqlalchemy", ADK_POSTGRES, "postgres"
    )
    if missing is None and postgres.url is None:
        missing = Unavailable(ADK_POSTGRES, "peer", "postgres", postgres.missing or "n/a")
    schema = f"sessionhub_bench_adk_{run_id}"
    found.append(missing or AdkSubject(True, postgres.url, schema))
    if _importable("google.adk") and _importable("sessionhub_adk"):
        from benchmarks.adk_subjects import adk_subjects

        found += adk_subjects(redis, run_id)
    name = "OpenAI Agents SQLiteSession (file)"
    found.append(absent("agents", name, "sqlite") or OpenAISubject(None, prefix + "agents"))
    add_redis(
        lambda url: OpenAISubject(url, prefix + "agents"), "OpenAI Agents RedisSession", "agents"
    )
    from benchmarks.agents_mongodb import MONGODB_NAME, OpenAIMongoSubject

    missing = absent("agents", MONGODB_NAME, "mongodb") or absent(
        "pymongo", MONGODB_NAME, "mongodb"
    )
    if missing is None and mongodb.url is None:
        missing = Unavailable(MONGODB_NAME, "peer", "mongodb", mongodb.missing or "n/a")
    agents_database = f"sessionhub_bench_agents_{run_id}"
    found.append(missing or OpenAIMongoSubject(mongodb.url or "", agents_database))
    name = "AgentScope JSONSession"
    found.append(
        absent("agentscope", name, "json-file") or AgentScopeSubject(None, prefix + "agentscope:")
    )
    add_redis(
        lambda url: AgentScopeSubject(url, prefix + "agentscope:"),
        "AgentScope RedisSession",
        "agentscope",
    )
    if _importable("agentscope.session") and _importable("sessionhub_agentscope"):
        from benchmarks.agentscope_subjects import agentscope_subjects

        found += agentscope_subjects(redis, run_id)
    return found
