"""The subjects: sessionhub's backends and the peers, behind one small async interface.

A subject stores turns (:class:`benchmarks.payload.Turn`) in sessions and
reads them back. Each one is used the way its own users use it, with its
defaults; a workload a subject has no operation for is listed in
:attr:`Subject.missing` with the reason, and shows as "n/a" in the report.

- sessionhub: :class:`SessionhubSubject`, one per backend (memory, sqlite,
  redis, mongodb, postgres), through ``SessionHistoryService``.
- the peers (Google ADK's, the OpenAI Agents SDK's and AgentScope's session
  stores): :mod:`benchmarks.peer_subjects`.

Sessions are created and filled before the clock starts; a subject without
a batch append is filled through whatever bulk path it has (see each
:meth:`Subject.prefill`), since only the timed operations use its public API.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from benchmarks.payload import Turn
from benchmarks.servers import Server

__all__ = [
    "Subject",
    "StoredTurn",
    "Unavailable",
    "SessionhubSubject",
    "discover",
    "FIRST_PARTY_BACKENDS",
    "PEER_PACKAGES",
    "HISTORY_OPERATIONS",
    "UNDECLARED",
    "adapter_store",
]

Family = Literal["sessionhub", "peer"]
HISTORY_OPERATIONS = ("pop_event", "compare_and_set")
"""The history operations measured beside a plain append, named as the backend capabilities."""
NOT_MEASURED = "only sessionhub rows measure it"
UNDECLARED = "the backend does not declare"
"""How a sessionhub row's history-operation cell starts when its backend lacks the capability."""
BENCH_APP = "bench"
PREFILL_BATCH = 500
ADK_POSTGRES = "ADK DatabaseSessionService (postgresql+asyncpg)"
FIRST_PARTY_BACKENDS = ("memory", "sqlite", "redis", "mongodb", "postgres")
PEER_PACKAGES = {
    "google.adk": "google-adk",
    "agents": "openai-agents",
    "agentscope": "agentscope>=1.0,<1.1",
    "redis": "redis",
    "sqlalchemy": "sqlalchemy[asyncio]",
    "pymongo": "pymongo",
}
"""Import name -> what to install, for each peer."""

TIERS = {
    "memory": "in-process",
    "sqlite": "local file",
    "json-file": "local file",
    "redis": "redis",
    "mongodb": "mongodb",
    "postgres": "postgres",
}
"""Storage kind -> the tier within which a subject is compared with the fastest peer."""


@dataclass(frozen=True)
class StoredTurn:
    """One stored turn as read back: its tool call id and, when the subject has one, its seq."""

    call_id: str
    seq: int | None = None


@dataclass(frozen=True)
class Unavailable:
    """A subject that cannot run here, and why (shown as its row's "n/a")."""

    name: str
    family: Family
    storage: str
    reason: str
    install: str = ""
    """What to ``pip install`` when the subject's package is missing (else empty)."""

    @property
    def tier(self) -> str:
        """The comparison tier of the subject's storage."""
        return TIERS[self.storage]


class Subject(abc.ABC):
    """A session store under test: create, append, read, list."""

    family: ClassVar[Family]
    """``sessionhub`` or ``peer``."""

    def __init__(self, name: str, storage: str) -> None:
        self.name = name
        """The row label."""
        self.storage = storage
        """The storage kind: it picks the floor (``memory``, ``sqlite``, ``redis``, ...)."""
        self.missing: dict[str, str] = {}
        """Operation (``create``, ``last_n``, ``list``) -> why the subject has none."""
        self.notes: list[str] = []
        """Facts about the subject's defaults a reader of the table needs."""
        for operation in HISTORY_OPERATIONS:
            self.missing[operation] = NOT_MEASURED

    @property
    def tier(self) -> str:
        """The comparison tier: subjects are compared with the fastest peer of the same tier."""
        return TIERS[self.storage]

    async def open(self, workdir: Path) -> None:  # noqa: B027 -- most subjects open lazily
        """Connect or create the store, with files under ``workdir``."""

    async def close(self) -> None:  # noqa: B027
        """Disconnect and remove what the subject wrote to shared servers."""

    @abc.abstractmethod
    def native(self, turn: Turn) -> Any:
        """The subject's own representation of ``turn`` (built before the clock starts)."""

    @abc.abstractmethod
    async def create(self, user_id: str, session_id: str) -> Any:
        """Create an empty session; return the handle the other operations take."""

    @abc.abstractmethod
    async def append(self, handle: Any, item: Any) -> None:
        """Append one turn, as made by :meth:`native`."""

    async def prefill(self, handle: Any, turns: Sequence[Turn]) -> Any:
        """Store ``turns`` as fast as the subject allows; return the handle to use afterwards."""
        for turn in turns:
            await self.append(handle, self.native(turn))
        return handle

    @abc.abstractmethod
    async def get(self, handle: Any, last_n: int | None) -> int:
        """Read the session with all its turns, or the newest ``last_n``; return how many."""

    async def list_page(
        self, user_id: str, limit: int, cursor: str | None
    ) -> tuple[int, str | None]:
        """List one page of ``user_id``'s sessions; return its size and the next cursor."""
        raise NotImplementedError(self.missing.get("list", "no list operation"))

    async def populate(self, user_id: str, session_ids: Sequence[str]) -> None:
        """Create empty sessions for ``user_id`` (the listing workload's data)."""
        for session_id in session_ids:
            await self.create(user_id, session_id)

    @abc.abstractmethod
    async def stored(self, handle: Any) -> list[StoredTurn]:
        """Every stored turn of the session, oldest first."""

    async def pop(self, handle: Any) -> None:
        """Remove the session's newest turn (the ``pop_event`` workload)."""
        raise NotImplementedError(self.missing.get("pop_event", NOT_MEASURED))

    async def last_seq(self, handle: Any) -> int:
        """The session's ``last_seq``, for a compare-and-set append."""
        raise NotImplementedError(self.missing.get("compare_and_set", NOT_MEASURED))

    async def append_expecting(self, handle: Any, item: Any, last_seq: int) -> int:
        """Append one turn if the session's ``last_seq`` is ``last_seq``; return the new one."""
        raise NotImplementedError(self.missing.get("compare_and_set", NOT_MEASURED))


