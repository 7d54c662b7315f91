"""Every test of the adapter runs on each first-party backend, on real stores, offline.

memory and SQLite (a file in the test's directory) are always there; Redis and
MongoDB come from the plugins' own test servers (``sessionhub_redis.testing``,
``sessionhub_mongodb.testing``: an environment URL, a container, or a private
``redis-server`` / SecantusDB process). With ``CI=true`` a missing server fails
the run; otherwise those tests skip, saying why.

AgentScope 1.x and 2.x cannot be installed together: ``test_v1_*`` modules run
under 1.x (``nox -s "adapter(adapter='agentscope1')"``), ``test_v2_*`` under 2.x.
No test reaches a network: models are scripted stubs of AgentScope's base class.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import pytest
import pytest_asyncio

from sessionhub import SessionHistoryService, SessionHubSettings

BACKENDS = ["memory", "sqlite", "redis", "mongodb"]
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")

try:
    AGENTSCOPE = version("agentscope")
except PackageNotFoundError:
    AGENTSCOPE = None
_MAJOR = AGENTSCOPE.partition(".")[0] if AGENTSCOPE else None

# The other major's tests cannot import; with no AgentScope, nothing runs.
collect_ignore_glob = [f"test_v{major}_*.py" for major in ("1", "2") if major != _MAJOR]
if _MAJOR is None:
    collect_ignore_glob.append("test_examples.py")


def pytest_report_header() -> str:
    return f"agentscope: {AGENTSCOPE or 'not installed'}"


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


@contextlib.contextmanager
def _server(name: str) -> Iterator[str]:
    if name == "redis":
        from sessionhub_redis.testing import ServerUnavailable, redis_server

        starting = redis_server()
    else:
        from sessionhub_mongodb.testing import ServerUnavailable, mongodb_server

        starting = mongodb_server()
    try:
        url = starting.__enter__()
    except ServerUnavailable as exc:
        _unavailable(str(exc))
    try:
        yield url
    finally:
        starting.__exit__(None, None, None)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with _server("redis") as url:
        yield url


@pytest.fixture(scope="session")
def mongodb_url() -> Iterator[str]:
    with _server("mongodb") as url:
        yield url


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Any) -> dict[str, Any]:
    """Settings for an empty store of one backend: the test's own file, namespace or database."""
    name = request.param
    unique = uuid.uuid4().hex[:12]
    if name == "memory":
        return {"url": f"memory://agentscope-{unique}"}
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

        with pymongo.MongoClient(store["url"], serverSelectionTimeoutMS=5000) as client:
            client.drop_database(database)
