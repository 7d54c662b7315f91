"""Settings, URL selection, registration, and clients handed in by the application."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from pymongo import AsyncMongoClient

from sessionhub import SessionHistoryService
from sessionhub.testing import assert_backend_registered
from sessionhub_mongodb.backend import DEFAULT_DATABASE, MongoBackend, MongoSettings


def test_registered_through_the_entry_point():
    info = assert_backend_registered("mongodb", schemes=("mongodb", "mongodb+srv"))
    assert info.distribution == "sessionhub-mongodb"


def test_defaults():
    backend = MongoBackend()
    assert backend.url == "mongodb://localhost:27017"
    assert backend.database == DEFAULT_DATABASE
    settings = backend.settings
    assert (settings.write_concern, settings.journal) == ("majority", True)
    assert (settings.read_concern, settings.read_preference) == ("majority", "primary")
    assert settings.collection_prefix == "sessionhub_"


def test_database_from_the_url_path_unless_given():
    assert MongoBackend(MongoSettings(url="mongodb://h:1/app_db")).database == "app_db"
    given = MongoSettings(url="mongodb://h:1/app_db", database="other")
    assert MongoBackend(given).database == "other"


@pytest.mark.parametrize("url", ["redis://localhost", "sqlite:///x.db", "http://h"])
def test_other_schemes_are_rejected(url):
    with pytest.raises(ValidationError, match="mongodb"):
        MongoSettings(url=url)


def test_credentials_stay_out_of_repr():
    backend = MongoBackend(MongoSettings(url="mongodb://user:s3cret@db.example:27017/x"))
    assert "s3cret" not in repr(backend) and "db.example" in repr(backend)


def test_a_mongodb_url_selects_this_backend():
    service = SessionHistoryService(url="mongodb+srv://cluster.example/app", purge_interval=None)
    assert isinstance(service.backend, MongoBackend)
    assert service.backend.database == "app"


@pytest.mark.asyncio
async def test_an_injected_client_is_used_and_left_open(mongo_server, database_name):
    client = AsyncMongoClient(mongo_server.url)
    try:
        async with MongoBackend(MongoSettings(database=database_name), client=client) as backend:
            await backend.ping()
        assert await client.admin.command("ping")  # still open
    finally:
        await client.close()


@pytest.mark.asyncio
async def test_an_injected_motor_client_is_used_and_left_open(mongo_server, database_name):
    motor_asyncio = pytest.importorskip("motor.motor_asyncio")
    client = motor_asyncio.AsyncIOMotorClient(mongo_server.url)
    try:
        backend = MongoBackend(MongoSettings(database=database_name), client=client)
        service = SessionHistoryService(backend, purge_interval=None)
        async with service:
            await service.create_session("alice", "s1", state={"app:a": 1})
            await service.append(("alice", "s1"), ["one", "two"])
            got = await service.get_session("alice", "s1", last_n=1)
            assert got is not None and [e.text for e in got.events] == ["two"]
        assert await client.admin.command("ping")
    finally:
        client.close()
