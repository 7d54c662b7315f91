"""Time SessionHubSession's save and load beside AgentScope 1.x's JSONSession and RedisSession.

    python adapters/agentscope/bench_save_load.py [--sizes 10 1000 5000] [--rounds 30]

Needs AgentScope 1.x (``nox -s "adapter(adapter='agentscope1')"``'s environment,
or ``pip install "sessionhub-agentscope[agentscope1]" sessionhub-sqlite
sessionhub-redis``) and ``redis-server`` on PATH (a private server is started).
Each subject saves and loads an ``InMemoryMemory`` of N messages (a text and a
tool-use block each); the subjects alternate within every round, so a busy
machine slows them alike. Prints the median save and load per subject and size.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from agentscope.memory import InMemoryMemory
from agentscope.message import Msg
from agentscope.session import JSONSession, RedisSession

from sessionhub import SessionHistoryService, SessionHubSettings
from sessionhub_agentscope import SessionHubSession
from sessionhub_redis.testing import redis_server


def message(index: int) -> Msg:
    """An assistant message with a 200-character text block and a tool-use block."""
    content: Any = [
        {"type": "text", "text": f"turn {index} " + "x" * 200},
        {"type": "tool_use", "id": f"call-{index}", "name": "lookup", "input": {"q": index}},
    ]
    return Msg("assistant", content, "assistant")


def hub(url: str, **options: Any) -> SessionHubSession:
    """A SessionHubSession on its own service for ``url``."""
    settings = SessionHubSettings.isolated(url=url, purge_interval=None, **options)
    return SessionHubSession(SessionHistoryService(settings=settings))


async def run(sizes: list[int], rounds: int) -> None:
    """Print the median save and load of every subject at every size."""
    logging.getLogger("as").setLevel(logging.WARNING)  # AgentScope logs every save
    workdir = Path(tempfile.mkdtemp())
    with redis_server() as redis_url:
        import redis.asyncio

        pool = redis.asyncio.ConnectionPool.from_url(redis_url, decode_responses=True)
        subjects: dict[str, Any] = {
            "JSONSession": JSONSession(str(workdir / "json")),
            "RedisSession": RedisSession(connection_pool=pool, key_prefix="agentscope:"),
            "SessionHubSession sqlite": hub(f"sqlite:///{workdir / 'sessionhub.db'}"),
            "SessionHubSession redis": hub(redis_url, redis={"key_prefix": "sessionhub:"}),
        }
        print(f"{'messages':>8}  {'subject':<26} {'save ms':>9} {'load ms':>9}")
        for size in sizes:
            memory = InMemoryMemory()
            await memory.add([message(i) for i in range(size)])
            saves: dict[str, list[float]] = {name: [] for name in subjects}
            loads: dict[str, list[float]] = {name: [] for name in subjects}
            for subject in subjects.values():  # warm up: connections, files, caches
                await subject.save_session_state(f"s{size}", user_id="u", memory=memory)
            for _ in range(rounds):
                for name, subject in subjects.items():
                    start = time.perf_counter()
                    await subject.save_session_state(f"s{size}", user_id="u", memory=memory)
                    saves[name].append(time.perf_counter() - start)
                    loaded = InMemoryMemory()
                    start = time.perf_counter()
                    await subject.load_session_state(f"s{size}", user_id="u", memory=loaded)
                    loads[name].append(time.perf_counter() - start)
                    if len(loaded.content) != size:
                        raise SystemExit(f"{name} loaded {len(loaded.content)} of {size} messages")
            for name in subjects:
                save, load = statistics.median(saves[name]), statistics.median(loads[name])
                print(f"{size:>8}  {name:<26} {save * 1e3:>9.2f} {load * 1e3:>9.2f}")
        for subject in subjects.values():
            if isinstance(subject, SessionHubSession):
                await subject.service.stop()
        await pool.disconnect()


def main() -> None:
    """Parse the sizes and rounds, then run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 1_000, 5_000])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(run(args.sizes, args.rounds))


if __name__ == "__main__":
    main()
