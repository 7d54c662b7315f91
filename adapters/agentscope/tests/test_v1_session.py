"""``SessionHubSession`` against AgentScope 1.x's own session contract, on every backend.

The first tests mirror AgentScope's ``tests/session_test.py`` (save, mutate, load,
compare) with a ReActAgent that has really run a tool turn on a scripted model.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from agentscope.agent import AgentBase, ReActAgent
from agentscope.formatter import OpenAIChatFormatter
from agentscope.memory import InMemoryMemory
from agentscope.message import Msg, TextBlock, ToolUseBlock
from agentscope.model import ChatModelBase, ChatResponse
from agentscope.session import JSONSession
from agentscope.tool import Toolkit, ToolResponse

from sessionhub import InvalidInput, SessionHistoryService, SessionNotFound
from sessionhub.transfer import import_records, read_agentscope_sessions
from sessionhub_agentscope import (
    DEFAULT_USER_ID,
    MEMORIES_KEY,
    STATE_KEY,
    SessionHubSession,
    SessionStateNotFound,
)

pytestmark = pytest.mark.asyncio

# --- AgentScope 1.x pieces: a scripted model and real agents that use it ---------------


class ScriptedModel(ChatModelBase):
    """A chat model that answers with the given responses in turn; no network."""

    def __init__(self, responses: list[ChatResponse]) -> None:
        super().__init__("scripted", stream=False)
        self.responses = list(responses)

    async def __call__(self, messages: Any, tools: Any = None, **kwargs: Any) -> ChatResponse:
        return self.responses.pop(0)


def add(a: int, b: int) -> ToolResponse:
    """Add two numbers.

    Args:
        a (int): The first number.
        b (int): The second number.
    """
    return ToolResponse(content=[TextBlock(type="text", text=str(a + b))])


def react_agent(*responses: ChatResponse, name: str = "Friday") -> ReActAgent:
    """A ReActAgent with an ``add`` tool, memory in memory, answering with ``responses``."""
    toolkit = Toolkit()
    toolkit.register_tool_function(add)
    agent = ReActAgent(
        name=name,
        sys_prompt="A helpful assistant.",
        model=ScriptedModel(list(responses)),
        formatter=OpenAIChatFormatter(),
        toolkit=toolkit,
        memory=InMemoryMemory(),
    )
    agent.set_console_output_enabled(False)
    return agent


def tool_turn(a: int, b: int) -> list[ChatResponse]:
    """The model's side of a turn that calls ``add(a, b)`` and then states the sum."""
    call = ToolUseBlock(type="tool_use", id=f"call-{a}-{b}", name="add", input={"a": a, "b": b})
    return [
        ChatResponse(content=[call]),
        ChatResponse(content=[TextBlock(type="text", text=f"{a + b}")]),
    ]


async def answered_agent(a: int = 2, b: int = 3) -> ReActAgent:
    """A ReActAgent that has run one turn: question, tool call, tool result, answer."""
    agent = react_agent(*tool_turn(a, b))
    await agent(Msg("user", f"What is {a}+{b}?", "user"))
    return agent


class NoteAgent(AgentBase):
    """AgentScope's own session test agent: registered attributes and a memory."""

    def __init__(self) -> None:
        super().__init__()
        self.name = "Friday"
        self.sys_prompt = "A helpful assistant."
        self.memory = InMemoryMemory()
        self.register_state("name")
        self.register_state("sys_prompt")

    async def reply(self, msg: Msg) -> None:
        """Never called by these tests."""

    async def observe(self, msg: Msg) -> None:
        """Remember ``msg``."""
        await self.memory.add(msg)

    async def handle_interrupt(self, msg: Msg | list[Msg] | None = None) -> Msg:
        """Never called by these tests."""
        raise NotImplementedError


# --- the tests ----------------------------------------------------------------------


@pytest.fixture
def session(service: SessionHistoryService) -> SessionHubSession:
    return SessionHubSession(service)


def memory_of(agent) -> list[dict]:
    return agent.memory.state_dict()["content"]


