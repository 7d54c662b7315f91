"""The SQLite backend against the whole sessionhub contract."""

from __future__ import annotations

import functools

import pytest
import pytest_asyncio

from sessionhub.testing import BackendConformance
from sessionhub_sqlite.backend import SQLiteBackend


class TestSQLiteConformance(BackendConformance):
    @pytest_asyncio.fixture
    async def backend(self, tmp_path):
        self.path = tmp_path / "conformance.db"
        async with SQLiteBackend(path=self.path) as backend:
            yield backend

    @pytest_asyncio.fixture
    async def connect(self, backend):
        async def open_another():
            return await SQLiteBackend(path=self.path).__aenter__()

        yield open_another

    @pytest.fixture
    def backend_factory(self, backend):
        return functools.partial(SQLiteBackend, path=self.path)
