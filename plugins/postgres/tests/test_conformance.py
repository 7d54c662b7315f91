"""The PostgreSQL backend against the whole sessionhub contract."""

from __future__ import annotations

import functools

import pytest
import pytest_asyncio

from sessionhub.testing import BackendConformance
from sessionhub_postgres.backend import PostgresBackend


class TestPostgresConformance(BackendConformance):
    @pytest_asyncio.fixture
    async def backend(self, pg_settings):
        self.settings = pg_settings()
        async with PostgresBackend(self.settings) as backend:
            yield backend

    @pytest_asyncio.fixture
    async def connect(self, backend):
        async def open_another():
            return await PostgresBackend(self.settings).__aenter__()

        yield open_another

    @pytest.fixture
    def backend_factory(self, backend):
        return functools.partial(PostgresBackend, self.settings)
