"""ADK events to sessionhub events and back.

An ADK ``Event`` is stored as a readable sessionhub event (role ``user``,
``assistant`` or ``tool``; text, tool-call, tool-result and file parts) that
also carries the ADK event's own JSON, verbatim, under ``metadata["adk_event"]``.
Reading rebuilds the event from that JSON (:func:`sessionhub_adk._rebuild.rebuild`,
without validating it again), so it comes back equal, float timestamp included.
An event without it (appended through another API) is converted from its
readable parts.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from google.adk.events.event import Event as AdkEvent
from google.genai import types

from sessionhub import Event, FilePart, Part, TextPart, ToolCallPart, ToolResultPart
from sessionhub_adk._rebuild import rebuild

__all__ = ["ADK_EVENT_KEY", "to_sessionhub_event", "to_adk_event", "epoch_to_datetime"]

ADK_EVENT_KEY = "adk_event"
"""The sessionhub event metadata key holding the ADK event's JSON."""


def epoch_to_datetime(epoch: float) -> datetime:
    """An ADK float epoch as a UTC datetime (to the microsecond)."""
    return datetime.fromtimestamp(epoch, timezone.utc)


def _role(event: AdkEvent, parts: list[dict[str, Any]]) -> str:
    if any("function_response" in part for part in parts):
        return "tool"
    content_role = event.content.role if event.content else None
    if event.author == "user" or content_role == "user":
        return "user"
    return "assistant"


def _readable_part(part: dict[str, Any]) -> Part | None:
    if "text" in part and not part.get("thought"):
        return TextPart(text=part["text"])
    if "function_call" in part:
        call = part["function_call"]
        return ToolCallPart(
            id=call.get("id") or "", name=call.get("name") or "", arguments=call.get("args") or {}
        )
    if "function_response" in part:
        response = part["function_response"]
        return ToolResultPart(call_id=response.get("id") or "", output=response.get("response"))
    if "inline_data" in part:  # the bytes stay in the ADK JSON only: stored once
        blob = part["inline_data"]
        return FilePart(
            mime_type=blob.get("mime_type") or "application/octet-stream",
            name=blob.get("display_name"),
        )
    if "file_data" in part:
        file = part["file_data"]
        return FilePart(
            mime_type=file.get("mime_type") or "application/octet-stream",
            uri=file.get("file_uri"),
            name=file.get("display_name"),
        )
    return None


def to_sessionhub_event(event: AdkEvent, state_delta: dict[str, Any]) -> Event:
    """The sessionhub event that stores ``event`` with ``state_delta`` (already encoded)."""
    data = event.model_dump(mode="json", exclude_none=True)
    parts = (data.get("content") or {}).get("parts") or []
    readable = [part for part in map(_readable_part, parts) if part is not None]
    return Event(
        id=event.id,
        role=_role(event, parts),
        content=readable,
        timestamp=epoch_to_datetime(event.timestamp),
        state_delta=state_delta,
        metadata={ADK_EVENT_KEY: data},
    )


def _adk_part(part: Part) -> types.Part | None:
    if isinstance(part, TextPart):
        return types.Part(text=part.text)
    if isinstance(part, ToolCallPart):
        args = part.arguments if isinstance(part.arguments, dict) else {"arguments": part.arguments}
        return types.Part(function_call=types.FunctionCall(id=part.id, name=part.name, args=args))
    if isinstance(part, ToolResultPart):
        output = part.output if isinstance(part.output, dict) else {"result": part.output}
        return types.Part(
            function_response=types.FunctionResponse(id=part.call_id, response=output)
        )
    if isinstance(part, FilePart) and part.uri:
        return types.Part(file_data=types.FileData(file_uri=part.uri, mime_type=part.mime_type))
    return None


def to_adk_event(event: Event) -> AdkEvent:
    """The ADK event stored in ``event``, or one built from its readable parts."""
    stored = event.metadata.get(ADK_EVENT_KEY)
    if isinstance(stored, dict):
        return rebuild(AdkEvent, stored)
    parts = [part for part in map(_adk_part, event.content) if part is not None]
    user = event.role == "user"
    return AdkEvent(
        id=event.id,
        author="user" if user else event.role,
        content=types.Content(role="user" if user else "model", parts=parts) if parts else None,
        timestamp=event.timestamp.timestamp() if event.timestamp else 0.0,
    )
