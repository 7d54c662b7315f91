"""Inputs: hostile identifiers are data; bad input is InvalidInput before anything is written."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from sessionhub._validate import EARLIEST_TIME, LATEST_TIME, MAX_COUNT
from sessionhub.errors import InvalidInput
from sessionhub.models import DataPart, Event, TextPart, ToolCallPart
from sessionhub.service import SessionHistoryService

HOSTILE_IDS = [
    "../../x",
    "/etc/passwd",
    "a:b",
    "a:b:c",
    "{tag}",
    "}{",
    "*",
    "?",
    "[a-z]",
    "$where",
    "$gt",
    "a.b",
    "'; DROP TABLE sessions; --",
    '"quoted"',
    "back\\slash",
    "%s%n",
    "ünïcödé ✓ 中文 🚀",
    " leading and trailing ",
    "x" * 256,
]

BAD_IDS: list[Any] = ["", "   ", "tab\there", "new\nline", "nul\x00", "x" * 257, 42, None]

NOT_JSON: list[Any] = [b"bytes", {1, 2}, object(), float("nan"), float("inf"), datetime(2026, 1, 1)]


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8", "surrogatepass")).decode().rstrip("=")


class InputTests:
    """DESIGN §2: identifiers and JSON-only values."""

    pytestmark = pytest.mark.asyncio

    @pytest.mark.parametrize("hostile", HOSTILE_IDS)
    async def test_hostile_identifiers_are_data(
        self, service: SessionHistoryService, hostile: str
    ) -> None:
        """Ids with path, key, glob, query or quote syntax are stored and read back verbatim."""
        sibling = hostile[:-1] + "~"
        await service.create_session(hostile, hostile, state={hostile: hostile})
        await service.create_session(hostile, sibling)
        [event] = await service.append(
            (hostile, hostile),
            Event(id=hostile, role=hostile, content=[DataPart(data={hostile: 1})]),
        )
        got = await service.get_session(hostile, hostile)
        assert got is not None
        assert (got.id, got.user_id) == (hostile, hostile)
        assert got.state == {hostile: hostile}
        assert got.events[0].id == hostile == event.id and got.events[0].role == hostile
        page = await service.list_sessions(hostile)
        assert sorted(s.id for s in page.items) == sorted([hostile, sibling])
        assert await service.get_session("x", hostile) is None
        assert await service.get_session(hostile, "x") is None
        assert await service.delete_session(hostile, hostile) is True
        assert await service.get_session(hostile, sibling) is not None

    @pytest.mark.parametrize("bad", BAD_IDS)
    async def test_invalid_identifiers_are_rejected(
        self, service: SessionHistoryService, bad: Any
    ) -> None:
        """Empty, blank, too long, non-string or control-character ids raise InvalidInput."""
        with pytest.raises(InvalidInput, match="user_id"):
            await service.create_session(bad, "s1")
        assert (await service.list_sessions("s1")).items == []
        await service.create_session("alice", "s1")
        if bad not in (None, "", "   "):  # blank session and event ids are generated instead
            with pytest.raises(InvalidInput, match="session_id"):
                await service.create_session("alice", bad)
            event = Event.model_construct(
                id=bad, role="user", content=[], state_delta={}, metadata={}, seq=0, timestamp=None
            )
            with pytest.raises(InvalidInput, match=r"events\[0\]\.id"):
                await service.append(("alice", "s1"), event)
        got = await service.get_session("alice", "s1")
        assert got is not None and got.event_count == 0
        assert [s.id for s in (await service.list_sessions("alice")).items] == ["s1"]

    @pytest.mark.parametrize("value", NOT_JSON, ids=lambda v: type(v).__name__)
    async def test_non_json_values_are_rejected(
        self, service: SessionHistoryService, value: Any
    ) -> None:
        """Bytes, sets, objects, NaN, datetimes: InvalidInput naming the field; nothing written."""
        with pytest.raises(InvalidInput, match=r"state\.k"):
            await service.create_session("alice", "s1", state={"k": value})
        with pytest.raises(InvalidInput, match=r"metadata\.m\.deep"):
            await service.create_session("alice", "s1", metadata={"m": {"deep": [value]}})
        assert await service.get_session("alice", "s1") is None
        await service.create_session("alice", "s1")
        attempts: list[Any] = [
            {"role": "user", "content": "x", "state_delta": {"user:k": value}},
            {"role": "user", "content": "x", "metadata": {"m": value}},
            Event(role="user", content=[DataPart(data=[value])]),
            Event(
                role="assistant", content=[ToolCallPart(id="c", name="f", arguments={"a": value})]
            ),
        ]
        for attempt in attempts:
            with pytest.raises(InvalidInput):
                await service.append(("alice", "s1"), ["fine", attempt])
        with pytest.raises(InvalidInput, match="delta"):
            await service.update_app_state({"k": value})
        got = await service.get_session("alice", "s1")
        assert got is not None and got.event_count == 0 and got.state == {}
        assert await service.get_user_state("alice") == {}
        assert await service.get_app_state() == {}

    async def test_non_string_keys_are_rejected(self, service: SessionHistoryService) -> None:
        """JSON object keys are strings: {1: 'x'} in state raises InvalidInput."""
        with pytest.raises(InvalidInput, match="state"):
            await service.create_session("alice", "s1", state={"k": {1: "x"}})
        assert await service.get_session("alice", "s1") is None

    async def test_duplicate_ids_in_one_append(self, service: SessionHistoryService) -> None:
        """One append may not carry the same event id twice."""
        await service.create_session("alice", "s1")
        with pytest.raises(InvalidInput, match="twice"):
            await service.append(
                ("alice", "s1"), [Event(id="e", role="user"), Event(id="e", role="user")]
            )
        got = await service.get_session("alice", "s1")
        assert got is not None and got.event_count == 0

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"last_n": -1}, "last_n"),
            ({"after_seq": -1}, "after_seq"),
            ({"last_n": "3"}, "last_n"),
            ({"after_time": "yesterday"}, "after_time"),
        ],
    )
    async def test_window_arguments_are_checked(
        self, service: SessionHistoryService, kwargs: dict[str, Any], field: str
    ) -> None:
        """last_n, after_seq and after_time are validated."""
        await service.create_session("alice", "s1")
        with pytest.raises(InvalidInput, match=field):
            await service.get_session("alice", "s1", **kwargs)

    @pytest.mark.parametrize("limit", [0, -5, 1001])
    async def test_list_limit_is_checked(self, service: SessionHistoryService, limit: int) -> None:
        """list_sessions takes 1 <= limit <= 1000."""
        with pytest.raises(InvalidInput, match="limit"):
            await service.list_sessions("alice", limit=limit)

    async def test_bad_event_shapes(self, service: SessionHistoryService) -> None:
        """An event without a role, or of an unusable type, raises InvalidInput."""
        await service.create_session("alice", "s1")
        for bad in ({"content": "no role"}, 42, {"role": "user", "content": 5}):
            with pytest.raises(InvalidInput):
                await service.append(("alice", "s1"), bad)
        got = await service.get_session("alice", "s1")
        assert got is not None and got.event_count == 0

    @pytest.mark.parametrize(
        "cursor",
        [
            "!!!",
            42,
            _cursor("[" * 100_000),
            _cursor(json.dumps(["2026-01-01T00:00:00", "s1"])),  # naive: not a cursor we made
            _cursor(json.dumps(["9999-12-31T23:00:00-05:00", "s1"])),
            _cursor(json.dumps(["0001-01-01T00:00:00+00:00", "s1"])),
            _cursor(json.dumps({"updated_at": "2026-01-01T00:00:00+00:00"})),
            _cursor(json.dumps(["2026-01-01T00:00:00+00:00", {"id": 1}])),
            _cursor(json.dumps(["2026-01-01T00:00:00+00:00", "nul\x00"])),
            _cursor(json.dumps([1, 2, 3])),
            _cursor("\xff\xfe"),
            "x" * 5000,
        ],
        ids=lambda c: str(c)[:20],
    )
    async def test_crafted_cursors_are_rejected(
        self, service: SessionHistoryService, cursor: Any
    ) -> None:
        """A cursor list_sessions did not make raises InvalidInput naming the cursor."""
        await service.create_session("alice", "s1")
        with pytest.raises(InvalidInput, match="cursor"):
            await service.list_sessions("alice", cursor=cursor)

    @pytest.mark.parametrize("field", ["last_n", "after_seq"])
    @pytest.mark.parametrize("value", [2**53, 2**63, 2**64 + 1])
    async def test_huge_window_numbers_are_rejected(
        self, service: SessionHistoryService, field: str, value: int
    ) -> None:
        """last_n / after_seq beyond 2**53 - 1 raise InvalidInput; the largest allowed works."""
        await service.create_session("alice", "s1")
        await service.append(("alice", "s1"), ["a", "b"])
        with pytest.raises(InvalidInput, match=field):
            await service.get_session("alice", "s1", **{field: value})  # type: ignore[arg-type]
        got = await service.get_session("alice", "s1", last_n=MAX_COUNT)
        assert got is not None and [e.text for e in got.events] == ["a", "b"]
        got = await service.get_session("alice", "s1", after_seq=MAX_COUNT)
        assert got is not None and got.events == []

    @pytest.mark.parametrize(
        "timestamp",
        [
            "9999-12-31T23:00-05:00",
            "9999-12-31T23:59:59+00:00",
            "0001-01-01T00:00:00+00:00",
            datetime(1, 1, 1, tzinfo=timezone.utc),
            datetime(9999, 12, 31, tzinfo=timezone.utc),
            LATEST_TIME,
            EARLIEST_TIME - timedelta(microseconds=1),
        ],
        ids=str,
    )
    async def test_out_of_range_times_are_rejected(
        self, service: SessionHistoryService, timestamp: Any
    ) -> None:
        """Event timestamps and after_time outside the stored range raise InvalidInput."""
        await service.create_session("alice", "s1")
        with pytest.raises(InvalidInput, match=r"events\[1\]\.timestamp"):
            await service.append(
                ("alice", "s1"), ["fine", {"role": "user", "content": "x", "timestamp": timestamp}]
            )
        if isinstance(timestamp, datetime):
            event = Event.model_construct(
                id="e", role="user", content=[], state_delta={}, metadata={}, timestamp=timestamp
            )
            with pytest.raises(InvalidInput, match=r"event.*\.timestamp"):
                await service.append(("alice", "s1"), event)
            with pytest.raises(InvalidInput, match="after_time"):
                await service.get_session("alice", "s1", after_time=timestamp)
        got = await service.get_session("alice", "s1")
        assert got is not None and got.event_count == 0

    async def test_times_at_the_edges_of_the_range_round_trip(
        self, service: SessionHistoryService
    ) -> None:
        """The earliest and latest accepted timestamps are stored and filtered exactly."""
        await service.create_session("alice", "s1")
        latest = LATEST_TIME - timedelta(microseconds=1)
        offset = timezone(timedelta(hours=-5))
        await service.append(
            ("alice", "s1"),
            [
                Event(role="user", content=[TextPart(text="early")], timestamp=EARLIEST_TIME),
                Event(role="user", content=[TextPart(text="late")], timestamp=latest),
                Event(
                    role="user",
                    content=[TextPart(text="local")],
                    timestamp=datetime(2026, 1, 1, 7, tzinfo=offset),
                ),
            ],
        )
        got = await service.get_session("alice", "s1")
        assert got is not None
        assert [e.timestamp for e in got.events] == [
            EARLIEST_TIME,
            latest,
            datetime(2026, 1, 1, 12, tzinfo=timezone.utc),
        ]
        after = await service.get_session(
            "alice", "s1", after_time=latest - timedelta(microseconds=1)
        )
        assert after is not None and [e.text for e in after.events] == ["late"]
        after = await service.get_session("alice", "s1", after_time=EARLIEST_TIME)
        assert after is not None and [e.text for e in after.events] == ["late", "local"]

    @pytest.mark.parametrize(
        ("event", "field"),
        [
            ({"role": "assistant", "content": None, "tool_calls": "oops"}, "tool_calls"),
            ({"role": "assistant", "tool_calls": ["oops"]}, r"tool_calls\[0\]"),
            ({"role": "assistant", "tool_calls": {"id": "c1"}}, "tool_calls"),
            (
                {"role": "user", "content": [{"type": "text", "text": b"raw bytes"}]},
                r"content\[0\]\.text",
            ),
            (
                {"role": "user", "content": [{"type": "input_text", "text": 5}]},
                r"content\[0\]\.text",
            ),
            ({"role": "user", "content": b"raw bytes"}, "content"),
            ({"role": "user", "content": "x", "metadata": "oops"}, "metadata"),
            ({"role": "user", "content": "x", "metadata": [("a", 1)]}, "metadata"),
        ],
        ids=lambda v: str(v)[:40],
    )
    async def test_malformed_event_dicts_are_rejected(
        self, service: SessionHistoryService, event: dict[str, Any], field: str
    ) -> None:
        """Malformed tool calls, bytes for text, non-dict metadata: InvalidInput naming it."""
        await service.create_session("alice", "s1")
        with pytest.raises(InvalidInput, match=rf"events\[1\]\.{field}"):
            await service.append(("alice", "s1"), ["fine", event])
        got = await service.get_session("alice", "s1")
        assert got is not None and got.event_count == 0
