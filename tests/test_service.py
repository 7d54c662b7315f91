"""The service outside the conformance suite: construction, lifecycle, sweeping, settings use."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from sessionhub import InvalidInput, SessionHistoryService, SessionHubSettings, get_plugin_manager
from sessionhub_memory.backend import MemoryBackend


@pytest.mark.asyncio
async def test_from_settings_and_url():
    async with SessionHistoryService(url="memory://") as svc:
        assert svc.backend.name == "memory"
        assert (await svc.health()).ok
    svc = SessionHistoryService.from_settings(
        SessionHubSettings.isolated(backend="memory", app_name="a")
    )
    assert svc.app_name == "a"


@pytest.mark.asyncio
async def test_operations_start_the_service_on_demand():
    svc = SessionHistoryService(backend="memory")
    await svc.create_session("alice", "s1")
    assert (await svc.get_session("alice", "s1")) is not None
    await svc.stop()
    await svc.stop()


@pytest.mark.asyncio
async def test_settings_reach_the_service(monkeypatch):
    monkeypatch.setenv("SESSIONHUB_EVENT_LIMIT", "2")
    monkeypatch.setenv("SESSIONHUB_APP_NAME", "shop")
    async with SessionHistoryService(backend="memory") as svc:
        s = await svc.create_session("alice")
        await svc.append(s, ["1", "2", "3"])
        got = await svc.get_session("alice", s.id)
        assert s.app_name == "shop" and [e.text for e in got.events] == ["2", "3"]


class SweptMemoryBackend(MemoryBackend):
    """A memory backend that tells when a purge reclaimed something."""

    def __init__(self) -> None:
        super().__init__()
        self.reclaimed = asyncio.Event()

    async def purge_expired(self, now: datetime) -> int:
        count = await super().purge_expired(now)
        if count:
            self.reclaimed.set()
        return count


@pytest.mark.asyncio
async def test_the_sweep_reclaims_expired_sessions():
    clock_now = [datetime.now(timezone.utc)]
    backend = SweptMemoryBackend()
    svc = SessionHistoryService(
        backend,
        settings=SessionHubSettings.isolated(session_ttl=10, purge_interval=0.05),
        plugin_manager=get_plugin_manager(entry_points=False),
        clock=lambda: clock_now[0],
    )
    async with svc:
        await svc.create_session("alice", "old")
        assert svc._runner.purge_task is not None
        clock_now[0] += timedelta(seconds=11)
        await svc.create_session("alice", "live")
        await asyncio.wait_for(backend.reclaimed.wait(), timeout=120)  # only a hang guard
        assert len(backend.store.sessions) == 1
        assert await svc.get_session("alice", "live") is not None
    assert svc._runner.purge_task is None


@pytest.mark.asyncio
async def test_append_rejects_a_session_of_another_app():
    async with SessionHistoryService(backend="memory", app_name="one") as one:
        s = await one.create_session("alice", "s1")
        two = SessionHistoryService(
            one.backend, settings=SessionHubSettings.isolated(app_name="two")
        )
        with pytest.raises(InvalidInput, match="belongs to app 'one'"):
            await two.append(s, "x")


@pytest.mark.asyncio
async def test_listing_pages_reuse_one_page_class():
    """Each page is of one class kept for the process, not a class pydantic builds again."""
    import gc
    import weakref

    async with SessionHistoryService(backend="memory") as svc:
        await svc.create_session("alice", "s1")
        sessions = weakref.ref(type(await svc.list_sessions("alice")))
        users = weakref.ref(type(await svc.list_users()))
        gc.collect()  # a parametrized model nothing refers to is freed here
        assert sessions() is type(await svc.list_sessions("alice"))
        assert users() is type(await svc.list_users())


BAD_EVENTS = {
    "events[1].id": lambda: ["ok", {"id": "bad\x00", "role": "user"}],
    "events[0].content[1].data.k": lambda: {
        "role": "a",
        "content": ["x", {"type": "data", "data": {"k": {1: 2}}}],
    },
    "events[0].content[0].q[1]": lambda: {"role": "a", "content": [{"type": "zz", "q": [1, b"x"]}]},
    "events[0].metadata.x": lambda: {"role": "a", "metadata": {"x": float("nan")}},
    "events[0].state_delta": lambda: {"role": "a", "state_delta": {"": 1}},
}


@pytest.mark.asyncio
@pytest.mark.parametrize("field", list(BAD_EVENTS))
async def test_append_names_the_field_that_breaks_a_rule(field):
    """The full dotted path of the field, from the batch down, whatever check fails."""
    service = SessionHistoryService(backend=MemoryBackend())
    await service.create_session("u", "s")
    events = BAD_EVENTS[field]()
    with pytest.raises(InvalidInput) as caught:
        await service.append(("u", "s"), events if isinstance(events, list) else [events])
    assert caught.value.field == field
    assert str(caught.value).startswith(f"Invalid {field}: ")
