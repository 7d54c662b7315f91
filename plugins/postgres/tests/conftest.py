"""Real PostgreSQL for the PostgreSQL backend's tests, never mocks.

The server, in this order: ``SESSIONHUB_TEST_POSTGRES_URL`` if set; else a
testcontainers PostgreSQL when a Docker engine answers; else the machine's own
server on 127.0.0.1:5432 (user postgres, database test). With ``CI=true`` a
missing server fails the run; otherwise the tests that need it are skipped,
saying why. Each test works in a schema of its own, dropped afterwards, so it
starts empty and leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
import pytest_asyncio

from sessionhub import SessionHistoryService
from sessionhub.plugins import get_plugin_manager
from sessionhub.settings import SessionHubSettings
from sessionhub.testing.servers import missing
from sessionhub_postgres._settings import driver_dsn
from sessionhub_postgres.backend import PostgresBackend, PostgresSettings
from sessionhub_postgres.testing import (
    RUN_PREFIX,
    PgBouncer,
    PrivateCluster,
    ServerUnavailable,
    drop_schema,
    postgres_server,
    scratch_schema,
)

# Only this run's scratch schemas, and sessionhub tables in public: the server is shared,
# and other processes' schemas come and go while the tests run.
_LEFTOVERS = (
    "SELECT n.nspname || '.' || c.relname FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') "
    "AND (starts_with(n.nspname, $1) OR (n.nspname = 'public' AND c.relname LIKE 'sessionhub%')) "
    "ORDER BY 1"
)


async def _tables(url: str) -> list[str]:
    conn = await asyncpg.connect(driver_dsn(url))
    try:
        return [row[0] for row in await conn.fetch(_LEFTOVERS, RUN_PREFIX)]
    finally:
        await conn.close()


@pytest.fixture(scope="session", autouse=True)
def _nothing_left_behind() -> Iterator[None]:
    """After every test, the server holds no sessionhub schema or table it did not hold before."""
    try:
        with postgres_server() as url:
            before = asyncio.run(_tables(url))
            yield
            left = sorted(set(asyncio.run(_tables(url))) - set(before))
    except ServerUnavailable:
        yield
        return
    assert not left, f"the tests left these tables behind: {left}"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL of the PostgreSQL the session's tests use."""
    try:
        with postgres_server() as url:
            yield url
    except ServerUnavailable as exc:
        missing(str(exc))


def _private_cluster() -> Iterator[PrivateCluster]:
    if os.environ.get("SESSIONHUB_TEST_POSTGRES_URL"):
        pytest.skip("SESSIONHUB_TEST_POSTGRES_URL names the server: no private cluster is started")
    try:
        with PrivateCluster() as started:
            yield started
    except ServerUnavailable as exc:
        missing(f"no private PostgreSQL cluster: {exc}")


@pytest.fixture
def cluster() -> Iterator[PrivateCluster]:
    """A private cluster for a test that stops its server (never the shared one)."""
    yield from _private_cluster()


@pytest.fixture(scope="module")
def module_cluster() -> Iterator[PrivateCluster]:
    """A private cluster shared by a module's tests, for roles (they belong to a cluster)."""
    yield from _private_cluster()


@pytest_asyncio.fixture
async def schema(postgres_url: str) -> AsyncIterator[str]:
    """A schema of the test's own (the backend creates it), dropped after the test."""
    name = scratch_schema()
    yield name
    await drop_schema(postgres_url, name)


@pytest.fixture
def pg_settings(postgres_url: str, schema: str) -> Callable[..., PostgresSettings]:
    """Build settings for the test's schema on the session's server."""

    def make(**overrides: Any) -> PostgresSettings:
        values: dict[str, Any] = {"url": postgres_url, "schema": schema, "max_pool_size": 4}
        values.update(overrides)
        return PostgresSettings.model_validate(values)

    return make


@pytest_asyncio.fixture
async def backend(pg_settings: Callable[..., PostgresSettings]) -> AsyncIterator[PostgresBackend]:
    """An opened backend in the test's own schema."""
    async with PostgresBackend(pg_settings()) as opened:
        yield opened


@pytest_asyncio.fixture
async def raw(postgres_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain asyncpg connection to the same server, to look at what the backend stored."""
    conn = await asyncpg.connect(driver_dsn(postgres_url))
    yield conn
    await conn.close()


@pytest.fixture
def make_service() -> Callable[..., SessionHistoryService]:
    """Build a service over a given backend, with isolated settings and no entry points."""

    def make(backend: Any, *, clock: Any = None, **settings: Any) -> SessionHistoryService:
        settings.setdefault("purge_interval", None)
        return SessionHistoryService(
            backend,
            settings=SessionHubSettings.isolated(**settings),
            plugin_manager=get_plugin_manager(entry_points=False),
            clock=clock,
        )

    return make


# --- behind a pooler ----------------------------------------------------------------


@pytest.fixture(scope="module")
def bouncer(postgres_url: str) -> Iterator[PgBouncer]:
    """A private PgBouncer in transaction mode sharing two server connections among clients."""
    if urlsplit(postgres_url).password:
        pytest.skip("the tests' server needs a password: the private PgBouncer trusts its users")
    try:
        with PgBouncer(postgres_url, pool_size=2) as started:
            yield started
    except ServerUnavailable as exc:
        # Not `missing`: the pooler is an option of a deployment, not a server the
        # backend needs, so its tests skip even with CI=true (CI installs it where it can).
        pytest.skip(str(exc))


@pytest.fixture
def behind(bouncer: PgBouncer, schema: str) -> Callable[..., PostgresSettings]:
    """Settings of a backend reaching the test's schema through the pooler, cache off."""

    def make(**overrides: Any) -> PostgresSettings:
        values: dict[str, Any] = {
            "url": bouncer.url,
            "schema": schema,
            "max_pool_size": 4,
            "statement_cache_size": 0,
        }
        values.update(overrides)
        return PostgresSettings.model_validate(values)

    return make


# --- least privilege ----------------------------------------------------------------

DML_ROLE = "sessionhub_dml"

GRANTS = (
    'GRANT USAGE ON SCHEMA "{schema}" TO {role}',
    'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}" TO {role}',
    'GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA "{schema}" TO {role}',
)
"""What the application's role needs once the tables exist, as the README lists it.

No grant on the identity sequence: inserting into an identity column does not need one.
"""


@pytest_asyncio.fixture
async def dml_settings(module_cluster: PrivateCluster) -> PostgresSettings:
    """Settings of a role holding only ``GRANTS`` on a schema its owner just created.

    ``EXECUTE`` is taken from ``PUBLIC`` first, so the grant is what lets the role in.
    """
    schema = f"app_{uuid.uuid4().hex[:12]}"
    async with PostgresBackend(
        PostgresSettings.model_validate({"url": module_cluster.url, "schema": schema})
    ):
        pass  # the owner creates the tables
    conn = await asyncpg.connect(module_cluster.url)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", DML_ROLE):
            await conn.execute(f"CREATE ROLE {DML_ROLE} LOGIN")
        await conn.execute(f'REVOKE ALL ON ALL FUNCTIONS IN SCHEMA "{schema}" FROM PUBLIC')
        for grant in GRANTS:
            await conn.execute(grant.format(schema=schema, role=DML_ROLE))
    finally:
        await conn.close()
    url = module_cluster.url.replace("postgres@", f"{DML_ROLE}@", 1)
    return PostgresSettings.model_validate({"url": url, "schema": schema, "max_pool_size": 4})
