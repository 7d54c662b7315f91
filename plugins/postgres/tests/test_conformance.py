"""The PostgreSQL backend against the whole sessionhub contract.

Directly; through a private PgBouncer in transaction mode (``bouncer``, skipped
where ``pgbouncer`` is not installed); and as a role holding only the grants the
README lists (``dml_settings``, on a private cluster).
"""

from __future__ import annotations

import functools

import pytest
import pytest_asyncio

from sessionhub.testing import BackendConformance
from sessionhub_postgres.backend import PostgresBackend


class _OpenAgain:
    """``connect`` and ``backend_factory`` from the settings the ``backend`` fixture set."""

    @pytest_asyncio.fixture
    async def connect(self, backend):
        async def open_another():
            return await PostgresBackend(self.settings).__aenter__()

        yield open_another

    @pytest.fixture
    def backend_factory(self, backend):
        return functools.partial(PostgresBackend, self.settings)


class TestPostgresConformance(_OpenAgain, BackendConformance):
    @pytest_asyncio.fixture
    async def backend(self, pg_settings):
        self.settings = pg_settings()
        async with PostgresBackend(self.settings) as backend:
            yield backend


class TestConformanceBehindPgBouncer(_OpenAgain, BackendConformance):
    """Through the pooler, with asyncpg's statement cache off."""

    @pytest_asyncio.fixture
    async def backend(self, behind):
        self.settings = behind()
        async with PostgresBackend(self.settings) as backend:
            yield backend


class TestConformanceWithDmlGrantsOnly(_OpenAgain, BackendConformance):
    """As a role that may read and write the tables and call the functions, nothing more."""

    @pytest_asyncio.fixture
    async def backend(self, dml_settings):
        self.settings = dml_settings
        async with PostgresBackend(self.settings) as backend:
            yield backend
