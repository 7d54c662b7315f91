"""The data model: sessions, events, their content parts, pages and state scopes.

Everything here is a pydantic v2 model and everything stored is JSON. Times are
UTC-aware datetimes; a naive datetime given on input is taken to be UTC.

What comes back, from every backend (the conformance suite checks each):

- ``Event.timestamp`` is exact to the microsecond, as a datetime is: the same
  instant, in UTC. A float epoch stamp (``time.time()``, as agent frameworks
  keep them) does not survive a trip through a datetime for many values, so a
  framework that needs its float back keeps it in ``metadata`` as well.
- Any JSON value in ``metadata``, ``state``, ``state_delta`` and part data comes
  back equal and of the same type: floats bit for bit (``time.time()`` values,
  ``0.1 + 0.2``, ``1e100``, ``5e-324``, ``-0.0``), integers of any size
  (``2**63``, ``-10**30``), empty containers, text and keys with any character
  (NUL, astral), keys that look like numbers, nesting up to 64 levels. NaN,
  infinity and lone surrogates are refused (``InvalidInput``): JSON and UTF-8
  cannot hold them.
- ``Event.role`` is 1-256 printable characters: the message's role (``user``,
  ``assistant``, ``system``, ``tool``) or an author name. An empty role is
  refused; a framework whose author string may be empty maps the role from the
  message's role and keeps the author string in ``metadata``.
"""

from __future__ import annotations

import itertools
import os
from datetime import datetime, timezone
from typing import Annotated, Any, Generic, Literal, TypeVar, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

__all__ = [
    "TextPart",
    "ToolCallPart",
    "ToolResultPart",
    "DataPart",
    "FilePart",
    "UnknownPart",
    "Part",
    "Event",
    "Session",
    "Page",
    "HealthStatus",
    "APP_PREFIX",
    "USER_PREFIX",
    "TEMP_PREFIX",
    "new_event_id",
]

APP_PREFIX = "app:"
"""State keys with this prefix live in the app scope (shared by every user of the app)."""
USER_PREFIX = "user:"
"""State keys with this prefix live in the user scope (shared by the user's sessions)."""
TEMP_PREFIX = "temp:"
"""State keys with this prefix are never stored."""


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is timezone.utc:
        return value
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:  # e.g. 9999-12-31T23:00-05:00 is in year 10000 in UTC
        raise ValueError(f"{value.isoformat()} is outside the range of UTC times") from None


class _EventIds:
    """Event ids unique without a system call each: a random prefix per process, a counter.

    32 hex digits, like a session id. Only events get these; session ids stay fully
    random, since applications may hand them out.
    """

    def __init__(self) -> None:
        self._reset()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._counter = itertools.count(int.from_bytes(os.urandom(4), "big"))

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"


new_event_id = _EventIds()
"""Return a new event id: 32 hex digits, unique across processes and hosts."""


class TextPart(BaseModel):
    """Plain text."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["text"] = "text"
    text: str = Field(strict=True)  # bytes would be decoded or stored as "b'...'"


class ToolCallPart(BaseModel):
    """A request by the model to call a tool."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["tool_call"] = "tool_call"
    id: str
    name: str
    arguments: Any = Field(default_factory=dict)


class ToolResultPart(BaseModel):
    """The result of a tool call, matched to the call by ``call_id``."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["tool_result"] = "tool_result"
    call_id: str
    output: Any = None
    is_error: bool = False


class DataPart(BaseModel):
    """Any JSON value."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["data"] = "data"
    data: Any = None


class FilePart(BaseModel):
    """A file, either inline (base64 ``data``) or by reference (``uri``)."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["file"] = "file"
    mime_type: str = "application/octet-stream"
    data: str | None = None
    uri: str | None = None
    name: str | None = None


class UnknownPart(BaseModel):
    """A part whose ``type`` this version does not know; kept as-is (forward compatible)."""

    model_config = ConfigDict(extra="allow")
    type: str


_KNOWN_PART_TYPES = frozenset({"text", "tool_call", "tool_result", "data", "file"})


def _part_tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if kind in _KNOWN_PART_TYPES else "unknown"


Part = Annotated[
    Union[  # noqa: UP007 -- a discriminated union needs the Union form on Python 3.10
        Annotated[TextPart, Tag("text")],
        Annotated[ToolCallPart, Tag("tool_call")],
        Annotated[ToolResultPart, Tag("tool_result")],
        Annotated[DataPart, Tag("data")],
        Annotated[FilePart, Tag("file")],
        Annotated[UnknownPart, Tag("unknown")],
    ],
    Discriminator(_part_tag),
]
"""One piece of an event's content, discriminated on ``type``."""


class Event(BaseModel):
    """One entry of a session's history: a message, a tool call or result, or any record.

    An event gets its ``id`` when it is built, so appending the same ``Event``
    again (a retry) stores it once. ``seq`` is assigned by the backend when the
    event is stored (1, 2, 3 ... per session, never reused; contiguous unless
    events were popped or replaced); it is 0 on an event not stored yet.
    ``state_delta`` is applied atomically with the append: ``app:`` and ``user:``
    keys go to the wider scopes, ``temp:`` keys are dropped, ``None`` deletes a key.
    """

    model_config = ConfigDict(extra="ignore", validate_assignment=False)

    id: str = Field(default_factory=new_event_id)
    seq: int = 0
    role: str
    content: list[Part] = Field(default_factory=list)
    timestamp: datetime | None = None
    state_delta: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("timestamp")
    @classmethod
    def _utc_timestamp(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _as_utc(value)

    @property
    def text(self) -> str:
        """The concatenated text of the event's text parts."""
        return "".join(part.text for part in self.content if isinstance(part, TextPart))

    @property
    def tool_calls(self) -> list[ToolCallPart]:
        """The event's tool-call parts."""
        return [part for part in self.content if isinstance(part, ToolCallPart)]


class Session(BaseModel):
    """A conversation of one user in one app, with its state and (when loaded) its events.

    ``state`` is the merged view: bare keys from the session, ``user:<k>`` keys
    from the user scope and ``app:<k>`` keys from the app scope. ``events`` is
    empty in list views and holds only the requested window in ``get_session``.
    """

    model_config = ConfigDict(extra="ignore")

    id: str
    app_name: str
    user_id: str
    parent_id: str | None = None
    root_id: str
    depth: int = 0
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None = None
    state: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    event_count: int = 0
    last_seq: int = 0
    events: list[Event] = Field(default_factory=list)

    @field_validator("created_at", "updated_at", "expires_at")
    @classmethod
    def _utc_times(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _as_utc(value)


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a listing; pass ``next_cursor`` back to get the next one (``None``: done)."""

    items: list[T]
    next_cursor: str | None = None


class HealthStatus(BaseModel):
    """What ``health()`` reports: whether the backend answered, and how fast."""

    ok: bool
    backend: str
    latency_ms: float | None = None
    detail: str = ""
