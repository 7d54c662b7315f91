"""Rewriting history: pop the newest event, replace or clear all, compare-and-set appends."""

from __future__ import annotations

import asyncio
import multiprocessing
import random

import pytest

from sessionhub.errors import ConflictError, InvalidInput, SessionNotFound
from sessionhub.models import Event, TextPart
from sessionhub.service import SessionHistoryService
from sessionhub.testing._base import BackendFactory, Connect, MakeService, requires
from sessionhub.testing._suite.concurrency import _append_in_process, _next_message


def _said(text: str) -> Event:
    return Event(role="user", content=[TextPart(text=text)])


async def _seqs(service: SessionHistoryService, user: str, session_id: str) -> list[int]:
    session = await service.get_session(user, session_id)
    assert session is not None
    return [event.seq for event in session.events]


async def _nothing_lost(
    service: SessionHistoryService, session_id: str, appended: list[str], popped: list[Event]
) -> None:
    """Every acknowledged append is stored or was popped once; no seq serves two events."""
    session = await service.get_session("alice", session_id)
    assert session is not None
    stored = {event.id: event.seq for event in session.events}
    gone = {event.id: event.seq for event in popped}
    assert len(gone) == len(popped), "an event was popped twice"
    assert not stored.keys() & gone.keys()
    assert set(appended) == stored.keys() | gone.keys()
    seqs = [*stored.values(), *gone.values()]
    assert len(seqs) == len(set(seqs)), "a seq was given to two events"
    assert (session.last_seq, session.event_count) == (len(appended), len(stored))


