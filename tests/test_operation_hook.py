"""``sessionhub_operation_wrapper``: plugins see every service operation, and may run around it."""

from __future__ import annotations

import contextlib
import inspect

import pytest

from sessionhub import (
    OPERATIONS,
    ConfigError,
    Operation,
    PluginLoadError,
    SessionHistoryService,
    SessionHubSettings,
    SessionNotFound,
    get_plugin_manager,
    hookimpl,
)
from sessionhub_memory.backend import MemoryBackend


class Watcher:
    """Records each operation it wraps: its name, arguments, result or error, and nesting."""

    def __init__(self) -> None:
        self.log: list[tuple] = []
        self.depth = 0

    @hookimpl
    def sessionhub_operation_wrapper(self, service):
        return self.wrap

    def wrap(self, operation: Operation):
        @contextlib.contextmanager
        def around():
            self.log.append(("enter", operation.name, self.depth))
            self.depth += 1
            try:
                yield
            except BaseException as exc:
                self.log.append(("error", operation.name, type(exc).__name__))
                raise
            finally:
                self.depth -= 1
            self.log.append(("exit", operation.name, operation.result))

        return around()


class Keep:
    """Keeps every Operation it is shown."""

    def __init__(self) -> None:
        self.seen: list[Operation] = []

    @hookimpl
    def sessionhub_operation_wrapper(self, service):
        return self.seen.append


def service(*plugins) -> SessionHistoryService:
    pm = get_plugin_manager(entry_points=False)
    for index, plugin in enumerate(plugins):
        pm.register(plugin, name=f"plugin-{index}")
    return SessionHistoryService(
        MemoryBackend(),
        settings=SessionHubSettings.isolated(purge_interval=None),
        plugin_manager=pm,
    )


def test_operations_names_every_public_coroutine_method_of_the_service():
    public = {
        name
        for name, member in inspect.getmembers(SessionHistoryService)
        if not name.startswith("_") and inspect.iscoroutinefunction(member)
    }
    assert public - {"start", "stop"} == set(OPERATIONS)
    for name in OPERATIONS:  # each one is wrapped, and keeps its name, docs and signature
        method = getattr(SessionHistoryService, name)
        assert method.__wrapped__.__name__ == name
        assert method.__doc__ and inspect.signature(method) == inspect.signature(method.__wrapped__)


@pytest.mark.asyncio
async def test_every_operation_is_wrapped_once_with_its_result():
    watcher = Watcher()
    async with service(watcher) as svc:
        session = await svc.create_session("alice", "s1", state={"k": 1})
        watcher.log.clear()
        stored = await svc.append(session, ["hello", "world"])
        got = await svc.get_session("alice", "s1", last_n=1)
    assert watcher.log == [
        ("enter", "append", 0),
        ("exit", "append", stored),
        ("enter", "get_session", 0),
        ("exit", "get_session", got),
    ]
    assert [e.text for e in got.events] == ["world"]


@pytest.mark.asyncio
async def test_the_operation_carries_its_arguments_by_name_with_defaults():
    keep = Keep()
    seen = keep.seen

    async with service(keep) as svc:
        await svc.create_session("alice", "s1")
        await svc.get_session("alice", session_id="s1", last_n=3)
    get = seen[-1]
    assert get.name == "get_session" and get.service is svc and get.result is None
    assert get.args == ("alice",) and get.kwargs == {"session_id": "s1", "last_n": 3}
    assert dict(get.arguments) == {
        "user_id": "alice",
        "session_id": "s1",
        "last_n": 3,
        "after_seq": None,
        "after_time": None,
    }
    with pytest.raises(TypeError):
        get.arguments["user_id"] = "mallory"  # read-only


@pytest.mark.asyncio
async def test_an_error_reaches_exit_and_cannot_be_suppressed():
    class Swallow:
        def __init__(self):
            self.exits = []

        @hookimpl
        def sessionhub_operation_wrapper(self, service):
            return self.wrap

        def wrap(self, operation):
            outer = self

            class Manager:
                def __enter__(self):
                    return self

                def __exit__(self, exc_type, exc, tb):
                    outer.exits.append(exc_type)
                    return True  # tries to suppress: ignored

            return Manager()

    swallow = Swallow()
    async with service(swallow) as svc:
        with pytest.raises(SessionNotFound):
            await svc.append(("alice", "missing"), "hello")
    assert swallow.exits == [SessionNotFound]


@pytest.mark.asyncio
async def test_operations_built_from_others_hold_theirs_inside():
    watcher = Watcher()
    async with service(watcher) as svc:
        await svc.create_session("alice", "s1")
        watcher.log.clear()
        await svc.clear_events("alice", "s1")
    assert [entry[:3] for entry in watcher.log if entry[0] == "enter"] == [
        ("enter", "clear_events", 0),
        ("enter", "replace_events", 1),
    ]


