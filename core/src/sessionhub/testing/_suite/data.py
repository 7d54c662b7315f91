"""Data tools' primitives: walking an app's users, restoring a session exactly."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from sessionhub.backend import Backend, Expiry, StateKey
from sessionhub.errors import InvalidInput
from sessionhub.models import Event, Session, TextPart
from sessionhub.service import SessionHistoryService
from sessionhub.testing._base import FakeClock, MakeService, requires


def _restorable(
    clock: FakeClock, session_id: str = "restored", *, last_seq: int = 12
) -> tuple[Session, list[Event]]:
    created = clock.now - timedelta(days=30)
    updated = clock.now - timedelta(days=2)
    session = Session(
        id=session_id,
        app_name="default",
        user_id="alice",
        parent_id="root",
        root_id="root",
        depth=1,
        created_at=created,
        updated_at=updated,
        state={"topic": "restored", "n": [1, 2]},
        metadata={"title": "from an export"},
        event_count=5,
        last_seq=last_seq,
    )
    events = [
        Event(
            id=f"e{seq}",
            seq=seq,
            role="user" if seq % 2 else "assistant",
            content=[TextPart(text=f"message {seq}")],
            timestamp=created + timedelta(minutes=seq),
            state_delta={"n": seq},
        )
        for seq in range(last_seq - 4, last_seq + 1)
    ]
    return session, events


def _no_timestamp(session: Session, events: list[Event]) -> None:
    events[1].timestamp = None


def _blank_role(session: Session, events: list[Event]) -> None:
    events[2].role = ""


def _control_characters_in_parent_id(session: Session, events: list[Event]) -> None:
    session.parent_id = "\x00" * 300


def _negative_depth(session: Session, events: list[Event]) -> None:
    session.depth = -5


def _depth_without_parent(session: Session, events: list[Event]) -> None:
    session.parent_id = None


def _blank_event_id(session: Session, events: list[Event]) -> None:
    events[0].id = ""


def _repeated_event_id(session: Session, events: list[Event]) -> None:
    events[3].id = events[0].id


def _seqs_out_of_order(session: Session, events: list[Event]) -> None:
    events[2].seq = events[1].seq


def _seq_below_one(session: Session, events: list[Event]) -> None:
    events[0].seq = 0


def _seq_above_last_seq(session: Session, events: list[Event]) -> None:
    session.last_seq = events[3].seq


def _not_json_metadata(session: Session, events: list[Event]) -> None:
    events[0].metadata = {"raw": b"bytes"}


def _wider_scope_in_session_state(session: Session, events: list[Event]) -> None:
    session.state = {"app:flag": True}


BREAKAGES: dict[str, tuple[Callable[[Session, list[Event]], None], str]] = {
    "event without timestamp": (_no_timestamp, "events[1].timestamp"),
    "blank role": (_blank_role, "events[2].role"),
    "control characters in parent_id": (_control_characters_in_parent_id, "session.parent_id"),
    "negative depth": (_negative_depth, "session.depth"),
    "depth without parent": (_depth_without_parent, "session.depth"),
    "blank event id": (_blank_event_id, "events[0].id"),
    "repeated event id": (_repeated_event_id, "events[3].id"),
    "seqs out of order": (_seqs_out_of_order, "events[2].seq"),
    "seq below one": (_seq_below_one, "events[0].seq"),
    "seq above last_seq": (_seq_above_last_seq, "events[4].seq"),
    "non-JSON metadata": (_not_json_metadata, "events[0].metadata.raw"),
    "wider scope in session state": (_wider_scope_in_session_state, "session.state"),
}


class DataTests:
    """Export, import and migrate rely on these two optional primitives (capabilities)."""

    pytestmark = pytest.mark.asyncio

    @requires("list_users")
    async def test_list_users_pages_every_user_once(
        self, service: SessionHistoryService, backend: Backend, make_service: MakeService
    ) -> None:
        """list_users walks the app's users (sessions or user state) in order, each once."""
        users = [f"user-{i:02d}" for i in range(11)]
        for user in users:
            await service.create_session(user, "s")
            await service.create_session(user, "t")
        await service.update_user_state("state-only", {"k": 1})
        await make_service(app_name="other-app").create_session("stranger", "s")
        seen: list[str] = []
        after = None
        while True:
            page = await backend.list_users(service.app_name, limit=4, after=after)
            seen.extend(page)
            if len(page) < 4:
                break
            after = page[-1]
        assert seen == sorted([*users, "state-only"])

    @requires("restore_session")
    async def test_restore_keeps_everything_exactly(
        self, service: SessionHistoryService, backend: Backend, clock: FakeClock
    ) -> None:
        """restore_session stores ids, seqs, times, counters, state and metadata as given."""
        session, events = _restorable(clock)
        await backend.restore_session(session, events, Expiry(now=clock.now))
        got = await service.get_session("alice", "restored")
        assert got is not None
        assert got.model_dump(exclude={"events", "expires_at"}) == session.model_dump(
            exclude={"events", "expires_at"}
        )
        assert got.events == events
        listed = (await service.list_sessions("alice")).items
        assert [(s.id, s.updated_at) for s in listed] == [("restored", session.updated_at)]
        [retry] = await service.append(("alice", "restored"), events[-1])
        assert retry.seq == 12
        [new] = await service.append(("alice", "restored"), "after the restore")
        assert new.seq == 13

    @requires("restore_session")
    async def test_restore_replaces_a_session(
        self, service: SessionHistoryService, backend: Backend, clock: FakeClock
    ) -> None:
        """Restoring over an existing session leaves exactly the restored content."""
        await service.create_session("alice", "restored", state={"old": True})
        await service.append(("alice", "restored"), [f"old {i}" for i in range(20)])
        session, events = _restorable(clock, last_seq=5)
        await backend.restore_session(session, events, Expiry(now=clock.now))
        await backend.restore_session(session, events, Expiry(now=clock.now))  # idempotent
        got = await service.get_session("alice", "restored")
        assert got is not None
        assert [e.id for e in got.events] == ["e1", "e2", "e3", "e4", "e5"]
        assert got.state == {"topic": "restored", "n": [1, 2]}
        assert (got.event_count, got.last_seq) == (5, 5)
        assert (
            await backend.read_state(
                StateKey.user("default", "alice"), Expiry(now=clock.now), refresh=False
            )
            == {}
        )

    @requires("restore_session")
    @requires("pop_event")
    async def test_restore_keeps_seq_gaps(
        self, service: SessionHistoryService, backend: Backend, clock: FakeClock
    ) -> None:
        """Seqs with gaps (a pop or a replace leaves them) restore exactly; reads and pops go on."""
        await service.create_session("alice", "popped")
        await service.append(("alice", "popped"), ["one", "two", "three"])
        await service.pop_event("alice", "popped")
        await service.append(("alice", "popped"), ["four", "five"])
        await service.pop_event("alice", "popped")
        exported = await service.get_session("alice", "popped")
        assert exported is not None and [e.seq for e in exported.events] == [1, 2, 4]
        copy = exported.model_copy(update={"id": "copy", "root_id": "copy"})
        await backend.restore_session(copy, exported.events, Expiry(now=clock.now))
        got = await service.get_session("alice", "copy")
        assert got is not None and (got.events, got.last_seq) == (exported.events, 5)

        session, events = _restorable(clock)
        gapped = [events[0], events[2], events[3]]  # seqs 8, 10, 11 of last_seq 12
        session.event_count = len(gapped)
        await backend.restore_session(session, gapped, Expiry(now=clock.now))
        got = await service.get_session("alice", "restored")
        assert got is not None
        assert (got.events, got.event_count, got.last_seq) == (gapped, 3, 12)
        newest = await service.get_session("alice", "restored", last_n=2, after_seq=8)
        assert newest is not None and [e.seq for e in newest.events] == [10, 11]
        [new] = await service.append(("alice", "restored"), "after the restore")
        assert new.seq == 13
        popped = [await service.pop_event("alice", "restored") for _ in range(2)]
        assert [e.seq for e in popped if e is not None] == [13, 11]
        got = await service.get_session("alice", "restored")
        assert got is not None and [e.seq for e in got.events] == [8, 10]

    @requires("restore_session")
    @pytest.mark.parametrize("breakage", list(BREAKAGES))
    async def test_restore_refuses_what_an_append_or_create_would_refuse(
        self, service: SessionHistoryService, backend: Backend, clock: FakeClock, breakage: str
    ) -> None:
        """restore_session checks its input like an append: InvalidInput, nothing written."""
        await service.create_session("alice", "restored", state={"old": True})
        await service.append(("alice", "restored"), ["kept 1", "kept 2"])
        before = await service.get_session("alice", "restored")
        session, events = _restorable(clock)
        breaks, field = BREAKAGES[breakage]
        breaks(session, events)
        with pytest.raises(InvalidInput) as caught:
            await backend.restore_session(session, events, Expiry(now=clock.now))
        assert caught.value.field == field
        assert await service.get_session("alice", "restored") == before
