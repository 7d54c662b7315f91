"""The Backend contract: optional methods are capabilities, purge has a default, public tools."""

from __future__ import annotations

import inspect
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest

import sessionhub.backend
import sessionhub.backend_tools
from sessionhub import (
    Backend,
    Capabilities,
    ConfigError,
    Expiry,
    InvalidInput,
    Scope,
    Session,
    SessionHistoryService,
    StateKey,
)
from sessionhub.transfer import export_records, import_records, migrate
from sessionhub_memory.backend import MemoryBackend

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
DOCS = Path(__file__).resolve().parent.parent / "docs"


class WithoutExtras(MemoryBackend):
    """A memory backend that leaves out every optional method, as a minimal backend would."""

    capabilities = Capabilities(shared_store=True)  # no compare_and_set either
    list_users = Backend.list_users
    list_app_sessions = Backend.list_app_sessions
    list_apps = Backend.list_apps
    restore_session = Backend.restore_session
    pop_event = Backend.pop_event
    replace_events = Backend.replace_events
    list_page = Backend.list_page


class ListsAgain(WithoutExtras):
    async def list_users(self, app_name, *, limit, after):
        return await MemoryBackend.list_users(self, app_name, limit=limit, after=after)


class Declines(MemoryBackend):
    capabilities = Capabilities(shared_store=True, list_users=False)


def test_optional_methods_are_capabilities_declared_by_implementing_them():
    assert (MemoryBackend.capabilities.list_users, MemoryBackend.capabilities.restore_session) == (
        True,
        True,
    )
    assert (WithoutExtras.capabilities.list_users, WithoutExtras.capabilities.restore_session) == (
        False,
        False,
    )
    assert (ListsAgain.capabilities.list_users, ListsAgain.capabilities.restore_session) == (
        True,
        False,
    )
    # an explicit declaration wins over the method being there
    assert (Declines.capabilities.list_users, Declines.capabilities.restore_session) == (
        False,
        True,
    )
    assert WithoutExtras.capabilities.shared_store is True  # the rest is inherited as declared
    assert (MemoryBackend.capabilities.list_all_sessions, MemoryBackend.capabilities.list_apps) == (
        True,
        True,
    )
    assert (
        WithoutExtras.capabilities.list_all_sessions,
        WithoutExtras.capabilities.list_apps,
    ) == (False, False)
    assert (MemoryBackend.capabilities.list_page, WithoutExtras.capabilities.list_page) == (
        True,
        False,
    )


SUITE = """
import pytest_asyncio
from sessionhub import Backend, Capabilities
from sessionhub.testing import BackendConformance
from sessionhub_memory.backend import MemoryBackend


class WithoutExtras(MemoryBackend):
    capabilities = Capabilities()  # one store per instance here: no 'connect' fixture
    list_users = Backend.list_users
    list_app_sessions = Backend.list_app_sessions
    list_apps = Backend.list_apps
    restore_session = Backend.restore_session
    pop_event = Backend.pop_event
    replace_events = Backend.replace_events
    list_page = Backend.list_page


class TestWithoutExtras(BackendConformance):
    @pytest_asyncio.fixture
    async def backend(self):
        async with WithoutExtras() as backend:
            yield backend
"""


def test_a_backend_without_the_optional_methods_passes_the_suite(pytester):
    pytester.makepyfile(test_without_extras=SUITE)
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-o",
        "asyncio_mode=strict",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
        "-rs",
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("errors", 0) == 0, result.stdout.str()
    assert outcomes["passed"] > 100
    for capability in (
        "list_users",
        "list_all_sessions",
        "list_apps",
        "restore_session",
        "pop_event",
        "replace_events",
        "list_page",
        "compare_and_set",
    ):  # one at a time: the skips are reported in the order the tests ran
        result.stdout.fnmatch_lines(
            [f"*WithoutExtras does not declare the {capability!r} capability*"]
        )


def service_over(backend: Backend) -> SessionHistoryService:
    from sessionhub import SessionHubSettings, get_plugin_manager

    return SessionHistoryService(
        backend,
        settings=SessionHubSettings.isolated(purge_interval=None),
        plugin_manager=get_plugin_manager(entry_points=False),
    )