@pytest.mark.asyncio
async def test_managers_enter_in_call_order_and_exit_in_reverse():
    order: list[str] = []

    def plugin(label):
        class Plugin:
            @hookimpl
            def sessionhub_operation_wrapper(self, service):
                return self.wrap

            def wrap(self, operation):
                @contextlib.contextmanager
                def around():
                    order.append(f"enter {label}")
                    yield
                    order.append(f"exit {label}")

                return around()

        return Plugin()

    async with service(plugin("first"), plugin("second")) as svc:  # the last registered runs first
        await svc.get_app_state()
    assert order == ["enter second", "enter first", "exit first", "exit second"]


@pytest.mark.asyncio
async def test_no_implementation_means_no_hook_call():
    calls: list[str] = []
    svc = service()
    svc.plugin_manager.add_hookcall_monitoring(lambda name, *_: calls.append(name), lambda *_: None)
    async with svc:
        await svc.create_session("alice", "s1")
        await svc.append(("alice", "s1"), "hello")
    assert "sessionhub_operation_wrapper" not in calls


def test_an_async_implementation_is_refused_at_registration():
    class Async:
        @hookimpl
        async def sessionhub_operation_wrapper(self, service):
            return None

    pm = get_plugin_manager(entry_points=False)
    with pytest.raises(
        PluginLoadError,
        match="'async-plugin' implements sessionhub_operation_wrapper with async def",
    ):
        pm.register(Async(), name="async-plugin")


@pytest.mark.asyncio
async def test_a_result_that_is_no_context_manager_is_a_clear_error():
    class Wrong:
        @hookimpl
        def sessionhub_operation_wrapper(self, service):
            return self.wrap

        def wrap(self, operation):
            return "not a context manager"

    async with service(Wrong()) as svc:
        with pytest.raises(ConfigError, match=r"Wrong.wrap, .* returned a str, not a context"):
            await svc.get_app_state()


@pytest.mark.asyncio
async def test_a_wrapper_that_is_not_a_function_is_a_clear_error():
    class NotCallable:
        @hookimpl
        def sessionhub_operation_wrapper(self, service):
            return 42

    async with service(NotCallable()) as svc:
        with pytest.raises(ConfigError, match=r"Plugin 'plugin-0': .* got int"):
            await svc.get_app_state()


@pytest.mark.asyncio
async def test_the_hook_is_asked_once_per_service_and_again_when_plugins_change():
    asked: list[object] = []

    class Counting:
        @hookimpl
        def sessionhub_operation_wrapper(self, service):
            asked.append(service)
            return None

    svc = service(Counting())
    async with svc:
        await svc.get_app_state()
        await svc.get_app_state()
        assert asked == [svc]
        view = svc.for_app("other")
        await view.get_app_state()
        assert asked == [svc, view]  # a view is a service of its own
        watcher = Watcher()
        svc.plugin_manager.register(watcher, name="late")
        await svc.get_app_state()
    assert asked == [svc, view, svc]
    assert watcher.log[0] == ("enter", "get_app_state", 0)


@pytest.mark.asyncio
async def test_arguments_match_what_inspect_binds_for_every_operation():
    keep = Keep()
    seen = keep.seen

    class Module:
        def state_dict(self):
            return {"step": 1}

        def load_state_dict(self, state):
            pass

    async with service(keep) as svc:
        session = await svc.create_session("alice", "s1", state={"k": 1})
        await svc.append(session, "hello", expected_last_seq=0)
        await svc.save_state("alice", "s1", agent=Module(), planner=Module())
        await svc.load_state("alice", session_id="s1", allow_not_exist=False, agent=Module())
        await svc.list_sessions("alice", limit=5)
    for operation in seen:
        method = getattr(SessionHistoryService, operation.name).__wrapped__
        bound = inspect.signature(method).bind(svc, *operation.args, **operation.kwargs)
        bound.apply_defaults()
        expected = dict(bound.arguments)
        del expected["self"]
        assert dict(operation.arguments) == expected, operation.name
    assert seen[2].arguments["modules"].keys() == {"agent", "planner"}


class Idle:
    """Answers None (nothing to record) until ``ready``, counting how often it is asked."""

    def __init__(self) -> None:
        self.asked = 0
        self.ready = False
        self.seen: list[str] = []

    @hookimpl
    def sessionhub_operation_wrapper(self, service):
        self.asked += 1
        return (lambda operation: self.seen.append(operation.name)) if self.ready else None


@pytest.mark.asyncio
async def test_a_hook_answering_none_is_asked_again_only_after_ask_again_seconds(monkeypatch):
    import sessionhub._operations

    idle = Idle()
    monkeypatch.setattr(sessionhub._operations, "ASK_AGAIN", 3600.0)
    async with service(idle) as svc:
        await svc.create_session("alice", "s1")
        idle.ready = True
        await svc.append(("alice", "s1"), "hello")
        assert (idle.asked, idle.seen) == (1, [])  # the None answer holds for the hour

    idle = Idle()
    monkeypatch.setattr(sessionhub._operations, "ASK_AGAIN", 0.0)
    async with service(idle) as svc:
        await svc.create_session("alice", "s1")
        idle.ready = True
        await svc.append(("alice", "s1"), "hello")
        await svc.get_session("alice", "s1")
        assert idle.asked == 2  # asked again once due, and the function then kept
        assert idle.seen == ["append", "get_session"]
