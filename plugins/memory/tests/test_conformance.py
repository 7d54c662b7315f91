"""The memory backend against the whole sessionhub contract."""

from __future__ import annotations

import uuid

import pytest_asyncio

from sessionhub.testing import BackendConformance
from sessionhub_memory.backend import MemoryBackend, MemorySettings


class TestMemoryConformance(BackendConformance):
    @pytest_asyncio.fixture
    async def backend(self):
        self.url = f"memory://conformance-{uuid.uuid4().hex}"
        async with MemoryBackend(MemorySettings(url=self.url)) as backend:
            yield backend

    @pytest_asyncio.fixture
    async def connect(self, backend):
        async def open_another():
            return await MemoryBackend(MemorySettings(url=self.url)).__aenter__()

        yield open_another
