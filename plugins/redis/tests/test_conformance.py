"""The Redis backend against the whole sessionhub contract: on one node and on a Cluster."""

from __future__ import annotations

import functools

import pytest
import pytest_asyncio

from sessionhub.testing import BackendConformance
from sessionhub_redis.backend import RedisBackend, RedisSettings


class TestRedisConformance(BackendConformance):
    @pytest_asyncio.fixture
    async def backend(self, redis_url, key_prefix):
        self.settings = RedisSettings(url=redis_url, key_prefix=key_prefix)
        async with RedisBackend(self.settings) as backend:
            yield backend

    @pytest_asyncio.fixture
    async def connect(self, backend):
        async def open_another():
            return await RedisBackend(self.settings).__aenter__()

        yield open_another

    @pytest.fixture
    def backend_factory(self, backend):
        return functools.partial(RedisBackend, self.settings)


class TestRedisClusterConformance(BackendConformance):
    @pytest_asyncio.fixture
    async def backend(self, redis_cluster_url, key_prefix):
        self.settings = RedisSettings(url=redis_cluster_url, key_prefix=key_prefix)
        async with RedisBackend(self.settings) as backend:
            assert backend.is_cluster
            yield backend

    @pytest_asyncio.fixture
    async def connect(self, backend):
        async def open_another():
            return await RedisBackend(self.settings).__aenter__()

        yield open_another

    @pytest.fixture
    def backend_factory(self, backend):
        return functools.partial(RedisBackend, self.settings)
