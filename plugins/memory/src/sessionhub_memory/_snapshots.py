"""Snapshots of events: what the memory backend keeps, and the copies it hands out.

A snapshot is an ``Event`` only this backend holds and never changes: ``freeze``
makes one from an event being stored, ``thaw`` makes the fresh copy a read
returns. So a caller changing an event it passed in or got back, its parts or
any dict or list inside, never changes what is stored, without turning events
into JSON text and back.

``freeze`` keeps exactly what a trip through the stored JSON text would keep
(``event_to_json`` then ``event_from_json``, what a database backend gives
back): for events made of plain values (``str``, ``int``, ``float``, ``bool``,
``None``, ``dict`` and ``list``; a tuple becomes a list, as in JSON) it copies
them directly; anything else (a subclass of one of those, an enum, another
mapping, an unknown part type, a part whose ``type`` was changed) takes the
JSON trip itself. So a snapshot holds plain values only, and ``thaw`` copies
them without checking anything.

Both build models the way ``sessionhub.backend_tools.stored_session`` does:
they fill the instance slots pydantic 2 gives every model (``__dict__``,
``__pydantic_fields_set__``, ``__pydantic_extra__``, ``__pydantic_private__``),
which the core's ``pydantic<3`` pin allows. A test compares both with the JSON
trip (equality, dump, set fields and the type of every value).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, TypeVar

from sessionhub import DataPart, Event, FilePart, TextPart, ToolCallPart, ToolResultPart
from sessionhub.backend_tools import event_from_json, event_to_json

__all__ = ["freeze", "thaw"]

_Model = TypeVar("_Model")

_new = object.__new__
_set = object.__setattr__


def _slot_setter(name: str) -> Callable[[object, Any], None]:
    """The setter of a model's instance slot: faster than ``object.__setattr__`` on a read."""
    for owner in Event.__mro__:
        if name in vars(owner):
            setter: Callable[[object, Any], None] = vars(owner)[name].__set__
            return setter
    raise TypeError(f"pydantic models have no {name} slot: sessionhub needs pydantic 2")


_set_dict = _slot_setter("__dict__")
_set_fields_set = _slot_setter("__pydantic_fields_set__")
_set_extra = _slot_setter("__pydantic_extra__")
_set_private = _slot_setter("__pydantic_private__")

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
_MODELS: list[type[Any]] = [Event, *_PART_FIELDS]
_FIELDS_SET: dict[type[Any], set[str]] = {model: set(model.model_fields) for model in _MODELS}
"""Each model's field names, the one set object every plain snapshot of it holds: a
snapshot is never changed, and ``thaw`` gives each copy a set of its own. (A set per
snapshot would be three more objects per stored event for the garbage collector.)"""


class _NotPlain(Exception):
    """A value ``freeze`` leaves to the JSON trip."""


def freeze(event: Event, seq: int) -> Event:
    """A snapshot of ``event`` numbered ``seq``: shares nothing mutable with it."""
    try:
        return _plain_event(event, seq)
    except _NotPlain:
        return event_from_json(event_to_json(event.model_copy(update={"seq": seq})))


def thaw(snapshot: Event) -> Event:
    """A fresh copy of ``snapshot`` for a caller: equal, and sharing nothing mutable with it."""
    # Written out flat: a full read runs this once per stored event.
    content = []
    for part in snapshot.__dict__["content"]:
        kind = part.__class__
        fields = part.__dict__.copy()
        copied = _new(kind)
        _set_dict(copied, fields)
        _set_fields_set(copied, part.__pydantic_fields_set__.copy())
        _set_private(copied, None)
        content.append(copied)
        if kind is TextPart:  # the usual parts: known, so without extras
            _set_extra(copied, None)
            continue
        if kind is ToolCallPart:
            arguments = fields["arguments"]
            if arguments.__class__ in _CONTAINERS:
                fields["arguments"] = _copy(arguments)
            _set_extra(copied, None)
            continue
        name = _JSON_FIELD.get(kind)
        if name is not None:
            value = fields[name]
            if value.__class__ in _CONTAINERS:
                fields[name] = _copy(value)
        extra = part.__pydantic_extra__  # an unknown part keeps its fields as extras
        _set_extra(copied, extra if extra is None else _copy(extra))
    fields = snapshot.__dict__.copy()
    fields["content"] = content
    delta = fields["state_delta"]
    fields["state_delta"] = _copy(delta) if delta else {}
    metadata = fields["metadata"]
    fields["metadata"] = _copy(metadata) if metadata else {}
    event = _new(Event)
    _set_dict(event, fields)
    _set_fields_set(event, snapshot.__pydantic_fields_set__.copy())
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


def _plain_event(event: Event, seq: int) -> Event:
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
    return _model(
        Event,
        {
            "id": fields["id"],
            "seq": seq,
            "role": fields["role"],
            "content": [_plain_part(part) for part in content],
            "timestamp": timestamp,
            "state_delta": _plain(delta) if delta else {},
            "metadata": _plain(metadata) if metadata else {},
        },
    )


def _plain_part(part: Any) -> Any:
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
        return _model(TextPart, {"type": "text", "text": text})
    if kind is ToolCallPart:  # the usual tool call, checked without the table
        if not (
            given["type"].__class__ is str
            and given["type"] == "tool_call"
            and given["id"].__class__ is str
            and given["name"].__class__ is str
        ):
            raise _NotPlain
        return _model(
            ToolCallPart,
            {
                "type": "tool_call",
                "id": given["id"],
                "name": given["name"],
                "arguments": _plain(given["arguments"]),
            },
        )
    spec = _PART_FIELDS.get(kind)
    kind_name = given.get("type")
    if spec is None or kind_name.__class__ is not str or kind_name != _PART_TYPES[kind]:
        raise _NotPlain  # an unknown part, or a known one whose type was changed
    fields: dict[str, Any] = {}
    for name, rule in spec:
        value = given[name]
        if rule == _JSON:
            value = _plain(value)
        elif not (
            value.__class__ is str
            or (rule == _OPTIONAL_TEXT and value is None)
            or (rule == _FLAG and value.__class__ is bool)
        ):
            raise _NotPlain
        fields[name] = value
    return _model(kind, fields)


def _model(kind: type[_Model], fields: dict[str, Any]) -> _Model:
    """A model of ``kind`` holding ``fields``, every field counted as set (as JSON gives)."""
    model = _new(kind)
    _set_dict(model, fields)
    _set_fields_set(model, _FIELDS_SET[kind])
    _set_extra(model, None)
    _set_private(model, None)
    return model


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
