"""The jsonfiles example backend against the whole sessionhub contract."""

from __future__ import annotations

import functools
import os

import pytest
import pytest_asyncio
from sessionhub_jsonfiles.backend import JsonFilesBackend

from sessionhub.testing import BackendConformance, assert_backend_registered


class TestJsonFilesConformance(BackendConformance):
    @pytest_asyncio.fixture
    async def backend(self, tmp_path):
        async with JsonFilesBackend(path=tmp_path / "data") as backend:
            yield backend

    @pytest_asyncio.fixture
    async def connect(self, tmp_path):
        async def open_another():
            return await JsonFilesBackend(path=tmp_path / "data").__aenter__()

        yield open_another

    @pytest.fixture
    def backend_factory(self, tmp_path):
        # Built in other processes by the multi-process test: it must pickle.
        return functools.partial(JsonFilesBackend, path=tmp_path / "data")


def test_the_entry_point_registers_the_backend():
    info = assert_backend_registered("jsonfiles", schemes=("jsonfiles",))
    assert info.distribution == "sessionhub-jsonfiles"


def test_file_names_never_contain_ids(tmp_path):
    import asyncio

    from sessionhub import SessionHistoryService, SessionHubSettings

    async def main():
        svc = SessionHistoryService(
            JsonFilesBackend(path=tmp_path), settings=SessionHubSettings.isolated()
        )
        async with svc:
            await svc.create_session("../../escape", "../../../etc/passwd")

    asyncio.run(main())
    names = [name for _, dirs, files in os.walk(tmp_path) for name in dirs + files]
    assert all(".." not in name and "passwd" not in name for name in names)
    assert not (tmp_path.parent / "escape").exists()
