"""Hooks: a throwaway plugin redacts e-mail addresses and observes, once sync and once async."""

from __future__ import annotations

import copy
import re

import pytest

from sessionhub import (
    AppendContext,
    Event,
    InvalidInput,
    SessionHistoryService,
    TextPart,
    get_plugin_manager,
    hookimpl,
)
from sessionhub_memory.backend import MemoryBackend

EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")


def redact(event: Event) -> None:
    for part in event.content:
        if isinstance(part, TextPart):
            part.text = EMAIL.sub("[email]", part.text)


class SyncPlugin:
    def __init__(self, log):
        self.log = log

    @hookimpl
    def sessionhub_before_append(self, ctx: AppendContext):
        self.log.append(("before", ctx.session_id, [e.text for e in ctx.events]))
        for event in ctx.events:
            redact(event)

    @hookimpl
    def sessionhub_after_append(self, session, events):
        self.log.append(("after", session.id, [(e.seq, e.text) for e in events]))

    @hookimpl
    def sessionhub_session_created(self, session):
        self.log.append(("created", session.id))

    @hookimpl
    def sessionhub_session_deleted(self, app_name, user_id, session_id):
        self.log.append(("deleted", app_name, user_id, session_id))


class AsyncPlugin(SyncPlugin):
    @hookimpl
    async def sessionhub_before_append(self, ctx: AppendContext):
        super().sessionhub_before_append(ctx)

    @hookimpl
    async def sessionhub_after_append(self, session, events):
        super().sessionhub_after_append(session, events)

    @hookimpl
    async def sessionhub_session_created(self, session):
        super().sessionhub_session_created(session)

    @hookimpl
    async def sessionhub_session_deleted(self, app_name, user_id, session_id):
        super().sessionhub_session_deleted(app_name, user_id, session_id)


def service_with(*plugins) -> SessionHistoryService:
    pm = get_plugin_manager(entry_points=False)
    for plugin in plugins:
        pm.register(plugin)
    return SessionHistoryService(MemoryBackend(), plugin_manager=pm)


@pytest.mark.asyncio
@pytest.mark.parametrize("plugin_class", [SyncPlugin, AsyncPlugin])
async def test_redaction_and_observers_run_in_order(plugin_class):
    log: list = []
    async with service_with(plugin_class(log)) as svc:
        session = await svc.create_session("alice", "s1")
        stored = await svc.append(("alice", "s1"), ["mail me at ada@example.com", "no address"])
        assert [e.text for e in stored] == ["mail me at [email]", "no address"]
        got = await svc.get_session("alice", "s1")
        assert [e.text for e in got.events] == ["mail me at [email]", "no address"]
        await svc.delete_session("alice", "s1")
    assert log == [
        ("created", session.id),
        ("before", "s1", ["mail me at ada@example.com", "no address"]),
        ("after", "s1", [(1, "mail me at [email]"), (2, "no address")]),
        ("deleted", "default", "alice", "s1"),
    ]


@pytest.mark.asyncio
async def test_a_hook_editing_events_in_place_leaves_the_callers_objects_alone():
    class Rewriter:
        @hookimpl
        def sessionhub_before_append(self, ctx):
            for event in ctx.events:
                redact(event)
                event.metadata["redacted"] = True
                event.metadata["nested"]["seen"] = True
                event.state_delta["n"] += 1

    mine = Event(
        role="user",
        content=[TextPart(text="ada@example.com")],
        metadata={"nested": {}},
        state_delta={"n": 1},
    )
    as_dict = {
        "role": "user",
        "content": [{"type": "text", "text": "bob@example.com"}],
        "metadata": {"nested": {}},
        "state_delta": {"n": 1},
    }
    before = (mine.model_copy(deep=True), copy.deepcopy(as_dict))
    async with service_with(Rewriter()) as svc:
        await svc.create_session("alice", "s1")
        stored = await svc.append(("alice", "s1"), [mine, as_dict])
        assert [e.text for e in stored] == ["[email]", "[email]"]
        assert stored[0].metadata == {"nested": {"seen": True}, "redacted": True}
        got = await svc.get_session("alice", "s1")
        assert got.state == {"n": 2}
        # A retry of the same object is recognised: the hook's edit is applied again.
        [again] = await svc.append(("alice", "s1"), mine)
        assert again.seq == 1
    assert (mine, as_dict) == before
    assert mine.content[0].text == "ada@example.com" and mine.metadata == {"nested": {}}


@pytest.mark.asyncio
async def test_mixed_sync_and_async_hooks_run_in_pluggy_order():
    order: list[str] = []

    class First:
        @hookimpl(tryfirst=True)
        async def sessionhub_before_append(self, ctx):
            order.append("first")
            ctx.events[0].content[0].text += " +first"

    class Middle:
        @hookimpl
        def sessionhub_before_append(self, ctx):
            order.append("middle")
            ctx.events[0].content[0].text += " +middle"

    class Last:
        @hookimpl(trylast=True)
        async def sessionhub_before_append(self, ctx):
            order.append("last")
            ctx.events.append(Event(role="system", content=[TextPart(text="added by a hook")]))

    async with service_with(Last(), Middle(), First()) as svc:
        await svc.create_session("alice", "s1")
        stored = await svc.append(("alice", "s1"), "x")
    assert order == ["first", "middle", "last"]
    assert [e.text for e in stored] == ["x +first +middle", "added by a hook"]


@pytest.mark.asyncio
async def test_a_hook_can_reject_an_append():
    class Guard:
        @hookimpl
        def sessionhub_before_append(self, ctx):
            if any("forbidden" in e.text for e in ctx.events):
                raise InvalidInput("events", "contains a forbidden word")

    async with service_with(Guard()) as svc:
        await svc.create_session("alice", "s1")
        with pytest.raises(InvalidInput, match="forbidden word"):
            await svc.append(("alice", "s1"), ["fine", "forbidden"])
        got = await svc.get_session("alice", "s1")
        assert got.event_count == 0


@pytest.mark.asyncio
async def test_after_append_gets_the_session_when_given_ids():
    seen = []

    class Observer:
        @hookimpl
        def sessionhub_after_append(self, session, events):
            seen.append((session.id, session.last_seq, session.state, len(events)))

    async with service_with(Observer()) as svc:
        await svc.create_session("alice", "s1")
        await svc.append(("alice", "s1"), {"role": "user", "content": "x", "state_delta": {"k": 1}})
    assert seen == [("s1", 1, {"k": 1}, 1)]


def test_wrap_backend_hook_wraps_in_order():
    class Counting(MemoryBackend):
        pass

    class Wrapper:
        @hookimpl
        def sessionhub_wrap_backend(self, backend, settings):
            wrapped = Counting(store=backend.store)
            wrapped.inner = backend
            return wrapped

    svc = service_with(Wrapper())
    assert isinstance(svc.backend, Counting)
    assert isinstance(svc.backend.inner, MemoryBackend)


def test_every_hookspec_is_documented():
    pm = get_plugin_manager(entry_points=False)
    for name in dir(pm.hook):
        if name.startswith("sessionhub_"):
            spec = getattr(pm.hook, name).spec
            assert spec.function.__doc__ and len(spec.function.__doc__.strip()) > 40, name
