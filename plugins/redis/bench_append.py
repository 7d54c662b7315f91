"""Measure the Redis backend against a raw redis-py round trip and print the ratios.

    python plugins/redis/bench_append.py [--iterations 2000] [--url redis://127.0.0.1:6380/0]

Without ``--url`` a private ``redis-server`` (from PATH) is started on a free
loopback port with no persistence, and stopped at the end. Workloads, all on
one connection pool to the same server:

- ``raw``: one ``RPUSH`` of an event-sized JSON text through redis-py, the floor
  of any write (one round trip);
- ``append@10`` / ``append@10000``: ``SessionHistoryService.append`` of one
  message to a session holding 10 events, and to one holding 10,000;
- ``backend@10``: ``RedisBackend.append`` of one event to a session of 10, the
  backend's own share of ``append@10`` (no validation, hooks or normalising);
- ``last20@100`` / ``last20@10000``: ``get_session(last_n=20)`` of a session
  holding 100 events, and 10,000.

Samples are interleaved, in an order that rotates every iteration, so drift in
the machine's load hits every workload alike. Targets: append@10000 <= 1.2x
append@10; append@10 <= 1.5x raw; last20@10000 <= 1.2x last20@100.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone

from redis.asyncio import Redis

from sessionhub import (
    AppendRequest,
    Event,
    Expiry,
    SessionHistoryService,
    SessionKey,
    StateDeltas,
    TextPart,
)
from sessionhub.backend import event_to_json
from sessionhub.plugins import get_plugin_manager
from sessionhub.settings import SessionHubSettings
from sessionhub_redis.backend import RedisBackend, RedisSettings

MESSAGE = "The quick brown fox jumps over the lazy dog. " * 4
USER = "bench"
SMALL_SESSIONS = 50
TARGETS = (
    ("append@10000", "append@10", 1.2),
    ("append@10", "raw", 1.5),
    ("last20@10000", "last20@100", 1.2),
    ("backend@10", "raw", 1.5),
)

Workload = Callable[[], Awaitable[object]]


async def _fill(service: SessionHistoryService, session_id: str, count: int) -> None:
    await service.create_session(USER, session_id)
    for start in range(0, count, 500):
        await service.append((USER, session_id), [MESSAGE] * min(500, count - start))


async def run(url: str, iterations: int) -> dict[str, list[float]]:
    """Fill the sessions, then time every workload ``iterations`` times, interleaved."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}:"
    backend = RedisBackend(RedisSettings(url=url, key_prefix=prefix))
    service = SessionHistoryService(
        backend,
        settings=SessionHubSettings.isolated(purge_interval=None),
        plugin_manager=get_plugin_manager(entry_points=False),
    )
    raw = Redis.from_url(url)
    try:
        async with service:
            row = event_to_json(Event(role="user", content=[TextPart(text=MESSAGE)], seq=1))
            raw_key = prefix + "raw"

            async def raw_push() -> None:
                await raw.rpush(raw_key, row)

            small = [f"small-{n}" for n in range(SMALL_SESSIONS)]
            backend_small = [f"backend-small-{n}" for n in range(SMALL_SESSIONS)]
            for session_id in small + backend_small:
                await _fill(service, session_id, 10)
            await _fill(service, "long", 10_000)
            await _fill(service, "read-100", 100)
            await _fill(service, "read-10000", 10_000)
            turn = {"index": 0}

            def small_session(names: list[str]) -> str:
                return names[turn["index"] % SMALL_SESSIONS]

            async def backend_append() -> None:
                now = datetime.now(timezone.utc)
                event = Event(
                    id=uuid.uuid4().hex,
                    role="user",
                    content=[TextPart(text=MESSAGE)],
                    timestamp=now,
                )
                key = SessionKey(service.app_name, USER, small_session(backend_small))
                await backend.append(AppendRequest(key, [event], [StateDeltas()], Expiry(now=now)))

            workloads: dict[str, Workload] = {
                "raw": raw_push,
                "append@10": lambda: service.append((USER, small_session(small)), MESSAGE),
                "backend@10": backend_append,
                "append@10000": lambda: service.append((USER, "long"), MESSAGE),
                "last20@100": lambda: service.get_session(USER, "read-100", last_n=20),
                "last20@10000": lambda: service.get_session(USER, "read-10000", last_n=20),
            }
            names = list(workloads)
            samples: dict[str, list[float]] = {name: [] for name in names}
            warmup = max(50, iterations // 10)
            for index in range(warmup + iterations):
                turn["index"] = index
                if index and index % SMALL_SESSIONS == 0:
                    for session_id in small + backend_small:
                        await service.delete_session(USER, session_id)
                        await _fill(service, session_id, 10)
                start = index % len(names)
                for name in names[start:] + names[:start]:
                    began = time.perf_counter()
                    await workloads[name]()
                    elapsed = time.perf_counter() - began
                    if index >= warmup:
                        samples[name].append(elapsed)
            await raw.delete(raw_key)
    finally:
        await raw.aclose()
    return samples


def report(samples: dict[str, list[float]]) -> None:
    """Print p50 / p90 per workload and the target ratios."""
    p50 = {name: statistics.median(values) * 1e6 for name, values in samples.items()}
    print(f"{'workload':<16}{'p50 (us)':>10}{'p90 (us)':>10}")
    for name, values in samples.items():
        p90 = statistics.quantiles(values, n=10)[-1] * 1e6
        print(f"{name:<16}{p50[name]:>10.1f}{p90:>10.1f}")
    print(f"\n{'ratio':<30}{'of p50s':>9}{'paired':>9}  target")
    for top, bottom, target in TARGETS:
        of_medians = p50[top] / p50[bottom]
        paired = statistics.median(
            a / b for a, b in zip(samples[top], samples[bottom], strict=True)
        )
        verdict = "ok" if of_medians <= target else "over"
        label = f"{top} / {bottom}"
        print(f"{label:<30}{of_medians:>9.2f}{paired:>9.2f}  <= {target} {verdict}")


def _private_server(directory: str) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not on PATH; pass --url to use a running server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=directory,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return process, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("the private redis-server did not start")


def main() -> None:
    """Parse the options, run against the given or a private server, print the report."""
    parser = argparse.ArgumentParser(description="Redis backend latency against raw redis-py.")
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--url", help="a running server (default: start a private one)")
    options = parser.parse_args()
    if options.url:
        report(asyncio.run(run(options.url, options.iterations)))
        return
    with tempfile.TemporaryDirectory() as directory:
        process, url = _private_server(directory)
        try:
            report(asyncio.run(run(url, options.iterations)))
        finally:
            process.terminate()
            process.wait(10)


if __name__ == "__main__":
    main()
