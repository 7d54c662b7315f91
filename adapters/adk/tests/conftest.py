"""Stores for the adapter's tests: every sessionhub backend, real servers, never mocks.

``store`` is parametrised over memory, sqlite, redis and mongodb; each test
gets an empty store, and calling ``store()`` opens another sessionhub service
on the same data (a second process's view). Redis and MongoDB come from
``sessionhub_redis.testing`` / ``sessionhub_mongodb.testing`` (the environment's
URL, a container, or a private server); with ``CI=true`` a missing server fails
the run instead of skipping.

``session_service`` is the fixture ADK's contract tests take: the adapter over
each store, plus ADK's own ``InMemorySessionService`` as the reference the
contract is checked against. A known divergence is recorded in
``DIVERGENCES`` with its reason and runs as a strict xfail.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from google.adk.sessions.in_memory_session_service import InMemorySessionService

from sessionhub import SessionHistoryService, SessionHubSettings
from sessionhub_adk import SessionHubSessionService

BACKENDS = ["memory", "sqlite", "redis", "mongodb"]
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")

DIVERGENCES: dict[str, dict[str, str]] = {}
"""Backend -> test name -> why that backend fails it today (a strict xfail)."""

Store = Callable[[], SessionHistoryService]


def _server_url(module: str, start: str) -> Iterator[str]:
    """The URL a plugin's ``testing`` helper yields; its ServerUnavailable skips (fails in CI)."""
    testing = importlib.import_module(module)
    try:
        with getattr(testing, start)() as url:
            yield url
    except testing.ServerUnavailable as exc:
        if IN_CI:
            pytest.fail(f"CI=true but {exc}", pytrace=False)
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    yield from _server_url("sessionhub_redis.testing", "redis_server")


@pytest.fixture(scope="session")
def mongodb_url() -> Iterator[str]:
    yield from _server_url("sessionhub_mongodb.testing", "mongodb_server")


def _settings(backend: str, request: pytest.FixtureRequest, tmp_path) -> dict[str, object]:
    unique = uuid.uuid4().hex[:12]
    if backend == "memory":
        return {"url": f"memory://adk-{unique}"}
    if backend == "sqlite":
        return {"url": f"sqlite:///{tmp_path / 'sessions.db'}"}
    if backend == "redis":
        url = request.getfixturevalue("redis_url")
        return {"backend": "redis", "redis": {"url": url, "key_prefix": f"adk-{unique}:"}}
    url = request.getfixturevalue("mongodb_url")
    return {"backend": "mongodb", "mongodb": {"url": url, "database": f"adk_{unique}"}}


def _mark_divergence(request: pytest.FixtureRequest, backend: str) -> None:
    divergence = DIVERGENCES.get(backend, {}).get(request.node.originalname)
    if divergence is not None:
        request.node.add_marker(pytest.mark.xfail(strict=True, reason=divergence))


@contextlib.asynccontextmanager
async def _opened_store(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Store]:
    values = _settings(backend, request, tmp_path)
    opened: list[SessionHistoryService] = []

    def open_service() -> SessionHistoryService:
        service = SessionHistoryService(
            settings=SessionHubSettings.isolated(purge_interval=None, **values)
        )
        opened.append(service)
        return service

    try:
        yield open_service
    finally:
        for service in opened:
            await service.stop()
        if backend == "mongodb":
            import pymongo

            options = values["mongodb"]
            assert isinstance(options, dict)
            with pymongo.MongoClient(options["url"], timeoutMS=60000) as client:
                client.drop_database(options["database"])


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    """Each sessionhub backend in turn (a recorded divergence becomes a strict xfail)."""
    _mark_divergence(request, request.param)
    return request.param


@pytest_asyncio.fixture
async def store(
    backend_name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Store]:
    """Open a sessionhub service on this test's empty store; every call opens another."""
    async with _opened_store(backend_name, request, tmp_path) as open_service:
        yield open_service


@pytest_asyncio.fixture
async def adk_service(store: Store) -> AsyncIterator[SessionHubSessionService]:
    """The adapter over this test's store."""
    async with SessionHubSessionService(store()) as service:
        yield service


@pytest_asyncio.fixture(params=["adk_in_memory", *BACKENDS])
async def session_service(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[object]:
    """What ADK's contract tests take: ADK's reference service, then the adapter per backend."""
    if request.param == "adk_in_memory":
        yield InMemorySessionService()
        return
    _mark_divergence(request, request.param)
    async with (
        _opened_store(request.param, request, tmp_path) as open_service,
        SessionHubSessionService(open_service()) as service,
    ):
        yield service
