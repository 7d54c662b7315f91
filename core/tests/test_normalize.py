"""Turning what callers pass (a str, an OpenAI or AgentScope dict, an Event) into events."""

from __future__ import annotations

import pytest

from sessionhub import Event, InvalidInput
from sessionhub._normalize import to_event, to_events
from sessionhub.models import TextPart, ToolCallPart


def test_a_string_is_a_user_text_event_with_an_id():
    event = to_event("hello")
    assert (event.role, event.text) == ("user", "hello")
    assert event.id


def test_an_openai_tool_call_message_becomes_a_tool_call_part():
    event = to_event(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"q": 1}'}}
            ],
        }
    )
    assert event.content == [ToolCallPart(id="c1", name="f", arguments={"q": 1})]


def test_an_unknown_part_type_is_kept_as_it_is():
    event = to_event({"role": "user", "content": [{"type": "hologram", "x": 1}]})
    assert event.content[0].model_dump() == {"type": "hologram", "x": 1}


def test_an_event_is_copied_and_keeps_its_id():
    original = Event(id="e1", role="user", content=[TextPart(text="a")])
    (copy,) = to_events(original)
    assert copy.id == "e1" and copy is not original


def test_a_list_names_the_index_of_the_bad_item():
    with pytest.raises(InvalidInput, match=r"events\[1\]\.role"):
        to_events(["fine", {"content": "no role"}])


def test_an_object_that_is_no_event_is_refused_naming_its_type():
    with pytest.raises(InvalidInput, match="cannot make an event from a int"):
        to_event(5)
