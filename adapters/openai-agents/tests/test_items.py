"""Every item shape the SDK produces comes back equal, and reads as a sensible sessionhub event."""

from __future__ import annotations

import pytest

from sessionhub import DataPart, TextPart, ToolCallPart, ToolResultPart
from sessionhub_openai_agents import ITEM_KEY, event_to_item, item_to_event

ITEMS = {
    "user message, string content": {"role": "user", "content": "What is 2 + 2?"},
    "system message": {"role": "system", "content": "Be brief."},
    "developer message, list content": {
        "type": "message",
        "role": "developer",
        "content": [{"type": "input_text", "text": "Answer in French."}],
    },
    "user message, mixed list content": {
        "type": "message",
        "role": "user",
        "content": [
            {"type": "input_text", "text": "Describe this"},
            {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "auto"},
            {"type": "input_file", "file_id": "file-1", "filename": "a.pdf"},
        ],
    },
    "assistant output message": {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [
            {"type": "output_text", "text": "4", "annotations": [], "logprobs": []},
            {"type": "refusal", "refusal": "I cannot say more."},
        ],
    },
    "function call": {
        "id": "fc_1",
        "type": "function_call",
        "call_id": "call_1",
        "name": "add",
        "arguments": '{"a": 2, "b": 2.5, "deep": {"none": null, "flag": true}}',
        "status": "completed",
    },
    "function call output, string": {
        "type": "function_call_output",
        "call_id": "call_1",
        "output": "4.5",
    },
    "function call output, list": {
        "type": "function_call_output",
        "call_id": "call_2",
        "output": [{"type": "input_text", "text": "a chart"}],
    },
    "reasoning": {
        "id": "rs_1",
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "Adding two numbers."}],
        "encrypted_content": "gAAAA==",
    },
    "computer call": {
        "id": "cu_1",
        "type": "computer_call",
        "call_id": "call_3",
        "action": {"type": "click", "x": 10, "y": 20, "button": "left"},
        "pending_safety_checks": [],
        "status": "completed",
    },
    "computer call output": {
        "type": "computer_call_output",
        "call_id": "call_3",
        "output": {"type": "computer_screenshot", "image_url": "data:image/png;base64,AAAA"},
    },
    "file search call": {
        "id": "fs_1",
        "type": "file_search_call",
        "queries": ["sessionhub"],
        "status": "completed",
        "results": None,
    },
    "web search call": {
        "id": "ws_1",
        "type": "web_search_call",
        "status": "completed",
        "action": {"type": "search", "query": "weather"},
    },
    "code interpreter call": {
        "id": "ci_1",
        "type": "code_interpreter_call",
        "code": "print(1)",
        "container_id": "c_1",
        "outputs": [{"type": "logs", "logs": "1"}],
        "status": "completed",
    },
    "local shell call and output": {
        "id": "ls_1",
        "type": "local_shell_call",
        "call_id": "call_4",
        "action": {"type": "exec", "command": ["ls"], "env": {}},
        "status": "completed",
    },
    "local shell call output": {"id": "ls_1", "type": "local_shell_call_output", "output": "a b"},
    "mcp call": {
        "id": "mcp_1",
        "type": "mcp_call",
        "server_label": "docs",
        "name": "search",
        "arguments": '{"q": "x"}',
        "output": "found",
    },
    "mcp approval request": {
        "id": "mcpr_1",
        "type": "mcp_approval_request",
        "server_label": "docs",
        "name": "delete",
        "arguments": "{}",
    },
    "custom tool call": {
        "type": "custom_tool_call",
        "call_id": "call_5",
        "name": "grammar",
        "input": "free text input",
    },
    "custom tool call output": {
        "type": "custom_tool_call_output",
        "call_id": "call_5",
        "output": "ok",
    },
    "image generation call": {
        "id": "ig_1",
        "type": "image_generation_call",
        "result": None,
        "status": "generating",
    },
    "item reference": {"type": "item_reference", "id": "msg_0"},
}