def adapter_store(
    backend: str, workdir: Path, name: str, redis_url: str | None, key_prefix: str
) -> Any:
    """The sessionhub service (not started) an adapter's subject stores through.

    A SQLite file of its own in ``workdir`` (``<name>.db``), or the run's Redis under
    ``key_prefix``; each with the backend's default settings.
    """
    from sessionhub import SessionHistoryService, SessionHubSettings

    if backend == "sqlite":
        settings: dict[str, Any] = {"url": f"sqlite:///{workdir / f'{name}.db'}"}
    else:
        settings = {"backend": "redis", "redis": {"url": redis_url, "key_prefix": key_prefix}}
    return SessionHistoryService(settings=SessionHubSettings.isolated(**settings))


async def drop_postgres_schema(url: str, schema: str) -> None:
    """Drop the run's schema from a shared PostgreSQL."""
    from sessionhub_postgres.testing import drop_schema

    await drop_schema(url, schema)


async def _delete_prefix(client: Any, prefix: str) -> None:
    """Delete the run's keys from a shared Redis (a private test server may refuse SCAN)."""
    from redis.exceptions import ResponseError

    try:
        async for key in client.scan_iter(match=f"{prefix}*", count=1000):
            await client.delete(key)
    except ResponseError:  # SCAN renamed away: a throwaway server, nothing to tidy
        return


# --- sessionhub ----------------------------------------------------------------------


