"""``copy_event`` and ``assign`` leave an event exactly as ``model_copy`` and assignment do."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from sessionhub import Event, TextPart, ToolCallPart
from sessionhub._event_slots import assign, copy_event

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)


class Tagged(Event):
    """A subclass: it takes pydantic's own paths."""

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, "tagged" if name == "role" else value)


def _event(kind: type[Event] = Event) -> Event:
    return kind(
        id="e1",
        role="assistant",
        content=[TextPart(text="hi"), ToolCallPart(id="c", name="f", arguments={"a": [1]})],
        timestamp=NOW,
        metadata={"m": {"n": 1}},
    )


def _state(event: Event) -> tuple[Any, ...]:
    return (
        type(event),
        list(event.__dict__.items()),
        event.model_fields_set,
        event.__pydantic_extra__,
        event.__pydantic_private__,
    )


@pytest.mark.parametrize("kind", [Event, Tagged])
def test_copy_event_is_model_copy(kind: type[Event]) -> None:
    """The same type, fields, set fields and sharing as ``model_copy()``, and its own sets."""
    event = _event(kind)
    mine, theirs = copy_event(event), event.model_copy()
    assert _state(mine) == _state(theirs)
    assert mine.content is event.content  # shallow, as model_copy is
    assert mine.__dict__ is not event.__dict__
    assert mine.model_fields_set is not event.model_fields_set
    mine.seq = 5
    mine.model_fields_set.add("seq")
    assert event.seq == 0 and "seq" not in event.model_fields_set


@pytest.mark.parametrize("kind", [Event, Tagged])
@pytest.mark.parametrize(("name", "value"), [("seq", 3), ("timestamp", NOW), ("role", "tool")])
def test_assign_is_setattr(kind: type[Event], name: str, value: Any) -> None:
    """The field written and counted as set, as ``setattr`` does (a subclass's own included)."""
    mine, theirs = _event(kind), _event(kind)
    assign(mine, name, value)
    setattr(theirs, name, value)
    assert _state(mine)[1:] == _state(theirs)[1:]
