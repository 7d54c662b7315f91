"""Copying an ``Event`` and setting its fields the way pydantic does, without its dispatch.

Every append copies each event it is given and sets a few fields on the copy
(``seq``, and a timestamp made UTC); through ``model_copy`` and attribute
assignment that is about a microsecond each, most of it pydantic's Python-level
dispatch. For an ``Event`` itself (not a subclass, which may define its own
``__setattr__`` or fields), ``copy_event`` and ``assign`` do what pydantic's
``__copy__`` and its assignment handler for a field without validation do (a
shallow copy of ``__dict__``, the set of fields set, the extras; the field
written and counted as set), filling the instance slots pydantic 2 gives every
model as ``sessionhub.backend_tools.stored_session`` does; anything else goes
through pydantic. A test compares both with pydantic's own results.
"""

from __future__ import annotations

from typing import Any

from sessionhub._stored_events import _new, _set_dict, _set_extra, _set_fields_set, _set_private
from sessionhub.models import Event

__all__ = ["assign", "copy_event"]


def copy_event(event: Event) -> Event:
    """``event.model_copy()``: a shallow copy (parts, dicts and lists shared)."""
    if event.__class__ is not Event or event.__pydantic_private__ is not None:
        return event.model_copy()
    copied: Event = _new(Event)
    _set_dict(copied, event.__dict__.copy())
    extra = event.__pydantic_extra__
    _set_extra(copied, None if extra is None else extra.copy())
    _set_fields_set(copied, event.__pydantic_fields_set__.copy())
    _set_private(copied, None)
    return copied


def assign(event: Event, name: str, value: Any) -> None:
    """``setattr(event, name, value)`` for a field of ``Event`` (its config: no validation)."""
    if event.__class__ is Event:
        event.__dict__[name] = value
        event.__pydantic_fields_set__.add(name)
    else:
        setattr(event, name, value)
