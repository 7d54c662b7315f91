"""``AgentStateStore`` with AgentScope 2.x: agent states and message logs round-trip equal."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone

import pytest
from agentscope.agent import Agent
from agentscope.credential import CredentialBase
from agentscope.formatter import OpenAIChatFormatter
from agentscope.message import (
    AssistantMsg,
    Msg,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
    ToolCallState,
    ToolResultBlock,
    ToolResultState,
    UserMsg,
)
from agentscope.model import ChatModelBase, ChatResponse
from agentscope.permission import PermissionContext, PermissionMode
from agentscope.state import AgentState
from agentscope.tool import FunctionTool, Toolkit

from sessionhub import (
    ConflictError,
    Event,
    InvalidInput,
    SessionHistoryService,
    TextPart,
    ToolCallPart,
)
from sessionhub_agentscope import MSG_KEY, STATE_PREFIX, AgentStateStore, event_to_msg

pytestmark = pytest.mark.asyncio


class NoCredential(CredentialBase):
    """The scripted model calls no API."""


class ScriptedModel(ChatModelBase):
    """A chat model answering with the given responses in turn; no network."""

    def __init__(self, responses: list[ChatResponse]) -> None:
        super().__init__(NoCredential(), "scripted", ChatModelBase.Parameters(), stream=False)
        self.formatter = OpenAIChatFormatter()
        self.responses = list(responses)

    async def _call_api(self, model_name, messages, tools=None, tool_choice=None, **kwargs):
        return self.responses.pop(0)


def add(a: int, b: int) -> str:
    """Add two numbers.

    Args:
        a (int): The first number.
        b (int): The second number.
    """
    return str(a + b)


def scripted_agent(state: AgentState | None, *responses: ChatResponse) -> Agent:
    """A 2.x Agent with an ``add`` tool it may run without asking."""
    state = state or AgentState(permission_context=PermissionContext(mode=PermissionMode.BYPASS))
    return Agent(
        name="Friday",
        system_prompt="Be brief.",
        model=ScriptedModel(list(responses)),
        toolkit=Toolkit(tools=[FunctionTool(add)]),
        state=state,
    )


def tool_turn(a: int, b: int) -> list[ChatResponse]:
    call = ToolCallBlock(id=f"call-{a}-{b}", name="add", input=json.dumps({"a": a, "b": b}))
    return [
        ChatResponse(content=[call], is_last=True),
        ChatResponse(content=[TextBlock(text=str(a + b))], is_last=True),
    ]


def history() -> list[Msg]:
    """A tool turn as a 2.x agent records it: question, call, result, answer."""
    question = UserMsg("user", "What is 2+3?", created_at="2026-11-27T11:56:30.123456")
    call = ToolCallBlock(
        id="call-1", name="add", input='{"a": 2, "b": 3}', state=ToolCallState.FINISHED
    )
    result = ToolResultBlock(
        id="call-1", name="add", output=[TextBlock(text="5")], state=ToolResultState.SUCCESS
    )
    acting = AssistantMsg(
        "Friday",
        [ThinkingBlock(thinking="use the tool"), call, result],
        created_at="2026-11-27T11:56:31.000001",
        metadata={"turn": 1},
    )
    answer = AssistantMsg("Friday", "It is 5.", created_at="2026-11-27T11:56:32")
    return [question, acting, answer]


def agent_state(session_id: str = "chat-1") -> AgentState:
    state = AgentState(session_id=session_id, summary="Earlier: greetings.", context=history())
    state.cur_iter = 2
    state.tool_context.activated_groups.append("math")
    state.middle_context["budget"] = {"left": 3}
    return state


@pytest.fixture
def states(service: SessionHistoryService) -> AgentStateStore:
    return AgentStateStore(service)


async def test_agent_state_round_trips_equal(states):
    state = agent_state()
    await states.save_state("alice", state)
    loaded = await states.load_state("alice", "chat-1")
    assert loaded == state
    assert loaded.context[1].content[1].input == '{"a": 2, "b": 3}'
    assert loaded.context[0].created_at == "2026-11-27T11:56:30.123456"


async def test_a_real_agents_state_and_messages_round_trip_and_it_carries_on(states):
    """A 2.x Agent runs a tool turn, is saved, and a new Agent resumes from what loads."""
    agent = scripted_agent(None, *tool_turn(2, 3))
    question = UserMsg("alice", "What is 2+3?")
    answer = await agent.reply(question)
    blocks = [[block.type for block in msg.content] for msg in agent.state.context]
    assert [t for t in blocks[1] if t != "hint"] == ["tool_call", "tool_result", "text"]
    await states.save_state("alice", agent.state)
    await states.append_messages("alice", agent.state.session_id, [question, answer])

    loaded = await states.load_state("alice", agent.state.session_id)
    assert loaded == agent.state
    assert await states.load_messages("alice", agent.state.session_id) == [question, answer]

    resumed = scripted_agent(loaded, *tool_turn(4, 5))
    await resumed.reply(UserMsg("alice", "And 4+5?"))
    assert resumed.state.context[: len(agent.state.context)] == agent.state.context
    assert resumed.state.context[-1].get_text_content() == "9"


async def test_a_save_replaces_the_last_and_the_state_reads_as_json(states, service):
    state = agent_state()
    await states.save_state("alice", state)
    state.context.append(UserMsg("user", "thanks"))
    state.summary = "changed"
    await states.save_state("alice", state)
    assert await states.load_state("alice", "chat-1") == state
    stored = await service.get_session("alice", "chat-1")
    assert json.loads(stored.state[STATE_PREFIX + "agent"]) == json.loads(state.model_dump_json())
    await service.update_session(
        "alice", "chat-1", state={STATE_PREFIX + "agent": state.model_dump(mode="json")}
    )
    assert await states.load_state("alice", "chat-1") == state  # a JSON object loads too


async def test_missing_state_is_none_and_names_keep_agents_apart(states):
    assert await states.load_state("alice", "nothing") is None
    leader, worker = agent_state("team"), AgentState(session_id="team", summary="worker")
    await states.save_state("alice", leader, name="leader")
    await states.save_state("alice", worker, name="worker")
    assert await states.load_state("alice", "team", name="leader") == leader
    assert await states.load_state("alice", "team", name="worker") == worker
    assert await states.load_state("alice", "team") is None
    assert await states.load_state("bob", "team", name="leader") is None
    with pytest.raises(InvalidInput, match="name"):
        await states.save_state("alice", leader, name="")


async def test_messages_round_trip_equal_and_the_events_read_as_the_conversation(states, service):
    messages = history()
    await states.append_messages("alice", "chat-1", messages)
    assert await states.load_messages("alice", "chat-1") == messages
    assert await states.load_messages("alice", "chat-1", last_n=1) == messages[-1:]

    events = (await service.get_session("alice", "chat-1")).events
    assert [e.id for e in events] == [m.id for m in messages]
    assert [e.role for e in events] == ["user", "assistant", "assistant"]
    assert events[0].text == "What is 2+3?" and events[2].text == "It is 5."
    assert events[1].tool_calls == [
        ToolCallPart(id="call-1", name="add", arguments={"a": 2, "b": 3})
    ]
    result = events[1].content[-1]
    assert result.type == "tool_result" and result.call_id == "call-1" and not result.is_error
    assert events[1].metadata["name"] == "Friday"
    local = datetime.fromisoformat("2026-11-27T11:56:30.123456").astimezone(timezone.utc)
    assert events[0].timestamp == local  # created_at is local time, as AgentScope writes it


async def test_appending_a_message_again_is_a_no_op_and_a_changed_one_conflicts(states):
    messages = history()
    await states.append_messages("alice", "chat-1", messages[0])
    await states.append_messages("alice", "chat-1", messages)  # a retry of the first is fine
    assert await states.load_messages("alice", "chat-1") == messages
    changed = messages[2].model_copy(update={"content": [TextBlock(text="It is 6.")]})
    with pytest.raises(ConflictError):
        await states.append_messages("alice", "chat-1", [changed])
    await states.replace_messages("alice", "chat-1", [messages[0], changed])
    assert await states.load_messages("alice", "chat-1") == [messages[0], changed]


async def test_state_and_log_share_the_session(states):
    state = agent_state("both")
    await states.append_messages("alice", "both", state.context)
    await states.save_state("alice", state)
    assert await states.load_state("alice", "both") == state
    assert await states.load_messages("alice", "both") == state.context
    assert await states.delete("alice", "both") is True
    assert await states.load_state("alice", "both") is None
    assert await states.load_messages("alice", "both") == []
    assert await states.delete("alice", "both") is False


async def test_replace_messages_creates_the_session(states):
    messages = history()
    await states.replace_messages("alice", "new", messages)
    assert await states.load_messages("alice", "new") == messages


async def test_events_written_elsewhere_load_as_plain_messages(states, service):
    await service.create_session("alice", "mixed")
    await service.append(
        ("alice", "mixed"),
        [
            "hello",
            Event(
                role="assistant", content=[ToolCallPart(id="c1", name="add", arguments={"a": 1})]
            ),
            {"role": "tool", "tool_call_id": "c1", "content": "1"},
            {"role": "system", "content": "be brief"},
        ],
    )
    loaded = await states.load_messages("alice", "mixed")
    assert [m.role for m in loaded] == ["user", "assistant", "assistant", "system"]
    assert loaded[0].get_text_content() == "hello"
    assert loaded[1].content[0].input == '{"a": 1}'
    assert loaded[2].content[0].id == "c1" and loaded[2].content[0].output == "1"
    assert all(MSG_KEY not in m.metadata for m in loaded)


async def test_event_to_msg_prefers_the_stored_message():
    message = history()[1]
    event = Event(
        role="assistant",
        content=[TextPart(text="a view")],
        metadata={MSG_KEY: message.model_dump(mode="json")},
    )
    assert event_to_msg(event) == message


async def test_fifty_concurrent_state_saves_leave_one_whole_state(states):
    written = []
    for writer in range(50):
        state = AgentState(session_id="race", summary=f"writer-{writer}")
        state.context = [UserMsg("user", f"{writer}:{i}") for i in range(writer % 5 + 1)]
        written.append(state)
    await asyncio.gather(*(states.save_state("alice", s) for s in written))
    loaded = await states.load_state("alice", "race")
    assert loaded in written  # one writer's state, whole: its summary and its context
    for state in reversed(written[:5]):
        await states.save_state("alice", state)
        assert await states.load_state("alice", "race") == state


async def test_wrong_types_are_refused(states):
    with pytest.raises(TypeError, match="AgentState"):
        await states.save_state("alice", {"session_id": "x"})
    with pytest.raises(TypeError, match="Msg"):
        await states.append_messages("alice", "s", [{"role": "user", "content": "hi"}])
