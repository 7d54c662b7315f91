"""The trusted event decoder gives exactly what ``Event.model_validate_json`` gives."""

from __future__ import annotations

import copy
import gc
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest

from sessionhub import (
    DataPart,
    Event,
    FilePart,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    UnknownPart,
)
from sessionhub.backend_tools import built_all, event_from_json, event_to_json, events_from_json

NESTED = {
    "big": 2**63,
    "negative": -(10**30),
    "floats": [0.1 + 0.2, 1e100, 5e-324, -0.0, 1700000000.123456],
    "text": "nul \x00 astral \U0001f600 é",
    "\x00key": {"1": [[], {}, None, True, False]},
    "deep": json.loads("[" * 60 + "]" * 60),
}


def _events() -> list[Event]:
    moment = datetime(2026, 11, 27, 16, 0, 0, 123456, tzinfo=timezone.utc)
    return [
        Event(
            seq=1,
            role="assistant",
            content=[
                TextPart(text="héllo \x00 \U0001f600"),
                ToolCallPart(id="c1", name="lookup", arguments=NESTED),
                ToolResultPart(call_id="c1", output=NESTED, is_error=True),
                DataPart(data=NESTED),
                DataPart(),
                FilePart(mime_type="image/png", data="aGk=", name="a.png"),
                FilePart(uri="s3://bucket/key"),
                UnknownPart.model_validate({"type": "future", "x": NESTED, "y": None}),
            ],
            timestamp=moment,
            state_delta={"k": NESTED, "user:u": 1},
            metadata=NESTED,
        ),
        Event(seq=2, role="user", content=[], timestamp=None),
        Event(seq=2**40, role="tool", timestamp=moment.replace(microsecond=0)),
        Event(role="x", content=[UnknownPart.model_validate({"type": "only"})]),
    ]


@pytest.mark.parametrize("index", range(len(_events())))
def test_a_stored_event_comes_back_as_validation_gives_it(index: int) -> None:
    text = event_to_json(_events()[index])
    checked = Event.model_validate_json(text)
    for built in (
        event_from_json(text),
        event_from_json(text.encode()),
        events_from_json([text])[0],
    ):
        assert type(built) is Event
        assert built == checked
        assert built.model_dump() == checked.model_dump()
        assert built.model_dump_json() == checked.model_dump_json() == text
        assert built.model_fields_set == checked.model_fields_set
        assert repr(built) == repr(checked) and list(built) == list(checked)
        assert built.timestamp == checked.timestamp
        assert built.timestamp is None or built.timestamp.tzinfo is timezone.utc
        for mine, theirs in zip(built.content, checked.content, strict=True):
            assert type(mine) is type(theirs)
            assert mine.model_fields_set == theirs.model_fields_set
            assert mine.model_extra == theirs.model_extra
        assert copy.deepcopy(built) == checked
        assert built.model_copy(update={"seq": 9}).seq == 9 and built.seq == checked.seq


def test_keys_in_another_order_give_the_same_event() -> None:
    """A store may write the keys in another order (Redis puts the seq first)."""
    event = _events()[0]
    text = '{"seq":7,' + event.model_dump_json(exclude={"seq"})[1:]
    checked = Event.model_validate_json(text)
    built = event_from_json(text)
    assert built == checked and repr(built) == repr(checked)
    assert list(built) == list(checked)
    assert built.model_dump_json() == checked.model_dump_json()


def test_values_keep_their_types_bit_for_bit() -> None:
    built = event_from_json(event_to_json(_events()[0]))
    data = built.content[3]
    assert isinstance(data, DataPart)
    floats = data.data["floats"]
    assert [x.hex() for x in floats] == [x.hex() for x in NESTED["floats"]]  # type: ignore[attr-defined]
    assert data.data["big"] == 2**63 and type(data.data["big"]) is int
    assert data.data["text"] == NESTED["text"] and data.data == NESTED


def test_events_are_independent_of_each_other() -> None:
    text = event_to_json(_events()[0])
    first, second = events_from_json([text, text])
    first.metadata["changed"] = True
    first.content.append(TextPart(text="more"))
    assert "changed" not in second.metadata and len(second.content) == 8


def test_text_of_another_shape_is_validated() -> None:
    """Older or hand-written text (missing fields, extra keys) goes through validation."""
    texts = [
        '{"id": "a", "role": "user"}',
        '{"id": "b", "role": "user", "content": [{"type": "text", "text": "a", "old": 1}],'
        ' "extra": 2}',
        '{"id": "e", "seq": 1, "role": "r", "content": [{"type": "file"}], "timestamp": null,'
        ' "state_delta": {}, "metadata": {}}',
        '{"id": "e", "seq": 1, "role": "r", "content": [],'
        ' "timestamp": "2026-01-01T00:00:00+02:00", "state_delta": {}, "metadata": {}}',
    ]
    for text in texts:
        assert event_from_json(text) == Event.model_validate_json(text)
        assert event_from_json(text).model_dump() == Event.model_validate_json(text).model_dump()
    assert [e.model_dump() for e in events_from_json(texts)] == [
        Event.model_validate_json(t).model_dump() for t in texts
    ]
    assert events_from_json(texts)[3].timestamp == datetime(2025, 12, 31, 22, tzinfo=timezone.utc)


def test_invalid_text_fails_as_validation_does() -> None:
    with pytest.raises(ValueError):
        event_from_json("{not json")
    with pytest.raises(ValueError):
        event_from_json('{"id": "e", "content": []}')


def test_a_long_batch_leaves_the_garbage_collector_as_it_found_it() -> None:
    texts = [event_to_json(event) for event in _events()] * 50
    assert gc.isenabled()
    assert len(events_from_json(texts)) == len(texts)
    assert gc.isenabled()
    with pytest.raises(ValueError):
        events_from_json([*texts, "{not json"])
    assert gc.isenabled()
    gc.disable()
    try:
        assert len(events_from_json(texts)) == len(texts)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_built_all_pauses_the_collector_for_a_long_batch_only() -> None:
    seen = built_all(range(100), lambda item: (item, gc.isenabled()))
    assert [item for item, _ in seen] == list(range(100))
    assert not any(enabled for _, enabled in seen) and gc.isenabled()
    assert all(enabled for _, enabled in built_all(range(3), lambda item: (item, gc.isenabled())))


def test_batches_in_threads_restart_the_collector_when_the_last_ends() -> None:
    texts = [event_to_json(event) for event in _events()] * 200
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(events_from_json, [texts] * 8))
    assert all(len(result) == len(texts) for result in results)
    assert gc.isenabled()
