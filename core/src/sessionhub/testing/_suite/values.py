"""JSON values: every value the service accepts comes back exactly, from every store.

"Exactly" is stricter than ``==``: ``1 == 1.0 == True`` and ``0.0 == -0.0`` in
Python, so values are compared through :func:`exact`, which tags each number
with its type and spells floats bit for bit.
"""

from __future__ import annotations

import random
import struct
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from sessionhub.backend import Backend, Expiry
from sessionhub.errors import InvalidInput
from sessionhub.models import (
    DataPart,
    Event,
    Session,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    UnknownPart,
)
from sessionhub.service import SessionHistoryService
from sessionhub.testing._base import FakeClock, requires


def _nested(depth: int) -> Any:
    """``depth`` containers inside each other, alternating list and object, a leaf inside."""
    value: Any = "leaf"
    for level in range(depth):
        value = [value, None] if level % 2 else {"level": level, "inner": value}
    return value


AWKWARD_KEYS = [
    "a.b",
    "$gt",
    "$",
    ".",
    "..",
    "%",
    "%2E",
    "%00",
    "x\x00y",
    "\x00",
    "ünïcödé",
    "🚀 astral 𝄞",
    "user:",
    "app:x",
    " ",
]
"""Object keys that are legal JSON and awkward for some store: dots and ``$`` (MongoDB field
names), NUL (C strings), escape look-alikes, astral characters, scope-prefix look-alikes."""

NUMBER_LIKE_KEYS = ["0", "1", "01", "-0", "1.0", "1e3", "0x10", "NaN", "Infinity", "true", "null"]
"""Object keys a store or a driver might take for numbers, booleans or null."""

JSON_VALUES: dict[str, Any] = {
    "int64_max": 2**63 - 1,
    "int64_min": -(2**63),
    "beyond_uint64": 2**64 + 1,
    "ten_to_the_30": 10**30,
    "negative_beyond_64_bits": -(10**25),
    "zero": 0,
    "one_as_float": 1.0,
    "tenth": 0.1,
    "largest_float": 1.7976931348623157e308,
    "big_float": 1e308,
    "negative_zero": -0.0,
    "smallest_subnormal": 5e-324,
    "time_time": 1764250496.0784512,
    "tenth_plus_fifth": 0.1 + 0.2,
    "ten_to_the_100": 1e100,
    "negative_tiny": -2.2250738585072014e-308,
    "two_to_the_63": 2**63,
    "negative_ten_to_the_30": -(10**30),
    "true": True,
    "false": False,
    "null_in_list": [None, 1, None, [None]],
    "empty_string": "",
    "empty_list": [],
    "empty_object": {},
    "nested_empties": [[], {}, [[]], [{}], {"a": {}, "b": []}, {"": {"": []}}],
    "nul_in_text": "before\x00after",
    "only_nul": "\x00",
    "astral": "🚀 𝄞 \U0010ffff",
    "bmp_edges": "\ue000\uffff\ufeff",
    "escapes": 'quote " backslash \\ slash / newline \n tab \t',
    "awkward_keys": dict.fromkeys(AWKWARD_KEYS, 1),
    "empty_key": {"": "empty key", "nested": {"": [None]}},
    "number_like_keys": {key: [0] for key in NUMBER_LIKE_KEYS},
    "deep": _nested(48),
}
"""One of each kind of JSON value a store might change: 64-bit edges and beyond, float
edges (signed zero, subnormal, the largest finite, ``time.time()`` values, sums that
print long), NUL and astral text, ``null`` in lists, empty containers inside each
other, awkward, number-like and empty object keys, deep nesting."""

STATE_KEYS = {
    **{f"k-{name}": name for name in JSON_VALUES},
    **{key: "astral" for key in AWKWARD_KEYS if ":" not in key},
    **{key: "time_time" for key in NUMBER_LIKE_KEYS},
}
"""Top-level state and metadata keys, each mapped to the name of the ``JSON_VALUES`` entry it
holds (scope-prefix look-alikes are state rules, not values, so they stay nested)."""

