"""Hooks: throwaway plugins redact and observe (sync and async), all through pluggy."""

from __future__ import annotations

import copy
import dataclasses
import gc
import inspect
import re
import types
import warnings

import pluggy
import pytest

from sessionhub import (
    AppendContext,
    BackendInfo,
    BackendRegistry,
    Event,
    InvalidInput,
    PluginLoadError,
    SessionHistoryService,
    SessionHubSettings,
    TextPart,
    get_plugin_manager,
    hookimpl,
    hookspecs,
)
from sessionhub.plugins import call_hook
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
async def test_hooks_registered_or_unregistered_after_use_are_seen_at_once():
    """The service's cached hook look-ups follow every register and unregister."""
    seen = []

    class Observer:
        @hookimpl
        def sessionhub_before_append(self, ctx):
            seen.append([e.text for e in ctx.events])

    observer = Observer()
    async with service_with() as svc:
        await svc.create_session("alice", "s1")
        await svc.append(("alice", "s1"), "before")
        svc.plugin_manager.register(observer)
        await svc.append(("alice", "s1"), "during")
        svc.plugin_manager.unregister(observer)
        await svc.append(("alice", "s1"), "after")
    assert seen == [["during"]]


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


def test_wrap_backend_implementations_chain_in_call_order():
    class Layer(MemoryBackend):
        pass

    def wrapping(label):
        class Wrapper:
            @hookimpl
            def sessionhub_wrap_backend(self, backend, settings):
                wrapped = Layer(store=backend.store)
                wrapped.inner, wrapped.label = backend, label
                return wrapped

        return Wrapper()

    svc = service_with(wrapping("registered first"), wrapping("registered last"))
    # pluggy calls the last registered first; each gets what the one before returned
    assert svc.backend.label == "registered first"
    assert svc.backend.inner.label == "registered last"
    assert type(svc.backend.inner.inner) is MemoryBackend


# --- every call goes through pluggy ----------------------------------------------


class EveryHook:
    """Implements every hook, synchronously."""

    @hookimpl
    def sessionhub_register_backends(self):
        return BackendInfo(name="watched", factory=MemoryBackend)

    @hookimpl
    def sessionhub_wrap_backend(self, backend, settings):
        return None

    @hookimpl
    def sessionhub_before_append(self, ctx):
        pass

    @hookimpl
    def sessionhub_after_append(self, session, events):
        pass

    @hookimpl
    def sessionhub_session_created(self, session):
        pass

    @hookimpl
    def sessionhub_session_deleted(self, app_name, user_id, session_id):
        pass

    @hookimpl
    def sessionhub_operation_wrapper(self, service):
        return None


class EveryHookAsync(EveryHook):
    """The same, with the hooks that may be async written as ``async def``."""

    @hookimpl
    async def sessionhub_before_append(self, ctx):
        pass

    @hookimpl
    async def sessionhub_after_append(self, session, events):
        pass

    @hookimpl
    async def sessionhub_session_created(self, session):
        pass

    @hookimpl
    async def sessionhub_session_deleted(self, app_name, user_id, session_id):
        pass


@pytest.mark.asyncio
@pytest.mark.parametrize("plugin_class", [EveryHook, EveryHookAsync])
async def test_pluggy_monitoring_and_tracing_see_every_hook_call(plugin_class):
    pm = get_plugin_manager(entry_points=False)
    plugin = plugin_class()
    pm.register(plugin, name="every-hook")
    monitored: list[tuple[str, list[str]]] = []
    finished: list[str] = []
    pm.add_hookcall_monitoring(
        lambda name, impls, kwargs: monitored.append((name, [i.plugin_name for i in impls])),
        lambda outcome, name, impls, kwargs: finished.append(name),
    )
    traced: list[str] = []
    pm.trace.root.setwriter(traced.append)
    pm.enable_tracing()
    async with SessionHistoryService(
        backend="watched", settings=SessionHubSettings.isolated(), plugin_manager=pm
    ) as svc:
        await svc.create_session("alice", "s1")
        await svc.append(("alice", "s1"), "hello")
        await svc.delete_session("alice", "s1")
    every_hook = sorted(name for name in dir(hookspecs) if name.startswith("sessionhub_"))
    seen = sorted({name for name, plugins in monitored if "every-hook" in plugins})
    assert seen == every_hook
    assert sorted(set(finished)) == every_hook
    assert [name for name, _ in monitored] == finished
    assert all(any(name in line for line in traced) for name in every_hook)


# --- wrapper implementations ------------------------------------------------------


def plugin_with_wrapper(hook_name: str, style: str):
    marker = hookimpl(wrapper=True) if style == "wrapper" else hookimpl(hookwrapper=True)
    arguments = inspect.signature(getattr(hookspecs, hook_name)).parameters

    def implementation(**kwargs):
        yield

    implementation.__signature__ = inspect.Signature(list(arguments.values()))
    plugin = types.ModuleType("wrapping_plugin")
    setattr(plugin, hook_name, marker(implementation))
    return plugin


REFUSED = [
    *sorted(hookspecs.AWAITED_HOOKS),
    "sessionhub_wrap_backend",
    "sessionhub_operation_wrapper",
]