async def test_save_mutate_load_restores_agents(session):
    """AgentScope's own test: two agents saved, changed, loaded back as saved."""
    agent1 = await answered_agent()
    agent2 = NoteAgent()
    await agent2.memory.add(Msg("Alice", "Hi!", "user"))
    saved1, saved2 = agent1.state_dict(), agent2.state_dict()

    await session.save_session_state(session_id="user_1", agent1=agent1, agent2=agent2)
    agent1.name = "Changed"
    agent2.sys_prompt = "Changed prompt"
    await agent1.memory.clear()
    await agent2.memory.add(Msg("Bob", "later", "user"))
    await session.load_session_state(session_id="user_1", agent1=agent1, agent2=agent2)

    assert agent1.name == "Friday" and agent2.sys_prompt == "A helpful assistant."
    assert agent1.state_dict() == saved1 and agent2.state_dict() == saved2
    blocks = [b["type"] for msg, _ in memory_of(agent1)[1:] for b in msg["content"]]
    assert blocks == ["tool_use", "tool_result", "text"]


async def test_loaded_state_equals_a_json_session_load(session, tmp_path):
    """The same save loaded from JSONSession and from SessionHubSession gives the same agent."""
    agent = await answered_agent(4, 5)
    await JSONSession(str(tmp_path)).save_session_state("s", agent=agent)
    await session.save_session_state("s", agent=agent)
    from_file, from_hub = react_agent(), react_agent()
    await JSONSession(str(tmp_path)).load_session_state("s", agent=from_file)
    await session.load_session_state("s", agent=from_hub)
    assert from_hub.state_dict() == from_file.state_dict() == agent.state_dict()


async def test_missing_session_is_skipped_when_allowed(session):
    agent = react_agent()
    before = agent.state_dict()
    await session.load_session_state("never-saved", agent=agent)
    await session.load_session_state("never-saved", allow_not_exist=True, agent=agent)
    assert agent.state_dict() == before


async def test_missing_session_raises_jsonsessions_error_type_when_not_allowed(session, tmp_path):
    agent = react_agent()
    with pytest.raises(ValueError):
        await JSONSession(str(tmp_path)).load_session_state("nope", allow_not_exist=False, a=agent)
    with pytest.raises(SessionStateNotFound, match="'nope'") as caught:
        await session.load_session_state("nope", allow_not_exist=False, agent=agent)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, SessionNotFound)
    assert caught.value.user_id == DEFAULT_USER_ID


async def test_a_module_without_a_snapshot_is_left_as_it_is(session):
    agent = await answered_agent()
    await session.save_session_state("s", agent=agent)
    other = NoteAgent()
    other.sys_prompt = "mine"
    await session.load_session_state("s", agent=react_agent(), other=other)
    assert other.sys_prompt == "mine"


async def test_a_save_replaces_the_whole_snapshot(session):
    """Like JSONSession rewriting its file: modules left out of a save are gone."""
    agent, notes = await answered_agent(), NoteAgent()
    await session.save_session_state("s", agent=agent, notes=notes)
    await session.save_session_state("s", agent=agent)
    stale = NoteAgent()
    stale.sys_prompt = "untouched"
    await session.load_session_state("s", notes=stale)
    assert stale.sys_prompt == "untouched"
    stored = await session.service.get_session(DEFAULT_USER_ID, "s")
    assert sorted(stored.state) == [MEMORIES_KEY, STATE_KEY]
    assert list(json.loads(stored.state[STATE_KEY])) == ["agent"]
    assert list(stored.state[MEMORIES_KEY]) == ["agent.memory"]


async def test_users_and_sessions_are_separate(session):
    alice, bob = react_agent(name="Alice"), react_agent(name="Bob")
    await session.save_session_state("s", user_id="alice", agent=alice)
    await session.save_session_state("s", user_id="bob", agent=bob)
    await session.save_session_state("s", agent=react_agent(name="Nobody"))
    loaded = react_agent(name="?")
    await session.load_session_state("s", user_id="alice", agent=loaded)
    assert loaded.name == "Alice"
    await session.load_session_state("s", user_id="bob", agent=loaded)
    assert loaded.name == "Bob"
    await session.load_session_state("s", user_id=DEFAULT_USER_ID, agent=loaded)
    assert loaded.name == "Nobody"  # AgentScope's user "" is sessionhub's "default"
    with pytest.raises(SessionStateNotFound):
        await session.load_session_state("other", user_id="alice", allow_not_exist=False)


