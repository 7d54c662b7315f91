"""The Redis backend against the whole sessionhub contract: one node, a Cluster, an ACL user."""

from __future__ import annotations

import functools

import pytest
import pytest_asyncio

from sessionhub.testing import BackendConformance
from sessionhub_redis.backend import RedisBackend, RedisSettings


class _OpenAgain:
    """``connect`` and ``backend_factory`` from the settings the ``backend`` fixture set."""

    settings: RedisSettings

    @pytest_asyncio.fixture
    async def connect(self, backend):
        async def open_another():
            return await RedisBackend(self.settings).__aenter__()

        yield open_another

    @pytest.fixture
    def backend_factory(self, backend):
        return functools.partial(RedisBackend, self.settings)


class TestRedisConformance(_OpenAgain, BackendConformance):
    @pytest_asyncio.fixture
    async def backend(self, redis_url, key_prefix):
        self.settings = RedisSettings(url=redis_url, key_prefix=key_prefix)
        async with RedisBackend(self.settings) as backend:
            yield backend


class TestRedisClusterConformance(_OpenAgain, BackendConformance):
    @pytest_asyncio.fixture
    async def backend(self, redis_cluster_url, key_prefix):
        self.settings = RedisSettings(url=redis_cluster_url, key_prefix=key_prefix)
        async with RedisBackend(self.settings) as backend:
            assert backend.is_cluster
            yield backend


class TestRedisConformanceAsAnAclUser(_OpenAgain, BackendConformance):
    """As a user whose ACL is only the rules the backend names (``ACL_RULES``)."""

    @pytest_asyncio.fixture
    async def backend(self, acl_server, key_prefix):
        self.settings = acl_server.settings("app", key_prefix)
        async with RedisBackend(self.settings) as backend:
            yield backend


class TestRedisClusterConformanceAsAnAclUser(_OpenAgain, BackendConformance):
    """On the Cluster as a user holding ``ACL_RULES`` and ``CLUSTER_ACL_RULES`` only."""

    @pytest_asyncio.fixture
    async def backend(self, acl_cluster, key_prefix):
        self.settings = acl_cluster.settings("app", key_prefix)
        async with RedisBackend(self.settings) as backend:
            assert backend.is_cluster
            yield backend
