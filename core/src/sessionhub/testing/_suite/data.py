"""Data tools' primitives: walking an app's users, restoring a session exactly."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sessionhub.backend import Backend, Expiry, Scope
from sessionhub.models import Event, Session, TextPart
from sessionhub.service import SessionHistoryService
from sessionhub.testing._base import FakeClock, MakeService


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


class DataTests:
    """Export, import and migrate rely on these two primitives."""

    pytestmark = pytest.mark.asyncio

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
            await backend.get_state(
                Scope.USER, "default", "alice", Expiry(now=clock.now), refresh=False
            )
            == {}
        )
