"""Rebuilding the events a backend stored itself, without validating them field by field.

A backend keeps each event as the JSON text ``Event.model_dump_json`` made from
an event the service had validated, so reading it back needs no second check:
the text is parsed with pydantic-core's JSON parser (the one
``model_validate_json`` uses, so every value comes back the same: floats bit for
bit, integers of any size, any character) and the models are built by filling
the instance slots pydantic 2 gives every model, as ``Event.model_validate_json``
would leave them (``__dict__``, every field in ``__pydantic_fields_set__``, the
extra keys of an ``UnknownPart`` in ``__pydantic_extra__``). That costs about
half of validating. Text of any other shape (written by an older version, or
not by ``event_to_json``) is validated instead, so the result is always the
event ``Event.model_validate_json`` gives; a test compares the two for every
part type.

A batch pauses Python's cyclic garbage collector while it builds. Every event
is several new container objects that all survive, and each time enough of
them pile up the collector walks them, and when enough survive, every object
the process holds: measured on a process holding 180,000 objects (sessionhub,
its drivers, an agent framework), reading 10,000 events cost three times as
much CPU with the collector running as without. The events are trees (no
reference cycles), so pausing it leaks nothing: what it would have found is
found at its next run, once.
"""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic_core import from_json

from sessionhub.models import (
    DataPart,
    Event,
    FilePart,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    UnknownPart,
)

__all__ = ["built_all", "event_from_json", "events_from_json"]

_Item = TypeVar("_Item")
_Built = TypeVar("_Built")

_new = object.__new__
# The instance slots pydantic 2 gives every model, set as pydantic-core sets them, each
# through its descriptor (a fifth cheaper than ``object.__setattr__`` for ``__dict__``).
_slots: Any = BaseModel.__dict__
_set_dict = _slots["__dict__"].__set__
_set_fields_set = _slots["__pydantic_fields_set__"].__set__
_set_extra = _slots["__pydantic_extra__"].__set__
_set_private = _slots["__pydantic_private__"].__set__
_UTC = timezone.utc

_EVENT_KEYS = set(Event.model_fields)
_EVENT_ORDER = tuple(Event.model_fields)
_PARTS: dict[str, tuple[type[BaseModel], set[str]]] = {
    model.model_fields["type"].default: (model, set(model.model_fields))
    for model in (TextPart, ToolCallPart, ToolResultPart, DataPart, FilePart)
}


class _NotStoredShape(Exception):
    """The text is not what ``event_to_json`` writes today: validate it instead."""


if sys.version_info >= (3, 11):
    _parse_time = datetime.fromisoformat  # "...Z" gives timezone.utc itself
else:  # pragma: no cover -- Python 3.10's fromisoformat does not read "Z"

    def _parse_time(text: str) -> datetime:
        return datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)


def _unknown_part(fields: dict[str, Any]) -> UnknownPart:
    kind = fields.pop("type")
    if not isinstance(kind, str):
        raise _NotStoredShape
    part = _new(UnknownPart)
    _set_dict(part, {"type": kind})
    _set_fields_set(part, {"type", *fields})
    _set_extra(part, fields)
    _set_private(part, None)
    return part


def _event(fields: Any) -> Event:
    """The event of ``fields`` parsed from stored text; ``_NotStoredShape`` if not that shape.

    One function with the parts' loop inlined: a read of a long history runs it
    per event, and a call per part would cost a fifth more.
    """
    if type(fields) is not dict:
        raise _NotStoredShape
    if tuple(fields) != _EVENT_ORDER:
        if fields.keys() != _EVENT_KEYS:
            raise _NotStoredShape
        # Validation fills ``__dict__`` in field order, which repr and iteration show;
        # a store may keep the keys in another (older Redis events hold the seq first).
        fields = {name: fields[name] for name in _EVENT_ORDER}
    parts: list[BaseModel] = []
    for part_fields in fields["content"]:
        known = _PARTS.get(part_fields["type"])
        if known is None:
            parts.append(_unknown_part(part_fields))
            continue
        model, keys = known
        if part_fields.keys() != keys:
            raise _NotStoredShape
        part = _new(model)
        _set_dict(part, part_fields)
        _set_fields_set(part, keys.copy())
        _set_extra(part, None)
        _set_private(part, None)
        parts.append(part)
    fields["content"] = parts
    timestamp = fields["timestamp"]
    if timestamp is not None:
        moment = _parse_time(timestamp)
        if moment.tzinfo is not _UTC:
            raise _NotStoredShape
        fields["timestamp"] = moment
    event: Event = _new(Event)
    _set_dict(event, fields)
    _set_fields_set(event, _EVENT_KEYS.copy())
    _set_extra(event, None)
    _set_private(event, None)
    return event


_FALLBACK = (_NotStoredShape, KeyError, TypeError, ValueError, AttributeError)
"""What a text of another shape raises on the way; the event is then validated."""


def event_from_json(data: str | bytes) -> Event:
    """Rebuild an event from the JSON text made by ``event_to_json``.

    For text the backend stored itself: equal to ``Event.model_validate_json(data)``
    at about half the cost. Data from outside (an import, a restore) is validated
    with ``Event.model_validate`` instead.
    """
    try:
        return _event(from_json(data))
    except _FALLBACK:
        return Event.model_validate_json(data)


_PAUSE_FROM = 64
"""Batches of at least this many events pause the collector; a short one gains nothing."""


class _CollectorPause:
    """Pauses the cyclic garbage collector while any batch is being built, in any thread.

    Only a collector that was running is paused, and it is restarted when the
    last batch ends; one an application turned off stays off.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._batches = 0
        self._paused = False

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._batches == 0:
                self._paused = gc.isenabled()
                if self._paused:
                    gc.disable()
            self._batches += 1
        try:
            yield
        finally:
            with self._lock:
                self._batches -= 1
                if self._batches == 0 and self._paused:
                    self._paused = False
                    gc.enable()


_collector_paused = _CollectorPause()


def events_from_json(texts: Sequence[str | bytes]) -> list[Event]:
    """Rebuild the events of ``texts`` (each made by ``event_to_json``), in order.

    The batch form of ``event_from_json``, for a page or a whole history; a
    long batch pauses the cyclic garbage collector while it builds (see the
    module's docstring).
    """
    return built_all(texts, event_from_json)


def built_all(items: Sequence[_Item], build: Callable[[_Item], _Built]) -> list[_Built]:
    """``[build(item) for item in items]``, the collector paused while a long batch builds.

    For a backend that makes many new objects at once (a whole history), as
    ``events_from_json`` does: see the module's docstring for why it pays.
    """
    if len(items) < _PAUSE_FROM:
        return [build(item) for item in items]
    with _collector_paused():
        return [build(item) for item in items]
