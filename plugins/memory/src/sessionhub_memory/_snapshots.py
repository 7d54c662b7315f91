"""Snapshots of events: what the memory backend keeps, and the copies it hands out.

A snapshot is a tuple only this backend holds and never changes: ``freeze``
makes one from an event being stored, ``thaw`` makes the fresh ``Event`` a read
returns. So a caller changing an event it passed in or got back, its parts or
any dict or list inside, never changes what is stored, without turning events
into JSON text and back. A snapshot is ``(id, seq, role, parts, timestamp,
state_delta, metadata)``; ``ID``, ``SEQ`` and ``TIMESTAMP`` read it. Each part
is ``(model, fields, json_field, copy, extra, fields_set)``: ``copy`` is what a
fresh copy of its JSON field's value takes (``None`` for a string, a number or
``None``; a shallow copy for a dict or list holding no container; else a deep
copy), so a read copies only containers, and only as deep as they go. Tuples
are cheaper to build and to keep than models: fewer objects for the garbage
collector, and nothing to set but the values.

``freeze`` keeps exactly what a trip through the stored JSON text would keep
(``event_to_json`` then ``event_from_json``, what a database backend gives
back): for events made of plain values (``str``, ``int``, ``float``, ``bool``,
``None``, ``dict`` and ``list``; a tuple becomes a list, as in JSON) it copies
them directly; anything else (a subclass of one of those, an enum, another
mapping, an unknown part type, a part whose ``type`` was changed) takes the
JSON trip itself. So a snapshot holds plain values only, and ``thaw`` copies
them without checking anything.

``thaw`` builds models the way ``sessionhub.backend_tools.stored_session`` does:
it fills the instance slots pydantic 2 gives every model (``__dict__``,
``__pydantic_fields_set__``, ``__pydantic_extra__``, ``__pydantic_private__``),
which the core's ``pydantic<3`` pin allows. A test compares it with the JSON
trip (equality, dump, set fields and the type of every value).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from operator import itemgetter
from typing import Any

from pydantic import BaseModel

from sessionhub import DataPart, Event, FilePart, TextPart, ToolCallPart, ToolResultPart
from sessionhub.backend_tools import event_from_json, event_to_json

__all__ = ["ID", "SEQ", "TIMESTAMP", "PartSnapshot", "Snapshot", "freeze", "number", "thaw"]

_Copy = Callable[[Any], Any] | None
PartSnapshot = tuple[
    type[BaseModel], dict[str, Any], str | None, _Copy, dict[str, Any] | None, set[str]
]
"""A part: its model, fields, JSON field, how to copy that field's value, extras, set fields."""
Snapshot = tuple[
    str, int, str, tuple[PartSnapshot, ...], datetime | None, dict[str, Any], dict[str, Any]
]
"""An event: ``(id, seq, role, parts, timestamp, state_delta, metadata)``."""

ID: Callable[[Snapshot], str] = itemgetter(0)
"""The event id of a snapshot."""
SEQ: Callable[[Snapshot], int] = itemgetter(1)
"""The seq of a snapshot."""
TIMESTAMP: Callable[[Snapshot], datetime] = itemgetter(4)
"""The timestamp of a snapshot (every stored event has one)."""

_new = object.__new__
_slots: Any = BaseModel.__dict__
_set_dict = _slots["__dict__"].__set__
_set_fields_set = _slots["__pydantic_fields_set__"].__set__
_set_extra = _slots["__pydantic_extra__"].__set__
_set_private = _slots["__pydantic_private__"].__set__