class SessionhubSubject(Subject):
    """One sessionhub backend through ``SessionHistoryService``, with its default settings.

    The handle is the ``(user_id, session_id)`` key, which is how independent
    writers address a session.
    """

    family = "sessionhub"

    def __init__(
        self,
        backend: str,
        url: Callable[[Path], str | None],
        app_name: str,
        options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"sessionhub {backend}", backend)
        self.backend = backend
        self._url = url
        self._app_name = app_name
        self._options = options or {}
        self._resolved_url: str | None = None
        self._started = False
        self.service: Any = None

    async def open(self, workdir: Path) -> None:
        """Build the service on the backend and start it."""
        from sessionhub import SessionHistoryService, SessionHubSettings

        settings: dict[str, Any] = {"backend": self.backend, "app_name": self._app_name}
        self._resolved_url = self._url(workdir)
        if self._resolved_url is not None:
            settings["url"] = self._resolved_url
        if self._options:
            settings[self.backend] = self._options
        self.service = SessionHistoryService(settings=SessionHubSettings.isolated(**settings))
        await self.service.start()
        self._started = True
        capabilities = self.service.backend.capabilities
        for operation in HISTORY_OPERATIONS:
            if getattr(capabilities, operation):
                del self.missing[operation]
            else:
                self.missing[operation] = f"{UNDECLARED} {operation}"
        if self.backend == "sqlite":
            synchronous = getattr(self.service.backend.settings, "synchronous", "?")
            self.notes.append(f"WAL, synchronous={synchronous} (its default)")

    async def close(self) -> None:
        """Stop the service; on a shared server, remove the run's keys or database."""
        if self.service is None:
            return
        await self.service.stop()
        if not self._started:  # it never reached the server: nothing to remove
            return
        if self.backend == "redis" and self._resolved_url and "key_prefix" in self._options:
            import redis.asyncio

            client = redis.asyncio.Redis.from_url(self._resolved_url)
            await _delete_prefix(client, self._options["key_prefix"])
            await client.aclose()
        if self.backend == "mongodb" and self._resolved_url and "database" in self._options:
            from pymongo import AsyncMongoClient

            mongo: Any = AsyncMongoClient(self._resolved_url, serverSelectionTimeoutMS=5000)
            await mongo.drop_database(self._options["database"])
            await mongo.close()
        if self.backend == "postgres" and self._resolved_url and "schema" in self._options:
            await drop_postgres_schema(self._resolved_url, self._options["schema"])

    def native(self, turn: Turn) -> Any:
        """A sessionhub ``Event`` without an id (the service assigns one)."""
        from sessionhub import Event, TextPart, ToolCallPart

        return Event(
            role="assistant",
            content=[
                TextPart(text=turn.text),
                ToolCallPart(id=turn.call_id, name=turn.tool_name, arguments=turn.arguments),
            ],
            timestamp=turn.timestamp,
        )

    async def create(self, user_id: str, session_id: str) -> Any:
        """``create_session``; the handle is the key."""
        await self.service.create_session(user_id, session_id)
        return (user_id, session_id)

    async def append(self, handle: Any, item: Any) -> None:
        """``append`` of one event to the key."""
        await self.service.append(handle, item)

    async def prefill(self, handle: Any, turns: Sequence[Turn]) -> Any:
        """Batched ``append`` calls of up to 500 events."""
        for start in range(0, len(turns), PREFILL_BATCH):
            batch = [self.native(turn) for turn in turns[start : start + PREFILL_BATCH]]
            await self.service.append(handle, batch)
        return handle

    async def get(self, handle: Any, last_n: int | None) -> int:
        """``get_session``, optionally with ``last_n``."""
        session = await self.service.get_session(*handle, last_n=last_n)
        return len(session.events)

    async def list_page(
        self, user_id: str, limit: int, cursor: str | None
    ) -> tuple[int, str | None]:
        """``list_sessions`` with ``limit`` and ``cursor``."""
        page = await self.service.list_sessions(user_id, limit=limit, cursor=cursor)
        return len(page.items), page.next_cursor

    async def stored(self, handle: Any) -> list[StoredTurn]:
        """The events of a full ``get_session``, with their seqs."""
        session = await self.service.get_session(*handle)
        return [StoredTurn(event.tool_calls[0].id, event.seq) for event in session.events]

    async def pop(self, handle: Any) -> None:
        """``pop_event``."""
        await self.service.pop_event(*handle)

    async def last_seq(self, handle: Any) -> int:
        """``last_seq`` from ``get_session`` with ``last_n=0``."""
        session = await self.service.get_session(*handle, last_n=0)
        return int(session.last_seq)

    async def append_expecting(self, handle: Any, item: Any, last_seq: int) -> int:
        """``append`` with ``expected_last_seq``."""
        [event] = await self.service.append(handle, item, expected_last_seq=last_seq)
        return int(event.seq)


# --- discovery -------------------------------------------------------------------------


def _sessionhub_subjects(
    redis: Server, mongodb: Server, postgres: Server, run_id: str
) -> list[Subject | Unavailable]:
    from sessionhub import BackendRegistry, get_plugin_manager

    registry = BackendRegistry.from_plugin_manager(get_plugin_manager())
    installed = set(registry.names())
    servers = {"redis": redis, "mongodb": mongodb, "postgres": postgres}
    found: list[Subject | Unavailable] = []
    for backend in FIRST_PARTY_BACKENDS:
        name = f"sessionhub {backend}"
        if backend not in installed:
            package = f"sessionhub-{backend}"
            reason = f"n/a (not installed: pip install {package})"
            found.append(Unavailable(name, "sessionhub", backend, reason, install=package))
            continue
        try:
            registry.factory(registry.get(backend))
        except Exception as exc:  # a plugin that fails to import breaks only its own row
            reason = f"n/a (broken plugin: {exc})".splitlines()[0]
            found.append(Unavailable(name, "sessionhub", backend, reason))
            continue
        server = servers.get(backend)
        if server is not None and server.url is None:
            found.append(Unavailable(name, "sessionhub", backend, server.missing or "n/a"))
            continue
        # A key prefix or database of the run's own, removed when it ends.
        options = {
            "redis": {"key_prefix": f"sessionhub-bench:{run_id}:"},
            "mongodb": {"database": f"sessionhub_bench_{run_id}"},
            "postgres": {"schema": f"sessionhub_bench_{run_id}"},
        }.get(backend)
        url = _url_for(backend, server)
        found.append(SessionhubSubject(backend, url, f"bench-{run_id}", options))
    return found


def _url_for(backend: str, server: Server | None) -> Callable[[Path], str | None]:
    if backend == "sqlite":
        return lambda workdir: f"sqlite:///{workdir / 'sessionhub.db'}"
    if server is not None:
        return lambda workdir: server.url
    return lambda workdir: None


def discover(
    redis: Server,
    mongodb: Server,
    run_id: str,
    *,
    peers: bool,
    postgres: Server | None = None,
) -> list[Subject | Unavailable]:
    """Every subject, runnable or not: sessionhub's backends, then (``peers``) the peers."""
    postgres = postgres or Server(None, "not needed")
    found = _sessionhub_subjects(redis, mongodb, postgres, run_id)
    if peers:
        from benchmarks.peer_subjects import peer_subjects

        found += peer_subjects(redis, mongodb, postgres, run_id)
    return found
