"""Turning what callers pass to ``append`` into ``Event`` objects.

Accepted: an ``Event``; a string (a user message); a dict in this library's
shape, the OpenAI Chat Completions / Responses item shape, or AgentScope's
``Msg`` shape (1.x, and 2.x: a tool call's ``input`` JSON text becomes its
arguments, a naive ``created_at`` is local time as AgentScope writes it); any
object with ``to_dict()`` or ``model_dump()`` giving one of those; or a list of
any of these.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from pydantic import ValidationError

from sessionhub._event_slots import copy_event
from sessionhub._validate import ROLE_RULE
from sessionhub.errors import InvalidInput
from sessionhub.models import (
    DataPart,
    Event,
    FilePart,
    Part,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    UnknownPart,
)

_EVENT_FIELDS = frozenset({"id", "seq", "role", "content", "timestamp", "state_delta", "metadata"})
_TEXT_TYPES = frozenset({"text", "input_text", "output_text"})
_MEDIA_TYPES = frozenset({"image", "audio", "video", "file"})


def to_events(value: Any) -> list[Event]:
    """Normalise one input or a list of inputs to events (copies; the input is not changed).

    An ``Event`` keeps its id; a string or a dict without an id gets a new one here,
    so the same dict appended twice is two events.
    """
    if isinstance(value, (list, tuple)):
        return [to_event(item, f"events[{index}]") for index, item in enumerate(value)]
    return [to_event(value, "event")]


def to_event(value: Any, field: str = "event") -> Event:
    """Normalise a single input to a new ``Event``."""
    if isinstance(value, Event):
        return copy_event(value)
    if isinstance(value, str):
        return Event(role="user", content=[TextPart(text=value)])
    if not isinstance(value, Mapping):
        as_dict = getattr(value, "to_dict", None) or getattr(value, "model_dump", None)
        if as_dict is None:
            raise InvalidInput(
                field,
                f"cannot make an event from a {type(value).__name__}; pass an Event, a str, "
                "a dict with 'role' and 'content', or a list of those",
            )
        value = as_dict()
        if not isinstance(value, Mapping):
            raise InvalidInput(field, f"{type(value).__name__}.to_dict() did not return a dict")
    try:
        return _from_mapping(value, field)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        rule = first["msg"].removeprefix("Value error, ")  # pydantic's prefix for a ValueError
        raise InvalidInput(f"{field}.{where}" if where else field, rule) from exc


def _from_mapping(data: Mapping[str, Any], field: str) -> Event:
    kind = data.get("type")
    if kind == "function_call":  # OpenAI Responses API item
        return Event(
            id=str(data.get("id") or ""),
            role="assistant",
            content=[_tool_call(data.get("call_id") or data.get("id"), data)],
        )
    if kind == "function_call_output":
        return Event(
            role="tool",
            content=[
                ToolResultPart(call_id=str(data.get("call_id", "")), output=data.get("output"))
            ],
        )
    role = data.get("role") or data.get("author")
    if not isinstance(role, str) or not role:
        raise InvalidInput(f"{field}.role", ROLE_RULE)
    content = _parts(data.get("content"), f"{field}.content")
    tool_calls = data.get("tool_calls")
    if tool_calls:  # OpenAI Chat Completions assistant message
        content.extend(_tool_calls(tool_calls, f"{field}.tool_calls"))
    if role == "tool" and data.get("tool_call_id"):
        text = "".join(p.text for p in content if isinstance(p, TextPart))
        content = [ToolResultPart(call_id=str(data["tool_call_id"]), output=text)]
    fields = {key: data[key] for key in _EVENT_FIELDS & data.keys() if data[key] is not None}
    fields["role"] = role
    fields["content"] = content
    metadata = fields.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise InvalidInput(f"{field}.metadata", f"must be a dict, got {type(metadata).__name__}")
    metadata = dict(metadata)
    name = data.get("name")
    if isinstance(name, str) and name != role:
        metadata.setdefault("name", name)  # AgentScope's author name
    fields["metadata"] = metadata
    if isinstance(fields.get("timestamp"), str):
        fields["timestamp"] = _parse_time(fields["timestamp"], f"{field}.timestamp")
    elif "timestamp" not in fields and isinstance(data.get("created_at"), str):
        fields["timestamp"] = _local_time(data["created_at"], f"{field}.created_at")
    fields.pop("seq", None)
    return Event.model_validate(fields)


def _parse_time(value: str, field: str) -> datetime:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput(field, f"{value!r} is not an ISO 8601 time") from exc


def _local_time(value: str, field: str) -> datetime:
    """An AgentScope 2.x ``created_at``: written with ``datetime.now()``, so naive means local."""
    parsed = _parse_time(value, field)
    try:
        return parsed if parsed.tzinfo else parsed.astimezone(timezone.utc)
    except (OverflowError, OSError, ValueError) as exc:
        raise InvalidInput(field, f"{value!r} is out of range") from exc


def _tool_calls(calls: Any, field: str) -> list[ToolCallPart]:
    if isinstance(calls, (str, bytes)) or not isinstance(calls, Sequence):
        raise InvalidInput(
            field, f"must be a list of tool calls (dicts), got {type(calls).__name__}"
        )
    for index, call in enumerate(calls):
        if not isinstance(call, Mapping):
            raise InvalidInput(
                f"{field}[{index}]",
                f"must be a dict with 'id' and 'function', got {type(call).__name__}",
            )
    return [_tool_call(call.get("id"), call) for call in calls]


def _parts(content: Any, field: str) -> list[Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [TextPart(text=content)]
    if isinstance(content, Mapping):
        return [_part(content, f"{field}[0]")]
    if isinstance(content, Sequence) and not isinstance(content, (bytes, bytearray)):
        return [_part(block, f"{field}[{index}]") for index, block in enumerate(content)]
    raise InvalidInput(
        field,
        f"must be a string or a list of parts, got {type(content).__name__}"
        + (" (decode text first; store binary data as a file part)" if _binary(content) else ""),
    )


def _binary(value: Any) -> bool:
    return isinstance(value, (bytes, bytearray, memoryview))


def _part(block: Any, field: str) -> Part:
    if isinstance(block, str):
        return TextPart(text=block)
    if not isinstance(block, Mapping):
        if hasattr(block, "model_dump"):
            block = block.model_dump()
        else:
            raise InvalidInput(field, f"a part must be a dict or a str, got {type(block).__name__}")
    kind = block.get("type")
    if kind in _TEXT_TYPES:
        text = block.get("text", "")
        if not isinstance(text, str):
            raise InvalidInput(
                f"{field}.text",
                f"must be a string, got {type(text).__name__}"
                + (
                    "; decode it first, or store binary data as a file part"
                    if _binary(text)
                    else ""
                ),
            )
        return TextPart(text=text)
    if kind == "tool_call":
        if "input" in block and "arguments" not in block:  # AgentScope 2.x: input is JSON text
            return _tool_call(block.get("id"), block)
        return ToolCallPart.model_validate(block)
    if kind in ("tool_use", "function_call"):
        return _tool_call(block.get("id") or block.get("call_id"), block)
    if kind == "tool_result":
        if "call_id" in block:
            return ToolResultPart.model_validate(block)
        return ToolResultPart(
            call_id=str(block.get("id") or block.get("tool_use_id") or ""),
            output=block.get("output", block.get("content")),
            is_error=bool(block.get("is_error", False)) or block.get("state") == "error",
        )
    if kind == "data":
        return DataPart.model_validate(block)
    if kind == "image_url":  # OpenAI Chat Completions
        url = block.get("image_url")
        return FilePart(
            mime_type="image/*", uri=url.get("url") if isinstance(url, Mapping) else url
        )
    if kind in _MEDIA_TYPES:
        return _media(kind, block)
    return UnknownPart.model_validate(block)


def _media(kind: str, block: Mapping[str, Any]) -> Part:
    if kind == "file" and ("data" in block or "uri" in block or "mime_type" in block):
        return FilePart.model_validate(block)
    source = block.get("source")
    if isinstance(source, Mapping):  # AgentScope / Anthropic media block
        if source.get("type") == "base64":
            return FilePart(
                mime_type=str(source.get("media_type", f"{kind}/*")), data=source.get("data")
            )
        return FilePart(mime_type=f"{kind}/*", uri=source.get("url"))
    return FilePart(mime_type=f"{kind}/*", uri=block.get("url"))


def _tool_call(call_id: Any, data: Mapping[str, Any]) -> ToolCallPart:
    function = data.get("function")
    if isinstance(function, Mapping):  # Chat Completions: {"id", "function": {"name", "arguments"}}
        name, arguments = function.get("name"), function.get("arguments")
    else:
        name, arguments = data.get("name"), data.get("arguments", data.get("input"))
    if isinstance(arguments, str):
        with contextlib.suppress(ValueError):  # not JSON: keep the model's raw text
            arguments = json.loads(arguments)
    return ToolCallPart(id=str(call_id or ""), name=str(name or ""), arguments=arguments or {})