# What each field of a known part holds: plain text, text or None, a bool, any JSON value.
_TEXT, _OPTIONAL_TEXT, _FLAG, _JSON = range(4)
_PART_FIELDS: dict[type[Any], tuple[tuple[str, int], ...]] = {
    TextPart: (("type", _TEXT), ("text", _TEXT)),
    ToolCallPart: (("type", _TEXT), ("id", _TEXT), ("name", _TEXT), ("arguments", _JSON)),
    ToolResultPart: (("type", _TEXT), ("call_id", _TEXT), ("output", _JSON), ("is_error", _FLAG)),
    DataPart: (("type", _TEXT), ("data", _JSON)),
    FilePart: (
        ("type", _TEXT),
        ("mime_type", _TEXT),
        ("data", _OPTIONAL_TEXT),
        ("uri", _OPTIONAL_TEXT),
        ("name", _OPTIONAL_TEXT),
    ),
}
_PART_TYPES: dict[type[Any], str] = {
    part: part.model_fields["type"].default for part in _PART_FIELDS
}
_JSON_FIELD: dict[type[Any], str] = {
    part: name for part, fields in _PART_FIELDS.items() for name, kind in fields if kind == _JSON
}
"""The one field of each known part that may hold a dict or a list (parts without one: none)."""
_MODELS: list[type[BaseModel]] = [Event, *_PART_FIELDS]
_FIELDS_SET: dict[type[Any], set[str]] = {model: set(model.model_fields) for model in _MODELS}
"""Each model's field names, the one set object every plain snapshot of it holds: a
snapshot is never changed, and ``thaw`` gives each copy a set of its own."""
_EVENT_FIELDS = _FIELDS_SET[Event]
_TEXT_FIELDS = _FIELDS_SET[TextPart]
_CALL_FIELDS = _FIELDS_SET[ToolCallPart]


class _NotPlain(Exception):
    """A value ``freeze`` leaves to the JSON trip."""


def freeze(event: Event, seq: int) -> Snapshot:
    """A snapshot of ``event`` numbered ``seq``: shares nothing mutable with it."""
    try:
        return _plain_event(event, seq)
    except _NotPlain:
        return _snapshot(event_from_json(event_to_json(event.model_copy(update={"seq": seq}))))


def number(event: Event, seq: int) -> None:
    """Set ``event.seq`` (an event of the service's, about to be returned) as pydantic would."""
    if event.__class__ is Event:  # pydantic's assignment for a field, without its dispatch
        event.__dict__["seq"] = seq
        event.__pydantic_fields_set__.add("seq")
    else:
        event.seq = seq


def thaw(snapshot: Snapshot) -> Event:
    """A fresh ``Event`` for a caller: equal to what was stored, sharing nothing mutable with it."""
    # Written out flat: a full read runs this once per stored event.
    event_id, seq, role, parts, timestamp, delta, metadata = snapshot
    content = []
    for model, fields, name, copy, extra, fields_set in parts:
        part = _new(model)
        fields = fields.copy()
        if copy is not None:
            fields[name] = copy(fields[name])  # type: ignore[index]  # set with copy
        _set_dict(part, fields)
        _set_fields_set(part, fields_set.copy())
        _set_extra(part, extra if extra is None else _copy(extra))
        _set_private(part, None)
        content.append(part)
    event = _new(Event)
    _set_dict(
        event,
        {
            "id": event_id,
            "seq": seq,
            "role": role,
            "content": content,
            "timestamp": timestamp,
            "state_delta": _copy(delta) if delta else {},
            "metadata": _copy(metadata) if metadata else {},
        },
    )
    _set_fields_set(event, _EVENT_FIELDS.copy())
    _set_extra(event, None)
    _set_private(event, None)
    return event


def _copy(value: Any) -> Any:
    """A deep copy of a plain JSON value (what a snapshot holds)."""
    if value.__class__ is dict:
        copied = value.copy()
        for key, item in copied.items():
            if item.__class__ in _CONTAINERS:
                copied[key] = _copy(item)
        return copied
    if value.__class__ is list:
        return [item if item.__class__ not in _CONTAINERS else _copy(item) for item in value]
    return value


_CONTAINERS: frozenset[type[Any]] = frozenset({dict, list})
_SHALLOW: dict[type[Any], Callable[[Any], Any]] = {dict: dict.copy, list: list.copy}


def _copier(value: Any) -> _Copy:
    """How a read copies ``value``, a plain JSON value: not at all, shallow, or deep."""
    shallow = _SHALLOW.get(value.__class__)
    if shallow is None:
        return None
    items = value.values() if value.__class__ is dict else value
    for item in items:
        if item.__class__ in _CONTAINERS:
            return _copy
    return shallow


