"""Between AgentScope 2.x ``Msg`` objects and sessionhub events, in both directions.

A message is kept verbatim in its event's metadata (under ``MSG_KEY``), so it
loads back equal: every block (text, thinking, tool calls with their JSON-text
``input``, tool results, data), ``id``, ``name``, ``created_at``, usage and
metadata. The event itself is a readable view of the same message for the CLI,
export and the other adapters: its id is the message's, its role the message's,
its timestamp the message's ``created_at``, its content text, tool-call and
tool-result parts (sessionhub's normaliser reads AgentScope's blocks). An event
written without this adapter becomes a plain ``Msg`` of its text and tool parts.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from agentscope.message import (
    ContentBlock,
    Msg,
    TextBlock,
    ToolCallBlock,
    ToolCallState,
    ToolResultBlock,
    ToolResultState,
)

from sessionhub import Event, TextPart, ToolCallPart, ToolResultPart

__all__ = ["MSG_KEY", "msg_to_event_input", "event_to_msg"]

MSG_KEY = "agentscope_msg"
"""The event metadata key holding the ``Msg`` exactly as it was stored (its JSON dump)."""


def msg_to_event_input(msg: Msg) -> dict[str, Any]:
    """The event input (AgentScope's message shape) that stores ``msg`` and a readable view."""
    if not isinstance(msg, Msg):
        raise TypeError(
            f"expected an agentscope.message.Msg, got {type(msg).__name__}; "
            "build messages with Msg(name, content, role)"
        )
    dump = msg.model_dump(mode="json")
    return {
        "id": msg.id,
        "role": msg.role,
        "name": msg.name,
        "content": dump["content"],
        "created_at": msg.created_at,
        "metadata": {MSG_KEY: dump},
    }


def event_to_msg(event: Event) -> Msg:
    """The ``Msg`` an event stands for: the stored one, else one built from its content."""
    stored = event.metadata.get(MSG_KEY)
    if isinstance(stored, dict):
        return Msg.model_validate(stored)
    blocks = [block for part in event.content if (block := _block(part)) is not None]
    role = _role(event.role, blocks)
    name = event.metadata.get("name")
    message = Msg(name=name if isinstance(name, str) else event.role, content=blocks, role=role)
    message.id = event.id
    if event.timestamp is not None:
        message.created_at = event.timestamp.isoformat()
    return message


def _block(part: object) -> ContentBlock | None:
    if isinstance(part, TextPart):
        return TextBlock(text=part.text)
    if isinstance(part, ToolCallPart):
        arguments = part.arguments
        return ToolCallBlock(
            id=part.id,
            name=part.name,
            input=arguments if isinstance(arguments, str) else json.dumps(arguments),
            state=ToolCallState.FINISHED,
        )
    if isinstance(part, ToolResultPart):
        output = part.output
        return ToolResultBlock(
            id=part.call_id,
            name="",
            output=output if isinstance(output, str) else json.dumps(output),
            state=ToolResultState.ERROR if part.is_error else ToolResultState.SUCCESS,
        )
    return None  # files and data parts of other frameworks have no plain Msg block


def _role(role: str, blocks: list[ContentBlock]) -> Literal["user", "assistant", "system"]:
    """AgentScope's role for an event's: tool results and other authors are the assistant's."""
    if role == "user" and all(block.type in ("text", "data") for block in blocks):
        return "user"
    if role == "system" and all(block.type == "text" for block in blocks):
        return "system"
    return "assistant"
