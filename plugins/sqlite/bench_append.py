"""Measure the SQLite backend against the raw aiosqlite floor and print the ratios.

    python plugins/sqlite/bench_append.py [--iterations 2000] [--synchronous NORMAL]

The workloads and the report are ``sessionhub.testing.latency``'s, on fresh
files with the same settings (WAL and the given ``synchronous``); the floor
``raw`` is one ``INSERT`` of an event-sized row in its own transaction
(``BEGIN IMMEDIATE; INSERT; COMMIT``) through the public aiosqlite API. The raw
floor has its own file: a commit from another connection to the same file
empties the backend connection's page cache, which no real single-writer
deployment pays. Workloads run in a seeded random order. Targets: append@10 <=
1.5x raw; append@10000 <= 1.2x append@10; last20@10000 <= 1.2x last20@100.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path
from typing import Literal

import aiosqlite

from sessionhub import SessionHistoryService
from sessionhub.plugins import get_plugin_manager
from sessionhub.settings import SessionHubSettings
from sessionhub.testing.latency import FLAT, Target, event_row, measure, report
from sessionhub_sqlite.backend import SQLiteBackend, SQLiteSettings

TARGETS = (Target("append@10", "raw", 1.5), Target("backend@10", "raw", 1.5), *FLAT)


async def run(
    directory: Path, iterations: int, synchronous: Literal["NORMAL", "FULL"]
) -> dict[str, list[float]]:
    """Time the workloads against a raw aiosqlite transaction on its own file."""
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
        row = event_row()

        async def raw_insert() -> None:
            await raw.execute("BEGIN IMMEDIATE")
            await raw.execute("INSERT INTO raw_events (data) VALUES (?)", (row,))
            await raw.execute("COMMIT")

        return await measure(service, raw_insert, iterations, order="shuffle")


def main() -> None:
    """Parse the options, run on fresh temporary files, print the report."""
    parser = argparse.ArgumentParser(description="SQLite backend latency against raw aiosqlite.")
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--synchronous", choices=("NORMAL", "FULL"), default="NORMAL")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        report(asyncio.run(run(Path(directory), options.iterations, options.synchronous)), TARGETS)


if __name__ == "__main__":
    main()
