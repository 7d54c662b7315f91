"""Measure the MongoDB backend against a raw PyMongo async floor and print the ratios.

    python plugins/mongodb/bench_append.py [--url URL] [--iterations 1000] [--standalone]
    python plugins/mongodb/bench_append.py --history [...]

Without ``--url`` a private SecantusDB server (``pip install secantusdb``) is
started in its own process: a one-member replica set (appends are
transactions), or with ``--standalone`` a standalone server (the
publish-or-lease scheme). With ``--url``, ``--standalone`` forces the
standalone scheme (``transactions="never"``) on that server.

The workloads and the report are ``sessionhub.testing.latency``'s, on one
database dropped afterwards; the floor ``raw`` is one ``insert_one`` of an
event-sized document through ``pymongo.AsyncMongoClient``, with the backend's
write concern (``w="majority", j=True``). Targets: append@10000 <= 1.2x
append@10; append@10 <= 2x raw; last20@10000 <= 1.2x last20@100.

``--history`` times ``pop_event`` and a compare-and-set append
(``expected_last_seq``) beside a plain append, at 10 and 10,000 events
(targets: each <= 1.5x the plain append, and flat in history length).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from contextlib import AbstractContextManager, nullcontext
from typing import Literal

from pydantic import SecretStr
from pymongo import AsyncMongoClient
from pymongo.write_concern import WriteConcern

from sessionhub import SessionHistoryService
from sessionhub.plugins import get_plugin_manager
from sessionhub.settings import SessionHubSettings
from sessionhub.testing.latency import FLAT, Target, event_row, measure, report
from sessionhub_mongodb.backend import MongoBackend, MongoSettings
from sessionhub_mongodb.testing import mongodb_server

TARGETS = (Target("append@10", "raw", 2.0), Target("backend@10", "raw", 2.0), *FLAT)
HISTORY_TARGETS = (
    Target("pop@10", "append@10", 1.5),
    Target("pop@10000", "append@10000", 1.5),
    Target("cas@10", "append@10", 1.5),
    Target("cas@10000", "append@10000", 1.5),
    Target("pop@10000", "pop@10", 1.2),
    Target("cas@10000", "cas@10", 1.2),
)


async def measure_history(
    service: SessionHistoryService, iterations: int
) -> dict[str, list[float]]:
    """Time append, pop (then refill, untimed) and CAS append at 10 and 10,000 events."""
    last_seq: dict[str, int] = {}
    for length in (10, 10_000):
        session_id = f"history-{length}"
        await service.create_session("bench", session_id)
        for start in range(0, length, 500):
            stored = await service.append(("bench", session_id), ["m"] * min(500, length - start))
        last_seq[session_id] = stored[-1].seq

    async def append(session_id: str) -> None:
        [event] = await service.append(("bench", session_id), "plain")
        last_seq[session_id] = event.seq

    async def cas(session_id: str) -> None:
        [event] = await service.append(
            ("bench", session_id), "cas", expected_last_seq=last_seq[session_id]
        )
        last_seq[session_id] = event.seq

    async def pop(session_id: str) -> None:
        await service.pop_event("bench", session_id)

    workloads = {
        f"{name}@{length}": (action, f"history-{length}")
        for name, action in (("append", append), ("pop", pop), ("cas", cas))
        for length in (10, 10_000)
    }
    names = list(workloads)
    samples: dict[str, list[float]] = {name: [] for name in names}
    warmup = max(20, iterations // 10)
    for turn in range(warmup + iterations):
        start = turn % len(names)
        for name in names[start:] + names[:start]:
            action, session_id = workloads[name]
            began = time.perf_counter()
            await action(session_id)
            elapsed = time.perf_counter() - began
            if turn >= warmup:
                samples[name].append(elapsed)
        for length in (10, 10_000):  # a round adds two events and pops one: keep the length
            await pop(f"history-{length}")
    return samples


async def run(
    url: str, iterations: int, transactions: Literal["auto", "never"], history: bool = False
) -> tuple[dict[str, list[float]], str]:
    """Time the workloads against a raw insert_one; also say which scheme appends use."""
    database = f"sessionhub_bench_{uuid.uuid4().hex[:8]}"
    settings = MongoSettings(url=SecretStr(url), database=database, transactions=transactions)
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
    row = event_row()

    async def raw_insert() -> None:
        await raw_collection.insert_one(
            {"session": "raw", "seq": 1, "event_id": uuid.uuid4().hex, "data": row}
        )

    try:
        async with service:
            scheme = "transactions" if backend.uses_transactions else "standalone scheme"
            if history:
                return await measure_history(service, iterations), scheme
            return await measure(service, raw_insert, iterations), scheme
    finally:
        await raw_client.drop_database(database)
        await raw_client.close()


def main() -> None:
    """Parse the options, find or start a server, run, print the report."""
    parser = argparse.ArgumentParser(description="MongoDB backend latency against raw PyMongo.")
    parser.add_argument("--url", help="a MongoDB server (default: a private SecantusDB)")
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument(
        "--standalone", action="store_true", help="exercise the standalone append scheme"
    )
    parser.add_argument(
        "--history", action="store_true", help="time pop and compare-and-set appends instead"
    )
    options = parser.parse_args()
    transactions: Literal["auto", "never"] = (
        "never" if options.standalone and options.url else "auto"
    )
    server: AbstractContextManager[str] = (
        nullcontext(options.url) if options.url else mongodb_server(standalone=options.standalone)
    )
    with server as url:
        samples, scheme = asyncio.run(run(url, options.iterations, transactions, options.history))
    print(f"contended and app:/user: appends use: {scheme}\n")
    report(samples, HISTORY_TARGETS if options.history else TARGETS)


if __name__ == "__main__":
    main()