MAX_NESTING = 64
"""How many containers deep a field's value may nest, the field's own object counting."""

LONE_SURROGATES: list[Any] = ["\ud800", "a\udfffb", {"\udc00": 1}, ["ok", "\ud83d"]]
"""Text that Python allows and UTF-8 cannot encode: no store can keep it."""


def _framework_floats() -> list[float]:
    """Floats as agent frameworks store them: ``time.time()`` stamps, sums, any bit pattern.

    Seeded, so a failure names the same value each run. Many ``time.time()`` values do not
    survive a trip through a microsecond datetime: these must come back as they went in.
    """
    rng = random.Random(14)
    stamps = [1_764_250_496 + rng.random() * 3e7 for _ in range(24)]
    patterns = [
        struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(40)
    ]
    sums = [0.1 + 0.2, 1 / 3, 2 / 3, 1e100, 1e-100, 123456789.123456789, 2**53 + 0.0, 0.5**1074]
    return (
        stamps
        + [value for value in patterns if value == value and abs(value) != float("inf")]
        + sums
    )


def float_bits(value: Any) -> Any:
    """Each float in ``value`` as its 8 bytes: two floats are the same only if these are."""
    if isinstance(value, dict):
        return {key: float_bits(item) for key, item in value.items()}
    if isinstance(value, list):
        return [float_bits(item) for item in value]
    return struct.pack("<d", value) if isinstance(value, float) else value