@pytest.mark.parametrize("style", ["wrapper", "hookwrapper"])
@pytest.mark.parametrize("hook_name", REFUSED)
def test_a_wrapper_a_hook_cannot_run_is_refused_at_registration(hook_name, style):
    pm = get_plugin_manager(entry_points=False)
    plugin = plugin_with_wrapper(hook_name, style)
    with pytest.raises(PluginLoadError) as caught:
        pm.register(plugin, name="wrapping-plugin")
    message = str(caught.value)
    assert "'wrapping-plugin'" in message and hook_name in message
    assert "Use a plain @hookimpl" in message
    assert not pm.is_registered(plugin)
    assert not getattr(pm.hook, hook_name).get_hookimpls() or hook_name.startswith(
        "sessionhub_session_"  # the built-in audit log implements these
    )


@pytest.mark.asyncio
async def test_a_wrapper_on_a_manager_that_did_not_check_is_refused_when_called():
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)  # a plain pluggy manager
    pm.add_hookspecs(hookspecs)
    pm.register(plugin_with_wrapper("sessionhub_before_append", "wrapper"), name="raw")
    async with SessionHistoryService(MemoryBackend(), plugin_manager=pm) as svc:
        await svc.create_session("alice", "s1")
        with pytest.raises(PluginLoadError, match="'raw' implements sessionhub_before_append"):
            await svc.append(("alice", "s1"), "hello")
        got = await svc.get_session("alice", "s1")
        assert got.event_count == 0


@pytest.mark.parametrize("style", ["wrapper", "hookwrapper"])
def test_a_wrapper_of_register_backends_runs_around_each_registration(style):
    class Registers:
        def __init__(self, name):
            self.name = name

        @hookimpl
        def sessionhub_register_backends(self):
            return BackendInfo(name=self.name, factory=MemoryBackend)

    class HidesInternal:
        if style == "wrapper":

            @hookimpl(wrapper=True)
            def sessionhub_register_backends(self):
                infos = yield
                return [info for info in infos if not info.name.startswith("internal")]

        else:

            @hookimpl(hookwrapper=True)
            def sessionhub_register_backends(self):
                outcome = yield
                infos = outcome.get_result()
                outcome.force_result([i for i in infos if not i.name.startswith("internal")])

    pm = get_plugin_manager(entry_points=False)
    for plugin in (Registers("public"), HidesInternal(), Registers("internal-x")):
        pm.register(plugin)
    assert BackendRegistry.from_plugin_manager(pm).names() == ["public"]


# --- how async implementations are awaited ------------------------------------------


@pytest.mark.asyncio
async def test_a_failing_async_hook_stops_the_others_without_leaving_coroutines():
    ran: list[str] = []

    class Fails:
        @hookimpl(tryfirst=True)
        async def sessionhub_before_append(self, ctx):
            ran.append("fails")
            raise InvalidInput("events", "refused by a hook")

    class After:
        @hookimpl
        async def sessionhub_before_append(self, ctx):
            ran.append("after")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with service_with(After(), Fails()) as svc:
            await svc.create_session("alice", "s1")
            with pytest.raises(InvalidInput, match="refused by a hook"):
                await svc.append(("alice", "s1"), "hello")
        gc.collect()
    assert ran == ["fails"]
    assert [str(w.message) for w in caught] == []


@pytest.mark.asyncio
async def test_call_hook_gives_a_firstresult_hook_the_first_awaited_answer():
    project = "firstresult-test"
    spec, impl = pluggy.HookspecMarker(project), pluggy.HookimplMarker(project)

    class Spec:
        @spec(firstresult=True)
        def pick(self, x): ...

    called: list[str] = []

    def answering(label, answer, *, is_async, **order):
        if is_async:

            async def pick(self, x):
                called.append(label)
                return answer
        else:

            def pick(self, x):
                called.append(label)
                return answer

        return type(label, (), {"pick": impl(**order)(pick)})()

    pm = pluggy.PluginManager(project)
    pm.add_hookspecs(Spec)
    pm.register(answering("async-none", None, is_async=True, tryfirst=True))
    pm.register(answering("sync-none", None, is_async=False))
    pm.register(answering("async-answer", 42, is_async=True, trylast=True))
    pm.register(answering("never", 0, is_async=False, trylast=True))
    assert await call_hook(pm, "pick", x=1) == [42]
    assert called[:3] == ["async-none", "sync-none", "async-answer"]
    assert "never" not in called


class Registers:
    @hookimpl
    def sessionhub_register_backends(self):
        return BackendInfo(name=self.name, factory=MemoryBackend)


@dataclasses.dataclass  # compares by value, so its instances cannot be hashed
class ByValue(Registers):
    name: str


@dataclasses.dataclass(frozen=True)
class Frozen(Registers):
    name: str


@dataclasses.dataclass(eq=False)
class ByIdentity(Registers):
    name: str


def test_a_plugin_object_that_cannot_be_hashed_is_refused_with_the_fix():
    # pluggy calls one plugin at a time only through sets of plugins
    pm = get_plugin_manager(entry_points=False)
    with pytest.raises(PluginLoadError, match=r"'unhashable' is a ByValue object") as caught:
        pm.register(ByValue("mine"), name="unhashable")
    assert "@dataclass(eq=False) or frozen=True" in str(caught.value)
    assert pm.get_plugin("unhashable") is None
    pm.register(Frozen("mine"))
    pm.register(ByIdentity("other"))
    assert BackendRegistry.from_plugin_manager(pm).names() == ["mine", "other"]
