"""The server goes away mid-run and comes back: typed errors once the driver gives up, recovery.

``asyncio.wait_for(..., NO_HANG_S)`` only keeps a hang from stalling the run; no
test measures how long anything took.
"""

from __future__ import annotations

import asyncio
import gc
import warnings

import pytest
from pymongo.errors import (
    ClientBulkWriteException,
    ConnectionFailure,
    ServerSelectionTimeoutError,
)

from sessionhub import BackendUnavailable, SessionHistoryService
from sessionhub.plugins import get_plugin_manager
from sessionhub.settings import SessionHubSettings
from sessionhub_mongodb.backend import MongoBackend, MongoSettings

pytestmark = pytest.mark.asyncio

TIMEOUT_MS = 800
NO_HANG_S = 60


@pytest.fixture(autouse=True)
def _collect_driver_sockets():
    """Collect here what the driver dropped while the server was away.

    PyMongo's async pool can lose track of a connection it was opening when the
    server vanished; its socket is closed only when garbage-collected, with a
    ResourceWarning that would otherwise land in whichever test runs next.
    """
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.mark.parametrize("standalone", [False, True], ids=["replica-set", "standalone"])
async def test_outage_raises_backend_unavailable_then_recovers(secantus_process, standalone):
    """Every call during an outage raises BackendUnavailable, with the driver's
    connection failure (its server selection timeout) chained; after a restart on the
    same port and data, the same service object works again and nothing acknowledged
    was lost."""
    if standalone:
        secantus_process.stop()
        secantus_process.standalone = True
        secantus_process.start()
    settings = MongoSettings(
        url=secantus_process.url,
        database="faults",
        server_selection_timeout_ms=TIMEOUT_MS,
        connect_timeout_ms=TIMEOUT_MS,
        socket_timeout_ms=2000,
    )
    service = SessionHistoryService(
        MongoBackend(settings),
        settings=SessionHubSettings.isolated(purge_interval=None),
        plugin_manager=get_plugin_manager(entry_points=False),
    )
    async with service:
        assert service.backend.uses_transactions is not standalone
        session = await service.create_session("alice", "s1", state={"user:k": 1})
        await service.append(session, ["before 1", "before 2"])

        # A clean shutdown: SecantusDB (0.7) loses writes acknowledged just
        # before a SIGKILL, and this test is about the client, not the server.
        secantus_process.stop()
        calls = {
            "append": lambda: service.append(("alice", "s1"), "during"),
            "get_session": lambda: service.get_session("alice", "s1"),
            "list_sessions": lambda: service.list_sessions("alice"),
            "create_session": lambda: service.create_session("alice", "s2"),
            "update_user_state": lambda: service.update_user_state("alice", {"k": 2}),
            "delete_session": lambda: service.delete_session("alice", "s1"),
        }
        for name, call in calls.items():
            with pytest.raises(BackendUnavailable) as caught:
                await asyncio.wait_for(call(), NO_HANG_S)
            cause = caught.value.__cause__
            if isinstance(cause, ClientBulkWriteException):  # an append's one bulkWrite
                cause = cause.error
            assert isinstance(cause, ConnectionFailure), (name, cause)
            assert "did not answer" in str(caught.value), name
        health = await service.health()
        assert not health.ok and "did not answer" in health.detail

        secantus_process.start()  # same port, same data directory
        health = await service.health()
        assert health.ok, health.detail
        await service.append(("alice", "s1"), "after")
        got = await service.get_session("alice", "s1")
        assert got is not None
        assert [e.text for e in got.events] == ["before 1", "before 2", "after"]
        assert [e.seq for e in got.events] == [1, 2, 3]
        assert got.state == {"user:k": 1}
        assert await service.get_session("alice", "s2") is None


async def test_unreachable_server_at_open():
    """Opening against a port where nothing listens fails with BackendUnavailable once
    the server selection timeout fires, no leak."""
    backend = MongoBackend(
        MongoSettings(url="mongodb://127.0.0.1:1/", server_selection_timeout_ms=300)
    )
    with pytest.raises(BackendUnavailable) as caught:
        await asyncio.wait_for(backend.open(), NO_HANG_S)
    assert isinstance(caught.value.__cause__, ServerSelectionTimeoutError)
    message = str(caught.value)  # one line: the server's error, not the topology dump
    assert "Connect call failed" in message or "refused" in message.lower(), message
    assert (
        "Topology" not in message and "\n" not in message and "configured timeouts" not in message
    )
    await backend.close()