@pytest.mark.asyncio
async def test_export_without_list_users_says_to_name_the_users():
    async with service_over(WithoutExtras()) as source:
        await source.create_session("alice", "s1")
        with pytest.raises(ConfigError) as caught:
            [record async for record in export_records(source)]
        assert str(caught.value) == (
            "The 'memory' backend cannot list the users of an app (it does not declare the "
            "'list_users' capability): name the users to export or migrate with --user "
            "(user_ids= in Python)."
        )
        named = [record async for record in export_records(source, user_ids=["alice"])]
        assert [r["kind"] for r in named] == ["header", "session"]


@pytest.mark.asyncio
async def test_import_or_migrate_into_a_backend_without_restore_is_refused_before_writing():
    async with service_over(MemoryBackend()) as source, service_over(WithoutExtras()) as target:
        await source.create_session("alice", "s1")
        await source.update_app_state({"k": 1})
        with pytest.raises(ConfigError, match="'restore_session' capability") as caught:
            await migrate(source, target)
        assert "nothing can be imported or migrated into it" in str(caught.value)
        with pytest.raises(ConfigError, match="'restore_session' capability"):
            await import_records(target, [])
        assert await target.get_app_state() == {}
        assert (await target.list_sessions("alice")).items == []


@pytest.mark.asyncio
async def test_purge_expired_defaults_to_nothing_for_stores_that_expire_by_themselves():
    assert "purge_expired" not in Backend.__abstractmethods__

    class ExpiresByItself(MemoryBackend):
        capabilities = replace(MemoryBackend.capabilities, native_ttl=True)
        purge_expired = Backend.purge_expired

    assert await ExpiresByItself().purge_expired(datetime.now(timezone.utc)) == 0


def test_backend_tools_is_a_documented_public_module():
    tools = sessionhub.backend_tools
    guide = (DOCS / "writing-a-backend.md").read_text()
    assert len(tools.__all__) >= 8
    for name in tools.__all__:
        assert inspect.getdoc(getattr(tools, name)), f"backend_tools.{name} has no docstring"
        assert f"`{name}`" in guide, f"docs/writing-a-backend.md does not mention {name}"
    assert "::: sessionhub.backend_tools" in (DOCS / "api.md").read_text()


def test_stored_session_gives_what_validation_gives():
    """The trusted constructor builds a session equal to a validated one, and as usable."""
    from sessionhub.backend_tools import from_micros, stored_session

    values = {
        "id": "s1",
        "app_name": "app",
        "user_id": "alice",
        "parent_id": None,
        "root_id": "s1",
        "depth": 0,
        "created_at": from_micros(1_700_000_000_000_001),
        "updated_at": from_micros(1_700_000_000_000_002),
        "expires_at": None,
        "state": {"k": [1, 2.5, None]},
        "metadata": {},
        "event_count": 3,
        "last_seq": 4,
    }
    built = stored_session(**values)
    checked = Session.model_validate(values)
    assert built == checked
    assert built.model_dump() == checked.model_dump()
    assert built.model_fields_set == checked.model_fields_set | {"events"}
    assert built.events == [] and built.events is not stored_session(**values).events
    built.state = {"merged": True}
    assert built.state == {"merged": True} and checked.state == values["state"]
    copy = built.model_copy(update={"last_seq": 5})
    assert copy.last_seq == 5 and built.last_seq == 4
    assert Session.model_validate_json(built.model_dump_json()) == built


def test_the_tools_stay_importable_from_where_they_were():
    """A backend written before backend_tools existed imports them from sessionhub.backend."""
    tools = sessionhub.backend_tools
    old = sessionhub.backend
    for name in tools.__all__:
        with pytest.warns(DeprecationWarning, match=f"sessionhub.backend_tools.{name}"):
            assert getattr(old, name) is getattr(tools, name), name
    from sessionhub.settings import mask_url

    assert mask_url is tools.mask_url
    namespace: dict[str, object] = {}
    with pytest.warns(DeprecationWarning, match="moved to sessionhub.backend_tools"):
        exec("from sessionhub.backend import apply_delta, check_restorable, dump_json", namespace)
    assert namespace["dump_json"] is tools.dump_json
    with pytest.raises(ImportError):
        exec("from sessionhub.backend import no_such_helper", {})


