"""Snapshots equal what a trip through the stored JSON text gives, and share nothing mutable."""

from __future__ import annotations

import asyncio
import enum
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from sessionhub import (
    DataPart,
    Event,
    FilePart,
    SessionHistoryService,
    TextPart,
    ToolCallPart,
    ToolResultPart,
)
from sessionhub.backend_tools import event_from_json, event_to_json
from sessionhub_memory._snapshots import freeze, thaw
from sessionhub_memory.backend import MemoryBackend

NOW = datetime(2026, 11, 27, 12, 30, 45, 123456, tzinfo=timezone.utc)


class Color(str, enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


def _events() -> dict[str, Event]:
    return {
        "plain": Event(
            id="e1",
            role="assistant",
            content=[
                TextPart(text="héllo 🌍"),
                ToolCallPart(id="c1", name="f", arguments={"a": [1, {"b": None}], "n": 2**70}),
                ToolResultPart(call_id="c1", output=[0.1 + 0.2, -0.0, 5e-324], is_error=True),
                DataPart(data={"": {"1": [True, False]}}),
                FilePart(mime_type="image/png", uri="s3://b/k", name="k.png"),
            ],
            timestamp=NOW,
            state_delta={"user:x": {"y": [1]}, "z": None},
            metadata={"float": 1e100, "empty": {}, "list": []},
        ),
        "empty": Event(id="e2", role="user", timestamp=NOW),
        "tuple": Event(
            id="e3",
            role="tool",
            content=[ToolCallPart(id="c", name="f", arguments=(1, (2, 3)))],
            timestamp=NOW,
        ),
        "str enum": Event(
            id="e4", role="user", content=[DataPart(data={"c": Color.RED})], timestamp=NOW
        ),
        "int enum": Event(
            id="e5", role="user", content=[DataPart(data=[Level.HIGH])], timestamp=NOW
        ),
        "unknown part": Event.model_validate(
            {
                "id": "e6",
                "role": "user",
                "content": [{"type": "vendor_block", "payload": {"k": [1, 2]}}],
                "timestamp": NOW,
            }
        ),
        "other zone": Event(
            id="e8", role="user", timestamp=NOW.astimezone(timezone(timedelta(hours=2)))
        ),
    }


EVENTS = _events()


def _strictly_equal(left: Any, right: Any) -> bool:
    """Equal, with every value of the same type (``1``, ``1.0`` and ``True`` differ)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return list(left) == list(right) and all(
            _strictly_equal(left[key], right[key]) for key in left
        )
    if isinstance(left, list):
        return len(left) == len(right) and all(map(_strictly_equal, left, right))
    if isinstance(left, float):
        return repr(left) == repr(right)
    return bool(left == right)


def _models(event: Event) -> list[Any]:
    return [event, *event.content]


def _same(got: Event, expected: Event) -> None:
    assert got == expected
    assert _strictly_equal(got.model_dump(), expected.model_dump())
    assert got.model_dump_json() == expected.model_dump_json()
    for mine, theirs in zip(_models(got), _models(expected), strict=True):
        assert type(mine) is type(theirs)
        assert mine.model_fields_set == theirs.model_fields_set
        assert _strictly_equal(mine.model_extra, theirs.model_extra)
    assert got.timestamp is None or got.timestamp.tzinfo is timezone.utc


def _mutable(value: Any, found: dict[int, Any]) -> dict[int, Any]:
    """Every model, dict, list and set reachable from ``value`` (through tuples too), by id."""
    if isinstance(value, (dict, list, set)) or hasattr(value, "__pydantic_fields_set__"):
        found[id(value)] = value
    if isinstance(value, tuple):
        for item in value:
            _mutable(item, found)
    elif hasattr(value, "__pydantic_fields_set__"):
        _mutable(value.__dict__, found)
        _mutable(value.__pydantic_fields_set__, found)
        _mutable(value.__pydantic_extra__, found)
    elif isinstance(value, dict):
        for item in value.values():
            _mutable(item, found)
    elif isinstance(value, list):
        for item in value:
            _mutable(item, found)
    return found


def _shares_nothing(one: Any, other: Any) -> bool:
    return not _mutable(one, {}).keys() & _mutable(other, {}).keys()


@pytest.mark.parametrize("name", list(EVENTS))
def test_freeze_and_thaw_give_what_the_stored_json_gives(name: str) -> None:
    """A snapshot, and each copy of it, equals the event read back from its JSON text."""
    event = EVENTS[name]
    expected = event_from_json(event_to_json(event.model_copy(update={"seq": 7})))
    snapshot = freeze(event, 7)
    _same(thaw(snapshot), expected)
    _same(thaw(freeze(thaw(snapshot), 7)), expected)


@pytest.mark.parametrize("name", list(EVENTS))
def test_snapshots_and_copies_share_nothing_mutable(name: str) -> None:
    """Not with the event stored, not with each other: the caller's objects are its own."""
    event = EVENTS[name]
    snapshot = freeze(event, 1)
    first, second = thaw(snapshot), thaw(snapshot)
    assert _mutable(snapshot, {})  # the walk reaches into the snapshot
    assert _shares_nothing(snapshot, event)
    assert _shares_nothing(first, snapshot)
    assert _shares_nothing(first, second)


def test_plain_events_take_no_json_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only events holding something other than plain JSON types are serialised."""
    import sessionhub_memory._snapshots as snapshots

    trips: list[Event] = []

    def counting(event: Event) -> str:
        trips.append(event)
        return event_to_json(event)

    monkeypatch.setattr(snapshots, "event_to_json", counting)
    for name in ("plain", "empty", "tuple"):
        freeze(EVENTS[name], 1)
    assert trips == []
    for name in ("str enum", "int enum", "unknown part"):
        freeze(EVENTS[name], 1)
    assert len(trips) == 3


def _unset_everything(event: Event) -> None:
    for model in _models(event):
        model.model_fields_set.clear()


def _all_set(event: Event) -> bool:
    return all(model.model_fields_set == set(type(model).model_fields) for model in _models(event))


def test_each_copy_has_its_own_sets_of_field_names() -> None:
    """Snapshots share one set of field names per model; a copy's sets are its own."""
    snapshots = [freeze(EVENTS["plain"], 1), freeze(EVENTS["empty"], 2)]
    _unset_everything(thaw(snapshots[0]))
    assert all(_all_set(thaw(snapshot)) for snapshot in snapshots)


def test_a_popped_event_is_the_callers() -> None:
    """``pop_event`` hands out a copy: clearing its field names changes no stored event."""

    async def scenario() -> None:
        service = SessionHistoryService(backend=MemoryBackend())
        async with service:
            await service.create_session("alice", "s1")
            await service.append(("alice", "s1"), [EVENTS["plain"], EVENTS["empty"]])
            popped = await service.pop_event("alice", "s1")
            assert popped is not None
            _unset_everything(popped)
            session = await service.get_session("alice", "s1")
            assert session is not None and [e.id for e in session.events] == ["e1"]
            assert _all_set(session.events[0])

    asyncio.run(scenario())
