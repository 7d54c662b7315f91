"""Pytest fixtures for framework adapters' tests: an empty store of each first-party backend.

A conftest imports them by name (``from sessionhub.testing.stores import redis_url,
mongodb_url, store, service``) and every test taking ``service`` runs on memory,
SQLite (a file in the test's directory), Redis and MongoDB. The servers come from
the plugins' own test helpers (``sessionhub_redis.testing``,
``sessionhub_mongodb.testing``: an environment URL, a container, or a private
``redis-server`` / SecantusDB process); with ``CI=true`` a missing one fails the
run, otherwise its tests skip, saying why. Needs those plugins installed.
"""

from __future__ import annotations

import contextlib
import importlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from sessionhub.service import SessionHistoryService
from sessionhub.settings import SessionHubSettings
from sessionhub.testing.servers import missing

__all__ = ["BACKENDS", "redis_url", "mongodb_url", "store", "service"]

BACKENDS = ("memory", "sqlite", "redis", "mongodb")
"""The backends every adapter test runs on."""


@contextlib.contextmanager
def _server(name: str) -> Iterator[str]:
    """The URL of a test server for ``name`` (``redis`` or ``mongodb``), or skip (fail in CI)."""
    testing: Any = importlib.import_module(f"sessionhub_{name}.testing")
    starting = getattr(testing, f"{name}_server")()
    try:
        url: str = starting.__enter__()
    except testing.ServerUnavailable as exc:
        missing(str(exc))
    try:
        yield url
    finally:
        starting.__exit__(None, None, None)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis server's URL for the whole test session."""
    with _server("redis") as url:
        yield url


@pytest.fixture(scope="session")
def mongodb_url() -> Iterator[str]:
    """A MongoDB (or SecantusDB) server's URL for the whole test session."""
    with _server("mongodb") as url:
        yield url


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Settings for an empty store of one backend: the test's own file, namespace or database."""
    name = request.param
    unique = uuid.uuid4().hex[:12]
    if name == "memory":
        return {"url": f"memory://adapter-test-{unique}"}
    if name == "sqlite":
        return {"url": f"sqlite:///{tmp_path / 'sessions.db'}"}
    if name == "redis":
        url = request.getfixturevalue("redis_url")
        return {"url": url, "redis": {"key_prefix": f"sessionhub-test:{unique}:"}}
    url = request.getfixturevalue("mongodb_url")
    return {"url": url, "mongodb": {"database": f"sessionhub_test_{unique}"}}


@pytest_asyncio.fixture
async def service(store: dict[str, Any]) -> AsyncIterator[SessionHistoryService]:
    """A started service on the empty store, stopped (and its database dropped) after the test."""
    settings = SessionHubSettings.isolated(purge_interval=None, **store)
    async with SessionHistoryService(settings=settings) as started:
        yield started
    database = store.get("mongodb", {}).get("database")
    if database:
        import pymongo

        client: pymongo.MongoClient[dict[str, Any]]
        with pymongo.MongoClient(store["url"], serverSelectionTimeoutMS=5000) as client:
            client.drop_database(database)
