"""Measure the MongoDB backend against a raw PyMongo async floor and print the ratios.

    python plugins/mongodb/bench_append.py [--url URL] [--iterations 1000] [--standalone]

Without ``--url`` a private SecantusDB server (``pip install secantusdb``) is
started in its own process: a one-member replica set (appends are
transactions), or with ``--standalone`` a standalone server (the
publish-or-lease scheme). With ``--url``, ``--standalone`` forces the
standalone scheme (``transactions="never"``) on that server.

Workloads, on one database dropped afterwards, with the backend's write
concern (``w="majority", j=True``):

- ``raw``: one ``insert_one`` of an event-sized document through
  ``pymongo.AsyncMongoClient``, the floor of any write;
- ``append@10`` / ``append@10000``: ``SessionHistoryService.append`` of one
  message to a session holding 10 events, and to one holding 10,000;
- ``backend@10``: ``MongoBackend.append`` of one event to a session of 10, the
  backend's own share of ``append@10`` (no validation, hooks or normalising);
- ``last20@100`` / ``last20@10000``: ``get_session(last_n=20)`` of a session
  holding 100 events, and 10,000.

Samples are interleaved, in an order that rotates every iteration, so drift
in the machine's load hits every workload alike; each ratio is given both as
a ratio of medians and as the median of the ratios of samples taken side by
side. Targets: append@10000 <= 1.2x append@10; append@10 <= 2x raw;
last20@10000 <= 1.2x last20@100.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

from pymongo import AsyncMongoClient
from pymongo.write_concern import WriteConcern

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
from sessionhub_mongodb.backend import MongoBackend, MongoSettings
from sessionhub_mongodb.testing import mongodb_server

MESSAGE = "The quick brown fox jumps over the lazy dog. " * 4
USER = "bench"
SMALL_SESSIONS = 50
TARGETS = (
    ("append@10000", "append@10", 1.2),
    ("append@10", "raw", 2.0),
    ("backend@10", "raw", 2.0),
    ("last20@10000", "last20@100", 1.2),
)

Workload = Callable[[], Awaitable[object]]


@contextmanager
def private_server(standalone: bool) -> Iterator[str]:
    """A private SecantusDB server (the tests' own helper); yield its URL."""
    with mongodb_server(standalone=standalone) as url:
        yield url


async def _fill(service: SessionHistoryService, session_id: str, count: int) -> None:
    await service.create_session(USER, session_id)
    for start in range(0, count, 500):
        await service.append((USER, session_id), [MESSAGE] * min(500, count - start))


async def run(url: str, iterations: int, transactions: str) -> tuple[dict[str, list[float]], str]:
    """Fill the sessions, then time every workload ``iterations`` times, interleaved."""
    database = f"sessionhub_bench_{uuid.uuid4().hex[:8]}"
    settings = MongoSettings(url=url, database=database, transactions=transactions)  # type: ignore[arg-type]
    backend = MongoBackend(settings)
    service = SessionHistoryService(
        backend,
        settings=SessionHubSettings.isolated(purge_interval=None),
        plugin_manager=get_plugin_manager(entry_points=False),
    )
    raw_client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(url)
    raw_collection = raw_client[database].get_collection(
        "raw_events", write_concern=WriteConcern(w="majority", j=True)
    )
    try:
        async with service:
            scheme = "transactions" if backend.uses_transactions else "standalone scheme"
            row = event_to_json(Event(role="user", content=[TextPart(text=MESSAGE)], seq=1))

            async def raw_insert() -> None:
                await raw_collection.insert_one(
                    {"session": "raw", "seq": 1, "event_id": uuid.uuid4().hex, "data": row}
                )

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
                "raw": raw_insert,
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
    finally:
        await raw_client.drop_database(database)
        await raw_client.close()
    return samples, scheme


def report(samples: dict[str, list[float]], scheme: str) -> None:
    """Print p50 / p90 per workload and the target ratios."""
    print(f"appends use: {scheme}\n")
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


def main() -> None:
    """Parse the options, find or start a server, run, print the report."""
    parser = argparse.ArgumentParser(description="MongoDB backend latency against raw PyMongo.")
    parser.add_argument("--url", help="a MongoDB server (default: a private SecantusDB)")
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument(
        "--standalone", action="store_true", help="exercise the standalone append scheme"
    )
    options = parser.parse_args()
    transactions = "never" if options.standalone and options.url else "auto"
    if options.url:
        report(*asyncio.run(run(options.url, options.iterations, transactions)))
        return
    with private_server(options.standalone) as url:
        report(*asyncio.run(run(url, options.iterations, transactions)))


if __name__ == "__main__":
    main()
