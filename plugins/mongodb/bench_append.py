"""Measure the MongoDB backend against a raw PyMongo async floor and print the ratios.

    python plugins/mongodb/bench_append.py [--url URL] [--iterations 1000] [--standalone]

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
"""

from __future__ import annotations

import argparse
import asyncio
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


async def run(
    url: str, iterations: int, transactions: Literal["auto", "never"]
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
    options = parser.parse_args()
    transactions: Literal["auto", "never"] = (
        "never" if options.standalone and options.url else "auto"
    )
    server: AbstractContextManager[str] = (
        nullcontext(options.url) if options.url else mongodb_server(standalone=options.standalone)
    )
    with server as url:
        samples, scheme = asyncio.run(run(url, options.iterations, transactions))
    print(f"contended and app:/user: appends use: {scheme}\n")
    report(samples, TARGETS)


if __name__ == "__main__":
    main()
