"""Events: seq allocation, input shapes, idempotent retries, windowed reads."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from sessionhub.errors import ConflictError, SessionNotFound
from sessionhub.models import (
    DataPart,
    Event,
    FilePart,
    Part,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    UnknownPart,
)
from sessionhub.service import SessionHistoryService
from sessionhub.testing._base import FakeClock, requires

_SECOND = timedelta(seconds=1)
_MICROSECOND = timedelta(microseconds=1)


class EventTests:
    """DESIGN §2-3: appending and reading events."""

    pytestmark = pytest.mark.asyncio

    async def test_seqs_are_contiguous_from_one(self, service: SessionHistoryService) -> None:
        """The backend numbers a session's events 1, 2, 3 ... in append order."""
        await service.create_session("alice", "s1")
        first = await service.append(("alice", "s1"), ["a", "b"])
        second = await service.append(("alice", "s1"), "c")
        assert [e.seq for e in first + second] == [1, 2, 3]
        got = await service.get_session("alice", "s1")
        assert got is not None
        assert [(e.seq, e.text) for e in got.events] == [(1, "a"), (2, "b"), (3, "c")]
        assert (got.event_count, got.last_seq) == (3, 3)

    async def test_append_fills_ids_and_timestamps(self, service: SessionHistoryService) -> None:
        """Events without id or timestamp get a generated id and the service's time."""
        s = await service.create_session("alice", "s1")
        [event] = await service.append(s, "hello")
        assert event.id and event.role == "user" and event.text == "hello"
        assert event.timestamp is not None and event.timestamp >= s.created_at
        got = await service.get_session("alice", "s1")
        assert got is not None and got.events[0].id == event.id
        assert got.events[0].timestamp == event.timestamp

    async def test_append_accepts_every_input_shape(self, service: SessionHistoryService) -> None:
        """Append takes an Event, a str, our dict, OpenAI and AgentScope dicts, or a list."""
        await service.create_session("alice", "s1")
        stored = await service.append(
            ("alice", "s1"),
            [
                Event(role="system", content=[TextPart(text="be brief")]),
                "what is 2+2?",
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "add", "arguments": '{"a": 2, "b": 2}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "4"},
                {
                    "name": "Friday",
                    "role": "assistant",
                    "content": [{"type": "text", "text": "It is 4."}],
                },
            ],
        )
        assert [e.seq for e in stored] == [1, 2, 3, 4, 5]
        got = await service.get_session("alice", "s1")
        assert got is not None
        system, user, call, result, reply = got.events
        assert system.role == "system" and system.text == "be brief"
        assert user.role == "user" and user.text == "what is 2+2?"
        assert call.content == [ToolCallPart(id="c1", name="add", arguments={"a": 2, "b": 2})]
        assert result.content == [ToolResultPart(call_id="c1", output="4")]
        assert reply.text == "It is 4." and reply.metadata["name"] == "Friday"

    async def test_agentscope_2_messages_keep_tool_input_and_time(
        self, service: SessionHistoryService
    ) -> None:
        """An AgentScope 2.x ``Msg`` dump: tool input (a JSON string), results, ``created_at``."""
        await service.create_session("alice", "s1")
        block = {"id": "b1", "created_at": "2026-11-27T11:56:29.408349", "finished_at": None}
        call: dict[str, Any] = {
            "name": "Friday",
            "role": "assistant",
            "id": "msg-1",
            "metadata": {},
            "created_at": "2026-11-27T11:56:29.408423+00:00",
            "usage": None,
            "content": [
                {"type": "text", "text": "Let me add.", **block},
                {
                    "type": "tool_call",
                    "id": "call-1",
                    "name": "add",
                    "input": '{"a": 2, "b": 2}',
                    "state": "pending",
                    "suggested_rules": [],
                    "created_at": "2026-11-27T11:56:29.408363",
                    "finished_at": None,
                },
            ],
        }
        result: dict[str, Any] = {
            "name": "Friday",
            "role": "assistant",
            "id": "msg-2",
            "metadata": {},
            "created_at": "2026-11-27T11:56:30",  # naive: AgentScope writes local time
            "content": [
                {
                    "type": "tool_result",
                    "id": "call-1",
                    "name": "add",
                    "output": "division by zero",
                    "state": "error",
                    "metadata": {},
                    "created_at": "2026-11-27T11:56:30",
                    "finished_at": None,
                }
            ],
        }
        await service.append(("alice", "s1"), [call, result])
        got = await service.get_session("alice", "s1")
        assert got is not None
        first, second = got.events
        assert first.id == "msg-1" and first.metadata == {"name": "Friday"}
        assert first.content[1] == ToolCallPart(id="call-1", name="add", arguments={"a": 2, "b": 2})
        assert first.timestamp == datetime(2026, 11, 27, 11, 56, 29, 408423, tzinfo=timezone.utc)
        assert second.content == [
            ToolResultPart(call_id="call-1", output="division by zero", is_error=True)
        ]
        local = datetime(2026, 11, 27, 11, 56, 30).astimezone(timezone.utc)
        assert second.timestamp == local

    async def test_every_part_type_round_trips(self, service: SessionHistoryService) -> None:
        """All part types, and parts of unknown type, are stored and read back unchanged."""
        await service.create_session("alice", "s1")
        content: list[Part] = [
            TextPart(text="hé ✓ 中文"),
            ToolCallPart(id="c", name="f", arguments={"x": [1, 2.5, None, True]}),
            ToolResultPart(call_id="c", output={"ok": False}, is_error=True),
            DataPart(data=[{"nested": {"deep": "yes"}}]),
            FilePart(mime_type="image/png", data="aGVsbG8="),
            FilePart(mime_type="text/plain", uri="https://example.com/a.txt", name="a.txt"),
        ]
        event = Event(role="assistant", content=content, metadata={"model": "m"})
        await service.append(
            ("alice", "s1"),
            [event, {"role": "user", "content": [{"type": "hologram", "payload": {"x": 1}}]}],
        )
        got = await service.get_session("alice", "s1")
        assert got is not None
        assert got.events[0].content == content
        assert got.events[0].metadata == {"model": "m"}
        [unknown] = got.events[1].content
        assert isinstance(unknown, UnknownPart)
        assert unknown.model_dump() == {"type": "hologram", "payload": {"x": 1}}

    async def test_append_updates_session_in_place(self, service: SessionHistoryService) -> None:
        """When append gets a Session, its events, state and counters are kept current."""
        s = await service.create_session("alice", "s1")
        await service.append(s, {"role": "user", "content": "hi", "state_delta": {"k": "v"}})
        assert [e.text for e in s.events] == ["hi"]
        assert s.state == {"k": "v"}
        assert (s.last_seq, s.event_count) == (1, 1)
        assert s.updated_at > s.created_at
        await service.append(s, [s.events[0], "second"])  # a retry and a new event
        assert [e.text for e in s.events] == ["hi", "second"]
        assert [e.seq for e in s.events] == [1, 2]

    async def test_append_to_missing_session_raises(self, service: SessionHistoryService) -> None:
        """Appending to a session that does not exist raises SessionNotFound; nothing is created."""
        with pytest.raises(SessionNotFound):
            await service.append(("alice", "missing"), "hello")
        assert await service.get_session("alice", "missing") is None

    async def test_reappend_same_id_is_a_no_op(self, service: SessionHistoryService) -> None:
        """Re-appending a stored event (same id and content) returns it; nothing changes."""
        await service.create_session("alice", "s1")
        event = Event(id="e1", role="user", content=[TextPart(text="once")], state_delta={"n": 1})
        [first] = await service.append(("alice", "s1"), event)
        assert first.timestamp is not None
        retry = event.model_copy(update={"timestamp": first.timestamp + timedelta(seconds=5)})
        [again] = await service.append(("alice", "s1"), retry)
        assert again.seq == first.seq == 1
        assert again.text == "once" and again.timestamp == first.timestamp
        got = await service.get_session("alice", "s1")
        assert got is not None
        assert (got.event_count, got.last_seq, got.state) == (1, 1, {"n": 1})

    async def test_appending_one_event_object_twice_stores_it_once(
        self, service: SessionHistoryService
    ) -> None:
        """An Event gets its id when built: appending the same object again is a retry."""
        await service.create_session("alice", "s1")
        event = Event(role="user", content=[TextPart(text="hi")], state_delta={"n": 1})
        [first] = await service.append(("alice", "s1"), event)
        [again] = await service.append(("alice", "s1"), event)
        assert event.id and first.id == again.id == event.id
        assert (first.seq, again.seq) == (1, 1)
        assert event.seq == 0 and event.timestamp is None  # the caller's object is untouched
        got = await service.get_session("alice", "s1")
        assert got is not None and (got.event_count, got.last_seq) == (1, 1)

    async def test_a_retry_equal_as_json_is_not_a_conflict(
        self, service: SessionHistoryService
    ) -> None:
        """Content compares as stored (JSON): a tuple retried against its stored list is equal."""
        await service.create_session("alice", "s1")
        event = Event(role="tool", content=[DataPart(data={"pair": (1, 2)})], metadata={"b": 1})
        await service.append(("alice", "s1"), event)
        [again] = await service.append(("alice", "s1"), event)
        assert again.seq == 1 and again.content[0] == DataPart(data={"pair": [1, 2]})

    @pytest.mark.parametrize(
        "change",
        [
            {"role": "assistant"},
            {"content": [TextPart(text="twice")]},
            {"state_delta": {"n": 2}},
            {"metadata": {"source": "other"}},
        ],
        ids=["role", "content", "state_delta", "metadata"],
    )
    async def test_same_id_with_other_content_conflicts(
        self, service: SessionHistoryService, change: dict[str, Any]
    ) -> None:
        """An id already stored with other content raises ConflictError naming it; no change."""
        await service.create_session("alice", "s1")
        event = Event(id="e1", role="user", content=[TextPart(text="once")], state_delta={"n": 1})
        await service.append(("alice", "s1"), event)
        with pytest.raises(ConflictError, match="'e1'"):
            await service.append(("alice", "s1"), event.model_copy(update=change))
        got = await service.get_session("alice", "s1")
        assert got is not None
        assert (got.event_count, got.last_seq, got.state) == (1, 1, {"n": 1})
        assert got.events[0].text == "once" and got.events[0].role == "user"

    async def test_retry_of_a_batch_stores_only_new_events(
        self, service: SessionHistoryService
    ) -> None:
        """A batch mixing stored and new ids stores only the new ones, in order."""
        await service.create_session("alice", "s1")
        a = Event(id="a", role="user", content=[TextPart(text="a")])
        b = Event(id="b", role="user", content=[TextPart(text="b")])
        await service.append(("alice", "s1"), [a])
        stored = await service.append(("alice", "s1"), [a, b])
        assert [(e.id, e.seq) for e in stored] == [("a", 1), ("b", 2)]
        got = await service.get_session("alice", "s1")
        assert got is not None and [e.id for e in got.events] == ["a", "b"]

    @requires("atomic_conflicts")
    @pytest.mark.parametrize("order", ["new first", "stored first"])
    async def test_a_batch_reusing_an_id_for_other_content_writes_nothing(
        self, service: SessionHistoryService, clock: FakeClock, order: str
    ) -> None:
        """A batch holding an id stored with other content raises ConflictError; none of it lands.

        Not its new events, their state deltas, the counters or the times; the same batch
        with the stored content is a retry and stores the new events.
        """
        s = await service.create_session("alice", "s1")
        a = Event(id="a", role="user", content=[TextPart(text="a")], state_delta={"n": 1})
        await service.append(("alice", "s1"), a)
        before = await service.get_session("alice", "s1")
        clock.advance(5)
        fresh = Event(id="new", role="user", state_delta={"n": 2, "user:u": 1, "app:p": 1})
        reused = a.model_copy(update={"content": [TextPart(text="other")]})
        batch = [fresh, reused] if order == "new first" else [reused, fresh]
        with pytest.raises(ConflictError, match="'a'"):
            await service.append(s, batch)
        got = await service.get_session("alice", "s1")
        assert got is not None and before is not None
        assert [e.id for e in got.events] == ["a"] and got.events[0].text == "a"
        assert (got.event_count, got.last_seq, got.state) == (1, 1, {"n": 1})
        assert got.updated_at == before.updated_at
        assert s.events == [] and s.last_seq == 0  # the caller's session is not touched
        retry = [fresh, a] if order == "new first" else [a, fresh]
        stored = await service.append(("alice", "s1"), retry)
        assert sorted((e.id, e.seq) for e in stored) == [("a", 1), ("new", 2)]
        got = await service.get_session("alice", "s1")
        assert got is not None and got.state == {"n": 2, "user:u": 1, "app:p": 1}

    async def test_empty_append_stores_nothing(self, service: SessionHistoryService) -> None:
        """Appending an empty list returns [] and changes nothing."""
        s = await service.create_session("alice", "s1")
        assert await service.append(s, []) == []
        got = await service.get_session("alice", "s1")
        assert got is not None and got.updated_at == s.updated_at

    async def test_last_n(self, service: SessionHistoryService) -> None:
        """last_n returns the newest n events, oldest first; 0 returns none; counters stay whole."""
        await service.create_session("alice", "s1")
        await service.append(("alice", "s1"), [str(i) for i in range(1, 11)])
        got = await service.get_session("alice", "s1", last_n=3)
        assert got is not None and [e.seq for e in got.events] == [8, 9, 10]
        assert (got.event_count, got.last_seq) == (10, 10)
        none = await service.get_session("alice", "s1", last_n=0)
        assert none is not None and none.events == [] and none.event_count == 10
        everything = await service.get_session("alice", "s1", last_n=100)
        assert everything is not None and len(everything.events) == 10

    async def test_after_seq(self, service: SessionHistoryService) -> None:
        """after_seq returns events with a greater seq; with last_n, the newest of those."""
        await service.create_session("alice", "s1")
        await service.append(("alice", "s1"), [str(i) for i in range(1, 11)])
        got = await service.get_session("alice", "s1", after_seq=7)
        assert got is not None and [e.seq for e in got.events] == [8, 9, 10]
        got = await service.get_session("alice", "s1", after_seq=2, last_n=2)
        assert got is not None and [e.seq for e in got.events] == [9, 10]
        got = await service.get_session("alice", "s1", after_seq=10)
        assert got is not None and got.events == []

    async def test_after_time(self, service: SessionHistoryService, clock: FakeClock) -> None:
        """after_time returns events with a later timestamp; combinable with last_n."""
        await service.create_session("alice", "s1")
        await service.append(("alice", "s1"), ["old1", "old2"])
        clock.advance(60)
        cut = clock.now
        clock.advance(60)
        await service.append(("alice", "s1"), ["new1", "new2", "new3"])
        got = await service.get_session("alice", "s1", after_time=cut)
        assert got is not None and [e.text for e in got.events] == ["new1", "new2", "new3"]
        got = await service.get_session("alice", "s1", after_time=cut, last_n=1)
        assert got is not None and [e.text for e in got.events] == ["new3"]
        later = await service.get_session("alice", "s1", after_time=cut + timedelta(days=1))
        assert later is not None and later.events == []

    async def test_after_time_window_with_last_n_and_after_seq(
        self, service: SessionHistoryService, clock: FakeClock
    ) -> None:
        """after_time selects, then last_n keeps the newest of the selected, however many match."""
        await service.create_session("alice", "s1")
        t0 = clock.now
        await service.append(
            ("alice", "s1"),
            [
                Event(role="user", content=[TextPart(text=str(n))], timestamp=t0 + n * _SECOND)
                for n in range(1, 11)
            ],
        )

        async def seqs(**window: Any) -> list[int]:
            got = await service.get_session("alice", "s1", **window)
            assert got is not None and (got.event_count, got.last_seq) == (10, 10)
            return [e.seq for e in got.events]

        cut = t0 + 7 * _SECOND  # event 7's own timestamp: not after it
        assert await seqs(after_time=cut) == [8, 9, 10]
        assert await seqs(after_time=cut, last_n=5) == [8, 9, 10]  # fewer match than last_n
        assert await seqs(after_time=cut, last_n=3) == [8, 9, 10]  # exactly last_n match
        assert await seqs(after_time=cut, last_n=2) == [9, 10]  # more match than last_n
        assert await seqs(after_time=cut, last_n=1) == [10]
        assert await seqs(after_time=cut, last_n=0) == []
        assert await seqs(after_time=t0, last_n=20) == list(range(1, 11))
        assert await seqs(after_time=t0 + 10 * _SECOND, last_n=5) == []
        assert await seqs(after_time=cut - _MICROSECOND, last_n=5) == [7, 8, 9, 10]
        assert await seqs(after_seq=8, after_time=t0 + 5 * _SECOND, last_n=5) == [9, 10]
        assert await seqs(after_seq=3, after_time=t0 + 5 * _SECOND, last_n=3) == [8, 9, 10]
        assert await seqs(after_seq=6, after_time=t0 + 2 * _SECOND, last_n=9) == [7, 8, 9, 10]
        assert await seqs(after_seq=10, after_time=t0, last_n=5) == []

    async def test_after_time_with_client_timestamps_out_of_order(
        self, service: SessionHistoryService, clock: FakeClock
    ) -> None:
        """Client timestamps need not grow with seq: the window follows each event's own time."""
        await service.create_session("alice", "s1")
        t0 = clock.now
        offsets = [5, 1, 6, 2, 7, 3, 4]  # seconds after t0, for seqs 1..7
        await service.append(
            ("alice", "s1"),
            [
                Event(role="user", content=[TextPart(text=str(o))], timestamp=t0 + o * _SECOND)
                for o in offsets
            ],
        )

        async def seqs(**window: Any) -> list[int]:
            got = await service.get_session("alice", "s1", **window)
            assert got is not None
            return [e.seq for e in got.events]

        cut = t0 + 3 * _SECOND
        assert await seqs(after_time=cut) == [1, 3, 5, 7]
        assert await seqs(after_time=cut, last_n=10) == [1, 3, 5, 7]
        assert await seqs(after_time=cut, last_n=2) == [5, 7]
        assert await seqs(after_time=cut, after_seq=1, last_n=10) == [3, 5, 7]
        assert await seqs(after_time=t0 + 6 * _SECOND, last_n=3) == [5]
        # A later append in order again: the window still sees the older, out-of-order events.
        await service.append(
            ("alice", "s1"),
            Event(role="user", content=[TextPart(text="8")], timestamp=t0 + 8 * _SECOND),
        )
        assert await seqs(after_time=t0 + 4 * _SECOND, last_n=4) == [1, 3, 5, 8]

    async def test_client_timestamps_are_kept(
        self, service: SessionHistoryService, clock: FakeClock
    ) -> None:
        """An event's own timestamp is stored as given (normalised to UTC)."""
        await service.create_session("alice", "s1")
        when = clock.now - timedelta(days=3)
        [event] = await service.append(
            ("alice", "s1"), Event(role="user", content=[TextPart(text="x")], timestamp=when)
        )
        got = await service.get_session("alice", "s1")
        assert got is not None and got.events[0].timestamp == when == event.timestamp