class HistoryTests:
    """DESIGN §3: pop, replace, clear and compare-and-set, each atomic."""

    pytestmark = pytest.mark.asyncio

    @requires("pop_event")
    async def test_pop_returns_the_newest_event_and_seqs_keep_counting(
        self, service: SessionHistoryService
    ) -> None:
        """A popped seq is never reused: the next append gets a higher one."""
        await service.create_session("alice", "s1")
        await service.append(("alice", "s1"), ["one", "two", "three"])
        popped = await service.pop_event("alice", "s1")
        assert popped is not None and (popped.seq, popped.text) == (3, "three")
        session = await service.get_session("alice", "s1")
        assert session is not None
        assert ([e.seq for e in session.events], session.last_seq, session.event_count) == (
            [1, 2],
            3,
            2,
        )
        [four] = await service.append(("alice", "s1"), "four")
        assert four.seq == 4
        later = await service.get_session("alice", "s1", after_seq=2)
        assert later is not None and [e.text for e in later.events] == ["four"]
        newest = await service.get_session("alice", "s1", last_n=2)
        assert newest is not None and [e.text for e in newest.events] == ["two", "four"]

    @requires("pop_event")
    async def test_pop_of_an_empty_or_missing_session(self, service: SessionHistoryService) -> None:
        """An empty session pops ``None``; a missing one raises ``SessionNotFound``."""
        await service.create_session("alice", "s1")
        assert await service.pop_event("alice", "s1") is None
        with pytest.raises(SessionNotFound):
            await service.pop_event("alice", "nope")
        with pytest.raises(SessionNotFound):
            await service.pop_event("mallory", "s1")

    @requires("pop_event")
    async def test_a_popped_event_can_be_appended_again(
        self, service: SessionHistoryService
    ) -> None:
        """Its id is no longer stored: appending it again stores it with a new seq."""
        await service.create_session("alice", "s1")
        event = _said("retry me")
        await service.append(("alice", "s1"), event)
        popped = await service.pop_event("alice", "s1")
        assert popped is not None and (popped.id, popped.seq, popped.text) == (
            event.id,
            1,
            "retry me",
        )
        [again] = await service.append(("alice", "s1"), event)
        assert (again.id, again.seq) == (event.id, 2)

    @requires("pop_event")
    async def test_concurrent_pops_return_different_events(
        self, service: SessionHistoryService
    ) -> None:
        """25 pops of 20 events: every event comes back exactly once, then ``None``."""
        await service.create_session("alice", "s1")
        await service.append(("alice", "s1"), [f"m{i}" for i in range(20)])
        popped = await asyncio.gather(*(service.pop_event("alice", "s1") for _ in range(25)))
        texts = [event.text for event in popped if event is not None]
        assert sorted(texts) == sorted(f"m{i}" for i in range(20))
        assert popped.count(None) == 5
        assert await _seqs(service, "alice", "s1") == []

    @requires("pop_event")
    async def test_pops_racing_appends_lose_nothing(self, service: SessionHistoryService) -> None:
        """Every acknowledged append is stored or was popped; no seq serves two events."""
        await service.create_session("alice", "s1")
        rng = random.Random(7)
        appended: list[Event] = []
        popped: list[Event] = []

        async def worker(number: int) -> None:
            for step in range(20):
                if rng.random() < 0.35:
                    event = await service.pop_event("alice", "s1")
                    if event is not None:
                        popped.append(event)
                else:
                    appended.extend(await service.append(("alice", "s1"), f"w{number}-{step}"))

        await asyncio.gather(*(worker(n) for n in range(10)))
        await _nothing_lost(service, "s1", [event.id for event in appended], popped)

    @requires("replace_events")
    async def test_replace_swaps_the_history_and_keeps_the_state(
        self, service: SessionHistoryService
    ) -> None:
        """New events get seqs after ``last_seq``; state and metadata stay."""
        await service.create_session("alice", "s1", state={"topic": "trip"}, metadata={"t": 1})
        await service.append(
            ("alice", "s1"),
            [{"role": "user", "content": f"m{i}", "state_delta": {"n": i}} for i in range(3)],
        )
        summary = Event(role="system", content=[TextPart(text="summary of m0-m2")])
        stored = await service.replace_events("alice", "s1", [summary, "and then?"])
        assert [(e.seq, e.text) for e in stored] == [(4, "summary of m0-m2"), (5, "and then?")]
        session = await service.get_session("alice", "s1")
        assert session is not None
        assert [(e.id, e.seq) for e in session.events] == [(e.id, e.seq) for e in stored]
        assert (session.last_seq, session.event_count) == (5, 2)
        assert session.state == {"topic": "trip", "n": 2} and session.metadata == {"t": 1}
        [next_one] = await service.append(("alice", "s1"), "more")
        assert next_one.seq == 6
        later = await service.get_session("alice", "s1", after_seq=3)
        assert later is not None and [e.seq for e in later.events] == [4, 5, 6]

    @requires("replace_events")
    async def test_replace_with_a_stale_expectation_changes_nothing(
        self, service: SessionHistoryService
    ) -> None:
        """``expected_last_seq`` that is not the session's raises ``ConflictError`` naming both."""
        await service.create_session("alice", "s1")
        await service.append(("alice", "s1"), ["a", "b"])
        with pytest.raises(ConflictError, match=r"1.*2|2.*1"):
            await service.replace_events("alice", "s1", ["x"], expected_last_seq=1)
        assert await _seqs(service, "alice", "s1") == [1, 2]
        stored = await service.replace_events("alice", "s1", ["x"], expected_last_seq=2)
        assert [e.seq for e in stored] == [3]

    @requires("replace_events")
    async def test_replace_racing_an_append_never_drops_it(
        self, service: SessionHistoryService
    ) -> None:
        """Either the replace fails with ``ConflictError`` or the append lands after it."""
        await service.create_session("alice", "s1")
        for round_number in range(10):
            session = await service.get_session("alice", "s1", last_n=0)
            assert session is not None
            raced: tuple[list[Event] | BaseException, ...] = await asyncio.gather(
                service.append(("alice", "s1"), f"raced {round_number}"),
                service.replace_events(
                    "alice", "s1", [f"summary {round_number}"], expected_last_seq=session.last_seq
                ),
                return_exceptions=True,
            )
            append, replace = raced
            assert isinstance(append, list), append
            assert isinstance(replace, (list, ConflictError)), replace
            after = await service.get_session("alice", "s1")
            assert after is not None
            assert f"raced {round_number}" in [e.text for e in after.events]

    @requires("pop_event")
    @requires("replace_events")
    async def test_fifty_writers_mixing_append_pop_and_replace_lose_nothing(
        self, service: SessionHistoryService
    ) -> None:
        """50 tasks append, pop and replace at once: what was acknowledged is accounted for.

        Every acknowledged event (append or replacement) is stored, or was popped
        by an acknowledged pop, or had a seq an acknowledged replace covered; no
        seq serves two events; nothing unacknowledged is stored.
        """
        await service.create_session("alice", "s1")
        rng = random.Random(11)
        written: list[Event] = []
        popped: list[Event] = []
        replaced_up_to = 0

        async def worker(number: int) -> None:
            nonlocal replaced_up_to
            for step in range(6):
                await asyncio.sleep(0)  # interleave even on a backend that never waits
                roll = rng.random()
                if roll < 0.2:
                    event = await service.pop_event("alice", "s1")
                    if event is not None:
                        popped.append(event)
                elif roll < 0.3:
                    seen = await service.get_session("alice", "s1", last_n=0)
                    assert seen is not None
                    await asyncio.sleep(0)  # let others write between the read and the replace
                    try:
                        written.extend(
                            await service.replace_events(
                                "alice",
                                "s1",
                                [f"summary {number}-{step}"],
                                expected_last_seq=seen.last_seq,
                            )
                        )
                    except ConflictError:
                        continue
                    replaced_up_to = max(replaced_up_to, seen.last_seq)
                else:
                    written.extend(await service.append(("alice", "s1"), f"w{number}-{step}"))

        await asyncio.gather(*(worker(n) for n in range(50)))
        session = await service.get_session("alice", "s1")
        assert session is not None
        seqs = [event.seq for event in written]
        assert len(seqs) == len(set(seqs)), "a seq was given to two events"
        acknowledged = {event.id for event in written}
        popped_ids = [event.id for event in popped]
        assert len(popped_ids) == len(set(popped_ids)), "an event was popped twice"
        assert set(popped_ids) <= acknowledged
        stored = [event.id for event in session.events]
        assert set(stored) <= acknowledged
        assert not set(stored) & set(popped_ids)
        missing = [
            event.text
            for event in written
            if event.seq > replaced_up_to and event.id not in popped_ids and event.id not in stored
        ]
        assert missing == []
        assert [event.seq for event in session.events] == sorted(e.seq for e in session.events)
        assert session.last_seq == max(seqs)

    @requires("replace_events")
    async def test_clear_keeps_the_session_its_state_and_seq(
        self, service: SessionHistoryService
    ) -> None:
        """After ``clear_events`` the session is empty; the next append continues the seqs."""
        await service.create_session("alice", "s1", state={"k": "v"})
        await service.append(("alice", "s1"), ["a", "b", "c"])
        await service.clear_events("alice", "s1")
        session = await service.get_session("alice", "s1")
        assert session is not None
        assert (session.events, session.event_count, session.last_seq) == ([], 0, 3)
        assert session.state == {"k": "v"}
        [event] = await service.append(("alice", "s1"), "d")
        assert event.seq == 4
        with pytest.raises(SessionNotFound):
            await service.clear_events("alice", "nope")

    @requires("replace_events")
    async def test_replace_refuses_state_deltas(self, service: SessionHistoryService) -> None:
        """Replacing rewrites history, not state: a delta is ``InvalidInput``, nothing changes."""
        await service.create_session("alice", "s1")
        await service.append(("alice", "s1"), "a")
        with pytest.raises(InvalidInput, match="state_delta"):
            await service.replace_events(
                "alice", "s1", [{"role": "user", "content": "x", "state_delta": {"k": 1}}]
            )
        assert await _seqs(service, "alice", "s1") == [1]

    @requires("compare_and_set")
    async def test_append_with_an_expected_last_seq(self, service: SessionHistoryService) -> None:
        """A session that moved on raises ``ConflictError`` naming both seqs; nothing is written."""
        await service.create_session("alice", "s1")
        [first] = await service.append(("alice", "s1"), "a", expected_last_seq=0)
        await service.append(("alice", "s1"), "b")
        with pytest.raises(ConflictError, match=r"expected last_seq 1, it is 2"):
            await service.append(("alice", "s1"), ["c", "d"], expected_last_seq=1)
        assert await _seqs(service, "alice", "s1") == [1, 2]
        retried = await service.append(("alice", "s1"), first, expected_last_seq=0)
        assert [e.seq for e in retried] == [1]  # a retry of a stored event is not a conflict
        with pytest.raises(InvalidInput, match="expected_last_seq"):
            await service.append(("alice", "s1"), "e", expected_last_seq=-1)

    @requires("compare_and_set")
    async def test_concurrent_compare_and_set_appends_one_wins(
        self, service: SessionHistoryService
    ) -> None:
        """Ten writers that read the same ``last_seq``: exactly one append lands."""
        await service.create_session("alice", "s1")
        for round_number in range(5):
            session = await service.get_session("alice", "s1", last_n=0)
            assert session is not None
            outcomes = await asyncio.gather(
                *(
                    service.append(
                        ("alice", "s1"),
                        f"r{round_number}w{writer}",
                        expected_last_seq=session.last_seq,
                    )
                    for writer in range(10)
                ),
                return_exceptions=True,
            )
            assert sum(isinstance(o, list) for o in outcomes) == 1, outcomes
            assert all(isinstance(o, (list, ConflictError)) for o in outcomes), outcomes
        assert await _seqs(service, "alice", "s1") == [1, 2, 3, 4, 5]

    @requires("pop_event")
    @requires("replace_events")
    async def test_event_limit_counts_events_across_gaps(self, make_service: MakeService) -> None:
        """The trim keeps the newest ``event_limit`` events however their seqs are spaced."""
        service = make_service(event_limit=3)
        await service.create_session("alice", "s1")
        await service.append(("alice", "s1"), ["a", "b", "c"])
        await service.pop_event("alice", "s1")
        five = _said("e")
        await service.append(("alice", "s1"), ["d", five])
        assert await _seqs(service, "alice", "s1") == [2, 4, 5]
        [retried] = await service.append(("alice", "s1"), five)
        assert retried.seq == 5
        stored = await service.replace_events("alice", "s1", ["v", "w", "x", "y"])
        assert [e.seq for e in stored] == [6, 7, 8, 9]
        session = await service.get_session("alice", "s1")
        assert session is not None
        assert [(e.seq, e.text) for e in session.events] == [(7, "w"), (8, "x"), (9, "y")]
        assert (session.event_count, session.last_seq) == (3, 9)

    @requires("shared_store")
    @requires("pop_event")
    async def test_pops_and_appends_on_two_connections_lose_nothing(
        self, connect: Connect | None, make_service: MakeService
    ) -> None:
        """Appends through one backend instance race pops through another on the same store."""
        assert connect is not None, "declare shared_store only with a 'connect' fixture"
        other = await connect()
        try:
            appender, popper = make_service(), make_service(other)
            await appender.create_session("alice", "s1")
            appended: list[Event] = []
            popped: list[Event] = []

            async def append(worker: int) -> None:
                for step in range(25):
                    appended.extend(await appender.append(("alice", "s1"), f"w{worker}-{step}"))

            async def pop() -> None:
                for _ in range(25):
                    event = await popper.pop_event("alice", "s1")
                    if event is not None:
                        popped.append(event)

            await asyncio.gather(*(append(w) for w in range(4)), *(pop() for _ in range(4)))
            await _nothing_lost(appender, "s1", [event.id for event in appended], popped)
        finally:
            await other.close()

    @requires("multi_process")
    @requires("pop_event")
    async def test_pops_racing_appends_of_other_processes_lose_nothing(
        self, backend_factory: BackendFactory | None, service: SessionHistoryService
    ) -> None:
        """Two processes append 100 events each while this one pops: nothing is lost."""
        assert backend_factory is not None, (
            "declare multi_process only with a 'backend_factory' fixture"
        )
        await service.create_session("alice", "shared")  # where the writer processes append
        context = multiprocessing.get_context("spawn")
        messages = context.Queue()
        go = context.Event()
        names = ["p0", "p1"]
        processes = [
            context.Process(
                target=_append_in_process,
                args=(backend_factory, name, 100, messages, go),
                daemon=True,
            )
            for name in names
        ]
        for process in processes:
            process.start()
        popped: list[Event] = []
        try:
            said = [await _next_message(messages) for _ in names]
            assert all(kind == "ready" for kind, _ in said), said
            go.set()
            finished = asyncio.gather(*(_next_message(messages) for _ in names))
            while not finished.done():
                event = await service.pop_event("alice", "shared")
                if event is not None:
                    popped.append(event)
            assert sorted(await finished) == [("done", name) for name in names]
        finally:
            go.set()
            for process in processes:
                await asyncio.to_thread(process.join, 10)
                if process.is_alive():
                    process.kill()
        appended = [f"{name}-{i}" for name in names for i in range(100)]
        await _nothing_lost(service, "shared", appended, popped)
