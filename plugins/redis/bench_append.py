"""Measure the Redis backend against a raw redis-py round trip and print the ratios.

    python plugins/redis/bench_append.py [--iterations 2000] [--url redis://127.0.0.1:6380/0]

Without ``--url`` the tests' server helper provides one (a private
``redis-server`` from PATH on a free loopback port, or a container). The
workloads and the report are ``sessionhub.testing.latency``'s; the floor
``raw`` is one ``RPUSH`` of an event-sized JSON text through a plain redis-py
client (one round trip). Targets: append@10 <= 1.5x raw; append@10000 <= 1.2x
append@10; last20@10000 <= 1.2x last20@100.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid

from pydantic import SecretStr
from redis.asyncio import Redis

from sessionhub import SessionHistoryService
from sessionhub.plugins import get_plugin_manager
from sessionhub.settings import SessionHubSettings
from sessionhub.testing.latency import FLAT, Target, event_row, measure, report
from sessionhub_redis.backend import RedisBackend, RedisSettings
from sessionhub_redis.testing import redis_server

TARGETS = (Target("append@10", "raw", 1.5), Target("backend@10", "raw", 1.5), *FLAT)


async def run(url: str, iterations: int) -> dict[str, list[float]]:
    """Time the workloads against a raw RPUSH, under a key prefix of their own."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}:"
    service = SessionHistoryService(
        RedisBackend(RedisSettings(url=SecretStr(url), key_prefix=prefix)),
        settings=SessionHubSettings.isolated(purge_interval=None),
        plugin_manager=get_plugin_manager(entry_points=False),
    )
    raw = Redis.from_url(url)
    row = event_row()
    raw_key = prefix + "raw"

    async def raw_push() -> None:
        await raw.rpush(raw_key, row)

    try:
        async with service:
            return await measure(service, raw_push, iterations)
    finally:
        await raw.delete(raw_key)
        await raw.aclose()


def main() -> None:
    """Parse the options, run against the given or a private server, print the report."""
    parser = argparse.ArgumentParser(description="Redis backend latency against raw redis-py.")
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--url", help="a running server (default: start a private one)")
    options = parser.parse_args()
    if options.url:
        report(asyncio.run(run(options.url, options.iterations)), TARGETS)
        return
    with redis_server() as url:
        report(asyncio.run(run(url, options.iterations)), TARGETS)


if __name__ == "__main__":
    main()
