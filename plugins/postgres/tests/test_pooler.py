"""Behind PgBouncer in transaction mode: what the deployment guide says works, shown working.

Each test runs a private PgBouncer (``sessionhub_postgres.testing.PgBouncer``,
the ``bouncer`` fixture) in front of the tests' server, with fewer server
connections than clients, so one backend's statements run on different server
connections and different backends' on the same one. Skipped where
``pgbouncer`` is not installed (apt-get install pgbouncer; CI installs it where
it can), even with ``CI=true``: the pooler is an option of a deployment, not a
server the backend needs. The whole conformance suite through it is in
``test_conformance.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import pytest

from sessionhub import BackendError, Event, SessionHistoryService, TextPart
from sessionhub.settings import SessionHubSettings
from sessionhub_postgres._settings import driver_dsn
from sessionhub_postgres.backend import PostgresBackend, PostgresSettings
from sessionhub_postgres.testing import PgBouncer


def _service(settings: PostgresSettings) -> SessionHistoryService:
    return SessionHistoryService(
        PostgresBackend(settings), settings=SessionHubSettings.isolated(purge_interval=None)
    )


@pytest.mark.asyncio
async def test_writers_of_three_processes_through_the_pooler_store_each_event_once(
    behind: Callable[..., PostgresSettings],
) -> None:
    services = [_service(behind()) for _ in range(3)]
    for service in services:
        await service.start()
    try:
        await services[0].create_session("alice", "shared")

        async def writer(service: SessionHistoryService, number: int) -> None:
            for turn in range(20):
                event = Event(id=f"w{number}-{turn}", role="user", content=[TextPart(text="hi")])
                await service.append(("alice", "shared"), event)

        await asyncio.gather(*(writer(services[n % 3], n) for n in range(12)))
        got = await services[1].get_session("alice", "shared")
        assert got is not None
        assert [event.seq for event in got.events] == list(range(1, 241))
        assert len({event.id for event in got.events}) == 240
        assert got.event_count == got.last_seq == 240
    finally:
        for service in services:
            await service.stop()


@pytest.mark.asyncio
async def test_the_statement_cache_behind_the_pooler_fails_naming_the_setting(
    bouncer: PgBouncer, postgres_url: str, schema: str
) -> None:
    # A statement asyncpg prepared on one server connection is later sent, by name,
    # down whichever connection the pooler hands the client for that transaction.
    settings = PostgresSettings(url=bouncer.url, schema=schema, max_pool_size=4)
    service = _service(settings)
    appended = 0

    async def user(name: str) -> None:
        nonlocal appended
        await service.create_session(name, "s")
        for turn in range(30):
            await service.append((name, "s"), f"turn {turn}")
            appended += 1
            await service.get_session(name, "s", last_n=2)

    try:
        await service.start()
        outcomes = await asyncio.gather(*(user(f"u{n}") for n in range(8)), return_exceptions=True)
    finally:
        await service.stop()
    errors = [outcome for outcome in outcomes if outcome is not None]
    assert errors, "every call found its prepared statement: the pooler kept them"
    for error in errors:
        assert isinstance(error, BackendError), repr(error)
        message = str(error)
        assert "statement_cache_size = 0" in message and "\n" not in message
    # Nothing half-done: every append that returned is stored, and no other.
    conn = await asyncpg.connect(driver_dsn(postgres_url))
    try:
        stored = await conn.fetchval(f'SELECT count(*) FROM "{schema}".sessionhub_events')
    finally:
        await conn.close()
    assert stored == appended
