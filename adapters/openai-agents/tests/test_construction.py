"""Building sessions: from a service, a URL or the configuration; one shared connection per URL."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from agents import Agent, Runner
from agents.memory import Session, SessionABC
from agents.testing import ScriptedModel, assistant_message

from sessionhub import ConfigError, InvalidInput, SessionHubSettings
from sessionhub_openai_agents import DEFAULT_USER_ID, SessionHubSession
from sessionhub_openai_agents._services import shared_services


def memory_url() -> str:
    return f"memory://openai-agents-{uuid.uuid4().hex[:12]}"


def test_it_is_an_sdk_session():
    session = SessionHubSession("c", url=memory_url())
    assert isinstance(session, SessionABC) and isinstance(session, Session)
    assert session.session_id == "c" and session.user_id == DEFAULT_USER_ID == "default"
    assert session.session_settings is not None and session.session_settings.limit is None
    asyncio.run(session.close())


@pytest.mark.asyncio
async def test_sessions_on_one_url_share_one_service_until_the_last_closes(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    before = len(shared_services)
    first = SessionHubSession("a", url=url)
    second = SessionHubSession.from_url("b", url=url)
    other_settings = SessionHubSession("c", url=url, event_limit=10)
    assert first.service is second.service
    assert other_settings.service is not first.service
    assert len(shared_services) == before + 2

    await first.add_items([{"role": "user", "content": "from a"}])
    await second.add_items([{"role": "user", "content": "from b"}])
    await first.close()
    assert await second.get_items() == [{"role": "user", "content": "from b"}]  # still open
    await second.close()
    await other_settings.close()
    assert len(shared_services) == before

    async with SessionHubSession("a", url=url) as reopened:  # a new service, same file
        assert await reopened.get_items() == [{"role": "user", "content": "from a"}]


@pytest.mark.asyncio
async def test_user_and_app_name_place_the_session(service):
    session = SessionHubSession("c", service, user_id="alice", app_name="support-bot")
    await session.add_items([{"role": "user", "content": "hi"}])
    assert await service.get_session("alice", "c") is None  # another app
    stored = await service.for_app("support-bot").get_session("alice", "c")
    assert stored is not None and stored.events[0].text == "hi"
    assert "support-bot" in repr(session) and "alice" in repr(session)


def test_the_configured_store_is_used_without_a_url(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SESSIONHUB_URL", f"sqlite:///{tmp_path / 'configured.db'}")

    async def main():
        async with SessionHubSession("c") as session:
            await session.add_items([{"role": "user", "content": "hi"}])
            return session.service.backend.name

    assert asyncio.run(main()) == "sqlite"
    assert (tmp_path / "configured.db").is_file()


def test_run_sync_works_across_event_loops():
    """``Runner.run_sync`` runs each call on a new loop; the shared service follows it."""
    session = SessionHubSession("c", url=memory_url())
    agent = Agent(
        name="sync", model=ScriptedModel([[assistant_message("one")], [assistant_message("two")]])
    )
    assert Runner.run_sync(agent, "first", session=session).final_output == "one"
    assert Runner.run_sync(agent, "second", session=session).final_output == "two"
    # run_sync leaves the thread's default loop open for the next call: close it here
    policy = asyncio.get_event_loop_policy()
    policy.get_event_loop().close()
    policy.set_event_loop(None)
    assert len(asyncio.run(session.get_items())) == 4
    asyncio.run(session.close())


@pytest.mark.parametrize("session_id", ["", "   "])
def test_a_blank_session_id_is_refused(session_id):
    with pytest.raises(InvalidInput, match="session_id"):
        SessionHubSession(session_id, url=memory_url())


@pytest.mark.asyncio
async def test_a_service_and_a_url_together_are_refused(service):
    with pytest.raises(InvalidInput, match="not both"):
        SessionHubSession("c", service, url=memory_url())


@pytest.mark.asyncio
async def test_sessions_from_one_settings_object_share_its_service(tmp_path):
    settings = SessionHubSettings.isolated(url=f"sqlite:///{tmp_path / 'settings.db'}")
    first = SessionHubSession("a", settings=settings)
    second = SessionHubSession("b", settings=settings, user_id="bob")
    assert first.service is second.service and first.service.backend.name == "sqlite"
    await first.add_items([{"role": "user", "content": "hi"}])
    assert await second.get_items() == []
    await first.close()
    await second.close()


def test_an_unknown_url_scheme_is_a_one_line_error():
    with pytest.raises(ConfigError) as raised:
        SessionHubSession("c", url="nosuch://somewhere")
    assert "nosuch" in str(raised.value) and "\n" not in str(raised.value).strip()
