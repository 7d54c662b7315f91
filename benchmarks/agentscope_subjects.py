"""AgentScope 1.x session stores on the same storage: sessionhub-agentscope beside its own.

- ``sessionhub-agentscope on sqlite`` / ``on redis``: :class:`AgentScopeAdapterSubject`,
  ``SessionHubSession(append_only_memories=True)`` over the sessionhub backend with
  its defaults: the workloads only add messages, which is what the option is for.

With ``AgentScope JSONSession`` and ``AgentScope RedisSession`` in
:mod:`benchmarks.subjects`, these are the rows the adapter is compared with:
the same ``Msg`` per turn added to an ``InMemoryMemory``, then the same
``save_session_state`` / ``load_session_state`` calls.
"""

from __future__ import annotations

import logging
from pathlib import Path

from benchmarks.peer_subjects import AgentScopeSubject
from benchmarks.servers import Server
from benchmarks.subjects import Subject, Unavailable, _delete_prefix, adapter_store

__all__ = ["ADAPTER_ROWS", "NOT_IN_API", "AgentScopeAdapterSubject", "agentscope_subjects"]

ADAPTER_ROWS = ("sessionhub-agentscope on sqlite", "sessionhub-agentscope on redis")
"""The rows' names, the redis one among those that start the run's Redis."""

NOT_IN_API = "AgentScope's SessionBase has no such call"
"""How an adapter row's cell starts for an operation its framework's API lacks."""


class AgentScopeAdapterSubject(AgentScopeSubject):
    """``SessionHubSession(append_only_memories=True)`` over one sessionhub backend.

    A save serialises and appends only the messages added since the last save
    (or load) as events, so an append (``memory.add`` then
    ``save_session_state``) costs about the same whatever the history's
    length; a load reads every event back.
    """

    family = "sessionhub"

    def __init__(self, backend: str, redis_url: str | None, key_prefix: str) -> None:
        super().__init__(None, key_prefix)
        self.name = f"sessionhub-agentscope on {backend}"
        self.storage = backend
        self.backend = backend
        self.adapter_redis_url = redis_url  # the parent's redis_url means RedisSession
        for operation in ("create", "last_n", "list"):  # as for JSONSession, said as such
            self.missing[operation] = f"{NOT_IN_API}: {self.missing[operation]}"

    async def open(self, workdir: Path) -> None:
        """Build the adapter on the backend, with the backend's default settings."""
        from agentscope.memory import InMemoryMemory
        from agentscope.message import Msg

        from sessionhub_agentscope import SessionHubSession

        logging.getLogger("as").setLevel(logging.WARNING)
        self._msg, self._memory = Msg, InMemoryMemory
        store = adapter_store(
            self.backend, workdir, "sessionhub-agentscope", self.adapter_redis_url, self.key_prefix
        )
        await store.start()
        self.session = SessionHubSession(store, append_only_memories=True)

    async def close(self) -> None:
        """Stop the service; on Redis, remove the run's keys."""
        if self.session is None:
            return
        await self.session.service.stop()
        if self.backend == "redis" and self.adapter_redis_url:
            import redis.asyncio

            client = redis.asyncio.Redis.from_url(self.adapter_redis_url)
            await _delete_prefix(client, self.key_prefix)
            await client.aclose()


def agentscope_subjects(redis: Server, run_id: str) -> list[Subject | Unavailable]:
    """The adapter on sqlite and on redis (n/a without the run's Redis)."""
    found: list[Subject | Unavailable] = [AgentScopeAdapterSubject("sqlite", None, "")]
    if redis.url is None:
        found.append(Unavailable(ADAPTER_ROWS[1], "sessionhub", "redis", redis.missing or "n/a"))
    else:
        prefix = f"sessionhub-bench:{run_id}:agentscope-adapter:"
        found.append(AgentScopeAdapterSubject("redis", redis.url, prefix))
    return found
