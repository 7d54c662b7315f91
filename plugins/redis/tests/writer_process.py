"""A writer run in a child process by the multi-process and crash tests.

python writer_process.py burst URL PREFIX SESSION NAME COUNT
    connect, print "ready", wait for a line on stdin, then append COUNT events
    with ids NAME-0 .. NAME-{COUNT-1} through the service; print "done".
"""

from __future__ import annotations

import asyncio
import sys

from sessionhub import Event, SessionHistoryService, TextPart
from sessionhub.plugins import get_plugin_manager
from sessionhub.settings import SessionHubSettings
from sessionhub_redis.backend import RedisBackend, RedisSettings


async def burst(url: str, prefix: str, session_id: str, name: str, count: int) -> None:
    backend = RedisBackend(RedisSettings(url=url, key_prefix=prefix))
    service = SessionHistoryService(
        backend,
        settings=SessionHubSettings.isolated(purge_interval=None),
        plugin_manager=get_plugin_manager(entry_points=False),
    )
    async with service:
        await backend.ping()
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        for i in range(count):
            event = Event(id=f"{name}-{i}", role="user", content=[TextPart(text=f"{name}:{i}")])
            await service.append(("writer", session_id), event)
    print("done", flush=True)


if __name__ == "__main__":
    url, prefix, session_id, name, count = sys.argv[2:7]
    asyncio.run(burst(url, prefix, session_id, name, int(count)))
