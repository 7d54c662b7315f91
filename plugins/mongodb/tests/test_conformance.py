"""The MongoDB backend against the whole sessionhub contract, on every path it has.

- through ``pymongo.AsyncMongoClient`` on a replica set: appends are transactions;
- on a standalone server: the publish-or-lease scheme;
- through an injected Motor ``AsyncIOMotorClient``.
"""

from __future__ import annotations

import functools

import pytest
import pytest_asyncio

from sessionhub.testing import BackendConformance
from sessionhub_mongodb.backend import MongoBackend, MongoSettings


class TestMongoConformance(BackendConformance):
    @pytest_asyncio.fixture
    async def backend(self, mongo_server, database_name):
        self.settings = MongoSettings(url=mongo_server.url, database=database_name)
        async with MongoBackend(self.settings) as backend:
            yield backend

    @pytest_asyncio.fixture
    async def connect(self, backend):
        async def open_another():
            return await MongoBackend(self.settings).__aenter__()

        yield open_another

    @pytest.fixture
    def backend_factory(self, backend):
        return functools.partial(MongoBackend, self.settings)


class TestMongoStandaloneConformance(BackendConformance):
    @pytest_asyncio.fixture
    async def backend(self, standalone_server, standalone_database_name):
        transactions = "auto" if standalone_server.kind == "standalone" else "never"
        self.settings = MongoSettings(
            url=standalone_server.url,
            database=standalone_database_name,
            transactions=transactions,
        )
        async with MongoBackend(self.settings) as backend:
            assert not backend.uses_transactions
            yield backend

    @pytest_asyncio.fixture
    async def connect(self, backend):
        async def open_another():
            return await MongoBackend(self.settings).__aenter__()

        yield open_another

    @pytest.fixture
    def backend_factory(self, backend):
        return functools.partial(MongoBackend, self.settings)


class TestMotorConformance(BackendConformance):
    @pytest_asyncio.fixture
    async def backend(self, mongo_server, database_name):
        motor_asyncio = pytest.importorskip("motor.motor_asyncio")
        self.clients = []

        def motor_backend():
            client = motor_asyncio.AsyncIOMotorClient(mongo_server.url)
            self.clients.append(client)
            return MongoBackend(MongoSettings(database=database_name), client=client)

        self.motor_backend = motor_backend
        try:
            async with motor_backend() as backend:
                yield backend
        finally:
            for client in self.clients:
                client.close()

    @pytest_asyncio.fixture
    async def connect(self, backend):
        async def open_another():
            return await self.motor_backend().__aenter__()

        yield open_another

    @pytest.fixture
    def backend_factory(self, backend, mongo_server, database_name):
        # A Motor client does not pickle: the other processes use PyMongo on the same store.
        return functools.partial(
            MongoBackend, MongoSettings(url=mongo_server.url, database=database_name)
        )