async def test_a_save_stores_json_sessions_file_as_text_and_memory_entries_as_events(
    session, service, tmp_path
):
    agent, notes = await answered_agent(), NoteAgent()
    await notes.memory.add(Msg("Alice", "Hi!", "user"))
    await session.save_session_state("s", user_id="ada", agent=agent, notes=notes)
    await JSONSession(str(tmp_path)).save_session_state("s", agent=agent, notes=notes)
    stored = await service.get_session("ada", "s")
    written = json.loads((tmp_path / "s.json").read_text())
    entries = {path: [] for path in ("agent.memory", "notes.memory")}
    for event in stored.events:  # a first save writes each memory as a batch
        if "agentscope_entries" in event.metadata:
            entries[event.metadata["agentscope_memory"]] += event.metadata["agentscope_entries"]
    assert entries == {
        "agent.memory": written["agent"]["memory"]["content"],
        "notes.memory": written["notes"]["memory"]["content"],
    }
    for name in ("agent", "notes"):
        written[name]["memory"]["content"] = []
    assert json.loads(stored.state[STATE_KEY]) == written
    assert stored.state[MEMORIES_KEY] == {
        "agent.memory": {"keys": ["agent", "memory"], "count": 4},
        "notes.memory": {"keys": ["notes", "memory"], "count": 1},
    }
    await notes.memory.add(Msg("Bob", "Hello", "assistant"))
    await session.save_session_state("s", user_id="ada", agent=agent, notes=notes)
    added = [
        e
        for e in (await service.get_session("ada", "s")).events
        if "agentscope_entry" in e.metadata
    ]
    assert [(e.role, e.metadata["name"]) for e in added] == [("assistant", "Bob")]
    assert added[0].content == []  # the entry holds the blocks, once


async def test_snapshots_saved_by_the_service_load_here(session, service):
    """``SessionHistoryService.save_state`` (and the import) keep one ``snapshot:<name>`` each."""
    agent = await answered_agent()
    await service.save_state("ada", "s", agent=agent)
    copy = react_agent(name="copy")
    await session.load_session_state("s", user_id="ada", agent=copy)
    assert copy.state_dict() == agent.state_dict()
    await session.save_session_state("s", user_id="ada", agent=react_agent(name="newer"))
    await session.load_session_state("s", user_id="ada", agent=copy)
    assert copy.name == "newer"  # this adapter's snapshot wins over the older per-module one


async def test_a_state_that_is_not_json_is_rejected_and_nothing_is_saved(session):
    class Unsavable:
        def state_dict(self):
            return {"when": object()}

        def load_state_dict(self, state, strict=True):
            raise AssertionError("never loaded")

    with pytest.raises(InvalidInput, match=r"bad\.state_dict\(\)"):
        await session.save_session_state("s", good=react_agent(), bad=Unsavable())
    with pytest.raises(SessionStateNotFound):
        await session.load_session_state("s", allow_not_exist=False)


async def test_fifty_concurrent_saves_leave_one_whole_snapshot_and_the_last_acknowledged_wins(
    session,
):
    """50 writers save different agents at once: the stored snapshot is exactly one of them."""
    agents = []
    for writer in range(50):
        agent = react_agent(name=f"writer-{writer}")
        for line in range(writer % 7 + 1):
            await agent.memory.add(Msg("user", f"{writer}:{line}", "user"))
        agents.append(agent)
    expected = {a.name: json.loads(json.dumps(a.state_dict())) for a in agents}

    await asyncio.gather(*(session.save_session_state("race", agent=a) for a in agents))
    loaded = react_agent(name="?")
    await session.load_session_state("race", agent=loaded)
    assert loaded.state_dict() == expected[loaded.name]  # whole: name and memory agree

    for agent in reversed(agents[:5]):  # acknowledged one after another: each wins in turn
        await session.save_session_state("race", agent=agent)
        await session.load_session_state("race", agent=loaded)
        assert loaded.state_dict() == expected[agent.name]


async def test_concurrent_first_saves_of_different_sessions_and_one_session(session):
    """Creating on first save races safely: many writers, new sessions, nothing raises."""
    agents = [react_agent(name=f"a{i}") for i in range(10)]
    await asyncio.gather(
        *(
            session.save_session_state(f"s{i % 3}", user_id="u", agent=a)
            for i, a in enumerate(agents)
        )
    )
    names = {f"a{i}" for i in range(10)}
    for index in range(3):
        loaded = react_agent(name="?")
        await session.load_session_state(f"s{index}", user_id="u", agent=loaded)
        assert loaded.name in names