@pytest.mark.asyncio
async def test_every_item_shape_round_trips_exactly(make_session):
    session = make_session()
    items = list(ITEMS.values())
    await session.add_items(items)
    assert await session.get_items() == items
    assert await session.get_items(limit=2) == items[-2:]


@pytest.mark.asyncio
async def test_a_popped_item_comes_back_exactly(make_session, require):
    require("pop_event")
    session = make_session()
    await session.add_items([ITEMS["function call"], ITEMS["reasoning"]])
    assert await session.pop_item() == ITEMS["reasoning"]
    assert await session.pop_item() == ITEMS["function call"]


@pytest.mark.asyncio
async def test_events_read_as_a_conversation(make_session):
    session = make_session()
    await session.add_items(
        [
            ITEMS["user message, string content"],
            ITEMS["function call"],
            ITEMS["function call output, string"],
            ITEMS["reasoning"],
            ITEMS["assistant output message"],
        ]
    )
    stored = await session.service.get_session(session.user_id, session.session_id)
    user, call, result, reasoning, reply = stored.events
    assert (user.role, user.text) == ("user", "What is 2 + 2?")
    assert call.role == "assistant"
    assert call.tool_calls == [
        ToolCallPart(
            id="call_1",
            name="add",
            arguments={"a": 2, "b": 2.5, "deep": {"none": None, "flag": True}},
        )
    ]
    assert result.role == "tool"
    assert result.content == [ToolResultPart(call_id="call_1", output="4.5")]
    assert reasoning.role == "assistant" and reasoning.text == ""
    assert reasoning.content == [
        DataPart(data={"type": "reasoning", "summary": ["Adding two numbers."]})
    ]
    assert (reply.role, reply.text) == ("assistant", "4I cannot say more.")


def test_built_in_tool_calls_are_named_by_their_type():
    event = item_to_event(ITEMS["computer call"])
    assert event.tool_calls == [
        ToolCallPart(
            id="call_3",
            name="computer",
            arguments={"type": "click", "x": 10, "y": 20, "button": "left"},
        )
    ]
    assert item_to_event(ITEMS["custom tool call"]).tool_calls[0].name == "grammar"
    assert item_to_event(ITEMS["mcp call"]).tool_calls[0].arguments == {"q": "x"}


def test_an_event_never_takes_the_item_id_and_keeps_the_item_apart():
    item = ITEMS["assistant output message"]
    first, second = item_to_event(item), item_to_event(item)
    assert first.id != second.id and "msg_1" not in (first.id, second.id)
    assert first.metadata == {ITEM_KEY: item}
    stored = first.metadata[ITEM_KEY]
    assert stored is not item and stored["content"] is not item["content"]  # a deep copy


def test_a_non_dict_item_is_refused_with_what_to_do():
    with pytest.raises(TypeError, match="must be a dict"):
        item_to_event("hello")  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_events_written_without_the_adapter_become_items(make_session, service):
    """A conversation started through sessionhub (or another adapter) continues in the SDK."""
    await service.create_session("default", "elsewhere")
    await service.append(
        ("default", "elsewhere"),
        [
            "hello",
            {"role": "assistant", "content": [{"type": "text", "text": "hi"}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "function": {"name": "add", "arguments": '{"a": 1}'}},
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "2"},
            {"role": "narrator", "content": "meanwhile"},
        ],
    )
    items = await make_session("elsewhere").get_items()
    assert items == [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi"},
        {"type": "function_call", "call_id": "c1", "name": "add", "arguments": '{"a": 1}'},
        {"type": "function_call_output", "call_id": "c1", "output": "2"},
        {"role": "user", "content": "meanwhile"},
    ]


def test_event_to_item_serialises_structured_tool_output():
    event = item_to_event({"role": "user", "content": "x"})
    event.metadata = {}
    event.role = "tool"
    event.content = [ToolResultPart(call_id="c", output={"n": 1})]
    assert event_to_item(event) == {
        "type": "function_call_output",
        "call_id": "c",
        "output": '{"n": 1}',
    }
    event.content = [TextPart(text="plain")]
    event.role = "assistant"
    assert event_to_item(event) == {"role": "assistant", "content": "plain"}