def _snapshot(event: Event) -> Snapshot:
    """The snapshot of an event rebuilt from JSON text (plain values, fresh objects)."""
    fields = event.__dict__
    parts = []
    for part in fields["content"]:
        name = _JSON_FIELD.get(part.__class__)
        copy = None if name is None else _copier(part.__dict__[name])
        parts.append(
            (
                part.__class__,
                part.__dict__,
                name,
                copy,
                part.__pydantic_extra__,
                part.__pydantic_fields_set__,
            )
        )
    return (
        fields["id"],
        fields["seq"],
        fields["role"],
        tuple(parts),
        fields["timestamp"],
        fields["state_delta"],
        fields["metadata"],
    )


def _plain_event(event: Event, seq: int) -> Snapshot:
    fields = event.__dict__
    timestamp = fields["timestamp"]
    if not (
        fields["id"].__class__ is str
        and fields["role"].__class__ is str
        and timestamp.__class__ is datetime
        and timestamp.tzinfo is timezone.utc
        and timestamp.fold == 0
    ):
        raise _NotPlain
    content = fields["content"]
    if content.__class__ is not list and content.__class__ is not tuple:
        raise _NotPlain
    delta, metadata = fields["state_delta"], fields["metadata"]
    if delta.__class__ is not dict or metadata.__class__ is not dict:
        raise _NotPlain
    return (
        fields["id"],
        seq,
        fields["role"],
        tuple([_plain_part(part) for part in content]),
        timestamp,
        _plain(delta) if delta else {},
        _plain(metadata) if metadata else {},
    )


def _plain_part(part: Any) -> PartSnapshot:
    kind: type[Any] = part.__class__
    given = part.__dict__
    if kind is TextPart:  # the usual part, checked without the table
        text = given["text"]
        if (
            given["type"].__class__ is not str
            or given["type"] != "text"
            or text.__class__ is not str
        ):
            raise _NotPlain
        return TextPart, {"type": "text", "text": text}, None, None, None, _TEXT_FIELDS
    if kind is ToolCallPart:  # the usual tool call, checked without the table
        if not (
            given["type"].__class__ is str
            and given["type"] == "tool_call"
            and given["id"].__class__ is str
            and given["name"].__class__ is str
        ):
            raise _NotPlain
        arguments = _plain(given["arguments"])
        fields = {"type": "tool_call", "id": given["id"], "name": given["name"]}
        fields["arguments"] = arguments
        return ToolCallPart, fields, "arguments", _copier(arguments), None, _CALL_FIELDS
    spec = _PART_FIELDS.get(kind)
    kind_name = given.get("type")
    if spec is None or kind_name.__class__ is not str or kind_name != _PART_TYPES[kind]:
        raise _NotPlain  # an unknown part, or a known one whose type was changed
    copy: _Copy = None
    plain: dict[str, Any] = {}
    for name, rule in spec:
        value = given[name]
        if rule == _JSON:
            value = _plain(value)
            copy = _copier(value)
        elif not (
            value.__class__ is str
            or (rule == _OPTIONAL_TEXT and value is None)
            or (rule == _FLAG and value.__class__ is bool)
        ):
            raise _NotPlain
        plain[name] = value
    return kind, plain, _JSON_FIELD.get(kind), copy, None, _FIELDS_SET[kind]


def _plain(value: Any) -> Any:
    """A deep copy of ``value`` if it holds plain JSON types only (a tuple becomes a list)."""
    kind = value.__class__
    if kind in _ATOMS:
        return value
    if kind is dict:
        copied = {}
        for key, item in value.items():
            if key.__class__ is not str:
                raise _NotPlain
            copied[key] = item if item.__class__ in _ATOMS else _plain(item)
        return copied
    if kind is list or kind is tuple:
        return [item if item.__class__ in _ATOMS else _plain(item) for item in value]
    raise _NotPlain


_ATOMS = frozenset({str, int, float, bool, type(None)})
