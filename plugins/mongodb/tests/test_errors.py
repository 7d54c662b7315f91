"""Errors mean what they say: a server that answered with an error, or a record this backend
cannot read, is a BackendError quoting what went wrong, never "the server is down"."""

from __future__ import annotations

import pytest
import pytest_asyncio
from pymongo.errors import OperationFailure

from sessionhub import BackendUnavailable, SessionHistoryService
from sessionhub.errors import BackendError
from sessionhub.plugins import get_plugin_manager
from sessionhub.settings import SessionHubSettings
from sessionhub_mongodb.backend import MongoBackend

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def service(target):
    backend = MongoBackend(target.settings())
    async with SessionHistoryService(
        backend,
        settings=SessionHubSettings.isolated(purge_interval=None),
        plugin_manager=get_plugin_manager(entry_points=False),
    ) as service:
        yield service


def _not_server_down(error: BaseException) -> None:
    assert not isinstance(error, BackendUnavailable)
    assert "did not answer" not in str(error) and "running" not in str(error)


async def test_a_server_error_is_a_backend_error_quoting_the_server(service):
    """A session document whose state is not a map (written by something else): the
    server rejects the per-key update, and the error quotes the server's message."""
    await service.create_session("alice", "s1")
    await service.backend._sessions.update_one({"sid": "s1"}, {"$set": {"state": "not a map"}})
    with pytest.raises(BackendError) as caught:
        await service.update_session("alice", "s1", state={"k": 1})
    _not_server_down(caught.value)
    cause = caught.value.__cause__
    assert isinstance(cause, OperationFailure)
    message = str(caught.value)
    assert cause.details is not None and cause.details["errmsg"] in message
    assert "update_session" in message and "\n" not in message
    assert "clusterTime" not in message  # the server's words, not the driver's dump


@pytest.mark.parametrize(
    ("field", "value"),
    [("last_seq", "seven"), ("incarnation", None)],
    ids=["wrong-type", "missing-id"],
)
async def test_an_unreadable_session_document_is_a_backend_error(service, field, value):
    """A session document with a wrong-typed or missing field is reported as a stored
    record the backend cannot read, naming the operation; the cause is chained."""
    await service.create_session("alice", "s1")
    await service.append(("alice", "s1"), "hello")
    update = {"$unset": {field: ""}} if value is None else {"$set": {field: value}}
    await service.backend._sessions.update_one({"sid": "s1"}, update)
    with pytest.raises(BackendError, match="stored record it cannot read") as caught:
        await service.get_session("alice", "s1")
    _not_server_down(caught.value)
    assert "get_session" in str(caught.value)
    assert caught.value.__cause__ is not None


async def test_an_unreadable_event_document_is_a_backend_error(service):
    """An event document whose data is not an event's JSON text."""
    await service.create_session("alice", "s1")
    await service.append(("alice", "s1"), "hello")
    await service.backend._events.update_one({"seq": 1}, {"$set": {"data": 42}})
    with pytest.raises(BackendError, match="stored record it cannot read") as caught:
        await service.get_session("alice", "s1")
    _not_server_down(caught.value)
