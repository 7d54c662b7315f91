"""Measure the SQLite backend against the raw aiosqlite floor and print the ratios.

    python plugins/sqlite/bench_append.py [--iterations 2000] [--synchronous NORMAL]

Workloads, each on a fresh file with the same settings (WAL and the given
``synchronous``):

- ``raw``: one ``INSERT`` of an event-sized row in its own transaction
  (``BEGIN IMMEDIATE; INSERT; COMMIT``) through the public aiosqlite API;
- ``append@10`` / ``append@10000``: ``SessionHistoryService.append`` of one
  message to a session holding 10 events, and to one holding 10,000;
- ``backend@10``: ``SQLiteBackend.append`` of one event to a session of 10, the
  backend's own share of ``append@10`` (no validation, hooks or normalising);
- ``last20@100`` / ``last20@10000``: ``get_session(last_n=20)`` of a session
  holding 100 events, and 10,000.

The raw floor has its own file: a commit from another connection to the same
file empties the backend connection's page cache, which no real single-writer
deployment pays. Samples are interleaved, in an order that rotates every
iteration, so drift in the machine's load hits every workload alike; each
ratio is given both as a ratio of medians and as the median of the ratios of
samples taken side by side. Targets: append@10 <= 1.5x raw; append@10000 <=
1.2x append@10; last20@10000 <= 1.2x last20@100.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import aiosqlite

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
from sessionhub_sqlite.backend import SQLiteBackend, SQLiteSettings

MESSAGE = "The quick brown fox jumps over the lazy dog. " * 4
USER = "bench"
SMALL_SESSIONS = 50
TARGETS = (
    ("append@10", "raw", 1.5),
    ("append@10000", "append@10", 1.2),
    ("last20@10000", "last20@100", 1.2),
)

Workload = Callable[[], Awaitable[object]]


async def _fill(service: SessionHistoryService, session_id: str, count: int) -> None:
    await service.create_session(USER, session_id)
    for start in range(0, count, 500):
        await service.append((USER, session_id), [MESSAGE] * min(500, count - start))


async def run(
    directory: Path, iterations: int, synchronous: Literal["NORMAL", "FULL"]
) -> dict[str, list[float]]:
    """Fill the sessions, then time every workload ``iterations`` times, interleaved."""
    backend = SQLiteBackend(
        SQLiteSettings(path=directory / "sessionhub.db", synchronous=synchronous)
    )
    service = SessionHistoryService(
        backend,
        settings=SessionHubSettings.isolated(purge_interval=None),
        plugin_manager=get_plugin_manager(entry_points=False),
    )
    raw_connection = aiosqlite.connect(directory / "raw.db", isolation_level=None)
    async with service, raw_connection as raw:
        await raw.execute("PRAGMA journal_mode = WAL")
        await raw.execute(f"PRAGMA synchronous = {synchronous}")
        await raw.execute("CREATE TABLE raw_events (id INTEGER PRIMARY KEY, data TEXT)")
        row = event_to_json(Event(role="user", content=[TextPart(text=MESSAGE)], seq=1))

        async def raw_insert() -> None:
            await raw.execute("BEGIN IMMEDIATE")
            await raw.execute("INSERT INTO raw_events (data) VALUES (?)", (row,))
            await raw.execute("COMMIT")

        # Many sessions of 10 events, reset after each round, so that every
        # timed append meets a session holding 10.
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
                id=uuid.uuid4().hex, role="user", content=[TextPart(text=MESSAGE)], timestamp=now
            )
            key = SessionKey(service.app_name, USER, small_session(backend_small))
            await backend.append(AppendRequest(key, [event], [StateDeltas()], Expiry(now=now)))

        workloads: dict[str, Workload] = {
            "raw": raw_insert,
            "append@10": lambda: service.append((USER, small_session(small)), MESSAGE),
            "backend@10": backend_append,
            "append@10000": lambda: service.append((USER, "long"), MESSAGE),
            "last20@100": lambda: service.get_session(USER, "read-100", last_n=20),
            "last20@10000": lambda: service.get_session(USER, "read-10000", last_n=20),
        }
        names = list(workloads)
        chance = random.Random(0)
        samples: dict[str, list[float]] = {name: [] for name in names}
        warmup = max(50, iterations // 10)
        for index in range(warmup + iterations):
            turn["index"] = index
            if index and index % SMALL_SESSIONS == 0:
                for session_id in small + backend_small:
                    await service.delete_session(USER, session_id)
                    await _fill(service, session_id, 10)
            chance.shuffle(names)
            for name in names:
                began = time.perf_counter()
                await workloads[name]()
                elapsed = time.perf_counter() - began
                if index >= warmup:
                    samples[name].append(elapsed)
    return samples


def report(samples: dict[str, list[float]]) -> None:
    """Print p50 / p90 per workload and the target ratios."""
    p50 = {name: statistics.median(values) * 1e6 for name, values in samples.items()}
    print(f"{'workload':<16}{'p50 (us)':>10}{'p90 (us)':>10}")
    for name, values in samples.items():
        p90 = statistics.quantiles(values, n=10)[-1] * 1e6
        print(f"{name:<16}{p50[name]:>10.1f}{p90:>10.1f}")
    print(f"\n{'ratio':<30}{'of p50s':>9}{'paired':>9}  target")
    for top, bottom, target in (*TARGETS, ("backend@10", "raw", 1.5)):
        of_medians = p50[top] / p50[bottom]
        paired = statistics.median(
            a / b for a, b in zip(samples[top], samples[bottom], strict=True)
        )
        verdict = "ok" if of_medians <= target else "over"
        label = f"{top} / {bottom}"
        print(f"{label:<30}{of_medians:>9.2f}{paired:>9.2f}  <= {target} {verdict}")


def main() -> None:
    """Parse the options, run on fresh temporary files, print the report."""
    parser = argparse.ArgumentParser(description="SQLite backend latency against raw aiosqlite.")
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--synchronous", choices=("NORMAL", "FULL"), default="NORMAL")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        report(asyncio.run(run(Path(directory), options.iterations, options.synchronous)))


if __name__ == "__main__":
    main()
