"""Google ADK session services on the same storage: sessionhub-adk beside ADK's own.

- ``sessionhub-adk on sqlite`` / ``on redis``: :class:`AdkAdapterSubject`,
  ``SessionHubSessionService`` over the sessionhub backend with its defaults.
- ``ADK SqliteSessionService``: ADK's single-file SQLite service.
- ``ADK RedisSessionService``: ADK's Redis service (``google.adk.integrations.redis``).

With ADK's ``DatabaseSessionService`` (sqlite+aiosqlite) in :mod:`benchmarks.subjects`,
these are the rows the adapter is compared with: the same ADK ``Event`` per
turn, through the same ``BaseSessionService`` calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.payload import Turn
from benchmarks.peer_subjects import AdkSubject
from benchmarks.servers import Server
from benchmarks.subjects import (
    BENCH_APP,
    PREFILL_BATCH,
    Subject,
    Unavailable,
    _delete_prefix,
    adapter_store,
)

__all__ = ["AdkAdapterSubject", "AdkSqliteSubject", "AdkRedisSubject", "adk_subjects"]


class AdkAdapterSubject(AdkSubject):
    """``SessionHubSessionService`` over one sessionhub backend (sqlite or redis)."""

    family = "sessionhub"

    def __init__(self, backend: str, redis_url: str | None, key_prefix: str) -> None:
        super().__init__(database=False)
        self.name = f"sessionhub-adk on {backend}"
        self.storage = backend
        self.backend = backend
        self.redis_url = redis_url
        self.key_prefix = key_prefix

    async def open(self, workdir: Path) -> None:
        """Build the adapter on the backend, with the backend's default settings."""
        self._load_adk_types()
        from sessionhub_adk import SessionHubSessionService

        store = adapter_store(
            self.backend, workdir, "sessionhub-adk", self.redis_url, self.key_prefix
        )
        self.service = SessionHubSessionService(store)
        await store.start()

    async def close(self) -> None:
        """Close the connection; on Redis, remove the run's keys."""
        if self.service is None:
            return
        await self.service.close()
        if self.backend == "redis" and self.redis_url:
            import redis.asyncio

            client = redis.asyncio.Redis.from_url(self.redis_url)
            await _delete_prefix(client, self.key_prefix)
            await client.aclose()

    async def prefill(self, handle: Any, turns: Sequence[Turn]) -> Any:
        """Batched sessionhub appends of the events ``append_event`` would store; a fresh read."""
        from sessionhub_adk import to_sessionhub_event
        from sessionhub_adk._state import LAST_UPDATE_KEY

        store = self.service.service.for_app(BENCH_APP)
        for start in range(0, len(turns), PREFILL_BATCH):
            events = [self.native(turn) for turn in turns[start : start + PREFILL_BATCH]]
            batch = [to_sessionhub_event(e, {LAST_UPDATE_KEY: e.timestamp}) for e in events]
            await store.append((handle.user_id, handle.id), batch)
        return await self.service.get_session(
            app_name=BENCH_APP,
            user_id=handle.user_id,
            session_id=handle.id,
            config=self._config(num_recent_events=0),
        )


class AdkSqliteSubject(AdkSubject):
    """ADK's ``SqliteSessionService`` on a file of its own."""

    def __init__(self) -> None:
        super().__init__(database=False)
        self.name = "ADK SqliteSessionService"
        self.storage = "sqlite"

    async def open(self, workdir: Path) -> None:
        """Create the service on a new file."""
        self._load_adk_types()
        from google.adk.sessions.sqlite_session_service import SqliteSessionService

        self.service = SqliteSessionService(str(workdir / "adk-sqlite.db"))


class AdkRedisSubject(AdkSubject):
    """ADK's ``RedisSessionService`` under a key prefix of the run's own."""

    def __init__(self, redis_url: str, key_prefix: str) -> None:
        super().__init__(database=False)
        self.name = "ADK RedisSessionService"
        self.storage = "redis"
        self.redis_url = redis_url
        self.key_prefix = key_prefix
        self.missing["list"] = "its list_sessions scans keys (SCAN), which the test server refuses"
        self.missing["paging"] = self.missing["list"]
        self.missing["concurrent"] = (
            "not run: each append rewrites the whole session under WATCH, so 50 writers "
            "on one session retry for tens of minutes (W1 shows the cost of one append)"
        )

    async def open(self, workdir: Path) -> None:
        """Create the service on the run's Redis."""
        self._load_adk_types()
        from google.adk.integrations.redis._config import RedisSessionServiceConfig
        from google.adk.integrations.redis._redis_session_service import RedisSessionService

        config = RedisSessionServiceConfig(uri=self.redis_url, key_prefix=self.key_prefix)
        self.service = RedisSessionService(config=config)

    async def prefill(self, handle: Any, turns: Sequence[Turn]) -> Any:
        """One write of the session's stored JSON with every event; a fresh read.

        Its ``append_event`` rewrites the whole session each time (O(n) per append),
        so filling 10,000 events through it would take hours.
        """
        from google.adk.sessions.session import Session

        events = [self.native(turn) for turn in turns]
        client = self.service._get_redis()
        key = self.service._session_key(BENCH_APP, handle.user_id, handle.id)
        stored = Session.model_validate_json(await client.get(key))
        stored.events.extend(events)
        stored.last_update_time = events[-1].timestamp
        await client.set(key, stored.model_dump_json())
        return await self.service.get_session(
            app_name=BENCH_APP,
            user_id=handle.user_id,
            session_id=handle.id,
            config=self._config(num_recent_events=0),
        )

    async def close(self) -> None:
        """Remove the run's keys."""
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(self.redis_url)
        await _delete_prefix(client, self.key_prefix)
        await client.aclose()


def adk_subjects(redis: Server, run_id: str) -> list[Subject | Unavailable]:
    """The adapter on sqlite and redis, and ADK's SQLite and Redis services."""
    prefix = f"sessionhub-bench:{run_id}:"
    found: list[Subject | Unavailable] = [AdkAdapterSubject("sqlite", None, ""), AdkSqliteSubject()]
    for name, family in (
        ("sessionhub-adk on redis", "sessionhub"),
        ("ADK RedisSessionService", "peer"),
    ):
        if redis.url is None:
            found.append(Unavailable(name, family, "redis", redis.missing or "n/a"))  # type: ignore[arg-type]
    if redis.url is not None:
        found.append(AdkAdapterSubject("redis", redis.url, prefix + "adk-adapter:"))
        found.append(AdkRedisSubject(redis.url, prefix + "adk:"))
    return found
