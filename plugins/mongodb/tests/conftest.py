"""Real MongoDB servers for the MongoDB backend's tests; never mocks.

Where the server comes from, in order:

1. ``SESSIONHUB_TEST_MONGODB_URL``, if set (any MongoDB deployment);
2. a ``mongo`` container through testcontainers, when a Docker engine answers;
3. a private SecantusDB server (``pip install sessionhub-mongodb[testing]``), a MongoDB
   wire-protocol server on WiredTiger, started in its own process on a free
   loopback port for the test session: one presenting itself as a replica set
   (transactions) and, for the standalone scheme, one presenting itself as a
   standalone server.

With ``CI=true`` a missing server fails the run; otherwise the tests skip,
saying why. Every test gets its own, empty database, dropped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pymongo
import pytest

from sessionhub_mongodb.testing import (
    MongoServer,
    SecantusProcess,
    docker_answers,
    secantus_available,
)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"No MongoDB server for the tests (CI=true): {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def server_directory() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="sessionhub-mongodb-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def mongo_server(server_directory: Path) -> Iterator[MongoServer]:
    """The main test server (a replica set where we start it: transactions available)."""
    url = os.environ.get("SESSIONHUB_TEST_MONGODB_URL")
    if url:
        yield MongoServer(url, "external")
        return
    if docker_answers():
        from testcontainers.mongodb import MongoDbContainer

        with MongoDbContainer("mongo:8.0") as container:
            yield MongoServer(container.get_connection_url(), "external")
        return
    if not secantus_available():
        _unavailable(
            "set SESSIONHUB_TEST_MONGODB_URL, start a Docker engine, or "
            "pip install 'sessionhub-mongodb[testing]' (SecantusDB, a MongoDB wire-protocol server)"
        )
    server = SecantusProcess(server_directory / "replica-set")
    server.start()
    try:
        yield MongoServer(server.url, "replica-set")
    finally:
        server.stop()


@pytest.fixture(scope="session")
def standalone_server(server_directory: Path, mongo_server: MongoServer) -> Iterator[MongoServer]:
    """A server presenting itself as standalone (no transactions), or the main one if given."""
    if mongo_server.kind == "external" or not secantus_available():
        yield mongo_server
        return
    server = SecantusProcess(server_directory / "standalone", standalone=True)
    server.start()
    try:
        yield MongoServer(server.url, "standalone")
    finally:
        server.stop()


@pytest.fixture
def secantus_process(tmp_path: Path) -> Iterator[SecantusProcess]:
    """A private SecantusDB server for a test that stops and restarts it."""
    if not secantus_available():
        _unavailable("pip install 'sessionhub-mongodb[testing]' to run the server fault tests")
    server = SecantusProcess(tmp_path / "private-server")
    server.start()
    try:
        yield server
    finally:
        server.stop(kill=True)


@contextlib.contextmanager
def _dropped_afterwards(
    server: MongoServer, name: str, *, end_sessions: bool = False
) -> Iterator[str]:
    try:
        yield name
    finally:
        # timeoutMS: a drop that cannot finish fails the test instead of stalling the run.
        with pymongo.MongoClient(
            server.url, serverSelectionTimeoutMS=5000, timeoutMS=60000
        ) as client:
            if end_sessions and server.kind != "external":
                # A writer process killed mid-transaction leaves its transaction open, and the
                # test server may keep it (and its locks) until then: end every session of
                # this private server first. Never on a server the tests do not own.
                client.admin.command("killAllSessions", [])
            client.drop_database(name)


@pytest.fixture
def database_name(mongo_server: MongoServer) -> Iterator[str]:
    """A fresh database on the main server, dropped after the test."""
    with _dropped_afterwards(mongo_server, f"sessionhub_test_{uuid.uuid4().hex[:12]}") as name:
        yield name


@pytest.fixture
def standalone_database_name(standalone_server: MongoServer) -> Iterator[str]:
    """A fresh database on the standalone server, dropped after the test."""
    with _dropped_afterwards(standalone_server, f"sessionhub_test_{uuid.uuid4().hex[:12]}") as name:
        yield name


@dataclass
class Target:
    """Where a test writes: server URL, database, and the backend's ``transactions`` setting."""

    url: str
    database: str
    transactions: str
    scheme: str
    """``transactions`` or ``standalone``: the append scheme the test means to exercise."""

    def settings(self, **options: object):
        from sessionhub_mongodb.backend import MongoSettings

        return MongoSettings(
            url=self.url, database=self.database, transactions=self.transactions, **options
        )


@pytest.fixture(params=["transactions", "standalone"])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """Each append scheme in turn: transactions (replica set), then the standalone scheme."""
    if request.param == "transactions":
        server: MongoServer = request.getfixturevalue("mongo_server")
        transactions = "auto"
    else:
        server = request.getfixturevalue("standalone_server")
        transactions = "auto" if server.kind == "standalone" else "never"
    name = f"sessionhub_test_{uuid.uuid4().hex[:12]}"
    with _dropped_afterwards(server, name, end_sessions=True):
        yield Target(server.url, name, transactions, request.param)