def exact(value: Any) -> Any:
    """``value`` with each number tagged by its type, floats spelt by their bits."""
    if isinstance(value, dict):
        return {key: exact(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [exact(item) for item in value]
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, float):
        return ("float", value.hex())
    return value


def _state(keys: dict[str, str], prefix: str = "") -> dict[str, Any]:
    return {f"{prefix}{key}": JSON_VALUES[name] for key, name in keys.items()}


def _parts() -> list[Any]:
    return [
        TextPart(text="text with NUL \x00 and astral 🚀"),
        DataPart(data=JSON_VALUES),
        *(DataPart(data=value) for value in JSON_VALUES.values()),
        ToolCallPart(id="call \x00 1", name="f", arguments=JSON_VALUES),
        ToolCallPart(id="call-2", name="f", arguments=JSON_VALUES["awkward_keys"]),
        ToolResultPart(call_id="call \x00 1", output=JSON_VALUES),
        UnknownPart.model_validate({"type": "future", "payload": JSON_VALUES}),
    ]


class ValueTests:
    """DESIGN §2: everything stored is JSON, and every JSON value round-trips exactly."""

    pytestmark = pytest.mark.asyncio

    async def test_state_round_trips_exactly_at_every_scope(
        self, service: SessionHistoryService
    ) -> None:
        """Session, user and app state keep every JSON value exactly, whichever call wrote it.

        Big integers, float edges, NUL, astral text, nulls in lists, awkward keys, deep nesting.
        """
        half = dict(list(STATE_KEYS.items())[: len(STATE_KEYS) // 2])
        rest = {key: name for key, name in STATE_KEYS.items() if key not in half}
        state = {**_state(half), **_state(half, "user:"), **_state(half, "app:")}
        created = await service.create_session("alice", "s1", state=state)
        assert exact(created.state) == exact(state)
        delta = {**_state(rest), **_state(rest, "user:"), **_state(rest, "app:")}
        await service.append(("alice", "s1"), Event(role="user", state_delta=delta))
        expected = {**state, **delta}
        got = await service.get_session("alice", "s1")
        assert got is not None and exact(got.state) == exact(expected)
        assert exact(await service.get_user_state("alice")) == exact(_state(STATE_KEYS))
        assert exact(await service.get_app_state()) == exact(_state(STATE_KEYS))

        await service.create_session("bob", "s1")
        await service.update_session("bob", "s1", state=_state(STATE_KEYS))
        assert exact(await service.update_user_state("bob", _state(STATE_KEYS))) == exact(
            _state(STATE_KEYS)
        )
        await service.update_app_state({key: None for key in STATE_KEYS})
        assert exact(await service.update_app_state(_state(STATE_KEYS))) == exact(
            _state(STATE_KEYS)
        )
        bob = await service.get_session("bob", "s1")
        assert bob is not None
        merged = {**_state(STATE_KEYS), **_state(STATE_KEYS, "user:"), **_state(STATE_KEYS, "app:")}
        assert exact(bob.state) == exact(merged)

    async def test_deleting_awkward_keys_removes_only_them(
        self, service: SessionHistoryService
    ) -> None:
        """A None delta on a dotted, $-prefixed or NUL key deletes that key and no other."""
        state = _state(STATE_KEYS)
        await service.create_session("alice", "s1", state=state)
        await service.update_user_state("alice", state)
        gone = {"a.b": None, "$gt": None, "x\x00y": None, "%2E": None}
        await service.update_session("alice", "s1", state=gone)
        await service.update_user_state("alice", gone)
        kept = {key: value for key, value in state.items() if key not in gone}
        got = await service.get_session("alice", "s1")
        assert got is not None
        assert exact(got.state) == exact({**kept, **{f"user:{k}": v for k, v in kept.items()}})
        assert exact(await service.get_user_state("alice")) == exact(kept)
        await service.update_session("alice", "s1", metadata={"a": {"b": 1}, "a.b": 2, "$": 3})
        await service.update_session("alice", "s1", metadata={"a.b": None})
        got = await service.get_session("alice", "s1")
        assert got is not None and got.metadata == {"a": {"b": 1}, "$": 3}

    async def test_session_metadata_round_trips_exactly(
        self, service: SessionHistoryService
    ) -> None:
        """Session metadata (empty keys allowed) keeps every value, at creation and by update."""
        metadata = {**_state(STATE_KEYS), "": JSON_VALUES}
        created = await service.create_session("alice", "s1", metadata=metadata)
        assert exact(created.metadata) == exact(metadata)
        await service.create_session("alice", "s2", metadata={"": None, "a.b": 0})
        await service.update_session("alice", "s2", metadata=metadata)
        for session_id in ("s1", "s2"):
            got = await service.get_session("alice", session_id)
            assert got is not None and exact(got.metadata) == exact(metadata), session_id
        listed = (await service.list_sessions("alice")).items
        assert [exact(s.metadata) for s in listed] == [exact(metadata)] * 2

    async def test_event_parts_and_metadata_round_trip_exactly(
        self, service: SessionHistoryService
    ) -> None:
        """Event parts and metadata keep every JSON value exactly.

        Text, data, tool call arguments, tool results, unknown parts and event metadata, as the
        append returns them, in a full read, in a windowed read and on a retry.
        """
        await service.create_session("alice", "s1")
        sent = Event(
            id="values",
            role="assistant",
            content=_parts(),
            metadata={**_state(STATE_KEYS), "": JSON_VALUES},
        )
        expected = exact(sent.model_dump(exclude={"seq", "timestamp"}))
        [stored] = await service.append(("alice", "s1"), [sent])
        assert exact(stored.model_dump(exclude={"seq", "timestamp"})) == expected
        await service.append(("alice", "s1"), "after")
        full = await service.get_session("alice", "s1")
        window = await service.get_session("alice", "s1", last_n=2)
        for got in (full, window):
            assert got is not None and got.events[0].id == "values"
            assert exact(got.events[0].model_dump(exclude={"seq", "timestamp"})) == expected
        [retried] = await service.append(("alice", "s1"), sent)
        assert retried.seq == 1
        assert exact(retried.model_dump(exclude={"seq", "timestamp"})) == expected

    async def test_framework_floats_and_timestamps_round_trip_exactly(
        self, service: SessionHistoryService
    ) -> None:
        """``time.time()`` floats in metadata, state deltas and parts come back bit for bit.

        The event timestamp, a datetime, keeps its microseconds (and the instant, when it was
        given in another zone): a framework keeps its float stamp in metadata to get it back.
        """
        floats = _framework_floats()
        await service.create_session("alice", "s1")
        sent: list[Event] = []
        for index, value in enumerate(floats[:24]):
            moment = datetime.fromtimestamp(value, timezone.utc)
            if index % 3 == 0:  # the same instant, written in another zone
                moment = moment.astimezone(timezone(timedelta(hours=5, minutes=30)))
            sent.append(
                Event(
                    id=f"e{index}",
                    role="assistant",
                    timestamp=moment,
                    content=[DataPart(data={"created": value})],
                    metadata={"timestamp": value, "floats": floats[index::24]},
                    state_delta={f"t{index}": value, "user:last": value},
                )
            )
        sent.append(
            Event(id="all", role="user", content=[DataPart(data=floats)], metadata={"": floats})
        )
        stored = await service.append(("alice", "s1"), sent)
        got = await service.get_session("alice", "s1")
        assert got is not None
        for events in (stored, got.events):
            assert [e.id for e in events] == [e.id for e in sent]
            for mine, theirs in zip(sent, events, strict=True):
                fields = {"content", "metadata", "state_delta"}
                assert float_bits(theirs.model_dump(include=fields)) == float_bits(
                    mine.model_dump(include=fields)
                ), mine.id
                assert theirs.timestamp is not None
                assert theirs.timestamp == (mine.timestamp or theirs.timestamp), mine.id
                assert theirs.timestamp.utcoffset() == timedelta(0), mine.id
        for index, value in enumerate(floats[:24]):
            assert got.events[index].timestamp == datetime.fromtimestamp(value, timezone.utc)
        expected_state = {f"t{i}": value for i, value in enumerate(floats[:24])}
        expected_state["user:last"] = floats[23]
        assert float_bits(got.state) == float_bits(expected_state)

    async def test_an_empty_role_is_refused_in_one_line(
        self, service: SessionHistoryService
    ) -> None:
        """An empty or blank role is InvalidInput naming the field, with nothing written.

        The message says what to use instead: the message's role, with a framework's author
        name in metadata.
        """
        await service.create_session("alice", "s1")
        for bad in (
            Event(role=""),
            Event(role="  "),
            {"role": "", "content": "hi"},
            {"role": None, "content": "hi"},
        ):
            with pytest.raises(InvalidInput, match=r"events\[1\]\.role") as caught:
                await service.append(("alice", "s1"), ["fine", bad])
            assert "\n" not in str(caught.value)
            assert "metadata" in str(caught.value)
        got = await service.get_session("alice", "s1")
        assert got is not None and got.event_count == 0

    @pytest.mark.parametrize("text", LONE_SURROGATES, ids=repr)
    async def test_lone_surrogates_are_rejected_before_writing(
        self, service: SessionHistoryService, text: Any
    ) -> None:
        """A lone surrogate is InvalidInput naming the field, before anything is written.

        Python strings allow it, UTF-8 cannot encode it, so no store could keep it.
        """
        with pytest.raises(InvalidInput, match=r"state\.k"):
            await service.create_session("alice", "s1", state={"k": text})
        with pytest.raises(InvalidInput, match="metadata"):
            await service.create_session("alice", "s1", metadata={"m": [text]})
        assert await service.get_session("alice", "s1") is None
        await service.create_session("alice", "s1")
        attempts: list[Any] = [
            Event(role="user", state_delta={"user:k": text}),
            Event(role="user", metadata={"m": text}),
            Event(role="user", content=[DataPart(data={"d": text})]),
            Event(role="assistant", content=[ToolCallPart(id="c", name="f", arguments=[text])]),
            Event(role="tool", content=[ToolResultPart(call_id="c", output=text)]),
        ]
        if isinstance(text, str):
            attempts.append(Event(role="user", content=[TextPart(text=text)]))
        for attempt in attempts:
            with pytest.raises(InvalidInput, match=r"events\[1\]"):
                await service.append(("alice", "s1"), ["fine", attempt])
        for call in (
            lambda: service.update_session("alice", "s1", state={"k": text}),
            lambda: service.update_session("alice", "s1", metadata={"k": text}),
            lambda: service.update_user_state("alice", {"k": text}),
            lambda: service.update_app_state({"k": text}),
        ):
            with pytest.raises(InvalidInput):
                await call()
        got = await service.get_session("alice", "s1")
        assert got is not None and got.event_count == 0
        assert got.state == {} and got.metadata == {}
        assert await service.get_user_state("alice") == {}
        assert await service.get_app_state() == {}

    async def test_nesting_up_to_the_limit_round_trips(
        self, service: SessionHistoryService
    ) -> None:
        """Values nested as deep as the service accepts come back exactly.

        One level deeper is InvalidInput naming the field, with nothing written.
        """
        deepest = _nested(MAX_NESTING - 1)  # inside the state object, which is a level too
        await service.create_session("alice", "s1", state={"k": deepest}, metadata={"m": deepest})
        [event] = await service.append(
            ("alice", "s1"),
            Event(
                role="user", content=[DataPart(data=_nested(MAX_NESTING))], metadata={"m": deepest}
            ),
        )
        got = await service.get_session("alice", "s1")
        assert got is not None
        assert exact(got.state) == exact({"k": deepest})
        assert exact(got.metadata) == exact({"m": deepest})
        assert exact(got.events[0].model_dump()) == exact(event.model_dump())
        assert got.events[0].content == [DataPart(data=_nested(MAX_NESTING))]
        too_deep = _nested(MAX_NESTING)
        with pytest.raises(InvalidInput, match=r"state\.k"):
            await service.update_session("alice", "s1", state={"k": too_deep})
        with pytest.raises(InvalidInput, match=r"content\[0\]\.data"):
            await service.append(
                ("alice", "s1"), Event(role="user", content=[DataPart(data=[too_deep])])
            )
        got = await service.get_session("alice", "s1")
        assert got is not None and got.event_count == 1
        assert exact(got.state) == exact({"k": deepest})

    async def test_state_keys_must_not_be_empty(self, service: SessionHistoryService) -> None:
        """An empty state key names nothing: InvalidInput. Empty keys inside values are kept."""
        with pytest.raises(InvalidInput, match="empty"):
            await service.create_session("alice", "s1", state={"": 1})
        await service.create_session("alice", "s1", state={"k": {"": 1}})
        for call in (
            lambda: service.update_session("alice", "s1", state={"": 1}),
            lambda: service.update_user_state("alice", {"": 1}),
            lambda: service.append(("alice", "s1"), Event(role="user", state_delta={"": 1})),
        ):
            with pytest.raises(InvalidInput, match="empty"):
                await call()
        got = await service.get_session("alice", "s1")
        assert got is not None and got.state == {"k": {"": 1}} and got.event_count == 0

    @requires("restore_session")
    async def test_restore_keeps_values_exactly(
        self, service: SessionHistoryService, backend: Backend, clock: FakeClock
    ) -> None:
        """restore_session (import, migrate) keeps state, metadata and event values exactly."""
        session = Session(
            id="restored",
            app_name=service.app_name,
            user_id="alice",
            root_id="restored",
            created_at=clock.now,
            updated_at=clock.now,
            state=_state(STATE_KEYS),
            metadata={**_state(STATE_KEYS), "": JSON_VALUES},
            event_count=1,
            last_seq=1,
        )
        event = Event(
            id="values",
            seq=1,
            role="assistant",
            content=_parts(),
            timestamp=clock.now,
            state_delta=_state(STATE_KEYS),
            metadata={"": JSON_VALUES},
        )
        await backend.restore_session(session, [event], Expiry(now=clock.now))
        got = await service.get_session("alice", "restored")
        assert got is not None
        assert exact(got.state) == exact(session.state)
        assert exact(got.metadata) == exact(session.metadata)
        assert [exact(e.model_dump()) for e in got.events] == [exact(event.model_dump())]
