"""Lifecycle and the suite's own guards: empty fixture, ping, open/close, persistence."""

from __future__ import annotations

import inspect

import pytest

from sessionhub.backend import Backend
from sessionhub.service import SessionHistoryService
from sessionhub.testing._base import Connect, MakeService, requires


class LifecycleTests:
    """DESIGN §3-4: start/stop/health, and what every backend must declare honestly."""

    pytestmark = pytest.mark.asyncio

    async def test_fixture_gives_an_empty_backend(self, service: SessionHistoryService) -> None:
        """The backend fixture must yield an EMPTY store: no sessions, no state, for any user."""
        for user in ("alice", "bob", "mallory"):
            assert (await service.list_sessions(user)).items == []
            assert await service.get_user_state(user) == {}
        assert await service.get_app_state() == {}
        assert await service.get_session("alice", "s1") is None

    async def test_health_and_ping(self, service: SessionHistoryService, backend: Backend) -> None:
        """ping() answers on a working backend; health() reports ok with a latency."""
        await backend.ping()
        status = await service.health()
        assert status.ok and status.latency_ms is not None and status.latency_ms >= 0

    async def test_open_and_close_are_idempotent(
        self, service: SessionHistoryService, backend: Backend
    ) -> None:
        """open() on an open backend is harmless; start() twice is harmless."""
        await backend.open()
        await service.start()
        await service.start()
        await service.create_session("alice", "s1")
        assert await service.get_session("alice", "s1") is not None

    @requires("persistent")
    async def test_data_survives_reopening(
        self, backend: Backend, connect: Connect | None, make_service: MakeService
    ) -> None:
        """After close(), a new backend on the same store finds every session, event and state."""
        assert connect is not None, "declare persistent only with a 'connect' fixture"
        service = make_service()
        s = await service.create_session("alice", "s1", state={"app:a": 1, "user:u": 2, "k": 3})
        await service.append(s, ["one", "two"])
        await backend.close()
        await backend.close()
        reopened = await connect()
        try:
            got = await make_service(reopened).get_session("alice", "s1")
            assert got is not None
            assert [e.text for e in got.events] == ["one", "two"]
            assert got.state == {"app:a": 1, "user:u": 2, "k": 3}
        finally:
            await reopened.close()

    async def test_capabilities_are_declared(self, backend: Backend) -> None:
        """The backend declares a name and a Capabilities record."""
        assert isinstance(backend.name, str) and backend.name
        assert type(backend.capabilities).__name__ == "Capabilities"

    async def test_no_overrides_DO_NOT_OVERRIDE(self) -> None:
        """A subclass may override a suite test only with @pytest.mark.xfail(reason=...)."""
        from sessionhub.testing import BackendConformance

        problems = []
        for name, base_test in inspect.getmembers(BackendConformance, inspect.isfunction):
            if not name.startswith("test_"):
                continue
            mine = getattr(type(self), name, None)
            if mine is base_test:
                continue
            if mine is None:
                problems.append(f"{name} was removed")
                continue
            marks = [m for m in getattr(mine, "pytestmark", []) if m.name == "xfail"]
            if not any(m.kwargs.get("reason") for m in marks):
                problems.append(f"{name} is overridden without @pytest.mark.xfail(reason=...)")
        assert not problems, "; ".join(problems)
