"""Between the Agents SDK's input items and sessionhub events, in both directions.

An item is stored verbatim in its event's metadata (under ``ITEM_KEY``), so
``get_items`` returns exactly what ``add_items`` received. The event's role and
content are a readable view of the same item (text, tool calls, tool results) for
the CLI, export and other adapters; they are never read back into an item. An
event written without this adapter (by the service or another adapter) becomes
one message or tool item, so a conversation started elsewhere can continue here.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from agents.items import TResponseInputItem

from sessionhub import (
    DataPart,
    Event,
    FilePart,
    Part,
    TextPart,
    ToolCallPart,
    ToolResultPart,
)

__all__ = ["ITEM_KEY", "item_to_event", "event_to_item", "copy_json"]

ITEM_KEY = "openai_agents_item"
"""The event metadata key holding the SDK item exactly as it was added."""

_Item = TypeVar("_Item")
_TEXT_PART_TYPES = frozenset({"input_text", "output_text", "text"})


def item_to_event(item: TResponseInputItem) -> Event:
    """A new event (with a new id, never the item's own) holding ``item`` and a readable view.

    The item must be JSON (the SDK's items are dicts of JSON values); sessionhub
    rejects anything else with ``InvalidInput`` before storing.
    """
    data: Any = item
    if not isinstance(data, Mapping):
        raise TypeError(
            f"an OpenAI Agents session item must be a dict, got {type(item).__name__}; "
            "pass items as the SDK produces them (to_input_item())"
        )
    role, content = _readable(data)
    # A copy: the SDK's later edits of its own item must not reach what is stored.
    return Event(
        role=role,
        content=content,
        metadata={ITEM_KEY: copy_json(dict(data) if type(data) is not dict else data)},
    )


def event_to_item(event: Event) -> TResponseInputItem:
    """The SDK item an event stands for: the stored one, else one built from its content."""
    stored = event.metadata.get(ITEM_KEY)
    if isinstance(stored, dict):
        return cast(TResponseInputItem, stored)
    results = [part for part in event.content if isinstance(part, ToolResultPart)]
    if results:
        output = results[0].output
        return cast(
            TResponseInputItem,
            {
                "type": "function_call_output",
                "call_id": results[0].call_id,
                "output": output if isinstance(output, str) else json.dumps(output),
            },
        )
    calls = event.tool_calls
    if calls and not event.text:
        return cast(
            TResponseInputItem,
            {
                "type": "function_call",
                "call_id": calls[0].id,
                "name": calls[0].name,
                "arguments": json.dumps(calls[0].arguments),
            },
        )
    role = event.role if event.role in ("user", "assistant", "system", "developer") else "user"
    return cast(TResponseInputItem, {"role": role, "content": event.text})


def copy_json(item: _Item) -> _Item:
    """A deep copy of a JSON value: its dicts and lists copied, the values in them shared.

    A quarter of ``copy.deepcopy``'s cost: strings and numbers are immutable, and
    anything else is no JSON value, which the service refuses before storing.
    """
    return cast(_Item, _copied(item))


def _copied(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        return {key: _copied(item) for key, item in value.items()}
    if kind is list or kind is tuple:
        return [_copied(item) for item in value]
    return value


def _readable(item: Mapping[str, Any]) -> tuple[str, list[Part]]:
    """The role and content parts a reader of the sessionhub event sees."""
    kind = item.get("type")
    role = item.get("role")
    if isinstance(role, str) and role and kind in (None, "message"):
        return role, _message_parts(item.get("content"))
    if not isinstance(kind, str):
        return "assistant", [DataPart(data={"type": None})]
    if kind == "reasoning":
        summary = [s.get("text", "") for s in item.get("summary") or [] if isinstance(s, Mapping)]
        return "assistant", [DataPart(data={"type": "reasoning", "summary": summary})]
    if kind.endswith("_output"):
        return "tool", [
            ToolResultPart(call_id=str(item.get("call_id") or ""), output=item.get("output"))
        ]
    if kind.endswith("_call"):
        return "assistant", [_tool_call(kind, item)]
    return "assistant", [DataPart(data={"type": kind})]


def _message_parts(content: Any) -> list[Part]:
    if isinstance(content, str):
        return [TextPart(text=content)]
    if not isinstance(content, list):
        return []
    parts: list[Part] = []
    for block in content:
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        if kind in _TEXT_PART_TYPES and isinstance(block.get("text"), str):
            parts.append(TextPart(text=block["text"]))
        elif kind == "refusal" and isinstance(block.get("refusal"), str):
            parts.append(TextPart(text=block["refusal"]))
        elif kind == "input_image" and isinstance(block.get("image_url"), str):
            parts.append(FilePart(mime_type="image/*", uri=block["image_url"]))
        elif kind == "input_file" and isinstance(block.get("file_url"), str):
            parts.append(FilePart(uri=block["file_url"], name=block.get("filename")))
        else:
            parts.append(DataPart(data={"type": kind}))
    return parts


def _tool_call(kind: str, item: Mapping[str, Any]) -> ToolCallPart:
    """A tool call part: function calls by name, built-in tools by their item type."""
    name = item.get("name") if kind in ("function_call", "custom_tool_call", "mcp_call") else None
    arguments: Any = item.get("arguments", item.get("input", item.get("action", {})))
    if isinstance(arguments, str):
        with contextlib.suppress(ValueError):  # a model's malformed arguments stay text
            arguments = json.loads(arguments)
    return ToolCallPart(
        id=str(item.get("call_id") or item.get("id") or ""),
        name=str(name or kind.removesuffix("_call")),
        arguments=arguments if arguments is not None else {},
    )