async def test_json_session_files_import_and_load_here(service, tmp_path: Path):
    """The 1.x move: save with JSONSession, `sessionhub import --format agentscope`, load here."""
    agent = await answered_agent(6, 7)
    notes = NoteAgent()
    await notes.memory.add(Msg("Alice", "Hi!", "user"))
    await JSONSession(str(tmp_path)).save_session_state("chat", agent=agent, notes=notes)

    files = [tmp_path / "chat.json"]  # JSONSession names a file <session_id>.json
    report = await import_records(service, read_agentscope_sessions(files, user_id="default"))
    assert report.sessions == 1
    restored, restored_notes = react_agent(name="?"), NoteAgent()
    async with SessionHubSession(service) as session:
        await session.load_session_state("chat", agent=restored, notes=restored_notes)
    assert restored.state_dict() == agent.state_dict()
    assert restored_notes.state_dict() == notes.state_dict()
    chat = await service.get_session("default", "chat")
    assert [e.role for e in chat.events] == ["user", "assistant", "system", "assistant", "user"]
    assert chat.events[1].tool_calls[0].arguments == {"a": 6, "b": 7}

    await JSONSession(str(tmp_path)).save_session_state("chat", user_id="alice", agent=agent)
    alice_files = [tmp_path / "alice_chat.json"]  # JSONSession's <user_id>_<session_id>.json
    await import_records(service, read_agentscope_sessions(alice_files, user_id="alice"))
    alices = react_agent(name="?")
    await SessionHubSession(service).load_session_state("chat", user_id="alice", agent=alices)
    assert alices.state_dict() == agent.state_dict()


@pytest.mark.parametrize("scheme", ["memory", "sqlite"])
async def test_built_from_a_url_closes_its_service(scheme, tmp_path):
    url = "memory://agentscope-url" if scheme == "memory" else f"sqlite:///{tmp_path / 'a.db'}"
    async with SessionHubSession(url=url) as session:
        await session.save_session_state("s", agent=react_agent(name="kept"))
        assert session.service.backend.name == scheme
    with pytest.raises(RuntimeError, match="closed"):
        await session.load_session_state("s", agent=react_agent())
    await session.close()  # idempotent
    if scheme == "sqlite":  # what it saved outlives it
        loaded = react_agent()
        async with SessionHubSession(url=url) as reopened:
            await reopened.load_session_state("s", agent=loaded)
        assert loaded.name == "kept"


async def test_service_and_url_together_are_refused(service):
    with pytest.raises(InvalidInput, match="service"):
        SessionHubSession(service, url="memory://")


async def test_app_name_places_sessions_in_that_app(service):
    async with SessionHubSession(service, app_name="assistant") as session:
        await session.save_session_state("s", agent=react_agent())
    assert await service.get_session(DEFAULT_USER_ID, "s") is None
    assert await service.for_app("assistant").get_session(DEFAULT_USER_ID, "s") is not None


async def test_memory_module_alone_round_trips(session):
    memory = InMemoryMemory()
    await memory.add([Msg("user", "one", "user"), Msg("Friday", "two", "assistant")])
    await session.save_session_state("s", memory=memory)
    loaded = InMemoryMemory()
    await session.load_session_state("s", memory=loaded)
    assert loaded.state_dict() == memory.state_dict()
    assert [m.content for m in await loaded.get_memory()] == ["one", "two"]


async def test_a_react_agent_saved_append_only_loads_as_an_exact_save_does(service):
    """Turn by turn with real tool calls: the option's saves store what exact saves store."""
    questions = [(1, 2), (3, 4), (5, 6)]
    agent = react_agent(*(response for a, b in questions for response in tool_turn(a, b)))
    fast = SessionHubSession(service, append_only_memories=True)
    exact = SessionHubSession(service)
    for a, b in questions:
        await agent(Msg("user", f"What is {a}+{b}?", "user"))
        await fast.save_session_state("fast", agent=agent)
        await exact.save_session_state("exact", agent=agent)
        from_fast, from_exact = react_agent(name="?"), react_agent(name="?")
        await exact.load_session_state("fast", agent=from_fast)
        await exact.load_session_state("exact", agent=from_exact)
        assert from_fast.state_dict() == from_exact.state_dict() == agent.state_dict()
    stored = await service.get_session(DEFAULT_USER_ID, "fast")
    resets = [e for e in stored.events if e.metadata.get("agentscope_reset")]
    assert len(resets) == 1  # the first save's: every later one only appended
    assert len(memory_of(agent)) == 4 * len(questions)