@pytest.mark.asyncio
async def test_history_operations_need_their_capability():
    async with service_over(WithoutExtras()) as service:
        await service.create_session("alice", "s1")
        calls = [
            (lambda: service.pop_event("alice", "s1"), "pop_event"),
            (lambda: service.clear_events("alice", "s1"), "replace_events"),
            (lambda: service.replace_events("alice", "s1", ["x"]), "replace_events"),
            (lambda: service.append(("alice", "s1"), "x", expected_last_seq=0), "compare_and_set"),
        ]
        for call, capability in calls:
            with pytest.raises(ConfigError, match=f"lacks the '{capability}' capability"):
                await call()
        session = await service.get_session("alice", "s1")
        assert session is not None and session.events == []


@pytest.mark.asyncio
async def test_listings_need_their_capability():
    async with service_over(WithoutExtras()) as service:
        await service.create_session("alice", "s1")
        calls = [
            (lambda: service.list_sessions(None), "list_all_sessions"),
            (lambda: service.list_users(), "list_users"),
            (lambda: service.list_apps(), "list_apps"),
        ]
        for call, capability in calls:
            with pytest.raises(ConfigError, match=f"lacks the '{capability}' capability") as caught:
                await call()
            assert "\n" not in str(caught.value)
        assert [s.id for s in (await service.list_sessions("alice")).items] == ["s1"]


def test_a_state_key_cannot_name_a_user_state_without_a_user():
    assert StateKey.app("a").scope is Scope.APP and StateKey.user("a", "u").scope is Scope.USER
    expiry = Expiry(now=NOW, app=NOW, user=None)
    assert (StateKey.app("a").expires_at(expiry), StateKey.user("a", "u").expires_at(expiry)) == (
        NOW,
        None,
    )
    for scope, user in [(Scope.USER, None), (Scope.APP, "u")]:
        with pytest.raises(InvalidInput, match="user_id"):
            StateKey.of(scope, "a", user)
    with pytest.raises(InvalidInput, match="user_id"):
        StateKey("a", "")


class OldStyleState(MemoryBackend):
    """A backend of the contract before StateKey: get_state / update_state only."""

    read_state = Backend.read_state
    write_state = Backend.write_state

    async def get_state(self, scope, app_name, user_id, expiry, *, refresh):
        return await MemoryBackend.read_state(
            self, StateKey.of(scope, app_name, user_id), expiry, refresh=refresh
        )

    async def update_state(self, scope, app_name, user_id, delta, expiry):
        return await MemoryBackend.write_state(
            self, StateKey.of(scope, app_name, user_id), delta, expiry
        )


class NoState(MemoryBackend):
    read_state = Backend.read_state
    write_state = Backend.write_state


@pytest.mark.asyncio
async def test_state_primitives_of_either_contract_work_and_neither_is_an_error():
    async with service_over(OldStyleState()) as old:
        await old.update_user_state("alice", {"n": 1})
        await old.create_session("alice", "s1", state={"app:a": 1})
        assert (await old.get_session("alice", "s1")).state == {"app:a": 1, "user:n": 1}
    expiry = Expiry(now=NOW)
    new = MemoryBackend()  # new style, called the old way
    assert await new.update_state(Scope.USER, "a", "u", {"k": 1}, expiry) == {"k": 1}
    assert await new.get_state(Scope.USER, "a", "u", expiry, refresh=False) == {"k": 1}
    with pytest.raises(InvalidInput):
        await new.get_state(Scope.USER, "a", None, expiry, refresh=False)
    with pytest.raises(NotImplementedError, match="must implement read_state"):
        await NoState().read_state(StateKey.app("a"), expiry, refresh=False)
    with pytest.raises(NotImplementedError, match="must implement write_state"):
        await NoState().write_state(StateKey.app("a"), {}, expiry)
